//! The single-file check end to end, on IPSWs built by the fixture builder: a good file
//! is ready; each kind of damage gets its own exit code, message and predicted restore
//! error; flags and output formats behave as documented.

use std::fs::OpenOptions;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use ipswcheck::check::ExpectedChecksum;
use ipswcheck::digest::{to_hex, DigestAlgorithm};
use ipswcheck::exit::ExitCode;
use ipswcheck::report::{CheckStatus, Verdict};
use ipswcheck::verify::ComponentStatus;
use ipswcheck_fixture::{IpswSpec, PlistFormat};

use crate::util::*;

fn build(spec: &IpswSpec, dir: &Path, name: &str) -> (PathBuf, ipswcheck_fixture::FixtureLayout) {
    let path = dir.join(name);
    let layout = spec.build(&path).expect("build fixture");
    (path, layout)
}

fn assert_ready(report: &ipswcheck::report::Report) {
    assert_eq!(report.exit_code, 0, "{}", report.render(true));
    assert_eq!(report.verdict, Verdict::Ready);
    for item in &report.checks.components.items {
        assert!(
            matches!(item.status, ComponentStatus::Ok | ComponentStatus::Skipped),
            "{item:?}"
        );
    }
}

fn flip_byte(path: &Path, offset: u64) {
    let mut f = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .unwrap();
    f.seek(SeekFrom::Start(offset)).unwrap();
    let mut b = [0u8];
    f.read_exact(&mut b).unwrap();
    f.seek(SeekFrom::Start(offset)).unwrap();
    f.write_all(&[b[0] ^ 0x55]).unwrap();
}

#[test]
fn the_sample_is_ready_for_both_of_its_devices() {
    let dir = tempfile::tempdir().unwrap();
    let (path, _) = build(&IpswSpec::sample(), dir.path(), "sample.ipsw");
    for device in ["iPhone9,3", "iPhone9,1", "d101ap"] {
        let report = check(&path, &options(Some(device)));
        assert_ready(&report);
        assert_eq!(report.checks.compatibility.status, CheckStatus::Ok);
        assert_eq!(report.checks.archive.crc_failures, 0);
        assert!(report.checks.archive.crc_checked >= report.checks.archive.entries - 1);
        // The Erase identity, never the Research one.
        let identity = report.identity.as_ref().unwrap();
        assert_eq!(identity.restore_behavior.as_deref(), Some("Erase"));
        assert!(!identity.variant.as_deref().unwrap().contains("Research"));
    }
    let report = check(&path, &options(Some("iPhone9,3")));
    // Every kind of rule was exercised: retagged twins, the IMG4 container, the
    // baseband members, and the documented skips.
    let reasons: Vec<String> = report
        .checks
        .components
        .items
        .iter()
        .filter_map(|i| i.reason.clone())
        .collect();
    assert!(
        reasons.iter().any(|r| r.contains("retagged")),
        "{reasons:?}"
    );
    assert!(report
        .checks
        .components
        .items
        .iter()
        .any(|i| i.name.starts_with("BasebandFirmware:") && i.status == ComponentStatus::Ok));
    for skipped in ["SE,UpdatePayload", "ftap"] {
        assert_eq!(
            status_of(&report, skipped),
            ComponentStatus::Skipped,
            "{skipped}"
        );
    }
    assert!(report
        .checks
        .components
        .items
        .iter()
        .any(|i| i.status == ComponentStatus::Skipped
            && i.reason.as_deref().unwrap_or("").contains("IsFTAB")),);
}

#[test]
fn the_committed_sample_is_ready_from_the_command_line() {
    let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/sample.ipsw");
    let (code, out, err) = run(&[
        sample.to_str().unwrap(),
        "--device",
        "iPhone9,3",
        "--offline",
    ]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.starts_with("READY: sample.ipsw"), "{out}");
    assert!(out.contains("signing was not checked"), "{out}");
}

#[test]
fn update_picks_the_update_identity() {
    let dir = tempfile::tempdir().unwrap();
    let (path, _) = build(&IpswSpec::sample(), dir.path(), "s.ipsw");
    let mut o = options(Some("iPhone9,3"));
    o.behavior = ipswcheck::manifest::RestoreBehavior::Update;
    let report = check(&path, &o);
    assert_ready(&report);
    assert_eq!(
        report.identity.unwrap().restore_behavior.as_deref(),
        Some("Update")
    );
}

#[test]
fn a9_two_boards_sha1_and_fallback_retag_table() {
    let dir = tempfile::tempdir().unwrap();
    let (path, _) = build(&IpswSpec::a9_sample(), dir.path(), "a9.ipsw");
    let report = check(&path, &options(Some("iPhone8,1")));
    assert_ready(&report);
    assert_eq!(
        report.device.as_ref().unwrap().boards,
        vec!["n71ap", "n71map"]
    );
    assert!(report
        .checks
        .components
        .items
        .iter()
        .filter(|i| i.status == ComponentStatus::Ok)
        .all(|i| i.algorithm == Some(DigestAlgorithm::Sha1)
            || i.name.starts_with("Savage")
            || i.name.starts_with("BasebandFirmware")));

    let mut spec = IpswSpec::sample();
    spec.write_payload_types = false;
    let (path, _) = build(&spec, dir.path(), "no-types.ipsw");
    assert_ready(&check(&path, &options(Some("iPhone9,3"))));
}

#[test]
fn img3_era_components_verify_by_their_signed_area() {
    let dir = tempfile::tempdir().unwrap();
    let spec = IpswSpec::img3_sample();
    let (path, _) = build(&spec, dir.path(), "img3.ipsw");
    let report = check(&path, &options(None));
    assert_ready(&report);
    assert!(report
        .checks
        .components
        .items
        .iter()
        .any(|i| i.reason.as_deref() == Some("IMG3 signed area")));
}

#[test]
fn binary_manifest_zip64_and_data_descriptors_are_read() {
    let dir = tempfile::tempdir().unwrap();
    let mut spec = IpswSpec::sample();
    spec.manifest_format = PlistFormat::Binary;
    spec.force_zip64 = true;
    let (path, layout) = build(&spec, dir.path(), "zip64.ipsw");
    assert!(layout.zip.entries.iter().all(|e| e.central_zip64));
    assert_ready(&check(&path, &options(Some("iPhone9,3"))));

    let mut spec = IpswSpec::sample();
    spec.data_descriptors = true;
    let (path, _) = build(&spec, dir.path(), "dd.ipsw");
    assert_ready(&check(&path, &options(Some("iPhone9,3"))));
}

#[test]
fn wrong_device_is_exit_20_and_names_the_file_s_devices() {
    let dir = tempfile::tempdir().unwrap();
    let (path, _) = build(&IpswSpec::sample(), dir.path(), "s.ipsw");
    let report = check(&path, &options(Some("iPhone10,6")));
    assert_eq!(report.exit_code, ExitCode::WrongDevice.code());
    assert_eq!(report.verdict, Verdict::NotReady);
    let msg = &report.checks.compatibility.message;
    assert!(msg.contains("iPhone 7 (Global) (iPhone9,1)"), "{msg}");
    assert!(msg.contains("iPhone X (GSM) (iPhone10,6)"), "{msg}");
    assert!(report.predicted_restore_error.is_none());
    // One problem, not the file's component list; no other board's identity is shown.
    assert_eq!(report.problems.len(), 1, "{:?}", report.problems);
    assert_eq!(report.problems[0].kind, "not_for_device");
    assert!(report.identity.is_none());
    assert_eq!(report.checks.components.status, CheckStatus::Skipped);
    assert!(report.checks.components.items.is_empty());
    // Every entry's CRC-32 was still checked.
    assert!(report.checks.archive.crc_checked > 0);
}

#[test]
fn truncated_downloads_are_damage_not_not_a_zip() {
    let dir = tempfile::tempdir().unwrap();
    let (path, layout) = build(&IpswSpec::sample(), dir.path(), "full.ipsw");
    let bytes = std::fs::read(&path).unwrap();
    let len = bytes.len();
    for cut in [31, 1000, len / 3, len / 2, len - 200, len - 23, len - 1] {
        let t = dir.path().join(format!("cut-{cut}.ipsw"));
        std::fs::write(&t, &bytes[..cut]).unwrap();
        let report = check(&t, &options(Some("iPhone9,3")));
        assert_eq!(
            report.exit_code,
            ExitCode::ArchiveDamaged.code(),
            "cut at {cut}: {}",
            report.render(true)
        );
        assert_eq!(report.checks.archive.status, CheckStatus::Fail);
        assert_eq!(report.predicted_restore_error.as_deref(), Some("14"));
        assert!(report.render(false).contains("truncated"), "cut at {cut}");
    }
    assert!(layout.file_size as usize == len);
}

#[test]
fn unreadable_inputs_are_exit_3_with_one_clear_line() {
    let dir = tempfile::tempdir().unwrap();
    let not_zip = dir.path().join("notes.ipsw");
    std::fs::write(&not_zip, b"this is a text file, not firmware\n").unwrap();
    let empty = dir.path().join("empty.ipsw");
    std::fs::write(&empty, b"").unwrap();
    let missing = dir.path().join("missing.ipsw");
    let plain_zip = dir.path().join("photos.zip");
    zip_entries(&plain_zip, &[("a.jpg", vec![1, 2, 3])]);
    let bad_manifest = dir.path().join("badmanifest.ipsw");
    zip_entries(
        &bad_manifest,
        &[("BuildManifest.plist", b"<plist><dict><key>x".to_vec())],
    );
    for (path, words) in [
        (&not_zip, "not a zip"),
        (&empty, "empty"),
        (&missing, "no such file"),
        (&dir.path().to_path_buf(), "directory"),
        (&plain_zip, "no BuildManifest.plist"),
        (&bad_manifest, "BuildManifest.plist"),
    ] {
        let (code, out, err) = run(&[path.to_str().unwrap(), "--offline"]);
        assert_eq!(code, 3, "{}: {out}{err}", path.display());
        let first = out.lines().next().unwrap();
        assert!(first.contains(words), "{first}");
        assert!(
            first.contains(path.file_name().unwrap().to_str().unwrap()),
            "{first}"
        );
        assert!(err.is_empty(), "{err}");
    }
}

#[test]
fn crc_failure_in_an_entry_no_component_names_is_archive_damage() {
    let dir = tempfile::tempdir().unwrap();
    let (path, layout) = build(&IpswSpec::sample(), dir.path(), "s.ipsw");
    let name = layout
        .unreferenced
        .iter()
        .find(|n| n.as_str() != "Restore.plist")
        .expect("an entry no component names");
    let entry = layout.entry(name).unwrap();
    // Change the CRC both headers record (offset 14 of the local header, 16 of the
    // central one): the data is intact and inflates, only its checksum disagrees.
    flip_byte(&path, entry.local_header_offset + 14);
    flip_byte(&path, entry.central_header_offset + 16);
    let report = check(&path, &options(Some("iPhone9,3")));
    assert_eq!(report.exit_code, ExitCode::ArchiveDamaged.code());
    assert_eq!(
        report.checks.archive.crc_failures, 1,
        "{:?}",
        report.checks.archive.damage
    );
    assert_eq!(report.checks.archive.damage[0].entry, *name);
    assert_eq!(report.checks.components.status, CheckStatus::Ok);
    assert_eq!(report.predicted_restore_error.as_deref(), Some("14"));
}

#[test]
fn a_missing_component_is_exit_11_and_predicts_error_11() {
    let dir = tempfile::tempdir().unwrap();
    let (path, layout) = build(&IpswSpec::sample(), dir.path(), "s.ipsw");
    let kernel = layout
        .component_entry(0, "KernelCache")
        .expect("kernelcache entry")
        .name
        .clone();
    // Copy every entry but the kernelcache, byte for byte.
    let mut src = zip::ZipArchive::new(std::fs::File::open(&path).unwrap()).unwrap();
    let out = dir.path().join("no-kernel.ipsw");
    let mut w = zip::ZipWriter::new(std::fs::File::create(&out).unwrap());
    for i in 0..src.len() {
        let f = src.by_index_raw(i).unwrap();
        if f.name().unwrap() != kernel {
            w.raw_copy_file(f).unwrap();
        }
    }
    w.finish().unwrap();
    let report = check(&out, &options(Some("iPhone9,3")));
    assert_eq!(report.exit_code, ExitCode::ComponentFailure.code());
    assert_eq!(report.predicted_restore_error.as_deref(), Some("11"));
    assert_eq!(status_of(&report, "KernelCache"), ComponentStatus::Missing);
    assert_eq!(
        status_of(&report, "RestoreKernelCache"),
        ComponentStatus::Missing
    );
    assert_eq!(report.checks.archive.status, CheckStatus::Ok);
}

#[test]
fn damaged_component_data_fails_both_the_crc_and_the_component() {
    let dir = tempfile::tempdir().unwrap();
    let (path, layout) = build(&IpswSpec::sample(), dir.path(), "s.ipsw");
    let os = layout.component_entry(0, "OS").unwrap().clone();
    flip_byte(&path, os.data_offset + os.compressed_size / 2);
    let report = check(&path, &options(Some("iPhone9,3")));
    // Damage is met before the component digest in a restore: exit 10.
    assert_eq!(report.exit_code, ExitCode::ArchiveDamaged.code());
    assert_eq!(status_of(&report, "OS"), ComponentStatus::Mismatch);
    assert_eq!(report.checks.archive.crc_failures, 1);
}

#[test]
fn whole_file_checksums_are_compared() {
    let dir = tempfile::tempdir().unwrap();
    let (path, _) = build(&IpswSpec::sample(), dir.path(), "s.ipsw");
    let bytes = std::fs::read(&path).unwrap();
    let sha1 = DigestAlgorithm::Sha1.digest(&bytes);
    let sha256 = DigestAlgorithm::Sha256.digest(&bytes);

    let mut o = options(Some("iPhone9,3"));
    o.expected = Some(ExpectedChecksum {
        algorithm: DigestAlgorithm::Sha1,
        digest: sha1.clone(),
    });
    let r = check(&path, &o);
    assert_ready(&r);
    assert_eq!(r.checks.checksum.status, CheckStatus::Ok);
    assert_eq!(
        r.checks.checksum.actual.as_deref(),
        Some(to_hex(&sha1).as_str())
    );

    let mut wrong = sha256.clone();
    wrong[0] ^= 1;
    o.expected = Some(ExpectedChecksum {
        algorithm: DigestAlgorithm::Sha256,
        digest: wrong,
    });
    let r = check(&path, &o);
    assert_eq!(r.exit_code, ExitCode::ChecksumMismatch.code());
    assert_eq!(
        r.checks.checksum.actual.as_deref(),
        Some(to_hex(&sha256).as_str())
    );

    let p = path.to_str().unwrap();
    let (code, _, _) = run(&[p, "--offline", "--sha1", &to_hex(&sha1).to_uppercase()]);
    assert_eq!(code, 0);
    let (code, _, err) = run(&[p, "--offline", "--sha1", "abc"]);
    assert_eq!(code, 2);
    assert!(err.contains("--sha1 takes 40 hex digits"), "{err}");
}

#[test]
fn quick_mode_reads_the_directory_only() {
    let dir = tempfile::tempdir().unwrap();
    let (path, layout) = build(&IpswSpec::sample(), dir.path(), "s.ipsw");
    // Damage data that only a full check would read.
    let os = layout.component_entry(0, "OS").unwrap().clone();
    flip_byte(&path, os.data_offset + 10);
    let mut o = options(Some("iPhone9,3"));
    o.quick = true;
    let r = check(&path, &o);
    assert_eq!(r.exit_code, 0, "{}", r.render(true));
    assert_eq!(r.checks.archive.crc_checked, 0);
    assert_eq!(r.checks.components.status, CheckStatus::Skipped);
    o.quick = false;
    assert_eq!(check(&path, &o).exit_code, ExitCode::ArchiveDamaged.code());
}

#[test]
fn several_failures_exit_with_the_first_a_restore_meets() {
    let dir = tempfile::tempdir().unwrap();
    let (path, layout) = build(&IpswSpec::sample(), dir.path(), "s.ipsw");
    let os = layout.component_entry(0, "OS").unwrap().clone();
    flip_byte(&path, os.data_offset + 10);
    let r = check(&path, &options(Some("iPhone10,6")));
    assert_eq!(r.exit_code, ExitCode::WrongDevice.code());
    let checks: Vec<&str> = r.problems.iter().map(|p| p.check.as_str()).collect();
    assert!(
        checks.contains(&"compatibility") && checks.contains(&"archive"),
        "{checks:?}"
    );
}

#[test]
fn json_report_follows_the_documented_contract() {
    let dir = tempfile::tempdir().unwrap();
    let (path, _) = build(&IpswSpec::sample(), dir.path(), "s.ipsw");
    let (code, out, _) = run(&[
        path.to_str().unwrap(),
        "--device",
        "iPhone9,3",
        "--offline",
        "--json",
    ]);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["schema"], 2);
    assert_eq!(v["verdict"], "ready");
    assert_eq!(v["exit_code"], 0);
    assert_eq!(v["size"], std::fs::metadata(&path).unwrap().len());
    assert_eq!(v["firmware"]["build"], "19H370");
    assert_eq!(v["firmware"]["beta"], false);
    assert_eq!(v["device"]["product_type"], "iPhone9,3");
    assert_eq!(v["device"]["board"], "d101ap");
    assert_eq!(v["device"]["chip_id"], "0x8010");
    assert_eq!(v["device"]["board_id"], "0x0C");
    assert_eq!(v["identity"]["restore_behavior"], "Erase");
    for check in [
        "archive",
        "compatibility",
        "components",
        "checksum",
        "signing",
    ] {
        assert!(v["checks"][check]["status"].is_string(), "{check}");
    }
    assert!(v["checks"]["archive"]["entries"].as_u64().unwrap() > 10);
    assert_eq!(v["checks"]["archive"]["crc_failures"], 0);
    assert_eq!(v["checks"]["signing"]["status"], "skipped");
    let item = &v["checks"]["components"]["items"][0];
    for field in [
        "name",
        "path",
        "algorithm",
        "status",
        "expected",
        "actual",
        "reason",
    ] {
        assert!(item.get(field).is_some(), "{field} missing in {item}");
    }
    assert!(v["predicted_restore_error"].is_null());
    assert_eq!(v["problems"].as_array().unwrap().len(), 0);

    let (code, out, err) = run(&[
        path.to_str().unwrap(),
        "--device",
        "iPhone10,6",
        "--offline",
        "--quiet",
    ]);
    assert_eq!((code, out.as_str(), err.as_str()), (20, "", ""));
}

#[test]
fn usage_errors_are_exit_2_with_suggestions() {
    let (code, _, err) = run(&["x.ipsw", "--device", "iphone9,9"]);
    assert_eq!(code, 2);
    assert!(
        err.contains("iPhone9,3") && err.contains("ipswcheck devices"),
        "{err}"
    );
    let (code, _, err) = run(&["x.ipsw", "--device", "iPhone8,1", "--board", "d10ap"]);
    assert_eq!(code, 2, "{err}");
    let (code, _, _) = run(&["--no-such-flag"]);
    assert_eq!(code, 2);
    let (code, _, _) = run(&[]);
    assert_eq!(code, 2);
}

#[test]
fn devices_lists_matching_rows() {
    let (code, out, _) = run(&["devices", "iphone 7"]);
    assert_eq!(code, 0);
    for t in ["iPhone9,1", "iPhone9,2", "iPhone9,3", "iPhone9,4"] {
        assert!(out.contains(t), "{out}");
    }
    let (code, out, _) = run(&["devices", "n71"]);
    assert_eq!(code, 0);
    assert!(out.contains("n71ap") && out.contains("n71map"));
    let (code, _, _) = run(&["devices", "zzzz-nothing"]);
    assert_eq!(code, 2);
}

/// A one-identity manifest for iPhone9,3 whose components are `(name, path, digest)`.
pub fn tiny_manifest(components: &[(&str, &str, Vec<u8>)]) -> Vec<u8> {
    use plist::{Dictionary, Value};
    let mut manifest = Dictionary::new();
    for (name, path, digest) in components {
        let mut info = Dictionary::new();
        info.insert("Path".into(), Value::String(path.to_string()));
        let mut entry = Dictionary::new();
        entry.insert("Digest".into(), Value::Data(digest.clone()));
        entry.insert("Info".into(), Value::Dictionary(info));
        manifest.insert(name.to_string(), Value::Dictionary(entry));
    }
    let mut info = Dictionary::new();
    info.insert("DeviceClass".into(), "d101ap".into());
    info.insert("RestoreBehavior".into(), "Erase".into());
    info.insert("Variant".into(), "Customer Erase Install (IPSW)".into());
    let mut identity = Dictionary::new();
    identity.insert("ApChipID".into(), "0x8010".into());
    identity.insert("ApBoardID".into(), "0x0C".into());
    identity.insert("Info".into(), Value::Dictionary(info));
    identity.insert("Manifest".into(), Value::Dictionary(manifest));
    let mut root = Dictionary::new();
    root.insert("ProductVersion".into(), "26.0".into());
    root.insert("ProductBuildVersion".into(), "23A341".into());
    root.insert(
        "SupportedProductTypes".into(),
        Value::Array(vec!["iPhone9,3".into()]),
    );
    root.insert(
        "BuildIdentities".into(),
        Value::Array(vec![Value::Dictionary(identity)]),
    );
    let mut out = Vec::new();
    Value::Dictionary(root).to_writer_xml(&mut out).unwrap();
    out
}

#[test]
fn an_aea_image_that_differs_is_unverifiable_but_a_plain_dmg_is_a_mismatch() {
    let dir = tempfile::tempdir().unwrap();
    let ipsw = dir.path().join("aea.ipsw");
    let wrong = DigestAlgorithm::Sha384.digest(b"not the content");
    let manifest = tiny_manifest(&[
        ("OS", "043-88161-074.dmg.aea", wrong.clone()),
        ("RestoreRamDisk", "043-87893-081.dmg", wrong),
        (
            "Cryptex1,AppOS",
            "043-87832-082.dmg",
            DigestAlgorithm::Sha384.digest(b"app os"),
        ),
    ]);
    zip_entries(
        &ipsw,
        &[
            ("BuildManifest.plist", manifest),
            ("043-88161-074.dmg.aea", b"AEA1 encrypted bytes".to_vec()),
            ("043-87893-081.dmg", b"ramdisk".to_vec()),
            ("043-87832-082.dmg", b"app os".to_vec()),
        ],
    );
    let report = check(&ipsw, &options(Some("iPhone9,3")));
    assert_eq!(status_of(&report, "OS"), ComponentStatus::Unverifiable);
    assert_eq!(
        status_of(&report, "RestoreRamDisk"),
        ComponentStatus::Mismatch
    );
    assert_eq!(status_of(&report, "Cryptex1,AppOS"), ComponentStatus::Ok);
    assert_eq!(report.exit_code, ExitCode::ComponentFailure.code());
}
