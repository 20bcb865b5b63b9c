//! `fetch` from a server without range support verifies the download as it arrives
//! (issue 13): the entries as their local headers come in, the component digests once
//! BuildManifest.plist is in, the whole-file SHA-1 along the way — and the zip
//! directory, which comes last, decides what of that stands. Damage or a manifest for
//! another device stops the download early; everything else gets the verdict
//! `ipswcheck FILE` gives the same bytes.
//!
//! The servers here answer every request with `200` and the whole body (no
//! `Accept-Ranges`), at a pace the test chooses: all at once, or the first bytes at once
//! and then nothing (a stall) or a trickle, so that a fetch that ends early proves the
//! verification happened during the stream. Fixtures come from `ipswcheck-fixture`
//! (its `manifest_first` option puts the manifest before the components).

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ipswcheck::check::Progress;
use ipswcheck_fixture::{FixtureLayout, IpswSpec, Method};

use crate::util::http::Server;
use crate::util::signing::{signed_body, FakeServer, Reply};
use crate::util::{entry_of, run_in, set_crc};

/// How the server sends the body of a request without `Range`.
#[derive(Debug, Clone, Copy)]
enum Pace {
    /// All of it at once.
    Whole,
    /// The first `n` bytes at once, then nothing, the connection held open.
    StallAfter(u64),
    /// The first `n` bytes at once, then one byte every 20 ms for as long as anyone
    /// listens.
    TrickleAfter(u64),
}

/// A loopback server without range support for one file's bytes.
struct NoRanges {
    server: Server,
    /// Body bytes written to the whole-body downloads (requests without `Range`).
    sent: Arc<AtomicU64>,
    /// Set when the test is over: a stalled answer lets go.
    over: Arc<AtomicBool>,
}

impl NoRanges {
    fn start(bytes: Vec<u8>, pace: Pace) -> Self {
        let sent = Arc::new(AtomicU64::new(0));
        let over = Arc::new(AtomicBool::new(false));
        let bytes = Arc::new(bytes);
        let server = {
            let (sent, over) = (Arc::clone(&sent), Arc::clone(&over));
            Server::streaming(move |request, stream| {
                let head = format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nContent-Type: application/octet-stream\r\nETag: \"v1\"\r\nConnection: close\r\n\r\n",
                    bytes.len()
                );
                stream.write_all(head.as_bytes())?;
                if request.header("range").is_some() {
                    // The preflight's range request: it only reads the status line.
                    return stream.write_all(&bytes);
                }
                let first = match pace {
                    Pace::Whole => bytes.len() as u64,
                    Pace::StallAfter(n) | Pace::TrickleAfter(n) => n.min(bytes.len() as u64),
                } as usize;
                for chunk in bytes[..first].chunks(64 << 10) {
                    stream.write_all(chunk)?;
                    sent.fetch_add(chunk.len() as u64, Ordering::SeqCst);
                }
                stream.flush()?;
                let mut at = first;
                while at < bytes.len() && !over.load(Ordering::SeqCst) {
                    std::thread::sleep(Duration::from_millis(20));
                    if let Pace::TrickleAfter(_) = pace {
                        stream.write_all(&bytes[at..at + 1])?;
                        stream.flush()?;
                        sent.fetch_add(1, Ordering::SeqCst);
                        at += 1;
                    }
                }
                Ok(())
            })
        };
        NoRanges { server, sent, over }
    }

    fn url(&self) -> String {
        self.server.url("/fw.ipsw")
    }

    fn sent(&self) -> u64 {
        self.sent.load(Ordering::SeqCst)
    }
}

impl Drop for NoRanges {
    fn drop(&mut self) {
        self.over.store(true, Ordering::SeqCst);
    }
}

/// Apple's signing server (signed) and ipsw.me (no answer) on loopback.
struct Apple {
    server: FakeServer,
}

impl Apple {
    fn signed() -> Self {
        Apple {
            server: FakeServer::apple_and_ipswme(Reply::ok(signed_body()), Reply::status(404)),
        }
    }

    /// The network flags, with a signing cache of its own (`cache`): every run asks.
    fn args(&self, cache: &Path) -> Vec<String> {
        [
            "--tss-url",
            &self.server.tss_url(),
            "--api-url",
            &self.server.api_url(),
            "--hosts-file",
            "/nonexistent/ipswcheck-test/hosts",
            "--timeout",
            "5",
            "--cache-dir",
            &cache.display().to_string(),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    }
}

/// Run the binary with `args`, `--json` and Apple's flags: (exit code, report, stderr).
fn run_json(args: &[&str], apple: &Apple) -> (i32, serde_json::Value, String) {
    let cache = tempfile::tempdir().unwrap();
    let mut all: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    all.push("--json".into());
    all.extend(apple.args(cache.path()));
    let (code, out, err) = run_in(None, &all, &[]);
    let v = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}{err}"));
    (code, v, err)
}

/// `ipswcheck fetch URL -o DEST --device DEVICE` (and `extra`), timed.
fn fetch(
    url: &str,
    dest: &Path,
    device: &str,
    extra: &[&str],
    apple: &Apple,
) -> (i32, serde_json::Value, String, Duration) {
    let mut args = vec![
        "fetch",
        url,
        "-o",
        dest.to_str().unwrap(),
        "--device",
        device,
    ];
    args.extend_from_slice(extra);
    let start = Instant::now();
    let (code, v, err) = run_json(&args, apple);
    (code, v, err, start.elapsed())
}

/// `ipswcheck FILE --device DEVICE`: the verdict a fetch must give the same bytes.
fn local(path: &Path, device: &str, apple: &Apple) -> (i32, serde_json::Value) {
    let (code, v, _) = run_json(&[path.to_str().unwrap(), "--device", device], apple);
    (code, v)
}

/// A report without what differs between a fetch and a local check of the same bytes:
/// the name (URL or path), the bytes fetched, and the streamed counters.
fn comparable(mut v: serde_json::Value) -> serde_json::Value {
    let map = v.as_object_mut().unwrap();
    for key in ["file", "bytes_fetched", "streamed"] {
        map.remove(key);
    }
    // When Apple was asked, to the second.
    if let Some(signing) = v
        .pointer_mut("/checks/signing")
        .and_then(|s| s.as_object_mut())
    {
        signing.remove("checked_at");
    }
    v
}

/// The names in `dir`, in order.
fn names_in(dir: &Path) -> BTreeSet<String> {
    let names = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name());
    names.map(|n| n.to_string_lossy().into_owned()).collect()
}

fn streamed(v: &serde_json::Value, key: &str) -> u64 {
    v["streamed"][key]
        .as_u64()
        .unwrap_or_else(|| panic!("no streamed.{key}: {v:#}"))
}

/// A ~30 MB fixture with the benchmark layout: the root filesystem DMG (24 MB) stored,
/// everything else deflated.
fn medium(dir: &Path, manifest_first: bool) -> (PathBuf, FixtureLayout) {
    let path = dir.join(format!("medium-{manifest_first}.ipsw"));
    let layout = IpswSpec {
        os_method: Method::Stored,
        manifest_first,
        ..IpswSpec::benchmark(0.01)
    }
    .build(&path)
    .unwrap();
    (path, layout)
}

fn sample(dir: &Path, spec: IpswSpec, name: &str) -> (PathBuf, FixtureLayout) {
    let path = dir.join(name);
    let layout = spec.build(&path).unwrap();
    (path, layout)
}

/// Fetch `bytes` from a no-range server serving them whole, and check the same bytes
/// locally: the fetch's exit code, report and stderr, the local exit code and report.
/// The fetch must leave the file published when it is ready, and nothing otherwise.
fn fetch_and_check(
    dir: &Path,
    bytes: &[u8],
    apple: &Apple,
) -> (i32, serde_json::Value, String, i32, serde_json::Value) {
    let path = dir.join("same-bytes.ipsw");
    std::fs::write(&path, bytes).unwrap();
    let server = NoRanges::start(bytes.to_vec(), Pace::Whole);
    let out = dir.join("out");
    std::fs::create_dir_all(&out).unwrap();
    let dest = out.join("fw.ipsw");
    let (code, v, err, _) = fetch(&server.url(), &dest, "iPhone9,3", &[], apple);
    let (local_code, local_v) = local(&path, "iPhone9,3", apple);
    assert_eq!(code, local_code, "{v:#}{err}\nlocal: {local_v:#}");
    assert_eq!(v["verdict"], local_v["verdict"]);
    assert_eq!(v["file"], server.url().as_str());
    if code == 0 {
        assert_eq!(std::fs::read(&dest).unwrap(), bytes);
        assert_eq!(names_in(&out), BTreeSet::from(["fw.ipsw".into()]));
    } else {
        assert!(names_in(&out).is_empty(), "{:?}", names_in(&out));
    }
    std::fs::remove_dir_all(&out).unwrap();
    (code, v, err, local_code, local_v)
}

/// [`fetch_and_check`] of a download that runs to its end: its report is the local
/// one, word for word.
fn fetch_and_compare(dir: &Path, bytes: &[u8], apple: &Apple) -> serde_json::Value {
    let (_, v, err, _, local_v) = fetch_and_check(dir, bytes, apple);
    assert_eq!(comparable(v.clone()), comparable(local_v), "{err}");
    v
}

#[test]
fn a_good_file_is_verified_as_it_arrives_and_judged_as_a_local_check() {
    let dir = tempfile::tempdir().unwrap();
    let apple = Apple::signed();
    for manifest_first in [true, false] {
        let (path, layout) = medium(dir.path(), manifest_first);
        let bytes = std::fs::read(&path).unwrap();
        let v = fetch_and_compare(dir.path(), &bytes, &apple);
        assert_eq!(v["verdict"], "ready", "{v:#}");
        assert_eq!(v["checks"]["components"]["status"], "ok");
        // Every entry was verified during the download (the directory confirmed each),
        // none after it, and the whole-file SHA-1 (for ipsw.me's) followed the stream.
        let entries = layout.zip.entries.len() as u64;
        assert_eq!(streamed(&v, "entries_during"), entries, "{v:#}");
        assert_eq!(streamed(&v, "entries_after"), 0, "{v:#}");
        assert_eq!(streamed(&v, "bytes_after"), 0);
        assert_eq!(v["streamed"]["whole_file_during"], true);
        assert!(v["streamed"].get("stopped_at").is_none());
        let reread = streamed(&v, "entries_reread");
        let during = streamed(&v, "bytes_during");
        eprintln!(
            "manifest first: {manifest_first}: {entries} entries ({during} bytes) verified \
             during the download, {reread} of them ({} bytes) read again after the manifest",
            streamed(&v, "bytes_reread")
        );
        if manifest_first {
            assert_eq!(reread, 0, "{v:#}");
        } else {
            // Entries before the manifest with digests to check are read again from the
            // partial file — except the 24 MB root filesystem image, whose SHA-384 was
            // computed on the way (it dominates the bytes).
            assert!(reread > 0, "{v:#}");
            assert!(streamed(&v, "bytes_reread") * 4 < during, "{v:#}");
        }
    }
}

#[test]
fn the_download_counts_each_byte_once_and_reports_where_it_is() {
    let dir = tempfile::tempdir().unwrap();
    let (path, _) = sample(dir.path(), IpswSpec::sample(), "sample.ipsw");
    let bytes = std::fs::read(&path).unwrap();
    let server = NoRanges::start(bytes.clone(), Pace::Whole);
    let apple = Apple::signed();
    let dest = dir.path().join("fw.ipsw");
    let progress = Progress::default();
    let mut check = crate::util::options(Some("iPhone9,3"));
    check.signing = crate::util::signing::server_options(&apple.server, None);
    let options = ipswcheck::remote::FetchOptions {
        check,
        keep: false,
        retries: 0,
    };
    let outcome =
        ipswcheck::remote::fetch(&server.url(), &dest, &options, None, &progress).unwrap();
    assert_eq!(outcome.report.exit_code, 0, "{}", outcome.report.to_json());
    assert_eq!(outcome.saved.as_deref(), Some(dest.as_path()));
    // One total for the progress line: the file's bytes, each counted once.
    assert_eq!(progress.total.load(Ordering::Relaxed), bytes.len() as u64);
    assert_eq!(progress.done.load(Ordering::Relaxed), bytes.len() as u64);
    assert_eq!(std::fs::read(&dest).unwrap(), bytes);
}

/// Fetch `bytes` from a no-range server sending them at `pace` into `out`, for
/// `device`: a fetch that what it found stopped early, with exit code `want` and nothing
/// left behind, while the server was still sending. Its report and stderr.
fn fetch_stopped(
    bytes: &[u8],
    pace: Pace,
    out: &Path,
    device: &str,
    apple: &Apple,
    want: i32,
) -> (serde_json::Value, String) {
    std::fs::create_dir_all(out).unwrap();
    let size = bytes.len() as u64;
    let server = NoRanges::start(bytes.to_vec(), pace);
    let (code, v, err, took) = fetch(&server.url(), &out.join("fw.ipsw"), device, &[], apple);
    assert_eq!(code, want, "{v:#}{err}");
    let stopped_at = streamed(&v, "stopped_at");
    assert!(stopped_at < size, "{stopped_at} of {size}");
    assert!(
        server.sent() < size,
        "the server sent {} of {size}",
        server.sent()
    );
    assert!(
        err.contains("nothing saved: the download was stopped at"),
        "{err}"
    );
    assert!(names_in(out).is_empty(), "{:?}", names_in(out));
    // Long before a trickle of one byte every 20 ms could have sent the rest, and within
    // the stall timeout (5 s) of a server that sends nothing more.
    assert!(took < Duration::from_secs(60), "{took:?}");
    eprintln!("{pace:?}: stopped at {stopped_at} of {size} after {took:?}");
    (v, err)
}

#[test]
fn a_bad_crc_early_in_the_stream_stops_the_download() {
    let dir = tempfile::tempdir().unwrap();
    let apple = Apple::signed();
    // The manifest comes last: before it only the entries' own CRC-32 can be told. The
    // restore ramdisk is the third entry, after a small OS image; 20 MB of kernelcache
    // come later.
    let path = dir.path().join("early.ipsw");
    let layout = IpswSpec {
        os_size: 1 << 20,
        kernelcache_size: 20 << 20,
        ..IpswSpec::benchmark(0.01)
    }
    .build(&path)
    .unwrap();
    let os = entry_of(&layout, "RestoreRamDisk");
    assert_eq!(layout.zip.entries[2].name, os.name);
    let mut bytes = std::fs::read(&path).unwrap();
    let range = os.data_range();
    bytes[(range.start + range.end) as usize / 2] ^= 0x40;
    let (local_code, _) = {
        let p = dir.path().join("bad.ipsw");
        std::fs::write(&p, &bytes).unwrap();
        local(&p, "iPhone9,3", &apple)
    };
    assert_eq!(local_code, 10);
    let out = dir.path().join("out");
    for pace in [
        Pace::TrickleAfter(range.end + (256 << 10)),
        Pace::StallAfter(range.end + (256 << 10)),
    ] {
        let (v, _) = fetch_stopped(&bytes, pace, &out, "iPhone9,3", &apple, 10);
        assert_eq!(v["verdict"], "not_ready", "{v:#}");
        let damage = &v["checks"]["archive"]["damage"][0];
        assert_eq!(damage["entry"], os.name.as_str(), "{v:#}");
        assert_eq!(damage["crc"], true, "{v:#}");
        assert_eq!(v["problems"][0]["kind"], "archive_damage", "{v:#}");
    }
}

#[test]
fn a_component_that_does_not_match_its_digest_stops_the_download() {
    let dir = tempfile::tempdir().unwrap();
    let apple = Apple::signed();
    for manifest_first in [true, false] {
        // The stored root filesystem DMG (the first component, 24 MB) is changed with a
        // CRC-32 to match: the zip is intact, the component is not Apple's.
        let (path, layout) = medium(dir.path(), manifest_first);
        let os = entry_of(&layout, "OS");
        assert_eq!(os.method, 0);
        let mut bytes = std::fs::read(&path).unwrap();
        let range = os.data_range();
        bytes[range.start as usize + 1000] ^= 0x01;
        let crc = crc32(&bytes[range.start as usize..range.end as usize]);
        set_crc(&mut bytes, os, crc);
        let p = dir.path().join("bad.ipsw");
        std::fs::write(&p, &bytes).unwrap();
        let (local_code, local_v) = local(&p, "iPhone9,3", &apple);
        assert_eq!(local_code, 11, "{local_v:#}");
        let out = dir.path().join("out");
        // With the manifest first the mismatch is known as the image ends; with the
        // manifest last (its digests computed on the way), as soon as the manifest is in,
        // before the directory is sent.
        let pace = if manifest_first {
            Pace::StallAfter(range.end + (1 << 20))
        } else {
            let manifest = layout.zip.entry("BuildManifest.plist").unwrap();
            Pace::TrickleAfter(manifest.end_offset())
        };
        eprint!("manifest first: {manifest_first}: ");
        let (v, _) = fetch_stopped(&bytes, pace, &out, "iPhone9,3", &apple, 11);
        assert_eq!(v["verdict"], "not_ready", "{v:#}");
        assert_eq!(v["problems"][0]["kind"], "component_mismatch", "{v:#}");
        // The finding is the local check's.
        let mismatch = |v: &serde_json::Value| {
            v["checks"]["components"]["items"]
                .as_array()
                .unwrap()
                .iter()
                .find(|c| c["name"] == "OS")
                .cloned()
                .unwrap()
        };
        assert_eq!(mismatch(&v), mismatch(&local_v));
        assert_eq!(v["checks"]["signing"]["status"], "skipped");
        let notes = v["notes"].to_string();
        assert!(notes.contains("the download was stopped at"), "{v:#}");

        // With --keep the whole file is wanted: nothing stops it, and the report is the
        // local check's.
        let server = NoRanges::start(bytes.clone(), Pace::Whole);
        let dest = out.join("fw.ipsw");
        let (code, v, err, _) = fetch(&server.url(), &dest, "iPhone9,3", &["--keep"], &apple);
        assert_eq!(code, 11, "{v:#}{err}");
        assert_eq!(comparable(v), comparable(local_v));
        assert_eq!(names_in(&out), BTreeSet::from(["fw.ipsw.failed".into()]));
        assert_eq!(std::fs::read(out.join("fw.ipsw.failed")).unwrap(), bytes);
        std::fs::remove_dir_all(&out).unwrap();
    }
}

#[test]
fn a_manifest_for_another_device_stops_the_download() {
    let dir = tempfile::tempdir().unwrap();
    let apple = Apple::signed();
    for manifest_first in [true, false] {
        let (path, layout) = medium(dir.path(), manifest_first);
        let bytes = std::fs::read(&path).unwrap();
        let manifest = layout.zip.entry("BuildManifest.plist").unwrap();
        let out = dir.path().join("out");
        let pace = Pace::TrickleAfter(manifest.end_offset());
        eprint!("manifest first: {manifest_first}: ");
        let (v, err) = fetch_stopped(&bytes, pace, &out, "iPhone10,1", &apple, 20);
        assert!(err.contains("the file is not for this device"), "{err}");
        // As the preflight of a server with ranges reports it.
        let (code, local_v) = local(&path, "iPhone10,1", &apple);
        assert_eq!(code, 20);
        assert_eq!(v["problems"], local_v["problems"], "{v:#}");
        assert_eq!(
            v["checks"]["compatibility"],
            local_v["checks"]["compatibility"]
        );
        assert_eq!(v["checks"]["signing"]["status"], "skipped");
    }
}

/// The CRC-32 of `data` (the zip polynomial).
fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = (crc >> 1) ^ (0xEDB8_8320 & (crc & 1).wrapping_neg());
        }
    }
    !crc
}

#[test]
fn the_directory_decides_what_stands() {
    let dir = tempfile::tempdir().unwrap();
    let apple = Apple::signed();
    let (path, layout) = sample(dir.path(), IpswSpec::sample(), "sample.ipsw");
    let good = std::fs::read(&path).unwrap();
    let ibss = entry_of(&layout, "iBSS");
    let central = ibss.central_header_offset as usize;

    // The directory gives another CRC-32 than the local header (and the data): the
    // stream verified the entry its header describes, which is not the directory's.
    let mut bytes = good.clone();
    bytes[central + 16] ^= 0xFF;
    let v = fetch_and_compare(dir.path(), &bytes, &apple);
    assert_eq!(v["exit_code"], 10, "{v:#}");
    assert_eq!(streamed(&v, "entries_after"), 1, "{v:#}");

    // The directory gives another size.
    let mut bytes = good.clone();
    bytes[central + 24] ^= 0x01;
    let v = fetch_and_compare(dir.path(), &bytes, &apple);
    assert_eq!(v["exit_code"], 10, "{v:#}");
    assert_eq!(streamed(&v, "entries_after"), 1, "{v:#}");

    // An entry the directory does not list (its record taken out): verified in the
    // stream, it is no part of the file the directory describes — here a missing
    // component.
    let bytes = without_record(&good, &layout, ibss);
    let v = fetch_and_compare(dir.path(), &bytes, &apple);
    assert_eq!(v["exit_code"], 11, "{v:#}");
    assert_eq!(streamed(&v, "entries_after"), 0, "{v:#}");
}

/// `bytes` without `e`'s central directory record (its local header and data stay).
fn without_record(
    bytes: &[u8],
    layout: &FixtureLayout,
    e: &ipswcheck_fixture::EntryLayout,
) -> Vec<u8> {
    assert!(layout.zip.zip64_eocd_offset.is_none());
    let start = e.central_header_offset as usize;
    let name_len = u16::from_le_bytes([bytes[start + 28], bytes[start + 29]]) as usize;
    let extra_len = u16::from_le_bytes([bytes[start + 30], bytes[start + 31]]) as usize;
    let comment_len = u16::from_le_bytes([bytes[start + 32], bytes[start + 33]]) as usize;
    let len = 46 + name_len + extra_len + comment_len;
    let mut out = bytes[..start].to_vec();
    out.extend_from_slice(&bytes[start + len..]);
    let eocd = layout.zip.eocd_offset as usize - len;
    let count = u16::from_le_bytes([out[eocd + 10], out[eocd + 11]]) - 1;
    out[eocd + 8..eocd + 10].copy_from_slice(&count.to_le_bytes());
    out[eocd + 10..eocd + 12].copy_from_slice(&count.to_le_bytes());
    let size = u32::from_le_bytes(out[eocd + 12..eocd + 16].try_into().unwrap()) - len as u32;
    out[eocd + 12..eocd + 16].copy_from_slice(&size.to_le_bytes());
    out
}

#[test]
fn data_descriptors_are_followed_when_deflated_and_end_the_walk_when_stored() {
    let dir = tempfile::tempdir().unwrap();
    let apple = Apple::signed();
    // Every entry deflated, each with a data descriptor: the walk finds where each ends
    // by inflating it, and verifies them all on the way.
    let spec = IpswSpec {
        data_descriptors: true,
        os_method: Method::DEFLATED,
        manifest_first: true,
        ..IpswSpec::sample()
    };
    let (path, layout) = sample(dir.path(), spec, "descriptors.ipsw");
    let v = fetch_and_compare(dir.path(), &std::fs::read(&path).unwrap(), &apple);
    assert_eq!(v["verdict"], "ready", "{v:#}");
    assert_eq!(
        streamed(&v, "entries_during"),
        layout.zip.entries.len() as u64
    );
    assert_eq!(streamed(&v, "entries_after"), 0, "{v:#}");

    // The stored OS image with a descriptor: where it ends cannot be known in stream
    // order. The walk stops there; the rest is verified once the file is complete.
    let spec = IpswSpec {
        data_descriptors: true,
        manifest_first: true,
        ..IpswSpec::sample()
    };
    let (path, layout) = sample(dir.path(), spec, "stored-descriptor.ipsw");
    let os = entry_of(&layout, "OS");
    assert!(os.method == 0 && os.data_descriptor);
    let before = layout
        .zip
        .entries
        .iter()
        .filter(|e| e.local_header_offset < os.local_header_offset)
        .count() as u64;
    let v = fetch_and_compare(dir.path(), &std::fs::read(&path).unwrap(), &apple);
    assert_eq!(v["verdict"], "ready", "{v:#}");
    assert_eq!(streamed(&v, "entries_during"), before, "{v:#}");
    assert_eq!(
        streamed(&v, "entries_after"),
        layout.zip.entries.len() as u64 - before
    );
}

#[test]
fn hostile_streams_get_the_local_verdict() {
    let dir = tempfile::tempdir().unwrap();
    let apple = Apple::signed();
    let (path, layout) = sample(dir.path(), IpswSpec::sample(), "sample.ipsw");
    let good = std::fs::read(&path).unwrap();
    let fourth = &layout.zip.entries[3];

    // Junk where the fourth local header should be: the walk ends there, the download
    // runs to its end, and the directory's reading decides.
    // (The manifest comes first, so that the entries before the junk can be verified
    // whole: Restore.plist, BuildManifest.plist, the OS image.)
    let spec = IpswSpec {
        manifest_first: true,
        ..IpswSpec::sample()
    };
    let (first_path, first_layout) = sample(dir.path(), spec, "manifest-first.ipsw");
    let mut bytes = std::fs::read(&first_path).unwrap();
    let at = first_layout.zip.entries[3].local_header_offset as usize;
    bytes[at..at + 4].copy_from_slice(b"JUNK");
    let v = fetch_and_compare(dir.path(), &bytes, &apple);
    assert_eq!(v["exit_code"], 10, "{v:#}");
    assert_eq!(streamed(&v, "entries_during"), 3, "{v:#}");
    assert_eq!(
        streamed(&v, "entries_after"),
        first_layout.zip.entries.len() as u64 - 3
    );
    let at = fourth.local_header_offset as usize;

    // A local header claiming the largest name and extra field (128 KiB of them): read,
    // bounded, and the entry it describes is not the directory's. Whether the stream
    // stops on what it then finds or runs to the end, the verdict is the local one.
    for field in [26, 28] {
        let mut bytes = good.clone();
        bytes[at + field..at + field + 2].copy_from_slice(&[0xFF, 0xFF]);
        let (code, v, ..) = fetch_and_check(dir.path(), &bytes, &apple);
        assert_eq!(code, 10, "{v:#}");
    }

    // A truncated file, served whole: no end record arrives.
    for cut in [good.len() / 2, good.len() - 100] {
        let (code, v, ..) = fetch_and_check(dir.path(), &good[..cut], &apple);
        assert_eq!(code, 10, "{v:#}");
    }
}
