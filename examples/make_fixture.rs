//! Write a fixture IPSW.
//!
//! ```text
//! cargo run --release --example make_fixture -- OUT.ipsw [--preset NAME] [--scale F]
//! ```
//!
//! Presets: `sample` (default; the committed `testdata/sample.ipsw`), `a9-sample`,
//! `img3-sample`, `bench`, `bench-sha1`, `bench-stored`, and the era presets `modern`
//! (stored 2 GiB OS, deflated Cryptex1 DMGs and ramdisks, SHA-384), `modern-xN` (`modern`
//! with N stored images of the OS's size), `ios18` (`.dmg.aea` images) and `legacy10`
//! (deflated OS, SHA-1). `--scale` multiplies the sizes of the `bench*` and era presets
//! (1.0 ≈ 2.9 GB of content for `bench`, ≈ 2.8 GB for `modern`).

use std::process::ExitCode;
use std::time::Instant;

use ipswcheck_fixture::IpswSpec;

const USAGE: &str = "usage: make_fixture OUT.ipsw [--preset sample|a9-sample|img3-sample|bench|bench-sha1|bench-stored|modern|modern-xN|ios18|legacy10] [--scale F]";

fn main() -> ExitCode {
    let mut out = None;
    let mut preset = "sample".to_owned();
    let mut scale = 1.0f64;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--preset" => match args.next() {
                Some(p) => preset = p,
                None => return usage("--preset needs a value"),
            },
            "--scale" => match args.next().and_then(|s| s.parse::<f64>().ok()) {
                Some(s) if s > 0.0 && s.is_finite() => scale = s,
                _ => return usage("--scale needs a positive number"),
            },
            "-h" | "--help" => {
                println!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            _ if arg.starts_with('-') => return usage(&format!("unknown option {arg}")),
            _ if out.is_none() => out = Some(arg),
            _ => return usage(&format!("unexpected argument {arg}")),
        }
    }
    let Some(out) = out else {
        return usage("missing OUT.ipsw");
    };
    let spec = match preset.as_str() {
        "sample" => IpswSpec::sample(),
        "a9-sample" => IpswSpec::a9_sample(),
        "img3-sample" => IpswSpec::img3_sample(),
        "bench" => IpswSpec::benchmark(scale),
        "bench-sha1" => IpswSpec::benchmark_sha1(scale),
        "bench-stored" => IpswSpec::benchmark_stored(scale),
        "modern" => IpswSpec::modern(scale),
        "ios18" => IpswSpec::ios18(scale),
        "legacy10" => IpswSpec::legacy10(scale),
        other => match other.strip_prefix("modern-x").map(str::parse::<usize>) {
            Some(Ok(n)) if (1..=16).contains(&n) => IpswSpec::modern_stored_images(scale, n),
            _ => return usage(&format!("unknown preset {other}")),
        },
    };
    let start = Instant::now();
    match spec.build(&out) {
        Ok(layout) => {
            let secs = start.elapsed().as_secs_f64();
            println!(
                "{}  {} bytes ({:.1} MB)  {} entries  {} identities  {:.2} s",
                layout.path.display(),
                layout.file_size,
                layout.file_size as f64 / 1e6,
                layout.zip.entries.len(),
                layout.identities.len(),
                secs
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("make_fixture: {out}: {e}");
            ExitCode::FAILURE
        }
    }
}

fn usage(msg: &str) -> ExitCode {
    eprintln!("make_fixture: {msg}\n{USAGE}");
    ExitCode::from(2)
}
