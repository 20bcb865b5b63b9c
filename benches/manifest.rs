//! Manifest parsing and the `--quick` path: `BuildManifest::from_bytes` on the synthetic
//! sample, on the benchmark preset's manifest (4 identities × ~130 components, 1.2 MB of
//! XML), and on a real Apple manifest when `../shared/realdata` is present; plus
//! `open_ipsw` (map, central directory, manifest) and a whole quick check of the sample.
//!
//! ```text
//! cargo bench --bench manifest
//! ```

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use divan::counter::BytesCount;
use divan::{black_box, Bencher};
use ipswcheck::check::{self, open_ipsw, CheckOptions, Progress};
use ipswcheck::manifest::{BuildManifest, RestoreBehavior};
use ipswcheck::signing::SigningOptions;
use ipswcheck_fixture::IpswSpec;

fn main() {
    divan::main();
}

fn sample_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/sample.ipsw")
}

/// A benchmark-preset IPSW at a tiny scale: the full manifest, 1 KB files.
fn tiny_bench_ipsw() -> &'static Path {
    static PATH: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    &PATH
        .get_or_init(|| {
            let dir = tempfile::tempdir().expect("tempdir");
            let path = dir.path().join("bench-tiny.ipsw");
            IpswSpec::benchmark(1e-6).build(&path).expect("fixture");
            (dir, path)
        })
        .1
}

fn manifest_bytes(path: &Path) -> Vec<u8> {
    let archive = ipswcheck::archive::Archive::open(path).expect("archive");
    let entry = archive.entry("BuildManifest.plist").expect("manifest");
    archive.read_small(entry, 64 << 20).expect("read")
}

#[divan::bench]
fn parse_sample_manifest(bencher: Bencher) {
    let bytes = manifest_bytes(&sample_path());
    bencher
        .counter(BytesCount::new(bytes.len()))
        .bench_local(|| BuildManifest::from_bytes(black_box(&bytes)).expect("parses"));
}

#[divan::bench]
fn parse_benchmark_manifest(bencher: Bencher) {
    let bytes = manifest_bytes(tiny_bench_ipsw());
    bencher
        .counter(BytesCount::new(bytes.len()))
        .bench_local(|| BuildManifest::from_bytes(black_box(&bytes)).expect("parses"));
}

/// A real 4-device iOS 13.5.1 manifest (593 KB), when the shared reference data is here.
#[divan::bench]
fn parse_real_manifest(bencher: Bencher) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(
        "../shared/realdata/iPhone9,1_iPhone9,3_iPhone10,1_iPhone10,4_13.5.1_17F80/BuildManifest.plist",
    );
    let Ok(bytes) = std::fs::read(&path) else {
        eprintln!("skipped: {} is absent", path.display());
        return;
    };
    bencher
        .counter(BytesCount::new(bytes.len()))
        .bench_local(|| BuildManifest::from_bytes(black_box(&bytes)).expect("parses"));
}

/// Map + central directory + manifest (+ Restore.plist): the fixed cost of every check.
#[divan::bench]
fn open_benchmark_ipsw(bencher: Bencher) {
    let path = tiny_bench_ipsw();
    bencher.bench_local(|| open_ipsw(black_box(path)).expect("opens"));
}

/// A whole `--quick --offline` check of the benchmark-preset IPSW, in-process.
#[divan::bench]
fn quick_check_benchmark_ipsw(bencher: Bencher) {
    let path = tiny_bench_ipsw();
    let options = CheckOptions {
        device: None,
        behavior: RestoreBehavior::Erase,
        quick: true,
        expected: None,
        signing: SigningOptions {
            offline: true,
            ..SigningOptions::from_env()
        },
    };
    bencher.bench_local(|| check::check_file(black_box(path), &options, &Progress::default()));
}
