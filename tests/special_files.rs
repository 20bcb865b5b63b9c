//! Issue 14, class 5: special files behind every path the tool reads. A FIFO (no writer:
//! opening it for reading would block forever), `/dev/zero` (never ends), a directory,
//! or a file far too large, given as `--hosts-file`, `--ca-file`, `scan --urls`, or
//! found where a sidecar or a cache entry should be: every run ends quickly (the
//! deadline below is generous; a hang is what it catches) with an error that names the
//! file and the problem, or — for the tool's own sidecar and cache — treats it as absent.

#![cfg(unix)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::util;
use crate::util::robust::{run_limited, Limits, Outcome};
use crate::util::signing::{signed_body, FakeServer, Reply};

/// Far longer than any of these runs takes; a FIFO read would block past it forever.
const DEADLINE: Duration = Duration::from_secs(30);

fn run(args: &[&str]) -> Outcome {
    let out = run_limited(
        args,
        &Limits {
            wall: Some(DEADLINE),
            ..Limits::default()
        },
    );
    assert!(out.code.is_some(), "{args:?}: killed by a signal");
    assert!(!out.stderr.contains("panicked"), "{args:?}: {}", out.stderr);
    out
}

fn mkfifo(path: &Path) {
    let c = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0, "mkfifo");
}

/// The special files of every test, each with the words its error must contain.
fn specials(dir: &Path) -> Vec<(PathBuf, &'static str)> {
    let fifo = dir.join("fifo");
    mkfifo(&fifo);
    let folder = dir.join("folder");
    std::fs::create_dir(&folder).unwrap();
    vec![
        (fifo, "FIFO"),
        (PathBuf::from("/dev/zero"), "character device"),
        (folder, "directory"),
    ]
}

#[test]
fn url_lists_that_are_special_or_huge_are_refused_quickly() {
    let dir = tempfile::tempdir().unwrap();
    let mut cases: Vec<(PathBuf, &str)> = specials(dir.path());
    // A million lines: over the size cap, refused before a single URL is checked.
    let million = dir.path().join("million.txt");
    let line = "http://127.0.0.1:9/a.ipsw\n";
    std::fs::write(&million, line.repeat(1_000_000)).unwrap();
    cases.push((million, "larger than"));
    // Small enough in bytes, but more URLs than one scan checks.
    let many = dir.path().join("many.txt");
    std::fs::write(&many, "http://h/x\n".repeat(10_001)).unwrap();
    cases.push((many, "more than 10000 URLs"));
    // Binary junk is not a list of URLs.
    let binary = dir.path().join("binary.txt");
    std::fs::write(&binary, [0xffu8, 0xfe, 0, 1, 2]).unwrap();
    cases.push((binary, "not UTF-8"));
    for (path, words) in cases {
        let out = run(&["scan", "--urls", path.to_str().unwrap(), "--offline"]);
        // --offline refuses URLs before reading the list: ask without it.
        assert_eq!(out.code, Some(2), "{}: {}", path.display(), out.stderr);
        let out = run(&[
            "scan",
            "--urls",
            path.to_str().unwrap(),
            "--tss-url",
            "http://127.0.0.1:9/tss",
            "--api-url",
            "http://127.0.0.1:9/api",
            "--hosts-file",
            util::robust::NO_HOSTS,
        ]);
        assert_eq!(out.code, Some(2), "{}: {}", path.display(), out.stderr);
        let first = out.stderr.lines().next().unwrap_or("");
        assert!(
            first.contains(&format!("--urls {}", path.display())) && first.contains(words),
            "{}: {}",
            path.display(),
            out.stderr
        );
        assert_eq!(out.stderr.trim_end().lines().count(), 1, "{}", out.stderr);
    }
}

#[test]
fn ca_files_that_are_special_are_refused_quickly() {
    let dir = tempfile::tempdir().unwrap();
    let sample = util::sample_ipsw();
    for (path, words) in specials(dir.path()) {
        let words = if words == "directory" {
            "directory"
        } else {
            "not a regular file"
        };
        for args in [
            vec![
                sample.to_str().unwrap(),
                "--ca-file",
                path.to_str().unwrap(),
            ],
            vec!["doctor", "--ca-file", path.to_str().unwrap()],
            vec![
                "signed",
                "--device",
                "iPhone9,3",
                "--ca-file",
                path.to_str().unwrap(),
            ],
        ] {
            let out = run(&args);
            assert_eq!(out.code, Some(2), "{args:?}: {}", out.stderr);
            assert!(
                out.stderr
                    .contains(&format!("--ca-file {}: ", path.display()))
                    && out.stderr.contains(words),
                "{args:?}: {}",
                out.stderr
            );
        }
    }
}

#[test]
fn hosts_files_that_are_special_are_named_and_never_hang() {
    let dir = tempfile::tempdir().unwrap();
    let sample = util::sample_ipsw();
    for (path, words) in specials(dir.path()) {
        // doctor says which file it could not read, and why.
        let out = run(&[
            "doctor",
            "--offline",
            "--hosts-file",
            path.to_str().unwrap(),
        ]);
        assert!(
            out.stdout
                .contains(&format!("could not read {}: ", path.display()))
                && out.stdout.contains(words),
            "{}: {}{}",
            path.display(),
            out.stdout,
            out.stderr
        );
        // A check is not held up by it.
        let out = run(&[
            sample.to_str().unwrap(),
            "--offline",
            "--hosts-file",
            path.to_str().unwrap(),
        ]);
        assert_eq!(out.code, Some(0), "{}: {}", path.display(), out.stdout);
    }
}

/// A sidecar next to a `FILE.part` that is a FIFO, `/dev/zero` (a link to it) or a
/// directory is not ours: fetch refuses the part at once, and leaves it alone.
#[test]
fn special_sidecars_are_not_trusted_and_never_hang() {
    let dir = tempfile::tempdir().unwrap();
    let files = util::remote::FileServer::start();
    let url = files.serve("fw.ipsw", &util::sample_ipsw());
    type Make = fn(&Path);
    let cases: [(&str, Make); 3] = [
        ("FIFO", mkfifo),
        ("/dev/zero", |p: &Path| {
            std::os::unix::fs::symlink("/dev/zero", p).unwrap()
        }),
        ("directory", |p: &Path| std::fs::create_dir(p).unwrap()),
    ];
    for (case, make) in cases {
        let out_dir = dir.path().join(case.replace('/', "_"));
        std::fs::create_dir(&out_dir).unwrap();
        let part = out_dir.join("fw.ipsw.part");
        std::fs::write(&part, b"partial").unwrap();
        make(&out_dir.join("fw.ipsw.part.json"));
        let dest = out_dir.join("fw.ipsw");
        let out = run(&["fetch", &url, "-o", dest.to_str().unwrap(), "--offline"]);
        assert_eq!(out.code, Some(2), "{case}: {}", out.stderr);
        assert!(
            out.stderr.contains("was not left by"),
            "{case}: {}",
            out.stderr
        );
        assert_eq!(std::fs::read(&part).unwrap(), b"partial", "{case}");
    }
    assert!(files.log().is_empty(), "{:?}", files.log());
}

/// A FIFO or a link to `/dev/zero` where the signing cache keeps ipsw.me's answer is a
/// cache miss: `signed` asks the server and answers.
#[test]
fn special_cache_entries_are_misses_and_never_hang() {
    let body = util::signing::ipswme_body("iPhone9,3", "19H370", true, "00");
    let server = FakeServer::apple_and_ipswme(Reply::ok(signed_body()), Reply::ok(body));
    for case in ["FIFO", "/dev/zero", "directory"] {
        let cache = tempfile::tempdir().unwrap();
        let entry = cache.path().join("ipswme-iPhone9,3.json");
        match case {
            "FIFO" => mkfifo(&entry),
            "/dev/zero" => std::os::unix::fs::symlink("/dev/zero", &entry).unwrap(),
            _ => std::fs::create_dir(&entry).unwrap(),
        }
        let out = run(&[
            "signed",
            "--device",
            "iPhone9,3",
            "--api-url",
            &server.api_url(),
            "--cache-dir",
            cache.path().to_str().unwrap(),
        ]);
        assert_eq!(out.code, Some(0), "{case}: {}{}", out.stdout, out.stderr);
        assert!(out.stdout.contains("19H370"), "{case}: {}", out.stdout);
    }
    assert_eq!(server.ipswme_requests().len(), 3);
}
