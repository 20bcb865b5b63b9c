//! Issue 14, class 3: no downgrade from https. An https IPSW URL (`ipswcheck URL`,
//! `fetch`) or an https ipsw.me that redirects to plain http is refused before the
//! request goes out in clear text; redirects are followed only within the scheme the
//! user gave, at most five of them. The remote file client trusts what the signing
//! client trusts: the platform's roots, Apple's, and `--ca-file`.
//!
//! Every server is on loopback, in this process: HTTPS servers present a certificate
//! from a test-only root CA, trusted through `--ca-file`; the plain-http servers would
//! hand out a perfectly good IPSW (or a "signed"), and must never be asked.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ipswcheck_fixture::IpswSpec;

use crate::util::http::{self, api_url, tss_url, Pace, ReadWrite, Reply, Server, TestCa};
use crate::util::remote::{
    apple_signed, fetch_args, first_problem as problem, fresh_cache, network_flags, run_json,
    FileServer,
};
use crate::util::robust::Outcome;
use crate::util::signing::ipswme_body;

/// One test's world: a CA whose root is in `root.pem`, the sample IPSW, Apple's
/// stand-in (signed; ipsw.me lists the build as signed).
struct World {
    dir: tempfile::TempDir,
    ca: TestCa,
    root: PathBuf,
    ipsw: PathBuf,
    apple: SocketAddr,
}

impl World {
    fn new() -> World {
        let dir = tempfile::tempdir().unwrap();
        let ca = TestCa::new("ipswcheck test root CA");
        let root = ca.write_pem(dir.path(), "root.pem");
        let ipsw = dir.path().join("sample.ipsw");
        IpswSpec::sample().build(&ipsw).unwrap();
        World {
            dir,
            ca,
            root,
            ipsw,
            apple: apple_signed(),
        }
    }

    /// An HTTPS server under the test CA (for 127.0.0.1): `handle` gets each request and
    /// the TLS stream to answer on; `connections` counts handshakes begun.
    fn https(
        &self,
        handle: impl Fn(&http::Recorded, &mut dyn ReadWrite) + Send + Sync + 'static,
    ) -> (SocketAddr, Arc<AtomicUsize>) {
        let connections = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&connections);
        let addr = Server::tls(self.ca.server_cert(&["127.0.0.1"]), move |tls| {
            counter.fetch_add(1, Ordering::SeqCst);
            let mut stream = tls;
            if let Some(request) = http::read_request(&mut stream) {
                handle(&request, stream);
            }
        })
        .detach();
        (addr, connections)
    }

    /// Run the binary: `args`, then the network flags (`--ca-file` unless `trust` is
    /// false; `api` is ipsw.me's base URL), JSON out; it must end within 60 s.
    fn run(&self, args: &[&str], api: Option<&str>, trust: bool) -> (Outcome, serde_json::Value) {
        let api = api.map_or_else(|| api_url(self.apple), str::to_owned);
        let network = network_flags(
            &tss_url(self.apple),
            &api,
            "5",
            &fresh_cache(self.dir.path()),
        );
        let mut all: Vec<&str> = args.to_vec();
        all.extend(network.iter().map(String::as_str));
        all.push("--json");
        if trust {
            all.extend(["--ca-file", self.root.to_str().unwrap()]);
        }
        run_json(&all, Duration::from_secs(60))
    }
}

/// A redirect to `location`.
fn redirect(out: &mut dyn ReadWrite, location: &str) {
    let _ = write!(
        out,
        "HTTP/1.1 302 Found\r\nLocation: {location}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    let _ = out.flush();
}

/// An https server that serves `file` with ranges.
fn https_file(world: &World, file: &Path) -> SocketAddr {
    let bytes = Arc::new(std::fs::read(file).unwrap());
    world
        .https(move |request, out| {
            let range = http::asked_range(request, bytes.len() as u64);
            http::answer_range(out, &bytes, range, Pace::Serve);
        })
        .0
}

#[test]
fn the_remote_client_trusts_the_ca_file_like_the_signing_client() {
    let w = World::new();
    let addr = https_file(&w, &w.ipsw);
    let url = format!("https://{addr}/sample.ipsw");
    // With the root: read over TLS and checked.
    let (o, v) = w.run(&[&url, "--device", "iPhone9,3"], None, true);
    assert_eq!(o.code, Some(0), "{v:#}");
    assert_eq!(v["checks"]["signing"]["status"], "signed");
    // Without it: the certificate is refused, nothing is checked.
    let (o, v) = w.run(&[&url, "--device", "iPhone9,3"], None, false);
    assert_eq!(o.code, Some(3), "{v:#}");
    assert!(problem(&v).contains("UnknownIssuer"), "{v:#}");
}

#[test]
fn an_https_ipsw_url_redirected_to_http_is_refused_before_any_clear_text() {
    let w = World::new();
    // The plain-http server holds a good IPSW: had the client followed, the answer
    // would be READY.
    let files = FileServer::start();
    let plain = files.serve("sample.ipsw", &w.ipsw);
    // Every hop shape: straight to http; https → https → http; to http on another path.
    let (hop, _) = {
        let plain = plain.clone();
        w.https(move |_, out| redirect(out, &plain))
    };
    let two_hops = {
        let first = format!("https://{hop}/again");
        w.https(move |_, out| redirect(out, &first)).0
    };
    for (what, url) in [
        ("one hop", format!("https://{hop}/x.ipsw")),
        ("two hops", format!("https://{two_hops}/x.ipsw")),
    ] {
        let (o, v) = w.run(&[&url, "--device", "iPhone9,3"], None, true);
        assert_eq!(o.code, Some(3), "{what}: {v:#}");
        assert_ne!(v["verdict"], "ready");
        let message = problem(&v);
        assert!(
            message.contains("refused a redirect from https://"),
            "{message}"
        );
        assert!(message.contains(&format!("to {plain}")), "{message}");
        assert!(
            message.contains("never follows a redirect from https to plain http"),
            "{message}"
        );
        assert!(
            files.log().is_empty(),
            "{what}: the http server was asked: {:?}",
            files.log()
        );

        // `fetch` neither: no file, no part file, nothing asked in clear text.
        let dest = w.dir.path().join("out.ipsw");
        let (o, v) = w.run(&fetch_args(&url, &dest), None, true);
        assert_eq!(o.code, Some(3), "{what}: fetch: {v:#}");
        assert!(problem(&v).contains("refused a redirect"), "{v:#}");
        assert!(!dest.exists() && !w.dir.path().join("out.ipsw.part").exists());
        assert!(
            files.log().is_empty(),
            "{what}: fetch asked the http server"
        );
        eprintln!("{what}: refused: {message}");
    }
}

#[test]
fn redirects_stay_within_the_scheme_given_and_are_few() {
    let w = World::new();
    let good = https_file(&w, &w.ipsw);
    // /hop/N → /hop/N-1 on the same https server; /hop/0 → the file server.
    let target = format!("https://{good}/sample.ipsw");
    let (chain, _) = w.https(move |request, out| {
        let n: u32 = request.url.trim_start_matches("/hop/").parse().unwrap_or(0);
        if n == 0 {
            redirect(out, &target);
        } else {
            redirect(out, &format!("/hop/{}", n - 1));
        }
    });
    // Five hops (four on the chain, one to the file): followed, over https throughout.
    let (o, v) = w.run(
        &[&format!("https://{chain}/hop/4"), "--device", "iPhone9,3"],
        None,
        true,
    );
    assert_eq!(o.code, Some(0), "{v:#}");
    // Six: too many.
    let (o, v) = w.run(
        &[&format!("https://{chain}/hop/5"), "--device", "iPhone9,3"],
        None,
        true,
    );
    assert_eq!(o.code, Some(3), "{v:#}");
    assert!(
        problem(&v).contains("redirected more than 5 times"),
        "{v:#}"
    );

    // An http URL is not upgraded behind the user's back either: the https server is
    // never contacted.
    let (tls, connections) = w.https(|request, out| {
        let _ = (request, out);
    });
    let upgrade = Server::raw(move |mut tcp| {
        if http::read_request(&mut tcp).is_some() {
            redirect(&mut tcp, &format!("https://{tls}/x.ipsw"));
        }
    })
    .detach();
    let (o, v) = w.run(
        &[&format!("http://{upgrade}/x.ipsw"), "--device", "iPhone9,3"],
        None,
        true,
    );
    assert_eq!(o.code, Some(3), "{v:#}");
    assert!(
        problem(&v).contains("only within the scheme of the URL given"),
        "{v:#}"
    );
    assert_eq!(connections.load(Ordering::SeqCst), 0);
}

#[test]
fn an_https_ipswme_redirected_to_http_is_refused() {
    let w = World::new();
    // Plain-http ipsw.me stand-in: it says "signed" and must never be asked.
    let plain = Server::start(|_| Reply::ok(ipswme_body("iPhone9,3", "19H370", true, "")));
    let target = plain.url("/v4/device/iPhone9,3?type=ipsw");
    let (api, _) = w.https(move |_, out| redirect(out, &target));
    let api = format!("https://{api}/v4");
    let (o, v) = w.run(
        &[w.ipsw.to_str().unwrap(), "--device", "iPhone9,3"],
        Some(&api),
        true,
    );
    // Apple's answer (signed) decides; ipsw.me's opinion was refused, not taken.
    assert_eq!(o.code, Some(0), "{v:#}");
    assert!(v["checks"]["signing"]["ipswme_signed"].is_null(), "{v:#}");
    assert!(plain.requests().is_empty(), "{:?}", plain.requests());
}
