//! A file server for the remote tests, on the one loopback server of [`super::http`]
//! ([`Server::streaming`]): it serves files from disk with `Range` (`a-b`, `a-`, `-n`),
//! `If-Range`, `ETag` and `Last-Modified`, and can ignore ranges (a server without range
//! support), change its ETag (a new version of the file), or cut a body off midway (a
//! broken connection). Every request is logged with what was sent back. The answers are
//! written byte by byte here so that each of those behaviours is exact.

#![allow(dead_code)]

use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use super::http::{Recorded, Server};

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
    let mut left = end - start;
    let mut buf = vec![0u8; 64 << 10];
    let result = loop {
        if left == 0 {
            break Ok(());
        }
        let mut n = (buf.len() as u64).min(left) as usize;
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
