//! The trusted whole-file digest short-circuit (src/verify/shortcut.rs): a file that
//! matches the whole-file digest the user gives (or Apple publishes, via ipsw.me) has its
//! components reported covered; a mismatch changes nothing.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64};

use ipswcheck::archive::Archive;
use ipswcheck::check::ExpectedChecksum;
use ipswcheck::digest::{DigestAlgorithm, Hasher};
use ipswcheck::judge::Finding;
use ipswcheck::manifest::BuildManifest;
use ipswcheck::verify::{
    self, ComponentStatus, TrustSource, TrustedDigest, VerifyOptions, VerifyPlan,
};
use ipswcheck_fixture::IpswSpec;

use crate::util::*;

const USER_REASON: &str = "covered by the whole-file SHA-1 you gave (the file matches it)";

fn modern(dir: &Path) -> (PathBuf, ipswcheck_fixture::FixtureLayout) {
    let path = dir.join("modern.ipsw");
    let layout = IpswSpec::modern(0.004).build(&path).unwrap();
    (path, layout)
}

fn sha1_of(path: &Path) -> Vec<u8> {
    let mut h = DigestAlgorithm::Sha1.hasher();
    h.update(&std::fs::read(path).unwrap());
    Hasher::finish(h)
}

fn with_sha1(digest: Vec<u8>) -> ipswcheck::check::CheckOptions {
    let mut o = options(Some("iPhone13,2"));
    o.expected = Some(ExpectedChecksum {
        algorithm: DigestAlgorithm::Sha1,
        digest,
    });
    o
}

fn covered_finding(report: &ipswcheck::report::Report) -> Option<usize> {
    report.findings.iter().find_map(|f| match f {
        Finding::ComponentsCovered { count, .. } => Some(*count),
        _ => None,
    })
}

#[test]
fn a_matching_sha1_covers_the_components_and_exits_0() {
    let dir = tempfile::tempdir().unwrap();
    let (path, _) = modern(dir.path());
    let report = check(&path, &with_sha1(sha1_of(&path)));
    assert_eq!(report.exit_code, 0, "{}", report.render(true));
    let items = &report.checks.components.items;
    assert!(items
        .iter()
        .all(|c| matches!(c.status, ComponentStatus::Ok | ComponentStatus::Skipped)));
    // The whole-file job runs first, so at least the components still queued when it
    // matched are covered rather than hashed, and the note counts exactly those.
    let covered = items
        .iter()
        .filter(|c| c.reason.as_deref() == Some(USER_REASON))
        .count();
    assert!(covered > 0, "{items:#?}");
    assert_eq!(covered_finding(&report), Some(covered));
    assert!(items
        .iter()
        .filter(|c| c.reason.as_deref() == Some(USER_REASON))
        .all(|c| c.status == ComponentStatus::Ok && c.actual.is_none()));
    // A covered run is a complete one: not interrupted, every entry vouched for.
    assert!(!report
        .findings
        .iter()
        .any(|f| matches!(f, Finding::Interrupted { .. })));
    assert_eq!(
        report.checks.archive.crc_checked,
        report.checks.archive.entries
    );
}

#[test]
fn a_wrong_sha1_on_an_intact_file_changes_nothing_but_the_checksum() {
    let dir = tempfile::tempdir().unwrap();
    let (path, _) = modern(dir.path());
    let plain = check(&path, &options(Some("iPhone13,2")));
    let report = check(&path, &with_sha1(vec![0xAB; 20]));
    // exit 12: the checksum the user gave differs; the components verify as without it.
    assert_eq!(report.exit_code, 12, "{}", report.render(true));
    assert_eq!(covered_finding(&report), None);
    assert_eq!(
        report.checks.components.items,
        plain.checks.components.items
    );
    assert!(report
        .checks
        .components
        .items
        .iter()
        .all(|c| c.reason.as_deref() != Some(USER_REASON)));
    assert!(report
        .checks
        .components
        .items
        .iter()
        .any(|c| c.name == "OS" && c.status == ComponentStatus::Ok && c.actual.is_some()));
}

#[test]
fn a_wrong_sha1_on_a_damaged_file_still_names_the_component() {
    let dir = tempfile::tempdir().unwrap();
    let (path, layout) = modern(dir.path());
    let original = sha1_of(&path);
    // Flip a byte in the middle of the stored OS image.
    let os = layout.entry("043-87893-081.dmg").unwrap();
    let at = os.data_offset + os.compressed_size / 2;
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[at as usize] ^= 0x55;
    std::fs::write(&path, &bytes).unwrap();
    let report = check(&path, &with_sha1(original));
    assert_eq!(covered_finding(&report), None);
    assert!(
        report.findings.iter().any(|f| matches!(
            f,
            Finding::ComponentMismatch { name, .. } if name == "OS"
        )),
        "{}",
        report.render(true)
    );
    assert_eq!(status_of(&report, "OS"), ComponentStatus::Mismatch);
    assert_ne!(report.exit_code, 0);
}

/// ipsw.me's SHA-1 arrives on the signing thread, maybe after the whole file was hashed:
/// whichever comes second covers the components.
#[test]
fn a_sha1_learnt_after_the_hash_still_covers_and_a_wrong_one_does_not() {
    let dir = tempfile::tempdir().unwrap();
    let (path, _) = modern(dir.path());
    let archive = Archive::open(&path).unwrap();
    let bytes = archive
        .read_small(archive.entry("BuildManifest.plist").unwrap(), 64 << 20)
        .unwrap();
    let manifest = BuildManifest::from_bytes(&bytes).unwrap();
    let identities: Vec<_> = manifest.identities.iter().collect();
    for (digest, covers) in [(sha1_of(&path), true), (vec![7u8; 20], false)] {
        let plan = VerifyPlan::new(
            &archive,
            &identities,
            VerifyOptions {
                hash: true,
                whole_file: vec![DigestAlgorithm::Sha1],
                shortcut: true,
                trusted: None,
            },
        );
        verify::run_plans(&[&plan], &AtomicU64::new(0), &AtomicBool::new(false));
        plan.trust(TrustedDigest {
            algorithm: DigestAlgorithm::Sha1,
            digest,
            source: TrustSource::IpswMe,
        });
        let v = plan.finish();
        assert!(!v.cancelled);
        // Everything was hashed before the digest came: nothing is left to cover, but
        // the file is still known to be Apple's.
        assert_eq!(v.covered_by.is_some(), covers);
        assert!(v.components.iter().all(|c| !c.status.is_failure()));
    }
}

/// Online (ipsw.me's SHA-1) or with `--sha1`, the file is read twice at once; the
/// progress total still counts each byte once (it used to show a 1.41 GiB file as
/// 2.82 GiB), and ends full.
#[test]
fn a_whole_file_digest_does_not_double_the_progress_total() {
    let dir = tempfile::tempdir().unwrap();
    let (path, _) = modern(dir.path());
    let size = std::fs::metadata(&path).unwrap().len();
    for expected in [None, Some(vec![0xAB; 20]), Some(sha1_of(&path))] {
        let mut o = options(Some("iPhone13,2"));
        o.expected = expected.clone().map(|digest| ExpectedChecksum {
            algorithm: DigestAlgorithm::Sha1,
            digest,
        });
        let progress = ipswcheck::check::Progress::default();
        let _ = ipswcheck::check::check_file(&path, &o, &progress);
        let total = progress.total.load(std::sync::atomic::Ordering::SeqCst);
        let done = progress.done.load(std::sync::atomic::Ordering::SeqCst);
        assert!(total <= size && total > size / 10 * 9, "{total} of {size}");
        assert_eq!(done, total, "with {expected:?}");
    }
}

/// An online `scan` hands ipsw.me's SHA-1 to each file's running verification, as a
/// single check does: a file that matches it is covered; a SHA-1 that does not match
/// covers nothing, and every component is still hashed and found intact.
#[test]
fn an_online_scan_is_covered_by_the_sha1_ipswme_publishes_and_only_by_a_match() {
    use crate::util::signing::{ipswme_body, server_options, signed_body, FakeServer, Reply};
    use ipswcheck::scan::{self, ScanOptions, ScanProgress};

    for matching in [true, false] {
        let dir = tempfile::tempdir().unwrap();
        let lib = dir.path().join("lib");
        std::fs::create_dir(&lib).unwrap();
        let (path, _) = modern(&lib);
        let sha1: String = if matching {
            sha1_of(&path).iter().map(|b| format!("{b:02x}")).collect()
        } else {
            "0123456789abcdef0123456789abcdef01234567".into()
        };
        let server = FakeServer::start(move |r| {
            if r.is_tss() {
                Reply::ok(signed_body())
            } else {
                Reply::ok(ipswme_body("iPhone13,2", "21F90", true, &sha1))
            }
        });
        let mut check = options(Some("iPhone13,2"));
        check.signing = server_options(&server, Some(&dir.path().join("cache")));
        let mut o = ScanOptions::new(vec![lib], check);
        o.jobs = 2;
        o.window = scan::default_window(2);
        let result = scan::scan(&o, &ScanProgress::default(), &AtomicBool::new(false)).unwrap();
        let row = &result.files[0];
        assert_eq!(
            server.ipswme_requests().len(),
            1,
            "ipsw.me was asked about the build"
        );
        let covered = covered_finding(&row.report);
        assert_eq!(covered.is_some(), matching, "{}", row.report.render(true));
        let items = &row.report.checks.components.items;
        // Covered or hashed, every component is intact: ipsw.me's different SHA-1 is
        // reported as such, never turned into "corrupt".
        assert!(items.iter().all(|c| !c.status.is_failure()));
        assert!(items
            .iter()
            .all(|c| c.reason.as_deref() != Some(USER_REASON)));
        // A third party's different number is a warning, never "corrupt": exit 0 both ways.
        assert_eq!(row.report.exit_code, 0, "{}", row.report.render(true));
        let expected_status = if matching {
            ipswcheck::report::CheckStatus::Ok
        } else {
            ipswcheck::report::CheckStatus::Warn
        };
        assert_eq!(row.report.checks.checksum.status, expected_status);
    }
}
