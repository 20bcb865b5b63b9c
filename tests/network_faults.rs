//! Network faults beyond the signing tests: servers that trickle, flood, loop, lie about
//! their identity or answer with hostile plists. Every server is on loopback, in this
//! process; nothing here touches the internet.
//!
//! Each case runs the binary against a faulty stand-in for both Apple's TSS server and
//! ipsw.me, and asserts what the README promises: signing is `unknown` (exit 31) with
//! the reason, never "signed" or "not signed", and the whole run ends within
//! `--timeout` plus one second.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::util::http::{self, Server};
use crate::util::robust::*;

/// The `--timeout` of every case, in seconds.
const TIMEOUT: f64 = 2.0;

/// Serve every connection to a fresh loopback port on its own thread with `handler`
/// (the bare connection of the one loopback server, [`Server::raw`]), until the test
/// process ends.
fn serve(handler: impl Fn(TcpStream) + Send + Sync + 'static) -> SocketAddr {
    Server::raw(handler).detach()
}

/// Read one HTTP request (head and a Content-Length body); its target.
fn read_request(stream: &mut impl Read) -> Option<String> {
    http::read_request(stream).map(|r| r.url)
}

struct Setup {
    _dir: tempfile::TempDir,
    ipsw: PathBuf,
    cache: PathBuf,
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let (ipsw, _, _) = sample(dir.path());
    let cache = dir.path().join("cache");
    Setup {
        _dir: dir,
        ipsw,
        cache,
    }
}

/// Check the sample online against `tss` and `api` (base URLs) with `--timeout`
/// [`TIMEOUT`]; the JSON report and how long the whole run took.
fn check_against(s: &Setup, tss: &str, api: &str) -> (Outcome, serde_json::Value) {
    let timeout = TIMEOUT.to_string();
    let o = run_limited(
        &[
            s.ipsw.to_str().unwrap(),
            "--device",
            "iPhone9,3",
            "--json",
            "--tss-url",
            tss,
            "--api-url",
            api,
            "--timeout",
            &timeout,
            "--cache-dir",
            s.cache.to_str().unwrap(),
            "--hosts-file",
            NO_HOSTS,
        ],
        &Limits {
            wall: Some(Duration::from_secs(30)),
            ..Limits::default()
        },
    );
    assert!(!o.stderr.contains("panicked"), "panicked: {}", o.stderr);
    let v: serde_json::Value = serde_json::from_str(&o.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}\n{}", o.stdout, o.stderr));
    (o, v)
}

/// The run said "unknown" with a reason containing `reason`, and took at most
/// `--timeout` + 1 s.
fn assert_unknown_in_time(what: &str, o: &Outcome, v: &serde_json::Value, reason: &str) {
    let signing = &v["checks"]["signing"];
    assert_eq!(o.code, Some(31), "{what}: {v:#}");
    assert_eq!(signing["status"], "unknown", "{what}");
    assert_eq!(v["verdict"], "unknown", "{what}");
    let message = signing["message"].as_str().unwrap();
    assert!(
        message.contains(reason),
        "{what}: wanted {reason:?} in {message:?}"
    );
    assert!(
        o.elapsed < Duration::from_secs_f64(TIMEOUT + 1.0),
        "{what}: took {:?} with --timeout {TIMEOUT}",
        o.elapsed
    );
    eprintln!("{what}: exit 31 in {:?}: {message}", o.elapsed);
}

fn urls(addr: SocketAddr, scheme: &str) -> (String, String) {
    (
        format!("{scheme}://{addr}/TSS/controller?action=2"),
        format!("{scheme}://{addr}/v4"),
    )
}

#[test]
fn a_server_trickling_its_body_is_cut_off_at_the_timeout() {
    let s = setup();
    let addr = serve(|mut stream| {
        if read_request(&mut stream).is_none() {
            return;
        }
        let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\nSTATUS=0");
        // One byte a second, for as long as anyone listens.
        loop {
            std::thread::sleep(Duration::from_secs(1));
            if stream.write_all(b"&").is_err() {
                return;
            }
        }
    });
    let (tss, api) = urls(addr, "http");
    let (o, v) = check_against(&s, &tss, &api);
    // "within 2.0 s", or a little less when the query started late in the shared deadline
    // (a loaded machine).
    assert_unknown_in_time("a trickled body", &o, &v, "no answer within ");
}

#[test]
fn a_server_trickling_its_headers_is_cut_off_at_the_timeout() {
    let s = setup();
    let addr = serve(|mut stream| {
        if read_request(&mut stream).is_none() {
            return;
        }
        for b in b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nSTATUS=94&" {
            if stream.write_all(&[*b]).is_err() {
                return;
            }
            std::thread::sleep(Duration::from_secs(1));
        }
    });
    let (tss, api) = urls(addr, "http");
    let (o, v) = check_against(&s, &tss, &api);
    assert_unknown_in_time("trickled headers", &o, &v, "no answer within ");
}

#[test]
fn a_huge_answer_is_refused_without_reading_it_all() {
    let s = setup();
    // Declared: 10 GB. Undeclared: bytes until the client hangs up.
    for declared in [true, false] {
        let sent = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&sent);
        let addr = serve(move |mut stream| {
            if read_request(&mut stream).is_none() {
                return;
            }
            let head: &[u8] = if declared {
                b"HTTP/1.1 200 OK\r\nContent-Length: 10000000000\r\n\r\n"
            } else {
                b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n"
            };
            let _ = stream.write_all(head);
            let chunk = vec![b'A'; 64 << 10];
            while stream.write_all(&chunk).is_ok() {
                counter.fetch_add(chunk.len(), Ordering::Relaxed);
            }
        });
        let (tss, api) = urls(addr, "http");
        let (o, v) = check_against(&s, &tss, &api);
        let what = if declared {
            "a 10 GB Content-Length"
        } else {
            "an endless body"
        };
        assert_unknown_in_time(
            what,
            &o,
            &v,
            "sent more than 8388608 bytes; refusing to read it",
        );
        // TSS and ipsw.me both read at most 8 MiB + 1 (plus what sat in socket buffers).
        let total = sent.load(Ordering::Relaxed);
        assert!(total < 64 << 20, "{what}: the server got {total} bytes out");
        eprintln!(
            "{what}: the server wrote {} KiB before the client hung up",
            total >> 10
        );
    }
}

#[test]
fn redirect_loops_end_as_unknown() {
    let s = setup();
    // /x → /x forever, and /a → /b → /a: only ever on loopback.
    for pingpong in [false, true] {
        let hops = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&hops);
        let addr = serve(move |mut stream| {
            let Some(path) = read_request(&mut stream) else {
                return;
            };
            counter.fetch_add(1, Ordering::Relaxed);
            let next = if !pingpong {
                path
            } else if path.starts_with("/a") {
                "/b".to_owned()
            } else {
                "/a".to_owned()
            };
            let _ = write!(
                stream,
                "HTTP/1.1 307 Temporary Redirect\r\nLocation: {next}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            );
        });
        let base = format!("http://{addr}/a");
        let (o, v) = check_against(&s, &base, &base);
        assert_unknown_in_time("a redirect loop", &o, &v, "redirect");
        // reqwest stops after 10 hops, for TSS and for ipsw.me; no retries.
        let n = hops.load(Ordering::Relaxed);
        assert!(n <= 2 * 11, "{n} requests");
        eprintln!("redirect loop (ping-pong {pingpong}): {n} requests");
    }
}

/// A TLS server on loopback whose certificate (for localhost and 127.0.0.1) is signed by
/// nobody: it answers "signed" to anyone who accepts it.
fn self_signed_tls() -> SocketAddr {
    use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
    let cert =
        rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(cert.signing_key.serialize_der()));
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = Arc::new(
        rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![cert.cert.der().clone()], key)
            .unwrap(),
    );
    serve(move |tcp| {
        let Ok(conn) = rustls::ServerConnection::new(Arc::clone(&config)) else {
            return;
        };
        let mut tls = rustls::StreamOwned::new(conn, tcp);
        if read_request(&mut tls).is_none() {
            return;
        }
        let body = "STATUS=0&MESSAGE=SUCCESS&REQUEST_STRING=<plist version=\"1.0\"><dict>\
                    <key>ApImg4Ticket</key><data>AAEC</data></dict></plist>";
        let _ = write!(
            tls,
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        let _ = tls.flush();
    })
}

#[test]
fn a_self_signed_certificate_is_refused_with_the_reason() {
    let s = setup();
    let addr = self_signed_tls();
    let (tss, api) = urls(addr, "https");
    let (o, v) = check_against(&s, &tss, &api);
    // The forged "signed" never gets through: the handshake fails first.
    assert_unknown_in_time("a self-signed certificate", &o, &v, "certificate");
    let message = v["checks"]["signing"]["message"].as_str().unwrap();
    assert!(
        message.contains("UnknownIssuer") || message.contains("unknown issuer"),
        "{message}"
    );
    // https://localhost too (the name matches; the issuer still does not).
    let (tss, api) = (
        format!("https://localhost:{}/TSS/controller?action=2", addr.port()),
        format!("https://localhost:{}/v4", addr.port()),
    );
    let (o, v) = check_against(&s, &tss, &api);
    assert_unknown_in_time(
        "a self-signed certificate for localhost",
        &o,
        &v,
        "certificate",
    );
}

#[test]
fn hostile_answers_cannot_exhaust_the_stack() {
    let s = setup();
    // STATUS=0 with a "ticket" plist nesting 500,000 arrays (7.5 MB, under the body cap):
    // dropping such a value recursively would overflow the signing thread's stack.
    let depth = 500_000;
    let tss_body = format!(
        "STATUS=0&MESSAGE=SUCCESS&REQUEST_STRING=<plist version=\"1.0\">{}{}</plist>",
        "<array>".repeat(depth),
        "</array>".repeat(depth)
    );
    // And ipsw.me answering with 1,000,000 nested JSON arrays.
    let json_body = "[".repeat(1_000_000);
    let tss_body = Arc::new(tss_body);
    let json_body = Arc::new(json_body);
    let addr = serve(move |mut stream| {
        let Some(path) = read_request(&mut stream) else {
            return;
        };
        let body: &str = if path.starts_with("/TSS") {
            &tss_body
        } else {
            &json_body
        };
        let _ = write!(
            stream,
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
    });
    let (tss, api) = urls(addr, "http");
    let (o, v) = check_against(&s, &tss, &api);
    assert_unknown_in_time("a 500,000-deep ticket", &o, &v, "more than 64 deep");
    assert!(v["checks"]["signing"]["ipswme_signed"].is_null());
}

/// A loopback TSS that refuses every build (STATUS=94), counting requests.
fn refusing_server(count: Arc<AtomicUsize>) -> SocketAddr {
    serve(move |mut stream| {
        while let Some(path) = read_request(&mut stream) {
            let body: &[u8] = if path.starts_with("/TSS") {
                count.fetch_add(1, Ordering::SeqCst);
                b"STATUS=94&MESSAGE=This device isn't eligible for the requested build."
            } else {
                b"{}"
            };
            let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len());
            if stream.write_all(head.as_bytes()).is_err() || stream.write_all(body).is_err() {
                return;
            }
        }
    })
}

fn ten_thousand(dir: &Path) -> PathBuf {
    let (items, manifest) = sample_manifest(dir);
    let path = dir.join("many.ipsw");
    std::fs::write(&path, ten_thousand_identities(&items, &manifest)).unwrap();
    path
}

/// How long the offline check of `path` takes: the local work (an 18 MB manifest to
/// parse) that `--timeout` does not cover.
fn offline_time(path: &Path) -> Duration {
    let o = run_limited(
        &[
            path.to_str().unwrap(),
            "--offline",
            "--hosts-file",
            NO_HOSTS,
        ],
        &Limits::default(),
    );
    o.assert_code("offline", 0);
    o.elapsed
}

#[test]
fn ten_thousand_identities_ask_apple_a_bounded_number_of_questions() {
    let dir = tempfile::tempdir().unwrap();
    let path = ten_thousand(dir.path());
    let size = std::fs::metadata(&path).unwrap().len();
    let local = offline_time(&path);
    // Without --device every customer identity is asked about: 3,334 distinct Erase
    // identities here. At most 64 are asked, 8 at a time, within one timeout; under an
    // address-space limit too (thread stacks count), where 3,334 threads could not
    // even be created.
    for limit in [None, Some(size + (400 << 20))] {
        let count = Arc::new(AtomicUsize::new(0));
        let addr = refusing_server(Arc::clone(&count));
        let (tss, api) = urls(addr, "http");
        let cache = dir.path().join("cache");
        let o = run_limited(
            &[
                path.to_str().unwrap(),
                "--json",
                "--tss-url",
                &tss,
                "--api-url",
                &api,
                "--timeout",
                "5",
                "--cache-dir",
                cache.to_str().unwrap(),
                "--refresh",
                "--hosts-file",
                NO_HOSTS,
            ],
            &Limits {
                wall: Some(Duration::from_secs(60)),
                address_space: limit,
                ..Limits::default()
            },
        );
        assert!(!o.stderr.contains("panicked"), "{}", o.stderr);
        let v: serde_json::Value = serde_json::from_str(&o.stdout).unwrap();
        let asked = count.load(Ordering::SeqCst);
        assert_eq!(o.code, Some(30), "{v:#}");
        assert_eq!(asked, 64, "TSS requests");
        let message = v["checks"]["signing"]["message"].as_str().unwrap();
        assert!(message.len() < 2000, "{} bytes of message", message.len());
        assert!(
            o.elapsed < local + Duration::from_secs(6),
            "{:?} (offline {local:?})",
            o.elapsed
        );
        eprintln!(
            "10,000 identities online (limit {:?} MB): {asked} TSS requests, exit 30 in {:?} (offline {local:?})",
            limit.map(|l| l >> 20),
            o.elapsed
        );
    }
}

#[test]
fn a_silent_server_costs_one_timeout_even_for_many_identities() {
    let dir = tempfile::tempdir().unwrap();
    let path = ten_thousand(dir.path());
    let local = offline_time(&path);
    // Accepts and never answers.
    let addr = serve(|mut stream| {
        let _ = read_request(&mut stream);
        std::thread::sleep(Duration::from_secs(60));
    });
    let (tss, api) = urls(addr, "http");
    let cache = dir.path().join("cache");
    let o = run_limited(
        &[
            path.to_str().unwrap(),
            "--json",
            "--tss-url",
            &tss,
            "--api-url",
            &api,
            "--timeout",
            "2",
            "--cache-dir",
            cache.to_str().unwrap(),
            "--hosts-file",
            NO_HOSTS,
        ],
        &Limits {
            wall: Some(Duration::from_secs(60)),
            ..Limits::default()
        },
    );
    let v: serde_json::Value = serde_json::from_str(&o.stdout).unwrap();
    assert_eq!(o.code, Some(31), "{v:#}");
    // 64 questions, 8 at a time, all sharing one 2 s deadline: not 16 s. What comes on
    // top of the offline run is the timeout plus a few seconds of a loaded machine (the
    // offline run was timed at another moment).
    assert!(
        o.elapsed < local + Duration::from_secs(6),
        "{:?} (offline {local:?})",
        o.elapsed
    );
    let message = v["checks"]["signing"]["message"].as_str().unwrap();
    assert!(message.contains("no answer within"), "{message}");
    eprintln!(
        "silent server, 10,000 identities: exit 31 in {:?} (offline {local:?})",
        o.elapsed
    );
}
