//! Issue 14, classes 10 and 4 (remote part): what a remote check reads is bounded by
//! design. The 32 MiB central-directory cap holds whatever the end records claim — also
//! when the zip64 end record lies before the fetched tail, where a giant directory used
//! to be read whole through the zip parser — and every byte the parser fetches on its
//! own counts against the same cap.
//!
//! Files are sparse (mostly holes), served by the loopback range server of
//! `util::remote`; the server's count of body bytes sent is what is asserted.

use std::io::{Seek, SeekFrom, Write};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use crate::util::http::{api_url, tss_url};
use crate::util::remote::{
    first_problem, network_flags, run_json, sparse_zip, zip64_record, FileServer,
};
use crate::util::robust::NO_HOSTS;

const MIB: u64 = 1 << 20;

#[test]
fn a_zip64_record_before_the_tail_cannot_claim_a_giant_directory() {
    let dir = tempfile::tempdir().unwrap();
    let files = FileServer::start();
    let cases = [
        // The record at the start claims 40 MiB of directory right after it, all inside
        // the file: read whole before the fix.
        (
            "40 MiB inside the file",
            80 * MIB,
            vec![(0, zip64_record(800_000, 40 * MIB, 56))],
            0,
        ),
        // A terabyte of directory beyond the end of a 2 MiB file.
        (
            "1 TiB beyond the end",
            2 * MIB,
            vec![(0, zip64_record(u64::MAX, 1 << 40, 56))],
            0,
        ),
        // The record in the middle; the directory claimed right before it, just over
        // the cap.
        (
            "32 MiB + 1 before the record",
            100 * MIB,
            vec![(90 * MIB, zip64_record(700_000, 32 * MIB + 1, 58 * MIB - 1))],
            90 * MIB,
        ),
    ];
    for (what, size, head, record_at) in cases {
        let path = sparse_zip(&dir.path().join("giant.ipsw"), size, &head, record_at);
        let url = files.serve("giant.ipsw", &path);
        files.clear_log();
        let (o, v) = run_json(
            &[
                &url,
                "--device",
                "iPhone9,3",
                "--json",
                "--hosts-file",
                NO_HOSTS,
                "--timeout",
                "10",
            ],
            Duration::from_secs(60),
        );
        assert_eq!(o.code, Some(10), "{what}: {v:#}");
        let message = first_problem(&v);
        assert!(
            message.contains("more than the 33554432 ipswcheck reads"),
            "{what}: {message}"
        );
        // The tail and the 56-byte record: nothing of the claimed directory.
        let sent = files.body_bytes_sent();
        assert!(sent < MIB, "{what}: the server sent {sent} bytes");
        assert!(files.log().len() <= 2, "{what}: {:?}", files.log());
        eprintln!(
            "{what}: exit 10 after {sent} body bytes in {} requests: {message}",
            files.log().len()
        );
    }
}

#[test]
fn the_zip_parser_cannot_fetch_more_than_one_directory_on_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let files = FileServer::start();
    // The locator points at bytes that are no zip64 record (zeros, or a record
    // signature with nothing sensible after it): the directory cannot be told from the
    // tail, so the zip parser looks for itself, through the same budget.
    for (what, head) in [
        ("zeros", vec![]),
        ("a bare signature", vec![(0u64, b"PK\x06\x06".to_vec())]),
    ] {
        let size = 200 * MIB;
        let path = sparse_zip(&dir.path().join("lost.ipsw"), size, &head, 0);
        let url = files.serve("lost.ipsw", &path);
        files.clear_log();
        let (o, v) = run_json(
            &[&url, "--json", "--hosts-file", NO_HOSTS, "--timeout", "10"],
            Duration::from_secs(60),
        );
        assert_eq!(o.code, Some(10), "{what}: {v:#}");
        let message = first_problem(&v);
        assert!(
            message.contains("no central directory within the 33554432 bytes"),
            "{what}: {message}"
        );
        let sent = files.body_bytes_sent();
        assert!(
            sent <= 32 * MIB + 2 * MIB,
            "{what}: the server sent {sent} bytes"
        );
        eprintln!(
            "{what}: exit 10 after {sent} body bytes in {} requests: {message}",
            files.log().len()
        );
    }
}

/// The seeds of the `remote_directory` fuzz target reach what they are meant to: the mini
/// IPSWs open remotely — with their directory and zip64 record in the tail or before it —
/// and the giant claim is refused by the cap.
#[test]
fn remote_fuzz_seeds_reach_the_directory_reader() {
    use ipswcheck::remote::{self, RemoteFile, TAIL_LEN};
    for seed in crate::util::seeds::all() {
        if seed.target != "remote_directory" {
            continue;
        }
        let file = remote::fuzz_file(&seed.bytes).unwrap();
        let size = file.len() as u64;
        let remote = RemoteFile::in_memory(seed.name, file);
        let opened = remote::open_url(&remote);
        if seed.name.starts_with("seed-mini-ipsw") {
            let ipsw = opened.unwrap_or_else(|e| panic!("{}: {e}", seed.name));
            assert!(ipsw.archive.entry("BuildManifest.plist").is_some());
            // "far": larger than the tail, read with more than one request.
            assert_eq!(
                size > TAIL_LEN,
                seed.name.ends_with("-far"),
                "{}",
                seed.name
            );
        } else {
            let e = opened.err().unwrap().to_string();
            assert!(e.contains("more than the 33554432"), "{}: {e}", seed.name);
        }
        eprintln!(
            "{}: {size} bytes, {} requests",
            seed.name,
            remote.requests()
        );
    }
}

/// The binary's exit code, stdout and peak resident memory (`VmHWM` of its own image:
/// util::measure), run with room for a scan's thread arenas; never a panic.
fn run_measured(args: &[&str]) -> (Option<i32>, String, u64) {
    let m = crate::util::measure::run_measured(args, 0, 2 << 30);
    assert!(!m.stderr.contains("panicked"), "{}", m.stderr);
    (m.code, m.stdout, m.peak)
}

/// A sparse file whose end record declares a central directory of `cd_size` bytes of
/// zeros at offset 1 MiB: fetched whole (it is under the cap), then found broken.
fn zero_directory(path: &Path, cd_size: u64) {
    let size = MIB + cd_size + 22;
    let f = std::fs::File::create(path).unwrap();
    f.set_len(size).unwrap();
    let mut eocd = b"PK\x05\x06".to_vec();
    eocd.extend_from_slice(&[0; 4]);
    eocd.extend_from_slice(&1u16.to_le_bytes());
    eocd.extend_from_slice(&1u16.to_le_bytes());
    eocd.extend_from_slice(&(cd_size as u32).to_le_bytes());
    eocd.extend_from_slice(&(MIB as u32).to_le_bytes());
    eocd.extend_from_slice(&[0; 2]);
    let mut f = f;
    f.seek(SeekFrom::Start(size - 22)).unwrap();
    f.write_all(&eocd).unwrap();
}

/// Peak memory of the worst concurrent network answers we can build: `scan --urls` runs
/// eight remote checks at once. (a) Eight servers each hand over a central directory
/// just under the 32 MiB cap; (b) eight IPSWs of distinct builds, so eight signing
/// questions at once, each answered by a TSS and an ipsw.me stand-in with a body just
/// under the 8 MiB cap, paused midway so that all are in memory together. Without the
/// process-wide budget (48 MiB) they would hold 256 MiB and 128 MiB; with it, a check
/// that would exceed it fails with a clear message and the others go on.
#[test]
fn eight_answers_just_under_their_caps_share_one_budget() {
    use crate::util::http::{self, Server};
    use ipswcheck_fixture::IpswSpec;
    let dir = tempfile::tempdir().unwrap();
    let files = FileServer::start();
    let apple_silent = crate::util::http::refused_addr();
    let common = |list: &Path, tss: &str, api: &str, cache: &Path| -> Vec<String> {
        let mut args = vec![
            "scan".to_owned(),
            "--urls".into(),
            list.to_str().unwrap().into(),
            "--format".into(),
            "json".into(),
        ];
        args.extend(network_flags(tss, api, "20", cache));
        args
    };

    // (a) Directories.
    let mut urls = String::new();
    for i in 0..8 {
        let path = dir.path().join(format!("dir{i}.ipsw"));
        zero_directory(&path, 32 * MIB - 1);
        urls.push_str(&files.serve(&format!("dir{i}.ipsw"), &path));
        urls.push('\n');
    }
    let list = dir.path().join("directories.txt");
    std::fs::write(&list, urls).unwrap();
    let refused = format!("http://{apple_silent}/x");
    let cache = dir.path().join("cache-a");
    let args = common(&list, &refused, &refused, &cache);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (code, out, rss) = run_measured(&args);
    let sent = files.body_bytes_sent();
    let budget = out.matches("budget for network answers").count();
    eprintln!(
        "(a) 8 directories of 32 MiB - 1: exit {code:?}, peak RSS {} MiB, {} MiB sent, {budget} checks refused by the budget",
        rss >> 20,
        sent >> 20
    );
    assert_checked_eight(code, &out);
    // 45 MiB measured, idle or loaded (393 MiB under load before the allocator gave large
    // frees back: budget::tune_allocator); never the 256 MiB the eight directories would
    // take without the budget.
    assert!(rss < 100 * MIB, "peak RSS {} MiB", rss >> 20);

    // (b) Signing answers.
    let big = Arc::new(vec![b'A'; (8 * MIB - 1) as usize]);
    let stand_in = {
        let big = Arc::clone(&big);
        Server::raw(move |mut tcp| {
            if http::read_request(&mut tcp).is_none() {
                return;
            }
            let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", big.len());
            let half = big.len() / 2;
            let _ = tcp
                .write_all(head.as_bytes())
                .and_then(|()| tcp.write_all(&big[..half]));
            std::thread::sleep(Duration::from_secs(2));
            let _ = tcp.write_all(&big[half..]);
        })
        .detach()
    };
    let mut urls = String::new();
    for i in 0..8 {
        let path = dir.path().join(format!("build{i}.ipsw"));
        IpswSpec {
            build: format!("19H37{i}"),
            ..IpswSpec::sample()
        }
        .build(&path)
        .unwrap();
        urls.push_str(&files.serve(&format!("build{i}.ipsw"), &path));
        urls.push('\n');
    }
    let list = dir.path().join("builds.txt");
    std::fs::write(&list, urls).unwrap();
    let cache = dir.path().join("cache-b");
    let args = common(&list, &tss_url(stand_in), &api_url(stand_in), &cache);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (code, out, rss) = run_measured(&args);
    let budget = out.matches("budget for network answers").count();
    eprintln!(
        "(b) 8 builds, TSS and ipsw.me answers of 8 MiB - 1: exit {code:?}, peak RSS {} MiB, {budget} mentions of the budget",
        rss >> 20
    );
    assert_checked_eight(code, &out);
    assert!(rss < 128 * MIB, "peak RSS {} MiB", rss >> 20);
}

/// The scan ran (not a usage error), found nothing ready, and accounted for all eight
/// URLs: reports, or unreadable with the reason.
fn assert_checked_eight(code: Option<i32>, out: &str) {
    assert!(
        matches!(code, Some(c) if c != 2 && c != 0),
        "exit {code:?}: {out}"
    );
    let v: serde_json::Value = serde_json::from_str(out).unwrap();
    let count = |a: &serde_json::Value| a.as_array().map_or(0, Vec::len);
    let reported = count(&v["files"]) + count(&v["summary"]["unreadable"]);
    assert_eq!(reported, 8, "{v:#}");
}
