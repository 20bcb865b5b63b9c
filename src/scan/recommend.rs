//! `scan --device`: which file of the library restores that device now — the newest
//! intact, signed release for it (versions compared numerically, then builds; releases
//! before betas), or why there is none.

use super::{restore_error, FileResult, FileStatus, Recommendation};
use crate::check::CheckOptions;
use crate::signing::SigningStatus;

/// `15.10.1` → [15, 10, 1]: compared numerically.
fn version_key(version: &str) -> Vec<u64> {
    version
        .split('.')
        .map(|p| p.trim().parse().unwrap_or(0))
        .collect()
}

/// `19H370` → (19, "H", 370, ""); `20A5283p` → (20, "A", 5283, "p").
pub(super) fn build_key(build: &str) -> (u64, String, u64, String) {
    let digits = |s: &str| -> (u64, usize) {
        let n = s.chars().take_while(char::is_ascii_digit).count();
        (s[..n].parse().unwrap_or(0), n)
    };
    let (major, n) = digits(build);
    let rest = &build[n..];
    let letters = rest.chars().take_while(char::is_ascii_alphabetic).count();
    let train = rest[..letters].to_owned();
    let rest = &rest[letters..];
    let (minor, n) = digits(rest);
    (major, train, minor, rest[n..].to_owned())
}

fn newest_key(f: &FileResult) -> (bool, Vec<u64>, (u64, String, u64, String)) {
    (
        !f.beta(),
        version_key(f.version().unwrap_or_default()),
        build_key(f.build().unwrap_or_default()),
    )
}

/// The newest intact, signed file for `product_type`, or why there is none. Releases
/// are preferred to betas; among equals the first by path.
pub(super) fn recommend(
    product_type: &str,
    name: &str,
    files: &[FileResult],
    options: &CheckOptions,
) -> Recommendation {
    let device = format!("{name} ({product_type})");
    let mut rec = Recommendation {
        product_type: product_type.to_owned(),
        device: name.to_owned(),
        path: None,
        product_version: None,
        build: None,
        signing: None,
        message: String::new(),
    };
    let for_device: Vec<&FileResult> = files
        .iter()
        .filter(|f| f.for_device == Some(true))
        .collect();
    let mut best: Option<&FileResult> = None;
    for f in for_device
        .iter()
        .copied()
        .filter(|f| f.status == FileStatus::Ok)
    {
        if best.is_none_or(|b| newest_key(f) > newest_key(b)) {
            best = Some(f);
        }
    }
    if let Some(f) = best {
        let signing = f.report.checks.signing.status;
        // Only a file whose components were hashed is known to be intact: a --quick or
        // remote (URL) row read the directory alone.
        let hashed = f.report.checks.components.status == crate::report::CheckStatus::Ok;
        let mut notes = vec![if hashed {
            "intact".to_owned()
        } else if f.report.bytes_fetched.is_some() {
            "not hashed (checked remotely)".to_owned()
        } else {
            "not hashed (--quick)".to_owned()
        }];
        notes.push(match signing {
            SigningStatus::Signed => "signed by Apple now".into(),
            _ if options.signing.offline => "signing not checked (--offline)".into(),
            _ => "signing not checked".into(),
        });
        if f.beta() {
            notes.push("a beta: no release build qualifies".into());
        }
        rec.message = format!("use {}: {}, {}", f.path_str(), f.label(), notes.join(", "));
        if let Some(newer_beta) = for_device
            .iter()
            .filter(|g| g.status == FileStatus::Ok && g.beta() && !f.beta())
            .filter(|g| {
                (
                    version_key(g.version().unwrap_or_default()),
                    build_key(g.build().unwrap_or_default()),
                ) > (
                    version_key(f.version().unwrap_or_default()),
                    build_key(f.build().unwrap_or_default()),
                )
            })
            .max_by_key(|g| newest_key(g))
        {
            rec.message.push_str(&format!(
                "; the newer {} is a beta ({}): betas are not recommended for a restore",
                newer_beta.label(),
                newer_beta.path_str()
            ));
        }
        rec.path = Some(f.path_str());
        rec.product_version = f.version().map(str::to_owned);
        rec.build = f.build().map(str::to_owned);
        rec.signing = Some(signing);
        return rec;
    }
    if for_device.is_empty() {
        let unidentified = files.iter().filter(|f| f.for_device.is_none()).count();
        rec.message = format!("no file in the library is for the {device}");
        if unidentified > 0 {
            rec.message.push_str(&format!(
                " ({unidentified} damaged {} could not be identified)",
                plural(unidentified, "file", "files")
            ));
        }
        return rec;
    }
    let n = for_device.len();
    let files_are = format!("{n} {} for this device", plural(n, "file is", "files are"));
    let reason = |f: &FileResult| -> String {
        match f.status {
            FileStatus::Unsigned => "not signed".into(),
            FileStatus::SigningUnknown => "signing unknown".into(),
            FileStatus::Damaged => match restore_error(&f.report) {
                Some(e) => format!("damaged (error {e})"),
                None => "damaged".into(),
            },
            FileStatus::Incomplete => "incomplete".into(),
            FileStatus::Interrupted => "check interrupted".into(),
            FileStatus::NotRestorable => "not a restore IPSW".into(),
            FileStatus::Ok => "ok".into(),
        }
    };
    let items: Vec<String> = for_device
        .iter()
        .map(|f| format!("{} ({}): {}", f.path_str(), f.label(), reason(f)))
        .collect();
    rec.message = if for_device.iter().all(|f| f.status == FileStatus::Unsigned) {
        format!("{files_are} but none is signed: {}", items.join("; "))
    } else {
        format!(
            "{files_are} but none is both intact and signed: {}",
            items.join("; ")
        )
    };
    rec
}

fn plural<'a>(n: usize, one: &'a str, many: &'a str) -> &'a str {
    if n == 1 {
        one
    } else {
        many
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_and_versions_compare_numerically() {
        assert!(version_key("15.10") > version_key("15.8"));
        assert!(version_key("15.8.1") > version_key("15.8"));
        assert!(build_key("19H370") > build_key("19H12"));
        assert!(build_key("20A362") > build_key("19H370"));
        assert_eq!(build_key("20A5283p"), (20, "A".into(), 5283, "p".into()));
    }
}
