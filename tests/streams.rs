//! Issue 14, class 9 (and issue 13's "never crash on a pipe"): closed or full standard
//! streams. For every subcommand, stdout on a pipe whose reader is gone (`| head`),
//! stdout on `/dev/full`, stdout closed (`>&-`) and stderr closed (`2>&-`): no panic, and
//! the exit code the command gives with ordinary streams. A closed descriptor is reopened
//! on `/dev/null` first, so no message can land in a file the tool opens (a `fetch`
//! download stays byte-identical to its source).

#![cfg(unix)]

use std::fs::File;
use std::os::unix::io::FromRawFd;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::util;
use crate::util::signing::{signed_body, FakeServer, Reply};

#[derive(Debug, Clone, Copy, PartialEq)]
enum Stream {
    /// A pipe whose read end was closed before the command started: EPIPE on write.
    BrokenPipe,
    /// `/dev/full`: ENOSPC on write.
    Full,
    /// The descriptor is not open at all.
    Closed,
}

/// A pipe with its read end already closed.
fn broken_pipe() -> File {
    let mut fds = [0; 2];
    // SAFETY: pipe writes two descriptors into the array, which we then own.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    // SAFETY: both descriptors are ours; the read end is closed, the write end owned.
    unsafe {
        libc::close(fds[0]);
        File::from_raw_fd(fds[1])
    }
}

fn stdio(stream: Stream) -> Stdio {
    match stream {
        Stream::BrokenPipe => Stdio::from(broken_pipe()),
        Stream::Full => Stdio::from(File::options().write(true).open("/dev/full").unwrap()),
        // Replaced by a closed descriptor in `pre_exec`.
        Stream::Closed => Stdio::null(),
    }
}

/// Run the binary with stdout and/or stderr replaced; (exit code, stderr when it is
/// readable). Ends within a generous deadline or fails.
fn run(args: &[&str], out: Option<Stream>, err: Option<Stream>) -> (i32, String) {
    let mut cmd: util::Bin = util::ipswcheck();
    cmd.args(args).stdin(Stdio::null());
    let err_file = tempfile::NamedTempFile::new().unwrap();
    match out {
        Some(s) => cmd.stdout(stdio(s)),
        None => cmd.stdout(Stdio::null()),
    };
    match err {
        Some(s) => cmd.stderr(stdio(s)),
        None => cmd.stderr(Stdio::from(err_file.reopen().unwrap())),
    };
    let close_out = out == Some(Stream::Closed);
    let close_err = err == Some(Stream::Closed);
    // SAFETY: close is async-signal-safe and touches only the child's descriptors.
    unsafe {
        cmd.pre_exec(move || {
            if close_out {
                libc::close(1);
            }
            if close_err {
                libc::close(2);
            }
            Ok(())
        });
    }
    let command: &mut Command = &mut cmd;
    let mut child = command.spawn().unwrap();
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if start.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            panic!("{args:?} did not end");
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let stderr = std::fs::read_to_string(err_file.path()).unwrap_or_default();
    assert!(
        !stderr.contains("panicked") && !stderr.contains("RUST_BACKTRACE"),
        "{args:?} out {out:?} err {err:?}: {stderr}"
    );
    let code = status
        .code()
        .unwrap_or_else(|| panic!("{args:?} out {out:?} err {err:?}: killed by {status:?}"));
    (code, stderr)
}

#[test]
fn every_subcommand_survives_closed_and_full_streams() {
    let dir = tempfile::tempdir().unwrap();
    let sample = util::sample_ipsw();
    let lib = dir.path().join("lib");
    std::fs::create_dir(&lib).unwrap();
    std::fs::copy(&sample, lib.join("a.ipsw")).unwrap();
    let bad = lib.join("bad.ipsw");
    std::fs::write(&bad, b"not a zip").unwrap();
    let server = FakeServer::apple_and_ipswme(
        Reply::ok(signed_body()),
        Reply::ok(util::signing::ipswme_body(
            "iPhone9,3",
            "19H370",
            true,
            "00",
        )),
    );
    let cache = dir.path().join("cache");
    let api = server.api_url();
    let s = sample.to_str().unwrap();
    let commands: Vec<(Vec<&str>, i32)> = vec![
        (vec!["devices"], 0),
        (vec!["devices", "iphone", "7"], 0),
        (vec![s, "--offline", "--device", "iPhone9,3"], 0),
        (vec![s, "--offline", "--device", "iPhone9,3", "-v"], 0),
        (vec![s, "--offline", "--device", "iPhone9,3", "--json"], 0),
        (vec![s, "--offline", "--device", "iPhone10,1"], 20),
        (vec![s, bad.to_str().unwrap(), "--offline"], 3),
        (vec!["scan", lib.to_str().unwrap(), "--offline"], -1),
        (
            vec![
                "signed",
                "--device",
                "iPhone9,3",
                "--api-url",
                &api,
                "--cache-dir",
                cache.to_str().unwrap(),
            ],
            0,
        ),
        (
            vec!["doctor", "--offline", "--hosts-file", "/nonexistent/h"],
            0,
        ),
        (vec!["completions", "bash"], 0),
        (vec!["man"], 0),
        (vec!["--help"], 0),
        (vec!["--version"], 0),
        (vec!["--no-such-flag"], 2),
        (vec!["/nonexistent/x.ipsw"], -1),
    ];
    // The scan and the missing file end with a failure code of their own, not a usage one.
    for (args, _) in commands.iter().filter(|(_, e)| *e < 0) {
        let (code, _) = run(args, None, None);
        assert!(code != 0 && code != 2, "{args:?}: {code}");
    }
    for (args, expected) in &commands {
        // The code with ordinary streams is the reference (-1: whatever it is).
        let (reference, _) = run(args, None, None);
        if *expected >= 0 {
            assert_eq!(reference, *expected, "{args:?}");
        }
        for stream in [Stream::BrokenPipe, Stream::Full, Stream::Closed] {
            let (code, stderr) = run(args, Some(stream), None);
            assert_eq!(code, reference, "{args:?} stdout {stream:?}: {stderr}");
            if stream == Stream::Full && !stderr.is_empty() {
                assert!(
                    stderr.lines().all(|l| !l.contains("panicked")),
                    "{args:?}: {stderr}"
                );
            }
            let (code, _) = run(args, None, Some(stream));
            assert_eq!(code, reference, "{args:?} stderr {stream:?}");
            let (code, _) = run(args, Some(stream), Some(stream));
            assert_eq!(code, reference, "{args:?} both {stream:?}");
        }
    }
}

/// `/dev/full` on stdout is said once on stderr (a full disk is worth knowing about),
/// while a reader that went away (`| head`) is not an error at all.
#[test]
fn a_full_disk_is_reported_and_a_closed_reader_is_not() {
    let sample = util::sample_ipsw();
    let args = [
        sample.to_str().unwrap(),
        "--offline",
        "--device",
        "iPhone9,3",
    ];
    let (code, stderr) = run(&args, Some(Stream::Full), None);
    assert_eq!(code, 0);
    assert!(stderr.contains("cannot write the output"), "{stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    let (code, stderr) = run(&args, Some(Stream::BrokenPipe), None);
    assert_eq!(code, 0);
    assert!(stderr.is_empty(), "{stderr}");
}

/// With stderr (or stdout) closed, `fetch` still downloads a byte-identical file: the
/// closed descriptor was reopened on /dev/null, so nothing it prints can land in the
/// download or its sidecar.
#[test]
fn fetch_with_closed_streams_writes_only_the_download() {
    let sample = util::sample_ipsw();
    let files = util::remote::FileServer::start();
    let url = files.serve("fw.ipsw", &sample);
    for ranges in [true, false] {
        files.ignore_ranges(!ranges);
        for (out, err) in [
            (None, Some(Stream::Closed)),
            (Some(Stream::Closed), Some(Stream::Closed)),
            (Some(Stream::Full), Some(Stream::Closed)),
            (Some(Stream::BrokenPipe), Some(Stream::Full)),
        ] {
            let dir = tempfile::tempdir().unwrap();
            let dest = dir.path().join("fw.ipsw");
            let (code, _) = run(
                &[
                    "fetch",
                    &url,
                    "-o",
                    dest.to_str().unwrap(),
                    "--offline",
                    "--device",
                    "iPhone9,3",
                ],
                out,
                err,
            );
            assert_eq!(code, 0, "ranges {ranges} out {out:?} err {err:?}");
            assert_eq!(
                std::fs::read(&dest).unwrap(),
                std::fs::read(&sample).unwrap(),
                "ranges {ranges} out {out:?} err {err:?}"
            );
        }
    }
}
