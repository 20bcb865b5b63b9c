//! The file checked is the file reported (issue 14, class 7): a verdict names a path,
//! so the file at that path at the end of the check must be the one that was opened
//! (same device and inode, size and modification time). Otherwise the report says
//! "changed during the check" (exit 10), whatever the hashes said.
//!
//! Deterministic: the library API opens the file ([`check::open_ipsw`]), the test
//! changes the path, and then the check runs ([`check::check_opened`]) — the same two
//! steps `check_file` takes, with the change in between. The binary test renames a file
//! over the path while a 290 MB check is reading (as `adversarial` cuts a file).

use std::path::Path;

use ipswcheck::check::{self, Progress};
use ipswcheck::report::Report;
use ipswcheck_fixture::IpswSpec;

use crate::util::measure::spawn_reading;
use crate::util::robust::*;

/// Open `path`, apply `change`, then check what was opened.
fn check_with_change_between(path: &Path, change: impl FnOnce(&Path)) -> Report {
    let options = offline_options(Some("iPhone9,3"));
    let ipsw = check::open_ipsw(path).expect("the sample opens");
    change(path);
    check::check_opened(&ipsw, &options, &Progress::default())
}

fn assert_changed(report: &Report, why: &str) {
    assert_eq!(report.exit_code, 10, "{}", report.render(true));
    let head = report.headline();
    assert!(
        head.starts_with("NOT READY: ") && head.contains("changed during the check"),
        "{head}"
    );
    assert!(head.contains(why), "{head}");
}

#[test]
fn an_identical_copy_renamed_over_the_path_is_another_file() {
    let dir = tempfile::tempdir().unwrap();
    let (path, _, _) = sample(dir.path());
    // Same bytes, same size, same modification time: only the inode tells them apart.
    let copy = dir.path().join("copy.ipsw");
    std::fs::copy(&path, &copy).unwrap();
    let mtime = std::fs::metadata(&path).unwrap().modified().unwrap();
    std::fs::File::options()
        .write(true)
        .open(&copy)
        .unwrap()
        .set_modified(mtime)
        .unwrap();
    let report = check_with_change_between(&path, |p| std::fs::rename(&copy, p).unwrap());
    assert_changed(&report, "another file was put in its place");
}

#[test]
fn a_different_file_renamed_over_the_path_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let (path, _, items) = sample(dir.path());
    // A different IPSW (one entry more), moved in as a download tool finishes.
    let other = dir.path().join("other.ipsw.part");
    let extra = RawItem::stored("extra.txt", b"not the same file");
    std::fs::write(&other, sample_plus(&items, &[extra])).unwrap();
    let report = check_with_change_between(&path, |p| std::fs::rename(&other, p).unwrap());
    assert_changed(&report, "another file was put in its place");
}

#[test]
fn a_path_removed_during_the_check_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let (path, _, _) = sample(dir.path());
    let away = dir.path().join("moved.ipsw");
    let report = check_with_change_between(&path, |p| std::fs::rename(p, &away).unwrap());
    assert_changed(&report, "removed or renamed away");
    let report = check_with_change_between(&away, |p| std::fs::remove_file(p).unwrap());
    assert_changed(&report, "removed or renamed away");
}

#[test]
fn the_same_file_moved_away_and_back_is_still_the_file_checked() {
    let dir = tempfile::tempdir().unwrap();
    let (path, _, _) = sample(dir.path());
    let away = dir.path().join("moved.ipsw");
    // The controls: nothing happens; or the same inode comes back to the path.
    let report = check_with_change_between(&path, |_| {});
    assert_eq!(report.exit_code, 0, "{}", report.render(true));
    let report = check_with_change_between(&path, |p| {
        std::fs::rename(p, &away).unwrap();
        std::fs::rename(&away, p).unwrap();
    });
    assert_eq!(report.exit_code, 0, "{}", report.render(true));
    // A hard link is the same file too.
    let link = dir.path().join("link.ipsw");
    let report = check_with_change_between(&path, |p| std::fs::hard_link(p, &link).unwrap());
    assert_eq!(report.exit_code, 0, "{}", report.render(true));
}

#[test]
fn the_binary_reports_a_file_renamed_over_the_path_mid_check() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.ipsw");
    IpswSpec::benchmark_stored(0.1).build(&path).unwrap();
    let copy = dir.path().join("copy.ipsw");
    std::fs::copy(&path, &copy).unwrap();
    // Once the check is reading (32 MB of the file mapped in), swap the file.
    let (_bin, child) = spawn_reading(&path, "swapped");
    std::fs::rename(&copy, &path).unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(10), "{stdout}");
    let head = stdout.lines().next().unwrap_or("");
    assert!(
        head.contains("changed during the check") && head.contains("another file"),
        "{stdout}"
    );
}
