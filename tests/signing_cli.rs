//! Signing through the binary: a loopback server plays Apple's TSS server and ipsw.me,
//! and `ipswcheck FILE` must turn their answers into the documented verdicts, exit codes
//! (30 not signed, 31 unknown), predicted error 3194, the cache, and the hosts check.
//! No test touches the internet.

use std::path::PathBuf;
use std::time::Instant;

use ipswcheck::digest::{to_hex, DigestAlgorithm};
use ipswcheck_fixture::IpswSpec;

use crate::util::run_env;
use crate::util::signing::{
    signed_body, status_body, FakeServer, Reply, SilentServer, NOT_ELIGIBLE,
};

struct Setup {
    _dir: tempfile::TempDir,
    ipsw: PathBuf,
    cache: PathBuf,
    hosts: PathBuf,
    sha1: String,
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let ipsw = dir.path().join("iPhone_4.7_P3_15.8_19H370_Restore.ipsw");
    IpswSpec::sample().build(&ipsw).unwrap();
    let sha1 = to_hex(&DigestAlgorithm::Sha1.digest(&std::fs::read(&ipsw).unwrap()));
    let cache = dir.path().join("cache");
    let hosts = dir.path().join("hosts");
    std::fs::write(&hosts, "127.0.0.1 localhost\n# 127.0.0.1 gs.apple.com\n").unwrap();
    Setup {
        ipsw,
        cache,
        hosts,
        sha1,
        _dir: dir,
    }
}

/// An ipsw.me device body listing the sample's build.
fn ipswme(signed: bool, sha1: &str) -> Reply {
    Reply::ok(
        serde_json::json!({
            "name": "iPhone 7", "identifier": "iPhone9,3",
            "boards": [{"boardconfig": "d101ap", "platform": "t8010", "cpid": 32784, "bdid": 12}],
            "firmwares": [{"identifier": "iPhone9,3", "version": "15.8", "buildid": "19H370",
                "sha1sum": sha1, "md5sum": "00", "sha256sum": "00", "filesize": 1,
                "url": "https://updates.cdn-apple.com/x.ipsw", "releasedate": null,
                "uploaddate": null, "signed": signed}]
        })
        .to_string(),
    )
}

fn run_check(
    s: &Setup,
    server_tss: &str,
    server_api: &str,
    extra: &[&str],
) -> (i32, serde_json::Value, String) {
    let mut args = vec![
        s.ipsw.to_str().unwrap(),
        "--device",
        "iPhone9,3",
        "--json",
        "--tss-url",
        server_tss,
        "--api-url",
        server_api,
        "--cache-dir",
        s.cache.to_str().unwrap(),
        "--hosts-file",
        s.hosts.to_str().unwrap(),
    ];
    if !extra.contains(&"--timeout") {
        args.extend_from_slice(&["--timeout", "3"]);
    }
    args.extend_from_slice(extra);
    let (code, out, err) = run_env(&args, &[]);
    let doc = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}{err}"));
    (code, doc, err)
}

#[test]
fn signed_build_with_ipswme_checksum_is_ready() {
    let s = setup();
    let server = FakeServer::apple_and_ipswme(Reply::ok(signed_body()), ipswme(true, &s.sha1));
    let (code, v, _) = run_check(&s, &server.tss_url(), &server.api_url(), &[]);
    assert_eq!(code, 0, "{v:#}");
    assert_eq!(v["verdict"], "ready");
    let signing = &v["checks"]["signing"];
    assert_eq!(signing["status"], "signed");
    assert_eq!(signing["source"], "tss");
    assert_eq!(signing["tss_status"], 0);
    assert_eq!(signing["ipswme_signed"], true);
    assert_eq!(signing["cached"], false);
    assert!(signing["checked_at"].as_str().unwrap().ends_with('Z'));
    // ipsw.me's SHA-1 became the expected whole-file checksum.
    assert_eq!(v["checks"]["checksum"]["status"], "ok");
    assert_eq!(v["checks"]["checksum"]["source"], "ipsw.me");
    // One TSS request per board of the device: iPhone9,3 has one.
    assert_eq!(server.tss_requests().len(), 1);
}

#[test]
fn status_94_is_exit_30_and_predicts_3194() {
    let s = setup();
    let server = FakeServer::apple_and_ipswme(
        Reply::ok(status_body(94, NOT_ELIGIBLE)),
        ipswme(false, &s.sha1),
    );
    let (code, v, _) = run_check(&s, &server.tss_url(), &server.api_url(), &[]);
    assert_eq!(code, 30);
    assert_eq!(v["verdict"], "not_ready");
    assert_eq!(v["predicted_restore_error"], "3194");
    assert_eq!(v["checks"]["signing"]["status"], "not_signed");
    assert_eq!(v["checks"]["signing"]["tss_status"], 94);
    // And the human headline says it in words.
    let (code, out, _) = run_env(
        &[
            s.ipsw.to_str().unwrap(),
            "--device",
            "iPhone9,3",
            "--tss-url",
            &server.tss_url(),
            "--api-url",
            &server.api_url(),
            "--cache-dir",
            s.cache.to_str().unwrap(),
            "--hosts-file",
            s.hosts.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(code, 30);
    assert!(
        out.lines().next().unwrap().contains("no longer signs"),
        "{out}"
    );
    assert!(out.contains("3194"), "{out}");
}

#[test]
fn server_errors_are_exit_31_unknown_never_not_signed() {
    let s = setup();
    for tss in [
        Reply::status(500),
        Reply::ok("garbage"),
        Reply::ok(status_body(100, "x")),
    ] {
        let server = FakeServer::apple_and_ipswme(tss, Reply::status(503));
        let (code, v, _) = run_check(&s, &server.tss_url(), &server.api_url(), &["--refresh"]);
        assert_eq!(code, 31, "{v:#}");
        assert_eq!(v["verdict"], "unknown");
        assert_eq!(v["checks"]["signing"]["status"], "unknown");
        assert!(v["predicted_restore_error"].is_null());
    }
}

#[test]
fn a_silent_server_ends_within_the_timeout() {
    let s = setup();
    let silent = SilentServer::start();
    let url = format!("http://{}/TSS/controller?action=2", silent.addr);
    let api = format!("http://{}/v4", silent.addr);
    let started = Instant::now();
    let (code, v, _) = run_check(&s, &url, &api, &["--timeout", "1"]);
    assert_eq!(code, 31, "{v:#}");
    assert!(
        started.elapsed().as_secs_f64() < 4.0,
        "{:?}",
        started.elapsed()
    );
}

/// ipsw.me's SHA-1 is a third party's number (it has been wrong: Legacy-iOS-Kit #302,
/// idevicerestore #462): on a file whose every CRC and component digest verified, a
/// difference is a warning, never exit 12. Only the user's own checksum decides.
#[test]
fn ipswme_checksum_that_differs_is_a_warning_and_the_users_decides() {
    let s = setup();
    let wrong = "0000000000000000000000000000000000000000";
    let server = FakeServer::apple_and_ipswme(Reply::ok(signed_body()), ipswme(true, wrong));
    let (code, v, _) = run_check(&s, &server.tss_url(), &server.api_url(), &[]);
    assert_eq!(code, 0, "{v:#}");
    assert_eq!(v["verdict"], "ready");
    let checksum = &v["checks"]["checksum"];
    assert_eq!(checksum["status"], "warn");
    assert_eq!(checksum["source"], "ipsw.me");
    assert_eq!(checksum["actual"], s.sha1);
    let message = checksum["message"].as_str().unwrap();
    assert!(
        message.contains("differs from ipsw.me's published SHA-1"),
        "{message}"
    );
    assert!(v["predicted_restore_error"].is_null());

    // The human report says it as a warning, under a READY verdict.
    let (code, out, _) = run_env(
        &[
            s.ipsw.to_str().unwrap(),
            "--device",
            "iPhone9,3",
            "--tss-url",
            &server.tss_url(),
            "--api-url",
            &server.api_url(),
            "--cache-dir",
            s.cache.to_str().unwrap(),
            "--hosts-file",
            s.hosts.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(code, 0, "{out}");
    assert!(out.starts_with("READY"), "{out}");
    assert!(
        out.contains("warning: checksum:") && out.contains("every CRC"),
        "{out}"
    );

    // The same wrong number given by the user is exit 12.
    let (code, v, _) = run_check(&s, &server.tss_url(), &server.api_url(), &["--sha1", wrong]);
    assert_eq!(code, 12, "{v:#}");
    assert_eq!(v["checks"]["checksum"]["status"], "fail");
    assert_eq!(v["checks"]["checksum"]["source"], "user");
    assert_eq!(v["predicted_restore_error"], "14");
}

#[test]
fn ipswme_checksum_that_matches_is_named_as_apples() {
    let s = setup();
    let server = FakeServer::apple_and_ipswme(Reply::ok(signed_body()), ipswme(true, &s.sha1));
    let (code, v, _) = run_check(&s, &server.tss_url(), &server.api_url(), &[]);
    assert_eq!(code, 0, "{v:#}");
    assert_eq!(
        v["checks"]["checksum"]["message"],
        "the file's SHA-1 matches the SHA-1 Apple published (via ipsw.me)"
    );
}

/// Apple refuses (94) while ipsw.me says signed: exit 31, both named, and the refusal is
/// not cached, so the next check asks Apple again.
#[test]
fn a_disputed_answer_is_exit_31_and_never_cached() {
    let s = setup();
    let server = FakeServer::apple_and_ipswme(
        Reply::ok(status_body(94, NOT_ELIGIBLE)),
        ipswme(true, &s.sha1),
    );
    for round in 1..=2 {
        let (code, v, _) = run_check(&s, &server.tss_url(), &server.api_url(), &[]);
        assert_eq!(code, 31, "{v:#}");
        assert_eq!(v["verdict"], "unknown");
        assert_eq!(v["checks"]["signing"]["status"], "disputed");
        assert_eq!(v["checks"]["signing"]["cached"], false);
        assert!(v["predicted_restore_error"].is_null());
        let message = v["checks"]["signing"]["message"].as_str().unwrap();
        assert!(
            message.contains("ipsw.me") && message.contains("refused"),
            "{message}"
        );
        assert_eq!(server.tss_requests().len(), round, "asked Apple again");
    }
    let cached_tss = std::fs::read_dir(&s.cache)
        .map(|d| {
            d.filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .starts_with("tss-")
            })
            .count()
        })
        .unwrap_or(0);
    assert_eq!(cached_tss, 0);
}

/// An answer without STATUS= (a CDN error page) is asked again, as libtatsu does.
#[test]
fn an_answer_without_status_is_asked_again() {
    let s = setup();
    let count = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let seen = count.clone();
    let server = FakeServer::start(move |r| {
        if r.is_tss() {
            if seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0 {
                Reply::ok("<html><body>503 Service Temporarily Unavailable</body></html>")
            } else {
                Reply::ok(signed_body())
            }
        } else {
            Reply::status(503)
        }
    });
    let (code, v, _) = run_check(&s, &server.tss_url(), &server.api_url(), &[]);
    assert_eq!(code, 0, "{v:#}");
    assert_eq!(v["checks"]["signing"]["status"], "signed");
    assert_eq!(server.tss_requests().len(), 2);

    // A status, whatever it is, is Apple's word: never asked again.
    let server = FakeServer::apple_and_ipswme(Reply::ok(status_body(100, "x")), Reply::status(503));
    let (code, _, _) = run_check(&s, &server.tss_url(), &server.api_url(), &["--refresh"]);
    assert_eq!(code, 31);
    assert_eq!(server.tss_requests().len(), 1);
}

#[test]
fn tss_dump_saves_every_request_and_answer() {
    let s = setup();
    let dump = s.cache.parent().unwrap().join("dump");
    let server = FakeServer::apple_and_ipswme(Reply::ok(signed_body()), ipswme(true, &s.sha1));
    let (code, _, _) = run_check(
        &s,
        &server.tss_url(),
        &server.api_url(),
        &["--tss-dump", dump.to_str().unwrap()],
    );
    assert_eq!(code, 0);
    let mut names: Vec<String> = std::fs::read_dir(&dump)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names.len(), 2, "{names:?}");
    assert!(names[0].starts_with("d101ap-8010-0c-") && names[0].ends_with(".request.plist"));
    assert!(names[1].ends_with(".response.txt"));
    // The saved request is exactly what the server received.
    let sent = &server.tss_requests()[0].body;
    assert_eq!(&std::fs::read(dump.join(&names[0])).unwrap(), sent);
    let response = std::fs::read_to_string(dump.join(&names[1])).unwrap();
    assert!(
        response.starts_with("HTTP 200") && response.contains("STATUS=0"),
        "{response}"
    );
}

#[test]
fn offline_sends_nothing_and_says_so() {
    let s = setup();
    let server = FakeServer::apple_and_ipswme(Reply::ok(signed_body()), ipswme(true, &s.sha1));
    let (code, v, _) = run_check(&s, &server.tss_url(), &server.api_url(), &["--offline"]);
    assert_eq!(code, 0);
    assert_eq!(v["checks"]["signing"]["status"], "skipped");
    assert!(server.requests().is_empty());
    let (_, out, _) = run_env(
        &[
            s.ipsw.to_str().unwrap(),
            "--device",
            "iPhone9,3",
            "--offline",
            "--tss-url",
            &server.tss_url(),
        ],
        &[],
    );
    assert!(out.contains("signing was not checked"), "{out}");
    assert!(server.requests().is_empty());
}

#[test]
fn the_cache_spares_a_second_query_and_refresh_asks_again() {
    let s = setup();
    let server = FakeServer::apple_and_ipswme(Reply::ok(signed_body()), ipswme(true, &s.sha1));
    let (_, first, _) = run_check(&s, &server.tss_url(), &server.api_url(), &[]);
    assert_eq!(server.tss_requests().len(), 1);
    let (code, second, _) = run_check(&s, &server.tss_url(), &server.api_url(), &[]);
    assert_eq!(code, 0);
    assert_eq!(
        server.tss_requests().len(),
        1,
        "cached answer within the TTL"
    );
    assert_eq!(second["checks"]["signing"]["cached"], true);
    assert_eq!(second["checks"]["signing"]["source"], "cache");
    assert_eq!(
        second["checks"]["signing"]["checked_at"], first["checks"]["signing"]["checked_at"],
        "a cached answer shows when it was obtained"
    );
    let (_, third, _) = run_check(&s, &server.tss_url(), &server.api_url(), &["--refresh"]);
    assert_eq!(server.tss_requests().len(), 2);
    assert_eq!(third["checks"]["signing"]["cached"], false);
}

#[test]
fn unknown_answers_are_not_cached() {
    let s = setup();
    let failing = FakeServer::apple_and_ipswme(Reply::status(500), Reply::status(500));
    run_check(&s, &failing.tss_url(), &failing.api_url(), &[]);
    run_check(&s, &failing.tss_url(), &failing.api_url(), &[]);
    assert_eq!(failing.tss_requests().len(), 2);
}

#[test]
fn environment_variables_point_at_mirrors() {
    let s = setup();
    let server = FakeServer::apple_and_ipswme(Reply::ok(signed_body()), ipswme(true, &s.sha1));
    let (code, out, err) = run_env(
        &[
            s.ipsw.to_str().unwrap(),
            "--device",
            "iPhone9,3",
            "--hosts-file",
            s.hosts.to_str().unwrap(),
        ],
        &[
            ("IPSWCHECK_TSS_URL", &server.tss_url()),
            ("IPSWCHECK_API_URL", &server.api_url()),
            ("IPSWCHECK_CACHE_DIR", s.cache.to_str().unwrap()),
        ],
    );
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(server.tss_requests().len(), 1);
    assert!(
        s.cache.exists(),
        "the cache went where IPSWCHECK_CACHE_DIR said"
    );
}

#[test]
fn a_hosts_file_redirect_is_reported_with_its_line() {
    let s = setup();
    std::fs::write(
        &s.hosts,
        "127.0.0.1 localhost\n\n74.208.105.171 gs.apple.com\n",
    )
    .unwrap();
    // Even offline: the hosts file is a local fact.
    let (code, out, _) = run_env(
        &[
            s.ipsw.to_str().unwrap(),
            "--device",
            "iPhone9,3",
            "--offline",
            "--hosts-file",
            s.hosts.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(code, 30, "{out}");
    assert!(out.contains("line 3"), "{out}");
    assert!(out.contains("gs.apple.com"), "{out}");
    let (code, out, _) = run_env(
        &[
            "doctor",
            "--offline",
            "--hosts-file",
            s.hosts.to_str().unwrap(),
        ],
        &[],
    );
    assert_ne!(code, 0);
    assert!(out.contains("line 3") || out.contains(":3"), "{out}");
}

#[test]
fn the_wrong_device_asks_no_one() {
    let s = setup();
    let server = FakeServer::apple_and_ipswme(Reply::ok(signed_body()), ipswme(true, &s.sha1));
    let (code, out, _) = run_env(
        &[
            s.ipsw.to_str().unwrap(),
            "--device",
            "iPhone10,6",
            "--tss-url",
            &server.tss_url(),
            "--api-url",
            &server.api_url(),
            "--hosts-file",
            s.hosts.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(code, 20, "{out}");
    assert!(server.tss_requests().is_empty());
}

#[test]
fn signed_lists_ipswme_builds_as_ipswme_s_word() {
    let server = FakeServer::apple_and_ipswme(Reply::status(500), ipswme(true, "ab"));
    let (code, out, err) = run_env(
        &[
            "signed",
            "--device",
            "d101ap",
            "--api-url",
            &server.api_url(),
        ],
        &[],
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("ipsw.me"), "{out}");
    assert!(out.contains("15.8 (19H370)"), "{out}");
    let down = FakeServer::apple_and_ipswme(Reply::status(500), Reply::status(500));
    let (code, _, err) = run_env(
        &[
            "signed",
            "--device",
            "iPhone9,3",
            "--api-url",
            &down.api_url(),
        ],
        &[],
    );
    assert_eq!(code, 31);
    assert!(err.contains("ipsw.me"), "{err}");
}
