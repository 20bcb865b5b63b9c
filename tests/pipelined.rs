//! The pipelined verification of a large deflated entry (`verify::pipeline`: one worker
//! inflates, the others hash) reports exactly what the one-core pass reports, for good
//! and damaged files, whatever the number of workers. No timing here: BENCHMARKS.md.

use std::fs::OpenOptions;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;

use ipswcheck::check::ExpectedChecksum;
use ipswcheck::digest::DigestAlgorithm;
use ipswcheck::report::{CheckStatus, Report, Verdict};
use ipswcheck::verify::ComponentStatus;
use ipswcheck_fixture::IpswSpec;

use crate::util::*;

/// The benchmark preset at a scale where the OS image (~19 MB, deflated) is above the
/// pipelining threshold and dominates the rest of the file.
const SCALE: f64 = 0.008;

fn check_on(threads: usize, path: &Path, options: &ipswcheck::check::CheckOptions) -> Report {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .expect("thread pool")
        .install(|| check(path, options))
}

/// The same report (as JSON) on 1, 2 and 3 workers; returns it.
fn same_on_any_pool(path: &Path, options: &ipswcheck::check::CheckOptions) -> Report {
    let one = check_on(1, path, options);
    let want = one.to_json();
    for threads in [2, 3] {
        let got = check_on(threads, path, options).to_json();
        let diff: Vec<String> = want
            .lines()
            .zip(got.lines())
            .filter(|(a, b)| a != b)
            .map(|(a, b)| format!("1 worker: {a}\n{threads} workers: {b}"))
            .collect();
        assert!(
            diff.is_empty() && want.lines().count() == got.lines().count(),
            "{threads} workers report differently:\n{}",
            diff.join("\n")
        );
    }
    one
}

fn flip_byte(path: &Path, offset: u64) {
    let mut f = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .unwrap();
    f.seek(SeekFrom::Start(offset)).unwrap();
    let mut b = [0u8];
    f.read_exact(&mut b).unwrap();
    f.seek(SeekFrom::Start(offset)).unwrap();
    f.write_all(&[b[0] ^ 0x55]).unwrap();
}

#[test]
fn a_good_file_is_ready_on_any_number_of_workers() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bench.ipsw");
    let layout = IpswSpec::benchmark(SCALE).build(&path).unwrap();
    let os = layout.component_entry(0, "OS").unwrap();
    assert!(os.uncompressed_size > 16 << 20, "the OS must be pipelined");
    for device in [Some("iPhone9,3"), None] {
        let report = same_on_any_pool(&path, &options(device));
        assert_eq!(report.verdict, Verdict::Ready, "{}", report.render(true));
        assert_eq!(status_of(&report, "OS"), ComponentStatus::Ok);
    }
    // With a whole-file SHA-1 job in the same queue.
    let sha1 = DigestAlgorithm::Sha1.digest(&std::fs::read(&path).unwrap());
    let mut opts = options(Some("iPhone9,3"));
    opts.expected = Some(ExpectedChecksum {
        algorithm: DigestAlgorithm::Sha1,
        digest: sha1,
    });
    // Which components end "covered by the whole-file SHA-1" rather than hashed depends on
    // which job finishes first (verify::shortcut), so only the answer must not depend on
    // the pool: the verdict, the checksum and every component ok.
    for threads in [1, 2, 3] {
        let report = check_on(threads, &path, &opts);
        assert_eq!(report.checks.checksum.status, CheckStatus::Ok, "{threads}");
        assert_eq!(report.verdict, Verdict::Ready, "{threads}");
        assert_eq!(report.exit_code, 0, "{threads}");
        assert_eq!(status_of(&report, "OS"), ComponentStatus::Ok, "{threads}");
    }
}

#[test]
fn damage_anywhere_in_the_pipelined_entry_is_found_on_any_number_of_workers() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.ipsw");
    let layout = IpswSpec::benchmark(SCALE).build(&good).unwrap();
    let os = layout.component_entry(0, "OS").unwrap().clone();
    // Early (first piece), middle, and in the last bytes of the deflate stream.
    for at in [100, os.compressed_size / 2, os.compressed_size - 3] {
        let path = dir.path().join(format!("bad-{at}.ipsw"));
        std::fs::copy(&good, &path).unwrap();
        flip_byte(&path, os.data_offset + at);
        let report = same_on_any_pool(&path, &options(Some("iPhone9,3")));
        assert_ne!(report.verdict, Verdict::Ready, "flip at {at}");
        assert_eq!(
            status_of(&report, "OS"),
            ComponentStatus::Mismatch,
            "flip at {at}"
        );
        assert_eq!(
            report.checks.archive.status,
            CheckStatus::Fail,
            "flip at {at}"
        );
    }
}
