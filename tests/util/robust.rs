//! Helpers for the robustness tests (`adversarial`, `network_faults`, `limits`):
//! a zip writer that writes whatever it is told (lying sizes, overlapping or duplicate
//! entries, names no tool would write), the sample IPSW taken apart into raw entries to
//! re-emit with damage, a deflate bomb built without deflating gigabytes, and a runner
//! that gives the binary a hard time limit (and optionally an address-space limit) and
//! checks that it ended by itself, with a documented exit code and without a panic.
#![allow(dead_code)]

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use flate2::{Compress, Compression, FlushCompress};
use ipswcheck::check::{self, CheckOptions, Progress};
use ipswcheck::manifest::RestoreBehavior;
use ipswcheck::report::Report;
use ipswcheck::signing::SigningOptions;
use ipswcheck_fixture::{FixtureLayout, IpswSpec};
use plist::{Dictionary, Value};

/// Every exit code the README documents for a check of one file.
pub const DOCUMENTED_CODES: [i32; 10] = [0, 2, 3, 10, 11, 12, 20, 30, 31, 130];

/// One zip entry exactly as it will be written: the raw (possibly compressed) bytes and
/// every header field, none of them checked against the others.
#[derive(Debug, Clone)]
pub struct RawItem {
    pub name: Vec<u8>,
    pub method: u16,
    pub flags: u16,
    pub crc: u32,
    pub csize: u64,
    pub usize: u64,
    pub data: Vec<u8>,
}

impl RawItem {
    pub fn stored(name: &str, bytes: &[u8]) -> RawItem {
        RawItem {
            name: name.as_bytes().to_vec(),
            method: 0,
            flags: 0,
            crc: crc32fast::hash(bytes),
            csize: bytes.len() as u64,
            usize: bytes.len() as u64,
            data: bytes.to_vec(),
        }
    }

    pub fn deflated(name: &str, bytes: &[u8]) -> RawItem {
        let data = deflate(bytes);
        RawItem {
            name: name.as_bytes().to_vec(),
            method: 8,
            flags: 0,
            crc: crc32fast::hash(bytes),
            csize: data.len() as u64,
            usize: bytes.len() as u64,
            data,
        }
    }

    pub fn name_str(&self) -> String {
        String::from_utf8_lossy(&self.name).into_owned()
    }
}

pub fn deflate(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::DeflateEncoder::new(Vec::new(), Compression::default());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

/// A zip writer without opinions: local headers, central records and end records are
/// written as told, so tests can make them disagree.
#[derive(Debug, Default)]
pub struct RawZip {
    pub bytes: Vec<u8>,
    central: Vec<u8>,
    count: u64,
    /// Write zip64 extra fields in central records and zip64 end records.
    pub zip64: bool,
}

/// Append `x` little-endian (zip's byte order).
pub fn p16(v: &mut Vec<u8>, x: u16) {
    v.extend_from_slice(&x.to_le_bytes());
}
pub fn p32(v: &mut Vec<u8>, x: u32) {
    v.extend_from_slice(&x.to_le_bytes());
}
pub fn p64(v: &mut Vec<u8>, x: u64) {
    v.extend_from_slice(&x.to_le_bytes());
}

/// Offsets of the fields of a central directory record (APPNOTE 4.3.12).
pub mod central {
    pub const SIGNATURE: usize = 0;
    pub const VERSION_MADE_BY: usize = 4;
    pub const VERSION_NEEDED: usize = 6;
    pub const FLAGS: usize = 8;
    pub const METHOD: usize = 10;
    pub const TIME: usize = 12;
    pub const DATE: usize = 14;
    pub const CRC: usize = 16;
    pub const CSIZE: usize = 20;
    pub const USIZE: usize = 24;
    pub const NAME_LEN: usize = 28;
    pub const EXTRA_LEN: usize = 30;
    pub const COMMENT_LEN: usize = 32;
    pub const DISK: usize = 34;
    pub const INTERNAL_ATTR: usize = 36;
    pub const EXTERNAL_ATTR: usize = 38;
    pub const OFFSET: usize = 42;
    pub const NAME: usize = 46;
}

/// Offsets of the fields of a local header (APPNOTE 4.3.7).
pub mod local {
    pub const SIGNATURE: usize = 0;
    pub const VERSION_NEEDED: usize = 4;
    pub const FLAGS: usize = 6;
    pub const METHOD: usize = 8;
    pub const TIME: usize = 10;
    pub const DATE: usize = 12;
    pub const CRC: usize = 14;
    pub const CSIZE: usize = 18;
    pub const USIZE: usize = 22;
    pub const NAME_LEN: usize = 26;
    pub const EXTRA_LEN: usize = 28;
    pub const NAME: usize = 30;
}

impl RawZip {
    pub fn new() -> RawZip {
        RawZip::default()
    }

    pub fn zip64() -> RawZip {
        RawZip {
            zip64: true,
            ..RawZip::default()
        }
    }

    /// Local header + data + a matching central record; returns the local header offset.
    pub fn push(&mut self, item: &RawItem) -> u64 {
        let at = self.push_local(item);
        self.push_central(item, at);
        at
    }

    /// Only the local header and the data.
    pub fn push_local(&mut self, item: &RawItem) -> u64 {
        let at = self.bytes.len() as u64;
        let v = &mut self.bytes;
        p32(v, 0x0403_4b50);
        p16(v, 20);
        p16(v, item.flags);
        p16(v, item.method);
        p16(v, 0x5000);
        p16(v, 0x56f8);
        p32(v, item.crc);
        p32(v, item.csize.min(0xFFFF_FFFF) as u32);
        p32(v, item.usize.min(0xFFFF_FFFF) as u32);
        p16(v, item.name.len() as u16);
        p16(v, 0);
        v.extend_from_slice(&item.name);
        v.extend_from_slice(&item.data);
        at
    }

    /// Append raw bytes (not an entry).
    pub fn push_bytes(&mut self, bytes: &[u8]) -> u64 {
        let at = self.bytes.len() as u64;
        self.bytes.extend_from_slice(bytes);
        at
    }

    /// A central record for `item` whose local header is at `local_offset` (which may
    /// be anywhere, or nowhere).
    pub fn push_central(&mut self, item: &RawItem, local_offset: u64) {
        let v = &mut self.central;
        let z = self.zip64;
        let s32 = |x: u64| if z { 0xFFFF_FFFF } else { x as u32 };
        p32(v, 0x0201_4b50);
        p16(v, (3 << 8) | 45);
        p16(v, if z { 45 } else { 20 });
        p16(v, item.flags);
        p16(v, item.method);
        p16(v, 0x5000);
        p16(v, 0x56f8);
        p32(v, item.crc);
        p32(v, s32(item.csize));
        p32(v, s32(item.usize));
        p16(v, item.name.len() as u16);
        p16(v, if z { 28 } else { 0 });
        p16(v, 0);
        p16(v, 0);
        p16(v, 0);
        p32(v, 0o100644 << 16);
        p32(v, s32(local_offset));
        v.extend_from_slice(&item.name);
        if z {
            p16(v, 1);
            p16(v, 24);
            p64(v, item.usize);
            p64(v, item.csize);
            p64(v, local_offset);
        }
        self.count += 1;
    }

    /// Write the central directory and the end record(s).
    pub fn finish(mut self) -> Vec<u8> {
        let cd_offset = self.bytes.len() as u64;
        let cd_size = self.central.len() as u64;
        self.bytes.extend_from_slice(&self.central);
        let v = &mut self.bytes;
        if self.zip64 {
            let z64 = v.len() as u64;
            p32(v, 0x0606_4b50);
            p64(v, 44);
            p16(v, (3 << 8) | 45);
            p16(v, 45);
            p32(v, 0);
            p32(v, 0);
            p64(v, self.count);
            p64(v, self.count);
            p64(v, cd_size);
            p64(v, cd_offset);
            p32(v, 0x0706_4b50);
            p32(v, 0);
            p64(v, z64);
            p32(v, 1);
        }
        p32(v, 0x0605_4b50);
        p16(v, 0);
        p16(v, 0);
        let n16 = if self.zip64 {
            0xFFFF
        } else {
            self.count as u16
        };
        p16(v, n16);
        p16(v, n16);
        p32(
            v,
            if self.zip64 {
                0xFFFF_FFFF
            } else {
                cd_size as u32
            },
        );
        p32(
            v,
            if self.zip64 {
                0xFFFF_FFFF
            } else {
                cd_offset as u32
            },
        );
        p16(v, 0);
        self.bytes
    }
}

/// The raw entries of a fixture as its builder wrote them.
pub fn raw_items(path: &Path, layout: &FixtureLayout) -> Vec<RawItem> {
    let bytes = std::fs::read(path).unwrap();
    layout
        .zip
        .entries
        .iter()
        .map(|e| {
            assert!(
                !e.data_descriptor,
                "raw_items wants a fixture without data descriptors"
            );
            RawItem {
                name: e.name.as_bytes().to_vec(),
                method: e.method,
                flags: if e.name.is_ascii() { 0 } else { 1 << 11 },
                crc: e.crc32,
                csize: e.compressed_size,
                usize: e.uncompressed_size,
                data: bytes[e.data_offset as usize..(e.data_offset + e.compressed_size) as usize]
                    .to_vec(),
            }
        })
        .collect()
}

/// The sample IPSW (testdata's fixture) built in `dir`, and its raw entries.
pub fn sample(dir: &Path) -> (PathBuf, FixtureLayout, Vec<RawItem>) {
    let path = dir.join("sample.ipsw");
    let layout = IpswSpec::sample().build(&path).unwrap();
    let items = raw_items(&path, &layout);
    (path, layout, items)
}

/// Write `items` as a fresh zip.
pub fn rezip(items: &[RawItem], zip64: bool) -> Vec<u8> {
    let mut z = if zip64 {
        RawZip::zip64()
    } else {
        RawZip::new()
    };
    for item in items {
        z.push(item);
    }
    z.finish()
}

/// The sample's entries with `extra` appended, as a fresh zip.
pub fn sample_plus(items: &[RawItem], extra: &[RawItem]) -> Vec<u8> {
    let mut z = RawZip::new();
    for item in items.iter().chain(extra) {
        z.push(item);
    }
    z.finish()
}

/// Write `bytes` to `dir/name`; the path.
pub fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

/// A raw deflate stream that inflates to `total` zero bytes (a multiple of 1 MiB) in
/// about `total / 1000` bytes, built in milliseconds: one sync-flushed megabyte of
/// zeros, then the same block of back-references repeated (it refers only to the
/// zeros before it), then an empty final block.
pub fn zero_bomb(total: u64) -> Vec<u8> {
    const MIB: usize = 1 << 20;
    assert!(total >= 2 * MIB as u64 && total % MIB as u64 == 0);
    let zeros = vec![0u8; MIB];
    let mut c = Compress::new(Compression::best(), false);
    let segment = |input: &[u8], flush: FlushCompress, c: &mut Compress| {
        let mut out = Vec::with_capacity(MIB);
        let before = c.total_in();
        loop {
            let consumed = (c.total_in() - before) as usize;
            let status = c.compress_vec(&input[consumed..], &mut out, flush).unwrap();
            if out.len() == out.capacity() {
                out.reserve(MIB);
                continue;
            }
            if (c.total_in() - before) as usize == input.len()
                && (flush != FlushCompress::Finish || status == flate2::Status::StreamEnd)
            {
                break;
            }
        }
        out
    };
    let first = segment(&zeros, FlushCompress::Sync, &mut c);
    let repeat = segment(&zeros, FlushCompress::Sync, &mut c);
    let end = segment(&[], FlushCompress::Finish, &mut c);
    let n = (total / MIB as u64) as usize - 1;
    let mut out = Vec::with_capacity(first.len() + repeat.len() * n + end.len());
    out.extend_from_slice(&first);
    for _ in 0..n {
        out.extend_from_slice(&repeat);
    }
    out.extend_from_slice(&end);
    out
}

/// The CRC-32 of `n` zero bytes, computed in megabyte steps.
pub fn crc_of_zeros(n: u64) -> u32 {
    let chunk = vec![0u8; 1 << 20];
    let mut h = crc32fast::Hasher::new();
    let mut left = n;
    while left > 0 {
        let k = left.min(chunk.len() as u64) as usize;
        h.update(&chunk[..k]);
        left -= k as u64;
    }
    h.finalize()
}

/// How a run of the binary ended.
#[derive(Debug)]
pub struct Outcome {
    /// The exit code; `None` when a signal ended the process.
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
}

impl Outcome {
    pub fn headline(&self) -> &str {
        self.stdout.lines().next().unwrap_or("")
    }

    /// The process ended by itself, with a documented code, no panic, no crash, and a
    /// first line that gives the verdict.
    pub fn assert_clean(&self, what: &str) {
        assert!(
            self.code.is_some(),
            "{what}: killed by a signal\nstdout: {}\nstderr: {}",
            self.stdout,
            self.stderr
        );
        let code = self.code.unwrap();
        assert!(
            DOCUMENTED_CODES.contains(&code),
            "{what}: undocumented exit code {code}\nstdout: {}\nstderr: {}",
            self.stdout,
            self.stderr
        );
        assert!(
            !self.stderr.contains("panicked") && !self.stderr.contains("RUST_BACKTRACE"),
            "{what}: panicked: {}",
            self.stderr
        );
        let head = self.headline();
        assert!(
            head.starts_with("READY: ")
                || head.starts_with("STRUCTURE OK: ")
                || head.starts_with("NOT READY: ")
                || head.starts_with("UNKNOWN: ")
                || (head == "{" && serde_json::from_str::<serde_json::Value>(&self.stdout).is_ok())
                || (self.stdout.is_empty() && code == 2),
            "{what}: no verdict line: {:?}",
            self.stdout
        );
    }

    pub fn assert_code(&self, what: &str, code: i32) {
        self.assert_clean(what);
        assert_eq!(
            self.code,
            Some(code),
            "{what}\nstdout: {}\nstderr: {}",
            self.stdout,
            self.stderr
        );
    }
}

/// Options for [`run_limited`].
#[derive(Debug, Clone, Default)]
pub struct Limits {
    /// Kill the process (and fail) after this long.
    pub wall: Option<Duration>,
    /// `RLIMIT_AS` in bytes (what `prlimit --as` sets).
    pub address_space: Option<u64>,
    /// Run as this user id (tests run as root in CI; dropping to `nobody` makes file
    /// permissions bite).
    pub uid: Option<u32>,
    pub env: Vec<(String, String)>,
}

/// Run the built binary ([`super::ipswcheck`]: a temporary HOME, no inherited
/// settings) with `args` under `limits`. Standard output and error are read on threads
/// so a chatty child cannot block on a full pipe.
pub fn run_limited(args: &[&str], limits: &Limits) -> Outcome {
    run_polled(args, limits, Duration::from_millis(5), &mut |_| {})
}

/// [`run_limited`], calling `poll` with the child's pid every `every` while it runs (to
/// sample its memory: [`super::measure`]).
pub fn run_polled(
    args: &[&str],
    limits: &Limits,
    every: Duration,
    poll: &mut dyn FnMut(u32),
) -> Outcome {
    use std::os::unix::process::CommandExt;
    let mut cmd = super::ipswcheck();
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in &limits.env {
        cmd.env(k, v);
    }
    if let Some(bytes) = limits.address_space {
        limit_address_space(&mut cmd, bytes);
    }
    if let Some(uid) = limits.uid {
        cmd.uid(uid).gid(uid);
    }
    let start = Instant::now();
    let mut child = cmd.spawn().expect("spawn ipswcheck");
    let out = drain(child.stdout.take().unwrap());
    let err = drain(child.stderr.take().unwrap());
    let wall = limits.wall.unwrap_or(Duration::from_secs(120));
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        poll(child.id());
        if start.elapsed() > wall {
            let _ = child.kill();
            let _ = child.wait();
            panic!("ipswcheck {args:?} did not finish within {wall:?}");
        }
        std::thread::sleep(every);
    };
    let elapsed = start.elapsed();
    Outcome {
        code: status.code(),
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
        elapsed,
    }
}

/// Give the process `cmd` starts an address-space limit (`RLIMIT_AS`, what `prlimit
/// --as` sets) of `bytes`, applied between `fork` and `exec`.
pub fn limit_address_space(cmd: &mut std::process::Command, bytes: u64) {
    use std::os::unix::process::CommandExt;
    // SAFETY: setrlimit is async-signal-safe and touches only the child.
    unsafe {
        cmd.pre_exec(move || {
            let lim = libc::rlimit {
                rlim_cur: bytes as libc::rlim_t,
                rlim_max: bytes as libc::rlim_t,
            };
            if libc::setrlimit(libc::RLIMIT_AS, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// Read `pipe` to its end on a thread (a child's output, so that it never blocks on a
/// full pipe); the text, lossily decoded.
pub fn drain(mut pipe: impl Read + Send + 'static) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = pipe.read_to_end(&mut bytes);
        String::from_utf8_lossy(&bytes).into_owned()
    })
}

/// A hosts file that cannot redirect anything (it does not exist).
pub const NO_HOSTS: &str = "/nonexistent/ipswcheck-robust/hosts";

/// Offline check options for the iPhone9,3 (`None`: every customer identity), with a
/// hosts file that cannot redirect.
pub fn offline_options(device: Option<&str>) -> CheckOptions {
    let mut signing = SigningOptions::from_env();
    signing.offline = true;
    signing.cache_dir = None;
    signing.hosts_file = PathBuf::from(NO_HOSTS);
    CheckOptions {
        device: device.map(|d| ipswcheck::device::resolve(d, None).unwrap()),
        behavior: RestoreBehavior::Erase,
        quick: false,
        expected: None,
        signing,
    }
}

/// The library check of `path` for the iPhone9,3, offline.
pub fn lib_check(path: &Path) -> Report {
    check::check_file(
        path,
        &offline_options(Some("iPhone9,3")),
        &Progress::default(),
    )
}

/// Address space every adversarial run gets on top of the file's size (the mapping
/// counts): a run that needs more dies, and its test fails. See `tests/limits.rs` for
/// the tighter limit and why address space, not resident memory, is what is limited.
pub const ADVERSARIAL_ALLOWANCE: u64 = 1 << 30;

/// The arguments of an offline check of `path` for the iPhone9,3, with a hosts file that
/// cannot redirect, then `extra`.
pub fn offline_args<'a>(path: &'a Path, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        path.to_str().unwrap(),
        "--device",
        "iPhone9,3",
        "--offline",
        "--hosts-file",
        NO_HOSTS,
    ];
    args.extend_from_slice(extra);
    args
}

/// `ipswcheck FILE --device iPhone9,3 --offline` ([`offline_args`]), killed after 60 s,
/// with an address-space limit of the file's size plus [`ADVERSARIAL_ALLOWANCE`].
pub fn check_offline(path: &Path, extra: &[&str]) -> Outcome {
    run_limited(
        &offline_args(path, extra),
        &Limits {
            wall: Some(Duration::from_secs(60)),
            address_space: Some(
                std::fs::metadata(path)
                    .map(|m| if m.is_file() { m.len() } else { 0 })
                    .unwrap_or(0)
                    + ADVERSARIAL_ALLOWANCE,
            ),
            ..Limits::default()
        },
    )
}

/// The sample's entries with BuildManifest.plist replaced by `manifest` (stored).
pub fn with_manifest(items: &[RawItem], manifest: &[u8]) -> Vec<u8> {
    let replaced: Vec<RawItem> = items
        .iter()
        .map(|item| {
            if item.name == b"BuildManifest.plist" {
                RawItem::stored("BuildManifest.plist", manifest)
            } else {
                item.clone()
            }
        })
        .collect();
    rezip(&replaced, false)
}

pub fn sample_manifest(dir: &Path) -> (Vec<RawItem>, Dictionary) {
    let (_, layout, items) = sample(dir);
    let manifest = Value::from_reader_xml(&layout.manifest[..])
        .unwrap()
        .into_dictionary()
        .unwrap();
    (items, manifest)
}

pub fn xml(v: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    v.to_writer_xml(&mut out).unwrap();
    out
}

/// The sample manifest with 2,000 small Erase identities for the d101ap, each with its
/// own UniqueBuildID and four components: about 170,000 plist values, under the
/// 200,000 a manifest may hold (10,000 identities, as this once made, are refused).
pub fn ten_thousand_identities(items: &[RawItem], manifest: &Dictionary) -> Vec<u8> {
    let template = manifest["BuildIdentities"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_dictionary().unwrap())
        .find(|d| {
            let info = d["Info"].as_dictionary().unwrap();
            info["DeviceClass"].as_string() == Some("d101ap")
                && info["RestoreBehavior"].as_string() == Some("Erase")
        })
        .unwrap();
    let mut small = Dictionary::new();
    for key in ["ApChipID", "ApBoardID", "ApSecurityDomain", "Info"] {
        small.insert(key.into(), template[key].clone());
    }
    let mut comps = Dictionary::new();
    for name in ["KernelCache", "iBSS", "RestoreSEP", "OS"] {
        let c = template["Manifest"].as_dictionary().unwrap()[name]
            .as_dictionary()
            .unwrap();
        let info = c["Info"].as_dictionary().unwrap();
        let mut slim_info = Dictionary::new();
        for key in ["Path", "Img4PayloadType"] {
            if let Some(v) = info.get(key) {
                slim_info.insert(key.into(), v.clone());
            }
        }
        let mut slim = Dictionary::new();
        slim.insert("Digest".into(), c["Digest"].clone());
        slim.insert("Trusted".into(), true.into());
        slim.insert("Info".into(), Value::Dictionary(slim_info));
        comps.insert(name.into(), Value::Dictionary(slim));
    }
    small.insert("Manifest".into(), Value::Dictionary(comps));
    let identities: Vec<Value> = (0..2_000u32)
        .map(|i| {
            let mut id = small.clone();
            id.insert(
                "UniqueBuildID".into(),
                Value::Data(i.to_be_bytes().repeat(5)),
            );
            Value::Dictionary(id)
        })
        .collect();
    let mut m = manifest.clone();
    m.insert("BuildIdentities".into(), Value::Array(identities));
    with_manifest(items, &xml(&Value::Dictionary(m)))
}

/// Whether this process runs as root (CI does).
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}
