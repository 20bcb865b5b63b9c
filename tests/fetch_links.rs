//! Issue 14, class 1: `fetch` never writes through a link. A symbolic or hard link
//! placed at `FILE.part`, at the sidecar `FILE.part.json` or its temporary, or at `FILE`
//! itself, pointing at a file of the user's (the "victim"), must leave that file
//! byte-identical: either fetch refuses with a clear error (exit 2) or it replaces the
//! link's name, never its target. A sidecar that describes another `FILE.part` is not
//! trusted, and a start that fails leaves nothing behind.

#![cfg(unix)]

use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use ipswcheck_fixture::IpswSpec;

use crate::util::remote::FileServer;
use crate::util::run_in;
use crate::util::signing::{signed_body, FakeServer, Reply};

const VICTIM: &[u8] = b"the user's own precious file\n";

/// A served sample IPSW, a signing stand-in, and a directory with a victim file.
struct Setup {
    dir: tempfile::TempDir,
    files: FileServer,
    url: String,
    apple: FakeServer,
    cache: tempfile::TempDir,
    source: PathBuf,
}

impl Setup {
    fn new(ranges: bool) -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let source = dir.path().join("src.ipsw");
        IpswSpec::sample().build(&source).unwrap();
        let files = FileServer::start();
        let url = files.serve("fw.ipsw", &source);
        files.ignore_ranges(!ranges);
        std::fs::write(dir.path().join("victim"), VICTIM).unwrap();
        Setup {
            dir,
            files,
            url,
            apple: FakeServer::apple_and_ipswme(Reply::ok(signed_body()), Reply::status(404)),
            cache: tempfile::tempdir().unwrap(),
            source,
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn victim(&self) -> PathBuf {
        self.path("victim")
    }

    fn assert_victim_intact(&self, case: &str) {
        assert_eq!(
            std::fs::read(self.victim()).unwrap(),
            VICTIM,
            "{case}: the victim changed"
        );
    }

    /// `ipswcheck fetch URL -o DIR/fw.ipsw --device iPhone9,3`: (code, stdout, stderr).
    fn fetch(&self) -> (i32, String, String) {
        let dest = self.path("fw.ipsw");
        let args = [
            "fetch",
            &self.url,
            "-o",
            dest.to_str().unwrap(),
            "--device",
            "iPhone9,3",
            "--tss-url",
            &self.apple.tss_url(),
            "--api-url",
            &self.apple.api_url(),
            "--hosts-file",
            "/nonexistent/ipswcheck-test/hosts",
            "--timeout",
            "5",
            "--cache-dir",
            self.cache.path().to_str().unwrap(),
        ];
        run_in(None, &args, &[])
    }

    /// The published file is the source, byte for byte.
    fn assert_published(&self, case: &str) {
        let dest = self.path("fw.ipsw");
        let meta = std::fs::symlink_metadata(&dest).unwrap();
        assert!(meta.is_file(), "{case}: FILE is not a regular file");
        assert_eq!(
            std::fs::read(&dest).unwrap(),
            std::fs::read(&self.source).unwrap(),
            "{case}"
        );
    }
}

fn hard_link(from: &Path, to: &Path) {
    std::fs::hard_link(from, to).unwrap();
}

/// A link at `FILE.part` (symbolic, hard, dangling, to a directory): fetch refuses with
/// a one-line error naming the part and the problem, downloads nothing, and leaves both
/// the link and its target alone.
#[test]
fn a_link_at_the_part_file_is_refused_and_nothing_is_written() {
    for ranges in [true, false] {
        type Plant = fn(&Setup, &Path);
        let cases: [(&str, Plant, &str); 4] = [
            (
                "symlink",
                |s, at| symlink(s.victim(), at).unwrap(),
                "symbolic link",
            ),
            ("hard link", |s, at| hard_link(&s.victim(), at), "2 names"),
            (
                "dangling symlink",
                |s, at| symlink(s.path("nowhere"), at).unwrap(),
                "symbolic link",
            ),
            (
                "symlink to a directory",
                |s, at| symlink(s.dir.path(), at).unwrap(),
                "symbolic link",
            ),
        ];
        for (case, plant, reason) in cases {
            let s = Setup::new(ranges);
            let part = s.path("fw.ipsw.part");
            plant(&s, &part);
            let (code, out, err) = s.fetch();
            let case = format!("{case} (ranges: {ranges})");
            assert_eq!(code, 2, "{case}: {out}{err}");
            assert!(
                err.contains("fw.ipsw.part") && err.contains(reason),
                "{case}: {err}"
            );
            assert_eq!(err.trim_end().lines().count(), 1, "{case}: {err}");
            s.assert_victim_intact(&case);
            assert!(
                std::fs::symlink_metadata(&part).is_ok(),
                "{case}: the link was removed"
            );
            assert!(!s.path("fw.ipsw").exists(), "{case}");
            assert!(!s.path("nowhere").exists(), "{case}");
            assert!(s.files.log().is_empty(), "{case}: {:?}", s.files.log());
        }
    }
}

/// A link at the sidecar or at its temporary is replaced as a name: the download
/// succeeds and the file behind the link keeps its bytes.
#[test]
fn a_link_at_the_sidecar_or_its_temporary_is_never_written_through() {
    for ranges in [true, false] {
        for name in ["fw.ipsw.part.json", "fw.ipsw.part.json.tmp"] {
            for kind in ["symlink", "hard link"] {
                let s = Setup::new(ranges);
                let at = s.path(name);
                match kind {
                    "symlink" => symlink(s.victim(), &at).unwrap(),
                    _ => hard_link(&s.victim(), &at),
                }
                let (code, out, err) = s.fetch();
                let case = format!("{kind} at {name} (ranges: {ranges})");
                assert_eq!(code, 0, "{case}: {out}{err}");
                s.assert_victim_intact(&case);
                s.assert_published(&case);
                assert!(!s.path("fw.ipsw.part").exists(), "{case}");
            }
        }
    }
}

/// A link at `FILE` — to a file, dangling, or a hard link — is an existing file: refused,
/// its target untouched and, when dangling, not created.
#[test]
fn a_link_at_the_target_name_is_never_replaced_or_followed() {
    for ranges in [true, false] {
        for kind in ["symlink", "dangling symlink", "hard link"] {
            let s = Setup::new(ranges);
            let dest = s.path("fw.ipsw");
            match kind {
                "symlink" => symlink(s.victim(), &dest).unwrap(),
                "dangling symlink" => symlink(s.path("nowhere"), &dest).unwrap(),
                _ => hard_link(&s.victim(), &dest),
            }
            let (code, out, err) = s.fetch();
            let case = format!("{kind} at FILE (ranges: {ranges})");
            assert_eq!(code, 2, "{case}: {out}{err}");
            assert!(err.contains("already exists"), "{case}: {err}");
            s.assert_victim_intact(&case);
            assert!(!s.path("nowhere").exists(), "{case}");
            assert!(!s.path("fw.ipsw.part").exists(), "{case}");
        }
    }
}

/// The sidecar is bound to the part it describes (device and inode): the same bytes
/// under a new inode, a part that grew another name, or a sidecar of another URL are
/// not resumed — fetch refuses and touches neither file.
#[test]
fn a_sidecar_describing_another_part_is_not_trusted() {
    let s = Setup::new(true);
    let size = std::fs::metadata(&s.source).unwrap().len();
    // A partial download of our own: the first run is cut and may not reconnect.
    s.files.cut_once_after(size / 2);
    let (code, out, err) = {
        let dest = s.path("fw.ipsw");
        let args = [
            "fetch",
            &s.url,
            "-o",
            dest.to_str().unwrap(),
            "--offline",
            "--retries",
            "0",
        ];
        run_in(None, &args, &[])
    };
    assert_eq!(code, 3, "{out}{err}");
    let part = s.path("fw.ipsw.part");
    let sidecar = s.path("fw.ipsw.part.json");
    assert!(part.exists() && sidecar.exists());

    // The same bytes, another file (a copy renamed over the part).
    s.files.clear_log();
    let bytes = std::fs::read(&part).unwrap();
    let copy = s.path("copy");
    std::fs::write(&copy, &bytes).unwrap();
    std::fs::rename(&copy, &part).unwrap();
    let (code, out, err) = s.fetch();
    assert_eq!(code, 2, "{out}{err}");
    assert!(err.contains("was not left by"), "{err}");
    assert_eq!(std::fs::read(&part).unwrap(), bytes);
    assert!(s.files.log().is_empty(), "{:?}", s.files.log());

    // A sidecar for another URL, bound to this part: not ours either.
    let mut doc: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&sidecar).unwrap()).unwrap();
    let meta = std::fs::metadata(&part).unwrap();
    doc["part_inode"] = std::os::unix::fs::MetadataExt::ino(&meta).into();
    doc["url"] = "http://127.0.0.1:9/other.ipsw".into();
    std::fs::write(&sidecar, doc.to_string()).unwrap();
    let (code, _, err) = s.fetch();
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("was not left by"), "{err}");

    // Bound correctly, it is resumed (the binding is what was missing).
    doc["url"] = s.url.clone().into();
    std::fs::write(&sidecar, doc.to_string()).unwrap();
    let (code, out, err) = s.fetch();
    assert_eq!(code, 0, "{out}{err}");
    s.assert_published("resumed");

    // A sidecar far larger than ours is not read at all.
    let s = Setup::new(true);
    std::fs::write(s.path("fw.ipsw.part"), b"x").unwrap();
    let mut huge = serde_json::json!({"ipswcheck_fetch": 1, "url": s.url, "size": 1,
        "etag": null, "last_modified": null, "completed": 1, "part_dev": 0, "part_inode": 0})
    .to_string();
    huge.push_str(&" ".repeat(1 << 20));
    std::fs::write(s.path("fw.ipsw.part.json"), huge).unwrap();
    let (code, _, err) = s.fetch();
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("was not left by"), "{err}");
    assert_eq!(std::fs::read(s.path("fw.ipsw.part")).unwrap(), b"x");
}

/// A start that fails (the sidecar cannot be written: a directory holds its name) leaves
/// no `FILE.part` and no temporary behind.
#[test]
fn a_failed_start_removes_the_part_and_the_sidecar() {
    for ranges in [true, false] {
        let s = Setup::new(ranges);
        std::fs::create_dir(s.path("fw.ipsw.part.json")).unwrap();
        let (code, out, err) = s.fetch();
        assert_eq!(code, 2, "ranges {ranges}: {out}{err}");
        assert!(err.contains("fw.ipsw.part.json"), "{err}");
        let mut left: Vec<String> = std::fs::read_dir(s.dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(
            left,
            ["fw.ipsw.part.json", "src.ipsw", "victim"],
            "ranges {ranges}"
        );
    }
}

/// A `FILE.part` of another user (with a sidecar that would otherwise match) is refused
/// and left alone. Needs root to give a file away (CI runs the tests as root).
#[test]
fn a_part_of_another_user_is_refused() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("\n*** NOTE: not root: a part of another user cannot be made; not tested. ***\n");
        return;
    }
    for ranges in [true, false] {
        let s = Setup::new(ranges);
        let part = s.path("fw.ipsw.part");
        std::fs::write(&part, b"theirs").unwrap();
        let meta = std::fs::metadata(&part).unwrap();
        let sidecar = serde_json::json!({"ipswcheck_fetch": 1, "url": s.url, "size": 6,
            "etag": null, "last_modified": null, "completed": 6,
            "part_dev": std::os::unix::fs::MetadataExt::dev(&meta),
            "part_inode": std::os::unix::fs::MetadataExt::ino(&meta)});
        std::fs::write(s.path("fw.ipsw.part.json"), sidecar.to_string()).unwrap();
        std::os::unix::fs::chown(&part, Some(65534), Some(65534)).unwrap();
        let (code, out, err) = s.fetch();
        assert_eq!(code, 2, "{out}{err}");
        assert!(err.contains("belongs to another user"), "{err}");
        assert_eq!(std::fs::read(&part).unwrap(), b"theirs");
        assert!(s.files.log().is_empty());
    }
}

/// A `FILE.part` swapped mid-download for a link to a good copy (so that a check by
/// path would see a good file) is not what gets checked or published: fetch checks and
/// publishes the file it wrote, here a damaged download, so nothing is published and the
/// good copy is untouched.
#[test]
fn a_part_swapped_for_a_link_mid_download_is_not_what_is_checked() {
    use std::io::Write as _;
    let s = Setup::new(false);
    // The served body: the sample with one byte of its OS image flipped.
    let mut damaged = std::fs::read(&s.source).unwrap();
    let archive = ipswcheck::archive::Archive::open(&s.source).unwrap();
    let os = archive
        .entries()
        .iter()
        .find(|e| e.name.ends_with(".dmg") && e.compressed_size > 10_000)
        .unwrap()
        .clone();
    let at = archive.raw_range(&os).unwrap().start + 5_000;
    drop(archive);
    damaged[at] ^= 0xff;
    let half = damaged.len() / 2;
    // No ranges; the body pauses halfway until the test has swapped the part.
    let swapped = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = swapped.clone();
    let body = damaged.clone();
    let server = FakeServer::streaming(move |_, stream| {
        let head = format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        stream.write_all(head.as_bytes())?;
        stream.write_all(&body[..half])?;
        stream.flush()?;
        let start = std::time::Instant::now();
        while !flag.load(std::sync::atomic::Ordering::SeqCst)
            && start.elapsed() < std::time::Duration::from_secs(20)
        {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        stream.write_all(&body[half..])
    });
    let url = server.url("/fw.ipsw");
    let dest = s.path("fw.ipsw");
    let part = s.path("fw.ipsw.part");
    let good = s.path("good.ipsw");
    std::fs::copy(&s.source, &good).unwrap();
    let swapper = {
        let (part, good, moved) = (part.clone(), good.clone(), s.path("moved"));
        let swapped = swapped.clone();
        std::thread::spawn(move || {
            let start = std::time::Instant::now();
            while start.elapsed() < std::time::Duration::from_secs(20) {
                if std::fs::metadata(&part).is_ok_and(|m| m.len() > 0) {
                    std::fs::rename(&part, &moved).unwrap();
                    symlink(&good, &part).unwrap();
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
            swapped.store(true, std::sync::atomic::Ordering::SeqCst);
        })
    };
    let args = [
        "fetch",
        url.as_str(),
        "-o",
        dest.to_str().unwrap(),
        "--offline",
        "--device",
        "iPhone9,3",
    ];
    let (code, out, err) = run_in(None, &args, &[]);
    swapper.join().unwrap();
    assert!(
        std::fs::symlink_metadata(&part).is_ok_and(|m| m.file_type().is_symlink()),
        "the swap did not happen"
    );
    assert_ne!(code, 0, "a damaged download was called ready: {out}{err}");
    assert!(!dest.exists(), "{out}{err}");
    assert_eq!(
        std::fs::read(&good).unwrap(),
        std::fs::read(&s.source).unwrap()
    );
    // What was written is the damaged body, in the file fetch wrote (up to where the
    // damage found on the way stopped the download).
    let moved = std::fs::read(s.path("moved")).unwrap();
    assert!(!moved.is_empty() && damaged.starts_with(&moved));
}
