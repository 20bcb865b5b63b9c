//! Bounded memory, as tests: the binary runs under an address-space limit (what
//! `prlimit --as` sets, applied here with `setrlimit` before `exec`) and must still end
//! with the right exit code.
//!
//! Why address space, and why "file size + 400 MB": `RLIMIT_AS` is the only memory limit
//! a process can be given without cgroups, and it counts every mapping — including the
//! read-only map of the IPSW itself, whose pages are the kernel's page cache, not the
//! process's memory. So the limit is the file's size plus a fixed allowance for
//! everything else: code, thread stacks (8 MiB main, 2 MiB per worker), glibc's
//! per-thread malloc arenas (64 MiB of reserved address space each, mostly untouched),
//! the 256 KiB inflate buffers and the parsed manifest. 400 MB covers that on a 2-core
//! machine with room to spare; a leak proportional to the data (reading an entry into
//! memory, inflating a bomb into a buffer) would not fit.
//!
//! The large fixture: `IpswSpec::benchmark_stored(scale)`, every entry stored (the
//! fastest preset to build: no deflate), about 2.9 GB at scale 1.0. Under `CI=true` it is
//! built at full size; elsewhere at scale 0.1 (about 290 MB) unless
//! `IPSWCHECK_LIMITS_SCALE` says otherwise. It is built once, in a temporary directory,
//! and deleted when the test ends.

use std::path::Path;
use std::time::{Duration, Instant};

use ipswcheck_fixture::IpswSpec;

use crate::util::robust::*;

/// Address space allowed on top of the file's size.
const ALLOWANCE: u64 = 400 << 20;

fn limited_check(path: &Path, extra: &[&str]) -> Outcome {
    let size = std::fs::metadata(path).unwrap().len();
    run_limited(
        &offline_args(path, extra),
        &Limits {
            wall: Some(Duration::from_secs(600)),
            address_space: Some(size + ALLOWANCE),
            ..Limits::default()
        },
    )
}

#[test]
fn deflate_bombs_are_checked_within_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    let (_, _, items) = sample(dir.path());
    let size = 8u64 << 30;
    let bomb = zero_bomb(size);
    let crc = crc_of_zeros(size);
    let entry = |declared: u64, crc: u32| RawItem {
        name: b"Firmware/dfu/bomb.im4p".to_vec(),
        method: 8,
        flags: 0,
        crc,
        csize: bomb.len() as u64,
        usize: declared,
        data: bomb.clone(),
    };
    // Declared 1 MiB, inflates to 8 GiB: stopped at the declared size.
    let lying = write(
        dir.path(),
        "bomb.ipsw",
        &sample_plus(&items, &[entry(1 << 20, crc_of_zeros(1 << 20))]),
    );
    let o = limited_check(&lying, &[]);
    o.assert_code("a lying deflate bomb under the limit", 10);
    assert!(
        o.stdout.contains("inflates beyond its declared size"),
        "{}",
        o.stdout
    );
    eprintln!(
        "lying bomb (8 MB → 8 GiB, declared 1 MiB), limit file + 400 MB: exit 10 in {:?}",
        o.elapsed
    );

    // Declared honestly as 8 GiB (zip64): inflated and CRC-checked in full, through one
    // 256 KiB buffer.
    let all = [items.as_slice(), &[entry(size, crc)]].concat();
    let honest = write(dir.path(), "honest.ipsw", &rezip(&all, true));
    let o = limited_check(&honest, &["--json"]);
    assert_eq!(o.code, Some(0), "{}\n{}", o.stdout, o.stderr);
    let v: serde_json::Value = serde_json::from_str(&o.stdout).unwrap();
    assert_eq!(v["checks"]["archive"]["status"], "ok");
    eprintln!(
        "honest bomb (8 MB → 8 GiB, declared 8 GiB), limit file + 400 MB: exit 0 in {:?}",
        o.elapsed
    );
}

fn scale() -> f64 {
    if let Some(s) = std::env::var("IPSWCHECK_LIMITS_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        return s;
    }
    if std::env::var("CI").as_deref() == Ok("true") {
        1.0
    } else {
        0.1
    }
}

#[test]
fn a_multi_gigabyte_ipsw_is_checked_within_the_limit() {
    let scale = scale();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.ipsw");
    let started = Instant::now();
    IpswSpec::benchmark_stored(scale).build(&path).unwrap();
    let built = started.elapsed();
    let size = std::fs::metadata(&path).unwrap().len();
    // A whole-file SHA-1 that cannot match: the run reads every byte twice (components
    // and whole file) and must report only the checksum.
    let o = limited_check(&path, &["--json", "--sha1", &"00".repeat(20)]);
    o.assert_clean("the big fixture");
    let v: serde_json::Value = serde_json::from_str(&o.stdout).unwrap();
    assert_eq!(o.code, Some(12), "{v:#}");
    assert_eq!(v["checks"]["archive"]["status"], "ok");
    assert_eq!(v["checks"]["components"]["status"], "ok");
    assert_eq!(v["checks"]["checksum"]["status"], "fail");
    eprintln!(
        "benchmark_stored({scale}): {:.2} GB built in {built:?}, checked under a limit of \
         file + 400 MB in {:?} (exit 12 as asked, every component ok)",
        size as f64 / 1e9,
        o.elapsed
    );
    drop(dir);
}
