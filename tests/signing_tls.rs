//! TLS trust of the signing client, through the binary: extra roots (`--ca-file`,
//! `IPSWCHECK_CA_FILE`), refused certificates reported as such (check and `doctor`),
//! redirects (never https → http, at most 5), and bad root files as usage errors.
//!
//! Every server is an in-process HTTPS server on 127.0.0.1 whose certificate is made here
//! by rcgen under a test-only root CA; nothing touches the internet. Every run gets its
//! own cache directory and a temporary HOME/XDG_CACHE_HOME, so the real ~/.cache is never
//! read or written.

use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::util::http::{ReadWrite, ServerCert, TestCa};

/// Apple's answer when it signs: a ticket in a `STATUS=0` answer.
const SIGNED_BODY: &str = "STATUS=0&MESSAGE=SUCCESS&REQUEST_STRING=<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
<!DOCTYPE plist PUBLIC \"-//Apple//DTD PLIST 1.0//EN\" \"http://www.apple.com/DTDs/PropertyList-1.0.dtd\">\n\
<plist version=\"1.0\">\n<dict>\n\t<key>ApImg4Ticket</key>\n\t<data>MIIKbDADFgFJMIIKYw==</data>\n</dict>\n</plist>\n";

/// What a test server answers to a request for a path: status, extra headers, body.
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Answer {
    fn signed() -> Answer {
        Answer {
            status: 200,
            headers: Vec::new(),
            body: SIGNED_BODY.to_owned(),
        }
    }

    fn redirect(location: &str) -> Answer {
        Answer {
            status: 307,
            headers: vec![("Location".to_owned(), location.to_owned())],
            body: String::new(),
        }
    }
}

/// A server on a fresh loopback port: every connection on its own thread; `connections`
/// counts accepted connections, `requests` complete requests.
struct Server {
    addr: SocketAddr,
    connections: Arc<AtomicUsize>,
    requests: Arc<AtomicUsize>,
}

impl Server {
    /// HTTPS with `cert`, answering every request with `answer(path)`.
    fn https(cert: ServerCert, answer: impl Fn(&str) -> Answer + Send + Sync + 'static) -> Server {
        let config = crate::util::http::tls_config(cert);
        Server::start(
            move |tcp, answer_with: &dyn Fn(&mut dyn ReadWrite)| {
                let Ok(conn) = rustls::ServerConnection::new(Arc::clone(&config)) else {
                    return;
                };
                let mut tls = rustls::StreamOwned::new(conn, tcp);
                answer_with(&mut tls);
            },
            answer,
        )
    }

    /// Plain HTTP, answering every request with `answer(path)`.
    fn http(answer: impl Fn(&str) -> Answer + Send + Sync + 'static) -> Server {
        Server::start(
            |mut tcp, answer_with: &dyn Fn(&mut dyn ReadWrite)| answer_with(&mut tcp),
            answer,
        )
    }

    fn start(
        wrap: impl Fn(TcpStream, &dyn Fn(&mut dyn ReadWrite)) + Send + Sync + 'static,
        answer: impl Fn(&str) -> Answer + Send + Sync + 'static,
    ) -> Server {
        let connections = Arc::new(AtomicUsize::new(0));
        let requests = Arc::new(AtomicUsize::new(0));
        // The tests' one loopback server, given each bare connection (on its own thread);
        // it lives until the test process ends.
        let addr = {
            let (connections, requests) = (Arc::clone(&connections), Arc::clone(&requests));
            crate::util::http::Server::raw(move |tcp| {
                connections.fetch_add(1, Ordering::SeqCst);
                let _ = tcp.set_read_timeout(Some(Duration::from_secs(10)));
                wrap(tcp, &|stream: &mut dyn ReadWrite| {
                    let Some(path) = read_request(stream) else {
                        return;
                    };
                    requests.fetch_add(1, Ordering::SeqCst);
                    let a = answer(&path);
                    let mut head = format!(
                        "HTTP/1.1 {} X\r\nContent-Length: {}\r\nConnection: close\r\n",
                        a.status,
                        a.body.len()
                    );
                    for (name, value) in &a.headers {
                        head.push_str(&format!("{name}: {value}\r\n"));
                    }
                    let _ = write!(stream, "{head}\r\n{}", a.body);
                    let _ = stream.flush();
                });
            })
            .detach()
        };
        Server {
            addr,
            connections,
            requests,
        }
    }

    fn url(&self, scheme: &str, path: &str) -> String {
        format!("{scheme}://{}{path}", self.addr)
    }

    fn tss_url(&self) -> String {
        self.url("https", "/TSS/controller?action=2")
    }
}

/// Read one HTTP request (head and a Content-Length body); its target.
fn read_request(mut stream: &mut dyn ReadWrite) -> Option<String> {
    crate::util::http::read_request(&mut stream).map(|r| r.url)
}

/// A loopback port with nothing listening: ipsw.me is unreachable in every test, so
/// only Apple's (stand-in) answer counts.
fn refused_api_url() -> String {
    format!("http://{}/v4", crate::util::http::refused_addr())
}

/// A temporary home for one test: the sample IPSW's path, an empty hosts file, and a
/// fresh cache directory per run (an answer cached by one run never serves another).
struct Env {
    dir: tempfile::TempDir,
    runs: AtomicUsize,
}

impl Env {
    fn new() -> Env {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("hosts"), "127.0.0.1 localhost\n").unwrap();
        std::fs::create_dir(dir.path().join("home")).unwrap();
        Env {
            dir,
            runs: AtomicUsize::new(0),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The binary with `args` after the common ones, `env` set: no proxy, no inherited
    /// IPSWCHECK_* variable, HOME and XDG_CACHE_HOME in the temporary directory.
    fn run(&self, args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
        let run = self.runs.fetch_add(1, Ordering::SeqCst);
        let cache = self.path(&format!("cache-{run}"));
        let home = self.path("home");
        // The tests' one runner (scrubbed environment, HOME and XDG_CACHE_HOME), in
        // this test's own home.
        let mut cmd = assert_cmd::Command::from_std(crate::util::command_in_home(&home));
        cmd.args(args);
        // `doctor` caches nothing: it offers no --cache-dir.
        if args.first() != Some(&"doctor") {
            cmd.args(["--cache-dir", cache.to_str().unwrap()]);
        }
        cmd.args(["--hosts-file", self.path("hosts").to_str().unwrap()])
            .timeout(Duration::from_secs(60));
        for (k, v) in env {
            cmd.env(k, v);
        }
        let out = cmd.output().expect("run ipswcheck");
        let result = (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        );
        assert!(!result.2.contains("panicked"), "{}", result.2);
        assert!(
            !home.join(".cache/ipswcheck").exists(),
            "a run wrote to the default cache directory"
        );
        result
    }

    /// Check the sample IPSW for iPhone9,3 against `tss_url` (ipsw.me unreachable), as
    /// JSON: exit code, the document, stderr.
    fn check(
        &self,
        tss_url: &str,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> (i32, serde_json::Value, String) {
        let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/sample.ipsw");
        let api = refused_api_url();
        let mut args = vec![
            sample.to_str().unwrap(),
            "--device",
            "iPhone9,3",
            "--json",
            "--tss-url",
            tss_url,
            "--api-url",
            &api,
            "--timeout",
            "5",
        ];
        args.extend_from_slice(extra);
        let (code, out, err) = self.run(&args, env);
        let doc = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}\n{err}"));
        (code, doc, err)
    }
}

fn signing(doc: &serde_json::Value) -> (&str, &str) {
    let s = &doc["checks"]["signing"];
    (
        s["status"].as_str().unwrap(),
        s["message"].as_str().unwrap(),
    )
}

/// Signed: exit 0, Apple's answer, asked now.
fn assert_signed(code: i32, doc: &serde_json::Value) {
    let (status, message) = signing(doc);
    assert_eq!(status, "signed", "{doc:#}");
    assert_eq!(doc["checks"]["signing"]["tss_status"], 0, "{message}");
    assert_eq!(doc["checks"]["signing"]["source"], "tss", "{message}");
    assert_eq!(code, 0, "{doc:#}");
}

/// Unknown (exit 31), never signed or not signed, with `reason` in the message.
fn assert_unknown(code: i32, doc: &serde_json::Value, reason: &str) -> String {
    let (status, message) = signing(doc);
    assert_eq!(status, "unknown", "{doc:#}");
    assert_eq!(code, 31, "{doc:#}");
    assert!(message.contains(reason), "wanted {reason:?} in {message:?}");
    eprintln!("unknown, as expected: {message}");
    message.to_owned()
}

/// A CA, its root written as PEM, and a TSS stand-in whose certificate it signed.
fn trusted_setup(env: &Env) -> (Server, PathBuf) {
    let ca = TestCa::new("ipswcheck test root CA");
    let root = ca.write_pem(env.dir.path(), "root.pem");
    let server = Server::https(ca.server_cert(&["127.0.0.1", "localhost"]), |_| {
        Answer::signed()
    });
    (server, root)
}

#[test]
fn ca_file_flag_makes_a_server_under_that_root_trusted() {
    let env = Env::new();
    let (server, root) = trusted_setup(&env);
    let (code, doc, _) = env.check(
        &server.tss_url(),
        &["--ca-file", root.to_str().unwrap()],
        &[],
    );
    assert_signed(code, &doc);
    // And by name (the certificate names localhost too).
    let url = format!(
        "https://localhost:{}/TSS/controller?action=2",
        server.addr.port()
    );
    let (code, doc, _) = env.check(&url, &["--ca-file", root.to_str().unwrap()], &[]);
    assert_signed(code, &doc);
}

#[test]
fn ca_file_environment_variable_does_the_same() {
    let env = Env::new();
    let (server, root) = trusted_setup(&env);
    let (code, doc, _) = env.check(
        &server.tss_url(),
        &[],
        &[("IPSWCHECK_CA_FILE", root.to_str().unwrap())],
    );
    assert_signed(code, &doc);
}

#[test]
fn without_the_root_the_certificate_is_not_trusted_and_signing_is_unknown() {
    let env = Env::new();
    let (server, _root) = trusted_setup(&env);
    let (code, doc, _) = env.check(&server.tss_url(), &[], &[]);
    let message = assert_unknown(
        code,
        &doc,
        "127.0.0.1's certificate was not trusted: invalid peer certificate: UnknownIssuer",
    );
    // Said as what it is, not as a network failure.
    assert!(!message.contains("could not reach"), "{message}");
    assert_eq!(doc["verdict"], "unknown");
    // A refused certificate is an answer, not a transient failure: no retries.
    assert_eq!(server.connections.load(Ordering::SeqCst), 1);
    assert_eq!(server.requests.load(Ordering::SeqCst), 0);
}

#[test]
fn a_certificate_from_another_root_is_refused_even_with_a_ca_file() {
    let env = Env::new();
    let ours = TestCa::new("ipswcheck test root CA");
    let root = ours.write_pem(env.dir.path(), "root.pem");
    let theirs = TestCa::new("somebody else's root CA");
    let server = Server::https(theirs.server_cert(&["127.0.0.1", "localhost"]), |_| {
        Answer::signed()
    });
    let (code, doc, _) = env.check(
        &server.tss_url(),
        &["--ca-file", root.to_str().unwrap()],
        &[],
    );
    assert_unknown(code, &doc, "127.0.0.1's certificate was not trusted");
    assert_unknown(code, &doc, "UnknownIssuer");
    assert_eq!(server.requests.load(Ordering::SeqCst), 0);

    // Our root, but a certificate for another name: refused too.
    let elsewhere = Server::https(ours.server_cert(&["tss.example.com"]), |_| Answer::signed());
    let (code, doc, _) = env.check(
        &elsewhere.tss_url(),
        &["--ca-file", root.to_str().unwrap()],
        &[],
    );
    assert_unknown(code, &doc, "127.0.0.1's certificate was not trusted");
    assert_eq!(elsewhere.requests.load(Ordering::SeqCst), 0);
}

#[test]
fn doctor_names_the_tls_failure_and_hints_at_ca_file() {
    let env = Env::new();
    let (server, root) = trusted_setup(&env);
    let tss = server.tss_url();
    let (code, out, err) = env.run(&["doctor", "--tss-url", &tss, "--timeout", "5"], &[]);
    assert_eq!(code, 31, "{out}{err}");
    assert!(
        out.contains(
            "127.0.0.1's certificate was not trusted: invalid peer certificate: UnknownIssuer"
        ),
        "{out}"
    );
    assert!(out.contains("--ca-file"), "{out}");
    assert!(out.contains("not a network failure"), "{out}");
    // Not blamed on reachability (the restore errors of an unreachable server).
    assert!(!out.contains("3004"), "{out}");

    // With the root: the server answers.
    let (code, out, err) = env.run(
        &[
            "doctor",
            "--tss-url",
            &tss,
            "--timeout",
            "5",
            "--ca-file",
            root.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("answered HTTP 200"), "{out}");
}

#[test]
fn a_redirect_from_https_to_http_is_refused() {
    let env = Env::new();
    // The plain-http server would say "signed": it must never be asked.
    let plain = Server::http(|_| Answer::signed());
    let target = plain.url("http", "/TSS/controller?action=2");
    let ca = TestCa::new("ipswcheck test root CA");
    let root = ca.write_pem(env.dir.path(), "root.pem");
    let server = Server::https(ca.server_cert(&["127.0.0.1"]), move |_| {
        Answer::redirect(&target)
    });
    let (code, doc, _) = env.check(
        &server.tss_url(),
        &["--ca-file", root.to_str().unwrap()],
        &[],
    );
    let message = assert_unknown(code, &doc, "refused a redirect from https://");
    assert!(message.contains("to plain http"), "{message}");
    assert!(message.contains(&plain.url("http", "/")), "{message}");
    assert_eq!(server.requests.load(Ordering::SeqCst), 1);
    assert_eq!(plain.connections.load(Ordering::SeqCst), 0);
}

#[test]
fn at_most_five_redirects_are_followed() {
    let env = Env::new();
    let ca = TestCa::new("ipswcheck test root CA");
    let root = ca.write_pem(env.dir.path(), "root.pem");
    // /hop/N redirects to /hop/N-1; /hop/0 answers.
    let server = Server::https(ca.server_cert(&["127.0.0.1"]), |path| {
        let n: u32 = path
            .trim_start_matches("/hop/")
            .split('?')
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        if n == 0 {
            Answer::signed()
        } else {
            Answer::redirect(&format!("/hop/{}?action=2", n - 1))
        }
    });
    let ca_file = ["--ca-file", root.to_str().unwrap()];
    let (code, doc, _) = env.check(&server.url("https", "/hop/5?action=2"), &ca_file, &[]);
    assert_signed(code, &doc);
    let before = server.requests.load(Ordering::SeqCst);
    let (code, doc, _) = env.check(&server.url("https", "/hop/6?action=2"), &ca_file, &[]);
    assert_unknown(code, &doc, "redirected more than 5 times");
    // The first request and five redirects, then it stopped.
    assert_eq!(server.requests.load(Ordering::SeqCst) - before, 6);
}

#[test]
fn a_bad_ca_file_is_a_usage_error_naming_the_file() {
    let env = Env::new();
    let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/sample.ipsw");
    let missing = env.path("no-such-root.pem");
    let text = env.path("notes.pem");
    std::fs::write(&text, "this is not a certificate\n").unwrap();
    let broken = env.path("broken.pem");
    std::fs::write(
        &broken,
        "-----BEGIN CERTIFICATE-----\nAAECAwQFBgcICQ==\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    let der = env.path("root.der");
    std::fs::write(&der, TestCa::new("DER root").issuer.der().as_ref()).unwrap();
    let dir = env.path("home");

    let assert_usage = |(code, out, err): (i32, String, String), file: &Path, what: &str| {
        assert_eq!(code, 2, "{what}: {out}{err}");
        assert!(out.is_empty(), "{what}: {out}");
        assert_eq!(err.lines().count(), 1, "{what}: one line: {err}");
        assert!(
            err.starts_with(&format!("ipswcheck: --ca-file {}: ", file.display())),
            "{what}: {err}"
        );
        eprintln!("{what}: {}", err.trim_end());
    };
    let check = |file: &Path| {
        env.run(
            &[
                sample.to_str().unwrap(),
                "--device",
                "iPhone9,3",
                "--tss-url",
                "https://127.0.0.1:9/TSS/controller?action=2",
                "--ca-file",
                file.to_str().unwrap(),
            ],
            &[],
        )
    };
    assert_usage(check(&missing), &missing, "missing");
    assert_usage(check(&text), &text, "not PEM");
    assert_usage(check(&broken), &broken, "not a certificate");
    assert_usage(check(&der), &der, "DER");
    assert_usage(check(&dir), &dir, "a directory");

    // The same through the environment, and for `doctor`.
    let (code, out, err) = env.run(
        &[sample.to_str().unwrap(), "--device", "iPhone9,3"],
        &[("IPSWCHECK_CA_FILE", missing.to_str().unwrap())],
    );
    assert_usage(
        (code, out, err),
        &missing,
        "missing, from IPSWCHECK_CA_FILE",
    );
    let doctor = env.run(&["doctor", "--ca-file", text.to_str().unwrap()], &[]);
    assert_usage(doctor, &text, "doctor, not PEM");
}
