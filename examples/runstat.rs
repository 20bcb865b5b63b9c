//! Run a command and report its wall time, CPU time and memory, for `benches/compare.sh`.
//!
//! ```text
//! cargo run --release --example runstat -- [--interval-ms N] [--out FILE] -- CMD [ARGS...]
//! ```
//!
//! Writes `key=value` lines to FILE (default: stdout, after the command's own output,
//! which is left where it goes):
//!
//! - `wall_s`: from spawn to exit; `user_s`, `sys_s`: the child's CPU time (`wait4`
//!   rusage, children of the child included);
//! - `peak_anon_kb`: the highest `RssAnon` seen in `/proc/PID/status`, polled every
//!   `--interval-ms` (default 2): anonymous memory only (heap, stacks, buffers), not the
//!   pages of a memory-mapped file, which the kernel can drop at any time and which
//!   `RssFile` counts; `peak_file_kb` is the highest `RssFile` seen, and `hwm_kb`
//!   (`VmHWM`) / `maxrss_kb` (rusage) the peak total RSS, both counting mapped pages;
//! - `foreign_cpu_s`: CPU time the rest of the machine used meanwhile (busy time from
//!   `/proc/stat` minus the child's), to tell a clean sample from one another process
//!   disturbed;
//! - `exit`: the child's exit code (128 + signal when killed).
//!
//! Polling can miss an allocation that lives shorter than the interval; the figures
//! the check keeps (buffers, the parsed manifest) live for the whole run.

use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

fn status_kb(pid: i32) -> Option<(u64, u64, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| -> Option<u64> {
        let line = text.lines().find(|l| l.starts_with(name))?;
        line[name.len()..].split_whitespace().next()?.parse().ok()
    };
    Some((field("RssAnon:")?, field("RssFile:")?, field("VmHWM:")?))
}

/// Busy and total jiffies of the whole machine.
fn cpu_jiffies() -> Option<(u64, u64)> {
    let text = std::fs::read_to_string("/proc/stat").ok()?;
    let line = text.lines().next()?;
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    let total: u64 = v.iter().take(8).sum();
    let idle = v.get(3)? + v.get(4)?;
    Some((total - idle, total))
}

fn secs(tv: libc::timeval) -> f64 {
    tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6
}

fn main() -> ExitCode {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let mut interval = Duration::from_millis(2);
    let mut out: Option<String> = None;
    while let Some(first) = args.first().cloned() {
        match first.as_str() {
            "--interval-ms" => {
                let Some(ms) = args.get(1).and_then(|s| s.parse::<u64>().ok()) else {
                    eprintln!("runstat: --interval-ms needs a number");
                    return ExitCode::from(2);
                };
                interval = Duration::from_millis(ms.max(1));
                args.drain(..2);
            }
            "--out" => {
                let Some(path) = args.get(1).cloned() else {
                    eprintln!("runstat: --out needs a file");
                    return ExitCode::from(2);
                };
                out = Some(path);
                args.drain(..2);
            }
            "--" => {
                args.remove(0);
                break;
            }
            _ => break,
        }
    }
    if args.is_empty() {
        eprintln!("usage: runstat [--interval-ms N] [--out FILE] -- CMD [ARGS...]");
        return ExitCode::from(2);
    }
    // USER_HZ, the unit of /proc/stat.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    let before = cpu_jiffies();
    let start = Instant::now();
    let child = match Command::new(&args[0]).args(&args[1..]).spawn() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("runstat: cannot run {}: {e}", args[0]);
            return ExitCode::from(127);
        }
    };
    let pid = child.id() as i32;
    let (mut anon, mut file, mut hwm, mut samples) = (0u64, 0u64, 0u64, 0u64);
    let mut status = 0i32;
    // SAFETY: plain C struct, filled in by wait4.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // Sample first: the child may exit between two polls.
        if let Some((a, f, h)) = status_kb(pid) {
            anon = anon.max(a);
            file = file.max(f);
            hwm = hwm.max(h);
            samples += 1;
        }
        // SAFETY: waits for our own child; `status` and `usage` are valid pointers.
        let r = unsafe { libc::wait4(pid, &mut status, libc::WNOHANG, &mut usage) };
        if r == pid {
            break;
        }
        if r < 0 {
            eprintln!("runstat: wait4: {}", std::io::Error::last_os_error());
            return ExitCode::from(2);
        }
        std::thread::sleep(interval);
    }
    let wall = start.elapsed().as_secs_f64();
    let after = cpu_jiffies();
    let (user, sys) = (secs(usage.ru_utime), secs(usage.ru_stime));
    let foreign = match (before, after) {
        (Some((b0, _)), Some((b1, _))) => ((b1 - b0) as f64 / hz - user - sys).max(0.0),
        _ => f64::NAN,
    };
    let exit = if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        128 + libc::WTERMSIG(status)
    };
    let report = format!(
        "wall_s={wall:.4}\nuser_s={user:.4}\nsys_s={sys:.4}\ncpu_s={:.4}\n\
         peak_anon_kb={anon}\npeak_file_kb={file}\nhwm_kb={hwm}\nmaxrss_kb={}\n\
         foreign_cpu_s={foreign:.3}\nsamples={samples}\nexit={exit}\n",
        user + sys,
        usage.ru_maxrss
    );
    match out {
        Some(path) => {
            if let Err(e) = std::fs::write(&path, report) {
                eprintln!("runstat: {path}: {e}");
                return ExitCode::from(2);
            }
        }
        None => print!("{report}"),
    }
    ExitCode::SUCCESS
}
