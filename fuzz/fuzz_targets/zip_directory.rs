//! The zip reader on arbitrary bytes: end-record triage, the central directory (the `zip`
//! crate), local headers, entry streams with their CRC and size checks, and — when the
//! bytes hold a BuildManifest.plist — the whole verification of the manifest's
//! components (IM4P detection, retagging, baseband members inside a nested zip).
//!
//! Invariants: nothing panics; a stream never yields more bytes than the directory
//! declared, and one that ends cleanly yielded exactly that many.
#![no_main]

use std::sync::atomic::{AtomicBool, AtomicU64};

use ipswcheck::archive::Archive;
use ipswcheck::digest::DigestAlgorithm;
use ipswcheck::identify;
use ipswcheck::manifest::{BuildManifest, RestoreBehavior};
use ipswcheck::verify::{self, VerifyOptions};
use libfuzzer_sys::fuzz_target;

/// Stop reading an entry after this much output: a bomb is stopped at its declared size,
/// which may legitimately be gigabytes, and the fuzzer wants throughput.
const READ_CAP: u64 = 16 << 20;

fuzz_target!(|data: &[u8]| {
    let archive = match Archive::from_bytes("fuzz.ipsw", data) {
        Ok(archive) => archive,
        Err(e) => {
            let _ = (e.to_string(), e.is_damage());
            return;
        }
    };
    let _ = archive.has_duplicate_names();
    for entry in archive.entries() {
        // Lookups are by exact bytes and never find a directory (issue 14, class 8): a
        // file entry whose name is valid UTF-8 is always found.
        if !entry.is_dir && entry.name.as_bytes() == entry.raw_name.as_slice() {
            assert!(archive.entry(&entry.name).is_some());
        }
        if let Ok(range) = archive.raw_range(entry) {
            assert!(range.end <= data.len());
        }
        let Ok(mut stream) = archive.stream(entry) else {
            continue;
        };
        let mut total = 0u64;
        loop {
            match stream.next_chunk() {
                Ok(Some(chunk)) => {
                    total += chunk.len() as u64;
                    assert!(total <= entry.size, "a stream went past its declared size");
                    if total > READ_CAP {
                        break;
                    }
                }
                Ok(None) => {
                    assert_eq!(
                        total, entry.size,
                        "a clean end must be at the declared size"
                    );
                    break;
                }
                Err(e) => {
                    let _ = e.to_string();
                    break;
                }
            }
        }
    }
    let Some(manifest_entry) = archive.entry("BuildManifest.plist") else {
        return;
    };
    let Ok(bytes) = archive.read_small(manifest_entry, 1 << 20) else {
        return;
    };
    let Ok(manifest) = BuildManifest::from_bytes(&bytes) else {
        return;
    };
    if archive
        .entries()
        .iter()
        .any(|e| e.size > READ_CAP && !e.is_dir)
    {
        return;
    }
    let identities = identify::customer_identities(&manifest, RestoreBehavior::Erase);
    let progress = AtomicU64::new(0);
    let cancel = AtomicBool::new(false);
    let v = verify::verify(
        &archive,
        &identities,
        VerifyOptions {
            hash: true,
            whole_file: vec![DigestAlgorithm::Sha1],
            shortcut: false,
            trusted: None,
        },
        &progress,
        &cancel,
    );
    assert!(!v.cancelled);
});
