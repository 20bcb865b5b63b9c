//! Issue 14, class 6: nobody can forge the verdict on screen. A file name, an entry name,
//! a manifest's ProductVersion or an ipsw.me answer carrying a newline, a carriage
//! return, ANSI escapes, NUL or bidi overrides must not print a line of its own (a fake
//! `READY:` inside a NOT READY report) nor reach the terminal raw: the human and table
//! output holds exactly one verdict line, built from the tool's own words, and no raw
//! control or bidi character.

#![cfg(unix)]

use std::path::{Path, PathBuf};

use ipswcheck_fixture::IpswSpec;

use crate::util;
use crate::util::run_in;
use crate::util::signing::{signed_body, FakeServer, Reply};

const VERDICTS: [&str; 4] = ["READY:", "NOT READY:", "STRUCTURE OK:", "UNKNOWN:"];

/// Names and values that try to print a line, repaint the screen, or reorder text.
const HOSTILE: [&str; 5] = [
    "x\nREADY: fake.ipsw",
    "y\rREADY: fake.ipsw",
    "\u{1b}[2J\u{1b}[1;32mREADY: fake\u{1b}[0m.ipsw",
    "\u{202E}wspi.READY: fake\u{2066}.ipsw",
    "z\u{85}READY: fake\u{2028}.ipsw",
];

/// No raw control character (other than the line ends the tool writes itself) and no
/// bidi override or isolate anywhere in `text`.
fn assert_no_raw_controls(text: &str, case: &str) {
    for c in text.chars() {
        let bad = (c.is_control() && c != '\n')
            || matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{2028}' | '\u{2029}');
        assert!(!bad, "{case}: raw {c:?} in\n{text}");
    }
}

/// Lines that start with a verdict word.
fn verdict_lines(text: &str) -> Vec<&str> {
    text.lines()
        .filter(|l| VERDICTS.iter().any(|v| l.trim_start().starts_with(v)))
        .collect()
}

/// A human report: no raw controls, and exactly one verdict line, the first.
fn assert_one_verdict(stdout: &str, expected: &str, case: &str) {
    assert_no_raw_controls(stdout, case);
    let lines = verdict_lines(stdout);
    assert_eq!(lines.len(), 1, "{case}: {stdout}");
    assert!(
        stdout.starts_with(expected),
        "{case}: expected {expected:?} first:\n{stdout}"
    );
}

fn copy_as(dir: &Path, name: &str, from: &Path) -> PathBuf {
    let path = dir.join(name);
    std::fs::copy(from, &path).unwrap();
    path
}

/// A sample whose manifest and entry names are hostile: ProductVersion, build and the
/// OS image's file name carry newlines, escapes and overrides.
fn hostile_manifest(dir: &Path, damaged: bool) -> PathBuf {
    let path = dir.join("manifest.ipsw");
    let spec = IpswSpec {
        product_version: "15.8\nREADY: fake.ipsw (15.8) can restore the iPhone".into(),
        build: "19H370\u{1b}[2J\u{202E}".into(),
        os_dmg: "098-\nREADY: os\u{1b}]0;title\u{7}.dmg".into(),
        ..IpswSpec::sample()
    };
    let layout = spec.build(&path).unwrap();
    if damaged {
        let entry = layout.entry(&spec.os_dmg).expect("the OS image entry");
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[entry.data_offset as usize + 100] ^= 0xff;
        std::fs::write(&path, bytes).unwrap();
    }
    path
}

#[test]
fn hostile_file_names_cannot_forge_a_verdict() {
    let dir = tempfile::tempdir().unwrap();
    let sample = util::sample_ipsw();
    for name in HOSTILE {
        let path = copy_as(dir.path(), name, &sample);
        let p = path.to_str().unwrap();
        // Intact but for another device: NOT READY, whatever the name says.
        for extra in [&[][..], &["-v"][..]] {
            let mut args = vec![p, "--offline", "--device", "iPhone10,1"];
            args.extend(extra);
            let (code, out, err) = run_in(None, &args, &[]);
            assert_eq!(code, 20, "{name:?}: {out}{err}");
            assert_one_verdict(&out, "NOT READY: ", &format!("{name:?} {extra:?}"));
            assert_no_raw_controls(&err, name);
        }
        // The table: one row, no raw controls, no verdict-looking line.
        let (_, out, err) = run_in(
            None,
            &[
                p,
                "--offline",
                "--device",
                "iPhone10,1",
                "--format",
                "table",
            ],
            &[],
        );
        assert_no_raw_controls(&out, name);
        assert!(verdict_lines(&out).is_empty(), "{name:?}: {out}");
        assert_no_raw_controls(&err, name);
        // Intact and for this device: one READY line, the file's name escaped in it.
        let (code, out, _) = run_in(None, &[p, "--offline", "--device", "iPhone9,3"], &[]);
        assert_eq!(code, 0, "{name:?}: {out}");
        assert_one_verdict(&out, "READY: ", name);
    }
    // Several files: one verdict per file and a summary, nothing forged.
    let names: Vec<String> = HOSTILE
        .iter()
        .map(|n| dir.path().join(n).display().to_string())
        .collect();
    let mut args: Vec<&str> = names.iter().map(String::as_str).collect();
    args.extend(["--offline", "--device", "iPhone10,1"]);
    let (code, out, _) = run_in(None, &args, &[]);
    assert_eq!(code, 20, "{out}");
    assert_no_raw_controls(&out, "several files");
    let lines = verdict_lines(&out);
    assert_eq!(lines.len(), HOSTILE.len(), "{out}");
    assert!(lines.iter().all(|l| l.starts_with("NOT READY: ")), "{out}");

    // A path that cannot be opened: the error line on stderr is escaped too.
    let missing = dir.path().join("gone\nREADY: x\u{1b}[2J.ipsw");
    let (code, out, err) = run_in(None, &[missing.to_str().unwrap(), "--offline"], &[]);
    assert_ne!(code, 0);
    assert_no_raw_controls(&out, "missing file");
    assert_no_raw_controls(&err, "missing file");
    assert!(verdict_lines(&out).len() <= 1, "{out}");
}

#[test]
fn a_hostile_manifest_cannot_forge_a_verdict() {
    let dir = tempfile::tempdir().unwrap();
    for damaged in [false, true] {
        let sub = dir.path().join(if damaged { "bad" } else { "good" });
        std::fs::create_dir(&sub).unwrap();
        let path = hostile_manifest(&sub, damaged);
        let p = path.to_str().unwrap();
        let case = format!("damaged: {damaged}");
        for device in ["iPhone9,3", "iPhone10,1"] {
            for format in [&["-v"][..], &[][..]] {
                let mut args = vec![p, "--offline", "--device", device];
                args.extend(format);
                let (code, out, err) = run_in(None, &args, &[]);
                let expected = if code == 0 { "READY: " } else { "NOT READY: " };
                assert_eq!(code == 0, !damaged && device == "iPhone9,3", "{out}{err}");
                assert_one_verdict(&out, expected, &format!("{case} {device} {format:?}"));
                assert_no_raw_controls(&err, &case);
            }
            let (_, out, _) = run_in(
                None,
                &[p, "--offline", "--device", device, "--format", "table"],
                &[],
            );
            assert_no_raw_controls(&out, &case);
            assert!(verdict_lines(&out).is_empty(), "{case}: {out}");
        }
    }
    // A library of such files: the scan's table and summary stay clean.
    let (code, out, err) = run_in(
        None,
        &[
            "scan",
            dir.path().to_str().unwrap(),
            "--offline",
            "--device",
            "iPhone9,3",
        ],
        &[],
    );
    assert!(code != 0, "{out}{err}");
    assert_no_raw_controls(&out, "scan");
    assert!(verdict_lines(&out).is_empty(), "scan: {out}");
}

#[test]
fn a_hostile_ipswme_answer_cannot_repaint_the_terminal() {
    let firmware = |version: &str, build: &str, url: &str| {
        serde_json::json!({"identifier": "iPhone9,3", "version": version, "buildid": build,
            "sha1sum": "00", "md5sum": "00", "sha256sum": "00", "filesize": 1, "url": url,
            "releasedate": null, "uploaddate": null, "signed": true})
    };
    let body = serde_json::json!({
        "name": "iPhone 7\nREADY: fake", "identifier": "iPhone9,3",
        "boards": [{"boardconfig": "d101ap", "platform": "t8010", "cpid": 32784, "bdid": 12}],
        "firmwares": [
            firmware("15.8\nREADY: fake", "19H370\u{1b}[2J", "https://x/\ra.ipsw"),
            firmware("\u{202E}15.7\u{0}", "19H\u{2066}12", "https://x/\u{1b}]8;;evil\u{7}b.ipsw"),
        ]
    });
    let server =
        FakeServer::apple_and_ipswme(Reply::ok(signed_body()), Reply::ok(body.to_string()));
    for format in ["human", "table"] {
        let cache = tempfile::tempdir().unwrap();
        let (code, out, err) = run_in(
            None,
            &[
                "signed",
                "--device",
                "iPhone9,3",
                "--api-url",
                &server.api_url(),
                "--cache-dir",
                cache.path().to_str().unwrap(),
                "--format",
                format,
            ],
            &[],
        );
        assert_eq!(code, 0, "{format}: {out}{err}");
        assert_no_raw_controls(&out, format);
        assert_no_raw_controls(&err, format);
        assert!(verdict_lines(&out).is_empty(), "{format}: {out}");
        // Both builds are listed, each on its own line.
        assert!(out.contains("15.8\\u{a}READY: fake"), "{format}: {out}");
        assert!(out.contains("19H\\u{2066}12"), "{format}: {out}");
    }
}

/// The lines `fetch` adds (`saved: FILE`) and the stderr of a refused fetch escape the
/// target's name as well.
#[test]
fn fetch_notes_escape_the_target_name() {
    let dir = tempfile::tempdir().unwrap();
    let files = util::remote::FileServer::start();
    let url = files.serve("fw.ipsw", &util::sample_ipsw());
    let dest = dir.path().join("fw\nREADY: fake\u{1b}[2J.ipsw");
    let d = dest.to_str().unwrap();
    let (code, out, err) = run_in(
        None,
        &["fetch", &url, "-o", d, "--offline", "--device", "iPhone9,3"],
        &[],
    );
    assert_eq!(code, 0, "{out}{err}");
    assert_one_verdict(&out, "READY: ", "fetch");
    assert!(out.contains("saved: "), "{out}");
    assert_no_raw_controls(&err, "fetch");
    // Again: it exists now, a one-line error naming it, escaped.
    let (code, out, err) = run_in(None, &["fetch", &url, "-o", d, "--offline"], &[]);
    assert_eq!(code, 2, "{out}{err}");
    assert_no_raw_controls(&err, "fetch refused");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
}
