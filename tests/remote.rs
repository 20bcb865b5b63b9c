//! Issue 7: checking an IPSW on a web server before downloading it, and `fetch`, the
//! verifying downloader. A real HTTP server on 127.0.0.1 (`util::remote`) serves
//! (Long: each server behaviour — ranges, no ranges, ETag changes, breaks, resumes — is a
//! test of its own.)
//!
//! generated IPSWs with Range, If-Range and ETag support — or without range support, or
//! cutting a body off midway — and a second loopback server plays Apple's TSS server and
//! ipsw.me (`util::signing`). No test touches the internet.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Instant;

use ipswcheck::check::{CheckOptions, Progress};
use ipswcheck::device;
use ipswcheck::digest::{to_hex, DigestAlgorithm};
use ipswcheck::manifest::RestoreBehavior;
use ipswcheck::remote::{self, FetchOptions};
use ipswcheck::report::Report;
use ipswcheck_fixture::{FixtureLayout, IpswSpec, Method};

use crate::util;
use crate::util::remote::{fetch_args, network_flags, FileServer};
use crate::util::run_env;
use crate::util::signing::{signed_body, status_body, FakeServer, Reply, NOT_ELIGIBLE};

/// Signing served by a loopback TSS/ipsw.me stand-in.
struct Apple {
    server: FakeServer,
    /// The binary's signing cache (never the user's).
    cache: tempfile::TempDir,
}

impl Apple {
    fn signed() -> Self {
        Apple {
            server: FakeServer::apple_and_ipswme(Reply::ok(signed_body()), Reply::status(404)),
            cache: tempfile::tempdir().unwrap(),
        }
    }

    fn unsigned() -> Self {
        Apple {
            server: FakeServer::apple_and_ipswme(
                Reply::ok(status_body(94, NOT_ELIGIBLE)),
                Reply::status(404),
            ),
            cache: tempfile::tempdir().unwrap(),
        }
    }

    /// Signed, and ipsw.me publishes `sha1` as the build's whole-file SHA-1.
    fn signed_with_sha1(sha1: &str) -> Self {
        let body = serde_json::json!({
            "name": "iPhone 7", "identifier": "iPhone9,3",
            "boards": [{"boardconfig": "d101ap", "platform": "t8010", "cpid": 32784, "bdid": 12}],
            "firmwares": [{"identifier": "iPhone9,3", "version": "15.8", "buildid": "19H370",
                "sha1sum": sha1, "md5sum": "00", "sha256sum": "00", "filesize": 1,
                "url": "https://updates.cdn-apple.com/x.ipsw", "releasedate": null,
                "uploaddate": null, "signed": true}]
        });
        Apple {
            server: FakeServer::apple_and_ipswme(
                Reply::ok(signed_body()),
                Reply::ok(body.to_string()),
            ),
            cache: tempfile::tempdir().unwrap(),
        }
    }

    fn options(&self, device: Option<&str>) -> CheckOptions {
        CheckOptions {
            device: device.map(|d| device::resolve(d, None).unwrap()),
            behavior: RestoreBehavior::Erase,
            quick: false,
            expected: None,
            signing: util::signing::server_options(&self.server, None),
        }
    }

    /// The network flags for the binary.
    fn args(&self) -> Vec<String> {
        network_flags(
            &self.server.tss_url(),
            &self.server.api_url(),
            "5",
            self.cache.path(),
        )
    }

    /// Run the binary with `args` and these servers; (exit code, stdout, stderr).
    fn run(&self, args: &[&str]) -> (i32, String, String) {
        let flags = self.args();
        let mut all = args.to_vec();
        all.extend(flags.iter().map(String::as_str));
        run_env(&all, &[])
    }
}

/// The 1 GB fixture: the benchmark layout at a real IPSW's methods (the root filesystem
/// DMG stored, everything else deflated; ~135 entries, two boards), built once and kept
/// under the target directory between runs (its bytes are fixed by its spec).
fn one_gb_fixture() -> &'static Path {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
        let path = dir.join("remote-1gb-benchmark-0.41-os-stored-v1.ipsw");
        if !path.exists() {
            let building = dir.join(format!("remote-1gb.{}.building", std::process::id()));
            let start = Instant::now();
            let spec = IpswSpec {
                os_method: Method::Stored,
                ..IpswSpec::benchmark(0.41)
            };
            spec.build(&building).unwrap();
            eprintln!(
                "built the 1 GB fixture in {:.1} s",
                start.elapsed().as_secs_f64()
            );
            std::fs::rename(&building, &path).unwrap();
        }
        path
    })
}

fn sample(dir: &Path) -> PathBuf {
    let path = dir
        .join("src")
        .join("iPhone_4.7_P3_15.8_19H370_Restore.ipsw");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    IpswSpec::sample().build(&path).unwrap();
    path
}

/// A ~30 MB IPSW with the benchmark layout (root filesystem stored, the rest deflated):
/// big enough that a download takes many reads and a cut lands mid-entry.
fn medium(dir: &Path) -> (PathBuf, FixtureLayout) {
    let path = dir
        .join("src")
        .join("iPhone_4.7_P3_15.8_19H370_Restore.ipsw");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let spec = IpswSpec {
        os_method: Method::Stored,
        ..IpswSpec::benchmark(0.01)
    };
    let layout = spec.build(&path).unwrap();
    (path, layout)
}

/// A file served as `fw.ipsw` by a fresh file server, and where to download it:
/// `out/fw.ipsw`, in an empty `out/`.
struct Download {
    path: PathBuf,
    size: u64,
    files: FileServer,
    url: String,
    out: PathBuf,
    dest: PathBuf,
}

impl Download {
    /// The [`medium`] fixture.
    fn medium(dir: &Path) -> Download {
        Download::of(dir, medium(dir).0)
    }

    fn of(dir: &Path, path: PathBuf) -> Download {
        let size = std::fs::metadata(&path).unwrap().len();
        let files = FileServer::start();
        let url = files.serve("fw.ipsw", &path);
        let out = dir.join("out");
        std::fs::create_dir_all(&out).unwrap();
        let dest = out.join("fw.ipsw");
        Download {
            path,
            size,
            files,
            url,
            out,
            dest,
        }
    }
}

fn sha1_hex(path: &Path) -> String {
    to_hex(&DigestAlgorithm::Sha1.digest(&std::fs::read(path).unwrap()))
}

fn json(out: &str, err: &str) -> serde_json::Value {
    serde_json::from_str(out).unwrap_or_else(|e| panic!("{e}: {out}{err}"))
}

fn fetch_options(apple: &Apple, device: Option<&str>, retries: u32) -> FetchOptions {
    FetchOptions {
        check: apple.options(device),
        keep: false,
        retries,
    }
}

fn problems(report: &Report) -> String {
    report
        .problems
        .iter()
        .map(|p| p.message.as_str())
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn remote_quick_check_of_a_1gb_fixture_reads_under_1mb() {
    let path = one_gb_fixture();
    let size = std::fs::metadata(path).unwrap().len();
    assert!(size > 1_000_000_000, "{size}");
    let files = FileServer::start();
    let url = files.serve("iPhone_4.7_P3_15.8_19H370_Restore.ipsw", path);
    let apple = Apple::signed();

    let start = Instant::now();
    let report = remote::check_url(&url, &apple.options(Some("iPhone9,3")), None);
    let elapsed = start.elapsed();
    let fetched = report.bytes_fetched.unwrap();
    eprintln!(
        "remote quick check of {} ({size} bytes): {fetched} bytes fetched in {} requests, {:.0} ms",
        path.display(),
        files.log().len(),
        elapsed.as_secs_f64() * 1000.0
    );
    for r in files.log() {
        eprintln!("  {:?} -> {} ({} bytes)", r.range, r.status, r.body_sent);
    }
    assert_eq!(report.exit_code, 0, "{}", report.to_json());
    assert_eq!(report.file, url);
    assert_eq!(report.size, Some(size));
    assert!(fetched < 1_000_000, "fetched {fetched} bytes");
    assert!(files.body_bytes_sent() <= fetched);
    // Every request was a range request answered with 206.
    for r in files.log() {
        assert_eq!(r.status, 206, "{r:?}");
        assert!(r.range.is_some(), "{r:?}");
    }
    // Quick mode on a directory read remotely: every component file was looked up, and
    // nothing is missing; nothing was hashed.
    let items = &report.checks.components.items;
    assert!(items.len() > 100, "{}", items.len());
    assert!(items.iter().all(|i| !i.status.is_failure()));
    assert_eq!(report.checks.archive.crc_checked, 0);
    assert_eq!(
        report.checks.signing.status,
        ipswcheck::signing::SigningStatus::Signed
    );
}

/// Run the binary with the loopback signing servers; parse its JSON.
fn run_json(args: &[&str], apple: &Apple) -> (i32, serde_json::Value, String) {
    let (code, out, err) = apple.run(&[args, &["--json"]].concat());
    (code, json(&out, &err), err)
}

#[test]
fn remote_check_through_the_cli_reports_the_url_size_and_bytes_fetched() {
    let dir = tempfile::tempdir().unwrap();
    let path = sample(dir.path());
    let size = std::fs::metadata(&path).unwrap().len();
    let files = FileServer::start();
    let url = files.serve("iPhone_4.7_P3_15.8_19H370_Restore.ipsw", &path);
    let apple = Apple::signed();
    let (code, v, err) = run_json(&[&url, "--device", "iPhone9,3"], &apple);
    assert_eq!(code, 0, "{v:#}{err}");
    // Nothing was hashed: structure, model and signing only, and the verdict says so.
    assert_eq!(v["verdict"], "structure_ok");
    assert_eq!(v["notes"][0]["kind"], "contents_not_verified");
    assert_eq!(v["file"], url.as_str());
    assert_eq!(v["size"], size);
    let fetched = v["bytes_fetched"].as_u64().unwrap();
    assert!(fetched > 0 && fetched < size, "{fetched} of {size}");
    assert_eq!(v["checks"]["signing"]["status"], "signed");
    assert_eq!(v["checks"]["compatibility"]["status"], "ok");
    // Quick mode: the components were looked up, not hashed.
    assert_eq!(v["checks"]["components"]["status"], "skipped");
    assert_eq!(v["checks"]["archive"]["crc_checked"], 0);
    // A local file's report has no bytes_fetched at all.
    let (_, local, _) = run_json(&[path.to_str().unwrap(), "--device", "iPhone9,3"], &apple);
    assert!(local.get("bytes_fetched").is_none(), "{local:#}");

    // The human report says what was read.
    let (code, out, _) = apple.run(&[&url, "--device", "iPhone9,3"]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.starts_with("STRUCTURE OK: iPhone_4.7_P3_15.8_19H370_Restore.ipsw")
            && out.contains("only the zip directory and manifests were read"),
        "{out}"
    );
    assert!(
        out.contains("over HTTP") && out.contains("contents not verified"),
        "{out}"
    );
}

#[test]
fn wrong_device_is_caught_remotely() {
    let dir = tempfile::tempdir().unwrap();
    let path = sample(dir.path());
    let files = FileServer::start();
    let url = files.serve("iPhone_4.7_P3_15.8_19H370_Restore.ipsw", &path);
    let apple = Apple::signed();
    // The sample serves iPhone9,1 and iPhone9,3; an iPhone 8 (iPhone10,1) is refused.
    let (code, v, err) = run_json(&[&url, "--device", "iPhone10,1"], &apple);
    assert_eq!(code, 20, "{v:#}{err}");
    assert_eq!(v["verdict"], "not_ready");
    assert_eq!(v["checks"]["compatibility"]["status"], "fail");
    assert_eq!(v["file"], url.as_str());
    assert!(v["bytes_fetched"].as_u64().unwrap() > 0);
    // Not for this device: Apple is not even asked.
    assert!(apple.server.tss_requests().is_empty());
}

#[test]
fn unsigned_build_is_caught_remotely() {
    let dir = tempfile::tempdir().unwrap();
    let path = sample(dir.path());
    let files = FileServer::start();
    let url = files.serve("iPhone_4.7_P3_15.8_19H370_Restore.ipsw", &path);
    let apple = Apple::unsigned();
    let (code, v, err) = run_json(&[&url, "--device", "iPhone9,3"], &apple);
    assert_eq!(code, 30, "{v:#}{err}");
    assert_eq!(v["checks"]["signing"]["status"], "not_signed");
    assert_eq!(v["predicted_restore_error"], "3194");
    assert_eq!(apple.server.tss_requests().len(), 1);
}

#[test]
fn missing_component_is_caught_remotely_without_reading_entry_data() {
    let dir = tempfile::tempdir().unwrap();
    let full = sample(dir.path());
    let layout = IpswSpec::sample()
        .build(dir.path().join("again.ipsw"))
        .unwrap();
    let d101 = layout
        .identities
        .iter()
        .find(|i| i.board == "d101ap")
        .unwrap()
        .index;
    let gone = layout
        .components
        .iter()
        .find(|c| c.identity == d101 && c.name == "iBEC")
        .and_then(|c| c.path.clone())
        .unwrap();
    // The same zip without that one file (entries copied raw).
    let cut = dir.path().join("missing.ipsw");
    {
        let mut src = zip::ZipArchive::new(std::fs::File::open(&full).unwrap()).unwrap();
        let mut out = zip::ZipWriter::new(std::fs::File::create(&cut).unwrap());
        for i in 0..src.len() {
            let entry = src.by_index_raw(i).unwrap();
            if entry.name().unwrap() != gone.as_str() {
                out.raw_copy_file(entry).unwrap();
            }
        }
        out.finish().unwrap();
    }
    let files = FileServer::start();
    let url = files.serve("missing.ipsw", &cut);
    let apple = Apple::signed();
    let report = remote::check_url(&url, &apple.options(Some("iPhone9,3")), None);
    assert_eq!(report.exit_code, 11, "{}", report.to_json());
    assert_eq!(report.predicted_restore_error.as_deref(), Some("11"));
    let missing: Vec<_> = report
        .checks
        .components
        .items
        .iter()
        .filter(|i| i.status == ipswcheck::verify::ComponentStatus::Missing)
        .collect();
    assert_eq!(missing.len(), 1, "{missing:?}");
    assert_eq!(missing[0].path.as_deref(), Some(gone.as_str()));
    // Only the end of the file and the plists were read.
    assert!(report.bytes_fetched.unwrap() < 100_000);
}

#[test]
fn truncated_remote_file_is_reported_as_damage() {
    let dir = tempfile::tempdir().unwrap();
    let full = sample(dir.path());
    let bytes = std::fs::read(&full).unwrap();
    let half = dir.path().join("half.ipsw");
    std::fs::write(&half, &bytes[..bytes.len() / 2]).unwrap();
    let files = FileServer::start();
    let url = files.serve("half.ipsw", &half);
    let apple = Apple::signed();
    let report = remote::check_url(&url, &apple.options(Some("iPhone9,3")), None);
    assert_eq!(report.exit_code, 10, "{}", report.to_json());
    assert!(
        problems(&report).contains("truncated"),
        "{}",
        problems(&report)
    );
}

#[test]
fn server_ignoring_range_is_refused_without_downloading() {
    let path = one_gb_fixture();
    let size = std::fs::metadata(path).unwrap().len();
    let files = FileServer::start();
    let url = files.serve("big.ipsw", path);
    files.ignore_ranges(true);
    let apple = Apple::signed();

    let start = Instant::now();
    let (code, v, err) = run_json(&[&url, "--device", "iPhone9,3"], &apple);
    let elapsed = start.elapsed();
    assert_eq!(code, 3, "{v:#}{err}");
    let message = v["problems"][0]["message"].as_str().unwrap();
    assert!(
        message.contains("does not support range requests")
            && message.contains("will not download 998.0 MiB"),
        "{message}"
    );
    assert!(v["problems"][0]["hint"].as_str().unwrap().contains("curl"));
    assert!(elapsed.as_secs() < 20, "{elapsed:?}");

    // (`fetch` downloads from such a server instead, and checks the file in full once it
    // is complete: tests/output.rs.)

    // The connection was dropped after the headers: the server got to send no more
    // than what fits in the socket buffers, not the file.
    std::thread::sleep(std::time::Duration::from_millis(300));
    let sent = files.body_bytes_sent();
    assert!(sent < size / 10, "the server sent {sent} of {size} bytes");
    assert_eq!(files.log().len(), 1, "{:?}", files.log());
}

#[test]
fn offline_refuses_urls() {
    let files = FileServer::start();
    let url = files.url("x.ipsw");
    let (code, _, err) = run_env(&[&url, "--offline"], &[]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--offline cannot check a URL"), "{err}");
    // (`fetch --offline` downloads without asking Apple: tests/output.rs.)
    assert!(files.log().is_empty());
    // The library refuses too, with a report.
    let mut options = util::options(None);
    options.signing.offline = true;
    let report = remote::check_url(&url, &options, None);
    assert_eq!(report.exit_code, 3);
    assert!(problems(&report).contains("offline"));
    assert!(files.log().is_empty());
}

#[test]
fn fetch_of_a_good_file_ends_with_a_verified_identical_copy() {
    let dir = tempfile::tempdir().unwrap();
    let (path, _) = medium(dir.path());
    let size = std::fs::metadata(&path).unwrap().len();
    let sha1 = sha1_hex(&path);
    let files = FileServer::start();
    let url = files.serve("iPhone_4.7_P3_15.8_19H370_Restore.ipsw", &path);
    let apple = Apple::signed_with_sha1(&sha1);
    let dest = dir.path().join("out").join("fw.ipsw");
    std::fs::create_dir_all(dest.parent().unwrap()).unwrap();

    let start = Instant::now();
    let (code, v, err) = run_json(&fetch_args(&url, &dest), &apple);
    eprintln!(
        "fetch of {size} bytes: {:.2} s",
        start.elapsed().as_secs_f64()
    );
    assert_eq!(code, 0, "{v:#}{err}");
    assert!(err.contains("saved:"), "{err}");
    assert_eq!(v["verdict"], "ready");
    assert_eq!(v["file"], url.as_str());
    assert_eq!(v["size"], size);
    // Everything was verified: the full check, not the quick one.
    assert_eq!(v["checks"]["components"]["status"], "ok");
    assert_eq!(v["checks"]["archive"]["status"], "ok");
    assert!(v["checks"]["archive"]["crc_checked"].as_u64().unwrap() > 100);
    assert_eq!(v["checks"]["checksum"]["status"], "ok");
    assert_eq!(v["checks"]["checksum"]["source"], "ipsw.me");
    assert_eq!(v["checks"]["checksum"]["actual"], sha1.as_str());
    // Downloaded once: the file plus the preflight's few kB.
    let fetched = v["bytes_fetched"].as_u64().unwrap();
    assert!(
        fetched >= size && fetched < size + 200_000,
        "{fetched} for {size}"
    );
    // Identical to the source, and nothing else left behind.
    assert_eq!(sha1_hex(&dest), sha1);
    let left: Vec<_> = std::fs::read_dir(dest.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left, vec![std::ffi::OsString::from("fw.ipsw")]);
}

/// ipsw.me publishing a wrong SHA-1 (it has: Legacy-iOS-Kit #302) must not make `fetch`
/// throw away a download whose every CRC and component digest verified.
#[test]
fn fetch_keeps_an_intact_file_when_ipswme_publishes_another_sha1() {
    let dir = tempfile::tempdir().unwrap();
    let (path, _) = medium(dir.path());
    let sha1 = sha1_hex(&path);
    let files = FileServer::start();
    let url = files.serve("iPhone_4.7_P3_15.8_19H370_Restore.ipsw", &path);
    let apple = Apple::signed_with_sha1("0123456789012345678901234567890123456789");
    let dest = dir.path().join("out").join("fw.ipsw");
    std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
    let (code, v, err) = run_json(&fetch_args(&url, &dest), &apple);
    assert_eq!(code, 0, "{v:#}{err}");
    assert_eq!(v["verdict"], "ready");
    assert_eq!(v["checks"]["checksum"]["status"], "warn");
    assert_eq!(v["checks"]["components"]["status"], "ok");
    assert_eq!(sha1_hex(&dest), sha1, "the file is kept, whole");
}

/// The medium fixture with one byte of its (stored) root filesystem DMG flipped.
fn corrupted(dir: &Path) -> (PathBuf, PathBuf) {
    let (path, layout) = medium(dir);
    let os = layout
        .components
        .iter()
        .find(|c| c.name == "OS")
        .and_then(|c| c.path.clone())
        .unwrap();
    let range = layout.entry(&os).unwrap().data_range();
    let mut bytes = std::fs::read(&path).unwrap();
    let at = ((range.start + range.end) / 2) as usize;
    bytes[at] ^= 0x40;
    let bad = dir.join("src").join("corrupt.ipsw");
    std::fs::write(&bad, bytes).unwrap();
    (path, bad)
}

#[test]
fn fetch_of_a_corrupted_source_leaves_no_file_at_the_target_name() {
    let dir = tempfile::tempdir().unwrap();
    let (_, bad) = corrupted(dir.path());
    let d = Download::of(dir.path(), bad.clone());
    let apple = Apple::signed();

    let outcome = remote::fetch(
        &d.url,
        &d.dest,
        &fetch_options(&apple, Some("iPhone9,3"), 0),
        None,
        &Progress::default(),
    )
    .unwrap();
    let report = &outcome.report;
    // A CRC failure in the OS image (exit 10) and its digest mismatch, error 14.
    assert_eq!(report.exit_code, 10, "{}", report.to_json());
    assert_eq!(report.predicted_restore_error.as_deref(), Some("14"));
    assert!(outcome.downloaded);
    assert!(outcome.saved.is_none() && outcome.kept_failed.is_none() && outcome.partial.is_none());
    assert_eq!(
        std::fs::read_dir(&d.out).unwrap().count(),
        0,
        "something was left behind"
    );

    // --keep keeps it, under another name.
    let mut options = fetch_options(&apple, Some("iPhone9,3"), 0);
    options.keep = true;
    let outcome = remote::fetch(&d.url, &d.dest, &options, None, &Progress::default()).unwrap();
    assert_eq!(outcome.report.exit_code, 10);
    let kept = outcome.kept_failed.unwrap();
    assert_eq!(kept, d.out.join("fw.ipsw.failed"));
    assert!(!d.dest.exists());
    assert_eq!(sha1_hex(&kept), sha1_hex(&bad));
    assert_eq!(std::fs::read_dir(&d.out).unwrap().count(), 1);
}

/// Damage or a mismatch found while a ranged download is under way stops it, as on a
/// server without ranges: the rest is not worth downloading, nothing is kept, and the
/// report holds what was found — with the signing verdict the preflight already had.
#[test]
fn a_failure_found_during_a_ranged_fetch_stops_the_download() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    let path = src.join("early.ipsw");
    // A small stored OS image, then the (deflated) restore ramdisk as the third entry;
    // 20 MB of kernelcache come after them.
    let layout = IpswSpec {
        os_size: 1 << 20,
        os_method: Method::Stored,
        kernelcache_size: 20 << 20,
        ..IpswSpec::benchmark(0.01)
    }
    .build(&path)
    .unwrap();
    let (os, ramdisk) = (
        util::entry_of(&layout, "OS"),
        util::entry_of(&layout, "RestoreRamDisk"),
    );
    assert_eq!(layout.zip.entries[2].name, ramdisk.name);
    assert_eq!(os.method, 0);
    let original = std::fs::read(&path).unwrap();
    let size = original.len() as u64;
    // A flipped bit in the ramdisk (its CRC-32 tells: exit 10), and a changed byte of the
    // stored OS image written back with its CRC-32 (an intact zip, a component that is
    // not Apple's: exit 11).
    let flipped = {
        let mut bytes = original.clone();
        let range = ramdisk.data_range();
        bytes[(range.start + range.end) as usize / 2] ^= 0x40;
        bytes
    };
    let changed = {
        let mut bytes = original.clone();
        let range = os.data_range();
        bytes[range.start as usize + 1000] ^= 0x01;
        let crc = crc32fast::hash(&bytes[range.start as usize..range.end as usize]);
        util::set_crc(&mut bytes, os, crc);
        bytes
    };
    let apple = Apple::signed();
    for (what, bytes, victim, want) in [
        ("a bad CRC-32", flipped, ramdisk, 10),
        ("a component mismatch", changed, os, 11),
    ] {
        std::fs::write(&path, &bytes).unwrap();
        let d = Download::of(&dir.path().join(want.to_string()), path.clone());
        // After the damaged entry the server slows down to ~1.3 MB/s: the whole file
        // would take 15 s more.
        d.files
            .slow_after(ramdisk.data_range().end.max(victim.data_range().end) + (256 << 10));
        let started = Instant::now();
        let (code, v, err) = run_json(&fetch_args(&d.url, &d.dest), &apple);
        let took = started.elapsed();
        assert_eq!(code, want, "{what}: {v:#}{err}");
        assert_eq!(v["verdict"], "not_ready", "{what}: {v:#}");
        assert_eq!(v["checks"]["signing"]["status"], "signed", "{what}: {v:#}");
        // What was found, and nothing that the stop itself caused: our own writes are not
        // a change during the check, jobs the stop cut short are not an interruption.
        let kinds: Vec<&str> = v["problems"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["kind"].as_str().unwrap())
            .collect();
        let first = if want == 10 {
            "archive_damage"
        } else {
            "component_mismatch"
        };
        assert_eq!(kinds[0], first, "{what}: {v:#}");
        assert!(
            kinds
                .iter()
                .all(|k| *k == "archive_damage" || *k == "component_mismatch"),
            "{what}: {kinds:?}"
        );
        if want == 10 {
            let damage = &v["checks"]["archive"]["damage"][0];
            assert_eq!(damage["entry"], victim.name.as_str(), "{v:#}");
            assert_eq!(damage["crc"], true, "{v:#}");
        }
        // The victim's component is a mismatch; components whose files had not arrived
        // are left out, never reported failed.
        let items = v["checks"]["components"]["items"].as_array().unwrap();
        assert!(
            items
                .iter()
                .any(|c| c["status"] == "mismatch" && c["path"] == victim.name.as_str()),
            "{what}: {v:#}"
        );
        for c in items {
            assert!(
                c["status"] != "mismatch" || c["path"] == victim.name.as_str(),
                "{what}: {c:#}"
            );
        }
        assert!(
            err.contains("nothing saved: the download was stopped at"),
            "{what}: {err}"
        );
        let sent = d.files.body_bytes_sent();
        assert!(
            sent < size / 2,
            "{what}: the server sent {sent} of {size} bytes"
        );
        assert_eq!(std::fs::read_dir(&d.out).unwrap().count(), 0, "{what}");
        eprintln!("{what}: stopped after {sent} of {size} bytes in {took:?}");
    }
}

#[test]
fn fetch_stops_before_downloading_a_file_for_another_device_or_not_signed() {
    let dir = tempfile::tempdir().unwrap();
    let d = Download::medium(dir.path());

    let signed = Apple::signed();
    let (code, v, err) = run_json(
        &[
            "fetch",
            &d.url,
            "-o",
            d.dest.to_str().unwrap(),
            "--device",
            "iPhone10,1",
        ],
        &signed,
    );
    assert_eq!(code, 20, "{v:#}{err}");
    assert!(err.contains("nothing downloaded"), "{err}");

    let unsigned = Apple::unsigned();
    let (code, v, err) = run_json(&fetch_args(&d.url, &d.dest), &unsigned);
    assert_eq!(code, 30, "{v:#}{err}");
    assert_eq!(v["checks"]["signing"]["status"], "not_signed");

    assert_eq!(std::fs::read_dir(&d.out).unwrap().count(), 0);
    let sent = d.files.body_bytes_sent();
    assert!(sent < 200_000, "the server sent {sent} of {} bytes", d.size);
}

#[test]
fn fetch_cut_midway_resumes_in_the_same_run() {
    let dir = tempfile::tempdir().unwrap();
    let d = Download::medium(dir.path());
    let sha1 = sha1_hex(&d.path);
    d.files.cut_once_after(d.size / 2);
    let apple = Apple::signed();

    let (code, v, err) = run_json(&fetch_args(&d.url, &d.dest), &apple);
    assert_eq!(code, 0, "{v:#}{err}");
    assert_eq!(sha1_hex(&d.dest), sha1);
    let log = d.files.log();
    let cut: Vec<_> = log.iter().filter(|r| r.cut).collect();
    assert_eq!(cut.len(), 1, "{log:?}");
    assert_eq!(cut[0].body_sent, d.size / 2);
    // The transfer went on from where it broke, for the same version of the file.
    let resume = log
        .iter()
        .find(|r| {
            r.range
                .as_deref()
                .is_some_and(|h| h.starts_with(&format!("bytes={}-", d.size / 2)))
        })
        .unwrap_or_else(|| panic!("no resume request: {log:?}"));
    assert_eq!(resume.status, 206);
    assert_eq!(resume.if_range.as_deref(), Some("\"v1\""));
    // Nothing was downloaded twice.
    let fetched = v["bytes_fetched"].as_u64().unwrap();
    assert!(fetched < d.size + 200_000, "{fetched} for {}", d.size);
    assert_eq!(std::fs::read_dir(&d.out).unwrap().count(), 1);
}

#[test]
fn fetch_interrupted_resumes_on_the_next_run_when_the_file_is_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let d = Download::medium(dir.path());
    let sha1 = sha1_hex(&d.path);
    let apple = Apple::signed();
    let options = fetch_options(&apple, Some("iPhone9,3"), 0);

    // First run: the connection breaks at a third and no reconnection is allowed.
    d.files.cut_once_after(d.size / 3);
    let first = remote::fetch(&d.url, &d.dest, &options, None, &Progress::default()).unwrap();
    assert_eq!(first.report.exit_code, 3, "{}", first.report.to_json());
    assert!(
        problems(&first.report).contains("stopped at"),
        "{}",
        problems(&first.report)
    );
    assert!(first.report.problems[0]
        .hint
        .as_deref()
        .unwrap()
        .contains("resumes"));
    let part = first.partial.clone().unwrap();
    assert_eq!(part, d.out.join("fw.ipsw.part"));
    assert!(part.exists() && d.out.join("fw.ipsw.part.json").exists());
    assert!(!d.dest.exists());

    // Second run: same ETag, so it continues from the first run's last byte.
    d.files.clear_log();
    let second = remote::fetch(&d.url, &d.dest, &options, None, &Progress::default()).unwrap();
    assert_eq!(second.report.exit_code, 0, "{}", second.report.to_json());
    assert_eq!(second.resumed_from, Some(d.size / 3));
    assert_eq!(second.saved.as_deref(), Some(d.dest.as_path()));
    let resumed = format!("bytes={}-", d.size / 3);
    assert!(
        d.files
            .log()
            .iter()
            .any(|r| r.range.as_deref().is_some_and(|h| h.starts_with(&resumed))),
        "{:?}",
        d.files.log()
    );
    let sent = d.files.body_bytes_sent();
    assert!(
        sent < d.size - d.size / 3 + 200_000,
        "second run sent {sent}"
    );
    assert_eq!(sha1_hex(&d.dest), sha1);
    assert!(second.report.checks.archive.crc_checked > 100);
    assert_eq!(std::fs::read_dir(&d.out).unwrap().count(), 1);
}

/// `fetch` never writes into `FILE.part` while it is mapped (a `&[u8]` over a shared
/// mapping must not change under it): the download's verifier reads the part with
/// `pread`, and every write first asks whether any mapping of the part is alive. Here a
/// mapping of the part made by this process (a check of `FILE.part`) stops a resumed
/// fetch before it writes a byte; once it is gone, the same fetch resumes, verifies
/// while downloading and completes — every one of its writes asked and found no mapping.
#[test]
fn fetch_never_writes_into_a_part_file_that_is_mapped() {
    let dir = tempfile::tempdir().unwrap();
    let d = Download::medium(dir.path());
    let apple = Apple::signed();
    let options = fetch_options(&apple, Some("iPhone9,3"), 0);
    d.files.cut_once_after(d.size / 3);
    let first = remote::fetch(&d.url, &d.dest, &options, None, &Progress::default()).unwrap();
    let part = first.partial.clone().expect("a partial download");
    let before = std::fs::read(&part).unwrap();

    let mapped = ipswcheck::archive::Archive::open(&part).unwrap();
    let refused = remote::fetch(&d.url, &d.dest, &options, None, &Progress::default())
        .expect_err("a mapped part must not be written");
    assert!(
        refused
            .to_string()
            .contains("mapped for reading while it is being written"),
        "{refused}"
    );
    assert_eq!(
        std::fs::read(&part).unwrap(),
        before,
        "the part was written"
    );
    drop(mapped);

    let second = remote::fetch(&d.url, &d.dest, &options, None, &Progress::default()).unwrap();
    assert_eq!(second.report.exit_code, 0, "{}", second.report.to_json());
    assert_eq!(second.resumed_from, Some(d.size / 3));
    assert_eq!(sha1_hex(&d.dest), sha1_hex(&d.path));
    assert!(second.report.checks.archive.crc_checked > 100);
}

#[test]
fn fetch_starts_over_when_the_file_changed_on_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let d = Download::medium(dir.path());
    let apple = Apple::signed();
    let options = fetch_options(&apple, Some("iPhone9,3"), 0);
    d.files.cut_once_after(d.size / 3);
    let first = remote::fetch(&d.url, &d.dest, &options, None, &Progress::default()).unwrap();
    assert!(first.partial.is_some());

    // A new upload: the partial bytes may belong to another file.
    d.files.set_etag("\"v2\"");
    d.files.clear_log();
    let second = remote::fetch(&d.url, &d.dest, &options, None, &Progress::default()).unwrap();
    assert_eq!(second.report.exit_code, 0, "{}", second.report.to_json());
    assert_eq!(second.resumed_from, None);
    assert!(
        d.files.log().iter().any(|r| r
            .range
            .as_deref()
            .is_some_and(|h| h.starts_with("bytes=0-"))),
        "{:?}",
        d.files.log()
    );
    assert_eq!(sha1_hex(&d.dest), sha1_hex(&d.path));
}

#[test]
fn fetch_never_replaces_an_existing_file_or_a_foreign_part() {
    let dir = tempfile::tempdir().unwrap();
    let path = sample(dir.path());
    let files = FileServer::start();
    let url = files.serve("fw.ipsw", &path);
    let apple = Apple::signed();
    let dest = dir.path().join("fw.ipsw");
    std::fs::write(&dest, b"my own file").unwrap();
    let fetch = ["fetch", &url, "-o", dest.to_str().unwrap()];
    let (code, _, err) = apple.run(&fetch);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("already exists"), "{err}");
    assert_eq!(std::fs::read(&dest).unwrap(), b"my own file");

    // A FILE.part that fetch did not write is left alone too.
    std::fs::remove_file(&dest).unwrap();
    let part = dir.path().join("fw.ipsw.part");
    std::fs::write(&part, b"someone else's").unwrap();
    let (code, _, err) = apple.run(&fetch);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("was not left by"), "{err}");
    assert_eq!(std::fs::read(&part).unwrap(), b"someone else's");
    assert!(!dest.exists());
    assert!(files.log().is_empty(), "{:?}", files.log());
}

#[test]
fn catalogue_survey_checks_every_url_and_asks_apple_once_per_identity() {
    let dir = tempfile::tempdir().unwrap();
    let path = sample(dir.path());
    let files = FileServer::start();
    let urls: Vec<String> = (0..3)
        .map(|n| files.serve(&format!("copy{n}.ipsw"), &path))
        .chain([files.url("missing.ipsw")])
        .collect();
    let list = dir.path().join("urls.txt");
    std::fs::write(
        &list,
        format!(
            "# catalogue\n{}\n\n{}\n{}\n  {}\n",
            urls[0], urls[1], urls[2], urls[3]
        ),
    )
    .unwrap();
    assert_eq!(remote::read_url_list(&list).unwrap(), urls);
    std::fs::write(
        dir.path().join("bad.txt"),
        "https://x/y.ipsw\n/local/file.ipsw\n",
    )
    .unwrap();
    let err = remote::read_url_list(&dir.path().join("bad.txt")).unwrap_err();
    assert!(err.to_string().contains("line 2"), "{err}");

    let apple = Apple::signed();
    let options = apple.options(Some("iPhone9,3"));
    let session = ipswcheck::signing::SigningSession::new(options.signing.clone());
    let cancel = std::sync::atomic::AtomicBool::new(false);
    let reports = remote::check_urls(&urls, &options, &session, &cancel);
    let codes: Vec<i32> = reports
        .iter()
        .map(|r| r.as_ref().unwrap().exit_code)
        .collect();
    assert_eq!(codes, vec![0, 0, 0, 3]);
    for (report, url) in reports.iter().zip(&urls) {
        assert_eq!(&report.as_ref().unwrap().file, url);
    }
    // One build, one board: one TSS question for the whole catalogue.
    assert_eq!(apple.server.tss_requests().len(), 1);
}

#[test]
fn scan_urls_surveys_a_catalogue_remotely() {
    let dir = tempfile::tempdir().unwrap();
    let path = sample(dir.path());
    let files = FileServer::start();
    let good = files.serve("good.ipsw", &path);
    let gone = files.url("gone.ipsw");
    let list = dir.path().join("urls.txt");
    std::fs::write(&list, format!("# the catalogue\n{good}\n{gone}\n")).unwrap();
    let apple = Apple::signed();
    let (code, out, err) = apple.run(&[
        "scan",
        "--urls",
        list.to_str().unwrap(),
        "--device",
        "iPhone9,3",
        "--format",
        "json",
    ]);
    let v = json(&out, &err);
    // One URL could not be read: the scan reports a failure.
    assert_eq!(code, 1, "{v:#}{err}");
    let rows = v["files"].as_array().unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["path"], good.as_str());
    assert_eq!(rows[0]["file"], good.as_str());
    assert_eq!(rows[0]["verdict"], "structure_ok");
    assert!(rows[0]["bytes_fetched"].as_u64().unwrap() < 100_000);
    let unreadable = &v["summary"]["unreadable"][0];
    assert_eq!(unreadable["path"], gone.as_str());
    assert!(unreadable["error"].as_str().unwrap().contains("HTTP 404"));
    assert_eq!(v["summary"]["recommendation"]["path"], good.as_str());
    // Nothing was downloaded.
    assert!(files.body_bytes_sent() < 100_000);

    // --offline refuses a list of URLs.
    let (code, _, err) = run_env(
        &["scan", "--urls", list.to_str().unwrap(), "--offline"],
        &[],
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--offline"), "{err}");
}

#[test]
fn zip64_layouts_and_directories_beyond_the_tail_work_remotely() {
    let dir = tempfile::tempdir().unwrap();
    let apple = Apple::signed();
    let files = FileServer::start();
    let specs = [
        (
            "zip64",
            IpswSpec {
                force_zip64: true,
                data_descriptors: true,
                ..IpswSpec::sample()
            },
        ),
        (
            "big-directory",
            IpswSpec {
                // 900 entries make a directory larger than the fetched tail; with one
                // device and no research identity the manifest (2 identities × 900
                // fillers) stays under the plist value cap (manifest::MAX_PLIST_VALUES).
                filler_count: 900,
                research_identity: false,
                devices: vec![IpswSpec::sample().devices[1].clone()],
                ..IpswSpec::sample()
            },
        ),
    ];
    for (name, spec) in specs {
        let path = dir.path().join(format!("{name}.ipsw"));
        let layout = spec.build(&path).unwrap();
        let size = layout.file_size;
        if name == "big-directory" {
            assert!(layout.zip.central_directory_size > ipswcheck::remote::TAIL_LEN);
        }
        let url = files.serve(&format!("{name}.ipsw"), &path);
        files.clear_log();
        let report = remote::check_url(&url, &apple.options(Some("iPhone9,3")), None);
        assert_eq!(report.exit_code, 0, "{name}: {}", report.to_json());
        let requests = files.log().len();
        assert!(
            requests <= 4,
            "{name}: {requests} requests: {:?}",
            files.log()
        );
        eprintln!(
            "{name}: {size} bytes, {} fetched in {requests} requests",
            report.bytes_fetched.unwrap()
        );

        let dest = dir.path().join(format!("{name}.out.ipsw"));
        let outcome = remote::fetch(
            &url,
            &dest,
            &fetch_options(&apple, Some("iPhone9,3"), 0),
            None,
            &Progress::default(),
        )
        .unwrap();
        assert_eq!(
            outcome.report.exit_code,
            0,
            "{name}: {}",
            outcome.report.to_json()
        );
        assert_eq!(std::fs::read(&dest).unwrap(), std::fs::read(&path).unwrap());
    }
}

#[cfg(unix)]
#[test]
fn fetch_refuses_a_part_file_another_fetch_is_writing() {
    use std::os::unix::io::AsRawFd;
    let dir = tempfile::tempdir().unwrap();
    let path = sample(dir.path());
    let files = FileServer::start();
    let url = files.serve("fw.ipsw", &path);
    let apple = Apple::signed();
    let dest = dir.path().join("fw.ipsw");
    // A partial download of this URL, held by another fetch.
    let part = dir.path().join("fw.ipsw.part");
    std::fs::write(&part, b"partial").unwrap();
    // The sidecar names the part it describes (device, inode).
    let meta = std::fs::metadata(&part).unwrap();
    let sidecar = serde_json::json!({"ipswcheck_fetch": 1, "url": url, "size": 7,
        "etag": null, "last_modified": null, "completed": 7,
        "part_dev": std::os::unix::fs::MetadataExt::dev(&meta),
        "part_inode": std::os::unix::fs::MetadataExt::ino(&meta)});
    std::fs::write(dir.path().join("fw.ipsw.part.json"), sidecar.to_string()).unwrap();
    let held = std::fs::File::open(&part).unwrap();
    assert_eq!(unsafe { libc::flock(held.as_raw_fd(), libc::LOCK_EX) }, 0);

    let err = remote::fetch(
        &url,
        &dest,
        &fetch_options(&apple, Some("iPhone9,3"), 0),
        None,
        &Progress::default(),
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("another `ipswcheck fetch`"),
        "{err}"
    );
    assert_eq!(std::fs::read(&part).unwrap(), b"partial");

    // Once it is released, the part is ours to replace: different size, start over.
    drop(held);
    let outcome = remote::fetch(
        &url,
        &dest,
        &fetch_options(&apple, Some("iPhone9,3"), 0),
        None,
        &Progress::default(),
    )
    .unwrap();
    assert_eq!(outcome.report.exit_code, 0, "{}", outcome.report.to_json());
    assert_eq!(outcome.resumed_from, None);
    assert_eq!(std::fs::read(&dest).unwrap(), std::fs::read(&path).unwrap());
}
