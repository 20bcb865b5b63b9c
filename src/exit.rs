//! Exit codes: every failure class has its own code, defined here and nowhere else.
//!
//! The order in which they are chosen when several checks fail follows the order in
//! which a restore would meet the problem: a file that cannot be read at all (3) is
//! never restored; a file for another device (20) is refused by Finder before anything
//! is sent; a damaged archive (10) or a missing/bad component (11) fails during the
//! restore; a whole-file checksum mismatch (12) is the weakest signal; signing (30/31)
//! is asked last because it needs the network.

use serde::Serialize;

/// The process exit status of `ipswcheck`, one per failure class (README "Exit codes").
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum ExitCode {
    /// Every check that was asked for passed.
    Ready = 0,
    /// `scan`: at least one file failed a check.
    ScanFailures = 1,
    /// Bad flags or an unknown device.
    Usage = 2,
    /// Not a readable IPSW: missing, unreadable, not a zip, no or unparsable BuildManifest.
    NotAnIpsw = 3,
    /// The zip archive is damaged: truncated, broken central directory, CRC failure.
    ArchiveDamaged = 10,
    /// A component's digest does not match the manifest, or its file is missing.
    ComponentFailure = 11,
    /// The whole-file SHA-1/SHA-256 differs from the expected one.
    ChecksumMismatch = 12,
    /// The firmware is not for the device that was asked about.
    WrongDevice = 20,
    /// Apple's signing server refuses the build (a restore would fail with 3194).
    NotSigned = 30,
    /// The signing status could not be established.
    SigningUnknown = 31,
    /// Stopped by Ctrl-C before every check finished (the shell convention, 128 + SIGINT).
    Interrupted = 130,
}

impl ExitCode {
    /// The numeric process status.
    pub fn code(self) -> i32 {
        self as i32
    }

    /// The enum for a numeric status.
    pub fn from_code(code: i32) -> Option<ExitCode> {
        use ExitCode::*;
        [
            Ready,
            ScanFailures,
            Usage,
            NotAnIpsw,
            ArchiveDamaged,
            ComponentFailure,
            ChecksumMismatch,
            WrongDevice,
            NotSigned,
            SigningUnknown,
            Interrupted,
        ]
        .into_iter()
        .find(|c| c.code() == code)
    }

    /// Rank used to pick one code when several checks failed: lower wins.
    fn restore_order(self) -> u8 {
        match self {
            ExitCode::Ready => u8::MAX,
            ExitCode::Usage => 0,
            ExitCode::NotAnIpsw => 1,
            ExitCode::WrongDevice => 2,
            ExitCode::ArchiveDamaged => 3,
            ExitCode::ComponentFailure => 4,
            ExitCode::ChecksumMismatch => 5,
            ExitCode::NotSigned => 6,
            ExitCode::SigningUnknown => 7,
            ExitCode::Interrupted => 8,
            ExitCode::ScanFailures => 9,
        }
    }

    /// The code a restore would meet first among `codes`; `Ready` when there are none.
    pub fn first_in_restore_order(codes: impl IntoIterator<Item = ExitCode>) -> ExitCode {
        codes
            .into_iter()
            .min_by_key(|c| c.restore_order())
            .unwrap_or(ExitCode::Ready)
    }
}

impl From<ExitCode> for std::process::ExitCode {
    fn from(code: ExitCode) -> Self {
        std::process::ExitCode::from(code as u8)
    }
}

#[cfg(test)]
mod tests {
    use super::ExitCode::*;
    use super::*;

    #[test]
    fn restore_order_picks_the_earliest_failure() {
        assert_eq!(
            ExitCode::first_in_restore_order([ChecksumMismatch, ComponentFailure, WrongDevice]),
            WrongDevice
        );
        assert_eq!(
            ExitCode::first_in_restore_order([ComponentFailure, ArchiveDamaged]),
            ArchiveDamaged
        );
        assert_eq!(
            ExitCode::first_in_restore_order([SigningUnknown, NotSigned]),
            NotSigned
        );
        assert_eq!(ExitCode::first_in_restore_order([]), Ready);
    }
}
