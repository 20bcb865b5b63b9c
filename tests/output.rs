//! Issue 13: output on a terminal — a scan table fitted to the terminal's width (paths
//! shortened in the middle, the summary always carrying the whole reason), colors only
//! when asked for, and `fetch` without Apple (`--offline`) or from a server without range
//! support. The renderers are driven through the library (`render::renderer_with`); the
//! binary's own output (a pipe: no width, no color) is checked too.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use ipswcheck::render::{self, Format, Style};
use ipswcheck::scan::{self, ScanOptions, ScanProgress, ScanResult};

use crate::util::remote::FileServer;
use crate::util::signing::{signed_body, FakeServer, Reply};
use crate::util::*;

const ESC: char = '\u{1b}';

/// An entry whose name is long enough that its CRC failure takes more than 100
/// characters to say (the summary once clipped reasons there).
const LONG_ENTRY: &str = "Firmware/all_flash/sep-firmware.d101.RESEARCH_RELEASE.im4p";

/// A copy of the sample at `dst` with one byte of `entry`'s data flipped.
fn damaged_copy(dst: &Path, entry: &str) {
    let archive = ipswcheck::archive::Archive::open(&sample_ipsw()).unwrap();
    let e = archive
        .entries()
        .iter()
        .find(|e| e.name == entry)
        .unwrap_or_else(|| panic!("{entry} in the sample"))
        .clone();
    drop(archive);
    let mut bytes = std::fs::read(sample_ipsw()).unwrap();
    let h = e.header_offset as usize;
    let name = u16::from_le_bytes([bytes[h + 26], bytes[h + 27]]) as usize;
    let extra = u16::from_le_bytes([bytes[h + 28], bytes[h + 29]]) as usize;
    let at = h + 30 + name + extra + e.compressed_size as usize / 2;
    bytes[at] ^= 0x40;
    std::fs::write(dst, bytes).unwrap();
}

/// A library with deep folders and Apple-length names: one intact file, one with a CRC
/// failure whose reason is longer than 100 characters.
struct Library {
    dir: tempfile::TempDir,
    good: PathBuf,
    bad: PathBuf,
}

impl Library {
    fn build() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let deep = dir
            .path()
            .join("lib/Apple Firmware/iPhone/iPhone 7 (GSM)/iOS 15/archive 2024");
        std::fs::create_dir_all(&deep).unwrap();
        let good = deep.join("iPhone_4.7_P3_15.8_19H370_Restore.ipsw");
        std::fs::copy(sample_ipsw(), &good).unwrap();
        let bad = deep.join("iPhone_4.7_P3_15.8_19H370_Restore (1).ipsw");
        damaged_copy(&bad, LONG_ENTRY);
        Library { dir, good, bad }
    }

    fn scan(&self) -> ScanResult {
        let mut check = options(Some("iPhone9,3"));
        check.signing.cache_dir = Some(self.dir.path().join("cache"));
        let mut o = ScanOptions::new(vec![self.dir.path().join("lib")], check);
        o.jobs = 2;
        o.window = scan::default_window(2);
        o.verified_cache = None;
        scan::scan(&o, &ScanProgress::default(), &AtomicBool::new(false)).unwrap()
    }
}

/// The table part of a scan's output: the lines before the first blank one.
fn table_part(text: &str) -> Vec<&str> {
    text.lines().take_while(|l| !l.is_empty()).collect()
}

#[test]
fn renderer_is_renderer_with_the_default_style() {
    let report = check(&sample_ipsw(), &options(Some("iPhone9,3")));
    for format in [
        Format::Human,
        Format::Table,
        Format::Json,
        Format::Ndjson,
        Format::Csv,
    ] {
        for verbose in [false, true] {
            assert_eq!(
                render::renderer(format, verbose).report(&report),
                render::renderer_with(format, verbose, Style::default()).report(&report),
                "{format:?} verbose={verbose}"
            );
        }
    }
    let style = Style::default();
    assert!(!style.color && style.width.is_none());
}

#[test]
fn scan_table_fits_the_width_and_the_summary_keeps_the_whole_reason() {
    let lib = Library::build();
    let result = lib.scan();
    assert_eq!(result.files.len(), 2);
    let damaged = &result.summary.damaged;
    assert_eq!(damaged.len(), 1, "{:?}", result.summary);
    let reason = damaged[0].problem.clone().expect("a reason");
    assert!(
        reason.contains(LONG_ENTRY) && reason.chars().count() > 100,
        "the reason is long: {reason}"
    );

    for width in [80, 60, 120, 140] {
        let style = Style {
            color: false,
            width: Some(width),
        };
        for format in [Format::Table, Format::Human] {
            let text = render::renderer_with(format, false, style).scan(&result);
            let table = table_part(&text);
            assert_eq!(table.len(), 3, "{text}");
            for line in &table {
                let columns = line.chars().count(); // ASCII and `…`: one column each
                assert!(columns <= width, "{columns} > {width}: {line:?}\n{text}");
            }
            assert!(table[0].starts_with("STATUS"), "{text}");
            // Paths are shortened in the middle: the folder it starts from and the name
            // when there is room for them, else the start and the end of the path.
            for line in &table[1..] {
                assert!(line.contains('…'), "{line:?}\n{text}");
                assert!(!line.contains("Apple Firmware"), "{line:?}\n{text}");
            }
            if width >= 140 {
                assert!(
                    text.contains("/…/archive 2024/iPhone_4.7_P3_15.8_19H370_Restore.ipsw"),
                    "{text}"
                );
            }
            // The summary below carries the whole reason, however narrow the table.
            let summary = &text[table.iter().map(|l| l.len() + 1).sum::<usize>()..];
            assert!(summary.contains(&reason), "{reason}\nnot in:\n{summary}");
            assert!(!text.contains(ESC), "{text:?}");
        }
    }

    // Without a width (a pipe, a file): the layout of before, whole paths.
    let text = render::renderer(Format::Table, false).scan(&result);
    let rel = |p: &Path| p.display().to_string();
    assert!(text.contains(&rel(&lib.good)), "{text}");
    assert!(text.contains(&rel(&lib.bad)), "{text}");
    assert!(text.contains(&reason), "{text}");
    assert!(table_part(&text).iter().any(|l| l.chars().count() > 120));
}

#[test]
fn scan_of_the_binary_in_a_pipe_is_never_clipped_in_the_summary() {
    let lib = Library::build();
    let result = lib.scan();
    let reason = result.summary.damaged[0].problem.clone().unwrap();
    let cache = lib.dir.path().join("bincache");
    let (code, out, err) = run_in(
        Some(lib.dir.path()),
        &[
            "scan",
            "lib",
            "--device",
            "iPhone9,3",
            "--offline",
            "--hosts-file",
            "/nonexistent/ipswcheck-test/hosts",
            "--cache-dir",
            cache.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.contains(&reason), "{reason}\nnot in:\n{out}");
    assert!(!out.contains(ESC) && !err.contains(ESC), "{out:?}{err:?}");
}

#[test]
fn a_narrow_width_still_bounds_every_table_line() {
    let lib = Library::build();
    let result = lib.scan();
    for width in [20, 40, 50] {
        let style = Style {
            color: true,
            width: Some(width),
        };
        let text = render::renderer_with(Format::Table, false, style).scan(&result);
        for line in table_part(&text) {
            let plain = strip_sgr(line);
            assert!(plain.chars().count() <= width, "{width}: {plain:?}");
        }
    }
}

/// `text` without ANSI SGR sequences.
fn strip_sgr(text: &str) -> String {
    let mut out = String::new();
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == ESC {
            for c in chars.by_ref() {
                if c == 'm' {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[test]
fn color_paints_the_verdict_the_crosses_and_the_status_only_when_asked() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("damaged.ipsw");
    damaged_copy(&bad, LONG_ENTRY);
    let device = options(Some("iPhone9,3"));
    let good = check(&sample_ipsw(), &device);
    let damaged = check(&bad, &device);
    let color = Style {
        color: true,
        width: None,
    };

    // Human: the verdict word first, in its color; the ✗ marks in red.
    let text = render::renderer_with(Format::Human, false, color).report(&good);
    assert!(text.starts_with("\u{1b}[1;32mREADY\u{1b}[0m: "), "{text:?}");
    let text = render::renderer_with(Format::Human, true, color).report(&damaged);
    assert!(
        text.starts_with("\u{1b}[1;31mNOT READY\u{1b}[0m: "),
        "{text:?}"
    );
    assert!(text.contains("\u{1b}[1;31m✗\u{1b}[0m "), "{text:?}");
    assert!(!text.contains(" ✗ "), "every ✗ is painted: {text:?}");
    // The same words once the colors are taken out.
    assert_eq!(
        strip_sgr(&text),
        render::renderer(Format::Human, true).report(&damaged)
    );

    // Table: the STATUS cell.
    let text = render::renderer_with(Format::Table, false, color).report(&damaged);
    let row = text.lines().nth(1).unwrap();
    assert!(row.starts_with("\u{1b}[1;31mdamaged\u{1b}[0m"), "{text:?}");
    let text = render::renderer_with(Format::Table, false, color).report(&good);
    assert!(
        text.lines()
            .nth(1)
            .unwrap()
            .starts_with("\u{1b}[1;32mok\u{1b}[0m"),
        "{text:?}"
    );

    // Never without `color`, in any format; machine formats never.
    for report in [&good, &damaged] {
        for format in [
            Format::Human,
            Format::Table,
            Format::Json,
            Format::Ndjson,
            Format::Csv,
        ] {
            let plain = render::renderer(format, true).report(report);
            assert!(!plain.contains(ESC), "{format:?}: {plain:?}");
            let width = Style {
                color: false,
                width: Some(80),
            };
            let plain = render::renderer_with(format, true, width).report(report);
            assert!(!plain.contains(ESC), "{format:?}: {plain:?}");
            if matches!(format, Format::Json | Format::Ndjson | Format::Csv) {
                let colored = render::renderer_with(format, true, color).report(report);
                assert!(!colored.contains(ESC), "{format:?}: {colored:?}");
            }
        }
    }

    // The binary in a pipe: no color.
    let (code, out, err) = run(&[
        bad.to_str().unwrap(),
        "--device",
        "iPhone9,3",
        "--offline",
        "--hosts-file",
        "/nonexistent/ipswcheck-test/hosts",
    ]);
    assert_eq!(code, 10, "{out}{err}");
    assert!(out.starts_with("NOT READY: "), "{out}");
    assert!(!out.contains(ESC) && !err.contains(ESC), "{out:?}{err:?}");
}

#[test]
fn escaping_is_unchanged_by_color() {
    // A name that tries to paint the screen stays escaped; only ipswcheck's own codes
    // are SGR sequences.
    let dir = tempfile::tempdir().unwrap();
    let evil = dir.path().join("x\u{1b}[2Jy.ipsw");
    std::fs::copy(sample_ipsw(), &evil).unwrap();
    let report = check(&evil, &options(Some("iPhone9,3")));
    let style = Style {
        color: true,
        width: Some(200),
    };
    for format in [Format::Human, Format::Table] {
        let text = render::renderer_with(format, false, style).report(&report);
        assert!(text.contains("x\\u{1b}[2Jy"), "{format:?}: {text:?}");
        assert!(!text.contains("\u{1b}[2J"), "{format:?}: {text:?}");
    }
}

// ---- fetch without Apple, and from a server without range support ----

/// A loopback Apple (TSS signs everything) and ipsw.me (404), and the binary's flags
/// for it.
struct Apple {
    server: FakeServer,
    cache: tempfile::TempDir,
}

impl Apple {
    fn signed() -> Self {
        Apple {
            server: FakeServer::apple_and_ipswme(Reply::ok(signed_body()), Reply::status(404)),
            cache: tempfile::tempdir().unwrap(),
        }
    }

    fn args(&self) -> Vec<String> {
        vec![
            "--tss-url".into(),
            self.server.tss_url(),
            "--api-url".into(),
            self.server.api_url(),
            "--hosts-file".into(),
            "/nonexistent/ipswcheck-test/hosts".into(),
            "--timeout".into(),
            "5".into(),
            "--cache-dir".into(),
            self.cache.path().display().to_string(),
        ]
    }
}

/// `ipswcheck fetch URL -o DEST --device iPhone9,3 --json EXTRA…` against `apple`.
fn fetch_json(
    url: &str,
    dest: &Path,
    extra: &[&str],
    apple: &Apple,
) -> (i32, serde_json::Value, String) {
    let mut args: Vec<String> = crate::util::remote::fetch_args(url, dest)
        .iter()
        .chain(&["--json"])
        .chain(extra)
        .map(|s| s.to_string())
        .collect();
    args.extend(apple.args());
    let (code, out, err) = run_in(None, &args, &[]);
    let v = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}{err}"));
    (code, v, err)
}

fn names_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn fetch_offline_downloads_and_verifies_without_asking_apple() {
    let dir = tempfile::tempdir().unwrap();
    let files = FileServer::start();
    let url = files.serve("fw.ipsw", &sample_ipsw());
    let apple = Apple::signed();
    let dest = dir.path().join("fw.ipsw");

    let (code, v, err) = fetch_json(&url, &dest, &["--offline"], &apple);
    assert_eq!(code, 0, "{v:#}{err}");
    assert_eq!(v["verdict"], "ready");
    assert_eq!(v["checks"]["signing"]["status"], "skipped", "{v:#}");
    assert_eq!(v["checks"]["components"]["status"], "ok");
    assert!(v["checks"]["archive"]["crc_checked"].as_u64().unwrap() > 10);
    assert_eq!(
        std::fs::read(&dest).unwrap(),
        std::fs::read(sample_ipsw()).unwrap()
    );
    assert_eq!(names_in(dir.path()), ["fw.ipsw"]);
    assert!(apple.server.requests().is_empty(), "Apple was asked");

    // The check of a URL still needs the network to read it: a usage error.
    let (code, _, err) = run(&[&url, "--offline"]);
    assert_eq!(code, 2, "{err}");
}

#[test]
fn fetch_downloads_from_a_server_without_ranges_and_checks_it_in_full() {
    let dir = tempfile::tempdir().unwrap();
    let files = FileServer::start();
    let url = files.serve("fw.ipsw", &sample_ipsw());
    files.ignore_ranges(true);
    let apple = Apple::signed();
    let dest = dir.path().join("fw.ipsw");

    // The quick check of the URL is still refused without ranges.
    let mut args = vec![url.clone(), "--device".into(), "iPhone9,3".into()];
    args.extend(apple.args());
    let (code, out, err) = run_in(None, &args, &[]);
    assert_eq!(code, 3, "{out}{err}");
    assert!(out.contains("does not support range requests"), "{out}");
    assert!(
        out.contains("`ipswcheck fetch URL` downloads it whole"),
        "{out}"
    );

    let (code, v, err) = fetch_json(&url, &dest, &[], &apple);
    assert_eq!(code, 0, "{v:#}{err}");
    assert!(err.contains("saved:"), "{err}");
    assert_eq!(v["verdict"], "ready");
    assert_eq!(v["file"], url.as_str());
    let size = std::fs::metadata(sample_ipsw()).unwrap().len();
    assert_eq!(v["size"], size);
    assert!(v["bytes_fetched"].as_u64().unwrap() >= size);
    // The full check, device and signing included.
    assert_eq!(v["checks"]["components"]["status"], "ok");
    assert_eq!(v["checks"]["archive"]["status"], "ok");
    assert!(v["checks"]["archive"]["crc_checked"].as_u64().unwrap() > 10);
    assert_eq!(v["checks"]["compatibility"]["status"], "ok");
    assert_eq!(v["checks"]["signing"]["status"], "signed", "{v:#}");
    assert!(!apple.server.tss_requests().is_empty());
    assert_eq!(
        std::fs::read(&dest).unwrap(),
        std::fs::read(sample_ipsw()).unwrap()
    );
    assert_eq!(names_in(dir.path()), ["fw.ipsw"]);
    // Every request was answered whole (200): the refused tail probe and the download.
    assert!(files.log().iter().all(|l| l.status == 200));
}

#[test]
fn fetch_without_ranges_never_publishes_a_corrupted_or_foreign_file() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("src-damaged.ipsw");
    damaged_copy(&bad, LONG_ENTRY);
    let files = FileServer::start();
    files.ignore_ranges(true);
    let apple = Apple::signed();
    let out = dir.path().join("out");
    std::fs::create_dir(&out).unwrap();

    // A CRC failure: exit 10, nothing at the target name, nothing left over.
    let url = files.serve("bad.ipsw", &bad);
    let dest = out.join("bad.ipsw");
    let (code, v, err) = fetch_json(&url, &dest, &[], &apple);
    assert_eq!(code, 10, "{v:#}{err}");
    assert_eq!(v["checks"]["archive"]["status"], "fail");
    assert!(!dest.exists());
    assert!(names_in(&out).is_empty(), "{:?}", names_in(&out));

    // --keep keeps it as FILE.failed.
    let (code, _, err) = fetch_json(&url, &dest, &["--keep"], &apple);
    assert_eq!(code, 10, "{err}");
    assert_eq!(names_in(&out), ["bad.ipsw.failed"]);
    std::fs::remove_file(out.join("bad.ipsw.failed")).unwrap();

    // Intact, but for another device: the verdict applies at the end, nothing published.
    let url = files.serve("good.ipsw", &sample_ipsw());
    let dest = out.join("good.ipsw");
    let mut args: Vec<String> = [
        "fetch",
        &url,
        "-o",
        dest.to_str().unwrap(),
        "--device",
        "iPhone10,1",
        "--json",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.extend(apple.args());
    let (code, o, err) = run_in(None, &args, &[]);
    assert_eq!(code, 20, "{o}{err}");
    assert!(names_in(&out).is_empty(), "{:?}", names_in(&out));
}

/// A server without range support that answers every request whole, except that the
/// first request without a `Range` header (a plain download) is cut off after `cut`
/// bytes of its body.
fn no_range_server_cutting_the_download(file: PathBuf, cut: usize) -> FakeServer {
    use std::io::Write as _;
    let pending = std::sync::atomic::AtomicBool::new(true);
    FakeServer::streaming(move |request, stream| {
        let bytes = std::fs::read(&file)?;
        let head = format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nContent-Type: application/octet-stream\r\nETag: \"v1\"\r\nConnection: close\r\n\r\n",
            bytes.len()
        );
        stream.write_all(head.as_bytes())?;
        let cut_now = request.header("range").is_none()
            && pending.swap(false, std::sync::atomic::Ordering::SeqCst);
        if cut_now {
            stream.write_all(&bytes[..cut])?;
            stream.flush()?;
            stream.shutdown(std::net::Shutdown::Both)
        } else {
            stream.write_all(&bytes)
        }
    })
}

#[test]
fn fetch_without_ranges_cut_midway_says_it_cannot_resume_and_starts_over() {
    let dir = tempfile::tempdir().unwrap();
    let server = no_range_server_cutting_the_download(sample_ipsw(), 100_000);
    let url = server.url("/fw.ipsw");
    let apple = Apple::signed();
    let dest = dir.path().join("fw.ipsw");

    let (code, v, err) = fetch_json(&url, &dest, &["--retries", "3"], &apple);
    assert_eq!(code, 3, "{v:#}{err}");
    let text = v.to_string();
    assert!(
        text.contains("does not support range requests, so the download cannot resume"),
        "{v:#}"
    );
    assert!(!dest.exists());
    // FILE.part is kept as after any broken download (with its sidecar).
    assert_eq!(
        names_in(dir.path()),
        ["fw.ipsw.part", "fw.ipsw.part.json"],
        "{err}"
    );

    // The same command again downloads it from the start, and publishes it.
    let (code, v, err) = fetch_json(&url, &dest, &[], &apple);
    assert_eq!(code, 0, "{v:#}{err}");
    assert_eq!(
        std::fs::read(&dest).unwrap(),
        std::fs::read(sample_ipsw()).unwrap()
    );
    assert_eq!(names_in(dir.path()), ["fw.ipsw"]);
}
