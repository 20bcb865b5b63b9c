//! The fixture builder (`ipswcheck_fixture`): reproducible, readable by the `zip` crate,
//! and its manifests' digests agree with hashes computed here, independently, from the
//! (Long: one test per fixture preset and per damage helper, each checked with the `zip`
//! crate and an independent hash.)
//!
//! bytes in the archive.

use std::collections::BTreeSet;
use std::fs;
use std::io::{Cursor, Read};
use std::path::{Path, PathBuf};
use std::time::Instant;

use ipswcheck::manifest::{BuildManifest, RestorePlist};
use ipswcheck_fixture::{
    BasebandKind, DigestRule, FixtureLayout, IdentityKind, IpswSpec, Method, PlistFormat,
};
use sha1::Sha1;
use sha2::{Digest as _, Sha256, Sha384};

// ---------------------------------------------------------------------------------------
// Independent helpers (deliberately not the builder's own code).

fn sha1(b: &[u8]) -> Vec<u8> {
    Sha1::digest(b).to_vec()
}
fn sha256(b: &[u8]) -> Vec<u8> {
    Sha256::digest(b).to_vec()
}
fn sha384(b: &[u8]) -> Vec<u8> {
    Sha384::digest(b).to_vec()
}

/// Hash with the algorithm the digest length names (20/32/48 bytes).
fn hash_like(digest: &[u8], data: &[u8]) -> Vec<u8> {
    match digest.len() {
        20 => sha1(data),
        32 => sha256(data),
        48 => sha384(data),
        n => panic!("unexpected digest length {n}"),
    }
}

/// (tag, content offset, content length) of the DER element at `at`.
fn der(buf: &[u8], at: usize) -> (u8, usize, usize) {
    let tag = buf[at];
    let first = buf[at + 1];
    if first < 0x80 {
        return (tag, at + 2, first as usize);
    }
    let n = (first & 0x7f) as usize;
    let len = buf[at + 2..at + 2 + n]
        .iter()
        .fold(0usize, |a, &b| (a << 8) | b as usize);
    (tag, at + 2 + n, len)
}

/// Offset of the IM4P type string: SEQUENCE → IA5 "IM4P" → IA5 type.
fn im4p_type_at(im4p: &[u8]) -> usize {
    let (tag, body, _) = der(im4p, 0);
    assert_eq!(tag, 0x30);
    let (tag, magic, magic_len) = der(im4p, body);
    assert_eq!((tag, &im4p[magic..magic + magic_len]), (0x16, &b"IM4P"[..]));
    let (tag, ty, ty_len) = der(im4p, magic + magic_len);
    assert_eq!((tag, ty_len), (0x16, 4));
    ty
}

fn tmp() -> tempfile::TempDir {
    tempfile::tempdir().expect("temp dir")
}

fn build(spec: &IpswSpec, dir: &Path, name: &str) -> (PathBuf, FixtureLayout) {
    let path = dir.join(name);
    let layout = spec.build(&path).expect("build fixture");
    (path, layout)
}

fn archive(path: &Path) -> zip::ZipArchive<Cursor<Vec<u8>>> {
    zip::ZipArchive::new(Cursor::new(fs::read(path).unwrap())).expect("zip crate opens the fixture")
}

fn read_entry(z: &mut zip::ZipArchive<Cursor<Vec<u8>>>, name: &str) -> Vec<u8> {
    let mut f = z.by_name(name).unwrap_or_else(|e| panic!("{name}: {e}"));
    let mut v = Vec::new();
    f.read_to_end(&mut v).unwrap();
    v
}

/// Every entry reads to the end (the crate checks CRCs) and the layout agrees with the
/// crate's offsets and sizes.
fn check_zip_against_layout(path: &Path, layout: &FixtureLayout) {
    let mut z = archive(path);
    assert_eq!(z.len(), layout.zip.entries.len());
    assert_eq!(fs::metadata(path).unwrap().len(), layout.file_size);
    for (i, e) in layout.zip.entries.iter().enumerate() {
        let mut f = z.by_index(i).unwrap();
        assert_eq!(f.name().unwrap(), e.name.as_str());
        assert_eq!(f.header_start(), e.local_header_offset, "{}", e.name);
        assert_eq!(f.data_start(), Some(e.data_offset), "{}", e.name);
        assert_eq!(f.compressed_size(), e.compressed_size, "{}", e.name);
        assert_eq!(f.size(), e.uncompressed_size, "{}", e.name);
        assert_eq!(f.crc32(), e.crc32, "{}", e.name);
        let expected_method = if e.method == 0 {
            zip::CompressionMethod::Stored
        } else {
            zip::CompressionMethod::Deflated
        };
        assert_eq!(f.compression(), expected_method, "{}", e.name);
        let mut sink = Vec::new();
        f.read_to_end(&mut sink)
            .unwrap_or_else(|err| panic!("{}: {err}", e.name));
        assert_eq!(sink.len() as u64, e.uncompressed_size);
    }
    z.validate_header_consistency()
        .expect("local and central headers agree");
}

fn sample_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/sample.ipsw")
}

// ---------------------------------------------------------------------------------------

#[test]
fn sample_is_reproducible_and_matches_the_committed_file() {
    let dir = tmp();
    let (a, _) = build(&IpswSpec::sample(), dir.path(), "a.ipsw");
    let (b, _) = build(&IpswSpec::sample(), dir.path(), "b.ipsw");
    let (a, b) = (fs::read(a).unwrap(), fs::read(b).unwrap());
    assert!(a == b, "two builds of the sample differ");
    assert!(a.len() < 300_000, "sample is {} bytes", a.len());
    let committed = fs::read(sample_path()).expect(
        "testdata/sample.ipsw is missing: cargo run --release --example make_fixture -- testdata/sample.ipsw",
    );
    assert!(
        committed == a,
        "testdata/sample.ipsw is stale: regenerate it with \
         `cargo run --release --example make_fixture -- testdata/sample.ipsw`"
    );
}

#[test]
fn sample_reads_back_with_the_zip_crate() {
    let dir = tmp();
    let (path, layout) = build(&IpswSpec::sample(), dir.path(), "s.ipsw");
    check_zip_against_layout(&path, &layout);
    assert!(
        layout.zip.zip64_eocd_offset.is_none(),
        "a small archive needs no zip64"
    );
    let os = layout.entry("098-59390-010.dmg").unwrap();
    assert_eq!(os.method, 0, "the sample stores its OS");
    assert!(layout.entries_named().contains("Firmware/other/notes.txt"));
    assert_eq!(
        layout.unreferenced,
        vec![
            "Restore.plist",
            "Firmware/other/notes.txt",
            "BuildManifest.plist"
        ]
    );
}

trait Names {
    fn entries_named(&self) -> BTreeSet<&str>;
}
impl Names for FixtureLayout {
    fn entries_named(&self) -> BTreeSet<&str> {
        self.zip.entries.iter().map(|e| e.name.as_str()).collect()
    }
}

#[test]
fn manifest_parses_in_xml_and_binary() {
    let dir = tmp();
    for format in [PlistFormat::Xml, PlistFormat::Binary] {
        let spec = IpswSpec {
            manifest_format: format,
            ..IpswSpec::sample()
        };
        let (path, layout) = build(&spec, dir.path(), "m.ipsw");
        let mut z = archive(&path);
        let bytes = read_entry(&mut z, "BuildManifest.plist");
        assert_eq!(bytes, layout.manifest);
        match format {
            PlistFormat::Xml => assert!(bytes.starts_with(b"<?xml")),
            PlistFormat::Binary => assert!(bytes.starts_with(b"bplist00")),
        }
        let m = BuildManifest::from_bytes(&bytes).expect("BuildManifest parses");
        assert_eq!(m.product_version, "15.8");
        assert_eq!(m.build, "19H370");
        assert_eq!(m.supported_product_types, ["iPhone9,1", "iPhone9,3"]);
        // 2 boards × (Erase, Update, Research).
        assert_eq!(m.identities.len(), 6);
        assert_eq!(spec.identity_count(), 6);
        let classes: Vec<_> = m
            .identities
            .iter()
            .map(|i| i.info.device_class.clone().unwrap())
            .collect();
        assert_eq!(
            classes,
            ["d10ap", "d101ap", "d10ap", "d101ap", "d10ap", "d101ap"]
        );
        for (id, rec) in m.identities.iter().zip(&layout.identities) {
            let (chip, board) = match id.info.device_class.as_deref() {
                Some("d10ap") => (0x8010, 0x08),
                Some("d101ap") => (0x8010, 0x0C),
                other => panic!("unexpected board {other:?}"),
            };
            assert_eq!(
                (id.chip_id, id.board_id, id.security_domain),
                (Some(chip), Some(board), Some(1))
            );
            assert!(id.matches_board(&rec.board, chip, board));
            let ubid = id.unique_build_id.as_ref().unwrap();
            assert!((20..=32).contains(&ubid.len()));
            match rec.kind {
                IdentityKind::Erase => {
                    assert_eq!(id.info.restore_behavior.as_deref(), Some("Erase"));
                    assert_eq!(
                        id.info.variant.as_deref(),
                        Some("Customer Erase Install (IPSW)")
                    );
                }
                IdentityKind::Update => {
                    assert_eq!(id.info.restore_behavior.as_deref(), Some("Update"));
                    assert_eq!(
                        id.info.variant.as_deref(),
                        Some("Customer Upgrade Install (IPSW)")
                    );
                }
                IdentityKind::Research => {
                    assert_eq!(id.info.restore_behavior, None);
                    assert!(id.info.is_research());
                }
            }
            // Every digest is 48 bytes (A10 boot chain) except Savage (32) and skipped ones.
            for c in &id.components {
                if let Some(d) = &c.digest {
                    let want = if c.name.starts_with("Savage,") {
                        32
                    } else {
                        48
                    };
                    assert_eq!(d.len(), want, "{}", c.name);
                }
            }
            let os = id.component("OS").unwrap();
            assert_eq!(os.hash_method.as_deref(), Some("sha2-384"));
            assert!(id.component("ftap").unwrap().path.is_none());
            assert!(id.component("ftap").unwrap().digest.is_none());
            assert_eq!(id.component("ftap").unwrap().trusted, Some(true));
            assert!(id.component("Rap,RTKitOS").unwrap().is_ftab);
            let se = id.component("SE,UpdatePayload").unwrap();
            assert!(se.digest.is_none() && se.path.is_some());
            assert!(se.tss_fields.contains_key("ProductionUpdatePayloadHash"));
            assert!(id.component("AOP").unwrap().trusted == Some(false));
        }
        // Unique build ids differ between identities.
        let ids: BTreeSet<_> = m
            .identities
            .iter()
            .map(|i| i.unique_build_id.clone())
            .collect();
        assert_eq!(ids.len(), 6);

        let restore = RestorePlist::from_bytes(&read_entry(&mut z, "Restore.plist"))
            .expect("Restore.plist parses");
        assert_eq!(restore.build.as_deref(), Some("19H370"));
        assert_eq!(restore.supported_product_types, ["iPhone9,1", "iPhone9,3"]);
        let rows: Vec<_> = restore
            .device_map
            .iter()
            .map(|r| (r.board_config.as_str(), r.chip_id, r.board_id))
            .collect();
        assert_eq!(
            rows,
            [
                ("d10ap", Some(0x8010), Some(8)),
                ("d101ap", Some(0x8010), Some(12))
            ]
        );
    }
}

#[test]
fn digests_agree_with_independent_hashes() {
    let dir = tmp();
    let (path, layout) = build(&IpswSpec::sample(), dir.path(), "d.ipsw");
    let mut z = archive(&path);
    let m = BuildManifest::from_bytes(&read_entry(&mut z, "BuildManifest.plist")).unwrap();
    let d101 = m
        .identities
        .iter()
        .find(|i| {
            i.info.device_class.as_deref() == Some("d101ap")
                && i.info.restore_behavior.as_deref() == Some("Erase")
        })
        .unwrap();

    // An IM4P: the hash of the whole file as stored.
    let ibss = d101.component("iBSS").unwrap();
    assert_eq!(
        ibss.path.as_deref(),
        Some("Firmware/dfu/iBSS.d10.RELEASE.im4p")
    );
    let bytes = read_entry(&mut z, ibss.path.as_ref().unwrap());
    assert_eq!(&bytes[im4p_type_at(&bytes)..][..4], b"ibss");
    assert_eq!(ibss.digest.as_deref(), Some(&sha384(&bytes)[..]));

    // Per-board files where Apple has them.
    assert_eq!(
        d101.component("DeviceTree").unwrap().path.as_deref(),
        Some("Firmware/all_flash/DeviceTree.d101ap.im4p")
    );
    assert_eq!(
        d101.component("SEP").unwrap().path.as_deref(),
        Some("Firmware/all_flash/sep-firmware.d101.RELEASE.im4p")
    );

    // RestoreDeviceTree: the same file, hashed after its type is retagged rdtr.
    let rdt = d101.component("RestoreDeviceTree").unwrap();
    let dt = d101.component("DeviceTree").unwrap();
    assert_eq!(rdt.path, dt.path);
    assert_eq!(rdt.img4_payload_type.as_deref(), Some("rdtr"));
    let mut bytes = read_entry(&mut z, rdt.path.as_ref().unwrap());
    assert_eq!(dt.digest.as_deref(), Some(&sha384(&bytes)[..]));
    let at = im4p_type_at(&bytes);
    assert_eq!(&bytes[at..at + 4], b"dtre");
    bytes[at..at + 4].copy_from_slice(b"rdtr");
    assert_eq!(rdt.digest.as_deref(), Some(&sha384(&bytes)[..]));
    assert_ne!(rdt.digest, dt.digest);

    // The kernelcache is bigger than 64 KiB: type at offset 13, like most real files.
    let kc = read_entry(&mut z, "kernelcache.release.iphone9");
    assert_eq!(&kc[..2], &[0x30, 0x83]);
    assert_eq!(im4p_type_at(&kc), 13);
    let mut rk = kc.clone();
    rk[13..17].copy_from_slice(b"rkrn");
    assert_eq!(
        d101.component("RestoreKernelCache")
            .unwrap()
            .digest
            .as_deref(),
        Some(&sha384(&rk)[..])
    );

    // RestoreTrustCache points at the ramdisk's trust cache, typed trst, retagged rtsc.
    let rtc = d101.component("RestoreTrustCache").unwrap();
    assert_eq!(
        rtc.path.as_deref(),
        Some("Firmware/098-59484-010.dmg.trustcache")
    );
    let mut t = read_entry(&mut z, rtc.path.as_ref().unwrap());
    let at = im4p_type_at(&t);
    assert_eq!(&t[at..at + 4], b"trst");
    t[at..at + 4].copy_from_slice(b"rtsc");
    assert_eq!(rtc.digest.as_deref(), Some(&sha384(&t)[..]));

    // Savage: raw, SHA-256; the empty VT patch hashes to SHA-256("").
    let savage = d101.component("Savage,B0-Prod-Patch").unwrap();
    let s = read_entry(&mut z, savage.path.as_ref().unwrap());
    assert_eq!(savage.digest.as_deref(), Some(&sha256(&s)[..]));
    assert_eq!(savage.trusted, None);
    assert_eq!(
        d101.component("Savage,B0-Prod-PatchVT")
            .unwrap()
            .digest
            .as_deref(),
        Some(&sha256(b"")[..])
    );

    // OS (stored, raw DMG): whole file, and the stored bytes sit at the layout's range.
    let os = d101.component("OS").unwrap();
    let os_bytes = read_entry(&mut z, os.path.as_ref().unwrap());
    assert_eq!(os.digest.as_deref(), Some(&sha384(&os_bytes)[..]));
    let raw = fs::read(&path).unwrap();
    let e = layout.entry(os.path.as_ref().unwrap()).unwrap();
    assert_eq!(
        &raw[e.data_offset as usize..(e.data_offset + e.compressed_size) as usize],
        &os_bytes[..]
    );

    // Update identities restore with the update ramdisk.
    let upd = m
        .identities
        .iter()
        .find(|i| {
            i.info.device_class.as_deref() == Some("d101ap")
                && i.info.restore_behavior.as_deref() == Some("Update")
        })
        .unwrap();
    assert_eq!(
        upd.component("RestoreRamDisk").unwrap().path.as_deref(),
        Some("098-59563-010.dmg")
    );
    assert_eq!(
        d101.component("RestoreRamDisk").unwrap().path.as_deref(),
        Some("098-59484-010.dmg")
    );
    let rd = read_entry(&mut z, "098-59563-010.dmg");
    assert_eq!(
        upd.component("RestoreRamDisk").unwrap().digest.as_deref(),
        Some(&sha384(&rd)[..])
    );

    // IMG4 container: the digest covers the embedded IM4P only.
    let c = d101.component("Ap,BootabilityBrainTrustCache").unwrap();
    let img4 = read_entry(&mut z, c.path.as_ref().unwrap());
    let (_, body, _) = der(&img4, 0);
    let (_, magic, magic_len) = der(&img4, body);
    assert_eq!(&img4[magic..magic + magic_len], b"IMG4");
    let start = magic + magic_len;
    let (tag, p_body, p_len) = der(&img4, start);
    assert_eq!(tag, 0x30);
    assert_eq!(
        c.digest.as_deref(),
        Some(&sha384(&img4[start..p_body + p_len])[..])
    );
    assert_ne!(c.digest.as_deref(), Some(&sha384(&img4)[..]));

    // IsFTAB: the digest is not the file's.
    let ftab = d101.component("Rap,RTKitOS").unwrap();
    let fb = read_entry(&mut z, ftab.path.as_ref().unwrap());
    assert_ne!(ftab.digest.as_deref(), Some(&sha384(&fb)[..]));

    // Every Digest of every identity, by the rule the builder recorded, checked here.
    for rec in &layout.components {
        let Some(digest) = &rec.digest else { continue };
        let data = read_entry(&mut z, rec.path.as_ref().unwrap());
        match rec.rule {
            DigestRule::WholeFile => assert_eq!(&hash_like(digest, &data), digest, "{}", rec.name),
            DigestRule::Retagged(t) => {
                let mut d = data.clone();
                let at = im4p_type_at(&d);
                d[at..at + 4].copy_from_slice(&t);
                assert_eq!(&hash_like(digest, &d), digest, "{}", rec.name);
            }
            DigestRule::Img4Embedded | DigestRule::FtabEntry(_) => {}
            other => panic!("{}: unexpected rule {other:?} with a digest", rec.name),
        }
    }
}

#[test]
fn baseband_download_digests_hash_bbfw_members() {
    let dir = tmp();
    let (path, layout) = build(&IpswSpec::sample(), dir.path(), "bb.ipsw");
    let mut z = archive(&path);
    let m = BuildManifest::from_bytes(&read_entry(&mut z, "BuildManifest.plist")).unwrap();
    let d10 = m
        .identities
        .iter()
        .find(|i| i.info.device_class.as_deref() == Some("d10ap"))
        .unwrap();
    let bb = d10.component("BasebandFirmware").unwrap();
    assert!(bb.digest.is_none(), "BasebandFirmware has no Digest");
    assert_eq!(
        bb.path.as_deref(),
        Some("Firmware/Mav16-9.01.00.Release.bbfw")
    );
    let bbfw = read_entry(&mut z, bb.path.as_ref().unwrap());
    let mut inner = zip::ZipArchive::new(Cursor::new(bbfw)).expect("the .bbfw is a zip");
    let acdb = read_entry(&mut inner, "acdb.mbn");
    let want = bb
        .download_digests
        .get("ACDB")
        .expect("ACDB-DownloadDigest");
    assert_eq!(want.len(), 32, "iPhone 7 era basebands use SHA-256");
    assert_eq!(want, &sha256(&acdb));
    // Every DownloadDigest matches its member as the layout names it.
    let rec = layout
        .basebands
        .iter()
        .find(|b| b.path == *bb.path.as_ref().unwrap())
        .unwrap();
    for member in &rec.download_members {
        let data = read_entry(&mut inner, &member.member);
        assert_eq!(
            bb.download_digests.get(&member.key),
            Some(&sha256(&data)),
            "{}",
            member.key
        );
    }
    assert_eq!(rec.download_members.len(), bb.download_digests.len());
    // The member naming rule the README documents: lower-case key + .mbn / .bin.
    for b in &layout.basebands {
        let ext = if b.path.contains("/Mav") {
            "mbn"
        } else {
            "bin"
        };
        for member in &b.download_members {
            assert_eq!(
                member.member,
                format!("{}.{ext}", member.key.to_lowercase())
            );
        }
    }
    // SBL1-PartialDigest: u32le tail, u32le n, then 32 bytes of SHA-256 mid-state.
    let sbl1 = read_entry(&mut inner, "sbl1.mbn");
    let pd = bb
        .tss_fields
        .get("SBL1-PartialDigest")
        .and_then(|v| v.as_data())
        .unwrap();
    assert_eq!(pd.len(), 40);
    let tail = u32::from_le_bytes(pd[0..4].try_into().unwrap()) as usize;
    let n = u32::from_le_bytes(pd[4..8].try_into().unwrap()) as usize;
    assert_eq!(tail + n, sbl1.len());
    // The Intel board has its own baseband.
    let d101 = m
        .identities
        .iter()
        .find(|i| i.info.device_class.as_deref() == Some("d101ap"))
        .unwrap();
    let ice = d101.component("BasebandFirmware").unwrap();
    assert_eq!(
        ice.path.as_deref(),
        Some("Firmware/ICE16-6.02.02.Release.bbfw")
    );
    assert!(ice.download_digests.contains_key("EBL"));
    assert!(
        IpswSpec::sample().devices[1]
            .baseband
            .as_ref()
            .unwrap()
            .kind
            == BasebandKind::Intel
    );
}

/// The builder's partial digest (SHA mid-state) equals Apple's on the real Mav21 member.
#[test]
fn partial_digest_matches_a_real_baseband() {
    let Some(dir) = crate::util::shared("realdata/iPhone14,3_15.4.1_19E258") else {
        return;
    };
    let manifest = fs::read(dir.join("BuildManifest.plist")).unwrap();
    let sbl1 = fs::read(dir.join("Mav21-1.59.03.Release_extracted/sbl1.mbn")).unwrap();
    let m = BuildManifest::from_bytes(&manifest).unwrap();
    let bb = m.identities[0].component("BasebandFirmware").unwrap();
    let want = bb
        .tss_fields
        .get("SBL1-PartialDigest")
        .and_then(|v| v.as_data())
        .unwrap();
    let n = u32::from_le_bytes(want[4..8].try_into().unwrap()) as usize;
    let got = ipswcheck_fixture::rules::partial_digest(
        ipswcheck::digest::DigestAlgorithm::Sha384,
        &sbl1,
        n,
    )
    .unwrap();
    assert_eq!(got, want);
    // And ACDB is a plain SHA-384 of the member, as the builder writes it.
    let acdb = fs::read(dir.join("Mav21-1.59.03.Release_extracted/acdb.mbn")).unwrap();
    assert_eq!(bb.download_digests.get("ACDB"), Some(&sha384(&acdb)));
}

/// The builder's IM4P bytes equal Apple's for the same type, description and payload.
#[test]
fn im4p_headers_match_real_files() {
    let Some(dir) =
        crate::util::shared("realdata/iPhone10,3_iPhone10,6_11.2_15C114/Firmware/all_flash")
    else {
        return;
    };
    let names = [
        "batterylow1@3x~iphone.im4p",
        "applelogo@3x~iphone.im4p",
        "batterycharging1@3x~iphone.im4p",
        "DeviceTree.d22ap.im4p",
        "recoverymode@2436~iphone-lightning.im4p",
    ];
    for name in names {
        let real = fs::read(dir.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        let at = im4p_type_at(&real);
        let fourcc: [u8; 4] = real[at..at + 4].try_into().unwrap();
        let (_, desc_at, desc_len) = der(&real, at + 4);
        let desc = std::str::from_utf8(&real[desc_at..desc_at + desc_len]).unwrap();
        let (tag, payload_at, payload_len) = der(&real, desc_at + desc_len);
        assert_eq!(tag, 0x04);
        assert_eq!(
            payload_at + payload_len,
            real.len(),
            "{name} has trailing elements"
        );
        let ours = ipswcheck_fixture::img4::im4p(&fourcc, desc, &real[payload_at..]);
        assert!(ours == real, "{name}: rebuilt IM4P differs from Apple's");
    }
}

#[test]
fn payload_types_can_be_left_out() {
    let dir = tmp();
    let spec = IpswSpec {
        write_payload_types: false,
        ..IpswSpec::sample()
    };
    let (path, _) = build(&spec, dir.path(), "np.ipsw");
    let mut z = archive(&path);
    let m = BuildManifest::from_bytes(&read_entry(&mut z, "BuildManifest.plist")).unwrap();
    let id = &m.identities[0];
    for (name, tag) in [
        ("RestoreDeviceTree", b"rdtr"),
        ("RestoreLogo", b"rlgo"),
        ("RestoreSEP", b"rsep"),
    ] {
        let c = id.component(name).unwrap();
        assert_eq!(c.img4_payload_type, None, "{name}");
        let mut bytes = read_entry(&mut z, c.path.as_ref().unwrap());
        let at = im4p_type_at(&bytes);
        bytes[at..at + 4].copy_from_slice(tag);
        assert_eq!(c.digest.as_deref(), Some(&sha384(&bytes)[..]), "{name}");
    }
}

#[test]
fn forced_zip64_and_data_descriptors_read_back() {
    let dir = tmp();
    for (force_zip64, data_descriptors) in [(true, false), (false, true), (true, true)] {
        let spec = IpswSpec {
            force_zip64,
            data_descriptors,
            ..IpswSpec::sample()
        };
        let (path, layout) = build(&spec, dir.path(), "z.ipsw");
        check_zip_against_layout(&path, &layout);
        let raw = fs::read(&path).unwrap();
        for e in &layout.zip.entries {
            assert_eq!(e.local_zip64, force_zip64);
            assert_eq!(e.central_zip64, force_zip64);
            assert_eq!(e.data_descriptor, data_descriptors);
            let flags = u16::from_le_bytes(
                raw[e.local_header_offset as usize + 6..][..2]
                    .try_into()
                    .unwrap(),
            );
            assert_eq!(flags & 8 != 0, data_descriptors, "{}", e.name);
            if data_descriptors {
                let at = (e.data_offset + e.compressed_size) as usize;
                assert_eq!(&raw[at..at + 4], b"PK\x07\x08", "{}", e.name);
                assert_eq!(
                    u32::from_le_bytes(raw[at + 4..at + 8].try_into().unwrap()),
                    e.crc32
                );
            }
        }
        if force_zip64 {
            let z64 = layout.zip.zip64_eocd_offset.expect("zip64 end record") as usize;
            assert_eq!(&raw[z64..z64 + 4], b"PK\x06\x06");
            let loc = layout.zip.zip64_locator_offset.unwrap() as usize;
            assert_eq!(&raw[loc..loc + 4], b"PK\x06\x07");
        }
        // The content is the same whatever the container options.
        let mut z = archive(&path);
        let m = BuildManifest::from_bytes(&read_entry(&mut z, "BuildManifest.plist")).unwrap();
        assert_eq!(m.identities.len(), 6);
    }
}

#[test]
fn layout_offsets_let_tests_corrupt_exact_bytes() {
    let dir = tmp();
    let (path, layout) = build(&IpswSpec::sample(), dir.path(), "c.ipsw");
    let mut raw = fs::read(&path).unwrap();
    let e = layout.component_entry(0, "OS").unwrap().clone();
    raw[(e.data_offset + e.compressed_size / 2) as usize] ^= 0xFF;
    let mut z = zip::ZipArchive::new(Cursor::new(raw)).unwrap();
    let mut f = z.by_name(&e.name).unwrap();
    let mut sink = Vec::new();
    let err = f
        .read_to_end(&mut sink)
        .expect_err("a flipped byte breaks the CRC");
    assert!(
        err.to_string().to_lowercase().contains("checksum") || err.to_string().contains("CRC"),
        "{err}"
    );
}

#[test]
fn a9_sample_uses_sha1_and_two_boards() {
    let dir = tmp();
    let (path, layout) = build(&IpswSpec::a9_sample(), dir.path(), "a9.ipsw");
    check_zip_against_layout(&path, &layout);
    let mut z = archive(&path);
    let m = BuildManifest::from_bytes(&read_entry(&mut z, "BuildManifest.plist")).unwrap();
    assert_eq!(m.supported_product_types, ["iPhone8,1"]);
    let boards: Vec<_> = m
        .identities
        .iter()
        .map(|i| {
            (
                i.info.device_class.clone().unwrap(),
                i.chip_id.unwrap(),
                i.board_id.unwrap(),
            )
        })
        .collect();
    assert_eq!(
        boards,
        [
            ("n71ap".into(), 0x8000, 4),
            ("n71map".into(), 0x8003, 4),
            ("n71ap".into(), 0x8000, 4),
            ("n71map".into(), 0x8003, 4)
        ]
    );
    for id in &m.identities {
        let ibss = id.component("iBSS").unwrap();
        let bytes = read_entry(&mut z, ibss.path.as_ref().unwrap());
        assert_eq!(ibss.digest.as_deref(), Some(&sha1(&bytes)[..]));
        assert_eq!(
            id.component("OS").unwrap().hash_method.as_deref(),
            Some("sha1")
        );
    }
    assert_eq!(
        m.identities[1].component("iBSS").unwrap().path.as_deref(),
        Some("Firmware/dfu/iBSS.n71m.RELEASE.im4p")
    );
}

#[test]
fn img3_sample_hashes_the_signed_area() {
    let dir = tmp();
    let (path, layout) = build(&IpswSpec::img3_sample(), dir.path(), "i3.ipsw");
    check_zip_against_layout(&path, &layout);
    let mut z = archive(&path);
    let m = BuildManifest::from_bytes(&read_entry(&mut z, "BuildManifest.plist")).unwrap();
    let id = &m.identities[0];
    assert_eq!(id.chip_id, Some(0x8930));
    assert!(
        id.component("OS").unwrap().digest.is_none(),
        "7.x OS has no Digest"
    );
    for name in [
        "iBSS",
        "LLB",
        "DeviceTree",
        "RestoreDeviceTree",
        "KernelCache",
        "RestoreRamDisk",
    ] {
        let c = id.component(name).unwrap();
        let f = read_entry(&mut z, c.path.as_ref().unwrap());
        assert_eq!(&f[..4], b"3gmI", "{name}");
        let area = u32::from_le_bytes(f[0x0C..0x10].try_into().unwrap()) as usize;
        let want = sha1(&f[0x0C..0x14 + area]);
        assert_eq!(c.digest.as_deref(), Some(&want[..]), "{name}");
        assert_ne!(
            c.digest.as_deref(),
            Some(&sha1(&f)[..]),
            "{name}: not the whole file"
        );
    }
    assert_eq!(
        id.component("DeviceTree").unwrap().digest,
        id.component("RestoreDeviceTree").unwrap().digest
    );
}

#[test]
fn small_benchmark_builds_quickly_with_the_expected_shape() {
    let dir = tmp();
    let start = Instant::now();
    let spec = IpswSpec::benchmark(0.002);
    let (path, layout) = build(&spec, dir.path(), "bench.ipsw");
    let secs = start.elapsed().as_secs_f64();
    assert!(secs < 30.0, "benchmark(0.002) took {secs:.1} s");
    check_zip_against_layout(&path, &layout);

    let os = layout.entry(&spec.os_dmg).unwrap();
    let rd = layout.entry(&spec.restore_ramdisk_dmg).unwrap();
    let ud = layout.entry(&spec.update_ramdisk_dmg).unwrap();
    let kc = layout.entry("kernelcache.release.iphone9").unwrap();
    assert_eq!(os.uncompressed_size, 4_800_000);
    assert_eq!(rd.uncompressed_size, 300_000);
    assert_eq!(ud.uncompressed_size, 300_000);
    assert!((80_000..82_000).contains(&kc.uncompressed_size));
    // All deflated; OS near-incompressible, ramdisks about 3:1.
    assert!(layout.zip.entries.iter().all(|e| e.method == 8));
    let os_ratio = os.compressed_size as f64 / os.uncompressed_size as f64;
    assert!((0.90..1.0).contains(&os_ratio), "OS ratio {os_ratio}");
    let rd_ratio = rd.compressed_size as f64 / rd.uncompressed_size as f64;
    assert!((0.25..0.4).contains(&rd_ratio), "ramdisk ratio {rd_ratio}");
    // OS ≈ 16 × a ramdisk ≈ 60 × the kernelcache, as at full scale.
    let r = os.uncompressed_size as f64 / rd.uncompressed_size as f64;
    assert!((15.0..17.0).contains(&r));
    // About 120 small IM4Ps.
    let im4ps = layout
        .zip
        .entries
        .iter()
        .filter(|e| {
            e.name.ends_with(".im4p")
                || e.name.contains(".trustcache")
                || e.name.contains(".root_hash")
                || e.name.contains(".mtree")
        })
        .count();
    assert!((115..=125).contains(&im4ps), "{im4ps} IM4Ps");
    // The whole archive is dominated by the OS.
    assert!(os.compressed_size as f64 > 0.8 * layout.file_size as f64);

    let mut z = archive(&path);
    let m = BuildManifest::from_bytes(&read_entry(&mut z, "BuildManifest.plist")).unwrap();
    assert_eq!(m.identities.len(), 4);
    let os_c = m.identities[0].component("OS").unwrap();
    let os_bytes = read_entry(&mut z, &spec.os_dmg);
    assert_eq!(os_c.digest.as_deref(), Some(&sha384(&os_bytes)[..]));

    // The SHA-1 and stored variants.
    let (path, layout) = build(
        &IpswSpec::benchmark_stored(0.002),
        dir.path(),
        "stored.ipsw",
    );
    assert!(layout.zip.entries.iter().all(|e| e.method == 0));
    check_zip_against_layout(&path, &layout);
    let (path, _) = build(&IpswSpec::benchmark_sha1(0.002), dir.path(), "sha1.ipsw");
    let mut z = archive(&path);
    let m = BuildManifest::from_bytes(&read_entry(&mut z, "BuildManifest.plist")).unwrap();
    assert_eq!(m.identities[0].chip_id, Some(0x8000));
    assert_eq!(
        m.identities[0]
            .component("OS")
            .unwrap()
            .digest
            .as_ref()
            .map(Vec::len),
        Some(20)
    );
}

#[test]
fn compression_classes_follow_the_spec() {
    let dir = tmp();
    let spec = IpswSpec {
        os_method: Method::DEFLATED,
        ramdisk_method: Method::Stored,
        firmware_method: Method::Stored,
        ..IpswSpec::sample()
    };
    let (path, layout) = build(&spec, dir.path(), "m.ipsw");
    check_zip_against_layout(&path, &layout);
    for e in &layout.zip.entries {
        let want = if e.name == spec.os_dmg { 8 } else { 0 };
        assert_eq!(e.method, want, "{}", e.name);
    }
}
