//! Hashing throughput on one core: the manifest algorithms through
//! `ipswcheck::digest::Hasher` (RustCrypto), SHA-384 through aws-lc and, with
//! `--features openssl`, OpenSSL (the backends BENCHMARKS.md weighs), and CRC-32
//! (crc32fast), fed in chunks of the sizes the check uses.
//!
//! ```text
//! cargo bench --bench hashing [--features openssl]
//! ```

use divan::counter::BytesCount;
use divan::{black_box, Bencher};
use ipswcheck::digest::DigestAlgorithm;

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

#[divan::bench(args = [DigestAlgorithm::Sha1, DigestAlgorithm::Sha256, DigestAlgorithm::Sha384])]
fn rustcrypto(bencher: Bencher, algorithm: DigestAlgorithm) {
    let data = data();
    bencher.counter(BytesCount::new(LEN)).bench_local(|| {
        let mut h = algorithm.hasher();
        for c in data.chunks(1 << 20) {
            h.update(black_box(c));
        }
        h.finish()
    });
}

#[divan::bench(args = CHUNKS)]
fn sha384_rustcrypto_chunk(bencher: Bencher, chunk: usize) {
    let data = data();
    bencher.counter(BytesCount::new(LEN)).bench_local(|| {
        let mut h = DigestAlgorithm::Sha384.hasher();
        for c in data.chunks(chunk) {
            h.update(black_box(c));
        }
        h.finish()
    });
}

#[cfg(feature = "openssl")]
#[divan::bench]
fn sha384_openssl(bencher: Bencher) {
    let data = data();
    bencher.counter(BytesCount::new(LEN)).bench_local(|| {
        let mut h = openssl::sha::Sha384::new();
        for c in data.chunks(1 << 20) {
            h.update(black_box(c));
        }
        h.finish()
    });
}

#[divan::bench]
fn sha384_aws_lc(bencher: Bencher) {
    let data = data();
    bencher.counter(BytesCount::new(LEN)).bench_local(|| {
        let mut h = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA384);
        for c in data.chunks(1 << 20) {
            h.update(black_box(c));
        }
        h.finish()
    });
}

#[cfg(feature = "openssl")]
#[divan::bench]
fn sha1_openssl(bencher: Bencher) {
    let data = data();
    bencher.counter(BytesCount::new(LEN)).bench_local(|| {
        let mut h = openssl::sha::Sha1::new();
        for c in data.chunks(1 << 20) {
            h.update(black_box(c));
        }
        h.finish()
    });
}

#[divan::bench]
fn sha1_aws_lc(bencher: Bencher) {
    let data = data();
    bencher.counter(BytesCount::new(LEN)).bench_local(|| {
        let mut h = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY);
        for c in data.chunks(1 << 20) {
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
