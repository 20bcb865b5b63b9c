//! IM4P / IMG4 / IMG3 detection and retagging, checked against a direct computation.
//!
//! The input is one component file. `img4::classify` must keep its offsets inside what it
//! was shown; then the file is put in a one-entry archive whose manifest names it twice
//! (as `SEP`, hashed as stored, and as `RestoreSEP`, retagged to `rsep`), with digests
//! computed here from FIRMWARE.md §3 directly on the whole buffer. The streaming
//! verifier, which sees the file in chunks and patches the type on the fly, must agree.
#![no_main]

use std::sync::atomic::{AtomicBool, AtomicU64};

use ipswcheck::archive::Archive;
use ipswcheck::digest::DigestAlgorithm;
use ipswcheck::img4::{self, Container};
use ipswcheck::manifest::{BuildIdentity, IdentityInfo, ManifestComponent};
use ipswcheck::verify::{self, ComponentStatus, VerifyOptions};
use ipswcheck_fixture::zipwriter::{zip_in_memory, Method, ZipOptions};
use libfuzzer_sys::fuzz_target;

const PATH: &str = "Firmware/all_flash/sep-firmware.im4p";

/// The digest the rules give for `data`, retagged to `tag` where the container has a type.
fn expected(data: &[u8], container: Container, tag: Option<[u8; 4]>) -> Vec<u8> {
    let (start, end) = match container {
        Container::Img4 {
            im4p_start,
            im4p_end,
            ..
        } => (im4p_start as usize, im4p_end as usize),
        Container::Img3 {
            signed_start,
            signed_end,
        } => (signed_start as usize, signed_end as usize),
        _ => (0, data.len()),
    };
    let mut covered = data[start..end].to_vec();
    if let (Some(tag), Some((offset, _))) = (tag, container.payload_type()) {
        for (k, byte) in tag.iter().enumerate() {
            if let Some(i) = (offset + k).checked_sub(start) {
                if let Some(slot) = covered.get_mut(i) {
                    *slot = *byte;
                }
            }
        }
    }
    DigestAlgorithm::Sha384.digest(&covered)
}

fn component(name: &str, digest: Vec<u8>, retag: Option<&str>) -> ManifestComponent {
    ManifestComponent {
        name: name.into(),
        digest: Some(digest),
        trusted: Some(true),
        path: Some(PATH.into()),
        img4_payload_type: retag.map(str::to_owned),
        hash_method: None,
        is_ftab: false,
        has_info: true,
        restore_request_rules: Some(Vec::new()),
        download_digests: Default::default(),
        tss_fields: Default::default(),
    }
}

fuzz_target!(|data: &[u8]| {
    let head = &data[..data.len().min(img4::HEAD_LEN)];
    let container = img4::classify(head, data.len() as u64);
    match container {
        Container::Im4p { type_offset, .. } => assert!(type_offset + 4 <= head.len()),
        Container::Img4 {
            im4p_start,
            im4p_end,
            type_offset,
            ..
        } => {
            assert!(im4p_start <= im4p_end && im4p_end <= data.len() as u64);
            assert!(type_offset + 4 <= head.len());
        }
        Container::Img3 {
            signed_start,
            signed_end,
        } => assert!(signed_start <= signed_end && signed_end <= data.len() as u64),
        Container::Raw => {}
    }
    let _ = container.name();

    let (zip, _) = zip_in_memory(ZipOptions::default(), &[(PATH, Method::Stored, data)])
        .expect("an in-memory zip");
    let archive = Archive::from_bytes("img4.ipsw", &zip).expect("our own zip opens");
    let sep = expected(data, container, None);
    let rsep = expected(data, container, Some(*b"rsep"));
    let identity = BuildIdentity {
        index: 0,
        chip_id: Some(0x8010),
        board_id: Some(0x0C),
        security_domain: Some(1),
        product_type: None,
        unique_build_id: None,
        info: IdentityInfo::default(),
        components: vec![
            component("RestoreSEP", rsep, Some("rsep")),
            component("SEP", sep, None),
        ],
        tss: Default::default(),
    };
    let v = verify::verify(
        &archive,
        &[&identity],
        VerifyOptions {
            hash: true,
            whole_file: Vec::new(),
            shortcut: false,
            trusted: None,
        },
        &AtomicU64::new(0),
        &AtomicBool::new(false),
    );
    assert!(v.damaged_entries.is_empty(), "{:?}", v.damaged_entries);
    for finding in &v.components {
        assert_eq!(
            finding.status,
            ComponentStatus::Ok,
            "{finding:?} for a {} file",
            container.name()
        );
    }
});
