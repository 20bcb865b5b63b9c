//! The seed corpus of the fuzz targets (`fuzz/corpus/<target>/seed-*`), generated here
//! so that it can be re-made when formats change:
//!
//!     IPSWCHECK_WRITE_FUZZ_SEEDS=1 cargo test --release --test tests fuzz_seed
//!
//! Seeds are small (a fuzzer mutates small inputs fastest) but reach deep: the mini IPSW
//! has a manifest whose every component verifies, with a retagged IM4P twin, an IMG4
//! container, a deflated kernelcache and a baseband zip inside the zip.

use ipswcheck::digest::DigestAlgorithm;
use ipswcheck_fixture::img4 as c;
use ipswcheck_fixture::rules;
use ipswcheck_fixture::zipwriter::{zip_in_memory, Method, ZipOptions};
use plist::{Dictionary, Value};

/// One seed file: the target it feeds, its name (`seed-…`), its bytes.
pub struct Seed {
    pub target: &'static str,
    pub name: &'static str,
    pub bytes: Vec<u8>,
}

fn component(digest: Vec<u8>, path: &str, payload_type: Option<&str>) -> Value {
    let mut info = Dictionary::new();
    info.insert("Path".into(), path.into());
    if let Some(t) = payload_type {
        info.insert("Img4PayloadType".into(), t.into());
    }
    let mut d = Dictionary::new();
    d.insert("Digest".into(), Value::Data(digest));
    d.insert("Trusted".into(), true.into());
    d.insert("Info".into(), Value::Dictionary(info));
    Value::Dictionary(d)
}

/// Entry name, method and bytes of each file of the mini IPSW.
pub type Files = Vec<(&'static str, Method, Vec<u8>)>;

/// The files of the mini IPSW and its BuildManifest (as a plist value).
pub fn mini_ipsw_parts() -> (Files, Value) {
    let sha384 = DigestAlgorithm::Sha384;
    let kernel = c::im4p(b"krnl", "KernelCacheBuilder-2", &[0x5a; 96]);
    let tree = c::im4p(b"dtre", "DeviceTree", b"device-tree");
    let im4m = c::der_tlv(0x30, &c::ia5(b"IM4M"));
    let img4 = c::img4(&c::im4p(b"trst", "TrustCache", b"tc"), &im4m);
    let os = b"koly raw disk image".to_vec();
    let acdb = b"acdb member".to_vec();
    let (bbfw, _) = zip_in_memory(
        ZipOptions::default(),
        &[
            ("acdb.mbn", Method::DEFLATED, &acdb[..]),
            ("other.bin", Method::Stored, b"x"),
        ],
    )
    .unwrap();

    let mut manifest = Dictionary::new();
    manifest.insert(
        "KernelCache".into(),
        component(sha384.digest(&kernel), "kernelcache.release.d101", None),
    );
    manifest.insert(
        "DeviceTree".into(),
        component(
            sha384.digest(&tree),
            "Firmware/all_flash/DeviceTree.im4p",
            None,
        ),
    );
    manifest.insert(
        "RestoreDeviceTree".into(),
        component(
            rules::retagged_digest(sha384, &tree, b"rdtr").unwrap(),
            "Firmware/all_flash/DeviceTree.im4p",
            Some("rdtr"),
        ),
    );
    manifest.insert(
        "Ap,BootabilityBrainTrustCache".into(),
        component(
            rules::img4_digest(sha384, &img4).unwrap(),
            "Firmware/trust.img4",
            None,
        ),
    );
    manifest.insert(
        "OS".into(),
        component(sha384.digest(&os), "098-1.dmg", None),
    );
    let mut bb_info = Dictionary::new();
    bb_info.insert("Path".into(), "Firmware/ICE.bbfw".into());
    let mut bb = Dictionary::new();
    bb.insert(
        "ACDB-DownloadDigest".into(),
        Value::Data(DigestAlgorithm::Sha256.digest(&acdb)),
    );
    bb.insert("Info".into(), Value::Dictionary(bb_info));
    manifest.insert("BasebandFirmware".into(), Value::Dictionary(bb));

    let mut info = Dictionary::new();
    info.insert("DeviceClass".into(), "d101ap".into());
    info.insert("RestoreBehavior".into(), "Erase".into());
    info.insert("Variant".into(), "Customer Erase Install (IPSW)".into());
    let mut identity = Dictionary::new();
    identity.insert("ApChipID".into(), "0x8010".into());
    identity.insert("ApBoardID".into(), "0x0C".into());
    identity.insert("ApSecurityDomain".into(), "0x01".into());
    identity.insert("UniqueBuildID".into(), Value::Data(vec![7; 20]));
    identity.insert("Info".into(), Value::Dictionary(info));
    identity.insert("Manifest".into(), Value::Dictionary(manifest));
    let mut root = Dictionary::new();
    root.insert("ProductVersion".into(), "15.8".into());
    root.insert("ProductBuildVersion".into(), "19H370".into());
    root.insert(
        "SupportedProductTypes".into(),
        Value::Array(vec!["iPhone9,3".into()]),
    );
    root.insert(
        "BuildIdentities".into(),
        Value::Array(vec![Value::Dictionary(identity)]),
    );
    let files = vec![
        ("kernelcache.release.d101", Method::DEFLATED, kernel),
        ("Firmware/all_flash/DeviceTree.im4p", Method::Stored, tree),
        ("Firmware/trust.img4", Method::Stored, img4),
        ("098-1.dmg", Method::Stored, os),
        ("Firmware/ICE.bbfw", Method::Stored, bbfw),
    ];
    (files, Value::Dictionary(root))
}

pub fn xml(value: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    value.to_writer_xml(&mut out).unwrap();
    out
}

pub fn binary(value: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    value.to_writer_binary(&mut out).unwrap();
    out
}

/// The mini IPSW as a zip, its manifest stored (uncompressed) so that mutations of
/// the manifest's bytes stay meaningful.
pub fn mini_ipsw(options: ZipOptions, binary_manifest: bool) -> Vec<u8> {
    let (files, manifest) = mini_ipsw_parts();
    let manifest = if binary_manifest {
        binary(&manifest)
    } else {
        xml(&manifest)
    };
    let mut entries: Vec<(&str, Method, &[u8])> =
        vec![("BuildManifest.plist", Method::Stored, &manifest[..])];
    for (name, method, bytes) in &files {
        entries.push((name, *method, bytes));
    }
    zip_in_memory(options, &entries).unwrap().0
}

/// [`mini_ipsw`] with BuildManifest.plist last, where Apple puts it: a download verified
/// as it arrives meets every component before it knows their digests.
pub fn mini_ipsw_manifest_last() -> Vec<u8> {
    let (files, manifest) = mini_ipsw_parts();
    let manifest = xml(&manifest);
    let mut entries: Vec<(&str, Method, &[u8])> = files
        .iter()
        .map(|(name, method, bytes)| (*name, *method, &bytes[..]))
        .collect();
    entries.push(("BuildManifest.plist", Method::Stored, &manifest[..]));
    zip_in_memory(ZipOptions::default(), &entries).unwrap().0
}

/// A seed of the `remote_directory` target (decoded by `remote::fuzz_file`): `gap` zeros
/// to insert at `at`, then `bytes`.
pub fn remote_input(gap: u32, at: u32, bytes: &[u8]) -> Vec<u8> {
    let mut out = gap.to_le_bytes().to_vec();
    out.extend_from_slice(&at.to_le_bytes());
    out.extend_from_slice(bytes);
    out
}

/// `zip` as a `remote_directory` seed; `far`: with a 65,535-byte comment of zeros (left
/// to the decoder), so that its directory and zip64 record lie before the tail.
pub fn remote_seed(mut zip: Vec<u8>, far: bool) -> Vec<u8> {
    if !far {
        return remote_input(0, 0, &zip);
    }
    let n = zip.len();
    zip[n - 2..].copy_from_slice(&u16::MAX.to_le_bytes());
    remote_input(u16::MAX.into(), n as u32, &zip)
}

/// A file whose zip64 record, at its start and before the tail, claims a terabyte of
/// directory.
fn giant_directory_claim() -> Vec<u8> {
    let mut record = b"PK\x06\x06".to_vec();
    record.extend_from_slice(&44u64.to_le_bytes());
    record.extend_from_slice(&[0; 12]);
    record.extend_from_slice(&[0xFF; 16]);
    record.extend_from_slice(&(1u64 << 40).to_le_bytes());
    record.extend_from_slice(&56u64.to_le_bytes());
    let mut tail = b"PK\x06\x07\0\0\0\0".to_vec();
    tail.extend_from_slice(&0u64.to_le_bytes());
    tail.extend_from_slice(&1u32.to_le_bytes());
    tail.extend_from_slice(b"PK\x05\x06\0\0\0\0");
    tail.extend_from_slice(&[0xFF; 12]);
    tail.extend_from_slice(&[0; 2]);
    record.extend_from_slice(&tail);
    remote_input(70_000, 56, &record)
}

pub fn all() -> Vec<Seed> {
    let (_, manifest) = mini_ipsw_parts();
    let mut restore = Dictionary::new();
    restore.insert("ProductVersion".into(), "15.8".into());
    restore.insert("ProductBuildVersion".into(), "19H370".into());
    restore.insert(
        "SupportedProductTypes".into(),
        Value::Array(vec!["iPhone9,3".into()]),
    );
    let mut row = Dictionary::new();
    row.insert("BoardConfig".into(), "d101ap".into());
    row.insert("CPID".into(), Value::Integer(0x8010u64.into()));
    row.insert("BDID".into(), Value::Integer(0x0Cu64.into()));
    restore.insert(
        "DeviceMap".into(),
        Value::Array(vec![Value::Dictionary(row)]),
    );
    let restore = Value::Dictionary(restore);
    let ticket = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<plist version=\"1.0\">\n<dict>\n\t\
        <key>ApImg4Ticket</key>\n\t<data>MIIKbDADFgFJMIIKYw==</data>\n</dict>\n</plist>\n";
    let ipswme = serde_json::json!({
        "name": "iPhone 7", "identifier": "iPhone9,3",
        "boards": [{"boardconfig": "d101ap", "platform": "t8010", "cpid": 32784, "bdid": 12}],
        "firmwares": [
            {"identifier": "iPhone9,3", "version": "15.8", "buildid": "19H370",
             "sha1sum": "0123456789abcdef0123456789abcdef01234567", "md5sum": "00",
             "sha256sum": null, "filesize": 5000000000u64,
             "url": "https://updates.cdn-apple.com/x.ipsw",
             "releasedate": "2023-01-23T18:00:00Z", "uploaddate": "2023-01-23T18:00:00Z",
             "signed": true},
            {"identifier": "iPhone9,3", "buildid": "broken"}
        ]
    })
    .to_string();

    let dd = ZipOptions {
        data_descriptors: true,
        ..ZipOptions::default()
    };
    let z64 = ZipOptions {
        force_zip64: true,
        ..ZipOptions::default()
    };
    let seed = |target, name, bytes| Seed {
        target,
        name,
        bytes,
    };
    vec![
        seed(
            "zip_directory",
            "seed-mini-ipsw",
            mini_ipsw(ZipOptions::default(), false),
        ),
        seed(
            "zip_directory",
            "seed-mini-ipsw-zip64",
            mini_ipsw(z64, true),
        ),
        seed(
            "zip_directory",
            "seed-mini-ipsw-data-descriptors",
            mini_ipsw(dd, true),
        ),
        seed(
            "streamed",
            "seed-mini-ipsw",
            mini_ipsw(ZipOptions::default(), false),
        ),
        seed("streamed", "seed-mini-ipsw-zip64", mini_ipsw(z64, true)),
        seed(
            "streamed",
            "seed-mini-ipsw-manifest-last",
            mini_ipsw_manifest_last(),
        ),
        seed(
            "streamed",
            "seed-mini-ipsw-data-descriptors",
            mini_ipsw(dd, true),
        ),
        seed(
            "zip_directory",
            "seed-empty-zip",
            b"PK\x05\x06\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0".to_vec(),
        ),
        seed("manifest", "seed-manifest-xml", xml(&manifest)),
        seed("manifest", "seed-manifest-binary", binary(&manifest)),
        seed("manifest", "seed-restore-plist", xml(&restore)),
        seed(
            "manifest",
            "seed-ascii",
            b"{ ProductVersion = \"15.8\"; BuildIdentities = ( { Info = { Variant = x; }; } ); }"
                .to_vec(),
        ),
        seed(
            "img4",
            "seed-im4p",
            c::im4p(b"sepi", "AppleSEPOS-1", &[0xA5; 48]),
        ),
        seed(
            "img4",
            "seed-im4p-long-length",
            c::im4p(b"krnl", "KernelCache", &[0x11; 300]),
        ),
        seed(
            "img4",
            "seed-img4",
            c::img4(
                &c::im4p(b"trst", "TrustCache", b"tc"),
                &c::der_tlv(0x30, &c::ia5(b"IM4M")),
            ),
        ),
        seed(
            "img4",
            "seed-img3",
            c::img3(b"illb", b"payload", "iBoot-1940.10.58", 1),
        ),
        seed("img4", "seed-raw", b"koly raw".to_vec()),
        seed(
            "tss_response",
            "seed-signed",
            format!("STATUS=0&MESSAGE=SUCCESS&REQUEST_STRING={ticket}").into_bytes(),
        ),
        seed(
            "tss_response",
            "seed-not-signed",
            b"STATUS=94&MESSAGE=This device isn't eligible for the requested build.".to_vec(),
        ),
        seed(
            "tss_response",
            "seed-other-status",
            b"STATUS=128&MESSAGE=An internal error occurred.".to_vec(),
        ),
        seed("ipswme", "seed-device", ipswme.into_bytes()),
        seed(
            "remote_directory",
            "seed-mini-ipsw",
            remote_seed(mini_ipsw(ZipOptions::default(), false), false),
        ),
        seed(
            "remote_directory",
            "seed-mini-ipsw-far",
            remote_seed(mini_ipsw(ZipOptions::default(), false), true),
        ),
        seed(
            "remote_directory",
            "seed-mini-ipsw-zip64-far",
            remote_seed(mini_ipsw(z64, true), true),
        ),
        seed(
            "remote_directory",
            "seed-giant-directory-claim",
            giant_directory_claim(),
        ),
    ]
}
