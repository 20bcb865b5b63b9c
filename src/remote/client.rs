//! Range reads of one remote file over HTTP(S), counted to the byte.
//!
//! - The first request asks for the last [`TAIL_LEN`] bytes with a suffix range
//!   (`Range: bytes=-65558`): one round trip gives the file's size (from `Content-Range`),
//!   its validators (`ETag`, `Last-Modified`) and the zip end records.
//! - A server that answers a range request with `200` and the whole body does not support
//!   ranges. That is seen from the status line and headers, before the body: the
//!   response is dropped (closing the connection) and nothing more is read. The only
//!   `200` accepted is one for a file no larger than the tail we asked for.
//! - Every later request carries `If-Range` with the first answer's validator, and every
//!   answer's `Content-Range` and `ETag` are compared with what was asked and first seen,
//!   so bytes of two different versions of a file are never mixed.
//! - Bodies are read to exactly the length asked for, so a broken server cannot make us
//!   read (or allocate) more.
//! - Everything fetched is kept in memory as blocks (a few hundred KB for a quick check)
//!   and later reads are served from them.
//! - One client builder for every HTTP request of ipswcheck
//!   ([`crate::signing::http::client_builder`]): TLS verification always on, the
//!   platform's roots plus Apple's plus `--ca-file` ([`RemoteFile::with_options`]), and
//!   one redirect policy — at most five hops, each to the scheme of the URL given, never
//!   from https to plain http (an https IPSW URL redirected to http would otherwise be
//!   read in clear text, and a forged file checked as READY).
//! - Three clocks. The *stall* timeout (`timeout`) bounds the wait for the status line
//!   and headers and each read of a body. A *total* deadline bounds each whole answer a
//!   check reads: `timeout` plus its length at [`MIN_CHECK_RATE`] — a server that
//!   trickles one byte a second never stalls, and without it a 64 KiB tail would take 18
//!   hours. A *check* deadline bounds all the answers of one remote check together
//!   ([`CHECK_TIMEOUTS`]): each answer just inside its own deadline, hundreds of times,
//!   would otherwise hold a check for hours. A download (`fetch`) cannot have a total
//!   deadline (gigabytes at any honest speed); its body is read through
//!   [`RemoteFile::watched`], the minimum-throughput rule of [`Throughput`].

use std::io::Read;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use reqwest::blocking::{Client, Response};
use reqwest::header::{self, HeaderMap};
use reqwest::StatusCode;

use crate::signing::http::{client_builder, error_chain, is_loopback, Held};
use crate::signing::SigningOptions;

use super::human_bytes;

/// The zip end record is 22 bytes plus a comment of at most 65535 bytes: the last
/// `TAIL_LEN` bytes always contain it.
pub const TAIL_LEN: u64 = 22 + 65535;

/// The slowest answer a check waits for, in bytes per second, beyond the `timeout` every
/// answer gets: the total deadline of an answer of `len` bytes is `timeout + len /
/// MIN_CHECK_RATE`. 32 KiB/s (a poor mobile link) adds 2 s for the tail, a few seconds
/// for a real directory and manifest, 17 minutes at most for the largest directory read
/// (32 MiB): bounded, whatever the server does.
pub const MIN_CHECK_RATE: u64 = 32 << 10;

/// How many stall timeouts all the answers of one remote check may take together, on
/// top of their bytes at [`MIN_CHECK_RATE`]: the check deadline is `CHECK_TIMEOUTS ×
/// timeout + (bytes asked for) / MIN_CHECK_RATE`, counted from the check's first request.
///
/// Why one deadline for the whole check: each answer's own deadline is `timeout + len /
/// MIN_CHECK_RATE`, and a crafted file makes many answers — the zip parser may fetch up
/// to [`super::MAX_DIRECTORY_BYTES`] in 64 KiB reads, 512 requests. A server answering
/// each just inside its own deadline would hold one check for 512 timeouts (85 minutes
/// at the default 10 s) on top of its bytes. With this, the waiting is paid four times,
/// not once per request.
///
/// Why four: a real IPSW takes two to five requests (the tail, perhaps the directory,
/// the two manifests), each waiting one round trip, not a timeout; four whole timeouts
/// (40 s at the default) cover any honest server's latency, and the first four answers
/// of a check could each take their whole own deadline without passing this one. The
/// bytes are paid at the same rate as each answer's, so a large directory brings its
/// own time with it. A check ends at most one stall timeout after this deadline (a
/// request sent just before it waits that long for its headers), then fails as an
/// answer past its own deadline does: the file could not be read, exit 3.
pub const CHECK_TIMEOUTS: u32 = 4;

/// The download rule: a `fetch` body slower than this, in bytes per second, averaged
/// over a [`RemoteFile::download_window`], is broken off as too slow (and resumed, as
/// any broken transfer). 8 KiB/s would take a week for a 5 GB IPSW: no honest download
/// is cut, and a server trickling its body a byte at a time is.
pub const MIN_DOWNLOAD_RATE: u64 = 8 << 10;

/// The shortest window of the download rule: a few seconds of a slow start are not
/// judged.
const MIN_DOWNLOAD_WINDOW: Duration = Duration::from_secs(5);

/// Why a remote file could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RemoteError {
    #[error("is not an http:// or https:// URL")]
    NotAUrl,
    #[error("offline: checking a URL needs the network")]
    Offline,
    #[error("could not set up HTTP: {0}")]
    Client(String),
    #[error("could not be reached: {0}")]
    Network(String),
    #[error("the server answered HTTP {0}")]
    HttpStatus(String),
    #[error("the server does not support range requests; ipswcheck will not download {} to check it", size.map(human_bytes).unwrap_or_else(|| "the whole file".into()))]
    NoRanges { size: Option<u64> },
    #[error("the server answered a range request with another range ({0})")]
    BadRange(String),
    #[error("the file changed on the server while it was being read")]
    Changed,
    #[error("is empty (0 bytes)")]
    Empty,
    #[error("the transfer broke off after {got} of {want} bytes: {reason}")]
    BrokenOff { got: u64, want: u64, reason: String },
    #[error("{what} is {size} bytes, more than the {limit}-byte limit")]
    TooLarge { what: String, size: u64, limit: u64 },
    #[error("the check was cancelled")]
    Cancelled,
    /// A redirect the policy refused (to another scheme, or too many).
    #[error("{0}")]
    Redirect(String),
    /// The process-wide budget for answers held in memory
    /// ([`crate::signing::http::MAX_HELD_BYTES`]) is used up.
    #[error("{0}")]
    OverBudget(String),
    /// The check deadline ([`CHECK_TIMEOUTS`]): every answer came within its own deadline,
    /// but together they took too long. (The report names the URL.)
    #[error("the server was too slow overall: {requests} requests for {asked} bytes took longer than the {:.1} s one check may take ({CHECK_TIMEOUTS} × the timeout, plus {} KiB/s)", .limit.as_secs_f64(), MIN_CHECK_RATE >> 10)]
    TooSlowOverall {
        requests: u64,
        asked: u64,
        limit: Duration,
    },
    /// The download rule ([`Throughput`]): too few bytes over a whole window.
    #[error("too slow: {got} bytes in the last {secs} s, below the minimum of {} KiB/s", min_rate >> 10)]
    TooSlow { got: u64, secs: u64, min_rate: u64 },
}

impl RemoteError {
    /// Worth trying again (the connection failed or broke): as opposed to an answer.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            RemoteError::Network(_) | RemoteError::BrokenOff { .. } | RemoteError::TooSlow { .. }
        )
    }
}

/// What identifies one version of the remote file.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Validators {
    pub etag: Option<String>,
    pub last_modified: Option<String>,
}

impl Validators {
    fn from_headers(headers: &HeaderMap) -> Validators {
        let text = |name| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        Validators {
            etag: text(header::ETAG),
            last_modified: text(header::LAST_MODIFIED),
        }
    }

    /// The validators of an answer.
    pub fn from_response(response: &Response) -> Validators {
        Validators::from_headers(response.headers())
    }

    /// The `If-Range` value: a strong ETag, else the Last-Modified date (RFC 9110 §13.1.5
    /// forbids weak ETags there).
    pub fn if_range(&self) -> Option<&str> {
        match &self.etag {
            Some(e) if !e.starts_with("W/") => Some(e),
            _ => self.last_modified.as_deref(),
        }
    }

    /// Whether `other` names the same version: equal ETags when both have one, else
    /// equal Last-Modified dates. Without validators nothing can be proven the same.
    pub fn same_version(&self, other: &Validators) -> bool {
        match (&self.etag, &other.etag) {
            (Some(a), Some(b)) => a == b,
            (None, None) => {
                self.last_modified.is_some() && self.last_modified == other.last_modified
            }
            _ => false,
        }
    }
}

/// Size and validators, known after the first answer.
#[derive(Debug, Clone)]
struct Meta {
    size: u64,
    validators: Validators,
}

/// One remote file read with range requests. Shareable between threads.
pub struct RemoteFile {
    url: String,
    source: Source,
    /// The stall timeout (see the module's doc).
    timeout: Duration,
    meta: OnceLock<Meta>,
    /// Bytes received: bodies plus status lines and headers.
    fetched: AtomicU64,
    requests: AtomicU64,
    /// When the check's first request went out, and the bytes its requests asked for
    /// since: the clock of the check deadline ([`CHECK_TIMEOUTS`]). A download's
    /// requests ([`RemoteFile::open_range`] called by `fetch`) are not on it.
    check_started: OnceLock<Instant>,
    check_asked: AtomicU64,
    /// Fetched ranges, by offset (possibly overlapping).
    blocks: Mutex<Vec<(u64, Arc<Vec<u8>>)>>,
    /// What `blocks` (and entries read from them) hold, counted against the process-wide
    /// budget for as long as this file lives.
    held: Mutex<Held>,
}

impl std::fmt::Debug for RemoteFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteFile")
            .field("url", &self.url)
            .field("size", &self.size())
            .field("fetched", &self.bytes_fetched())
            .finish()
    }
}

/// Where the bytes come from.
enum Source {
    Http(Client),
    /// A file held in memory, served as a perfect range server would (the fuzz target of
    /// the tail and directory reader, and unit tests): no HTTP, same bookkeeping.
    Memory(Vec<u8>),
}

/// Whether `text` is an `http://` or `https://` URL (what the CLI treats as remote).
pub fn is_url(text: &str) -> bool {
    let lower = text.get(..8).unwrap_or(text).to_ascii_lowercase();
    lower.starts_with("http://") || lower.starts_with("https://")
}

impl RemoteFile {
    /// A reader for `url`, trusting the platform's and Apple's roots; nothing is sent
    /// yet. `timeout` is the stall timeout and the base of every total deadline (see the
    /// module's doc).
    pub fn new(url: &str, timeout: Duration) -> Result<RemoteFile, RemoteError> {
        Self::connect(url, timeout, None)
    }

    /// [`RemoteFile::new`] with the signing options' `timeout` and `--ca-file`: the
    /// remote file is trusted exactly as the signing servers are.
    pub fn with_options(url: &str, options: &SigningOptions) -> Result<RemoteFile, RemoteError> {
        Self::connect(url, options.timeout, options.ca_file.as_deref())
    }

    fn connect(
        url: &str,
        timeout: Duration,
        ca_file: Option<&Path>,
    ) -> Result<RemoteFile, RemoteError> {
        let parsed = reqwest::Url::parse(url).map_err(|_| RemoteError::NotAUrl)?;
        if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
            return Err(RemoteError::NotAUrl);
        }
        // A proxy can never reach this machine's loopback (tests, a local mirror).
        let client = client_builder(is_loopback(&parsed), ca_file)
            .map_err(RemoteError::Client)?
            .timeout(timeout)
            .connect_timeout(timeout)
            .user_agent(concat!("ipswcheck/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| RemoteError::Client(error_chain(&e)))?;
        Ok(Self::from_source(url, Source::Http(client), timeout))
    }

    /// A "remote" file served from `bytes` in memory, with every request counted as over
    /// HTTP; for fuzzing and tests of the readers above the client.
    #[doc(hidden)]
    pub fn in_memory(name: &str, bytes: Vec<u8>) -> RemoteFile {
        Self::from_source(name, Source::Memory(bytes), Duration::from_secs(1))
    }

    fn from_source(url: &str, source: Source, timeout: Duration) -> RemoteFile {
        RemoteFile {
            url: url.to_owned(),
            source,
            timeout,
            meta: OnceLock::new(),
            fetched: AtomicU64::new(0),
            requests: AtomicU64::new(0),
            check_started: OnceLock::new(),
            check_asked: AtomicU64::new(0),
            blocks: Mutex::new(Vec::new()),
            held: Mutex::new(Held::default()),
        }
    }

    /// Count `n` more bytes this file will hold against the process-wide budget, before
    /// they are fetched (or inflated from what was).
    pub(crate) fn hold(&self, n: u64) -> Result<(), RemoteError> {
        self.held
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .grow(n)
            .map_err(|e| RemoteError::OverBudget(e.to_string()))
    }

    /// The window of the download rule: three stall timeouts, at least
    /// [`MIN_DOWNLOAD_WINDOW`] (30 s at the default 10 s timeout).
    pub fn download_window(&self) -> Duration {
        (self.timeout * 3).max(MIN_DOWNLOAD_WINDOW)
    }

    /// `body` (a download's, from [`RemoteFile::open_range`] or
    /// [`RemoteFile::open_whole`]) under the download rule: a read fails with
    /// [`RemoteError::TooSlow`] (inside an `io::Error`; transient, so the transfer
    /// resumes) once a whole [`RemoteFile::download_window`] brought less than
    /// [`MIN_DOWNLOAD_RATE`]. A server that sends nothing at all is cut by the stall
    /// timeout of each read instead.
    pub fn watched<R: Read>(&self, body: R) -> Watched<R> {
        Watched {
            inner: body,
            rule: Throughput::new(self.download_window(), MIN_DOWNLOAD_RATE),
        }
    }

    /// The total deadline of an answer of `len` bytes whose request went out at
    /// `sent` (see [`MIN_CHECK_RATE`]).
    fn deadline(&self, sent: Instant, len: u64) -> Instant {
        sent + self.timeout + at_check_rate(len)
    }

    /// How long a check whose requests asked for `asked` bytes may take in all
    /// ([`CHECK_TIMEOUTS`]).
    fn check_allowance(&self, asked: u64) -> Duration {
        self.timeout * CHECK_TIMEOUTS + at_check_rate(asked)
    }

    /// Before a request of the check for `len` bytes: start the check's clock (at its
    /// first request), refuse once the check deadline of the requests before has
    /// passed, and count `len`. Returns when the request goes out and the check
    /// deadline with `len` counted (what its answer is read by).
    fn check_request(&self, len: u64) -> Result<(Instant, Instant), RemoteError> {
        let sent = Instant::now();
        let started = *self.check_started.get_or_init(|| sent);
        if sent > started + self.check_allowance(self.check_asked.load(Ordering::Relaxed)) {
            return Err(self.too_slow_overall());
        }
        let asked = self.check_asked.fetch_add(len, Ordering::Relaxed) + len;
        Ok((sent, started + self.check_allowance(asked)))
    }

    fn too_slow_overall(&self) -> RemoteError {
        let asked = self.check_asked.load(Ordering::Relaxed);
        RemoteError::TooSlowOverall {
            requests: self.requests(),
            asked,
            limit: self.check_allowance(asked),
        }
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// The file's size, once the first answer gave it.
    pub fn size_known(&self) -> Option<u64> {
        self.meta.get().map(|m| m.size)
    }

    /// The file's size (0 before the first answer).
    pub fn size(&self) -> u64 {
        self.size_known().unwrap_or(0)
    }

    /// The validators of the first answer.
    pub fn validators(&self) -> Validators {
        self.meta
            .get()
            .map(|m| m.validators.clone())
            .unwrap_or_default()
    }

    /// Bytes received so far: every body plus every status line and header block.
    pub fn bytes_fetched(&self) -> u64 {
        self.fetched.load(Ordering::Relaxed)
    }

    /// HTTP requests sent so far.
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// Count `n` more bytes received (callers that stream a body themselves).
    pub fn add_fetched(&self, n: u64) {
        self.fetched.fetch_add(n, Ordering::Relaxed);
    }

    /// Fetch the last [`TAIL_LEN`] bytes (or the whole file if it is smaller); learn the
    /// size and validators. Returns the offset of the first byte fetched.
    pub fn fetch_tail(&self) -> Result<u64, RemoteError> {
        if let Some(m) = self.meta.get() {
            return Ok(m.size.saturating_sub(TAIL_LEN));
        }
        if let Source::Memory(bytes) = &self.source {
            let size = bytes.len() as u64;
            if size == 0 {
                return Err(RemoteError::Empty);
            }
            let _ = self.meta.set(Meta {
                size,
                validators: Validators::default(),
            });
            let start = size.saturating_sub(TAIL_LEN);
            self.fetch_range(start, size)?;
            return Ok(start);
        }
        self.hold(TAIL_LEN)?;
        let (sent, overall) = self.check_request(TAIL_LEN)?;
        let response = self.send(&format!("bytes=-{TAIL_LEN}"), None)?;
        let validators = Validators::from_headers(response.headers());
        let (start, end, size) = match response.status() {
            StatusCode::PARTIAL_CONTENT => {
                let (start, end, size) = content_range(response.headers())?;
                let want_start = size.saturating_sub(TAIL_LEN);
                if size == 0 || start != want_start || end + 1 != size {
                    return Err(RemoteError::BadRange(format!(
                        "asked for the last {TAIL_LEN} bytes, got {start}-{end}/{size}"
                    )));
                }
                (start, end + 1, size)
            }
            StatusCode::OK => match response.content_length() {
                // A file no larger than the tail: this *is* the tail.
                Some(n) if n <= TAIL_LEN => (0, n, n),
                n => return Err(RemoteError::NoRanges { size: n }),
            },
            StatusCode::RANGE_NOT_SATISFIABLE => {
                // Only an empty file cannot satisfy a suffix range.
                return Err(RemoteError::Empty);
            }
            _ => return Err(http_status(&response)),
        };
        if size == 0 {
            return Err(RemoteError::Empty);
        }
        let _ = self.meta.set(Meta { size, validators });
        let body = self.read_body(response, end - start, sent, overall)?;
        self.keep(start, body);
        Ok(start)
    }

    /// `len` bytes at `offset`, from the blocks already fetched or with one request for
    /// at least `min_fetch` bytes (clipped to the end of the file).
    pub fn read_at(&self, offset: u64, len: u64, min_fetch: u64) -> Result<Vec<u8>, RemoteError> {
        let size = self.size();
        let end = offset.saturating_add(len).min(size);
        if offset >= end {
            return Ok(Vec::new());
        }
        if let Some(bytes) = self.cached(offset, end) {
            return Ok(bytes);
        }
        let fetch_end = offset.saturating_add(len.max(min_fetch)).min(size);
        let block = self.fetch_range(offset, fetch_end)?;
        Ok(block[..(end - offset) as usize].to_vec())
    }

    /// Bytes `start..end` from the blocks already fetched, if together they cover them.
    pub fn cached(&self, start: u64, end: u64) -> Option<Vec<u8>> {
        let blocks = self.blocks.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = Vec::with_capacity(end.saturating_sub(start) as usize);
        let mut pos = start;
        while pos < end {
            // The block holding `pos` that reaches furthest.
            let (at, data) = blocks
                .iter()
                .filter(|(at, data)| *at <= pos && pos < at + data.len() as u64)
                .max_by_key(|(at, data)| at + data.len() as u64)?;
            let upto = (at + data.len() as u64).min(end);
            out.extend_from_slice(&data[(pos - at) as usize..(upto - at) as usize]);
            pos = upto;
        }
        Some(out)
    }

    /// The longest run of fetched bytes that reaches the end of the file: its offset and
    /// bytes (the end records and central directory, after a quick check).
    pub fn cached_suffix(&self) -> (u64, Vec<u8>) {
        let size = self.size();
        let blocks = self.blocks.lock().unwrap_or_else(|e| e.into_inner());
        let mut start = size;
        loop {
            // The block that reaches furthest back while still touching `start`.
            let best = blocks
                .iter()
                .filter(|(at, data)| *at < start && at + data.len() as u64 >= start)
                .min_by_key(|(at, _)| *at);
            match best {
                Some((at, _)) => start = *at,
                None => break,
            }
        }
        let mut out = vec![0u8; (size - start) as usize];
        let mut sorted: Vec<_> = blocks.iter().filter(|(at, _)| *at >= start).collect();
        sorted.sort_by_key(|(at, _)| std::cmp::Reverse(*at));
        // Later (lower) blocks are copied last; overlapping bytes are identical anyway.
        for (at, data) in sorted {
            let from = (at - start) as usize;
            let n = data.len().min(out.len() - from);
            out[from..from + n].copy_from_slice(&data[..n]);
        }
        (start, out)
    }

    /// Fetch `start..end` with one request and keep it.
    pub fn fetch_range(&self, start: u64, end: u64) -> Result<Arc<Vec<u8>>, RemoteError> {
        self.hold(end.saturating_sub(start))?;
        if let Source::Memory(bytes) = &self.source {
            let body = bytes
                .get(start as usize..end as usize)
                .filter(|_| start < end)
                .ok_or_else(|| RemoteError::BadRange(format!("{start}-{end} is outside the file")))?
                .to_vec();
            self.requests.fetch_add(1, Ordering::Relaxed);
            self.add_fetched(body.len() as u64);
            return Ok(self.keep(start, body));
        }
        let (sent, overall) = self.check_request(end - start)?;
        let response = self.open_range(start, end)?;
        let body = self.read_body(response, end - start, sent, overall)?;
        Ok(self.keep(start, body))
    }

    /// Send a request for `start..end` and check its answer up to the headers; the body
    /// is the caller's to read (and to count with [`RemoteFile::add_fetched`]).
    pub fn open_range(&self, start: u64, end: u64) -> Result<Response, RemoteError> {
        let meta = self.meta.get().cloned().ok_or_else(|| {
            RemoteError::BadRange("the file's size is not known yet (fetch_tail first)".into())
        })?;
        if start >= end || end > meta.size {
            return Err(RemoteError::BadRange(format!(
                "{start}-{end} is outside the file's {} bytes",
                meta.size
            )));
        }
        let if_range = meta.validators.if_range().map(str::to_owned);
        let response = self.send(&format!("bytes={start}-{}", end - 1), if_range.as_deref())?;
        match response.status() {
            StatusCode::PARTIAL_CONTENT => {}
            StatusCode::OK if if_range.is_some() => return Err(RemoteError::Changed),
            StatusCode::OK => {
                return Err(RemoteError::NoRanges {
                    size: response.content_length(),
                })
            }
            StatusCode::PRECONDITION_FAILED => return Err(RemoteError::Changed),
            _ => return Err(http_status(&response)),
        }
        let got = content_range(response.headers())?;
        if got != (start, end - 1, meta.size) {
            return Err(RemoteError::BadRange(format!(
                "asked for {start}-{}/{}, got {}-{}/{}",
                end - 1,
                meta.size,
                got.0,
                got.1,
                got.2
            )));
        }
        // Each validator both answers carry must agree.
        let now = Validators::from_headers(response.headers());
        let differs =
            |a: &Option<String>, b: &Option<String>| matches!((a, b), (Some(a), Some(b)) if a != b);
        if differs(&now.etag, &meta.validators.etag)
            || differs(&now.last_modified, &meta.validators.last_modified)
        {
            return Err(RemoteError::Changed);
        }
        Ok(response)
    }

    /// A plain `GET` of the whole file, for a server without range support (`fetch`
    /// streams it): the answer up to its headers, which must be `200`; the size (when
    /// the server sends `Content-Length`) and validators are learnt from it. The body is
    /// the caller's to read (and to count with [`RemoteFile::add_fetched`]).
    pub fn open_whole(&self) -> Result<Response, RemoteError> {
        let request = self
            .client()?
            .get(&self.url)
            .header(header::ACCEPT_ENCODING, "identity");
        let response = self.dispatch(request)?;
        if response.status() != StatusCode::OK {
            return Err(http_status(&response));
        }
        if let Some(size) = response.content_length() {
            if size == 0 {
                return Err(RemoteError::Empty);
            }
            let _ = self.meta.set(Meta {
                size,
                validators: Validators::from_headers(response.headers()),
            });
        }
        Ok(response)
    }

    fn send(&self, range: &str, if_range: Option<&str>) -> Result<Response, RemoteError> {
        let mut request = self
            .client()?
            .get(&self.url)
            .header(header::RANGE, range)
            .header(header::ACCEPT_ENCODING, "identity");
        if let Some(v) = if_range {
            request = request.header(header::IF_RANGE, v);
        }
        self.dispatch(request)
    }

    fn client(&self) -> Result<&Client, RemoteError> {
        match &self.source {
            Source::Http(client) => Ok(client),
            Source::Memory(_) => Err(RemoteError::Client(
                "a file in memory has no HTTP answers".into(),
            )),
        }
    }

    /// Send `request`, counting it and its headers' bytes.
    fn dispatch(
        &self,
        request: reqwest::blocking::RequestBuilder,
    ) -> Result<Response, RemoteError> {
        self.requests.fetch_add(1, Ordering::Relaxed);
        let response = request.send().map_err(|e| {
            if e.is_redirect() {
                RemoteError::Redirect(error_chain(&e))
            } else if e.is_timeout() {
                RemoteError::Network(format!(
                    "no answer within {:.1} s",
                    self.timeout.as_secs_f64()
                ))
            } else {
                RemoteError::Network(error_chain(&e))
            }
        })?;
        self.add_fetched(header_bytes(&response));
        Ok(response)
    }

    /// Read exactly `len` bytes of `response`'s body, by the total deadline of a request
    /// sent at `sent` ([`RemoteFile::deadline`]) and the check deadline `overall`
    /// ([`CHECK_TIMEOUTS`]). Each read waits at most the stall timeout, so the deadlines
    /// are checked at least that often.
    fn read_body(
        &self,
        response: Response,
        len: u64,
        sent: Instant,
        overall: Instant,
    ) -> Result<Vec<u8>, RemoteError> {
        if let Some(n) = response.content_length() {
            if n != len {
                return Err(RemoteError::BadRange(format!(
                    "a {len}-byte range came with Content-Length {n}"
                )));
            }
        }
        let deadline = self.deadline(sent, len);
        let mut body = Vec::with_capacity(len as usize);
        let mut reader = response.take(len);
        let mut buf = [0u8; 16 << 10];
        let broken = |got: usize, reason: String| RemoteError::BrokenOff {
            got: got as u64,
            want: len,
            reason,
        };
        while (body.len() as u64) < len {
            let now = Instant::now();
            if now > deadline {
                return Err(broken(
                    body.len(),
                    format!(
                        "not complete within {:.1} s (the timeout plus {} KiB/s)",
                        deadline.duration_since(sent).as_secs_f64(),
                        MIN_CHECK_RATE >> 10
                    ),
                ));
            }
            if now > overall {
                return Err(self.too_slow_overall());
            }
            match reader.read(&mut buf) {
                Ok(0) => return Err(broken(body.len(), "the connection closed".into())),
                Ok(n) => {
                    body.extend_from_slice(&buf[..n]);
                    self.add_fetched(n as u64);
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(broken(body.len(), io_error_chain(&e))),
            }
        }
        Ok(body)
    }

    fn keep(&self, start: u64, body: Vec<u8>) -> Arc<Vec<u8>> {
        let body = Arc::new(body);
        self.blocks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((start, Arc::clone(&body)));
        body
    }
}

/// The download rule: at least `min_rate` bytes a second, averaged over each whole
/// `window` (consecutive windows, from the first byte asked for). Bytes are counted as
/// they arrive; the verdict is given when a window closes, so a slow start or a short
/// pause inside an otherwise fast window is never judged.
#[derive(Debug, Clone)]
pub struct Throughput {
    window: Duration,
    min_rate: u64,
    window_start: Instant,
    window_bytes: u64,
}

impl Throughput {
    pub fn new(window: Duration, min_rate: u64) -> Throughput {
        Throughput {
            window,
            min_rate,
            window_start: Instant::now(),
            window_bytes: 0,
        }
    }

    /// Count `n` bytes that just arrived (0 for a read that brought none); an error once
    /// the window that just closed brought too few.
    pub fn record(&mut self, n: u64) -> Result<(), RemoteError> {
        self.window_bytes += n;
        let elapsed = self.window_start.elapsed();
        if elapsed < self.window {
            return Ok(());
        }
        let wanted = self.min_rate as f64 * elapsed.as_secs_f64();
        if (self.window_bytes as f64) < wanted {
            return Err(RemoteError::TooSlow {
                got: self.window_bytes,
                secs: elapsed.as_secs(),
                min_rate: self.min_rate,
            });
        }
        self.window_start = Instant::now();
        self.window_bytes = 0;
        Ok(())
    }
}

/// A download body under [`Throughput`]'s rule ([`RemoteFile::watched`]).
pub struct Watched<R> {
    inner: R,
    rule: Throughput,
}

impl<R: Read> Read for Watched<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        // A clean end (0) is the caller's to judge against the length it expected.
        if n > 0 {
            self.rule
                .record(n as u64)
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::TimedOut, e))?;
        }
        Ok(n)
    }
}

/// How long `len` bytes take at [`MIN_CHECK_RATE`].
fn at_check_rate(len: u64) -> Duration {
    Duration::from_secs_f64(len as f64 / MIN_CHECK_RATE as f64)
}

/// `Content-Range: bytes START-END/SIZE` (a `*` size is refused: we need the size).
fn content_range(headers: &HeaderMap) -> Result<(u64, u64, u64), RemoteError> {
    let raw = headers
        .get(header::CONTENT_RANGE)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| RemoteError::BadRange("no Content-Range".into()))?;
    let bad = || RemoteError::BadRange(format!("Content-Range {raw:?}"));
    let rest = raw.trim().strip_prefix("bytes ").ok_or_else(bad)?;
    let (range, size) = rest.split_once('/').ok_or_else(bad)?;
    let (start, end) = range.split_once('-').ok_or_else(bad)?;
    let num = |s: &str| s.trim().parse::<u64>().map_err(|_| bad());
    let (start, end, size) = (num(start)?, num(end)?, num(size)?);
    if start > end || end >= size {
        return Err(bad());
    }
    Ok((start, end, size))
}

fn http_status(response: &Response) -> RemoteError {
    let status = response.status();
    RemoteError::HttpStatus(match status.canonical_reason() {
        Some(reason) => format!("{} {reason}", status.as_u16()),
        None => status.as_u16().to_string(),
    })
}

/// The size of a status line and header block as sent (HTTP/1.1 framing).
fn header_bytes(response: &Response) -> u64 {
    let status_line =
        "HTTP/1.1 000 ".len() + response.status().canonical_reason().unwrap_or("").len() + 2;
    let headers: usize = response
        .headers()
        .iter()
        .map(|(name, value)| name.as_str().len() + 2 + value.len() + 2)
        .sum();
    (status_line + headers + 2) as u64
}

pub(crate) fn io_error_chain(e: &std::io::Error) -> String {
    match e.get_ref() {
        Some(inner) => error_chain(inner),
        None => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_range_parses_and_refuses_nonsense() {
        let mut h = HeaderMap::new();
        h.insert(header::CONTENT_RANGE, "bytes 10-19/100".parse().unwrap());
        assert_eq!(content_range(&h).unwrap(), (10, 19, 100));
        for bad in [
            "bytes 10-19/*",
            "bytes 20-10/100",
            "bytes 0-100/100",
            "items 0-1/2",
        ] {
            h.insert(header::CONTENT_RANGE, bad.parse().unwrap());
            assert!(content_range(&h).is_err(), "{bad}");
        }
    }

    #[test]
    fn validators_prefer_strong_etags() {
        let v = Validators {
            etag: Some("W/\"x\"".into()),
            last_modified: Some("Tue, 01 Jul 2025 00:00:00 GMT".into()),
        };
        assert_eq!(v.if_range(), v.last_modified.as_deref());
        let strong = Validators {
            etag: Some("\"x\"".into()),
            last_modified: None,
        };
        assert_eq!(strong.if_range(), Some("\"x\""));
        assert!(strong.same_version(&strong.clone()));
        assert!(!Validators::default().same_version(&Validators::default()));
    }

    #[test]
    fn the_download_rule_judges_whole_windows_only() {
        // A window that has not closed is never judged, however little came.
        let mut open = Throughput::new(Duration::from_secs(3600), MIN_DOWNLOAD_RATE);
        for _ in 0..1000 {
            assert!(open.record(1).is_ok());
        }
        // A closed window (zero long: every record closes one) below the rate fails,
        // naming the rule; at or above it, passes and starts a new window.
        let mut closed = Throughput::new(Duration::ZERO, u64::MAX);
        match closed.record(10) {
            Err(RemoteError::TooSlow { got, min_rate, .. }) => {
                assert_eq!((got, min_rate), (10, u64::MAX));
            }
            other => panic!("{other:?}"),
        }
        let mut free = Throughput::new(Duration::ZERO, 0);
        assert!(free.record(0).is_ok() && free.record(1).is_ok());
        let e = RemoteError::TooSlow {
            got: 9,
            secs: 30,
            min_rate: MIN_DOWNLOAD_RATE,
        };
        assert!(e.is_transient(), "a slow download resumes");
        assert_eq!(
            e.to_string(),
            "too slow: 9 bytes in the last 30 s, below the minimum of 8 KiB/s"
        );
    }

    #[test]
    fn a_watched_body_fails_its_read_with_the_rule_inside() {
        let mut watched = Watched {
            inner: &b"abc"[..],
            rule: Throughput::new(Duration::ZERO, u64::MAX),
        };
        let e = watched.read(&mut [0u8; 8]).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::TimedOut);
        assert!(io_error_chain(&e).starts_with("too slow: 3 bytes"), "{e}");
        // The end of a body is passed on as it is.
        let mut done = Watched {
            inner: &b""[..],
            rule: Throughput::new(Duration::ZERO, u64::MAX),
        };
        assert_eq!(done.read(&mut [0u8; 8]).unwrap(), 0);
    }

    #[test]
    fn windows_and_deadlines_follow_the_timeout() {
        let remote = RemoteFile::new("http://127.0.0.1:9/x", Duration::from_secs(10)).unwrap();
        assert_eq!(remote.download_window(), Duration::from_secs(30));
        let quick = RemoteFile::new("http://127.0.0.1:9/x", Duration::from_millis(100)).unwrap();
        assert_eq!(quick.download_window(), MIN_DOWNLOAD_WINDOW);
        let sent = Instant::now();
        assert_eq!(
            remote.deadline(sent, 2 * MIN_CHECK_RATE),
            sent + Duration::from_secs(12)
        );
        // The check deadline: four timeouts, plus the bytes of every request.
        assert_eq!(
            remote.check_allowance(2 * MIN_CHECK_RATE),
            Duration::from_secs(42)
        );
    }

    #[test]
    fn a_check_past_its_deadline_refuses_its_next_request() {
        // A 1 ms timeout: the check may take 4 ms plus its bytes at 32 KiB/s.
        let remote =
            RemoteFile::new("http://127.0.0.1:9/x.ipsw", Duration::from_millis(1)).unwrap();
        let (sent, overall) = remote.check_request(0).unwrap();
        assert_eq!(overall, sent + Duration::from_millis(4));
        std::thread::sleep(Duration::from_millis(20));
        let e = remote.check_request(MIN_CHECK_RATE).unwrap_err();
        assert!(
            matches!(e, RemoteError::TooSlowOverall { asked: 0, .. }),
            "{e:?}"
        );
        assert!(!e.is_transient());
        let message = e.to_string();
        assert!(
            message.starts_with("the server was too slow overall: 0 requests for 0 bytes")
                && message
                    .contains("than the 0.0 s one check may take (4 × the timeout, plus 32 KiB/s)"),
            "{message}"
        );
        // Bytes asked for buy time at the same rate: 1 MiB is 32 s more.
        let remote =
            RemoteFile::new("http://127.0.0.1:9/x.ipsw", Duration::from_millis(1)).unwrap();
        let (sent, overall) = remote.check_request(1 << 20).unwrap();
        assert_eq!(overall, sent + Duration::from_millis(32_004));
        std::thread::sleep(Duration::from_millis(20));
        assert!(remote.check_request(0).is_ok());
    }

    #[test]
    fn urls_are_recognized() {
        assert!(is_url("https://updates.cdn-apple.com/x.ipsw"));
        assert!(is_url("HTTP://127.0.0.1:8/x"));
        assert!(!is_url("x.ipsw"));
        assert!(!is_url("ftp://x"));
    }
}
