//! BuildManifest.plist and Restore.plist parsing (XML, binary and ASCII plists, through
//! the bounded reader), then what the check does with a parsed manifest: pick identities
//! for a device and build the TSS request that echoes its components.
//!
//! Invariants: nothing panics, nothing recurses without bound; the bounded reader and
//! `plist` agree on everything the bounded reader accepts (dates aside, which it reads
//! as text).
#![no_main]

use ipswcheck::manifest::{read_plist_bounded, BuildManifest, RestoreBehavior, RestorePlist};
use ipswcheck::signing::tss::try_build_tss_request;
use ipswcheck::{device, identify};
use libfuzzer_sys::fuzz_target;

fn has_date(v: &plist::Value) -> bool {
    match v {
        plist::Value::Date(_) | plist::Value::Uid(_) => true,
        plist::Value::Array(a) => a.iter().any(has_date),
        plist::Value::Dictionary(d) => d.values().any(has_date),
        _ => false,
    }
}

fuzz_target!(|data: &[u8]| {
    if let Ok(bounded) = read_plist_bounded(data) {
        // Accepted means shallow and small: safe to hand to plist itself and compare.
        if let Ok(reference) = plist::Value::from_reader(std::io::Cursor::new(data)) {
            if !has_date(&reference) {
                assert_eq!(bounded, reference);
            }
        }
    }
    let _ = RestorePlist::from_bytes(data);
    let manifest = match BuildManifest::from_bytes(data) {
        Ok(m) => m,
        Err(e) => {
            let _ = e.to_string();
            return;
        }
    };
    let _ = manifest.is_beta();
    for query in ["iPhone9,3", "iPhone8,1"] {
        let boards = device::resolve(query, None).expect("a known device");
        for behavior in [RestoreBehavior::Erase, RestoreBehavior::Update] {
            if let Ok(ids) = identify::select(&manifest, Some(&boards), behavior) {
                for id in ids {
                    if let Ok(request) = try_build_tss_request(id) {
                        let mut xml = Vec::new();
                        let _ = plist::Value::Dictionary(request).to_writer_xml(&mut xml);
                    }
                }
            }
        }
    }
    for id in identify::customer_identities(&manifest, RestoreBehavior::Erase) {
        for c in &id.components {
            let _ = c.algorithm();
        }
    }
});
