//! The speed limit L of a full check on this machine, measured in-process.
//!
//! ```text
//! cargo run --release --example limit -- FILE.ipsw [--device iPhone9,3] [--samples N] [--cores N] [--kv]
//! ```
//!
//! A full check inflates every entry (checking its CRC-32) and hashes every component
//! file with its manifest algorithm. One SHA stream, and one deflate stream, cannot be
//! split, so (BENCHMARKS.md; all figures are CPU time of the measuring thread, medians
//! of `--samples` runs, so that other processes on a shared machine do not count):
//!
//! - `T_big`: inflate + CRC-32 + hash of the largest entry, on one core;
//! - `T_all`: the same for every entry, one after the other, on one core;
//! - `L = max(T_big, T_all / cores)`: the issue's limit;
//! - `L_pipe = max(inflate_big, hash_big, T_all / cores)`: the floor when the inflate
//!   and the hash of the largest entry run on two different cores (a pipeline), which
//!   is what ipswcheck does with large entries.
//!
//! The work list is made from the library's public API the way `verify` makes it:
//! every non-directory entry is streamed through [`EntryStream`] (inflate, CRC-32, size
//! check), and every entry a component of the chosen identities names is hashed with
//! each algorithm its Digests imply. Timing covers only the streaming and hashing
//! (the mapping's pages are touched once first, so the file is read from the page
//! cache, as in the warm-cache benchmark). `--kv` prints `key=value` lines for
//! `benches/compare.sh`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use ipswcheck::archive::{Archive, Entry, Method};
use ipswcheck::check::open_ipsw;
use ipswcheck::device;
use ipswcheck::digest::DigestAlgorithm;
use ipswcheck::identify;
use ipswcheck::manifest::RestoreBehavior;

const USAGE: &str =
    "usage: limit FILE.ipsw [--device PRODUCT_TYPE] [--samples N] [--cores N] [--kv]";

struct Args {
    file: PathBuf,
    device: Option<String>,
    samples: usize,
    cores: usize,
    kv: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut file = None;
    let mut device = None;
    let mut samples = 3usize;
    let mut cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut kv = false;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--device" => device = Some(args.next().ok_or("--device needs a value")?),
            "--samples" => {
                samples = args
                    .next()
                    .and_then(|s| s.parse().ok())
                    .filter(|&n| n > 0)
                    .ok_or("--samples needs a positive integer")?
            }
            "--cores" => {
                cores = args
                    .next()
                    .and_then(|s| s.parse().ok())
                    .filter(|&n| n > 0)
                    .ok_or("--cores needs a positive integer")?
            }
            "--kv" => kv = true,
            "-h" | "--help" => return Err(String::new()),
            _ if arg.starts_with('-') => return Err(format!("unknown option {arg}")),
            _ if file.is_none() => file = Some(PathBuf::from(arg)),
            _ => return Err(format!("unexpected argument {arg}")),
        }
    }
    Ok(Args {
        file: file.ok_or("missing FILE.ipsw")?,
        device,
        samples,
        cores,
        kv,
    })
}

/// CPU time of the calling thread. The limit is a single-core figure, so it is timed in
/// CPU time: another process taking turns on this core (a compiler on a shared machine)
/// does not inflate it, as it would a wall-clock time.
fn cpu_now() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid timespec to fill in.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// One entry's share of a full check.
struct Job<'a> {
    entry: &'a Entry,
    algorithms: Vec<DigestAlgorithm>,
}

/// Time spent in each phase of streaming one entry.
#[derive(Default, Clone, Copy)]
struct Phases {
    /// Inflate (or slice) + CRC-32 + size check: everything `EntryStream` does.
    stream: Duration,
    /// The hashers' `update` calls.
    hash: Duration,
    total: Duration,
}

fn run_job(archive: &Archive, job: &Job<'_>, time_phases: bool) -> Phases {
    let mut hashers: Vec<_> = job.algorithms.iter().map(|a| a.hasher()).collect();
    let start = cpu_now();
    let mut phases = Phases::default();
    let mut stream = archive.stream(job.entry).expect("entry opens");
    loop {
        let t0 = time_phases.then(cpu_now);
        let Some(chunk) = stream.next_chunk().expect("entry is intact") else {
            break;
        };
        let t1 = time_phases.then(cpu_now);
        for h in &mut hashers {
            h.update(chunk);
        }
        if let (Some(t0), Some(t1)) = (t0, t1) {
            phases.stream += t1 - t0;
            phases.hash += cpu_now() - t1;
        }
    }
    for h in hashers {
        std::hint::black_box(h.finish());
    }
    phases.total = cpu_now() - start;
    phases
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            if e.is_empty() {
                println!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            eprintln!("limit: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let ipsw = match open_ipsw(&args.file) {
        Ok(i) => i,
        Err(e) => {
            eprintln!("limit: {}: {e}", args.file.display());
            return ExitCode::FAILURE;
        }
    };
    let boards = match args.device.as_deref().map(|d| device::resolve(d, None)) {
        None => None,
        Some(Ok(b)) => Some(b),
        Some(Err(e)) => {
            eprintln!("limit: {e}");
            return ExitCode::from(2);
        }
    };
    let identities = identify::select(&ipsw.manifest, boards.as_deref(), RestoreBehavior::Erase)
        .unwrap_or_else(|_| identify::customer_identities(&ipsw.manifest, RestoreBehavior::Erase));

    // The algorithms each path is hashed with (one stream per algorithm, as `verify`).
    let mut wanted: BTreeMap<&str, BTreeSet<DigestAlgorithm>> = BTreeMap::new();
    for id in &identities {
        for c in &id.components {
            let (Some(path), Some(digest)) = (c.path.as_deref(), c.digest.as_deref()) else {
                continue;
            };
            if c.is_ftab || c.name.starts_with("eUICC,") || c.name == "SE,UpdatePayload" {
                continue;
            }
            if let Some(a) = DigestAlgorithm::from_digest_len(digest.len()) {
                wanted.entry(path).or_default().insert(a);
            }
        }
    }
    let archive = &ipsw.archive;
    let mut jobs: Vec<Job<'_>> = archive
        .entries()
        .iter()
        .filter(|e| !e.is_dir)
        .map(|e| Job {
            entry: e,
            algorithms: wanted
                .get(e.name.as_str())
                .map(|s| s.iter().copied().collect())
                .unwrap_or_default(),
        })
        .collect();
    jobs.sort_by_key(|j| std::cmp::Reverse(j.entry.compressed_size));
    let Some(big) = jobs.first() else {
        eprintln!("limit: no entries");
        return ExitCode::FAILURE;
    };

    // Warm the page cache through the mapping (and fault its pages in once).
    let warm = cpu_now();
    let mut sum = 0u64;
    for page in archive.bytes().chunks(4096) {
        sum = sum.wrapping_add(page[0] as u64);
    }
    std::hint::black_box(sum);
    let warm = cpu_now() - warm;

    let big_name = big.entry.name.clone();
    let big_method = match big.entry.method {
        Method::Stored => "stored",
        Method::Deflated => "deflated",
        Method::Other(_) => "other",
    };
    let algos: Vec<&str> = big.algorithms.iter().map(|a| a.name()).collect();

    let mut big_totals = Vec::new();
    let mut big_stream = Vec::new();
    let mut big_hash = Vec::new();
    let mut rest = Vec::new();
    for _ in 0..args.samples {
        let p = run_job(archive, big, true);
        big_stream.push(p.stream);
        big_hash.push(p.hash);
        // The untimed-phase run is the figure: per-chunk clocks cost a little.
        big_totals.push(run_job(archive, big, false).total);
        let t = cpu_now();
        for job in &jobs[1..] {
            run_job(archive, job, false);
        }
        rest.push(cpu_now() - t);
    }
    // Whole-file SHA-1 (`--sha1`), one core.
    let mut whole = Vec::new();
    for _ in 0..args.samples {
        let t = cpu_now();
        let mut h = DigestAlgorithm::Sha1.hasher();
        for chunk in archive.bytes().chunks(4 << 20) {
            h.update(chunk);
        }
        std::hint::black_box(h.finish());
        whole.push(cpu_now() - t);
    }

    let t_big = median(big_totals);
    let stream_big = median(big_stream);
    let hash_big = median(big_hash);
    let t_rest = median(rest);
    let t_all = t_big + t_rest;
    let whole = median(whole);
    let cores = args.cores as f64;
    let l = secs(t_big).max(secs(t_all) / cores);
    let l_pipe = secs(stream_big)
        .max(secs(hash_big))
        .max(secs(t_all) / cores);
    let l_sha1 = secs(t_big).max((secs(t_all) + secs(whole)) / cores);
    let l_pipe_sha1 = secs(stream_big)
        .max(secs(hash_big))
        .max((secs(t_all) + secs(whole)) / cores);
    let out_mb = big.entry.size as f64 / 1e6;

    if args.kv {
        println!("file={}", args.file.display());
        println!("file_bytes={}", archive.len());
        println!("entries={}", jobs.len());
        println!("cores={}", args.cores);
        println!("samples={}", args.samples);
        println!("big_entry={big_name}");
        println!("big_method={big_method}");
        println!("big_bytes={}", big.entry.size);
        println!("big_algorithms={}", algos.join(","));
        println!("big_stream_s={:.4}", secs(stream_big));
        println!("big_hash_s={:.4}", secs(hash_big));
        println!("t_big_s={:.4}", secs(t_big));
        println!("t_all_s={:.4}", secs(t_all));
        println!("whole_sha1_s={:.4}", secs(whole));
        println!("L_s={l:.4}");
        println!("L_pipe_s={l_pipe:.4}");
        println!("L_sha1_s={l_sha1:.4}");
        println!("L_pipe_sha1_s={l_pipe_sha1:.4}");
        println!("warm_s={:.4}", secs(warm));
    } else {
        println!(
            "{}: {:.1} MB, {} entries, {} identit{}, {} cores, median of {}",
            args.file.display(),
            archive.len() as f64 / 1e6,
            jobs.len(),
            identities.len(),
            if identities.len() == 1 { "y" } else { "ies" },
            args.cores,
            args.samples
        );
        println!(
            "largest entry {big_name} ({big_method}, {out_mb:.1} MB out, hashed with {}):",
            if algos.is_empty() {
                "nothing".to_owned()
            } else {
                algos.join("+")
            }
        );
        let rate = |d: Duration| out_mb / 1e3 / secs(d);
        println!(
            "  inflate+CRC      {:>8.3} s  {:>5.2} GB/s",
            secs(stream_big),
            rate(stream_big)
        );
        println!(
            "  hash             {:>8.3} s  {:>5.2} GB/s",
            secs(hash_big),
            rate(hash_big)
        );
        println!(
            "  fused (T_big)    {:>8.3} s  {:>5.2} GB/s",
            secs(t_big),
            rate(t_big)
        );
        println!("all entries, one core (T_all) {:>8.3} s", secs(t_all));
        println!(
            "whole-file SHA-1, one core    {:>8.3} s  {:>5.2} GB/s",
            secs(whole),
            archive.len() as f64 / 1e9 / secs(whole)
        );
        println!("L      = max(T_big, T_all/cores)                         = {l:.3} s");
        println!("L_pipe = max(inflate_big, hash_big, T_all/cores)         = {l_pipe:.3} s");
        println!("with --sha1: L = {l_sha1:.3} s, L_pipe = {l_pipe_sha1:.3} s");
    }
    ExitCode::SUCCESS
}
