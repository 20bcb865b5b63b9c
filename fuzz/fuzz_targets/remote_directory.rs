//! The remote reader on arbitrary files: the tail's end records (zip64 locator and record,
//! inside the tail or fetched from before it), the central directory's range and its cap,
//! the zip parser reading through range requests within its budget, and the manifests
//! read entry by entry — all of `remote::open_url` over a file held in memory
//! (`RemoteFile::in_memory`: every request counted as over HTTP). The input is decoded by
//! `remote::fuzz_file` (zeros inserted at a point), so a small input can stand for a file
//! larger than the tail.
//!
//! Invariants: nothing panics; what is fetched stays within the caps — the tail, one
//! maximal directory, the parser's budget and two plists — whatever the records claim.
#![no_main]

use ipswcheck::check::MAX_PLIST_BYTES;
use ipswcheck::remote::{self, RemoteFile, MAX_DIRECTORY_BYTES, TAIL_LEN};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some(file) = remote::fuzz_file(data) else {
        return;
    };
    let size = file.len() as u64;
    let remote = RemoteFile::in_memory("fuzz.ipsw", file);
    match remote::open_url(&remote) {
        Ok(ipsw) => {
            // Lookups are by exact bytes and never find a directory (issue 14, class 8).
            for entry in ipsw.archive.entries() {
                if !entry.is_dir && entry.name.as_bytes() == entry.raw_name.as_slice() {
                    assert!(ipsw.archive.entry(&entry.name).is_some());
                }
            }
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
    let bound = TAIL_LEN + 2 * MAX_DIRECTORY_BYTES + 2 * (MAX_PLIST_BYTES + (1 << 20)) + 64;
    assert!(remote.bytes_fetched() <= bound);
    // Nothing beyond the file is ever "fetched".
    assert!(remote.cached_suffix().1.len() as u64 <= size);
});
