//! Odd but readable zips (issue 14, class 11): bytes before the archive (a
//! self-extractor stub) or after its end record, which `unzip` and Python's `zipfile`
//! read without complaint, are read and verified in full; the oddity is a warning, not a
//! failure. And zip-rs/zip2's corpus of odd zips (`tests/data/zip2`, MIT, see its
//! SOURCE.md) never makes the check panic, crash or hang.

use std::path::{Path, PathBuf};

use crate::util::robust::*;

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

/// A stub that looks like the start of a Windows self-extractor, `n` bytes long, with no
/// zip signature in it.
fn stub(n: usize) -> Vec<u8> {
    let mut v = b"MZ\x90\x00 self-extracting stub ".to_vec();
    v.resize(n, 0x2E);
    v
}

/// Checks `path` through the binary: READY (exit 0) with every component verified and
/// the oddity said as a warning naming `what`.
fn assert_read_with_warning(path: &Path, what: &str) {
    let o = check_offline(path, &["--json"]);
    o.assert_code(what, 0);
    let v: serde_json::Value = serde_json::from_str(&o.stdout).unwrap();
    assert_eq!(v["checks"]["archive"]["status"], "ok", "{what}: {v:#}");
    let items = v["checks"]["components"]["items"].as_array().unwrap();
    assert!(!items.is_empty());
    assert!(
        items
            .iter()
            .all(|c| c["status"] == "ok" || c["status"] == "skipped"),
        "{what}: {v:#}"
    );
    assert!(
        items.iter().any(|c| c["status"] == "ok"),
        "{what}: nothing was verified: {v:#}"
    );
    let odd: Vec<&serde_json::Value> = v["notes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["kind"] == "archive_oddity")
        .collect();
    assert_eq!(odd.len(), 1, "{what}: {v:#}");
    assert_eq!(odd[0]["check"], "archive");
    let text = odd[0]["message"].as_str().unwrap();
    assert!(text.contains(what), "{what}: {text}");
    // The human report says it as a warning.
    let o = check_offline(path, &[]);
    o.assert_code(what, 0);
    assert!(
        o.stdout
            .lines()
            .any(|l| l.contains("warning:") && l.contains(what)),
        "{}",
        o.stdout
    );
}

#[test]
fn bytes_before_the_archive_are_a_warning_and_everything_is_verified() {
    let dir = tempfile::tempdir().unwrap();
    let (sample_path, _, items) = sample(dir.path());
    let bytes = std::fs::read(&sample_path).unwrap();
    for n in [1usize, 1000, 70_000] {
        let mut odd = stub(n);
        odd.extend_from_slice(&bytes);
        let path = write(dir.path(), "prefixed.ipsw", &odd);
        assert_read_with_warning(&path, &format!("{n} bytes come before the zip archive"));
    }
    // zip64 end records: the locator's offset is short by the prefix too.
    let mut odd = stub(4096);
    odd.extend_from_slice(&rezip(&items, true));
    let path = write(dir.path(), "prefixed64.ipsw", &odd);
    assert_read_with_warning(&path, "4096 bytes come before the zip archive");
}

#[test]
fn bytes_after_the_end_record_are_a_warning_and_everything_is_verified() {
    let dir = tempfile::tempdir().unwrap();
    let (sample_path, _, items) = sample(dir.path());
    let bytes = std::fs::read(&sample_path).unwrap();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("a newline", b"\n".to_vec()),
        (
            "a signature block",
            b"-----BEGIN SIGNATURE-----\n0123456789\n".to_vec(),
        ),
        ("zeros", vec![0; 10_000]),
        // A stray end-record signature whose comment length runs past the end: not
        // an end record, so it is garbage too.
        (
            "a stray signature",
            b"PK\x05\x06\x00\x00\x00\x00\xff\xff".to_vec(),
        ),
    ];
    for (what, tail) in cases {
        let mut odd = bytes.clone();
        odd.extend_from_slice(&tail);
        let path = write(dir.path(), "trailing.ipsw", &odd);
        eprintln!("trailing: {what}");
        assert_read_with_warning(
            &path,
            &format!(
                "{} bytes of something else follow the zip's end record",
                tail.len()
            ),
        );
    }
    // Both at once, zip64.
    let mut odd = stub(512);
    odd.extend_from_slice(&rezip(&items, true));
    odd.extend_from_slice(&[0xAA; 300]);
    let path = write(dir.path(), "both.ipsw", &odd);
    let o = check_offline(&path, &["--json"]);
    o.assert_code("prefix and trailing bytes", 0);
    let v: serde_json::Value = serde_json::from_str(&o.stdout).unwrap();
    let odd: Vec<String> = v["notes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["kind"] == "archive_oddity")
        .map(|f| f["message"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(odd.len(), 2, "{v:#}");
}

#[test]
fn odd_layouts_still_catch_damage() {
    let dir = tempfile::tempdir().unwrap();
    let (sample_path, layout, _) = sample(dir.path());
    let mut bytes = std::fs::read(&sample_path).unwrap();
    // Flip a byte inside a component: with a prefix and a tail the damage is still found.
    let entry = layout
        .zip
        .entries
        .iter()
        .find(|e| e.name.ends_with(".im4p") && e.compressed_size > 64)
        .unwrap();
    bytes[(entry.data_offset + entry.compressed_size / 2) as usize] ^= 0x40;
    let mut odd = stub(333);
    odd.extend_from_slice(&bytes);
    odd.extend_from_slice(b"trailer");
    let path = write(dir.path(), "damaged.ipsw", &odd);
    let o = check_offline(&path, &[]);
    o.assert_code("damage behind a prefix", 10);
    assert!(o.stdout.contains("CRC-32 mismatch"), "{}", o.stdout);
    // A prefix with a cut-off archive is still a cut-off download.
    let cut = &odd[..odd.len() / 2];
    let path = write(dir.path(), "cut.ipsw", cut);
    let o = check_offline(&path, &[]);
    o.assert_code("a cut-off archive behind a prefix", 3);
}

/// Every file of zip2's corpus, through the binary (exit code documented, a verdict
/// line, no panic, no signal, within 60 s) and through the library's archive reader
/// (no panic). Most are not IPSWs (exit 3); none may be called READY.
#[test]
fn the_zip2_corpus_never_panics_or_hangs() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/zip2");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| !matches!(p.file_name().and_then(|n| n.to_str()), Some("SOURCE.md")))
        .collect();
    files.sort();
    assert!(files.len() >= 30, "the corpus is in the repository");
    let mut zips = 0;
    for file in &files {
        let what = file.file_name().unwrap().to_string_lossy().into_owned();
        let o = check_offline(file, &[]);
        o.assert_clean(&what);
        assert_ne!(o.code, Some(0), "{what}: {}", o.stdout);
        let bytes = std::fs::read(file).unwrap();
        let opened = std::thread::spawn(move || {
            ipswcheck::archive::Archive::from_bytes("corpus", &bytes).map(|a| {
                // Read every entry through, as a full check does.
                for e in a.entries() {
                    if let Ok(mut s) = a.stream(e) {
                        let _ = s.drain();
                    }
                }
                a.entries().len()
            })
        })
        .join()
        .unwrap_or_else(|_| panic!("{what}: the archive reader panicked"));
        zips += usize::from(opened.is_ok());
    }
    // Most of the corpus are zips the reader opens (odd ones among them).
    assert!(zips >= 20, "only {zips} of {} opened", files.len());
}
