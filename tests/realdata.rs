//! Real Apple files are the judge of the digest rules (FIRMWARE.md §3): every test here
//! zips files from ../shared/realdata into an IPSW and checks that ipswcheck agrees with
//! the manifest Apple shipped — no false mismatch, and a real mismatch for one changed byte.

use std::path::Path;

use ipswcheck::digest::DigestAlgorithm;
use ipswcheck::exit::ExitCode;
use ipswcheck::report::CheckStatus;
use ipswcheck::verify::ComponentStatus;

use crate::util::*;

const IPHONE_X: &str = "realdata/iPhone10,3_iPhone10,6_11.2_15C114";

fn exists_in(folder: &Path, path: &str) -> bool {
    folder.join(path).is_file()
}

#[test]
fn iphone_x_every_present_component_verifies_and_every_absent_one_is_missing() {
    let Some(folder) = shared(IPHONE_X) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let ipsw = dir
        .path()
        .join("iPhone10,3,iPhone10,6_11.2_15C114_Restore.ipsw");
    zip_dir(&folder, &ipsw, &|_, _| {});

    let report = check(&ipsw, &options(None));
    let all = &report.checks.components.items;
    assert!(
        all.len() > 30,
        "expected the whole identity, got {}",
        all.len()
    );
    let mut ok = 0;
    for item in all {
        let path = item.path.as_deref();
        match path {
            Some(p) if !exists_in(&folder, p) => {
                assert_eq!(item.status, ComponentStatus::Missing, "{item:?}");
            }
            Some(_) if item.expected.is_some() && item.name != "SE,UpdatePayload" => {
                assert_eq!(
                    item.status,
                    ComponentStatus::Ok,
                    "false mismatch on real data: {item:?}"
                );
                assert_eq!(item.actual, item.expected);
                ok += 1;
            }
            _ => assert_ne!(item.status, ComponentStatus::Mismatch, "{item:?}"),
        }
    }
    assert!(ok >= 25, "only {ok} components verified");

    // The rules that make this work, one by one.
    for twin in ["RestoreDeviceTree", "RestoreLogo"] {
        for item in items(&report, twin) {
            assert_eq!(item.status, ComponentStatus::Ok, "{item:?}");
            assert!(
                item.reason.as_deref().unwrap_or("").contains("retagged"),
                "{item:?}"
            );
        }
    }
    assert_eq!(status_of(&report, "DeviceTree"), ComponentStatus::Ok);
    let savage = items(&report, "Savage,B0-Prod-Patch");
    assert_eq!(savage[0].algorithm, Some(DigestAlgorithm::Sha256));
    assert_eq!(savage[0].status, ComponentStatus::Ok);
    // The 0-byte .vt.fw files hash to SHA-256("").
    let vt = items(&report, "Savage,B0-Prod-PatchVT");
    assert_eq!(vt[0].status, ComponentStatus::Ok);
    assert_eq!(
        vt[0].actual.as_deref(),
        Some("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
    );
    assert_eq!(
        items(&report, "LLB")[0].algorithm,
        Some(DigestAlgorithm::Sha384)
    );
    // What the snapshot lacks is reported missing, which predicts error 11.
    for absent in ["KernelCache", "OS", "SEP", "RestoreRamDisk"] {
        assert_eq!(
            status_of(&report, absent),
            ComponentStatus::Missing,
            "{absent}"
        );
    }
    assert_eq!(
        status_of(&report, "SE,UpdatePayload"),
        ComponentStatus::Skipped
    );
    assert_eq!(report.checks.archive.status, CheckStatus::Ok);
    assert_eq!(report.checks.archive.crc_failures, 0);
    assert_eq!(report.exit_code, ExitCode::ComponentFailure.code());
    assert_eq!(report.predicted_restore_error.as_deref(), Some("11"));
}

#[test]
fn iphone_x_one_changed_byte_fails_exactly_that_component_and_its_twin() {
    let Some(folder) = shared(IPHONE_X) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let ipsw = dir.path().join("damaged.ipsw");
    // Flip one byte deep inside the d22ap device tree payload (not in the IM4P header).
    zip_dir(&folder, &ipsw, &|name, bytes| {
        if name == "Firmware/all_flash/DeviceTree.d22ap.im4p" {
            let at = bytes.len() / 2;
            bytes[at] ^= 0x01;
        }
    });
    let report = check(&ipsw, &options(None));
    let failed: Vec<_> = report
        .checks
        .components
        .items
        .iter()
        .filter(|i| i.status == ComponentStatus::Mismatch)
        .collect();
    let names: Vec<(&str, Option<&str>)> = failed
        .iter()
        .map(|i| (i.name.as_str(), i.board.as_deref()))
        .collect();
    assert_eq!(
        names,
        vec![
            ("DeviceTree", Some("d22ap")),
            ("RestoreDeviceTree", Some("d22ap"))
        ],
        "{failed:#?}"
    );
    for i in &failed {
        assert_eq!(
            i.path.as_deref(),
            Some("Firmware/all_flash/DeviceTree.d22ap.im4p")
        );
        assert_ne!(i.actual, i.expected);
    }
    // The other board's device tree is untouched.
    let d221: Vec<_> = items(&report, "DeviceTree")
        .into_iter()
        .filter(|i| i.board.as_deref() == Some("d221ap"))
        .collect();
    assert_eq!(d221[0].status, ComponentStatus::Ok);
    // The zip CRC was computed by the writer over the changed bytes: the archive is
    // intact, the content is not — that is the component check's job.
    assert_eq!(report.checks.archive.status, CheckStatus::Ok);
    assert_eq!(report.checks.components.status, CheckStatus::Fail);
}

#[test]
fn iphone9_3_sep_and_restore_sep_verify() {
    let Some(folder) = shared("realdata/iPhone9,1_iPhone9,3_iPhone10,1_iPhone10,4_13.5.1_17F80")
    else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let ipsw = dir.path().join("iPhone_4.7_P3_13.5.1_17F80_Restore.ipsw");
    zip_dir(&folder, &ipsw, &|_, _| {});
    let report = check(&ipsw, &options(Some("iPhone9,3")));
    assert_eq!(report.checks.compatibility.status, CheckStatus::Ok);
    assert_eq!(status_of(&report, "SEP"), ComponentStatus::Ok);
    assert_eq!(status_of(&report, "RestoreSEP"), ComponentStatus::Ok);
    let rsep = &items(&report, "RestoreSEP")[0];
    assert!(
        rsep.reason.as_deref().unwrap().contains("sepi→rsep"),
        "{rsep:?}"
    );
    assert_eq!(rsep.algorithm, Some(DigestAlgorithm::Sha384));
}

#[test]
fn developer_disk_image_identities_verify_with_sha1_and_sha384() {
    for (folder, dmg) in [
        (
            "realdata/DeveloperDiskImage_Personalized_15A5160n/Restore",
            "022-15533-053.dmg",
        ),
        (
            "realdata/DeveloperDiskImage_Personalized_15A240d",
            "022-14172-320.dmg",
        ),
    ] {
        let Some(folder) = shared(folder) else { return };
        let dir = tempfile::tempdir().unwrap();
        let ipsw = dir.path().join("ddi.ipsw");
        zip_dir(&folder, &ipsw, &|_, _| {});
        let report = check(&ipsw, &options(None));
        let items = &report.checks.components.items;
        let mut algorithms = std::collections::BTreeSet::new();
        for item in items {
            assert_eq!(item.status, ComponentStatus::Ok, "{item:?}");
            algorithms.insert(item.algorithm.unwrap());
        }
        assert!(items.iter().any(|i| i.path.as_deref() == Some(dmg)));
        assert_eq!(
            algorithms.into_iter().collect::<Vec<_>>(),
            vec![DigestAlgorithm::Sha1, DigestAlgorithm::Sha384]
        );
        // A developer disk image restores nothing: never READY, whatever it verifies.
        assert_eq!(report.exit_code, 3, "{}", report.render(true));
        assert!(report.headline().contains("is not a restore IPSW"));
    }
}

#[test]
fn img4_container_digest_covers_the_embedded_im4p() {
    let Some(folder) = shared("realdata/macOS_26.2_25C56_BootabilityBundle") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let ipsw = dir.path().join("bootability.ipsw");
    zip_dir(&folder, &ipsw, &|_, _| {});
    let report = check(&ipsw, &options(None));
    let tc = &items(&report, "Ap,BootabilityBrainTrustCache")[0];
    assert_eq!(tc.status, ComponentStatus::Ok, "{tc:?}");
}

#[test]
fn mav21_baseband_download_digest_verifies_inside_the_bbfw() {
    let Some(base) = shared("realdata/iPhone14,3_15.4.1_19E258") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    // Rebuild Firmware/Mav21-1.59.03.Release.bbfw from its real members.
    let members = base.join("Mav21-1.59.03.Release_extracted");
    let bbfw = dir.path().join("Mav21.bbfw");
    zip_dir(&members, &bbfw, &|_, _| {});
    let ipsw = dir.path().join("iPhone14,3_15.4.1_19E258_Restore.ipsw");
    zip_entries(
        &ipsw,
        &[
            (
                "BuildManifest.plist",
                std::fs::read(base.join("BuildManifest.plist")).unwrap(),
            ),
            (
                "Firmware/Mav21-1.59.03.Release.bbfw",
                std::fs::read(&bbfw).unwrap(),
            ),
        ],
    );
    let report = check(&ipsw, &options(Some("iPhone14,3")));
    let acdb = &items(&report, "BasebandFirmware:ACDB")[0];
    assert_eq!(acdb.status, ComponentStatus::Ok, "{acdb:?}");
    assert_eq!(acdb.algorithm, Some(DigestAlgorithm::Sha384));
    // BBCFG's member is not among the extracted files: unverifiable, never a mismatch.
    let bbcfg = &items(&report, "BasebandFirmware:BBCFG")[0];
    assert_eq!(bbcfg.status, ComponentStatus::Unverifiable, "{bbcfg:?}");

    // A changed byte in acdb.mbn is caught through the inner zip.
    let bbfw_bad = dir.path().join("Mav21-bad.bbfw");
    zip_dir(&members, &bbfw_bad, &|name, bytes| {
        if name == "acdb.mbn" {
            bytes[1000] ^= 0xff;
        }
    });
    let ipsw_bad = dir.path().join("bad.ipsw");
    zip_entries(
        &ipsw_bad,
        &[
            (
                "BuildManifest.plist",
                std::fs::read(base.join("BuildManifest.plist")).unwrap(),
            ),
            (
                "Firmware/Mav21-1.59.03.Release.bbfw",
                std::fs::read(&bbfw_bad).unwrap(),
            ),
        ],
    );
    let report = check(&ipsw_bad, &options(Some("iPhone14,3")));
    assert_eq!(
        items(&report, "BasebandFirmware:ACDB")[0].status,
        ComponentStatus::Mismatch
    );
}

/// A manifest-only IPSW: enough for the device logic, which reads no component.
fn manifest_only(manifest: &Path, dir: &Path) -> std::path::PathBuf {
    let ipsw = dir.join("manifest-only.ipsw");
    zip_entries(
        &ipsw,
        &[("BuildManifest.plist", std::fs::read(manifest).unwrap())],
    );
    ipsw
}

fn quick(device: &str) -> ipswcheck::check::CheckOptions {
    let mut o = options(Some(device));
    o.quick = true;
    o
}

#[test]
fn iphone9_3_on_the_15_4_file_is_compatible_and_iphone10_6_is_not() {
    let Some(m) = shared("data/buildmanifests/BuildManifest_iPhone_4.7_P3_15.4_19E241.plist")
    else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let ipsw = manifest_only(&m, dir.path());
    let ok = check(&ipsw, &quick("iPhone9,3"));
    assert_eq!(ok.checks.compatibility.status, CheckStatus::Ok);
    assert_eq!(
        ok.identity.as_ref().unwrap().device_class.as_deref(),
        Some("d101ap")
    );
    assert_eq!(
        ok.identity.as_ref().unwrap().restore_behavior.as_deref(),
        Some("Erase")
    );

    let wrong = check(&ipsw, &quick("iPhone10,6"));
    assert_eq!(wrong.checks.compatibility.status, CheckStatus::Fail);
    assert_eq!(wrong.exit_code, ExitCode::WrongDevice.code());
    let msg = &wrong.checks.compatibility.message;
    assert!(msg.contains("iPhone 7 (GSM) (iPhone9,3)"), "{msg}");
    assert!(msg.contains("iPhone10,6"), "{msg}");
}

#[test]
fn iphone8_1_passes_on_both_boards_of_the_15_7_file() {
    let Some(m) = shared("data/buildmanifests/BuildManifest_iPhone8,1_15.7_19H12.plist") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let ipsw = manifest_only(&m, dir.path());
    let both = check(&ipsw, &quick("iPhone8,1"));
    assert_eq!(both.checks.compatibility.status, CheckStatus::Ok);
    assert_eq!(
        both.device.as_ref().unwrap().boards,
        vec!["n71ap", "n71map"]
    );
    assert!(both.checks.compatibility.message.contains("n71ap"));
    assert!(both.checks.compatibility.message.contains("n71map"));
    // Each board's own files are listed (SHA-1 on the A9).
    let dt: Vec<_> = items(&both, "DeviceTree");
    assert_eq!(dt.len(), 2, "{dt:?}");
    assert!(dt
        .iter()
        .all(|i| i.algorithm == Some(DigestAlgorithm::Sha1)));
    for board in ["n71ap", "n71map"] {
        let mut o = quick("iPhone8,1");
        o.device = Some(ipswcheck::device::resolve("iPhone8,1", Some(board)).unwrap());
        let one = check(&ipsw, &o);
        assert_eq!(one.checks.compatibility.status, CheckStatus::Ok, "{board}");
        assert_eq!(one.identity.unwrap().device_class.as_deref(), Some(board));
    }
}

#[test]
fn iphone3_3_on_the_iphone3_1_file_says_gsm_vs_cdma() {
    let Some(m) = shared("realdata/iPhone3,1_7.1.2_11D257/BuildManifest.plist") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let ipsw = manifest_only(&m, dir.path());
    let r = check(&ipsw, &quick("iPhone3,3"));
    assert_eq!(r.exit_code, ExitCode::WrongDevice.code());
    let msg = &r.checks.compatibility.message;
    assert!(msg.contains("GSM") && msg.contains("CDMA"), "{msg}");
    assert!(
        msg.contains("iPhone3,1") && msg.contains("iPhone3,3"),
        "{msg}"
    );
    // And the right device passes.
    let ok = check(&ipsw, &quick("iPhone3,1"));
    assert_eq!(ok.checks.compatibility.status, CheckStatus::Ok);
}

#[test]
fn every_real_manifest_parses() {
    let Some(root) = shared("realdata") else {
        return;
    };
    let mut seen = 0;
    let mut stack = vec![root];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p
                .file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("BuildManifest")
            {
                let m = ipswcheck::manifest::BuildManifest::from_bytes(&std::fs::read(&p).unwrap())
                    .unwrap_or_else(|e| panic!("{}: {e}", p.display()));
                assert!(!m.identities.is_empty(), "{}", p.display());
                seen += 1;
            }
        }
    }
    assert!(seen >= 30, "{seen}");
}
