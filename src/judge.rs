//! The one judge: typed findings in, verdict, exit code, predicted restore error and scan
//! status out.
//!
//! Every check (open, identify, verify, sign) reports what it found as a [`Finding`] — data
//! with fields, in the spirit of apple-codesign's `VerificationProblem` — and never decides
//! what it means for the user. [`judge`] is the only place that does: which failure a
//! restore would meet first (README "Exit codes", restore order in [`ExitCode`]), which
//! Finder/iTunes error it ends in (FIRMWARE.md §5), what `scan` calls the file, and the
//! verdict. The words and hints live beside each variant ([`Finding::message`],
//! [`Finding::hint`]) so that every renderer says the same thing.

use serde::Serialize;

use crate::digest::DigestAlgorithm;
use crate::exit::ExitCode;
use crate::manifest::RestoreBehavior;

/// One thing a check found. Failures decide the exit code; notes ([`Finding::is_note`])
/// are said but never fail a check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Finding {
    /// The path is not a readable IPSW: missing, unreadable, not a zip, no or an
    /// unparsable BuildManifest (exit 3).
    NotAnIpsw {
        file: String,
        reason: String,
        hint: String,
    },
    /// A zip with a BuildManifest that restores nothing: its identities have no
    /// `RestoreBehavior` (a Developer Disk Image, a macOS bootability bundle; FIRMWARE.md
    /// §1). Never "READY" (exit 3).
    NotARestoreIpsw { file: String, variants: Vec<String> },
    /// The file ends before its zip end record: a download cut short (exit 10, error 14).
    Truncated { file: String, reason: String },
    /// Damage to the zip: a broken directory, a CRC-32 failure, a bad entry (exit 10,
    /// error 14). `entry` is empty for damage to the archive as a whole.
    ArchiveDamage {
        entry: String,
        problem: String,
        crc: bool,
    },
    /// Size or modification time changed while the file was read (exit 10).
    ChangedDuringCheck { file: String, why: String },
    /// Finder would refuse the file as "not compatible" (exit 20).
    NotForDevice { message: String, hint: String },
    /// The file has an identity for the device's board, but only of the other kind
    /// (an Update-only, OTA-style file checked for an Erase restore, or the reverse).
    OnlyOtherBehavior {
        device: String,
        board: String,
        has: RestoreBehavior,
    },
    /// A file the build identity names is not in the IPSW (exit 11, error 11).
    ComponentMissing {
        name: String,
        path: Option<String>,
        board: Option<String>,
    },
    /// A component's bytes do not hash to the manifest's Digest (exit 11, error 14).
    ComponentMismatch {
        name: String,
        path: Option<String>,
        board: Option<String>,
        reason: Option<String>,
    },
    /// The whole file differs from the checksum the user gave (exit 12, error 14).
    ChecksumMismatch {
        algorithm: DigestAlgorithm,
        expected: String,
        actual: String,
    },
    /// A hosts-file line sends gs.apple.com elsewhere: every restore fails with 3194.
    HostsRedirect {
        hosts_file: String,
        line: usize,
        address: String,
        entry: String,
    },
    /// Apple's TSS server refused the build (STATUS=94; exit 30, error 3194).
    NotSigned { message: String },
    /// Whether Apple signs the build could not be found out (exit 31).
    SigningUnknown { message: String },
    /// Apple refused while ipsw.me says signed (exit 31).
    SigningDisputed { message: String },
    /// The check stopped before it finished (Ctrl-C; exit 130).
    Interrupted { message: String },
    /// A download or a rename failed (`fetch`; exit 3): the file is not there to restore.
    NotDownloaded { message: String, hint: String },

    // ---- notes: said, never a failure ----
    /// `--quick` (or a remote check): the structure and the model were checked, the
    /// contents were not hashed.
    ContentsNotVerified { remote: bool },
    /// Components whose digest rule ipswcheck cannot confirm for this file (an IMG3 whose
    /// signed area and whole file both differ, an `.aea` image): not failures, but not
    /// verified either.
    Unverifiable { count: usize, reasons: Vec<String> },
    /// ipsw.me's SHA-1, a third party's number, differs from a file whose every CRC and
    /// component digest verified.
    ChecksumAdvisory { message: String },
    /// A zip layout Apple never writes but every reader reads the same way (bytes before
    /// the archive, or after its end record): everything was still read and verified,
    /// and the whole-file checksum cannot be Apple's.
    ArchiveOddity { file: String, oddity: String },
    /// Signing was not asked (offline, or the file is not for the device).
    SigningNotChecked { reason: String },
    /// `--device auto`: the device on the cable, its mode and its USB link (speed, hubs),
    /// with what to do when the link is a known cause of 4013/4014/4005.
    ConnectedDevice {
        device: String,
        link: String,
        advice: Option<String>,
    },
    /// The device (normal mode) runs a newer version than the file: a restore is a
    /// downgrade (erases; fails with 3194/1015 unless Apple signs the file's build), and an
    /// update (`update`) cannot go backwards.
    Downgrade {
        device: String,
        on_device: String,
        file: String,
        update: bool,
    },
    /// The device (normal mode) runs the file's version already.
    SameVersion {
        device: String,
        version: String,
        update: bool,
    },
    /// The whole file matched a trusted whole-file digest (`--sha1`/`--sha256`, or the
    /// SHA-1 Apple published, via ipsw.me), so it is byte-identical to that file and
    /// `count` components were reported covered by it instead of hashed one by one.
    ComponentsCovered {
        algorithm: DigestAlgorithm,
        /// `user` or `ipsw.me`.
        source: String,
        count: usize,
    },
}

/// Overall answer to "can I restore with this file now?".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Every check passed, contents included.
    Ready,
    /// `--quick` or a remote check: structure, model and signing passed; the contents
    /// were not hashed.
    StructureOk,
    NotReady,
    /// Nothing failed, but something could not be established (signing unknown or
    /// disputed, check interrupted).
    Unknown,
}

/// What `scan` calls a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FileStatus {
    /// Every check asked for passed (signed, or signing not asked).
    Ok,
    /// Corrupt: CRC failure, broken directory, component or whole-file digest mismatch,
    /// not a readable IPSW. A restore fails (usually error 14).
    Damaged,
    /// Not all there: truncated download, components missing (error 11), or the file
    /// changed while it was read (still being written).
    Incomplete,
    /// A manifest that restores nothing (Developer Disk Image, bootability bundle).
    NotRestorable,
    /// Intact, but Apple no longer signs it (error 3194).
    Unsigned,
    /// Intact, but whether Apple signs it could not be found out.
    SigningUnknown,
    /// The check was stopped by Ctrl-C before it finished.
    Interrupted,
}

impl FileStatus {
    pub const ALL: [FileStatus; 7] = [
        FileStatus::Ok,
        FileStatus::Damaged,
        FileStatus::Incomplete,
        FileStatus::NotRestorable,
        FileStatus::Unsigned,
        FileStatus::SigningUnknown,
        FileStatus::Interrupted,
    ];

    pub fn name(self) -> &'static str {
        match self {
            FileStatus::Ok => "ok",
            FileStatus::Damaged => "damaged",
            FileStatus::Incomplete => "incomplete",
            FileStatus::NotRestorable => "not_restorable",
            FileStatus::Unsigned => "unsigned",
            FileStatus::SigningUnknown => "signing_unknown",
            FileStatus::Interrupted => "interrupted",
        }
    }

    pub fn is_failure(self) -> bool {
        self != FileStatus::Ok
    }

    /// Which status wins when a file has several: the one that says most about the
    /// file itself (lower wins). Damage beats a missing part (a corrupt file with a
    /// missing component is corrupt), and both beat anything about signing.
    fn rank(self) -> u8 {
        match self {
            FileStatus::Interrupted => 0,
            FileStatus::NotRestorable => 1,
            FileStatus::Damaged => 2,
            FileStatus::Incomplete => 3,
            FileStatus::Unsigned => 4,
            FileStatus::SigningUnknown => 5,
            FileStatus::Ok => 6,
        }
    }
}

impl Finding {
    /// Notes are said, and never fail a check.
    pub fn is_note(&self) -> bool {
        matches!(
            self,
            Finding::ContentsNotVerified { .. }
                | Finding::Unverifiable { .. }
                | Finding::ChecksumAdvisory { .. }
                | Finding::ArchiveOddity { .. }
                | Finding::SigningNotChecked { .. }
                | Finding::ConnectedDevice { .. }
                | Finding::Downgrade { .. }
                | Finding::SameVersion { .. }
                | Finding::ComponentsCovered { .. }
        )
    }

    /// The failure class (README "Exit codes"); `None` for notes.
    pub fn exit_code(&self) -> Option<ExitCode> {
        Some(match self {
            Finding::NotAnIpsw { .. }
            | Finding::NotARestoreIpsw { .. }
            | Finding::NotDownloaded { .. } => ExitCode::NotAnIpsw,
            Finding::Truncated { .. }
            | Finding::ArchiveDamage { .. }
            | Finding::ChangedDuringCheck { .. } => ExitCode::ArchiveDamaged,
            Finding::NotForDevice { .. } | Finding::OnlyOtherBehavior { .. } => {
                ExitCode::WrongDevice
            }
            Finding::ComponentMissing { .. } | Finding::ComponentMismatch { .. } => {
                ExitCode::ComponentFailure
            }
            Finding::ChecksumMismatch { .. } => ExitCode::ChecksumMismatch,
            Finding::HostsRedirect { .. } | Finding::NotSigned { .. } => ExitCode::NotSigned,
            Finding::SigningUnknown { .. } | Finding::SigningDisputed { .. } => {
                ExitCode::SigningUnknown
            }
            Finding::Interrupted { .. } => ExitCode::Interrupted,
            Finding::ContentsNotVerified { .. }
            | Finding::Unverifiable { .. }
            | Finding::ChecksumAdvisory { .. }
            | Finding::ArchiveOddity { .. }
            | Finding::SigningNotChecked { .. }
            | Finding::ConnectedDevice { .. }
            | Finding::Downgrade { .. }
            | Finding::SameVersion { .. }
            | Finding::ComponentsCovered { .. } => return None,
        })
    }

    /// The Finder/iTunes error a restore meeting this finding ends in (FIRMWARE.md §5).
    pub fn restore_error(&self) -> Option<&'static str> {
        match self {
            Finding::Truncated { .. }
            | Finding::ArchiveDamage { .. }
            | Finding::ComponentMismatch { .. }
            | Finding::ChecksumMismatch { .. } => Some("14"),
            Finding::ComponentMissing { .. } => Some("11"),
            Finding::HostsRedirect { .. } | Finding::NotSigned { .. } => Some("3194"),
            _ => None,
        }
    }

    /// What `scan` calls a file with this finding.
    pub fn file_status(&self) -> Option<FileStatus> {
        Some(match self {
            Finding::NotAnIpsw { .. }
            | Finding::ArchiveDamage { .. }
            | Finding::ComponentMismatch { .. }
            | Finding::ChecksumMismatch { .. } => FileStatus::Damaged,
            Finding::NotARestoreIpsw { .. } => FileStatus::NotRestorable,
            Finding::Truncated { .. }
            | Finding::ChangedDuringCheck { .. }
            | Finding::ComponentMissing { .. }
            | Finding::NotDownloaded { .. } => FileStatus::Incomplete,
            Finding::HostsRedirect { .. } | Finding::NotSigned { .. } => FileStatus::Unsigned,
            Finding::SigningUnknown { .. } | Finding::SigningDisputed { .. } => {
                FileStatus::SigningUnknown
            }
            Finding::Interrupted { .. } => FileStatus::Interrupted,
            // A file for another device is not broken: scan judges it on its own merits;
            // notes fail nothing.
            Finding::NotForDevice { .. }
            | Finding::OnlyOtherBehavior { .. }
            | Finding::ContentsNotVerified { .. }
            | Finding::Unverifiable { .. }
            | Finding::ChecksumAdvisory { .. }
            | Finding::ArchiveOddity { .. }
            | Finding::SigningNotChecked { .. }
            | Finding::ConnectedDevice { .. }
            | Finding::Downgrade { .. }
            | Finding::SameVersion { .. }
            | Finding::ComponentsCovered { .. } => return None,
        })
    }

    /// Whether the finding is about the file's own bytes (what a damaged file's scan
    /// row names), as opposed to the device or signing.
    pub fn is_damage(&self) -> bool {
        matches!(
            self.file_status(),
            Some(FileStatus::Damaged | FileStatus::Incomplete)
        )
    }

    /// The check that found it, as the JSON `problems[].check` names it.
    pub fn check(&self) -> &'static str {
        match self {
            Finding::NotAnIpsw { .. }
            | Finding::NotARestoreIpsw { .. }
            | Finding::ChangedDuringCheck { .. }
            | Finding::Interrupted { .. }
            | Finding::NotDownloaded { .. } => "file",
            Finding::Truncated { .. }
            | Finding::ArchiveDamage { .. }
            | Finding::ArchiveOddity { .. } => "archive",
            Finding::NotForDevice { .. } | Finding::OnlyOtherBehavior { .. } => "compatibility",
            Finding::ComponentMissing { .. }
            | Finding::ComponentMismatch { .. }
            | Finding::ContentsNotVerified { .. }
            | Finding::Unverifiable { .. }
            | Finding::ComponentsCovered { .. } => "components",
            Finding::ChecksumMismatch { .. } | Finding::ChecksumAdvisory { .. } => "checksum",
            Finding::HostsRedirect { .. }
            | Finding::NotSigned { .. }
            | Finding::SigningUnknown { .. }
            | Finding::SigningDisputed { .. }
            | Finding::SigningNotChecked { .. } => "signing",
            Finding::ConnectedDevice { .. }
            | Finding::Downgrade { .. }
            | Finding::SameVersion { .. } => "device",
        }
    }

    /// One sentence: what was found.
    pub fn message(&self) -> String {
        match self {
            Finding::NotAnIpsw { file, reason, .. } => format!("{file}: {reason}"),
            Finding::NotARestoreIpsw { file, variants } => format!(
                "{file} is not a restore IPSW: its build identities restore nothing (no \
                 RestoreBehavior; {}), as in a Developer Disk Image or a bootability bundle",
                if variants.is_empty() {
                    "no variant named".to_owned()
                } else {
                    format!("variant {}", variants.join(", "))
                }
            ),
            Finding::Truncated { file, reason } => format!("{file}: {reason}"),
            Finding::ArchiveDamage { entry, problem, .. } if entry.is_empty() => problem.clone(),
            Finding::ArchiveDamage { entry, problem, .. } => format!("{entry}: {problem}"),
            Finding::ChangedDuringCheck { file, why } => {
                format!("{file} changed during the check: {why}")
            }
            Finding::NotForDevice { message, .. } => message.clone(),
            Finding::OnlyOtherBehavior { device, board, has } => match has {
                RestoreBehavior::Update => format!(
                    "this file has only an Update identity for the {device} (board {board}): \
                     it updates a device and keeps its data, it cannot restore (erase) it"
                ),
                RestoreBehavior::Erase => format!(
                    "this file has only a restore (Erase) identity for the {device} (board \
                     {board}), no Update one"
                ),
            },
            Finding::ComponentMissing { name, path, board } => format!(
                "{name}{} is missing: {}",
                board
                    .as_ref()
                    .map(|b| format!(" [{b}]"))
                    .unwrap_or_default(),
                path.as_deref().unwrap_or("(no path)")
            ),
            Finding::ComponentMismatch {
                name,
                path,
                board,
                reason,
            } => format!(
                "{name}{} ({}) does not match the manifest{}",
                board
                    .as_ref()
                    .map(|b| format!(" [{b}]"))
                    .unwrap_or_default(),
                path.as_deref().unwrap_or("-"),
                reason
                    .as_ref()
                    .map(|r| format!(": {r}"))
                    .unwrap_or_default()
            ),
            Finding::ChecksumMismatch {
                algorithm,
                expected,
                actual,
            } => format!(
                "the file's {} is {actual}, but you gave {expected}",
                algorithm.label()
            ),
            Finding::HostsRedirect {
                hosts_file,
                line,
                address,
                entry,
            } => format!(
                "{hosts_file} line {line} sends gs.apple.com to {address} (`{entry}`): the \
                 restore cannot reach Apple's signing server and fails with error 3194"
            ),
            Finding::NotSigned { message }
            | Finding::SigningUnknown { message }
            | Finding::SigningDisputed { message }
            | Finding::Interrupted { message }
            | Finding::NotDownloaded { message, .. }
            | Finding::ChecksumAdvisory { message } => message.clone(),
            Finding::ContentsNotVerified { remote: false } => {
                "structure and model OK — contents not verified (run without --quick)".into()
            }
            Finding::ContentsNotVerified { remote: true } => {
                "structure and model OK — contents not verified (only the zip directory and \
                 manifests were read; `ipswcheck fetch` verifies everything while downloading)"
                    .into()
            }
            Finding::Unverifiable { count, reasons } => format!(
                "{count} component{} could not be verified ({}); their zip CRC-32 still \
                 vouches for their bytes",
                if *count == 1 { "" } else { "s" },
                reasons.join("; ")
            ),
            Finding::SigningNotChecked { reason } => format!("signing was not checked ({reason})"),
            Finding::ArchiveOddity { file, oddity } => format!(
                "{file}: {oddity}; Apple's IPSWs never look like this, so its whole-file \
                 checksum cannot be Apple's"
            ),
            // The advice is in the message too: the human report prints no hint for notes.
            Finding::ConnectedDevice {
                device,
                link,
                advice,
            } => format!(
                "connected: {device}; {link}{}",
                advice
                    .as_ref()
                    .map(|a| format!(". Next: {a}"))
                    .unwrap_or_default()
            ),
            Finding::Downgrade {
                device,
                on_device,
                file,
                update: false,
            } => format!(
                "the {device} runs {on_device}, this file is {file}: restoring it is a \
                 downgrade, which erases the device and works only while Apple signs {file} \
                 (otherwise error 3194, or 1015)"
            ),
            Finding::Downgrade {
                device,
                on_device,
                file,
                update: true,
            } => format!(
                "the {device} runs {on_device}, this file is {file}: an update cannot install \
                 an older version; only a restore (which erases) can, while Apple signs {file}"
            ),
            Finding::SameVersion {
                device,
                version,
                update: true,
            } => format!(
                "the {device} already runs {version}: updating with this file (--update) \
                 reinstalls it and keeps the data"
            ),
            Finding::SameVersion {
                device,
                version,
                update: false,
            } => format!(
                "the {device} already runs {version}: a restore with this file erases it; \
                 check with --update to reinstall {version} keeping the data"
            ),
            Finding::ComponentsCovered {
                algorithm,
                source,
                count,
            } => format!(
                "the whole file matches the {} {}, so it is byte-identical to that file: \
                 {count} component{} reported ok as covered by it rather than hashed one by one",
                algorithm.label(),
                if source == "user" {
                    "you gave"
                } else {
                    "Apple published (via ipsw.me)"
                },
                if *count == 1 { " is" } else { "s are" }
            ),
        }
    }

    /// What to do about it.
    pub fn hint(&self) -> Option<String> {
        Some(match self {
            Finding::NotAnIpsw { hint, .. }
            | Finding::NotForDevice { hint, .. }
            | Finding::NotDownloaded { hint, .. } => hint.clone(),
            Finding::NotARestoreIpsw { .. } => {
                "point ipswcheck at a restore IPSW (the file Finder restores from, \
                 …_Restore.ipsw)"
                    .into()
            }
            Finding::Truncated { .. } => {
                "download the file again; if your browser or tool can resume, the rest is \
                 missing"
                    .into()
            }
            Finding::ArchiveDamage { .. } => "the file is corrupt: download it again".into(),
            Finding::ChangedDuringCheck { .. } => {
                "wait until the download or copy has finished, then check again".into()
            }
            Finding::OnlyOtherBehavior { has, .. } => match has {
                RestoreBehavior::Update => {
                    "check it as an update with --update, or get the restore IPSW for a restore"
                        .into()
                }
                RestoreBehavior::Erase => "drop --update: the file can restore (erase) it".into(),
            },
            Finding::ComponentMissing { .. } | Finding::ComponentMismatch { .. } => {
                "the IPSW is incomplete or corrupt: download it again from Apple".into()
            }
            Finding::ChecksumMismatch { .. } => {
                "the download is corrupt or a different file: download it again".into()
            }
            Finding::HostsRedirect { .. } => {
                "remove or comment out that line (it needs administrator rights), then restore"
                    .into()
            }
            Finding::NotSigned { .. } => {
                "Apple no longer signs this build, so a restore fails with error 3194: use a \
                 signed build (`ipswcheck signed --device …` lists them)"
                    .into()
            }
            Finding::SigningUnknown { .. } => {
                "check the connection to Apple (`ipswcheck doctor`) and try again".into()
            }
            Finding::SigningDisputed { .. } => {
                "ask again later with --refresh; if a restore fails with 3194, Apple has \
                 stopped signing the build"
                    .into()
            }
            Finding::ConnectedDevice {
                advice: Some(advice),
                ..
            } => advice.clone(),
            Finding::Downgrade { .. } => {
                "back up the device first: a downgrade erases it, and data from a newer iOS \
                 may not restore onto an older one"
                    .into()
            }
            _ => return None,
        })
    }
}

/// What the judge decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Judgement {
    pub verdict: Verdict,
    pub exit: ExitCode,
    /// The Finder/iTunes error a restore with this file would end in, e.g. `"14"`.
    pub predicted_restore_error: Option<&'static str>,
    /// The error the file's own damage causes on a device it is for (a file refused
    /// for another device still has one when it is damaged).
    pub own_restore_error: Option<&'static str>,
    pub file_status: FileStatus,
}

/// Turn findings into the verdict, exit code, predicted restore error and scan status.
pub fn judge(findings: &[Finding]) -> Judgement {
    let failures: Vec<&Finding> = findings.iter().filter(|f| !f.is_note()).collect();
    let exit = ExitCode::first_in_restore_order(failures.iter().filter_map(|f| f.exit_code()));
    // A restore meets the first problem in restore order; a file for another device is
    // refused before any numbered error.
    let predicted_restore_error = failures
        .iter()
        .find(|f| f.exit_code() == Some(exit))
        .and_then(|f| f.restore_error());
    let first_damage = ExitCode::first_in_restore_order(
        failures
            .iter()
            .filter(|f| f.is_damage())
            .filter_map(|f| f.exit_code()),
    );
    let own = failures
        .iter()
        .filter(|f| f.is_damage() && f.exit_code() == Some(first_damage))
        .find_map(|f| f.restore_error());
    let file_status = failures
        .iter()
        .filter_map(|f| f.file_status())
        .min_by_key(|s| s.rank())
        .unwrap_or(FileStatus::Ok);
    let quick = findings
        .iter()
        .any(|f| matches!(f, Finding::ContentsNotVerified { .. }));
    let verdict = match exit {
        ExitCode::Ready if quick => Verdict::StructureOk,
        ExitCode::Ready => Verdict::Ready,
        ExitCode::SigningUnknown | ExitCode::Interrupted => Verdict::Unknown,
        _ => Verdict::NotReady,
    };
    Judgement {
        verdict,
        exit,
        predicted_restore_error: predicted_restore_error.filter(|_| exit != ExitCode::WrongDevice),
        own_restore_error: own,
        file_status,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn missing() -> Finding {
        Finding::ComponentMissing {
            name: "iBSS".into(),
            path: Some("Firmware/dfu/iBSS.im4p".into()),
            board: None,
        }
    }

    #[test]
    fn the_first_failure_in_restore_order_decides() {
        let j = judge(&[
            Finding::NotSigned {
                message: "x".into(),
            },
            missing(),
        ]);
        assert_eq!(j.exit, ExitCode::ComponentFailure);
        assert_eq!(j.predicted_restore_error, Some("11"));
        assert_eq!(j.file_status, FileStatus::Incomplete);
        assert_eq!(j.verdict, Verdict::NotReady);
    }

    #[test]
    fn notes_never_fail() {
        let j = judge(&[
            Finding::Unverifiable {
                count: 2,
                reasons: vec!["IMG3".into()],
            },
            Finding::ChecksumAdvisory {
                message: "differs".into(),
            },
        ]);
        assert_eq!(j.exit, ExitCode::Ready);
        assert_eq!(j.verdict, Verdict::Ready);
        assert_eq!(j.file_status, FileStatus::Ok);
        let quick = judge(&[Finding::ContentsNotVerified { remote: false }]);
        assert_eq!(
            (quick.exit, quick.verdict),
            (ExitCode::Ready, Verdict::StructureOk)
        );
    }

    #[test]
    fn a_wrong_device_has_no_restore_error_but_keeps_its_own_damage() {
        let j = judge(&[
            Finding::NotForDevice {
                message: "m".into(),
                hint: "h".into(),
            },
            Finding::Truncated {
                file: "f".into(),
                reason: "r".into(),
            },
        ]);
        assert_eq!(j.exit, ExitCode::WrongDevice);
        assert_eq!(j.predicted_restore_error, None);
        assert_eq!(j.own_restore_error, Some("14"));
        assert_eq!(j.file_status, FileStatus::Incomplete);
    }

    #[test]
    fn disputes_and_doubt_are_unknown_never_not_signed() {
        for f in [
            Finding::SigningDisputed {
                message: "m".into(),
            },
            Finding::SigningUnknown {
                message: "m".into(),
            },
        ] {
            let j = judge(&[f]);
            assert_eq!(j.exit, ExitCode::SigningUnknown);
            assert_eq!(j.verdict, Verdict::Unknown);
            assert_eq!(j.predicted_restore_error, None);
            assert_eq!(j.file_status, FileStatus::SigningUnknown);
        }
    }

    #[test]
    fn every_failure_has_words_and_a_class() {
        let all = [
            Finding::NotAnIpsw {
                file: "f".into(),
                reason: "r".into(),
                hint: "h".into(),
            },
            Finding::NotARestoreIpsw {
                file: "f".into(),
                variants: vec!["Customer iOS Developer PDI".into()],
            },
            missing(),
            Finding::HostsRedirect {
                hosts_file: "/etc/hosts".into(),
                line: 3,
                address: "1.2.3.4".into(),
                entry: "1.2.3.4 gs.apple.com".into(),
            },
        ];
        for f in &all {
            assert!(f.exit_code().is_some() && !f.message().is_empty(), "{f:?}");
            assert!(f.hint().is_some(), "{f:?}");
        }
    }
}
