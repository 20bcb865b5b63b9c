//! Helpers shared by the integration tests: finding ../shared, zipping real Apple files
//! into IPSWs with the `zip` crate (an implementation independent of ours), running the
//! library check offline, and running the binary.
#![allow(dead_code)]

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use ipswcheck::check::{self, CheckOptions, Progress};
use ipswcheck::device;
use ipswcheck::manifest::RestoreBehavior;
use ipswcheck::report::Report;
use ipswcheck::signing::SigningOptions;
use ipswcheck::verify::{ComponentFinding, ComponentStatus};

/// `../shared/<rel>`, or `None` (with a note) when the reference data is absent.
/// Under `CI=true` its absence is a failure: CI always has ../shared beside the repo.
pub fn shared(rel: &str) -> Option<PathBuf> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared")
        .join(rel);
    if path.exists() {
        return Some(path);
    }
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{} is missing, and CI=true requires it", path.display());
    }
    eprintln!("SKIPPED: {} is absent", path.display());
    None
}

/// Zip every file under `src` (paths relative to `src`), deflated, into `dst`.
/// `edit` may change a file's bytes on the way in (to simulate damage).
pub fn zip_dir(src: &Path, dst: &Path, edit: &dyn Fn(&str, &mut Vec<u8>)) {
    let mut files = Vec::new();
    collect(src, src, &mut files);
    files.sort();
    let mut zip = zip::ZipWriter::new(File::create(dst).unwrap());
    let opts = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    for rel in files {
        let mut bytes = std::fs::read(src.join(&rel)).unwrap();
        edit(&rel, &mut bytes);
        zip.start_file(rel.as_str(), opts).unwrap();
        zip.write_all(&bytes).unwrap();
    }
    zip.finish().unwrap();
}

/// Zip explicit (name, bytes) pairs.
pub fn zip_entries(dst: &Path, entries: &[(&str, Vec<u8>)]) {
    let mut zip = zip::ZipWriter::new(File::create(dst).unwrap());
    let opts = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    for (name, bytes) in entries {
        zip.start_file(*name, opts).unwrap();
        zip.write_all(bytes).unwrap();
    }
    zip.finish().unwrap();
}

fn collect(root: &Path, dir: &Path, out: &mut Vec<String>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            collect(root, &path, out);
        } else {
            let rel = path.strip_prefix(root).unwrap();
            out.push(rel.to_string_lossy().replace('\\', "/"));
        }
    }
}

/// Offline check options for `device` (None: every customer identity).
pub fn options(device: Option<&str>) -> CheckOptions {
    let mut signing = SigningOptions::from_env();
    signing.offline = true;
    CheckOptions {
        device: device.map(|d| device::resolve(d, None).unwrap()),
        behavior: RestoreBehavior::Erase,
        quick: false,
        expected: None,
        signing,
    }
}

pub fn check(path: &Path, options: &CheckOptions) -> Report {
    check::check_file(path, options, &Progress::default())
}

/// The findings called `name` (one per board where boards differ).
pub fn items<'r>(report: &'r Report, name: &str) -> Vec<&'r ComponentFinding> {
    report
        .checks
        .components
        .items
        .iter()
        .filter(|i| i.name == name)
        .collect()
}

pub fn status_of(report: &Report, name: &str) -> ComponentStatus {
    let found = items(report, name);
    assert!(!found.is_empty(), "no component {name} in the report");
    let first = found[0].status;
    assert!(
        found.iter().all(|i| i.status == first),
        "{name} differs across boards: {found:?}"
    );
    first
}

/// Run the built binary; returns (exit code, stdout, stderr).
pub fn run(args: &[&str]) -> (i32, String, String) {
    run_env(args, &[])
}

pub fn run_env(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ipswcheck"));
    cmd.args(args);
    cmd.env_remove("IPSWCHECK_TSS_URL")
        .env_remove("IPSWCHECK_API_URL")
        .env_remove("IPSWCHECK_CACHE_DIR");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run ipswcheck");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
