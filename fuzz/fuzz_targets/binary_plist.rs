//! Binary plists (BuildManifest.plist, Restore.plist, TSS answers can all be binary),
//! structure-aware: the input is a list of objects, and the target writes the offset
//! table and trailer around them, so libFuzzer explores object graphs — references
//! shared by many containers, cycles, deep chains, huge declared lengths — instead of
//! spending its time on trailers that do not add up. Inputs that already start with
//! `bplist00` are used as they are.
//!
//! Layout of a structured input: byte 0 is the object count n (1 + byte % 64), byte 1
//! the reference size (1 or 2 bytes, so a reference is easy to hit) and the top object;
//! the rest is cut into n objects of equal length.
//!
//! Invariants: nothing panics, nothing recurses without bound, no input makes the
//! bounded reader build more than its caps (values and bytes); what it accepts, `plist`
//! reads to the same value; BuildManifest and Restore.plist parsing (within the memory
//! budget) never panics. Date objects (marker 0x33) included: `plist` 1.10 panics on a
//! date before the year 0, which the bounded reader refuses before `plist` sees it
//! (`manifest::bounded`, module `dates`).
#![no_main]

use ipswcheck::manifest::{
    read_plist_costed, BuildManifest, RestorePlist, MAX_PLIST_PAYLOAD, MAX_PLIST_VALUES, VALUE_COST,
};
use libfuzzer_sys::fuzz_target;

/// The binary plist a structured input describes.
fn assemble(data: &[u8]) -> Vec<u8> {
    if data.starts_with(b"bplist00") || data.len() < 2 {
        return data.to_vec();
    }
    let n = 1 + (data[0] as usize % 64);
    let ref_size = 1 + (data[1] & 1) as usize;
    let top = ((data[1] >> 1) as usize) % n;
    let body = &data[2..];
    let each = body.len() / n;
    let mut out = b"bplist00".to_vec();
    let mut offsets = Vec::with_capacity(n);
    for i in 0..n {
        offsets.push(out.len() as u64);
        let end = if i == n - 1 {
            body.len()
        } else {
            (i + 1) * each
        };
        out.extend_from_slice(&body[i * each..end]);
    }
    let table = out.len() as u64;
    for o in &offsets {
        out.extend_from_slice(&o.to_be_bytes());
    }
    out.extend_from_slice(&[0, 0, 0, 0, 0, 0, 8, ref_size as u8]);
    out.extend_from_slice(&(n as u64).to_be_bytes());
    out.extend_from_slice(&(top as u64).to_be_bytes());
    out.extend_from_slice(&table.to_be_bytes());
    out
}

fn incomparable(v: &plist::Value) -> bool {
    match v {
        plist::Value::Date(_) | plist::Value::Uid(_) => true,
        // NaN is never equal to itself, so no tree holding one compares equal.
        plist::Value::Real(r) if r.is_nan() => true,
        plist::Value::Array(a) => a.iter().any(incomparable),
        plist::Value::Dictionary(d) => d.values().any(incomparable),
        _ => false,
    }
}

fuzz_target!(|data: &[u8]| {
    let bytes = assemble(data);
    if let Ok((bounded, cost)) = read_plist_costed(&bytes) {
        // Accepted means within the caps...
        assert!(cost <= MAX_PLIST_VALUES * VALUE_COST + MAX_PLIST_PAYLOAD);
        // ...and so safe to hand to plist itself, which must agree.
        if let Ok(reference) = plist::Value::from_reader(std::io::Cursor::new(&bytes)) {
            if !incomparable(&reference) {
                assert_eq!(bounded, reference);
            }
        }
    }
    let _ = RestorePlist::from_bytes(&bytes);
    if let Ok(manifest) = BuildManifest::from_bytes(&bytes) {
        let _ = manifest.is_beta();
        let _ = manifest.platform();
    }
});
