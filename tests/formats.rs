//! Snapshots of every output format (human, table, json, ndjson, csv) of every command
//! that prints a result — a check, a scan, `signed` — on the committed sample IPSW and on
//! a damaged copy of it. The snapshots live in `tests/snapshots/`; a change of wording or
//! of a JSON field shows up as a diff to review (`cargo insta review`, or
//! `INSTA_UPDATE=always` to accept), never silently. Temporary paths and timings are
//! replaced by placeholders.

use std::path::{Path, PathBuf};

use crate::util::http::Reply;
use crate::util::signing::FakeServer;
use crate::util::*;

const FORMATS: [&str; 5] = ["human", "table", "json", "ndjson", "csv"];

/// Placeholders for what changes from run to run.
fn filters(dir: &Path) -> Vec<(String, &'static str)> {
    vec![
        (regex_escape(&dir.display().to_string()), "[DIR]"),
        (
            r#""elapsed_seconds": [0-9.e-]+"#.into(),
            r#""elapsed_seconds": "[T]""#,
        ),
        (
            r#""elapsed_seconds":[0-9.e-]+"#.into(),
            r#""elapsed_seconds":"[T]""#,
        ),
        (r"read in [0-9.]+ s".into(), "read in [T] s"),
    ]
}

fn regex_escape(text: &str) -> String {
    text.chars()
        .flat_map(|c| {
            if "\\.+*?()|[]{}^$#&-~".contains(c) {
                vec!['\\', c]
            } else {
                vec![c]
            }
        })
        .collect()
}

fn snapshot(name: &str, dir: &Path, text: &str) {
    let filters = filters(dir);
    let filters: Vec<(&str, &str)> = filters.iter().map(|(a, b)| (a.as_str(), *b)).collect();
    insta::with_settings!({ filters => filters, prepend_module_to_snapshot => false }, {
        insta::assert_snapshot!(name, text);
    });
}

/// The sample, and a copy with one byte of its largest entry flipped (a CRC failure and
/// a component mismatch: exit 10, error 14), under `dir`.
fn files(dir: &Path) -> (PathBuf, PathBuf) {
    let good = dir.join("sample.ipsw");
    std::fs::copy(sample_ipsw(), &good).unwrap();
    let archive = ipswcheck::archive::Archive::open(&good).unwrap();
    let big = archive
        .entries()
        .iter()
        .max_by_key(|e| e.compressed_size)
        .unwrap()
        .clone();
    drop(archive);
    let mut bytes = std::fs::read(&good).unwrap();
    // The entry's data starts after its local header: 30 bytes, the name, the extra field.
    let h = big.header_offset as usize;
    let extra = u16::from_le_bytes([bytes[h + 28], bytes[h + 29]]) as usize;
    let name = u16::from_le_bytes([bytes[h + 26], bytes[h + 27]]) as usize;
    let at = h + 30 + name + extra + big.compressed_size as usize / 2;
    bytes[at] ^= 0x40;
    let bad = dir.join("damaged.ipsw");
    std::fs::write(&bad, bytes).unwrap();
    (good, bad)
}

fn offline_args<'a>(extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "--offline",
        "--hosts-file",
        "/nonexistent/ipswcheck-test/hosts",
    ];
    args.extend_from_slice(extra);
    args
}

#[test]
fn a_check_in_every_format() {
    let dir = tempfile::tempdir().unwrap();
    let (good, bad) = files(dir.path());
    for (label, file, code) in [("sample", &good, 0), ("damaged", &bad, 10)] {
        for format in FORMATS {
            let name = file.file_name().unwrap().to_str().unwrap();
            let mut args = vec![name, "--device", "iPhone9,3"];
            args.extend(offline_args(&["--format", format]));
            // Relative paths: the output is the same wherever the temporary folder is.
            let (got, out, err) = run_in(Some(dir.path()), &args, &[]);
            assert_eq!(got, code, "{label} {format}: {out}{err}");
            snapshot(&format!("check_{label}_{format}"), dir.path(), &out);
        }
    }
}

#[test]
fn a_scan_in_every_format() {
    let dir = tempfile::tempdir().unwrap();
    let lib = dir.path().join("lib");
    std::fs::create_dir(&lib).unwrap();
    files(&lib);
    let cache = dir.path().join("cache");
    for format in FORMATS {
        let mut args = vec![
            "scan",
            "lib",
            "--device",
            "iPhone9,3",
            "--cache-dir",
            cache.to_str().unwrap(),
            "--rehash",
        ];
        args.extend(offline_args(&["--format", format]));
        let (code, out, err) = run_in(Some(dir.path()), &args, &[]);
        assert_eq!(code, 1, "{format}: {out}{err}");
        snapshot(&format!("scan_{format}"), dir.path(), &out);
    }
}

#[test]
fn signed_in_every_format() {
    let dir = tempfile::tempdir().unwrap();
    let body = serde_json::json!({
        "name": "iPhone 7", "identifier": "iPhone9,3",
        "boards": [{"boardconfig": "d101ap", "platform": "t8010", "cpid": 32784, "bdid": 12}],
        "firmwares": [
            {"identifier": "iPhone9,3", "version": "15.8", "buildid": "19H370",
             "sha1sum": "4f6c0000000000000000000000000000000000aa", "filesize": 1,
             "url": "https://updates.cdn-apple.com/x/iPhone_4.7_P3_15.8_19H370_Restore.ipsw",
             "signed": true},
            {"identifier": "iPhone9,3", "version": "15.7", "buildid": "19H12",
             "url": "https://updates.cdn-apple.com/x/old.ipsw", "signed": false}
        ]
    });
    let server = FakeServer::apple_and_ipswme(Reply::status(503), Reply::ok(body.to_string()));
    let cache = dir.path().join("cache");
    for format in FORMATS {
        let (code, out, err) = run(&[
            "signed",
            "--device",
            "iPhone9,3",
            "--api-url",
            &server.api_url(),
            "--cache-dir",
            cache.to_str().unwrap(),
            "--refresh",
            "--format",
            format,
        ]);
        assert_eq!(code, 0, "{format}: {out}{err}");
        snapshot(&format!("signed_{format}"), dir.path(), &out);
    }
}
