//! Running the binary under an address-space limit and measuring its memory: the peak
//! resident set (`VmHWM`, read from `/proc` every 2 ms, of the ipswcheck image only: not
//! `wait4`'s `ru_maxrss`, which also counts the test process the child was forked from,
//! hundreds of MB in the full suite) and the anonymous part (`RssAnon`, sampled).
//! Used by `memory_bounds` (crafted files) and `remote_bounds` (network answers); and
//! [`spawn_reading`], a check caught while it reads (`identity`, `adversarial`).

use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use super::robust::{offline_args, run_polled, Limits, Outcome};
use super::Bin;

pub struct Measured {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    /// Peak resident set size (bytes, `VmHWM`).
    pub peak: u64,
    /// Largest anonymous resident memory seen while polling every few milliseconds
    /// (`RssAnon`): what the process allocated, without the mapped file and code.
    pub peak_anon: u64,
    /// Largest address space seen (`VmPeak`): what `RLIMIT_AS` limits.
    pub peak_vm: u64,
    pub elapsed: Duration,
    pub file_len: u64,
}

impl Measured {
    pub fn outcome(&self) -> Outcome {
        Outcome {
            code: self.code,
            stdout: self.stdout.clone(),
            stderr: self.stderr.clone(),
            elapsed: self.elapsed,
        }
    }
}

/// Run the binary with `args` under `RLIMIT_AS` = `file_len` + `allowance` (or
/// `IPSWCHECK_AS_LIMIT`, to measure without the limit biting), killed after 120 s, and
/// measure its peak resident set.
pub fn run_measured(args: &[&str], file_len: u64, allowance: u64) -> Measured {
    let limit = std::env::var("IPSWCHECK_AS_LIMIT")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(file_len + allowance);
    let mut peak_anon = 0u64;
    let mut peak = 0u64;
    let mut peak_vm = 0u64;
    let outcome = run_polled(
        args,
        &Limits {
            wall: Some(Duration::from_secs(120)),
            address_space: Some(limit),
            ..Limits::default()
        },
        Duration::from_millis(2),
        &mut |pid| {
            let text = proc_status(pid);
            // Before `exec` the child is a copy of this test process: count only the
            // ipswcheck image (its name is in the same file).
            if text.lines().any(|l| l == "Name:\tipswcheck") {
                peak_anon = peak_anon.max(status_field(&text, "RssAnon"));
                peak = peak.max(status_field(&text, "VmHWM"));
                peak_vm = peak_vm.max(status_field(&text, "VmPeak"));
            }
        },
    );
    Measured {
        code: outcome.code,
        stdout: outcome.stdout,
        stderr: outcome.stderr,
        peak,
        peak_anon,
        peak_vm,
        elapsed: outcome.elapsed,
        file_len,
    }
}

/// `/proc/<pid>/status` (empty once the process is gone).
pub fn proc_status(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default()
}

/// The field `name` (`VmHWM`, `RssFile`…) of a `/proc/<pid>/status` text, in bytes (the
/// kernel writes kB); 0 when absent.
pub fn status_field(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .unwrap_or(0)
        * 1024
}

/// Spawn an offline check of `path` ([`offline_args`]) and return once it is reading:
/// once 32 MiB of the file are resident in it (`RssFile`), so that a test can change
/// the file under a check in progress. Fails when that takes over 60 s, or when the
/// check ends first (`what` is what the test was about to do to the file). Keep the
/// [`Bin`] (the run's temporary home) alive until the child has ended.
pub fn spawn_reading(path: &Path, what: &str) -> (Bin, Child) {
    let mut bin = crate::util::ipswcheck();
    let mut child = bin
        .args(offline_args(path, &[]))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while status_field(&proc_status(child.id()), "RssFile") <= 32 << 20 {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the check never started reading"
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "the check finished before the file could be {what}"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    (bin, child)
}
