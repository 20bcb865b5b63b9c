//! A file server for the remote tests, on the one loopback server of [`super::http`]
//! ([`Server::streaming`]): it serves files from disk with `Range` (`a-b`, `a-`, `-n`),
//! `If-Range`, `ETag` and `Last-Modified`, and can ignore ranges (a server without range
//! support), change its ETag (a new version of the file), cut a body off midway (a
//! broken connection), or send the file slowly past an offset (to see a client stop). Every request is logged with what was sent back. The answers are
//! written byte by byte here so that each of those behaviours is exact.
//!
//! Also what the tests of remote checks share: Apple's stand-in, the network flags of a
//! run against loopback servers, running the binary for its JSON report, and sparse
//! zips whose end records claim what a test wants (giant or lost directories).

#![allow(dead_code)]

use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::http::{Recorded, Reply, Server};
use super::robust::{run_limited, Limits, Outcome, NO_HOSTS};
use super::signing::{ipswme_body, signed_body};

pub const LAST_MODIFIED: &str = "Tue, 01 Jul 2025 10:00:00 GMT";

/// One request and what the server did with it.
#[derive(Debug, Clone)]
pub struct Logged {
    pub method: String,
    pub path: String,
    pub range: Option<String>,
    pub if_range: Option<String>,
    pub status: u16,
    /// Body bytes actually written to the socket.
    pub body_sent: u64,
    /// The body was cut off on purpose.
    pub cut: bool,
}

#[derive(Default)]
struct State {
    files: Mutex<HashMap<String, PathBuf>>,
    ignore_ranges: AtomicBool,
    etag: Mutex<String>,
    /// Cut the first body longer than this after this many bytes (once).
    cut_once_after: Mutex<Option<u64>>,
    /// Send the bytes of the file from this offset on slowly (64 KiB per 50 ms).
    slow_after: Mutex<Option<u64>>,
    sent: AtomicU64,
    log: Mutex<Vec<Logged>>,
}

pub struct FileServer {
    pub addr: SocketAddr,
    state: Arc<State>,
    _server: Server,
}

impl FileServer {
    pub fn start() -> Self {
        let state = Arc::new(State::default());
        *state.etag.lock().unwrap() = "\"v1\"".into();
        let server = {
            let state = Arc::clone(&state);
            Server::streaming(move |request, stream| handle(request, stream, &state))
        };
        FileServer {
            addr: server.addr,
            state,
            _server: server,
        }
    }

    /// Serve `file` at `/name`; returns its URL.
    pub fn serve(&self, name: &str, file: &Path) -> String {
        self.state
            .files
            .lock()
            .unwrap()
            .insert(format!("/{name}"), file.to_path_buf());
        self.url(name)
    }

    pub fn url(&self, name: &str) -> String {
        format!("http://{}/{name}", self.addr)
    }

    /// Answer every request with 200 and the whole body, whatever its `Range`.
    pub fn ignore_ranges(&self, yes: bool) {
        self.state.ignore_ranges.store(yes, Ordering::SeqCst);
    }

    /// A new version of the files (as after an upload): a new ETag.
    pub fn set_etag(&self, etag: &str) {
        *self.state.etag.lock().unwrap() = etag.into();
    }

    /// Cut the first response body longer than `n` bytes off after `n` bytes (the
    /// connection is closed), once. Shorter answers (a preflight's) are not affected.
    pub fn cut_once_after(&self, n: u64) {
        *self.state.cut_once_after.lock().unwrap() = Some(n);
    }

    /// Send every byte of the file at or past offset `n` slowly — 64 KiB every 50 ms,
    /// about 1.3 MB/s — so that a client that stops early is seen to have stopped.
    pub fn slow_after(&self, n: u64) {
        *self.state.slow_after.lock().unwrap() = Some(n);
    }

    /// Body bytes written to sockets so far.
    pub fn body_bytes_sent(&self) -> u64 {
        self.state.sent.load(Ordering::SeqCst)
    }

    pub fn log(&self) -> Vec<Logged> {
        self.state.log.lock().unwrap().clone()
    }

    pub fn clear_log(&self) {
        self.state.log.lock().unwrap().clear();
        self.state.sent.store(0, Ordering::SeqCst);
    }
}

/// `bytes=a-b`, `bytes=a-`, `bytes=-n` → `start..end`; `None` when unsatisfiable.
pub fn parse_range(spec: &str, size: u64) -> Option<Option<(u64, u64)>> {
    let spec = spec.trim().strip_prefix("bytes=")?;
    if spec.contains(',') {
        return None; // multipart ranges: not supported, answered in full
    }
    let (a, b) = spec.split_once('-')?;
    let range = if a.is_empty() {
        let n: u64 = b.parse().ok()?;
        (n > 0 && size > 0).then(|| (size - n.min(size), size))
    } else {
        let start: u64 = a.parse().ok()?;
        let end = if b.is_empty() {
            size
        } else {
            b.parse::<u64>().ok()?.saturating_add(1).min(size)
        };
        (start < size && start < end).then_some((start, end))
    };
    Some(range)
}

fn handle(request: &Recorded, out: &mut TcpStream, state: &State) -> std::io::Result<()> {
    let method = request.method.clone();
    let path = request.path().to_owned();
    let range = request.header("range").map(str::to_owned);
    let if_range = request.header("if-range").map(str::to_owned);
    let mut log = Logged {
        method: method.clone(),
        path: path.clone(),
        range: range.clone(),
        if_range: if_range.clone(),
        status: 0,
        body_sent: 0,
        cut: false,
    };
    let file = state.files.lock().unwrap().get(&path).cloned();
    let Some(file) = file else {
        log.status = 404;
        state.log.lock().unwrap().push(log);
        out.write_all(
            b"HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\nConnection: close\r\n\r\nnot found",
        )?;
        return Ok(());
    };
    let mut f = File::open(&file)?;
    let size = f.metadata()?.len();
    let etag = state.etag.lock().unwrap().clone();
    let honour = !state.ignore_ranges.load(Ordering::SeqCst)
        && if_range
            .as_deref()
            .is_none_or(|v| v == etag || v == LAST_MODIFIED);
    let mut head = String::new();
    let (start, end) = match range
        .as_deref()
        .filter(|_| honour)
        .map(|r| parse_range(r, size))
    {
        Some(Some(Some((start, end)))) => {
            log.status = 206;
            head.push_str("HTTP/1.1 206 Partial Content\r\n");
            head.push_str(&format!(
                "Content-Range: bytes {start}-{}/{size}\r\n",
                end - 1
            ));
            (start, end)
        }
        Some(Some(None)) => {
            log.status = 416;
            state.log.lock().unwrap().push(log);
            out.write_all(
                format!("HTTP/1.1 416 Range Not Satisfiable\r\nContent-Range: bytes */{size}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                    .as_bytes(),
            )?;
            return Ok(());
        }
        _ => {
            log.status = 200;
            head.push_str("HTTP/1.1 200 OK\r\n");
            (0, size)
        }
    };
    if !state.ignore_ranges.load(Ordering::SeqCst) {
        head.push_str("Accept-Ranges: bytes\r\n");
    }
    head.push_str(&format!(
        "Content-Length: {}\r\nContent-Type: application/octet-stream\r\nETag: {etag}\r\nLast-Modified: {LAST_MODIFIED}\r\nConnection: close\r\n\r\n",
        end - start
    ));
    out.write_all(head.as_bytes())?;
    if method == "HEAD" {
        state.log.lock().unwrap().push(log);
        return Ok(());
    }
    let cut = {
        let mut pending = state.cut_once_after.lock().unwrap();
        match *pending {
            Some(n) if end - start > n => pending.take(),
            _ => None,
        }
    };
    f.seek(SeekFrom::Start(start))?;
    let slow_after = *state.slow_after.lock().unwrap();
    let mut left = end - start;
    let mut buf = vec![0u8; 64 << 10];
    let result = loop {
        if left == 0 {
            break Ok(());
        }
        let mut n = (buf.len() as u64).min(left) as usize;
        let at = start + log.body_sent;
        match slow_after {
            Some(slow) if at >= slow => std::thread::sleep(Duration::from_millis(50)),
            // Up to the slow part at full speed.
            Some(slow) if at + n as u64 > slow => n = (slow - at) as usize,
            _ => {}
        }
        if let Some(c) = cut {
            if log.body_sent + n as u64 >= c {
                n = (c - log.body_sent) as usize;
                log.cut = true;
            }
        }
        if let Err(e) = f.read_exact(&mut buf[..n]) {
            break Err(e);
        }
        if let Err(e) = out.write_all(&buf[..n]) {
            break Err(e);
        }
        log.body_sent += n as u64;
        state.sent.fetch_add(n as u64, Ordering::SeqCst);
        left -= n as u64;
        if log.cut {
            let _ = out.flush();
            let _ = out.shutdown(Shutdown::Both);
            break Ok(());
        }
    };
    state.log.lock().unwrap().push(log);
    result
}

// ---------------------------------------------------------------- runs against loopback

/// Apple's TSS and ipsw.me in one stand-in that answers at once: signed, and ipsw.me
/// lists the sample's build (19H370) for the iPhone9,3 as signed. Serves until the test
/// process ends.
pub fn apple_signed() -> SocketAddr {
    Server::apple_and_ipswme(
        Reply::ok(signed_body()),
        Reply::ok(ipswme_body("iPhone9,3", "19H370", true, "")),
    )
    .detach()
}

/// A cache directory under `dir` that no earlier run used (each run asks Apple afresh).
pub fn fresh_cache(dir: &Path) -> PathBuf {
    static RUNS: AtomicUsize = AtomicUsize::new(0);
    dir.join(format!("cache-{}", RUNS.fetch_add(1, Ordering::SeqCst)))
}

/// The flags of a run against loopback servers: Apple's TSS at `tss`, ipsw.me at `api`,
/// `--timeout` of `timeout` seconds, a hosts file that cannot redirect, and `cache` as
/// the signing cache (never the user's).
pub fn network_flags(tss: &str, api: &str, timeout: &str, cache: &Path) -> Vec<String> {
    [
        "--tss-url",
        tss,
        "--api-url",
        api,
        "--timeout",
        timeout,
        "--hosts-file",
        NO_HOSTS,
        "--cache-dir",
        cache.to_str().unwrap(),
    ]
    .map(str::to_owned)
    .to_vec()
}

/// `fetch URL -o DEST --device iPhone9,3`.
pub fn fetch_args<'a>(url: &'a str, dest: &'a Path) -> [&'a str; 6] {
    [
        "fetch",
        url,
        "-o",
        dest.to_str().unwrap(),
        "--device",
        "iPhone9,3",
    ]
}

/// Run the binary with `args` (which ask for JSON), killed (and failing) after `wall`;
/// it must not panic, and its output must be a JSON report.
pub fn run_json(args: &[&str], wall: Duration) -> (Outcome, serde_json::Value) {
    let o = run_limited(
        args,
        &Limits {
            wall: Some(wall),
            ..Limits::default()
        },
    );
    assert!(!o.stderr.contains("panicked"), "{}", o.stderr);
    let v = serde_json::from_str(&o.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}\n{}", o.stdout, o.stderr));
    (o, v)
}

/// The first problem's message of a JSON report (fails when it has none).
pub fn first_problem(v: &serde_json::Value) -> String {
    v["problems"][0]["message"]
        .as_str()
        .unwrap_or_else(|| panic!("no problem in {v:#}"))
        .to_owned()
}

// ---------------------------------------------------------------- sparse zips

/// A zip64 end record (56 bytes) declaring a central directory of `cd_size` bytes at
/// `cd_offset`, holding `entries` entries.
pub fn zip64_record(entries: u64, cd_size: u64, cd_offset: u64) -> Vec<u8> {
    let mut r = b"PK\x06\x06".to_vec();
    r.extend_from_slice(&44u64.to_le_bytes());
    r.extend_from_slice(&45u16.to_le_bytes());
    r.extend_from_slice(&45u16.to_le_bytes());
    r.extend_from_slice(&0u32.to_le_bytes());
    r.extend_from_slice(&0u32.to_le_bytes());
    r.extend_from_slice(&entries.to_le_bytes());
    r.extend_from_slice(&entries.to_le_bytes());
    r.extend_from_slice(&cd_size.to_le_bytes());
    r.extend_from_slice(&cd_offset.to_le_bytes());
    r
}

/// The zip64 locator pointing at `record`, then an end record that defers to zip64.
pub fn zip64_trailer(record: u64) -> Vec<u8> {
    let mut t = b"PK\x06\x07".to_vec();
    t.extend_from_slice(&0u32.to_le_bytes());
    t.extend_from_slice(&record.to_le_bytes());
    t.extend_from_slice(&1u32.to_le_bytes());
    t.extend_from_slice(b"PK\x05\x06");
    t.extend_from_slice(&[0; 4]);
    t.extend_from_slice(&[0xFF; 4]);
    t.extend_from_slice(&[0xFF; 8]);
    t.extend_from_slice(&[0; 2]);
    t
}

/// A sparse file of `size` bytes: `head` at its start, the zip64 trailer pointing at
/// `record_at` at its end, holes between.
pub fn sparse_zip(path: &Path, size: u64, head: &[(u64, Vec<u8>)], record_at: u64) -> PathBuf {
    let mut f = File::create(path).unwrap();
    for (at, bytes) in head {
        f.seek(SeekFrom::Start(*at)).unwrap();
        f.write_all(bytes).unwrap();
    }
    let trailer = zip64_trailer(record_at);
    f.seek(SeekFrom::Start(size - trailer.len() as u64))
        .unwrap();
    f.write_all(&trailer).unwrap();
    path.to_path_buf()
}
