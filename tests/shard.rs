//! Beyond one machine: `scan --shard K/N` puts every file in exactly one shard,
//! `ipswcheck merge` of the shard outputs equals the unsharded scan, and an online scan
//! reuses the integrity result an offline scan cached, asking only about signing.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use ipswcheck_fixture::IpswSpec;
use serde_json::Value;

use crate::util;
use crate::util::http::Server;
use crate::util::signing::signed_body;

/// A small library: two builds, a byte-for-byte copy in another folder (a duplicate
/// the shards may split), a damaged copy (whose intact copy may be in another shard)
/// and a file that is no IPSW.
fn library() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let lib = dir.path().join("lib");
    for sub in ["Apple", "Backups", "damaged", "iPhone8,1", "misc"] {
        std::fs::create_dir_all(lib.join(sub)).unwrap();
    }
    let good = lib.join("Apple/iPhone_4.7_P3_15.8_19H370_Restore.ipsw");
    IpswSpec::sample().build(&good).unwrap();
    std::fs::copy(&good, lib.join("Backups/copy.ipsw")).unwrap();
    let layout = IpswSpec::sample()
        .build(lib.join("damaged/iPhone_4.7_P3_15.8_19H370_Restore.ipsw"))
        .unwrap();
    let os = layout.entry("098-59390-010.dmg").unwrap();
    let damaged = lib.join("damaged/iPhone_4.7_P3_15.8_19H370_Restore.ipsw");
    let mut bytes = std::fs::read(&damaged).unwrap();
    bytes[(os.data_offset + os.compressed_size / 2) as usize] ^= 0x55;
    std::fs::write(&damaged, bytes).unwrap();
    IpswSpec::a9_sample()
        .build(lib.join("iPhone8,1/iPhone_4.7_15.7_19H12_Restore.ipsw"))
        .unwrap();
    std::fs::write(lib.join("misc/notes.txt"), "not an IPSW\n").unwrap();
    dir
}

fn scan(dir: &Path, extra: &[&str], cache: &Path) -> (i32, String) {
    let mut args: Vec<String> = ["scan", "lib", "--offline", "--format", "ndjson", "-j", "2"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    args.extend(extra.iter().map(|s| s.to_string()));
    args.extend(["--cache-dir".into(), cache.display().to_string()]);
    let (code, stdout, stderr) = util::run_in(Some(dir), &args, &[]);
    assert!(matches!(code, 0 | 1), "{code}: {stderr}");
    (code, stdout)
}

/// (rows by path, summary) with the timing fields removed.
fn parse(ndjson: &str) -> (BTreeMap<String, Value>, Value) {
    let mut rows = BTreeMap::new();
    let mut summary = None;
    for line in ndjson.lines() {
        let mut v: Value = serde_json::from_str(line).unwrap();
        strip_timing(&mut v);
        match v.get("summary") {
            Some(s) => summary = Some(s.clone()),
            None => {
                let path = v["path"].as_str().unwrap().to_owned();
                assert!(rows.insert(path, v).is_none());
            }
        }
    }
    (rows, summary.expect("a summary line"))
}

fn strip_timing(v: &mut Value) {
    match v {
        Value::Object(map) => {
            map.retain(|k, _| !k.contains("elapsed") && !k.ends_with("_ms"));
            map.values_mut().for_each(strip_timing);
        }
        Value::Array(items) => items.iter_mut().for_each(strip_timing),
        _ => {}
    }
}

#[test]
fn every_file_lands_in_exactly_one_shard_and_the_merge_equals_the_whole_scan() {
    let dir = library();
    let whole_cache = tempfile::tempdir().unwrap();
    let (whole_code, whole) = scan(dir.path(), &[], whole_cache.path());
    let (whole_rows, whole_summary) = parse(&whole);
    assert_eq!(whole_rows.len(), 4, "{whole}");
    assert!(whole_summary["duplicates"]
        .as_array()
        .is_some_and(|d| !d.is_empty()));

    for n in [1u64, 2, 3, 5] {
        let mut outputs = Vec::new();
        let mut seen: BTreeMap<String, u64> = BTreeMap::new();
        for k in 0..n {
            let cache = tempfile::tempdir().unwrap();
            let (_, out) = scan(dir.path(), &["--shard", &format!("{k}/{n}")], cache.path());
            for path in parse(&out).0.keys() {
                assert!(
                    seen.insert(path.clone(), k).is_none(),
                    "{path} is in two shards of {n}"
                );
            }
            let file = dir.path().join(format!("shard-{k}-of-{n}.ndjson"));
            std::fs::write(&file, &out).unwrap();
            outputs.push(file);
        }
        assert_eq!(
            seen.keys().collect::<BTreeSet<_>>(),
            whole_rows.keys().collect::<BTreeSet<_>>(),
            "every file of the library is in one shard of {n}"
        );

        let mut args: Vec<String> = vec!["merge".into()];
        args.extend(outputs.iter().map(|p| p.display().to_string()));
        let (code, merged, stderr) = util::run_in(Some(dir.path()), &args, &[]);
        assert_eq!(code, whole_code, "{stderr}");
        let (rows, summary) = parse(&merged);
        assert_eq!(rows, whole_rows, "rows of {n} shards");
        for key in [
            "files_examined",
            "ipsw_files",
            "skipped",
            "aliases",
            "unreadable",
            "counts",
            "damaged",
            "incomplete",
            "unsigned",
            "betas",
            "duplicates",
            "files_hashed",
            "exit_code",
        ] {
            assert_eq!(summary[key], whole_summary[key], "{key} with {n} shards");
        }
    }
}

#[test]
fn merge_refuses_overlapping_or_unreadable_inputs() {
    let dir = library();
    let cache = tempfile::tempdir().unwrap();
    let (_, out) = scan(dir.path(), &["--shard", "0/1"], cache.path());
    let a = dir.path().join("a.ndjson");
    std::fs::write(&a, &out).unwrap();
    let a = a.display().to_string();
    let (code, _, stderr) = util::run_in(Some(dir.path()), &["merge", a.as_str(), a.as_str()], &[]);
    assert_eq!(code, 3);
    assert!(stderr.contains("the inputs overlap"), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    let (code, _, stderr) = util::run_in(Some(dir.path()), &["merge", "missing.ndjson"], &[]);
    assert_eq!(code, 3);
    assert!(
        stderr.contains("missing.ndjson: cannot be read"),
        "{stderr}"
    );
    let (code, _, stderr) = util::run_in(Some(dir.path()), &["scan", "lib", "--shard", "2/2"], &[]);
    assert_eq!(code, 2, "{stderr}");
}

/// Online must not cost more than offline: the second, online scan reuses what the
/// first, offline one verified (nothing hashed again) and only asks about signing.
#[test]
fn an_online_scan_reuses_the_offline_integrity_result() {
    let dir = library();
    let cache = tempfile::tempdir().unwrap();
    // The same question (device, behaviour) as the online scan below: the same key.
    let (_, first) = scan(dir.path(), &["--device", "iPhone9,3"], cache.path());
    let (_, first_summary) = parse(&first);
    assert_eq!(first_summary["files_hashed"], 4);

    let server = Server::start(|r| {
        if r.is_tss() {
            util::http::Reply::ok(signed_body())
        } else {
            util::http::Reply::status(404)
        }
    });
    let args: Vec<String> = ["scan", "lib", "--format", "ndjson", "--device", "iPhone9,3"]
        .map(str::to_owned)
        .into_iter()
        .chain(util::remote::network_flags(
            &server.tss_url(),
            &server.api_url(),
            "5",
            cache.path(),
        ))
        .collect();
    let (_, second, stderr) = util::run_in(Some(dir.path()), &args, &[]);
    let (rows, summary) = parse(&second);
    assert_eq!(summary["files_hashed"], 0, "{stderr}");
    assert_eq!(summary["bytes_hashed"], 0);
    assert_eq!(summary["files_from_cache"], 4);
    let good = &rows["lib/Apple/iPhone_4.7_P3_15.8_19H370_Restore.ipsw"];
    assert_eq!(good["scan"]["cached"], true);
    // Signing was asked (the loopback Apple signs it), integrity came from the cache.
    assert_eq!(good["checks"]["signing"]["status"], "signed");
    assert_eq!(good["checks"]["components"]["status"], "ok");
    // The damage found offline stays found.
    let damaged = &rows["lib/damaged/iPhone_4.7_P3_15.8_19H370_Restore.ipsw"];
    assert_eq!(damaged["scan"]["status"], "damaged");
}
