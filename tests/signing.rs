//! The signing check against loopback servers playing Apple's TSS server and ipsw.me.
//!
//! (Long: one test per TSS answer class, server fault and cache rule; each needs its own
//! loopback server set-up.)
//!
//! Each test starts its own real HTTP server on 127.0.0.1 and points the library at it;
//! nothing here touches the internet. Tests reading `../shared` skip when it is absent
//! (and fail when `CI=true`).

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use ipswcheck::manifest::{BuildIdentity, BuildManifest, RestoreBehavior};
use ipswcheck::signing::{
    build_tss_request, check_signing, doctor, hosts_redirects, ipswme_firmware, signed_builds,
    Reachability, SigningCheck, SigningError, SigningOptions, SigningSession, SigningStatus,
};
use plist::{Dictionary, Value};

use crate::util::signing::*;

const BUILD: &str = "19E241";
const PRODUCT: &str = "iPhone9,3";
const SHA1_HEX: &str = "4f6cf4fbd7b4a8e6e2f3e1d5f0d1f1a2b3c4d5e6";

fn d101ap() -> BuildManifest {
    synthetic_manifest(BUILD, PRODUCT, &[("d101ap", 0x8010, 0x0C)])
}

fn all(manifest: &BuildManifest) -> Vec<&BuildIdentity> {
    manifest.identities.iter().collect()
}

/// Run a check of the one-board synthetic manifest against `server`.
fn check_against(server: &FakeServer) -> SigningCheck {
    let m = d101ap();
    check_signing(&m, &all(&m), Some(PRODUCT), &server_options(server, None))
}

fn tss_answer(body: impl Into<Vec<u8>>) -> FakeServer {
    FakeServer::apple_and_ipswme(Reply::ok(body), Reply::status(404))
}

fn integer(dict: &Dictionary, key: &str) -> u64 {
    match dict.get(key) {
        Some(Value::Integer(i)) => i.as_unsigned().unwrap(),
        other => panic!("{key} should be a plist integer, is {other:?}"),
    }
}

fn data_len(dict: &Dictionary, key: &str) -> usize {
    dict.get(key)
        .and_then(Value::as_data)
        .unwrap_or_else(|| panic!("{key} should be data"))
        .len()
}

#[test]
fn signed_answer_gives_signed_and_the_request_is_what_apple_expects() {
    let server = tss_answer(signed_body());
    let check = check_against(&server);
    assert_eq!(check.status, SigningStatus::Signed, "{}", check.message);
    assert_eq!(check.source.as_deref(), Some("tss"));
    assert_eq!(check.tss_status, Some(0));
    assert!(!check.cached);
    assert!(check.message.contains("d101ap"), "{}", check.message);
    let at = check.checked_at.as_deref().expect("checked_at");
    assert!(
        at.len() == 20 && at.ends_with('Z') && at.as_bytes()[10] == b'T',
        "{at}"
    );

    let requests = server.tss_requests();
    assert_eq!(requests.len(), 1);
    let r = &requests[0];
    assert_eq!(r.method, "POST");
    assert_eq!(r.url, "/TSS/controller?action=2");
    assert_eq!(
        r.header("Content-Type"),
        Some("text/xml; charset=\"utf-8\"")
    );
    assert_eq!(r.header("Cache-Control"), Some("no-cache"));
    assert_eq!(r.header("User-Agent"), Some("InetURL/1.0"));
    assert!(r.body.starts_with(b"<?xml"), "an XML plist, not binary");

    let req = r.plist();
    assert_eq!(
        req.get("@HostPlatformInfo").and_then(Value::as_string),
        Some("mac")
    );
    assert_eq!(
        req.get("@VersionInfo").and_then(Value::as_string),
        Some("libauthinstall-1104.0.9")
    );
    assert_eq!(
        req.get("@ApImg4Ticket").and_then(Value::as_boolean),
        Some(true)
    );
    assert!(req.get("@APTicket").is_none());
    let uuid = req.get("@UUID").and_then(Value::as_string).unwrap();
    assert_eq!(uuid.len(), 36);
    assert_eq!(uuid, uuid.to_ascii_uppercase());
    assert_eq!(integer(&req, "ApChipID"), 0x8010);
    assert_eq!(integer(&req, "ApBoardID"), 0x0C);
    assert_eq!(integer(&req, "ApSecurityDomain"), 1);
    assert!(integer(&req, "ApECID") > 0);
    assert_eq!(data_len(&req, "ApNonce"), 32, "A10 gets a 32-byte nonce");
    assert_eq!(data_len(&req, "SepNonce"), 20);
    assert_eq!(
        req.get("UniqueBuildID").and_then(Value::as_data),
        Some(&[1u8; 20][..])
    );
    for flag in ["ApProductionMode", "ApSecurityMode"] {
        assert_eq!(
            req.get(flag).and_then(Value::as_boolean),
            Some(true),
            "{flag}"
        );
    }
    assert_eq!(
        req.get("Ap,OSLongVersion").and_then(Value::as_string),
        Some("15.4.19E241"),
        "identity-level Ap,* keys are echoed"
    );

    // Exactly the components libtatsu would send.
    let components: BTreeSet<&str> = req
        .iter()
        .filter(|(_, v)| v.as_dictionary().is_some())
        .map(|(k, _)| k.as_str())
        .collect();
    assert_eq!(
        components,
        BTreeSet::from(["AOP", "OS", "SEP", "ftap", "iBSS"])
    );
    assert!(
        !req.keys()
            .any(|k| k.starts_with("Bb") || k.starts_with("Baseband")),
        "no baseband keys: {:?}",
        req.keys().collect::<Vec<_>>()
    );
    let ibss = req.get("iBSS").and_then(Value::as_dictionary).unwrap();
    assert!(ibss.get("Info").is_none());
    assert_eq!(data_len(ibss, "Digest"), 48);
    assert_eq!(
        ibss.get("BuildString").and_then(Value::as_string),
        Some("iBoot-7459.102.5~1")
    );
    for key in ["EPRO", "ESEC", "Trusted"] {
        assert_eq!(
            ibss.get(key).and_then(Value::as_boolean),
            Some(true),
            "{key}"
        );
    }
    let ftap = req.get("ftap").and_then(Value::as_dictionary).unwrap();
    assert_eq!(
        data_len(ftap, "Digest"),
        0,
        "a Trusted entry without Digest gets an empty one"
    );
}

#[test]
fn status_94_is_not_signed_and_69_is_unknown() {
    let server = tss_answer(status_body(94, NOT_ELIGIBLE));
    let check = check_against(&server);
    assert_eq!(check.status, SigningStatus::NotSigned, "{}", check.message);
    assert_eq!(check.tss_status, Some(94));
    assert!(check.message.contains("3194"), "{}", check.message);
    assert!(
        check.message.contains("isn't eligible"),
        "{}",
        check.message
    );

    // 69 carries the same words, but every documented 69 was a signed build whose
    // request lacked keys (idevicerestore #598, #532): never "not signed".
    let server = tss_answer(status_body(69, NOT_ELIGIBLE));
    let check = check_against(&server);
    assert_eq!(check.status, SigningStatus::Unknown, "{}", check.message);
    assert_eq!(check.tss_status, Some(69));
    assert!(
        check.message.contains("not a signing verdict"),
        "{}",
        check.message
    );
    assert!(!check.message.contains("3194"), "{}", check.message);
}

#[test]
fn other_statuses_are_unknown_never_not_signed() {
    for code in [100, 8, 49, 126, 128, 168] {
        let server = tss_answer(status_body(code, "An internal error occurred."));
        let check = check_against(&server);
        assert_eq!(
            check.status,
            SigningStatus::Unknown,
            "{code}: {}",
            check.message
        );
        assert_eq!(check.tss_status, Some(code));
        assert!(
            check.message.contains(&format!("STATUS={code}")),
            "{}",
            check.message
        );
        assert!(check.message.contains("not evidence"), "{}", check.message);
    }
}

#[test]
fn http_500_is_unknown_and_not_retried() {
    let server = FakeServer::apple_and_ipswme(Reply::status(500), Reply::status(404));
    let check = check_against(&server);
    assert_eq!(check.status, SigningStatus::Unknown);
    assert_eq!(check.tss_status, None);
    assert!(check.message.contains("HTTP 500"), "{}", check.message);
    assert_eq!(
        server.tss_requests().len(),
        1,
        "an HTTP answer is never retried"
    );
}

#[test]
fn garbage_body_is_unknown() {
    let server = tss_answer(&b"<html><body>\xff\xfe Service Unavailable</body></html>"[..]);
    let check = check_against(&server);
    assert_eq!(check.status, SigningStatus::Unknown);
    assert!(
        check.message.contains("not a TSS answer"),
        "{}",
        check.message
    );
}

#[test]
fn oversized_body_is_refused() {
    let server = tss_answer(vec![b'A'; 9 * 1024 * 1024]);
    let check = check_against(&server);
    assert_eq!(check.status, SigningStatus::Unknown);
    assert!(check.message.contains("more than"), "{}", check.message);
}

#[test]
fn a_server_that_never_answers_costs_one_timeout() {
    let silent = SilentServer::start();
    let mut opts = options(
        format!("http://{}/TSS/controller?action=2", silent.addr),
        format!("http://{}/v4", silent.addr),
        None,
    );
    opts.timeout = Duration::from_secs(1);
    let m = d101ap();
    let start = Instant::now();
    let check = check_signing(&m, &all(&m), Some(PRODUCT), &opts);
    let elapsed = start.elapsed();
    assert_eq!(check.status, SigningStatus::Unknown, "{}", check.message);
    assert!(
        check.message.contains("no answer within"),
        "{}",
        check.message
    );
    assert!(
        elapsed < opts.timeout + Duration::from_secs(1),
        "took {elapsed:?} with a 1 s timeout"
    );
    assert_eq!(check.ipswme_signed, None);
}

#[test]
fn connection_refused_is_unknown() {
    let addr = refused_addr();
    let mut opts = options(
        format!("http://{addr}/TSS/controller?action=2"),
        format!("http://{addr}/v4"),
        None,
    );
    opts.timeout = Duration::from_secs(2);
    let m = d101ap();
    let start = Instant::now();
    let check = check_signing(&m, &all(&m), Some(PRODUCT), &opts);
    assert_eq!(check.status, SigningStatus::Unknown, "{}", check.message);
    assert!(
        check.message.to_ascii_lowercase().contains("refused"),
        "{}",
        check.message
    );
    assert!(start.elapsed() < opts.timeout + Duration::from_secs(1));
}

#[test]
fn connect_failures_are_retried() {
    // Nothing listens at first; the server comes up while the client waits to retry.
    let addr = refused_addr();
    let late = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(60));
        FakeServer::start_on(&addr.to_string(), |r| {
            if r.is_tss() {
                Reply::ok(signed_body())
            } else {
                Reply::status(404)
            }
        })
    });
    let opts = options(
        format!("http://{addr}/TSS/controller?action=2"),
        format!("http://{addr}/v4"),
        None,
    );
    std::thread::sleep(Duration::from_millis(5));
    let m = d101ap();
    let session = SigningSession::new(opts);
    let answer = session.identity_status(m.identities.first().unwrap());
    let server = late.join().unwrap();
    assert_eq!(answer.status, SigningStatus::Signed, "{}", answer.detail);
    assert_eq!(server.tss_requests().len(), 1);
}

#[test]
fn a_tls_failure_is_unknown() {
    // https:// to a server that speaks plain HTTP: the handshake fails.
    let addr = plain_http_responder();
    let mut opts = options(
        format!("https://{addr}/TSS/controller?action=2"),
        format!("https://{addr}/v4"),
        None,
    );
    opts.timeout = Duration::from_secs(3);
    let m = d101ap();
    let start = Instant::now();
    let check = check_signing(&m, &all(&m), None, &opts);
    assert_eq!(check.status, SigningStatus::Unknown, "{}", check.message);
    assert!(
        check.message.contains("could not reach https://"),
        "{}",
        check.message
    );
    assert!(
        !check.message.contains("no answer within"),
        "a handshake failure, not a timeout: {}",
        check.message
    );
    assert!(start.elapsed() < opts.timeout);
}

#[test]
fn a_ticket_containing_amp_is_signed() {
    let body =
        "STATUS=0&MESSAGE=SUCCESS&REQUEST_STRING=<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
        <plist version=\"1.0\"><dict>\
        <key>ApImg4Ticket</key><data>MIIKbDADFgFJ</data>\
        <key>Note</key><string>tom &amp; jerry = friends&amp;STATUS=94&amp;MESSAGE=x</string>\
        </dict></plist>";
    let server = tss_answer(body);
    let check = check_against(&server);
    assert_eq!(check.status, SigningStatus::Signed, "{}", check.message);
    assert_eq!(check.tss_status, Some(0));
}

#[test]
fn ipswme_disagreeing_is_a_dispute_or_said() {
    // Apple refuses, ipsw.me still says signed: neither decides.
    let server = FakeServer::apple_and_ipswme(
        Reply::ok(status_body(94, NOT_ELIGIBLE)),
        Reply::ok(ipswme_body(PRODUCT, BUILD, true, SHA1_HEX)),
    );
    let check = check_against(&server);
    assert_eq!(check.status, SigningStatus::Disputed, "{}", check.message);
    assert_eq!(check.ipswme_signed, Some(true));
    assert!(
        check.message.contains("Apple's signing server refused")
            && check.message.contains("ipsw.me lists"),
        "both sources are named: {}",
        check.message
    );
    assert_eq!(check.ipswme_sha1.as_deref().map(<[u8]>::len), Some(20));
    assert_eq!(check.ipswme_sha1.as_ref().unwrap()[..2], [0x4f, 0x6c]);
    let asked = server.ipswme_requests();
    assert_eq!(asked.len(), 1);
    assert_eq!(asked[0].method, "GET");
    assert_eq!(asked[0].url, "/v4/device/iPhone9,3?type=ipsw");

    // Apple signs, ipsw.me lags behind.
    let server = FakeServer::apple_and_ipswme(
        Reply::ok(signed_body()),
        Reply::ok(ipswme_body(PRODUCT, BUILD, false, SHA1_HEX)),
    );
    let check = check_against(&server);
    assert_eq!(check.status, SigningStatus::Signed);
    assert_eq!(check.ipswme_signed, Some(false));
    assert!(
        check.message.contains("ipsw.me disagrees"),
        "{}",
        check.message
    );

    // ipsw.me alone never makes a verdict.
    let server = FakeServer::apple_and_ipswme(
        Reply::status(503),
        Reply::ok(ipswme_body(PRODUCT, BUILD, true, SHA1_HEX)),
    );
    let check = check_against(&server);
    assert_eq!(check.status, SigningStatus::Unknown);
    assert_eq!(check.ipswme_signed, Some(true));
}

#[test]
fn ipswme_down_leaves_tss_in_charge() {
    let apple = tss_answer(signed_body());
    let down = refused_addr();
    let opts = options(apple.tss_url(), format!("http://{down}/v4"), None);
    let m = d101ap();
    let check = check_signing(&m, &all(&m), None, &opts);
    assert_eq!(check.status, SigningStatus::Signed, "{}", check.message);
    assert_eq!(check.ipswme_signed, None);
    assert_eq!(check.ipswme_sha1, None);
    assert!(!check.message.contains("ipsw.me"), "{}", check.message);
}

#[test]
fn product_type_defaults_to_the_manifests_first() {
    let server = FakeServer::apple_and_ipswme(
        Reply::ok(signed_body()),
        Reply::ok(ipswme_body(PRODUCT, BUILD, true, SHA1_HEX)),
    );
    let m = d101ap();
    let check = check_signing(&m, &all(&m), None, &server_options(&server, None));
    assert_eq!(check.ipswme_signed, Some(true));
    assert_eq!(
        server.ipswme_requests()[0].url,
        "/v4/device/iPhone9,3?type=ipsw"
    );
}

#[test]
fn every_board_must_be_signed() {
    // iPhone8,1 style: two boards. Apple signs one and refuses the other.
    let m = synthetic_manifest(
        "19H12",
        "iPhone8,1",
        &[("n71ap", 0x8000, 0x04), ("n71map", 0x8003, 0x04)],
    );
    let server = FakeServer::start(|r| {
        if !r.is_tss() {
            return Reply::status(404);
        }
        if integer(&r.plist(), "ApChipID") == 0x8003 {
            Reply::ok(status_body(94, NOT_ELIGIBLE))
        } else {
            Reply::ok(signed_body())
        }
    });
    let check = check_signing(&m, &all(&m), None, &server_options(&server, None));
    assert_eq!(check.status, SigningStatus::NotSigned, "{}", check.message);
    assert!(check.message.contains("n71map"), "{}", check.message);
    let chips: BTreeSet<u64> = server
        .tss_requests()
        .iter()
        .map(|r| integer(&r.plist(), "ApChipID"))
        .collect();
    assert_eq!(
        chips,
        BTreeSet::from([0x8000, 0x8003]),
        "one query per board"
    );
}

#[test]
fn the_cache_answers_within_its_ttl_and_refresh_asks_again() {
    let dir = tempfile::tempdir().unwrap();
    let server = tss_answer(signed_body());
    let m = d101ap();
    let mut opts = server_options(&server, Some(dir.path()));

    let first = check_signing(&m, &all(&m), None, &opts);
    assert_eq!(first.status, SigningStatus::Signed);
    assert!(!first.cached);
    assert_eq!(server.tss_requests().len(), 1);

    let second = check_signing(&m, &all(&m), None, &opts);
    assert_eq!(server.tss_requests().len(), 1, "no request within the TTL");
    assert_eq!(second.status, SigningStatus::Signed);
    assert!(second.cached);
    assert_eq!(second.source.as_deref(), Some("cache"));
    assert_eq!(
        second.checked_at, first.checked_at,
        "when the answer was obtained"
    );
    assert!(
        second.message.contains("cached answer from"),
        "{}",
        second.message
    );
    assert_eq!(
        serde_json::to_value(&second).unwrap()["source"],
        serde_json::json!("cache")
    );

    opts.refresh = true;
    let third = check_signing(&m, &all(&m), None, &opts);
    assert_eq!(server.tss_requests().len(), 2, "refresh asks Apple again");
    assert!(!third.cached);
    assert_eq!(third.source.as_deref(), Some("tss"));
}

#[test]
fn unknown_is_not_cached() {
    let dir = tempfile::tempdir().unwrap();
    let server = tss_answer(status_body(168, "An internal error occurred."));
    let m = d101ap();
    let opts = server_options(&server, Some(dir.path()));
    for _ in 0..2 {
        assert_eq!(
            check_signing(&m, &all(&m), None, &opts).status,
            SigningStatus::Unknown
        );
    }
    assert_eq!(server.tss_requests().len(), 2);
    let tss_files = std::fs::read_dir(dir.path())
        .map(|rd| {
            rd.filter_map(Result::ok)
                .filter(|e| e.file_name().to_string_lossy().starts_with("tss-"))
                .count()
        })
        .unwrap_or(0);
    assert_eq!(tss_files, 0);
}

#[test]
fn a_session_asks_once_per_identity_even_without_a_cache() {
    // What a library scan does: many files, one session, parallel checks.
    let server = tss_answer(signed_body());
    let session = SigningSession::new(server_options(&server, None));
    let m = d101ap();
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                let check = session.check(&m, &all(&m), None);
                assert_eq!(check.status, SigningStatus::Signed);
            });
        }
    });
    assert_eq!(server.tss_requests().len(), 1);
    assert_eq!(server.ipswme_requests().len(), 1);
}

#[test]
fn hosts_redirects_are_reported_with_line_numbers() {
    let dir = tempfile::tempdir().unwrap();
    let hosts = dir.path().join("hosts");
    std::fs::write(
        &hosts,
        "127.0.0.1\tlocalhost\n\
         # 74.208.105.171 gs.apple.com\n\
         ::1 localhost\n\
         74.208.105.171   GS.apple.com  # left by TinyUmbrella\n",
    )
    .unwrap();

    let found = hosts_redirects(&hosts).unwrap();
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].line, 4);
    assert_eq!(found[0].address, "74.208.105.171");

    // Reported by the check, online or not.
    let server = tss_answer(signed_body());
    let mut opts = server_options(&server, None);
    opts.hosts_file = hosts.clone();
    let m = d101ap();
    let check = check_signing(&m, &all(&m), None, &opts);
    assert_eq!(check.status, SigningStatus::Signed);
    assert_eq!(check.hosts_redirects, found);
    assert!(
        check.message.contains("line 4") && check.message.contains("3194"),
        "{}",
        check.message
    );
    let json = serde_json::to_value(&check).unwrap();
    assert_eq!(json["hosts_redirects"][0]["line"], 4);

    opts.offline = true;
    let offline = check_signing(&m, &all(&m), None, &opts);
    assert_eq!(offline.status, SigningStatus::Skipped);
    assert_eq!(offline.hosts_redirects, found);
}

#[test]
fn offline_touches_no_network() {
    let server = tss_answer(signed_body());
    let mut opts = server_options(&server, None);
    opts.offline = true;
    let m = d101ap();
    let check = check_signing(&m, &all(&m), None, &opts);
    assert_eq!(check.status, SigningStatus::Skipped);
    assert_eq!(check.source, None);
    assert!(matches!(
        signed_builds(PRODUCT, &opts),
        Err(SigningError::Offline(_))
    ));
    assert!(matches!(doctor(&opts).tss, Reachability::Skipped));
    assert!(server.requests().is_empty());
}

#[test]
fn no_identity_is_unknown_without_asking() {
    let server = tss_answer(signed_body());
    let m = d101ap();
    let check = check_signing(&m, &[], None, &server_options(&server, None));
    assert_eq!(check.status, SigningStatus::Unknown);
    assert!(server.tss_requests().is_empty());
}

#[test]
fn ipswme_lookups() {
    let server = FakeServer::apple_and_ipswme(
        Reply::status(500),
        Reply::ok(ipswme_body(PRODUCT, BUILD, false, SHA1_HEX)),
    );
    let opts = server_options(&server, None);
    let fw = ipswme_firmware(PRODUCT, BUILD, &opts).unwrap().unwrap();
    assert_eq!(fw.version, "15.4");
    assert!(!fw.signed);
    assert_eq!(fw.sha1sum.as_deref(), Some(SHA1_HEX));
    assert_eq!(ipswme_firmware(PRODUCT, "99Z999", &opts).unwrap(), None);

    let signed = signed_builds(PRODUCT, &opts).unwrap();
    assert_eq!(
        signed
            .iter()
            .map(|f| f.buildid.as_str())
            .collect::<Vec<_>>(),
        vec!["19H370"]
    );
    assert!(matches!(
        signed_builds("../etc", &opts),
        Err(SigningError::InvalidProductType(_))
    ));

    let broken = FakeServer::apple_and_ipswme(Reply::status(500), Reply::ok("<html>"));
    let err = signed_builds(PRODUCT, &server_options(&broken, None)).unwrap_err();
    assert!(matches!(err, SigningError::BadJson { .. }), "{err}");
    let down = FakeServer::apple_and_ipswme(Reply::status(500), Reply::status(502));
    let err = signed_builds(PRODUCT, &server_options(&down, None)).unwrap_err();
    assert!(
        matches!(err, SigningError::HttpStatus { status: 502, .. }),
        "{err}"
    );
}

#[test]
fn doctor_reports_reachability() {
    // Any HTTP answer means the server is there.
    let server = FakeServer::apple_and_ipswme(Reply::status(405), Reply::status(404));
    let report = doctor(&server_options(&server, None));
    assert!(
        matches!(
            report.tss,
            Reachability::Reachable {
                http_status: 405,
                ..
            }
        ),
        "{:?}",
        report.tss
    );
    assert!(report.to_string().contains("HTTP 405"), "{report}");

    let addr = refused_addr();
    let mut opts = options(
        format!("http://{addr}/TSS/controller?action=2"),
        String::new(),
        None,
    );
    opts.timeout = Duration::from_secs(1);
    let report = doctor(&opts);
    assert!(
        matches!(report.tss, Reachability::Unreachable { .. }),
        "{:?}",
        report.tss
    );
    assert!(!report.healthy());
    assert!(report.to_string().contains("PROBLEM"), "{report}");
}

// ---- real manifests from ../shared ----

fn erase_identity<'a>(m: &'a BuildManifest, class: &str) -> &'a BuildIdentity {
    m.identities
        .iter()
        .find(|id| {
            id.info
                .device_class
                .as_deref()
                .is_some_and(|c| c.eq_ignore_ascii_case(class))
                && id.info.behavior() == Some(RestoreBehavior::Erase)
        })
        .unwrap_or_else(|| panic!("an Erase identity for {class}"))
}

#[test]
fn real_15_4_request_has_the_sample_requests_keys() {
    let Some(m) =
        shared_manifest("data/buildmanifests/BuildManifest_iPhone_4.7_P3_15.4_19E241.plist")
    else {
        return;
    };
    let Some(sample_path) = shared("data/tss/sample_request_iPhone9,3_d101ap_15.4_19E241.plist")
    else {
        return;
    };
    let sample = Value::from_file(sample_path)
        .unwrap()
        .into_dictionary()
        .unwrap();
    let identity = erase_identity(&m, "d101ap");

    // Through the wire: what the server received.
    let server = tss_answer(signed_body());
    let check = check_signing(
        &m,
        &[identity],
        Some(PRODUCT),
        &server_options(&server, None),
    );
    assert_eq!(check.status, SigningStatus::Signed, "{}", check.message);
    let sent = server.tss_requests()[0].plist();

    let keys = |d: &Dictionary| d.keys().cloned().collect::<BTreeSet<String>>();
    assert_eq!(keys(&sent), keys(&sample), "top-level keys");
    for (name, value) in &sample {
        if let Some(entry) = value.as_dictionary() {
            let ours = sent.get(name).and_then(Value::as_dictionary).unwrap();
            assert_eq!(keys(ours), keys(entry), "keys of {name}");
            // The digests come from the manifest, unchanged.
            assert_eq!(ours.get("Digest"), entry.get("Digest"), "Digest of {name}");
        }
    }
    for key in ["ApChipID", "ApBoardID", "ApSecurityDomain"] {
        assert_eq!(sent.get(key), sample.get(key), "{key}");
    }
    assert_eq!(sent.get("UniqueBuildID"), sample.get("UniqueBuildID"));
    assert_eq!(data_len(&sent, "ApNonce"), 32);
    assert_eq!(data_len(&sent, "SepNonce"), 20);
    assert!(!sent
        .keys()
        .any(|k| k.starts_with("Bb") || k == "BasebandFirmware"));

    // The random parts differ between two requests; the rest does not.
    let again = build_tss_request(identity);
    assert_ne!(again.get("ApNonce"), sent.get("ApNonce"));
    assert_ne!(again.get("@UUID"), sent.get("@UUID"));
    assert_eq!(again.get("OS"), sent.get("OS"));
}

#[test]
fn real_a9_manifest_gets_20_byte_nonces_for_both_boards() {
    let Some(m) = shared_manifest("data/buildmanifests/BuildManifest_iPhone8,1_15.7_19H12.plist")
    else {
        return;
    };
    let n71 = erase_identity(&m, "n71ap");
    let n71m = erase_identity(&m, "n71map");
    let server = tss_answer(signed_body());
    let check = check_signing(
        &m,
        &[n71, n71m],
        Some("iPhone8,1"),
        &server_options(&server, None),
    );
    assert_eq!(check.status, SigningStatus::Signed, "{}", check.message);
    assert!(
        check.message.contains("n71ap") && check.message.contains("n71map"),
        "{}",
        check.message
    );

    let sent: Vec<Dictionary> = server.tss_requests().iter().map(|r| r.plist()).collect();
    assert_eq!(sent.len(), 2);
    let mut chips = BTreeSet::new();
    for req in &sent {
        chips.insert(integer(req, "ApChipID"));
        assert_eq!(data_len(req, "ApNonce"), 20, "A9 gets a 20-byte nonce");
        assert_eq!(data_len(req, "SepNonce"), 20);
        assert_eq!(
            req.get("@ApImg4Ticket").and_then(Value::as_boolean),
            Some(true)
        );
        assert!(!req
            .keys()
            .any(|k| k.starts_with("Bb") || k == "BasebandFirmware"));
    }
    assert_eq!(chips, BTreeSet::from([0x8000, 0x8003]));
}

#[test]
fn defaults_are_apples_servers_and_ten_seconds() {
    let defaults = SigningOptions::default();
    assert_eq!(
        defaults.tss_url,
        "https://gs.apple.com/TSS/controller?action=2"
    );
    assert_eq!(defaults.api_url, "https://api.ipsw.me/v4");
    assert_eq!(defaults.timeout, Duration::from_secs(10));
    assert!(!defaults.offline && !defaults.refresh);
    if cfg!(unix) {
        assert_eq!(defaults.hosts_file, std::path::Path::new("/etc/hosts"));
    }
}

/// Apple's server is shared: a check asks about at most two identities at a time (peers
/// ask one at a time), however many boards a file has.
#[test]
fn at_most_two_tss_queries_are_in_flight() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    // The one loopback server answers every connection on its own thread: concurrency
    // is what the client makes it.
    let (now, max) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let server = {
        let (now, max) = (now.clone(), max.clone());
        FakeServer::start(move |r| {
            if !r.is_tss() {
                return Reply::status(503);
            }
            let inflight = now.fetch_add(1, Ordering::SeqCst) + 1;
            max.fetch_max(inflight, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(150));
            now.fetch_sub(1, Ordering::SeqCst);
            Reply::ok(signed_body())
        })
    };
    let boards: Vec<(String, u32, u32)> = (0..6).map(|i| (format!("x{i}ap"), 0x8010, i)).collect();
    let boards: Vec<(&str, u32, u32)> = boards
        .iter()
        .map(|(c, a, b)| (c.as_str(), *a, *b))
        .collect();
    let m = synthetic_manifest(BUILD, PRODUCT, &boards);
    let ids: Vec<&BuildIdentity> = m.identities.iter().collect();
    let mut opts = server_options(&server, None);
    opts.timeout = Duration::from_secs(10);
    let check = check_signing(&m, &ids, Some(PRODUCT), &opts);
    assert_eq!(check.status, SigningStatus::Signed, "{}", check.message);
    assert_eq!(server.tss_requests().len(), 6, "every board asked");
    let max = max.load(Ordering::SeqCst);
    assert!((1..=2).contains(&max), "{max} queries in flight at once");
}
