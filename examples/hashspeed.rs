//! Single-core hash throughput of every backend of `ipswcheck::digest`, in CPU time.
//!
//! ```text
//! cargo run --release --example hashspeed [-- --mib 256 --samples 5]
//! ```
//!
//! Prints `alg backend GB/s` lines, median of N samples. Throughput is bytes over the
//! hashing thread's CPU time (CLOCK_THREAD_CPUTIME_ID), not wall time: on a machine that
//! other work shares (BENCHMARKS.md), a wall-clock figure measures the neighbours. This
//! is what `Backend::fastest` was chosen by.

use std::time::Duration;

use ipswcheck::digest::{Backend, DigestAlgorithm, Hasher};

fn thread_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec we own.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

fn main() {
    let mut mib = 256usize;
    let mut samples = 5usize;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let v = args.next().and_then(|v| v.parse().ok());
        match (a.as_str(), v) {
            ("--mib", Some(v)) => mib = v,
            ("--samples", Some(v)) => samples = v,
            _ => {
                eprintln!("usage: hashspeed [--mib N] [--samples N]");
                std::process::exit(2);
            }
        }
    }
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    let data: Vec<u8> = (0..mib << 20)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    for alg in [
        DigestAlgorithm::Sha1,
        DigestAlgorithm::Sha256,
        DigestAlgorithm::Sha384,
    ] {
        for &backend in Backend::all() {
            let mut rates: Vec<f64> = (0..samples)
                .map(|_| {
                    let start = thread_cpu();
                    let mut h = Hasher::with_backend(alg, backend);
                    for c in data.chunks(1 << 20) {
                        h.update(c);
                    }
                    std::hint::black_box(h.finish());
                    data.len() as f64 / (thread_cpu() - start).as_secs_f64() / 1e9
                })
                .collect();
            rates.sort_by(f64::total_cmp);
            let chosen = if Backend::fastest(alg) == backend {
                " (chosen)"
            } else {
                ""
            };
            println!(
                "{:<7} {:<11} {:.3} GB/s{chosen}",
                alg.label(),
                backend.name(),
                rates[rates.len() / 2]
            );
        }
    }
}
