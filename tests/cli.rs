//! The command line as people use it (issue 13), always through the binary: output into
//! a closed pipe or a full disk, several files at once, the flags each subcommand
//! offers, `doctor`'s exit codes, `signed -q`/`--json`, `--color`/NO_COLOR, the
//! progress line on a terminal, completions, the man page, `--version` and `--help`.

use std::io::Read;
use std::os::fd::{FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::Stdio;

use crate::util::signing::{refused_addr, SilentServer};
use crate::util::*;

/// A sample IPSW path as a `String` argument.
fn sample() -> String {
    sample_ipsw().to_str().unwrap().to_owned()
}

/// A hosts file in `dir` with (or without) a gs.apple.com redirect on line 2.
fn hosts_file(dir: &Path, redirect: bool) -> PathBuf {
    let path = dir.join("hosts");
    let mut text = String::from("127.0.0.1 localhost\n");
    if redirect {
        text.push_str("74.208.105.171 gs.apple.com\n");
    }
    std::fs::write(&path, text).unwrap();
    path
}

/// Every subcommand and output kind, each with arguments that print something and need
/// no network beyond a refused loopback port.
fn every_command(dir: &Path) -> Vec<Vec<String>> {
    let hosts = hosts_file(dir, false).to_str().unwrap().to_owned();
    let dead = format!("http://{}/v4", refused_addr());
    let s = sample();
    let strings = |args: &[&str]| args.iter().map(|a| a.to_string()).collect::<Vec<_>>();
    vec![
        strings(&[&s, "--offline"]),
        strings(&[&s, "--offline", "--json"]),
        strings(&[&s, "--offline", "-v"]),
        strings(&[&s, &s, "--offline"]),
        strings(&[&s, &s, "--offline", "--json"]),
        strings(&["scan", &s, "--offline"]),
        strings(&["scan", &s, "--offline", "--format", "json"]),
        strings(&["signed", "-d", "iPhone9,3", "--api-url", &dead, "--json"]),
        strings(&["doctor", "--offline", "--hosts-file", &hosts]),
        strings(&["devices"]),
        strings(&["completions", "bash"]),
        strings(&["completions", "zsh"]),
        strings(&["man"]),
        strings(&["--help"]),
        strings(&["scan", "--help"]),
        strings(&["--version"]),
    ]
}

fn assert_quiet_end(args: &[String], code: Option<i32>, stderr: &str) {
    assert_ne!(code, Some(101), "{args:?} panicked: {stderr}");
    assert!(code.is_some(), "{args:?} was killed by a signal: {stderr}");
    assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    assert!(!stderr.contains("Broken pipe"), "{args:?}: {stderr}");
    assert!(!stderr.contains("failed printing"), "{args:?}: {stderr}");
}

#[test]
fn a_closed_pipe_ends_every_command_quietly() {
    let dir = tempfile::tempdir().unwrap();
    for args in every_command(dir.path()) {
        let mut cmd = ipswcheck();
        cmd.args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn ipswcheck");
        // The reader goes away before anything is written: every write is EPIPE.
        drop(child.stdout.take());
        let mut stderr = String::new();
        child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut stderr)
            .unwrap();
        let status = child.wait().unwrap();
        assert_quiet_end(&args, status.code(), &stderr);
        // EPIPE is no failure of the command: it keeps its own exit code (0 here, but
        // for `signed` whose ipsw.me is unreachable: 31).
        let expected = if args[0] == "signed" { 31 } else { 0 };
        assert_eq!(status.code(), Some(expected), "{args:?}: {stderr}");
        // Nothing is said about the pipe: only `signed`'s own failure, if any.
        if expected == 0 {
            assert_eq!(stderr, "", "{args:?}");
        }
    }
}

#[test]
fn a_full_disk_is_one_line_never_a_panic() {
    if !Path::new("/dev/full").exists() {
        eprintln!("SKIPPED: no /dev/full");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    for args in every_command(dir.path()) {
        let full = std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .unwrap();
        let mut cmd = ipswcheck();
        cmd.args(&args).stdin(Stdio::null()).stdout(full);
        let out = cmd.output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_quiet_end(&args, out.status.code(), &stderr);
        // clap writes its own help and version, and ignores the failure.
        let by_clap = args.iter().any(|a| a == "--help" || a == "--version");
        if !by_clap {
            assert!(
                stderr.contains("ipswcheck: cannot write the output: No space left on device"),
                "{args:?}: {stderr}"
            );
            assert_eq!(
                stderr.matches("cannot write the output").count(),
                1,
                "{args:?}: {stderr}"
            );
        }
    }
}

/// The sample cut before its end: a truncated download, exit 10.
fn truncated_copy(dir: &Path) -> PathBuf {
    let bytes = std::fs::read(sample_ipsw()).unwrap();
    let path = dir.join("truncated.ipsw");
    std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
    path
}

#[test]
fn several_files_get_a_verdict_each_a_summary_and_the_worst_code() {
    let dir = tempfile::tempdir().unwrap();
    let truncated = truncated_copy(dir.path());
    let truncated = truncated.to_str().unwrap();
    let s = sample();
    let (code, out, err) = run(&[&s, truncated, "--offline", "--device", "iPhone9,3"]);
    assert_eq!(code, 10, "{out}{err}");
    let verdicts: Vec<&str> = out
        .lines()
        .filter(|l| l.starts_with("READY: ") || l.starts_with("NOT READY: "))
        .collect();
    assert_eq!(verdicts.len(), 2, "{out}");
    assert!(verdicts[0].starts_with("READY: sample.ipsw"), "{out}");
    assert!(verdicts[1].starts_with("NOT READY: "), "{out}");
    assert_eq!(
        out.lines().last(),
        Some("2 files: 1 ready, 1 not ready"),
        "{out}"
    );

    // The worst is the first a restore would meet: not an IPSW (3) before damage (10).
    let text = dir.path().join("notes.ipsw");
    std::fs::write(&text, "not a zip\n").unwrap();
    let (code, out, _) = run(&[truncated, text.to_str().unwrap(), &s, "--offline"]);
    assert_eq!(code, 3, "{out}");
    assert_eq!(
        out.lines().last(),
        Some("3 files: 1 ready, 2 not ready"),
        "{out}"
    );

    // All good: 0; -q prints nothing.
    let (code, out, err) = run(&[&s, &s, "--offline", "-q"]);
    assert_eq!((code, out.as_str(), err.as_str()), (0, "", ""));

    // --json: one array of the reports a single check prints.
    let (code, out, _) = run(&[&s, truncated, "--offline", "--json"]);
    assert_eq!(code, 10);
    let doc: serde_json::Value = serde_json::from_str(&out).expect("one JSON document");
    let reports = doc.as_array().expect("an array");
    assert_eq!(reports.len(), 2);
    assert_eq!(reports[0]["verdict"], "ready");
    assert_eq!(reports[0]["schema"], 2);
    assert_eq!(reports[1]["exit_code"], 10);
    // One file with --json is still one document, not an array.
    let (_, out, _) = run(&[&s, "--offline", "--json"]);
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(doc.is_object(), "{out}");

    // ndjson: one line per file; csv: one header.
    let (_, out, _) = run(&[&s, &s, "--offline", "--format", "ndjson"]);
    assert_eq!(out.lines().count(), 2, "{out}");
    let (_, out, _) = run(&[&s, &s, "--offline", "--format", "csv"]);
    assert_eq!(out.lines().count(), 3, "{out}");
}

#[test]
fn a_file_named_like_no_subcommand_is_a_file_and_a_folder_points_to_scan() {
    let dir = tempfile::tempdir().unwrap();
    let s = sample();
    // Not clap's "unrecognized subcommand" for the second file.
    let (code, out, err) = run(&[&s, "b.ipsw", "--offline"]);
    assert_eq!(code, 3, "{out}{err}");
    assert!(!err.contains("subcommand"), "{err}");
    assert!(out.contains("NOT READY: b.ipsw"), "{out}");

    let folder = dir.path().to_str().unwrap();
    let (code, out, err) = run(&[folder, "--offline"]);
    assert_eq!(code, 3, "{out}{err}");
    assert!(out.contains("is a directory"), "{out}");
    assert!(
        out.contains(&format!("run `ipswcheck scan {folder}`")),
        "{out}"
    );
    assert_eq!(err, "");
}

/// The long flags `ipswcheck <sub> --help` offers.
fn offered(sub: &str) -> Vec<String> {
    let (code, out, err) = run(&[sub, "--help"]);
    assert_eq!(code, 0, "{err}");
    out.split(|c: char| c.is_whitespace() || c == ',' || c == '[' || c == ']')
        .filter(|w| w.starts_with("--"))
        .map(|w| w.split('=').next().unwrap().to_owned())
        .collect()
}

#[test]
fn subcommands_offer_only_the_flags_they_use() {
    let signed = offered("signed");
    for flag in [
        "--api-url",
        "--timeout",
        "--cache-dir",
        "--refresh",
        "--ca-file",
        "--json",
        "--format",
        "--quiet",
        "--device",
    ] {
        assert!(signed.iter().any(|f| f == flag), "signed lacks {flag}");
    }
    for flag in ["--offline", "--hosts-file", "--tss-url", "--tss-dump"] {
        assert!(!signed.iter().any(|f| f == flag), "signed offers {flag}");
    }
    let doctor = offered("doctor");
    for flag in [
        "--offline",
        "--hosts-file",
        "--tss-url",
        "--ca-file",
        "--timeout",
    ] {
        assert!(doctor.iter().any(|f| f == flag), "doctor lacks {flag}");
    }
    for flag in ["--refresh", "--cache-dir", "--api-url", "--tss-dump"] {
        assert!(!doctor.iter().any(|f| f == flag), "doctor offers {flag}");
    }
    // The check itself still has them all.
    let (_, help, _) = run(&["--help"]);
    for flag in [
        "--offline",
        "--hosts-file",
        "--tss-url",
        "--api-url",
        "--cache-dir",
        "--refresh",
        "--tss-dump",
        "--ca-file",
        "--timeout",
    ] {
        assert!(help.contains(flag), "the check lacks {flag}");
    }
    // Not offered is not accepted.
    let (code, _, err) = run(&["signed", "-d", "iPhone9,3", "--offline"]);
    assert_eq!(code, 2, "{err}");
    let (code, _, err) = run(&["doctor", "--refresh"]);
    assert_eq!(code, 2, "{err}");
}

#[test]
fn doctor_exits_like_the_check_for_the_same_problem() {
    let dir = tempfile::tempdir().unwrap();
    let redirected = hosts_file(dir.path(), true);
    let redirected = redirected.to_str().unwrap();
    // The check says 30 for a gs.apple.com redirect, and so does doctor.
    let (check_code, out, _) = run(&[
        &sample(),
        "--device",
        "iPhone9,3",
        "--offline",
        "--hosts-file",
        redirected,
    ]);
    assert_eq!(check_code, 30, "{out}");
    let (code, out, _) = run(&["doctor", "--offline", "--hosts-file", redirected]);
    assert_eq!(code, check_code, "{out}");
    assert!(out.contains("line 2: 74.208.105.171 gs.apple.com"), "{out}");

    let clean_dir = dir.path().join("clean");
    std::fs::create_dir(&clean_dir).unwrap();
    let clean = hosts_file(&clean_dir, false);
    let clean = clean.to_str().unwrap();
    let (code, out, _) = run(&["doctor", "--offline", "--hosts-file", clean]);
    assert_eq!(code, 0, "{out}");
    // Unreachable: 31.
    let tss = format!("http://{}/TSS/controller?action=2", refused_addr());
    let (code, out, _) = run(&[
        "doctor",
        "--hosts-file",
        clean,
        "--tss-url",
        &tss,
        "--timeout",
        "5",
    ]);
    assert_eq!(code, 31, "{out}");
    assert!(out.contains("TSS server  PROBLEM"), "{out}");
}

#[test]
fn signed_quiet_prints_nothing_and_json_is_a_document_when_ipswme_is_down() {
    let dead = format!("http://{}/v4", refused_addr());
    let (code, out, err) = run(&["signed", "-d", "iPhone9,3", "--api-url", &dead, "-q"]);
    assert_eq!((code, out.as_str(), err.as_str()), (31, "", ""));

    let (code, out, _) = run(&["signed", "-d", "iPhone9,3", "--api-url", &dead, "--json"]);
    assert_eq!(code, 31);
    let doc: serde_json::Value = serde_json::from_str(&out).expect("a JSON document");
    assert_eq!(doc["product_type"], "iPhone9,3", "{out}");
    assert!(doc["error"].is_string(), "{out}");
    assert_eq!(doc["builds"], serde_json::json!([]), "{out}");
}

#[test]
fn color_is_asked_for_not_assumed() {
    let s = sample();
    let has_escape = |out: &str| out.contains('\u{1b}');
    // Through a pipe (auto): no color.
    let (code, out, _) = run(&[&s, "--offline"]);
    assert_eq!(code, 0);
    assert!(!has_escape(&out), "{out:?}");
    let (_, out, _) = run(&[&s, "--offline", "--color", "never"]);
    assert!(!has_escape(&out), "{out:?}");
    // NO_COLOR never adds color, with any value.
    let (_, out, _) = run_env(&[&s, "--offline"], &[("NO_COLOR", "1")]);
    assert!(!has_escape(&out), "{out:?}");
    // `--color` is global: after a subcommand too; a bad value is a usage error.
    let (code, out, err) = run(&["devices", "--color", "never"]);
    assert_eq!(code, 0, "{err}");
    assert!(!has_escape(&out));
    let (code, _, err) = run(&[&s, "--color", "sometimes"]);
    assert_eq!(code, 2, "{err}");
    // `--color always` paints, through a pipe too, and wins over NO_COLOR.
    let (code, out, err) = run(&[&s, "--offline", "--color", "always"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("READY"), "{out}");
    assert!(has_escape(&out), "{out:?}");
    let (_, out, _) = run_env(
        &[&s, "--offline", "--color", "always"],
        &[("NO_COLOR", "1")],
    );
    assert!(has_escape(&out), "{out:?}");
    // On a terminal, auto paints unless NO_COLOR (non-empty) or TERM=dumb says no.
    let on_terminal = |env: &[(&str, &str)]| run_on_terminal(&[&s, "--offline"], true, env).1;
    assert!(has_escape(&on_terminal(&[("TERM", "xterm")])));
    assert!(has_escape(&on_terminal(&[
        ("TERM", "xterm"),
        ("NO_COLOR", "")
    ])));
    assert!(!has_escape(&on_terminal(&[
        ("TERM", "xterm"),
        ("NO_COLOR", "1")
    ])));
    assert!(!has_escape(&on_terminal(&[("TERM", "dumb")])));
    let (code, out, _) = run(&[&s, "--offline", "--color", "always", "--json"]);
    assert_eq!(code, 0);
    assert!(!has_escape(&out), "JSON is never colored: {out:?}");
}

/// Run the binary with stderr (and stdout, when `stdout_too`) on a pseudo-terminal, where
/// the progress line is drawn; returns the exit code and everything written to the
/// terminal.
fn run_on_terminal(args: &[&str], stdout_too: bool, env: &[(&str, &str)]) -> (i32, String) {
    let (mut master, mut slave) = (0, 0);
    // SAFETY: openpty writes two descriptors into the integers given; the other
    // arguments may be null.
    let rc = unsafe {
        libc::openpty(
            &mut master,
            &mut slave,
            std::ptr::null_mut(),
            std::ptr::null(),
            std::ptr::null(),
        )
    };
    assert_eq!(rc, 0, "openpty");
    // SAFETY: both descriptors were just opened and are owned here only.
    let (master, slave) = unsafe { (OwnedFd::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) };
    let mut cmd = ipswcheck();
    let stdout = if stdout_too {
        Stdio::from(slave.try_clone().unwrap())
    } else {
        Stdio::piped()
    };
    cmd.args(args)
        .env_remove("NO_COLOR")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(Stdio::from(slave));
    let reader = std::thread::spawn(move || {
        let mut terminal = std::fs::File::from(master);
        let mut seen = Vec::new();
        // Read until the last holder of the terminal's other end is gone (EIO).
        let mut buf = [0u8; 4096];
        while let Ok(n) = terminal.read(&mut buf) {
            if n == 0 {
                break;
            }
            seen.extend_from_slice(&buf[..n]);
        }
        String::from_utf8_lossy(&seen).into_owned()
    });
    let out = cmd.output().expect("run ipswcheck");
    // `cmd` holds the terminal's other end until dropped.
    drop(cmd);
    (out.status.code().unwrap_or(-1), reader.join().unwrap())
}

#[test]
fn the_progress_line_says_when_it_waits_for_apple_and_never_flashes_zero() {
    // Offline, the sample is checked in milliseconds: nothing is drawn at all.
    let (code, terminal) = run_on_terminal(&[&sample(), "--offline"], false, &[]);
    assert_eq!(code, 0, "{terminal}");
    // (Nothing is drawn in the first 200 ms; on a loaded machine a bar may still appear,
    // but never an empty one.)
    assert!(!terminal.contains("0 B/0 B"), "{terminal:?}");

    // Apple never answers: hashing is done at once, then the line says what it waits for.
    let silent = SilentServer::start();
    let tss = format!("http://{}/TSS/controller?action=2", silent.addr);
    let api = format!("http://{}/v4", refused_addr());
    let dir = tempfile::tempdir().unwrap();
    let hosts = hosts_file(dir.path(), false);
    let (code, terminal) = run_on_terminal(
        &[
            &sample(),
            "--device",
            "iPhone9,3",
            "--tss-url",
            &tss,
            "--api-url",
            &api,
            "--hosts-file",
            hosts.to_str().unwrap(),
            "--timeout",
            "2",
        ],
        false,
        &[],
    );
    assert_eq!(code, 31, "{terminal}");
    assert!(
        terminal.contains("asking Apple's signing server…"),
        "{terminal:?}"
    );
    assert!(!terminal.contains("0 B/0 B"), "{terminal:?}");
}

#[test]
fn completions_for_every_shell_and_a_man_page() {
    for shell in ["bash", "zsh", "fish", "powershell", "elvish"] {
        let (code, out, err) = run(&["completions", shell]);
        assert_eq!(code, 0, "{shell}: {err}");
        assert!(out.contains("ipswcheck"), "{shell}: {out}");
        assert!(out.contains("device"), "{shell}");
        assert!(out.contains("scan"), "{shell}");
    }
    let (_, bash, _) = run(&["completions", "bash"]);
    assert!(bash.contains("complete -F"), "{bash}");
    let (code, _, err) = run(&["completions", "tcsh"]);
    assert_eq!(code, 2, "{err}");

    let (code, man, err) = run(&["man"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        man.starts_with(".ie") || man.contains(".TH ipswcheck"),
        "{man}"
    );
    assert!(man.contains(".TH ipswcheck 1"), "{man}");
    assert!(man.contains("\\-\\-device"), "{man}");
}

#[test]
fn version_names_the_commit_and_the_features() {
    let (code, out, _) = run(&["--version"]);
    assert_eq!(code, 0);
    let line = out.trim();
    let rest = line
        .strip_prefix(&format!("ipswcheck {} (commit ", env!("CARGO_PKG_VERSION")))
        .unwrap_or_else(|| panic!("{line}"));
    let (commit, features) = rest.split_once("; features: ").expect(line);
    assert!(
        commit == "unknown" || (commit.len() >= 7 && commit.chars().all(|c| c.is_ascii_hexdigit())),
        "{line}"
    );
    let expected = if cfg!(feature = "aws-lc") {
        "aws-lc)"
    } else {
        "none)"
    };
    assert_eq!(features, expected, "{line}");
}

#[test]
fn help_shows_the_three_main_jobs_and_the_exit_codes() {
    for flag in ["--help", "-h"] {
        let (code, out, _) = run(&[flag]);
        assert_eq!(code, 0);
        assert!(out.contains("Examples:"), "{out}");
        assert!(out.contains("ipswcheck iPhone_4.7_P3_15.8_19H370_Restore.ipsw --device iPhone9,3"));
        assert!(out.contains("ipswcheck scan "), "{out}");
        assert!(out.contains("ipswcheck https://"), "{out}");
        assert!(out.contains("ipswcheck fetch https://"), "{out}");
        assert!(out.contains("Exit codes:\n  0 ready · 2 usage"), "{out}");
        assert!(out.contains("30 not signed · 31 signing unknown"), "{out}");
        assert!(out.lines().all(|l| l.chars().count() <= 100), "{out}");
        for sub in [
            "devices",
            "signed",
            "doctor",
            "scan",
            "fetch",
            "completions",
            "man",
        ] {
            assert!(out.contains(sub), "{sub}: {out}");
        }
        assert!(out.contains("--color"), "{out}");
    }
}

#[test]
fn the_license_files_match_the_crate_license() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mit = std::fs::read_to_string(root.join("LICENSE-MIT")).unwrap();
    assert!(mit.contains("Copyright (c) The ipswcheck developers"));
    assert!(mit.contains("Permission is hereby granted, free of charge"));
    let apache = std::fs::read_to_string(root.join("LICENSE-APACHE")).unwrap();
    assert!(apache.contains("Apache License\n                           Version 2.0, January 2004"));
    assert!(apache.contains("Copyright The ipswcheck developers"));
    let manifest = std::fs::read_to_string(root.join("Cargo.toml")).unwrap();
    assert!(manifest.contains("license = \"MIT OR Apache-2.0\""));
}
