//! Verdicts that were wrong before the one judge (`src/judge.rs`), each on the input that
//! showed it: real Apple manifests where they exist, the committed sample otherwise.

use std::path::{Path, PathBuf};

use plist::Value;

use crate::util::*;

/// Run the binary offline with `args` after the file; (code, stdout, stderr).
fn offline(file: &Path, args: &[&str]) -> (i32, String, String) {
    let mut all = vec![
        file.to_str().unwrap(),
        "--offline",
        "--hosts-file",
        "/nonexistent/ipswcheck-test/hosts",
    ];
    all.extend_from_slice(args);
    run(&all)
}

fn json(out: &str, err: &str) -> serde_json::Value {
    serde_json::from_str(out).unwrap_or_else(|e| panic!("not JSON ({e}): {out}{err}"))
}

/// `scan PATHS --offline --format json` with a cache under `dir`; (code, document).
fn scan_json(dir: &Path, paths: &[&Path], extra: &[&str]) -> (i32, serde_json::Value) {
    let cache = dir.join("cache");
    let mut args = vec!["scan"];
    args.extend(paths.iter().map(|p| p.to_str().unwrap()));
    args.extend_from_slice(&["--offline", "--format", "json", "--cache-dir"]);
    args.push(cache.to_str().unwrap());
    args.extend_from_slice(extra);
    let (code, out, err) = run(&args);
    (code, json(&out, &err))
}

/// A zip holding only `manifest` as its BuildManifest.plist.
fn manifest_only(dir: &Path, name: &str, manifest: &Value) -> PathBuf {
    let mut bytes = Vec::new();
    manifest.to_writer_xml(&mut bytes).unwrap();
    let path = dir.join(name);
    zip_entries(&path, &[("BuildManifest.plist", bytes)]);
    path
}

/// A Developer Disk Image lists 99 product types and 208 identities, none of them a
/// restore identity: it was called "READY … can restore the iPhone XR".
#[test]
fn a_developer_disk_image_is_not_a_restore_ipsw() {
    let Some(folder) = shared("realdata/DeveloperDiskImage_Personalized_15A240d") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let ddi = dir.path().join("DeveloperDiskImage.ipsw");
    zip_dir(&folder, &ddi, &|_, _| {});
    let (code, out, err) = offline(&ddi, &["--device", "iPhone11,8"]);
    assert_eq!(code, 3, "{out}{err}");
    assert!(
        out.starts_with("NOT READY: ") && out.contains("is not a restore IPSW"),
        "{out}"
    );
    assert!(!out.contains("READY: DeveloperDiskImage"), "{out}");
    let (code, out, err) = offline(&ddi, &["--device", "iPhone11,8", "--json"]);
    assert_eq!(code, 3);
    let v = json(&out, &err);
    assert_eq!(v["verdict"], "not_ready");
    assert_eq!(v["problems"][0]["kind"], "not_a_restore_ipsw");
    assert!(v["identity"].is_null());
    // What it lists is still verified: its integrity is a fact.
    assert_eq!(v["checks"]["components"]["status"], "ok");

    // A library holding it: the scan lists it as such and never recommends it.
    let lib = dir.path().join("lib");
    std::fs::create_dir(&lib).unwrap();
    std::fs::copy(&ddi, lib.join("ddi.ipsw")).unwrap();
    let (code, v) = scan_json(dir.path(), &[&lib], &["--device", "iPhone11,8"]);
    assert_eq!(code, 1, "{v:#}");
    assert_eq!(v["files"][0]["scan"]["status"], "not_restorable");
    assert!(v["summary"]["recommendation"]["path"].is_null(), "{v:#}");
}

/// `--quick` hashes nothing: it used to say READY as if it had.
#[test]
fn quick_says_structure_ok_never_ready() {
    let sample = sample_ipsw();
    let (code, out, _) = offline(&sample, &["--device", "iPhone9,3", "--quick"]);
    assert_eq!(code, 0);
    assert!(
        out.starts_with("STRUCTURE OK: sample.ipsw (iOS 15.8 (19H370)) fits the iPhone 7 (GSM)"),
        "{out}"
    );
    assert!(
        out.contains("contents not verified (run without --quick)"),
        "{out}"
    );
    let (_, out, err) = offline(&sample, &["--device", "iPhone9,3", "--quick", "--json"]);
    let v = json(&out, &err);
    assert_eq!(v["verdict"], "structure_ok");
    assert_eq!(v["notes"][0]["kind"], "contents_not_verified");
    // The full check of the same file is READY.
    let (code, out, _) = offline(&sample, &["--device", "iPhone9,3"]);
    assert_eq!(code, 0);
    assert!(out.starts_with("READY: sample.ipsw"), "{out}");
}

/// An `.aea` image whose digest differs is `unverifiable`, not a mismatch: the verdict
/// used to be a bare READY. It must say how many and why.
#[test]
fn unverifiable_components_are_counted_in_the_verdict() {
    use ipswcheck::digest::DigestAlgorithm;
    let dir = tempfile::tempdir().unwrap();
    let ipsw = dir.path().join("aea.ipsw");
    let manifest = crate::check::tiny_manifest(&[
        (
            "OS",
            "043-88161-074.dmg.aea",
            DigestAlgorithm::Sha384.digest(b"the decrypted image"),
        ),
        (
            "RestoreRamDisk",
            "043-87893-081.dmg",
            DigestAlgorithm::Sha384.digest(b"ramdisk"),
        ),
    ]);
    zip_entries(
        &ipsw,
        &[
            ("BuildManifest.plist", manifest),
            ("043-88161-074.dmg.aea", b"AEA1 encrypted bytes".to_vec()),
            ("043-87893-081.dmg", b"ramdisk".to_vec()),
        ],
    );
    let (code, out, _) = offline(&ipsw, &["--device", "iPhone9,3"]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.starts_with("READY: ")
            && out.contains("(1 component could not be verified: see below)"),
        "{out}"
    );
    assert!(
        out.contains("note: components: 1 component could not be verified (OS:"),
        "{out}"
    );
    let (_, out, err) = offline(&ipsw, &["--device", "iPhone9,3", "--json"]);
    let v = json(&out, &err);
    let note = v["notes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["kind"] == "unverifiable")
        .unwrap_or_else(|| panic!("{v:#}"));
    assert!(note["message"].as_str().unwrap().starts_with("1 component"));
}

/// A real OTA-style manifest has one Update identity: it was refused as "has no restore
/// (Erase) identity … it has identities for: n41ap" under "is not for the iPhone 5".
#[test]
fn an_update_only_file_says_so_and_suggests_update() {
    let Some(path) =
        shared("realdata/OTA_manifests_LegacyiOSKit/BuildManifest_iPhone5,1_8.4.1.plist")
    else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let ota = manifest_only(dir.path(), "ota.ipsw", &Value::from_file(path).unwrap());
    let (code, out, _) = offline(&ota, &["--device", "iPhone5,1"]);
    assert_eq!(code, 20, "{out}");
    assert!(out.contains("has only an Update identity"), "{out}");
    assert!(out.contains("--update"), "{out}");
    assert!(!out.contains("is not for the"), "{out}");
    let (_, out, err) = offline(&ota, &["--device", "iPhone5,1", "--json"]);
    let v = json(&out, &err);
    assert_eq!(v["problems"].as_array().unwrap().len(), 1, "{v:#}");
    assert_eq!(v["problems"][0]["kind"], "only_other_behavior");
    assert!(
        v["identity"].is_null(),
        "never another behaviour's identity"
    );
    // With --update the Update identity is the one checked (its files are not in this
    // manifest-only zip: missing, exit 11).
    let (code, out, err) = offline(&ota, &["--device", "iPhone5,1", "--update", "--json"]);
    let v = json(&out, &err);
    assert_eq!(code, 11, "{v:#}");
    assert_eq!(v["identity"]["restore_behavior"], "Update");
}

/// A file for another model: one problem, not the file's whole component list, and no
/// other board's identity in the JSON.
#[test]
fn a_refused_device_gets_one_problem_and_no_identity() {
    let Some(path) = shared("data/buildmanifests/BuildManifest_iPhone_4.7_P3_15.4_19E241.plist")
    else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    // Manifest only: every component is missing, which used to be listed ~100 times.
    let zip = manifest_only(dir.path(), "m.ipsw", &Value::from_file(path).unwrap());
    let (code, out, err) = offline(&zip, &["--device", "iPhone8,1", "--json"]);
    assert_eq!(code, 20);
    let v = json(&out, &err);
    assert_eq!(v["problems"].as_array().unwrap().len(), 1, "{v:#}");
    assert_eq!(v["problems"][0]["kind"], "not_for_device");
    assert!(v["identity"].is_null());
    assert!(v["checks"]["components"]["items"]
        .as_array()
        .unwrap()
        .is_empty());
}

/// Platform names come from the manifest's product types, not a fixed "iOS".
#[test]
fn the_platform_is_the_manifests() {
    let Some(path) = shared("data/buildmanifests/BuildManifest_iPhone_4.7_P3_15.4_19E241.plist")
    else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut m = Value::from_file(path).unwrap();
    m.as_dictionary_mut().unwrap().insert(
        "SupportedProductTypes".into(),
        Value::Array(vec!["AppleTV6,2".into()]),
    );
    let tv = manifest_only(dir.path(), "tv.ipsw", &m);
    let (_, out, _) = offline(&tv, &[]);
    assert!(out.contains("(tvOS 15.4 (19E241))"), "{out}");
    assert!(!out.contains("iOS 15.4"), "{out}");
    if let Some(folder) = shared("realdata/macOS_26.2_25C56_BootabilityBundle") {
        let mac = dir.path().join("mac.ipsw");
        zip_dir(&folder, &mac, &|_, _| {});
        let (_, out, err) = offline(&mac, &["--json"]);
        assert_eq!(json(&out, &err)["firmware"]["platform"], "macOS");
    }
    let (_, out, err) = offline(&sample_ipsw(), &["--json"]);
    assert_eq!(json(&out, &err)["firmware"]["platform"], "iOS");
}

/// `--json` promises a JSON document for every outcome, usage errors included.
#[test]
fn json_is_printed_for_usage_errors_too() {
    let sample = sample_ipsw();
    for args in [
        vec![
            sample.to_str().unwrap(),
            "--device",
            "iPhone99,99",
            "--json",
        ],
        vec![sample.to_str().unwrap(), "--json", "--no-such-flag"],
        vec![sample.to_str().unwrap(), "--json", "--sha1", "xyz"],
        vec![
            "scan",
            "/nonexistent/ipswcheck-test/lib",
            "--format",
            "json",
        ],
    ] {
        let (code, out, err) = run(&args);
        assert!(code == 2 || code == 3, "{args:?}: {code} {out}{err}");
        let v = json(&out, &err);
        assert_eq!(v["exit_code"], code, "{args:?}");
        assert!(!v["error"]["message"].as_str().unwrap().is_empty(), "{v:#}");
        assert!(!err.is_empty(), "the one-line error stays on stderr too");
    }
}

/// Product types that real manifests list but the device table does not have.
#[test]
fn non_restorable_product_types_say_what_they_are() {
    for (query, what) in [
        ("ComputeModule13,1", "compute module"),
        ("ComputeModule14,2", "compute module"),
        ("iSim1,1", "Simulator"),
    ] {
        let (code, _, err) = run(&[sample_ipsw().to_str().unwrap(), "--device", query]);
        assert_eq!(code, 2, "{err}");
        assert!(
            err.contains(what) && err.contains("not a device that can be restored"),
            "{err}"
        );
        assert!(!err.contains("did you mean"), "{err}");
    }
}

/// A broken `.ipsw` used to vanish from a scan (exit 0): an empty download, an HTML
/// error page saved under the IPSW's name, random bytes, a download cut before its end
/// record, and any file named on the command line are rows with their exit code.
#[test]
fn scan_lists_every_broken_ipsw() {
    let dir = tempfile::tempdir().unwrap();
    let lib = dir.path().join("lib");
    std::fs::create_dir(&lib).unwrap();
    let sample = std::fs::read(sample_ipsw()).unwrap();
    std::fs::write(lib.join("empty.ipsw"), b"").unwrap();
    std::fs::write(
        lib.join("error-page.ipsw"),
        b"<!DOCTYPE html><html><body>403 Forbidden</body></html>",
    )
    .unwrap();
    let random: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(lib.join("random.ipsw"), &random).unwrap();
    std::fs::write(lib.join("cut.ipsw"), &sample[..sample.len() / 2]).unwrap();
    std::fs::write(lib.join("notes.txt"), b"not firmware").unwrap();
    let named = dir.path().join("download.bin");
    std::fs::write(&named, b"<html>not found</html>").unwrap();
    let (code, v) = scan_json(dir.path(), &[&lib, &named], &[]);
    assert_eq!(code, 1, "{v:#}");
    let rows: Vec<(String, String, i64)> = v["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                Path::new(r["path"].as_str().unwrap())
                    .file_name()
                    .unwrap()
                    .to_string_lossy()
                    .into_owned(),
                r["scan"]["status"].as_str().unwrap().to_owned(),
                r["exit_code"].as_i64().unwrap(),
            )
        })
        .collect();
    let row = |name: &str| {
        rows.iter()
            .find(|r| r.0 == name)
            .unwrap_or_else(|| panic!("{name} is not a row: {rows:?}"))
            .clone()
    };
    for name in [
        "empty.ipsw",
        "error-page.ipsw",
        "random.ipsw",
        "download.bin",
    ] {
        let (_, status, exit) = row(name);
        assert_eq!((status.as_str(), exit), ("damaged", 3), "{name}");
    }
    let (_, status, exit) = row("cut.ipsw");
    assert_eq!((status.as_str(), exit), ("incomplete", 10));
    assert!(rows.iter().all(|r| r.0 != "notes.txt"), "{rows:?}");
    assert_eq!(v["summary"]["skipped"]["not a zip archive"], 1, "{v:#}");
}
