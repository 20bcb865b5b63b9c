//! The one HTTP client behind every signing request: rustls with verification always on,
//! a deadline for the whole query, a few retries for network failures, a size cap.
//!
//! - There is deliberately no way to turn certificate verification off. Peers do it when
//!   gs.apple.com "does not work", which lets any hosts-file redirect or interception proxy
//!   forge a signing answer.
//! - `timeout` bounds the whole query: each attempt gets what is left of it, so a server
//!   that never answers costs one timeout, not three.
//! - Retries (at most two) only follow a failure to connect or a timeout — a transient
//!   network problem. An HTTP answer, whatever its status, is the server's word and is
//!   never retried.
//! - Bodies are read to at most [`MAX_BODY`] bytes: a broken or hostile server cannot make
//!   us allocate without bound.
//! - Trust: the platform's roots plus Apple's own roots, which gs.apple.com needs and the
//!   Mozilla/Debian stores lack (FIRMWARE.md §4; see `tls.rs`), plus the user's
//!   `--ca-file`. A certificate the verifier refuses is reported as exactly that,
//!   "<host>'s certificate was not trusted: <reason>", never as a network failure, and is
//!   not retried.
//! - Redirects: at most [`MAX_REDIRECTS`], and only to the scheme of the URL given: never
//!   from https to plain http (that would hand the answer to anyone on the path). Plain
//!   http is only ever used when the user gave an http URL. The remote file client
//!   (`remote/client.rs`) is built by the same [`client_builder`]: one policy, one trust.

use std::io::Read;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::{tls, SigningError};

/// The largest answer we read. Real TSS answers are a few KiB and an ipsw.me device page a
/// few hundred KiB.
pub(crate) const MAX_BODY: u64 = 8 * 1024 * 1024;
/// Retries after the first attempt, network failures only.
const MAX_RETRIES: u32 = 2;
/// Pause before retry n is `RETRY_PAUSE * n` (bounded by the time left).
const RETRY_PAUSE: Duration = Duration::from_millis(150);
/// Redirects followed in one request. TSS and ipsw.me answer directly; a few hops cover
/// a moved endpoint, more is a loop.
pub(crate) const MAX_REDIRECTS: usize = 5;

/// The most bytes of network answers held in memory at once by the whole process: TSS
/// and ipsw.me bodies, and a remote file's fetched tail, directory and manifests
/// (`remote/client.rs`). Each exchange has its own cap (8 MiB a signing answer, 32 MiB a
/// remote directory); this one is for their sum. `scan` runs eight remote checks, and a
/// check up to eight TSS queries, at once: eight hostile answers just under their caps
/// would otherwise add up to 256 MiB and more, against a goal of 100 MB for the whole
/// process. Honest answers are tiny beside it (a TSS answer a few KiB, a device page a
/// few hundred, a remote check's reads about 1 MiB), so only hostile ones ever meet it.
pub(crate) const MAX_HELD_BYTES: u64 = 48 << 20;

/// Bytes counted against [`MAX_HELD_BYTES`] now.
static HELD_BYTES: AtomicU64 = AtomicU64::new(0);

/// Bytes of network answers held in memory, counted against [`MAX_HELD_BYTES`] (with
/// every other `Held` of the process) until it is dropped.
#[derive(Debug, Default)]
pub(crate) struct Held {
    bytes: u64,
}

/// The budget cannot hold `want` more bytes: `in_use` are held already.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct OverBudget {
    pub want: u64,
    pub in_use: u64,
}

impl std::fmt::Display for OverBudget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} more bytes would exceed ipswcheck's {} MiB budget for network answers held \
             in memory at once ({} in use)",
            self.want,
            MAX_HELD_BYTES >> 20,
            self.in_use
        )
    }
}

impl Held {
    /// Count `n` more bytes, unless that would take the process past
    /// [`MAX_HELD_BYTES`] (then nothing is counted).
    pub fn grow(&mut self, n: u64) -> Result<(), OverBudget> {
        let mut now = HELD_BYTES.load(Ordering::Relaxed);
        loop {
            let next = now
                .checked_add(n)
                .filter(|&v| v <= MAX_HELD_BYTES)
                .ok_or(OverBudget {
                    want: n,
                    in_use: now,
                })?;
            match HELD_BYTES.compare_exchange_weak(now, next, Ordering::AcqRel, Ordering::Relaxed) {
                Ok(_) => break,
                Err(current) => now = current,
            }
        }
        self.bytes += n;
        Ok(())
    }

    /// Bytes this one holds.
    #[cfg(test)]
    pub fn bytes(&self) -> u64 {
        self.bytes
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        HELD_BYTES.fetch_sub(self.bytes, Ordering::AcqRel);
    }
}

/// An HTTP answer: any status, the (capped) body, and how long it took.
#[derive(Debug)]
pub(crate) struct HttpAnswer {
    pub status: u16,
    pub body: Vec<u8>,
    pub elapsed: Duration,
    /// The body's bytes, counted against [`MAX_HELD_BYTES`] while the answer lives
    /// (given back when it is dropped).
    pub _held: Held,
}

pub(crate) struct Http {
    client: reqwest::blocking::Client,
}

impl Http {
    /// `direct`: ignore proxy variables (used when every endpoint is on loopback).
    /// `ca_file`: a PEM file of extra roots (`--ca-file`), trusted besides the platform's
    /// roots and Apple's (see `tls.rs`).
    pub fn new(direct: bool, ca_file: Option<&Path>) -> Result<Self, SigningError> {
        let client = client_builder(direct, ca_file)
            .and_then(|b| b.build().map_err(|e| error_chain(&e)))
            .map_err(SigningError::Client)?;
        Ok(Http { client })
    }

    /// GET `url`.
    pub fn get(
        &self,
        url: &str,
        headers: &[(&str, &str)],
        timeout: Duration,
    ) -> Result<HttpAnswer, SigningError> {
        self.send(url, None, headers, timeout)
    }

    /// POST `body` to `url`.
    pub fn post(
        &self,
        url: &str,
        body: &[u8],
        headers: &[(&str, &str)],
        timeout: Duration,
    ) -> Result<HttpAnswer, SigningError> {
        self.send(url, Some(body), headers, timeout)
    }

    fn send(
        &self,
        url: &str,
        body: Option<&[u8]>,
        headers: &[(&str, &str)],
        timeout: Duration,
    ) -> Result<HttpAnswer, SigningError> {
        let start = Instant::now();
        let deadline = start + timeout;
        let mut last_error = None;
        for attempt in 0..=MAX_RETRIES {
            if attempt > 0 {
                let left = deadline.saturating_duration_since(Instant::now());
                std::thread::sleep((RETRY_PAUSE * attempt).min(left));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            let mut request = match body {
                Some(body) => self.client.post(url).body(body.to_vec()),
                None => self.client.get(url),
            };
            for (name, value) in headers {
                request = request.header(*name, *value);
            }
            match request.timeout(left).send() {
                Ok(response) => return read_answer(url, response, start, timeout),
                // The server's certificate or a redirect was refused: asking again
                // gets the same answer.
                Err(e) if untrusted_certificate(&e).is_some() || e.is_redirect() => {
                    return Err(refusal(url, &e));
                }
                Err(e) => {
                    let transient = e.is_connect() || e.is_timeout();
                    last_error = Some(e);
                    if !transient {
                        break;
                    }
                }
            }
        }
        Err(SigningError::Network {
            url: url.to_owned(),
            reason: match last_error {
                Some(e) if e.is_timeout() => no_answer_within(timeout),
                Some(e) => error_chain(&e),
                None => no_answer_within(timeout),
            },
        })
    }
}

fn read_answer(
    url: &str,
    response: reqwest::blocking::Response,
    start: Instant,
    timeout: Duration,
) -> Result<HttpAnswer, SigningError> {
    let status = response.status().as_u16();
    let too_large = || SigningError::TooLarge {
        url: url.to_owned(),
        limit: MAX_BODY,
    };
    let declared = response.content_length();
    if declared.is_some_and(|n| n > MAX_BODY) {
        return Err(too_large());
    }
    let failed = |reason: String| SigningError::Network {
        url: url.to_owned(),
        reason,
    };
    // Read in chunks, each counted against the process-wide budget before it is kept.
    let mut held = Held::default();
    let mut body = Vec::with_capacity(declared.unwrap_or(0).min(MAX_BODY) as usize);
    let mut chunk = vec![0u8; 64 << 10];
    let mut reader = response.take(MAX_BODY + 1);
    loop {
        // The request's timeout still runs while the body streams in.
        let n = match reader.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) if is_timeout(&e) => return Err(failed(no_answer_within(timeout))),
            Err(e) => {
                return Err(failed(format!(
                    "the answer broke off: {}",
                    io_error_chain(&e)
                )))
            }
        };
        if (body.len() + n) as u64 > MAX_BODY {
            return Err(too_large());
        }
        held.grow(n as u64).map_err(|e| failed(e.to_string()))?;
        body.extend_from_slice(&chunk[..n]);
    }
    Ok(HttpAnswer {
        status,
        body,
        elapsed: start.elapsed(),
        _held: held,
    })
}

/// The builder of every HTTP client of ipswcheck — signing queries (TSS, ipsw.me) and
/// remote files (`ipswcheck URL`, `fetch`): one trust store and one redirect policy.
///
/// Trust: the platform's roots plus Apple's and the user's `--ca-file` (`tls.rs`);
/// reqwest hands both to rustls-platform-verifier (`Verifier::new_with_extra_roots`).
/// Verification itself is never configurable. `direct`: ignore proxy variables (every
/// endpoint is on loopback, which no proxy can reach). The error is one line.
pub(crate) fn client_builder(
    direct: bool,
    ca_file: Option<&Path>,
) -> Result<reqwest::blocking::ClientBuilder, String> {
    let mut anchors = Vec::new();
    for der in tls::extra_roots(ca_file).map_err(|e| e.to_string())? {
        anchors.push(reqwest::Certificate::from_der(&der).map_err(|e| error_chain(&e))?);
    }
    let mut builder = reqwest::blocking::Client::builder()
        .tls_certs_merge(anchors)
        .redirect(redirect_policy());
    if direct {
        builder = builder.no_proxy();
    }
    Ok(builder)
}

/// The redirect policy of every request: at most [`MAX_REDIRECTS`] hops, each to the
/// scheme of the URL the user gave. Never from https to plain http: that would hand the
/// request and its answer to anyone on the path (and a forged "signed" or a forged file
/// with it). Not from http to https either: the user chose the scheme, and an https URL
/// given directly is the one that is checked end to end.
fn redirect_policy() -> reqwest::redirect::Policy {
    reqwest::redirect::Policy::custom(|attempt| {
        let given = attempt
            .previous()
            .first()
            .map(|u| u.scheme().to_owned())
            .unwrap_or_default();
        if attempt.url().scheme() != given {
            let from = attempt
                .previous()
                .last()
                .map(ToString::to_string)
                .unwrap_or_default();
            let why = if given == "https" {
                "ipswcheck never follows a redirect from https to plain http"
            } else {
                "ipswcheck follows redirects only within the scheme of the URL given \
                 (give the https URL instead)"
            };
            let message = format!("refused a redirect from {from} to {}: {why}", attempt.url());
            attempt.error(message)
        } else if attempt.previous().len() > MAX_REDIRECTS {
            let first = attempt
                .previous()
                .first()
                .map(ToString::to_string)
                .unwrap_or_default();
            let message = format!(
                "{first} redirected more than {MAX_REDIRECTS} times (the last time to {}); \
                 giving up",
                attempt.url()
            );
            attempt.error(message)
        } else {
            attempt.follow()
        }
    })
}

/// The rustls error of a certificate the verifier refused, anywhere in `e`'s sources.
///
/// The handshake error reaches us as an `io::Error` wrapping an `io::Error` wrapping
/// `rustls::Error`; an `io::Error`'s `source()` skips the error it wraps, so each one is
/// opened with `get_ref` instead.
pub(crate) fn untrusted_certificate<'a>(
    e: &'a (dyn std::error::Error + 'static),
) -> Option<&'a rustls::Error> {
    let mut next = Some(e);
    while let Some(err) = next {
        if let Some(tls) = err.downcast_ref::<rustls::Error>() {
            return Some(tls).filter(|tls| is_certificate_error(tls));
        }
        next = match err.downcast_ref::<std::io::Error>() {
            Some(io) => match io.get_ref() {
                Some(inner) => Some(inner as &(dyn std::error::Error + 'static)),
                None => err.source(),
            },
            None => err.source(),
        };
    }
    None
}

/// Whether a rustls error is about the peer's certificate (as opposed to, say, a
/// protocol error or an unexpected message).
fn is_certificate_error(e: &rustls::Error) -> bool {
    matches!(
        e,
        rustls::Error::InvalidCertificate(_) | rustls::Error::NoCertificatesPresented
    )
}

/// A refused certificate or redirect, in words: `"<host>'s certificate was not trusted:
/// <rustls reason>"`, or the redirect policy's reason.
fn refusal(url: &str, e: &reqwest::Error) -> SigningError {
    if let Some(tls) = untrusted_certificate(e) {
        // The host whose certificate it was: after a redirect, not necessarily `url`'s.
        let host = e
            .url()
            .and_then(|u| u.host_str().map(str::to_owned))
            .or_else(|| {
                reqwest::Url::parse(url)
                    .ok()
                    .and_then(|u| u.host_str().map(str::to_owned))
            })
            .unwrap_or_else(|| url.to_owned());
        return SigningError::Untrusted {
            host,
            reason: tls.to_string(),
        };
    }
    SigningError::Redirect {
        url: url.to_owned(),
        reason: error_chain(e),
    }
}

/// A body read that ran out of time: reqwest reports it as an `io::Error` wrapping its
/// own timeout error, not always with the `TimedOut` kind.
fn is_timeout(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::TimedOut
        || e.get_ref()
            .and_then(|inner| inner.downcast_ref::<reqwest::Error>())
            .is_some_and(reqwest::Error::is_timeout)
}

fn no_answer_within(timeout: Duration) -> String {
    format!("no answer within {:.1} s", timeout.as_secs_f64())
}

/// reqwest's own message is "error sending request for url (…)"; the useful part
/// ("Connection refused", "invalid peer certificate: UnknownIssuer") is in its sources.
pub(crate) fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut next = e.source();
    while let Some(err) = next {
        let text = err.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        next = err.source();
    }
    if parts.is_empty() {
        e.to_string()
    } else {
        parts.join(": ")
    }
}

fn io_error_chain(e: &std::io::Error) -> String {
    match e.get_ref() {
        Some(inner) => error_chain(inner),
        None => e.to_string(),
    }
}

/// Whether `url`'s host is this machine's loopback (`localhost`, `127.x.x.x`, `[::1]`).
pub(crate) fn is_loopback_url(url: &str) -> bool {
    reqwest::Url::parse(url).is_ok_and(|url| is_loopback(&url))
}

/// Whether `url` names this machine (`localhost`, 127.0.0.0/8, `[::1]`).
pub(crate) fn is_loopback(url: &reqwest::Url) -> bool {
    let Some(host) = url.host_str() else {
        return false;
    };
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || bare
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What reqwest hands us for a refused certificate: io::Error(Other) around
    /// io::Error(InvalidData) around the rustls error.
    fn wrapped(tls: rustls::Error) -> std::io::Error {
        std::io::Error::other(std::io::Error::new(std::io::ErrorKind::InvalidData, tls))
    }

    #[test]
    fn the_budget_counts_every_holder_and_gives_back_on_drop() {
        // Other tests of this process may hold some: measure from here, with room.
        let mut a = Held::default();
        a.grow(1 << 20).unwrap();
        let mut b = Held::default();
        let e = b.grow(MAX_HELD_BYTES).unwrap_err();
        assert_eq!(e.want, MAX_HELD_BYTES);
        assert!(e.in_use >= 1 << 20, "{e:?}");
        assert!(e.to_string().contains("48 MiB budget"), "{e}");
        assert_eq!(b.bytes(), 0, "a refused grow counts nothing");
        drop(a);
        let mut c = Held::default();
        c.grow(0).unwrap();
        assert_eq!(c.bytes(), 0);
    }

    #[test]
    fn a_refused_certificate_is_found_through_nested_io_errors() {
        let unknown = rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer);
        let e = wrapped(unknown.clone());
        assert_eq!(untrusted_certificate(&e), Some(&unknown));
        assert_eq!(
            untrusted_certificate(&e).unwrap().to_string(),
            "invalid peer certificate: UnknownIssuer"
        );
        // A TLS error that is not about the certificate, and no TLS error at all.
        let protocol = wrapped(rustls::Error::DecryptError);
        assert_eq!(untrusted_certificate(&protocol), None);
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        assert_eq!(untrusted_certificate(&refused), None);
    }

    #[test]
    fn untrusted_reads_as_the_certificate_not_the_network() {
        let e = SigningError::Untrusted {
            host: "gs.apple.com".into(),
            reason: rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer)
                .to_string(),
        };
        assert_eq!(
            e.to_string(),
            "gs.apple.com's certificate was not trusted: invalid peer certificate: UnknownIssuer"
        );
    }

    #[test]
    fn a_client_trusts_apples_roots_and_a_ca_file_and_refuses_a_bad_one() {
        assert!(Http::new(true, None).is_ok());
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("root.pem");
        std::fs::write(&good, tls::APPLE_ROOTS[2].pem).unwrap();
        assert!(Http::new(false, Some(&good)).is_ok());
        let bad = dir.path().join("bad.pem");
        std::fs::write(&bad, "not a certificate").unwrap();
        match Http::new(false, Some(&bad)) {
            Err(SigningError::Client(reason)) => {
                assert!(reason.contains("bad.pem"), "{reason}")
            }
            other => panic!("{:?}", other.err()),
        }
    }
}
