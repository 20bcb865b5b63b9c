//! Hashing throughput on one core: the manifest algorithms through each backend of
//! `ipswcheck::digest::Hasher` (RustCrypto, and aws-lc with the default `aws-lc`
//! feature: the numbers BENCHMARKS.md chooses by), and CRC-32 (crc32fast), fed in chunks
//! of the sizes the check uses. (aws-lc is also what `openssl dgst` runs, OpenSSL
//! lineage; compare.sh measures `openssl dgst` itself.)
//!
//! ```text
//! cargo bench --bench hashing
//! ```

use divan::counter::BytesCount;
use divan::{black_box, Bencher};
use ipswcheck::digest::{Backend, DigestAlgorithm, Hasher};

fn main() {
    divan::main();
}

/// 8 MiB of near-random data: bigger than L2, the size class of the data the check hashes.
const LEN: usize = 8 << 20;

fn data() -> Vec<u8> {
    ipswcheck_fixture::rng::Rng::new(0x5EED).bytes(LEN)
}

/// The hash is fed in chunks of this size (the inflate buffer / stored slice sizes).
const CHUNKS: &[usize] = &[64 << 10, 256 << 10, 1 << 20];

/// Every algorithm through every backend (`ipswcheck::digest::Backend`): the numbers
/// `Backend::fastest` is chosen by.
#[divan::bench(consts = [0, 1, 2], args = BACKENDS)]
fn hash<const ALG: usize>(bencher: Bencher, backend: &str) {
    let algorithm = [
        DigestAlgorithm::Sha1,
        DigestAlgorithm::Sha256,
        DigestAlgorithm::Sha384,
    ][ALG];
    let Some(&backend) = Backend::all().iter().find(|b| b.name() == backend) else {
        return;
    };
    let data = data();
    bencher.counter(BytesCount::new(LEN)).bench_local(|| {
        let mut h = Hasher::with_backend(algorithm, backend);
        for c in data.chunks(1 << 20) {
            h.update(black_box(c));
        }
        h.finish()
    });
}

const BACKENDS: &[&str] = &["rustcrypto", "aws-lc"];

#[divan::bench(args = CHUNKS)]
fn sha384_fastest_chunk(bencher: Bencher, chunk: usize) {
    let data = data();
    bencher.counter(BytesCount::new(LEN)).bench_local(|| {
        let mut h = DigestAlgorithm::Sha384.hasher();
        for c in data.chunks(chunk) {
            h.update(black_box(c));
        }
        h.finish()
    });
}

#[divan::bench(args = CHUNKS)]
fn crc32(bencher: Bencher, chunk: usize) {
    let data = data();
    bencher.counter(BytesCount::new(LEN)).bench_local(|| {
        let mut h = crc32fast::Hasher::new();
        for c in data.chunks(chunk) {
            h.update(black_box(c));
        }
        h.finalize()
    });
}

/// CRC-32 of two halves on two threads, combined: the parallel CRC of a stored entry.
#[divan::bench]
fn crc32_two_halves_combined(bencher: Bencher) {
    let data = data();
    bencher.counter(BytesCount::new(LEN)).bench_local(|| {
        let (a, b) = data.split_at(LEN / 2);
        let (ha, hb) = std::thread::scope(|s| {
            let t = s.spawn(|| {
                let mut h = crc32fast::Hasher::new();
                h.update(b);
                h
            });
            let mut h = crc32fast::Hasher::new();
            h.update(a);
            (h, t.join().expect("crc thread"))
        });
        let mut h = ha;
        h.combine(&hb);
        h.finalize()
    });
}
