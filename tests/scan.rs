//! `ipswcheck scan` on generated libraries: every kind of file a real firmware folder
//! holds, signing against a loopback server playing Apple's TSS server and ipsw.me
//! (Long: the generated library exercises every row kind, and each row is asserted.)
//!
//! (nothing here touches the internet), the verified-results cache, concurrency,
//! Ctrl-C and the exit codes.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fs::OpenOptions;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use ipswcheck::digest::{to_hex, DigestAlgorithm};
use ipswcheck::scan::{self, FileStatus, ScanOptions, ScanProgress, ScanResult};
use ipswcheck_fixture::IpswSpec;
use serde_json::Value;

use crate::util;
use crate::util::http::Server;
use crate::util::signing::{signed_body, status_body, Reply, NOT_ELIGIBLE};

// The generated library, relative to the folder that holds `lib`.
/// iOS 15.8 (19H370) for iPhone9,1 + iPhone9,3: intact, signed.
const GOOD: &str = "lib/Apple/iPhone_4.7_P3_15.8_19H370_Restore.ipsw";
/// iOS 15.7 (19H12) for iPhone8,1 (two boards): intact, signed — the second device.
const A9: &str = "lib/iPhone8,1/iPhone_4.7_15.7_19H12_Restore.ipsw";
/// iOS 15.4 (19E241) for iPhone9,1/9,3: intact, but Apple refuses it.
const UNSIGNED: &str = "lib/old/iPhone_4.7_P3_15.4_19E241_Restore.ipsw";
/// iOS 16.0 (20A5283p): a beta, signed.
const BETA: &str = "lib/beta/iPhone_4.7_P3_16.0_20A5283p_Restore.ipsw";
/// The first 60 % of GOOD: a cut-off download.
const TRUNCATED: &str = "lib/Downloads/iPhone_4.7_P3_15.8_19H370_Restore.ipsw";
/// A copy of A9 with one byte of its OS image flipped: CRC failure.
const CRC: &str = "lib/damaged/iPhone8,1_15.7_19H12.ipsw";
/// iOS 15.6 (19G71) named `.zip`: an IPSW all the same.
const WRONG_EXTENSION: &str = "lib/misc/firmware.zip";
/// A byte-for-byte copy of GOOD.
const DUPLICATE: &str = "lib/Backups/iPhone_4.7_P3_15.8_19H370_Restore.ipsw";
/// Files that are not IPSWs.
const PHOTOS_ZIP: &str = "lib/photos.zip";
const NOTES: &str = "lib/notes.txt";

struct Library {
    root: Root,
}

/// Where a library lives: a temporary folder, or one the caller keeps.
enum Root {
    Temp(tempfile::TempDir),
    Kept(PathBuf),
}

impl Root {
    fn path(&self) -> &Path {
        match self {
            Root::Temp(t) => t.path(),
            Root::Kept(p) => p,
        }
    }
}

fn spec(version: &str, build: &str, seed: u64) -> IpswSpec {
    IpswSpec {
        product_version: version.into(),
        build: build.into(),
        seed,
        ..IpswSpec::sample()
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

fn mkfifo(path: &Path) {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0, "mkfifo");
}

fn sha1_hex(path: &Path) -> String {
    to_hex(&DigestAlgorithm::Sha1.digest(&std::fs::read(path).unwrap()))
}

impl Library {
    fn path(&self, rel: &str) -> PathBuf {
        self.root.path().join(rel)
    }

    /// Build the whole library in a fresh temporary folder.
    fn build() -> Library {
        Library::build_in(Root::Temp(tempfile::tempdir().unwrap()))
    }

    fn build_in(root: Root) -> Library {
        let lib = Library { root };
        let p = |rel: &str| {
            let path = lib.path(rel);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            path
        };
        IpswSpec::sample().build(p(GOOD)).unwrap();
        IpswSpec::a9_sample().build(p(A9)).unwrap();
        spec("15.4", "19E241", 0x1954_0001)
            .build(p(UNSIGNED))
            .unwrap();
        spec("16.0", "20A5283p", 0x1960_0001)
            .build(p(BETA))
            .unwrap();
        spec("15.6", "19G71", 0x1956_0001)
            .build(p(WRONG_EXTENSION))
            .unwrap();
        std::fs::copy(lib.path(GOOD), p(DUPLICATE)).unwrap();

        let bytes = std::fs::read(lib.path(GOOD)).unwrap();
        std::fs::write(p(TRUNCATED), &bytes[..bytes.len() * 6 / 10]).unwrap();

        let layout = IpswSpec::a9_sample().build(p(CRC)).unwrap();
        let os = layout.entry(&IpswSpec::a9_sample().os_dmg).unwrap();
        flip_byte(&lib.path(CRC), os.data_offset + os.compressed_size / 2);

        util::zip_entries(
            &p(PHOTOS_ZIP),
            &[
                ("IMG_0001.JPG", vec![0xFF; 3000]),
                ("IMG_0002.JPG", vec![1; 10]),
            ],
        );
        std::fs::write(p(NOTES), "firmware for the shop\n").unwrap();
        // A symbolic link loop, and a FIFO that must never be opened.
        std::os::unix::fs::symlink("..", lib.path("lib/old/loop")).unwrap();
        mkfifo(&lib.path("lib/misc/pipe"));
        lib
    }

    fn ipsws(&self) -> Vec<&'static str> {
        vec![
            GOOD,
            A9,
            UNSIGNED,
            BETA,
            TRUNCATED,
            CRC,
            WRONG_EXTENSION,
            DUPLICATE,
        ]
    }

    /// The UniqueBuildIDs of the unsigned build (what the fake Apple refuses).
    fn unsigned_ubids(&self) -> HashSet<Vec<u8>> {
        let ipsw = ipswcheck::check::open_ipsw(&self.path(UNSIGNED)).unwrap();
        ipsw.manifest
            .identities
            .iter()
            .filter_map(|i| i.unique_build_id.clone())
            .collect()
    }

    /// An ipsw.me body listing every build of the library with its real SHA-1.
    fn ipswme_body(&self, product_type: &str) -> String {
        let fw = |rel: &str, version: &str, build: &str, signed: bool| {
            serde_json::json!({
                "identifier": product_type, "version": version, "buildid": build,
                "sha1sum": sha1_hex(&self.path(rel)), "md5sum": "00", "sha256sum": "00",
                "filesize": std::fs::metadata(self.path(rel)).unwrap().len(),
                "url": format!("https://updates.cdn-apple.com/{build}.ipsw"),
                "releasedate": "2023-01-23T18:00:00Z", "uploaddate": "2023-01-23T18:00:00Z",
                "signed": signed,
            })
        };
        serde_json::json!({
            "name": "iPhone", "identifier": product_type, "boards": [],
            "firmwares": [
                fw(GOOD, "15.8", "19H370", true),
                fw(A9, "15.7", "19H12", true),
                fw(UNSIGNED, "15.4", "19E241", false),
                fw(BETA, "16.0", "20A5283p", true),
                fw(WRONG_EXTENSION, "15.6", "19G71", true),
            ]
        })
        .to_string()
    }

    /// A loopback Apple + ipsw.me: TSS signs everything but the unsigned build.
    fn server(&self) -> Server {
        let refused = self.unsigned_ubids();
        let bodies: BTreeMap<String, String> = ["iPhone9,1", "iPhone9,3", "iPhone8,1"]
            .into_iter()
            .map(|pt| (pt.to_owned(), self.ipswme_body(pt)))
            .collect();
        Server::start(move |r| {
            if r.is_tss() {
                let ubid = r
                    .plist()
                    .get("UniqueBuildID")
                    .and_then(|v| v.as_data())
                    .map(<[u8]>::to_vec)
                    .unwrap_or_default();
                if refused.contains(&ubid) {
                    Reply::ok(status_body(94, NOT_ELIGIBLE))
                } else {
                    Reply::ok(signed_body())
                }
            } else {
                let pt = r
                    .url
                    .trim_start_matches("/v4/device/")
                    .split('?')
                    .next()
                    .unwrap_or_default()
                    .to_owned();
                match bodies.get(&pt) {
                    Some(body) => Reply::ok(body.clone()),
                    None => Reply::status(404),
                }
            }
        })
    }
}

/// Arguments pointing the binary at `server` and a private cache.
fn network_args(server: &Server, cache: &Path) -> Vec<String> {
    vec![
        "--tss-url".into(),
        server.tss_url(),
        "--api-url".into(),
        server.api_url(),
        "--cache-dir".into(),
        cache.display().to_string(),
        "--hosts-file".into(),
        "/nonexistent/ipswcheck-test/hosts".into(),
        "--timeout".into(),
        "5".into(),
    ]
}

fn run_in(dir: &Path, args: &[String]) -> (i32, String, String) {
    util::run_in(Some(dir), args, &[])
}

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

/// Parse NDJSON output into (rows by path, summary).
fn parse_ndjson(stdout: &str) -> (BTreeMap<String, Value>, Value) {
    let mut rows = BTreeMap::new();
    let mut summary = None;
    for line in stdout.lines() {
        let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        if let Some(s) = v.get("summary") {
            assert!(summary.is_none(), "one summary line");
            summary = Some(s.clone());
        } else {
            let path = v["path"].as_str().expect("every row has a path").to_owned();
            assert!(rows.insert(path, v).is_none(), "one row per file");
        }
    }
    (rows, summary.expect("a summary line"))
}

fn paths_of(list: &Value) -> Vec<String> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|i| i["path"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn a_generated_library_is_scanned_row_by_row_with_a_recommendation() {
    let lib = Library::build();
    let server = lib.server();
    let cache = tempfile::tempdir().unwrap();
    let mut a = args(&["scan", "lib", "--device", "iPhone9,3", "--format", "ndjson"]);
    a.extend(network_args(&server, cache.path()));
    let (code, stdout, stderr) = run_in(lib.root.path(), &a);
    assert_eq!(code, 1, "a failing file makes the scan exit 1; {stderr}");
    assert!(
        stderr.is_empty(),
        "nothing on stderr when it is not a terminal: {stderr}"
    );
    let (rows, summary) = parse_ndjson(&stdout);

    let expected: BTreeSet<&str> = lib.ipsws().into_iter().collect();
    assert_eq!(
        rows.keys().map(String::as_str).collect::<BTreeSet<_>>(),
        expected,
        "one row per IPSW, found by content; nothing else"
    );
    for (path, row) in &rows {
        // Each row is the single-file document plus `path` and `scan`.
        assert_eq!(row["schema"], 2, "{path}");
        assert_eq!(row["file"], path.as_str());
        for key in [
            "verdict",
            "exit_code",
            "checks",
            "problems",
            "predicted_restore_error",
        ] {
            assert!(row.get(key).is_some(), "{path} lacks {key}");
        }
        assert_eq!(row["device"]["product_type"], "iPhone9,3");
    }
    let status = |rel: &str| {
        let row = &rows[rel];
        let status = row["scan"]["status"].as_str().unwrap().to_owned();
        if status == "signing_unknown" {
            eprintln!("{rel}: {}", row["checks"]["signing"]);
        }
        status
    };
    let check = |rel: &str, name: &str| rows[rel]["checks"][name]["status"].clone();

    // The good file: intact, signed, whole-file SHA-1 as ipsw.me publishes it.
    let good = &rows[GOOD];
    assert_eq!(status(GOOD), "ok");
    assert_eq!(good["verdict"], "ready");
    assert_eq!(good["exit_code"], 0);
    assert_eq!(check(GOOD, "signing"), "signed");
    assert_eq!(check(GOOD, "checksum"), "ok");
    assert_eq!(good["checks"]["checksum"]["source"], "ipsw.me");
    assert_eq!(check(GOOD, "components"), "ok");
    assert_eq!(good["firmware"]["build"], "19H370");
    assert_eq!(good["firmware"]["beta"], false);
    assert_eq!(good["scan"]["hashed"], true);
    assert_eq!(good["scan"]["cached"], false);
    assert_eq!(good["scan"]["for_device"], true);
    assert!(good["scan"]["duplicate_of"].is_null());

    // Its byte-for-byte copy: the same, and a duplicate of it.
    assert_eq!(status(DUPLICATE), "ok");
    assert_eq!(rows[DUPLICATE]["scan"]["duplicate_of"], GOOD);
    assert_eq!(
        rows[DUPLICATE]["scan"]["fingerprint"],
        good["scan"]["fingerprint"]
    );

    // The second device's file: intact; not for this device, so Apple is not asked.
    let a9 = &rows[A9];
    assert_eq!(status(A9), "ok");
    assert_eq!(a9["scan"]["for_device"], false);
    assert_eq!(check(A9, "compatibility"), "fail");
    assert_eq!(check(A9, "components"), "ok");
    assert_eq!(check(A9, "signing"), "skipped");
    assert_eq!(a9["exit_code"], 20);

    // The unsigned build: intact, refused by Apple: error 3194.
    let unsigned = &rows[UNSIGNED];
    assert_eq!(status(UNSIGNED), "unsigned");
    assert_eq!(check(UNSIGNED, "signing"), "not_signed");
    assert_eq!(unsigned["checks"]["signing"]["tss_status"], 94);
    assert_eq!(check(UNSIGNED, "components"), "ok");
    assert_eq!(unsigned["predicted_restore_error"], "3194");
    assert_eq!(unsigned["exit_code"], 30);

    // The beta: signed, intact, flagged.
    assert_eq!(status(BETA), "ok");
    assert_eq!(rows[BETA]["firmware"]["beta"], true);
    assert_eq!(check(BETA, "signing"), "signed");

    // The cut-off download: incomplete, error 14, identified as an IPSW by its name.
    let truncated = &rows[TRUNCATED];
    assert_eq!(status(TRUNCATED), "incomplete");
    assert_eq!(truncated["predicted_restore_error"], "14");
    assert_eq!(truncated["scan"]["restore_error"], "14");
    assert_eq!(truncated["exit_code"], 10);
    assert!(truncated["firmware"].is_null());
    assert!(
        truncated["problems"][0]["message"]
            .as_str()
            .unwrap()
            .contains("truncated"),
        "{truncated}"
    );

    // The CRC-damaged copy: damaged, error 14, with its intact twin named.
    let crc = &rows[CRC];
    assert_eq!(status(CRC), "damaged");
    assert_eq!(check(CRC, "archive"), "fail");
    assert!(crc["checks"]["archive"]["crc_failures"].as_u64().unwrap() >= 1);
    assert_eq!(
        crc["exit_code"], 20,
        "the single-file answer: not for this device"
    );
    assert!(crc["predicted_restore_error"].is_null());
    assert_eq!(crc["scan"]["restore_error"], "14", "what its damage causes");
    assert_eq!(crc["scan"]["intact_copy"], A9);
    assert!(
        crc["scan"]["duplicate_of"].is_null(),
        "damage is not the same content"
    );

    // The IPSW named .zip: found by content.
    assert_eq!(status(WRONG_EXTENSION), "ok");
    assert_eq!(rows[WRONG_EXTENSION]["firmware"]["build"], "19G71");
    assert_eq!(check(WRONG_EXTENSION, "checksum"), "ok");

    // The summary.
    assert_eq!(summary["ipsw_files"], 8);
    assert_eq!(
        summary["counts"],
        serde_json::json!({"ok": 5, "damaged": 1, "incomplete": 1, "not_restorable": 0, "unsigned": 1,
                           "signing_unknown": 0, "interrupted": 0})
    );
    assert_eq!(paths_of(&summary["damaged"]), vec![CRC]);
    assert_eq!(summary["damaged"][0]["predicted_restore_error"], "14");
    assert_eq!(summary["damaged"][0]["intact_copy"], A9);
    assert_eq!(paths_of(&summary["incomplete"]), vec![TRUNCATED]);
    assert_eq!(paths_of(&summary["unsigned"]), vec![UNSIGNED]);
    assert_eq!(paths_of(&summary["betas"]), vec![BETA]);
    assert_eq!(
        summary["duplicates"],
        serde_json::json!([{"product_version": "15.8", "build": "19H370",
            "fingerprint": good["scan"]["fingerprint"], "paths": [GOOD, DUPLICATE]}])
    );
    assert_eq!(summary["skipped"]["not a zip archive"], 1, "{summary}");
    assert_eq!(summary["skipped"]["zip without BuildManifest.plist"], 1);
    assert_eq!(
        summary["skipped"]["not a regular file (FIFO, socket or device)"],
        1
    );
    assert!(
        summary["aliases"].as_u64().unwrap() >= 1,
        "the symlink loop"
    );
    assert_eq!(
        summary["files_hashed"], 7,
        "every IPSW but the truncated one"
    );
    assert_eq!(summary["files_from_cache"], 0);
    assert_eq!(summary["exit_code"], 1);
    assert_eq!(summary["interrupted"], false);

    // The recommendation: the newest intact signed release for the iPhone9,3.
    let rec = &summary["recommendation"];
    assert_eq!(rec["product_type"], "iPhone9,3");
    assert_eq!(rec["path"], GOOD);
    assert_eq!(rec["build"], "19H370");
    assert_eq!(rec["signing"], "signed");
    let message = rec["message"].as_str().unwrap();
    assert!(message.contains("signed by Apple now"), "{message}");
    assert!(
        message.contains("20A5283p") && message.contains("beta"),
        "{message}"
    );

    // Signing was deduplicated: one TSS query per distinct (UniqueBuildID, chip,
    // board) — four builds for the d101ap (the copy shares the good file's) — and
    // one ipsw.me list for the product type.
    assert_eq!(server.tss_requests().len(), 4);
    assert_eq!(server.ipswme_requests().len(), 1);

    // The same library in the other formats, now from both caches: nothing is
    // hashed and Apple is not asked again.
    let mut a = args(&["scan", "lib", "--device", "iPhone9,3", "--format", "json"]);
    a.extend(network_args(&server, cache.path()));
    let (code, stdout, _) = run_in(lib.root.path(), &a);
    assert_eq!(code, 1);
    let doc: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(doc["files"].as_array().unwrap().len(), 8);
    assert_eq!(doc["summary"]["files_hashed"], 0);
    assert_eq!(doc["summary"]["files_from_cache"], 7);
    assert_eq!(doc["summary"]["counts"], summary["counts"]);
    assert_eq!(doc["summary"]["recommendation"]["path"], GOOD);
    assert_eq!(
        server.tss_requests().len(),
        4,
        "answers came from the signing cache"
    );
    for f in doc["files"].as_array().unwrap() {
        let path = f["path"].as_str().unwrap();
        assert_eq!(f["scan"]["status"], rows[path]["scan"]["status"], "{path}");
        assert_eq!(
            f["checks"]["components"],
            rows[path]["checks"]["components"]
        );
        assert_eq!(f["checks"]["checksum"], rows[path]["checks"]["checksum"]);
    }

    let mut a = args(&["scan", "lib", "--device", "iPhone9,3", "--format", "csv"]);
    a.extend(network_args(&server, cache.path()));
    let (_, stdout, _) = run_in(lib.root.path(), &a);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 9, "a header and one row per file:\n{stdout}");
    assert!(lines[0].starts_with("path,status,product_version,build,beta,"));
    assert!(lines
        .iter()
        .any(|l| l.starts_with(&format!("{},unsigned,15.4,19E241,false,", UNSIGNED))));

    let mut a = args(&["scan", "lib", "--device", "iPhone9,3"]);
    a.extend(network_args(&server, cache.path()));
    let (_, table, _) = run_in(lib.root.path(), &a);
    for needle in [
        "STATUS",
        CRC,
        "error 14",
        "duplicates (same build, same content):",
        &format!("for the iPhone 7 (GSM) (iPhone9,3): use {GOOD}: iOS 15.8 (19H370), intact, signed by Apple now"),
        "0 hashed, 7 from cache",
    ] {
        assert!(table.contains(needle), "{needle:?} not in:\n{table}");
    }
}

/// Library-level scan options: offline, private verified cache.
fn offline_options(paths: Vec<PathBuf>, cache: &Path, device: Option<&str>) -> ScanOptions {
    let mut check = util::options(device);
    check.signing.cache_dir = Some(cache.to_path_buf());
    let mut o = ScanOptions::new(paths, check);
    o.jobs = 2;
    o.window = scan::default_window(2);
    o
}

fn scan_lib(options: &ScanOptions) -> ScanResult {
    scan::scan(options, &ScanProgress::default(), &AtomicBool::new(false)).unwrap()
}

#[test]
fn a_second_scan_rehashes_nothing_and_a_touched_file_is_verified_again() {
    let lib = Library::build();
    let cache = tempfile::tempdir().unwrap();
    let options = offline_options(vec![lib.path("lib")], cache.path(), None);

    let first = scan_lib(&options);
    assert_eq!(first.summary.files_hashed, 7);
    assert_eq!(first.summary.files_from_cache, 0);
    assert!(first.summary.bytes_hashed > 0);

    let second = scan_lib(&options);
    assert_eq!(second.summary.files_hashed, 0, "nothing is hashed again");
    assert_eq!(second.summary.files_from_cache, 7);
    assert_eq!(second.summary.bytes_hashed, 0);
    assert_eq!(first.files.len(), second.files.len());
    for (a, b) in first.files.iter().zip(&second.files) {
        assert_eq!(a.path, b.path);
        assert_eq!(a.status, b.status, "{}", a.path.display());
        assert_eq!(a.report.exit_code, b.report.exit_code);
        assert_eq!(
            a.report.checks.components.items,
            b.report.checks.components.items
        );
        assert_eq!(
            a.report.checks.archive.damage,
            b.report.checks.archive.damage
        );
        assert_eq!(
            a.report.checks.archive.crc_checked,
            b.report.checks.archive.crc_checked
        );
    }
    let crc = second.file(&lib.path(CRC)).unwrap();
    assert_eq!(
        crc.status,
        FileStatus::Damaged,
        "damage found once stays found"
    );
    assert!(crc.cached);

    // Touch one file: only it is verified again.
    let touched = lib.path(WRONG_EXTENSION);
    let file = OpenOptions::new().write(true).open(&touched).unwrap();
    file.set_modified(SystemTime::now() + Duration::from_secs(5))
        .unwrap();
    drop(file);
    let third = scan_lib(&options);
    assert_eq!(third.summary.files_hashed, 1);
    assert_eq!(third.summary.files_from_cache, 6);
    let row = third.file(&touched).unwrap();
    assert!(row.hashed && !row.cached);

    // --rehash forces it.
    let mut rehash = options.clone();
    rehash.rehash = true;
    let fourth = scan_lib(&rehash);
    assert_eq!(fourth.summary.files_hashed, 7);
    assert_eq!(fourth.summary.files_from_cache, 0);

    // Other verification options are other keys: --update hashes again.
    let mut update = options.clone();
    update.check.behavior = ipswcheck::manifest::RestoreBehavior::Update;
    assert_eq!(scan_lib(&update).summary.files_hashed, 7);

    // A cache entry that does not parse is a miss, never an error.
    let verified = cache.path().join("verified");
    let entries: Vec<PathBuf> = std::fs::read_dir(&verified)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert!(!entries.is_empty());
    for e in &entries {
        std::fs::write(e, b"{ not json").unwrap();
    }
    let fifth = scan_lib(&options);
    assert_eq!(fifth.summary.files_hashed, 7);
    assert_eq!(fifth.summary.counts, first.summary.counts);
}

#[test]
fn quick_and_interrupted_checks_are_never_cached() {
    let lib = Library::build();
    let cache = tempfile::tempdir().unwrap();
    let mut options = offline_options(vec![lib.path("lib")], cache.path(), None);
    options.check.quick = true;
    let quick = scan_lib(&options);
    assert_eq!(quick.summary.files_hashed, 0);
    assert_eq!(quick.summary.ipsw_files, 8);
    assert!(
        !cache.path().join("verified").exists(),
        "--quick stores nothing"
    );

    // Interrupted before anything was read: nothing is cached either, and every file
    // found is accounted for.
    options.check.quick = false;
    let cancel = AtomicBool::new(true);
    let r = scan::scan(&options, &ScanProgress::default(), &cancel).unwrap();
    assert!(r.summary.interrupted);
    assert_eq!(r.exit(), ipswcheck::exit::ExitCode::Interrupted);
    assert_eq!(r.summary.files_hashed + r.summary.files_from_cache, 0);
    assert!(!cache.path().join("verified").exists());
}

#[test]
fn two_concurrent_scans_leave_a_valid_cache() {
    let lib = Library::build();
    let cache = tempfile::tempdir().unwrap();
    let a = args(&[
        "scan",
        "lib",
        "--offline",
        "--format",
        "ndjson",
        "--cache-dir",
        &cache.path().display().to_string(),
    ]);
    let spawn = || {
        let mut bin = util::ipswcheck();
        let child = bin
            .current_dir(lib.root.path())
            .args(&a)
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        (child, bin)
    };
    let (one, two) = (spawn(), spawn());
    for (child, _home) in [one, two] {
        let out = child.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(1));
        let (rows, _) = parse_ndjson(&String::from_utf8_lossy(&out.stdout));
        assert_eq!(rows.len(), 8);
    }
    // Every entry is whole JSON; no temporary file is left behind.
    let verified = cache.path().join("verified");
    let mut entries = 0;
    for e in std::fs::read_dir(&verified).unwrap() {
        let path = e.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        assert!(!name.ends_with(".tmp"), "leftover {name}");
        let v: Value = serde_json::from_slice(&std::fs::read(&path).unwrap())
            .unwrap_or_else(|e| panic!("{name} is not valid JSON: {e}"));
        assert_eq!(v["format"], 1);
        entries += 1;
    }
    assert_eq!(entries, 7, "one entry per verified file");
    // And a third scan uses all of them.
    let options = offline_options(vec![lib.path("lib")], cache.path(), None);
    let third = scan_lib(&options);
    assert_eq!(third.summary.files_hashed, 0);
    assert_eq!(third.summary.files_from_cache, 7);
}

#[test]
fn the_recommendation_says_why_no_file_restores_the_device() {
    let lib = Library::build();
    let server = lib.server();
    let cache = tempfile::tempdir().unwrap();
    let signing = util::signing::options(server.tss_url(), server.api_url(), Some(cache.path()));
    let options = |paths: Vec<PathBuf>, device: &str| {
        let mut check = util::options(Some(device));
        check.signing = signing.clone();
        ScanOptions::new(paths, check)
    };

    // Only the unsigned build and the cut-off download are for this device.
    let r = scan_lib(&options(
        vec![lib.path(UNSIGNED), lib.path(TRUNCATED), lib.path(A9)],
        "iPhone9,3",
    ));
    let rec = r.summary.recommendation.as_ref().unwrap();
    assert_eq!(rec.path, None);
    assert!(
        rec.message
            .starts_with("1 file is for this device but none is signed: "),
        "{}",
        rec.message
    );
    assert!(rec.message.contains("19E241"), "{}", rec.message);

    // No file at all for an iPhone 5.
    let r = scan_lib(&options(vec![lib.path("lib")], "iPhone5,1"));
    let rec = r.summary.recommendation.as_ref().unwrap();
    assert_eq!(rec.path, None);
    assert!(
        rec.message.starts_with("no file in the library is for the"),
        "{}",
        rec.message
    );

    // The iPhone8,1 (two boards): the intact file, not its damaged copy.
    let r = scan_lib(&options(vec![lib.path("lib")], "iPhone8,1"));
    let rec = r.summary.recommendation.as_ref().unwrap();
    assert_eq!(rec.path.as_deref(), Some(lib.path(A9).to_str().unwrap()));
    assert_eq!(rec.signing, Some(ipswcheck::signing::SigningStatus::Signed));
}

#[test]
fn exit_codes_of_a_scan() {
    let lib = Library::build();
    let cache = tempfile::tempdir().unwrap();
    let cache_arg = cache.path().display().to_string();
    let run = |list: &[&str]| run_in(lib.root.path(), &args(list));

    // Only good files: 0.
    let (code, stdout, _) = run(&[
        "scan",
        GOOD,
        WRONG_EXTENSION,
        "--offline",
        "--cache-dir",
        &cache_arg,
    ]);
    assert_eq!(code, 0, "{stdout}");
    assert!(stdout.contains("ok 2"), "{stdout}");

    // A path that does not exist: 3, one line, nothing scanned.
    let (code, stdout, stderr) = run(&[
        "scan",
        "lib",
        "nowhere",
        "--offline",
        "--cache-dir",
        &cache_arg,
    ]);
    assert_eq!(code, 3);
    assert!(stdout.is_empty());
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("nowhere"), "{stderr}");

    // Usage errors: 2.
    assert_eq!(run(&["scan", "lib", "--jobs", "0"]).0, 2);
    assert_eq!(run(&["scan", "lib", "--format", "xml"]).0, 2);
    assert_eq!(run(&["scan", "lib", "--device", "iPhone99,9"]).0, 2);
    assert_eq!(run(&["scan"]).0, 2);
}

#[test]
fn unreadable_folders_are_reported_and_skipped() {
    use std::os::unix::fs::PermissionsExt;
    let lib = Library::build();
    let private = lib.path("lib/private");
    std::fs::create_dir(&private).unwrap();
    std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o000)).unwrap();
    let cache = tempfile::tempdir().unwrap();
    if unsafe { libc::geteuid() } != 0 {
        let r = scan_lib(&offline_options(vec![lib.path("lib")], cache.path(), None));
        std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert_eq!(r.summary.unreadable.len(), 1);
        assert_eq!(r.summary.ipsw_files, 8);
        return;
    }
    // Root reads anything, and CI runs as root: scan with the binary as `nobody`, in a
    // library it may enter, so the permission bites as it would for a user.
    for dir in [lib.root.path(), cache.path()] {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    }
    let lib_arg = lib.path("lib").display().to_string();
    let cache_arg = cache.path().display().to_string();
    let o = util::robust::run_limited(
        &[
            "scan",
            &lib_arg,
            "--offline",
            "--format",
            "ndjson",
            "--cache-dir",
            &cache_arg,
        ],
        &util::robust::Limits {
            wall: Some(Duration::from_secs(60)),
            uid: Some(65534),
            ..Default::default()
        },
    );
    std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o755)).unwrap();
    assert!(!o.stderr.contains("panicked"), "{}", o.stderr);
    let (_, summary) = parse_ndjson(&o.stdout);
    let unreadable = summary["unreadable"].as_array().expect("a list");
    assert_eq!(unreadable.len(), 1, "{summary:#}");
    assert!(
        unreadable[0].to_string().contains("private"),
        "{unreadable:?}"
    );
    assert_eq!(summary["ipsw_files"], 8, "{summary:#}");
    assert_eq!(o.code, Some(1), "an unreadable folder fails the scan");
}

#[test]
fn ctrl_c_stops_promptly_and_prints_the_results_so_far() {
    // Two files large enough that hashing them takes seconds on one thread.
    let dir = tempfile::tempdir().unwrap();
    for (i, name) in ["big1.ipsw", "big2.ipsw"].iter().enumerate() {
        IpswSpec {
            seed: 0x5CA1_0000 + i as u64,
            ..IpswSpec::benchmark(0.06)
        }
        .build(dir.path().join(name))
        .unwrap();
    }
    let cache = tempfile::tempdir().unwrap();
    let mut bin = util::ipswcheck();
    let child = bin
        .args([
            "scan",
            ".",
            "--offline",
            "--jobs",
            "1",
            "--format",
            "ndjson",
            "--cache-dir",
        ])
        .arg(cache.path())
        .current_dir(dir.path())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let sent = Instant::now();
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGINT) }, 0);
    let out = child.wait_with_output().unwrap();
    assert!(
        sent.elapsed() < Duration::from_secs(3),
        "stopped in {:?}",
        sent.elapsed()
    );
    assert_eq!(out.status.code(), Some(130));
    let (rows, summary) = parse_ndjson(&String::from_utf8_lossy(&out.stdout));
    assert_eq!(summary["interrupted"], true);
    assert_eq!(summary["exit_code"], 130);
    assert_eq!(
        rows.len() + summary["not_checked"].as_u64().unwrap() as usize,
        2,
        "every file is a row or counted as not checked"
    );
    assert!(rows.values().any(|r| r["scan"]["status"] == "interrupted"));
    assert_eq!(summary["files_from_cache"], 0);
    // Nothing interrupted was cached.
    assert!(
        !cache.path().join("verified").exists()
            || std::fs::read_dir(cache.path().join("verified"))
                .unwrap()
                .count()
                == 0
    );
}

#[test]
fn the_progress_counters_add_up() {
    let lib = Library::build();
    let cache = tempfile::tempdir().unwrap();
    let options = offline_options(vec![lib.path("lib")], cache.path(), None);
    let progress = ScanProgress::default();
    let cancel = AtomicBool::new(false);
    let finished = AtomicBool::new(false);
    let peak = std::sync::atomic::AtomicU64::new(0);
    let r = std::thread::scope(|s| {
        s.spawn(|| {
            while !finished.load(Ordering::Relaxed) {
                let snap = progress.snapshot();
                assert!(snap.done <= snap.total, "{snap:?}");
                peak.fetch_max(snap.in_flight.len() as u64, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(1));
            }
        });
        let r = scan::scan(&options, &progress, &cancel).unwrap();
        finished.store(true, Ordering::Relaxed);
        r
    });
    let snap = progress.snapshot();
    assert_eq!(snap.done, r.summary.bytes_hashed);
    assert_eq!(snap.total, snap.done, "the estimate ends exact");
    assert_eq!(snap.files_done, snap.files_total);
    assert!(snap.in_flight.is_empty());
    assert!(peak.load(Ordering::Relaxed) <= options.window as u64);
}

/// Not a test: writes the generated library to `$IPSWCHECK_DEMO_LIBRARY` (the README's
/// scan example). `IPSWCHECK_DEMO_LIBRARY=/tmp/demo cargo test --release --test tests --
/// --ignored scan::demo_library`, then `cd /tmp/demo && ipswcheck scan lib --offline …`.
#[test]
#[ignore]
fn demo_library() {
    let Some(dir) = std::env::var_os("IPSWCHECK_DEMO_LIBRARY") else {
        eprintln!("set IPSWCHECK_DEMO_LIBRARY to a folder to write the library into");
        return;
    };
    let dir = PathBuf::from(dir);
    std::fs::create_dir_all(&dir).unwrap();
    assert!(
        !dir.join("lib").exists(),
        "{} already has a lib folder",
        dir.display()
    );
    let lib = Library::build_in(Root::Kept(dir));
    eprintln!("wrote {}", lib.path("lib").display());
}
