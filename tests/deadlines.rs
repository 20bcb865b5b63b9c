//! Issue 14, class 2: deadlines that hold. Every network exchange has a total deadline as
//! well as a stall timeout, so a server that trickles (its headers, or its body one byte
//! a second, forever) cannot hold a run past a bound: a remote check, `fetch`'s
//! preflight, TSS and ipsw.me each end; a download slower than the minimum throughput is
//! broken off, kept, and resumes on the next run.
//!
//! Each server is on loopback, in this process. Nothing here asserts speed: a run must
//! *end* well within [`BOUND`] (it would otherwise go on for hours), with the right exit
//! code and message.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ipswcheck_fixture::{IpswSpec, Method};

use crate::util::http::{self, api_url, tss_url, Pace, Server};
use crate::util::remote::{
    apple_signed, fetch_args, first_problem as problem, fresh_cache, network_flags, run_json,
    sparse_zip,
};
use crate::util::robust::Outcome;

/// `--timeout` of every run, in seconds.
const TIMEOUT: &str = "3";
/// A run that has not ended by then hangs (the test fails; `run_limited` kills it).
const BOUND: Duration = Duration::from_secs(30);
/// [`BOUND`] for the check of many slow reads, which ends at its check deadline (about
/// 30 s: 4 × 3 s plus its bytes at 32 KiB/s) plus at most one stall timeout — where it
/// would otherwise take about eight minutes.
const CHECK_BOUND: Duration = Duration::from_secs(90);

/// The ranges asked for, `start..end`, in order.
type RangeLog = Arc<Mutex<Vec<(u64, u64)>>>;

/// A range server for `bytes` that answers request number `i` (from 0) for
/// `start..end` as `plan(i, start, end)` says.
fn range_server(
    bytes: Arc<Vec<u8>>,
    plan: impl Fn(usize, u64, u64) -> Pace + Send + Sync + 'static,
) -> (SocketAddr, RangeLog) {
    let count = AtomicUsize::new(0);
    let log = RangeLog::default();
    let ranges = Arc::clone(&log);
    let addr = Server::raw(move |mut tcp| {
        let Some(request) = http::read_request(&mut tcp) else {
            return;
        };
        let i = count.fetch_add(1, Ordering::SeqCst);
        let range = http::asked_range(&request, bytes.len() as u64);
        ranges.lock().unwrap().push(range);
        http::answer_range(&mut tcp, &bytes, range, plan(i, range.0, range.1));
    })
    .detach();
    (addr, log)
}

/// The network flags: `tss` and `api` base URLs, [`TIMEOUT`], a fresh cache in `dir`,
/// JSON out.
fn network(dir: &Path, tss: &str, api: &str) -> Vec<String> {
    let mut flags = network_flags(tss, api, TIMEOUT, &fresh_cache(dir));
    flags.push("--json".into());
    flags
}

/// Run the binary with `args` then `more`; it must end within [`BOUND`] without a panic.
fn run(args: &[&str], more: &[String]) -> (Outcome, serde_json::Value) {
    run_within(BOUND, args, more)
}

/// [`run`], ending within `bound`.
fn run_within(bound: Duration, args: &[&str], more: &[String]) -> (Outcome, serde_json::Value) {
    let mut all: Vec<&str> = args.to_vec();
    all.extend(more.iter().map(String::as_str));
    let (o, v) = run_json(&all, bound);
    assert!(o.elapsed < bound, "{args:?}: {:?}", o.elapsed);
    (o, v)
}

/// The sample IPSW (all of it fits in the tail: one request reads it).
fn sample(dir: &Path) -> PathBuf {
    let path = dir.join("sample.ipsw");
    IpswSpec::sample().build(&path).unwrap();
    path
}

/// An IPSW whose directory lies before the tail (900 extra entries) and whose body
/// (a 2 MiB stored root filesystem) is a download of its own.
fn larger(dir: &Path) -> PathBuf {
    let path = dir.join("larger.ipsw");
    IpswSpec {
        filler_count: 900,
        // One device, no research identity: 2 identities × 900 fillers stay under the
        // plist value cap (manifest::MAX_PLIST_VALUES).
        research_identity: false,
        devices: vec![IpswSpec::sample().devices[1].clone()],
        os_method: Method::Stored,
        os_size: 2 << 20,
        ..IpswSpec::sample()
    }
    .build(&path)
    .unwrap();
    path
}

fn serve_file(
    path: &Path,
    plan: impl Fn(usize, u64, u64) -> Pace + Send + Sync + 'static,
) -> (String, RangeLog) {
    let bytes = Arc::new(std::fs::read(path).unwrap());
    let (addr, log) = range_server(bytes, plan);
    (format!("http://{addr}/x.ipsw"), log)
}

#[test]
fn a_remote_check_ends_when_the_tail_trickles_forever() {
    let dir = tempfile::tempdir().unwrap();
    let a = apple_signed();
    let net = network(dir.path(), &tss_url(a), &api_url(a));
    // Nothing at all, then a few bytes at once: the first read never completes in time.
    for first in [0, 100] {
        let (url, _) = serve_file(&sample(dir.path()), move |_, _, _| Pace::Trickle(first));
        let (o, v) = run(&[&url, "--device", "iPhone9,3"], &net);
        assert_eq!(o.code, Some(3), "{v:#}");
        let message = problem(&v);
        assert!(message.contains("not complete within"), "{message}");
        assert_ne!(v["verdict"], "ready", "{v:#}");
        eprintln!(
            "tail trickled after {first} bytes: exit 3 in {:?}: {message}",
            o.elapsed
        );
    }
}

#[test]
fn a_remote_check_ends_when_the_headers_trickle() {
    let dir = tempfile::tempdir().unwrap();
    let a = apple_signed();
    let net = network(dir.path(), &tss_url(a), &api_url(a));
    let (url, _) = serve_file(&sample(dir.path()), |_, _, _| Pace::SlowHeaders);
    let (o, v) = run(&[&url, "--device", "iPhone9,3"], &net);
    assert_eq!(o.code, Some(3), "{v:#}");
    let message = problem(&v);
    assert!(message.contains("no answer within 3.0 s"), "{message}");
    eprintln!("headers trickled: exit 3 in {:?}: {message}", o.elapsed);
}

#[test]
fn a_remote_check_ends_when_a_later_read_trickles() {
    let dir = tempfile::tempdir().unwrap();
    let path = larger(dir.path());
    let a = apple_signed();
    let net = network(dir.path(), &tss_url(a), &api_url(a));
    // The tail at once; the directory (or whatever comes next) a byte a second, or its
    // headers so.
    for later in [Pace::Trickle(10), Pace::SlowHeaders] {
        let (url, _) = serve_file(
            &path,
            move |i, _, _| if i == 0 { Pace::Serve } else { later },
        );
        let (o, v) = run(&[&url, "--device", "iPhone9,3"], &net);
        assert_eq!(o.code, Some(3), "{later:?}: {v:#}");
        let message = problem(&v);
        assert!(
            message.contains("not complete within") || message.contains("no answer within"),
            "{later:?}: {message}"
        );
        eprintln!(
            "{later:?} after the tail: exit 3 in {:?}: {message}",
            o.elapsed
        );
    }
}

/// A file whose directory cannot be found from its end records (the zip64 locator
/// points at zeros), so the zip parser looks for it on its own, 64 KiB at a time: a
/// check of many small reads (hundreds, for a large enough file).
fn lost_directory(dir: &Path) -> PathBuf {
    sparse_zip(&dir.join("lost.ipsw"), 8 << 20, &[], 0)
}

/// One deadline for all the reads of a remote check: a server that answers every read
/// within its own deadline — the headers after 2 s (the stall timeout is 3 s), the body
/// at 40 KiB/s (above the 32 KiB/s each answer is granted) — but many reads in a row,
/// cannot stretch the check beyond 4 × the timeout plus its bytes at 32 KiB/s. Without
/// that deadline this check would take 128 such reads, about eight minutes.
#[test]
fn a_remote_check_of_many_slow_reads_ends_at_the_check_deadline() {
    let dir = tempfile::tempdir().unwrap();
    let a = apple_signed();
    let net = network(dir.path(), &tss_url(a), &api_url(a));
    let lost = lost_directory(dir.path());
    let late = Pace::Late {
        wait: Duration::from_secs(2),
        rate: 40 << 10,
    };
    let (url, log) = serve_file(&lost, move |_, _, _| late);
    let (o, v) = run_within(CHECK_BOUND, &[&url, "--device", "iPhone9,3"], &net);
    assert_eq!(o.code, Some(3), "{v:#}");
    let message = problem(&v);
    assert!(
        message.starts_with(&format!("{url}: "))
            && message.contains("the server was too slow overall"),
        "{message}"
    );
    let reads = log.lock().unwrap().len();
    assert!(reads > 2, "{reads} reads: {message}");
    eprintln!("{reads} slow reads: exit 3 in {:?}: {message}", o.elapsed);

    // The same reads answered at once: the check goes to its end (the directory is not
    // found: damage, exit 10), never cut by the check deadline.
    let (url, log) = serve_file(&lost, |_, _, _| Pace::Serve);
    let (o, v) = run(&[&url, "--device", "iPhone9,3"], &net);
    assert_eq!(o.code, Some(10), "{v:#}");
    assert!(!problem(&v).contains("too slow"), "{v:#}");
    eprintln!(
        "{} fast reads: exit 10 in {:?}: {}",
        log.lock().unwrap().len(),
        o.elapsed,
        problem(&v)
    );
    // And a good IPSW from a normal server is read and checked.
    let (url, _) = serve_file(&sample(dir.path()), |_, _, _| Pace::Serve);
    let (o, v) = run(&[&url, "--device", "iPhone9,3"], &net);
    assert_eq!(o.code, Some(0), "{v:#}");
}

#[test]
fn fetch_preflight_ends_when_the_server_trickles() {
    let dir = tempfile::tempdir().unwrap();
    let a = apple_signed();
    let net = network(dir.path(), &tss_url(a), &api_url(a));
    let dest = dir.path().join("out.ipsw");
    for how in [Pace::Trickle(0), Pace::SlowHeaders] {
        let (url, _) = serve_file(&sample(dir.path()), move |_, _, _| how);
        let (o, v) = run(&fetch_args(&url, &dest), &net);
        assert_eq!(o.code, Some(3), "{how:?}: {v:#}");
        // Nothing was written: the preflight failed before FILE.part existed.
        assert!(!dest.exists());
        assert!(!dir.path().join("out.ipsw.part").exists());
        eprintln!(
            "fetch preflight, {how:?}: exit 3 in {:?}: {}",
            o.elapsed,
            problem(&v)
        );
    }
}

#[test]
fn a_download_below_the_minimum_throughput_is_cut_and_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let path = larger(dir.path());
    let a = apple_signed();
    let dest = dir.path().join("out.ipsw");
    // The preflight's reads (the tail, the directory, the manifests: all under 1 MiB)
    // at once; while `slow`, the body 16 KiB at once, then a byte a second.
    let slow = Arc::new(AtomicBool::new(true));
    let (url, log) = {
        let slow = Arc::clone(&slow);
        serve_file(&path, move |_, start, end| {
            if end - start > 1 << 20 && slow.load(Ordering::SeqCst) {
                Pace::Trickle(16 << 10)
            } else {
                Pace::Serve
            }
        })
    };
    let fetch = [&fetch_args(&url, &dest)[..], &["--retries", "0"]].concat();
    let (o, v) = run(&fetch, &network(dir.path(), &tss_url(a), &api_url(a)));
    assert_ne!(o.code, Some(0), "{v:#}");
    let message = problem(&v);
    assert!(message.contains("too slow"), "{message}");
    assert!(
        message.contains("below the minimum of 8 KiB/s"),
        "{message}"
    );
    let hint = v["problems"][0]["hint"].as_str().unwrap_or_default();
    assert!(hint.contains("resumes"), "{hint}");
    assert!(!dest.exists());
    assert!(dir.path().join("out.ipsw.part").exists(), "{v:#}");
    eprintln!(
        "download trickled: exit {:?} in {:?}: {message}",
        o.code, o.elapsed
    );

    // The server recovers: the same command resumes after what had arrived, and the
    // file is complete and identical.
    slow.store(false, Ordering::SeqCst);
    log.lock().unwrap().clear();
    let (o, v) = run(&fetch, &network(dir.path(), &tss_url(a), &api_url(a)));
    assert_eq!(o.code, Some(0), "{v:#}");
    assert_eq!(std::fs::read(&dest).unwrap(), std::fs::read(&path).unwrap());
    let body = log
        .lock()
        .unwrap()
        .iter()
        .copied()
        .max_by_key(|(s, e)| e - s);
    let (start, _) = body.unwrap();
    assert!(start >= 16 << 10, "the body was asked again from {start}");
    eprintln!("resumed from {start}: exit 0 in {:?}", o.elapsed);
}

#[test]
fn a_trickling_tss_or_ipswme_costs_one_deadline() {
    let dir = tempfile::tempdir().unwrap();
    let ipsw = sample(dir.path());
    // Apple's stand-in or ipsw.me's trickles its body; the other answers at once.
    let good = apple_signed();
    let trickler = Server::raw(|mut tcp| {
        if http::read_request(&mut tcp).is_none() {
            return;
        }
        http::answer_range(&mut tcp, &[b'&'; 100_000], (0, 100_000), Pace::Trickle(5));
    })
    .detach();
    for (what, tss, api) in [
        ("TSS", tss_url(trickler), api_url(good)),
        ("ipsw.me", tss_url(good), api_url(trickler)),
    ] {
        let (o, v) = run(
            &[ipsw.to_str().unwrap(), "--device", "iPhone9,3"],
            &network(dir.path(), &tss, &api),
        );
        let signing = &v["checks"]["signing"];
        if what == "TSS" {
            // Apple did not answer: unknown, never signed.
            assert_eq!(o.code, Some(31), "{what}: {v:#}");
            assert_eq!(signing["status"], "unknown");
            assert!(
                signing["message"]
                    .as_str()
                    .unwrap()
                    .contains("no answer within 3.0 s"),
                "{signing:#}"
            );
        } else {
            // Apple answered: signed; ipsw.me's silence is only a missing second opinion.
            assert_eq!(o.code, Some(0), "{what}: {v:#}");
            assert_eq!(signing["status"], "signed");
            assert!(signing["ipswme_signed"].is_null(), "{signing:#}");
        }
        eprintln!("{what} trickled: exit {:?} in {:?}", o.code, o.elapsed);
    }
}
