//! `--quick` at any manifest size: the fast XML plist reader (src/manifest/quick.rs)
//! gives exactly what the full, bounded reader gives, on every real plist in
//! `../shared/realdata` and `../shared/data/buildmanifests`.

use std::path::{Path, PathBuf};

use ipswcheck::manifest::{read_plist_bounded, read_xml_plist, BuildManifest};

use crate::util;

fn plists(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            plists(&path, out);
        } else if path.extension().is_some_and(|e| e == "plist") {
            out.push(path);
        }
    }
}

#[test]
fn the_fast_reader_equals_the_full_one_on_every_real_plist() {
    let mut files = Vec::new();
    for rel in ["realdata", "data/buildmanifests"] {
        let Some(dir) = util::shared(rel) else {
            return;
        };
        plists(&dir, &mut files);
    }
    let (mut xml, mut manifests) = (0, 0);
    for path in &files {
        let bytes = std::fs::read(path).unwrap();
        let full = read_plist_bounded(&bytes);
        let fast = read_xml_plist(&bytes);
        if bytes.starts_with(b"bplist") {
            assert!(
                fast.is_none(),
                "{}: binary is the full reader's",
                path.display()
            );
            continue;
        }
        xml += 1;
        // Every real XML plist is in the subset the fast reader reads: the fast path is
        // the one taken.
        let fast = fast.unwrap_or_else(|| panic!("{}: declined", path.display()));
        assert_eq!(Ok(fast), full, "{}", path.display());
        if path
            .file_name()
            .is_some_and(|n| n.to_string_lossy().contains("BuildManifest"))
        {
            // The typed manifest (what --quick and every check use) parses.
            BuildManifest::from_bytes(&bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            manifests += 1;
        }
    }
    assert!(
        xml >= 30 && manifests >= 8,
        "{xml} XML plists, {manifests} manifests"
    );
}
