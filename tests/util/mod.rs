//! Helpers shared by every integration test (one binary, `tests/tests.rs`).
//!
//! - here: finding `../shared` ([`shared`]), zipping real Apple files into IPSWs with the
//!   `zip` crate (an implementation independent of ours), running the library check
//!   offline, and running the binary — always through [`ipswcheck`], which gives every
//!   run a temporary `HOME` and `XDG_CACHE_HOME`, so that no test writes into the real
//!   user cache, and no inherited `IPSWCHECK_*` or proxy variable;
//! - [`http`]: the one loopback HTTP server (a thread per connection) and the fault
//!   servers (silent, refusing, plain HTTP to a TLS client);
//! - [`signing`]: stand-ins for Apple's TSS server and ipsw.me, and manifests to ask about;
//! - [`remote`]: a file server with `Range`, `If-Range` and `ETag`, built on [`http`];
//! - [`robust`]: a zip writer without opinions, deflate bombs, and a runner with time
//!   and address-space limits; [`seeds`]: the fuzz seed corpus.
#![allow(dead_code)]

pub mod http;
#[cfg(unix)]
pub mod measure;
pub mod remote;
pub mod robust;
pub mod seeds;
pub mod signing;
#[cfg(unix)]
pub mod usb;

use std::ffi::OsStr;
use std::fs::File;
use std::io::Write;
use std::ops::{Deref, DerefMut};
use std::path::{Path, PathBuf};
use std::process::Command;

use ipswcheck::check::{self, CheckOptions, Progress};
use ipswcheck::device;
use ipswcheck::manifest::RestoreBehavior;
use ipswcheck::report::Report;
use ipswcheck::signing::SigningOptions;
use ipswcheck::verify::{ComponentFinding, ComponentStatus};

/// Whether the tests run under CI (`CI=true`), where nothing may be skipped.
pub fn ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v.eq_ignore_ascii_case("true"))
}

/// `../shared/<rel>` from the crate root, or `None` (with a note) when the reference
/// data is absent. Under `CI=true` its absence is a failure: CI always has ../shared
/// beside the repository.
pub fn shared(rel: &str) -> Option<PathBuf> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared")
        .join(rel);
    if path.exists() {
        return Some(path);
    }
    if ci() {
        panic!(
            "{} is missing, and CI=true requires it (reference data is never skipped in CI)",
            path.display()
        );
    }
    eprintln!("SKIPPED: {} is absent", path.display());
    None
}

/// The committed sample IPSW, `testdata/sample.ipsw`.
pub fn sample_ipsw() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/sample.ipsw")
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

/// Every file under `dir`, as a path relative to `root` with `/` separators, into `out`.
pub fn collect(root: &Path, dir: &Path, out: &mut Vec<String>) {
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

/// The fixture's entry for the file of `component` in the d101ap (iPhone9,3) Erase
/// identity.
pub fn entry_of<'l>(
    layout: &'l ipswcheck_fixture::FixtureLayout,
    component: &str,
) -> &'l ipswcheck_fixture::EntryLayout {
    let identity = layout
        .identity("d101ap", ipswcheck_fixture::IdentityKind::Erase)
        .unwrap()
        .index;
    layout.component_entry(identity, component).unwrap()
}

/// Give the entry `e` the CRC-32 `crc`, in its local header and its directory record
/// (a changed entry whose zip is intact: only its manifest digest can tell).
pub fn set_crc(bytes: &mut [u8], e: &ipswcheck_fixture::EntryLayout, crc: u32) {
    let local = e.local_header_offset as usize + 14;
    let central = e.central_header_offset as usize + 16;
    bytes[local..local + 4].copy_from_slice(&crc.to_le_bytes());
    bytes[central..central + 4].copy_from_slice(&crc.to_le_bytes());
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

/// Variables a test run of the binary never inherits: ipswcheck's own settings and the
/// proxies reqwest would follow.
const SCRUBBED: [&str; 10] = [
    "IPSWCHECK_TSS_URL",
    "IPSWCHECK_API_URL",
    "IPSWCHECK_CACHE_DIR",
    "IPSWCHECK_CA_FILE",
    "HTTPS_PROXY",
    "https_proxy",
    "HTTP_PROXY",
    "http_proxy",
    "ALL_PROXY",
    "all_proxy",
];

/// The built binary with a scrubbed environment and `HOME` = `home`,
/// `XDG_CACHE_HOME` = `home/.cache`. Prefer [`ipswcheck`], which owns a fresh `home`.
pub fn command_in_home(home: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ipswcheck"));
    for var in SCRUBBED {
        cmd.env_remove(var);
    }
    cmd.env_remove("RUST_BACKTRACE")
        .env("HOME", home)
        .env("XDG_CACHE_HOME", home.join(".cache"));
    cmd
}

/// One run of the binary: a [`Command`] (through `Deref`) and the temporary home it
/// runs in, removed when this is dropped — keep it alive while a spawned child runs.
pub struct Bin {
    cmd: Command,
    home: tempfile::TempDir,
}

impl Bin {
    /// The temporary `HOME` of this run (`XDG_CACHE_HOME` is its `.cache`).
    pub fn home(&self) -> &Path {
        self.home.path()
    }

    /// Whether the run wrote into its (temporary) default cache directory.
    pub fn wrote_default_cache(&self) -> bool {
        self.home.path().join(".cache").exists()
    }
}

impl Deref for Bin {
    type Target = Command;
    fn deref(&self) -> &Command {
        &self.cmd
    }
}

impl DerefMut for Bin {
    fn deref_mut(&mut self) -> &mut Command {
        &mut self.cmd
    }
}

/// The built binary, ready to run: no inherited `IPSWCHECK_*`, proxy or
/// `RUST_BACKTRACE` variable, and `HOME`/`XDG_CACHE_HOME` in a fresh temporary
/// directory, so that no test reads or writes the real user cache. Every test that runs
/// the binary goes through here ([`run`], [`run_env`], [`robust::run_limited`]).
pub fn ipswcheck() -> Bin {
    let home = tempfile::Builder::new()
        .prefix("ipswcheck-home")
        .tempdir()
        .expect("a temporary HOME");
    Bin {
        cmd: command_in_home(home.path()),
        home,
    }
}

/// Run the built binary; returns (exit code, stdout, stderr).
pub fn run(args: &[&str]) -> (i32, String, String) {
    run_env(args, &[])
}

/// [`run`] with extra environment variables (set after the defaults, so they may
/// override `HOME` or `XDG_CACHE_HOME`).
pub fn run_env(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    run_in(None, args, env)
}

/// [`run_env`] in the working directory `dir` (when given).
pub fn run_in<S: AsRef<OsStr>>(
    dir: Option<&Path>,
    args: &[S],
    env: &[(&str, &str)],
) -> (i32, String, String) {
    let mut cmd = ipswcheck();
    cmd.args(args);
    if let Some(dir) = dir {
        cmd.current_dir(dir);
    }
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
