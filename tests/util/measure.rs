//! Running the binary under an address-space limit and measuring its memory: the peak
//! resident set (`VmHWM`, read from `/proc` every 2 ms, of the ipswcheck image only: not
//! `wait4`'s `ru_maxrss`, which also counts the test process the child was forked from,
//! hundreds of MB in the full suite) and the anonymous part (`RssAnon`, sampled).
//! Used by `memory_bounds` (crafted files) and `remote_bounds` (network answers).

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::process::Stdio;
use std::time::{Duration, Instant};

use super::robust::Outcome;

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
    let mut bin = crate::util::ipswcheck();
    bin.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // SAFETY: setrlimit is async-signal-safe and touches only the child.
    unsafe {
        bin.pre_exec(move || {
            let lim = libc::rlimit {
                rlim_cur: limit as libc::rlim_t,
                rlim_max: limit as libc::rlim_t,
            };
            if libc::setrlimit(libc::RLIMIT_AS, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let started = Instant::now();
    let mut child = bin.spawn().expect("spawn ipswcheck");
    let pipe = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut s = Vec::new();
            let _ = r.read_to_end(&mut s);
            String::from_utf8_lossy(&s).into_owned()
        })
    };
    let out = pipe(Box::new(child.stdout.take().unwrap()));
    let err = pipe(Box::new(child.stderr.take().unwrap()));
    let pid = child.id();
    let mut peak_anon = 0u64;
    let mut peak = 0u64;
    let mut peak_vm = 0u64;
    let proc_status = format!("/proc/{pid}/status");
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        let text = std::fs::read_to_string(&proc_status).unwrap_or_default();
        let field = |name: &str| -> u64 {
            text.lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
                .unwrap_or(0)
                * 1024
        };
        // Before `exec` the child is a copy of this test process: count only the
        // ipswcheck image (its name is in the same file).
        if text.lines().any(|l| l == "Name:\tipswcheck") {
            peak_anon = peak_anon.max(field("RssAnon:"));
            peak = peak.max(field("VmHWM:"));
            peak_vm = peak_vm.max(field("VmPeak:"));
        }
        if started.elapsed() > Duration::from_secs(120) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("ipswcheck {args:?} did not finish within 120 s");
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    let code = status.code();
    Measured {
        code,
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
        peak,
        peak_anon,
        peak_vm,
        elapsed: started.elapsed(),
        file_len,
    }
}
