//! Verifying a download as it arrives (`verify::follow`, the `fetch` path for servers
//! without range support) on arbitrary bytes: the walk over local headers in stream
//! order, the entries verified from them, the manifest read from the stream, and the
//! directory deciding afterwards which streamed outcomes stand (`VerifyPlan::inject`).
//!
//! Invariants: nothing panics or hangs; and when the follower did not stop the download,
//! the check of the complete file with the streamed outcomes injected reports exactly
//! what the check of the same bytes without them reports (the `streamed` facts aside):
//! local headers that disagree with the directory must never change a verdict.
#![no_main]

use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use ipswcheck::archive::{Archive, Entry, Watermark};
use ipswcheck::check::{self, CheckOptions, Progress};
use ipswcheck::manifest::RestoreBehavior;
use ipswcheck::signing::SigningOptions;
use ipswcheck::verify::follow::Follower;
use libfuzzer_sys::fuzz_target;

/// The report's JSON without what only the streamed run has.
fn comparable(report: &ipswcheck::report::Report) -> String {
    let mut report = report.clone();
    report.streamed = None;
    report.to_json()
}

fn options() -> CheckOptions {
    CheckOptions {
        device: None,
        behavior: RestoreBehavior::Erase,
        quick: false,
        expected: None,
        signing: SigningOptions {
            offline: true,
            cache_dir: None,
            ..SigningOptions::default()
        },
    }
}

fuzz_target!(|data: &[u8]| {
    let dir = std::env::temp_dir().join(format!("ipswcheck-fuzz-streamed-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let path = dir.join("download.ipsw");
    {
        let mut f = std::fs::File::create(&path).expect("a temporary file");
        f.write_all(data).expect("written");
    }
    run(&path, data.len() as u64);
});

fn run(path: &Path, len: u64) {
    let options = options();
    let file = std::fs::File::open(path).expect("reopened");
    // Every byte is in place before the follower starts; the walk still goes through the
    // watermark's reads, which are the same whether the bytes came early or late.
    let watermark = Arc::new(Watermark::new());
    watermark.advance(len);
    watermark.close();
    let growing = Archive::growing(path, file, len, Arc::clone(&watermark));
    let read_manifest =
        |archive: &Archive, entry: &Entry| check::streamed_manifest(archive, entry, &options);
    let follower = Follower::new(
        &growing,
        &watermark,
        check::whole_file_algorithms(&options),
        &read_manifest,
    );
    follower.run();
    let mut streamed = follower.into_streamed();
    drop(growing);
    if streamed.stop_reason().is_some() {
        // What a stopped download reports: the stream's own account, no directory.
        let report = check::stopped_report("fuzz", len, &mut streamed, &options, "stopped");
        let _ = report.to_json();
        return;
    }
    drop(streamed.take_manifest());
    let Ok(ipsw) = check::open_ipsw(path) else {
        return;
    };
    let (with, _) =
        check::check_opened_streamed(&ipsw, &options, &Progress::default(), Some(&streamed));
    let (without, _) = check::check_opened_streamed(&ipsw, &options, &Progress::default(), None);
    assert_eq!(
        comparable(&with),
        comparable(&without),
        "the streamed outcomes changed the report"
    );
}
