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

use std::io::Read;
use std::time::{Duration, Instant};

use super::SigningError;

/// The largest answer we read. Real TSS answers are a few KiB and an ipsw.me device page a
/// few hundred KiB.
pub(crate) const MAX_BODY: u64 = 8 * 1024 * 1024;
/// Retries after the first attempt, network failures only.
const MAX_RETRIES: u32 = 2;
/// Pause before retry n is `RETRY_PAUSE * n` (bounded by the time left).
const RETRY_PAUSE: Duration = Duration::from_millis(150);

/// An HTTP answer: any status, the (capped) body, and how long it took.
#[derive(Debug)]
pub(crate) struct HttpAnswer {
    pub status: u16,
    pub body: Vec<u8>,
    pub elapsed: Duration,
}

pub(crate) struct Http {
    client: reqwest::blocking::Client,
}

impl Http {
    /// `direct`: ignore proxy variables (used when every endpoint is on loopback).
    pub fn new(direct: bool) -> Result<Self, SigningError> {
        let mut builder = reqwest::blocking::Client::builder();
        if direct {
            builder = builder.no_proxy();
        }
        let client = builder
            .build()
            .map_err(|e| SigningError::Client(error_chain(&e)))?;
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
    if response.content_length().is_some_and(|n| n > MAX_BODY) {
        return Err(too_large());
    }
    let mut body = Vec::new();
    // The request's timeout still runs while the body streams in.
    response
        .take(MAX_BODY + 1)
        .read_to_end(&mut body)
        .map_err(|e| SigningError::Network {
            url: url.to_owned(),
            reason: if is_timeout(&e) {
                no_answer_within(timeout)
            } else {
                format!("the answer broke off: {}", io_error_chain(&e))
            },
        })?;
    if body.len() as u64 > MAX_BODY {
        return Err(too_large());
    }
    Ok(HttpAnswer {
        status,
        body,
        elapsed: start.elapsed(),
    })
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
