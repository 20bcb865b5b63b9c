//! The report of one check: the JSON document (schema 2, field names are a contract
//! documented in the README). The checks' data sections are filled by `check`; the
//! verdict, exit code and predicted restore error come from [`crate::judge`] alone, and
//! the words from `crate::render`.

use serde::Serialize;

use crate::digest::DigestAlgorithm;
use crate::exit::ExitCode;
pub use crate::judge::Verdict;
use crate::judge::{judge, Finding, Judgement};
use crate::signing::SigningCheck;
use crate::verify::{ComponentFinding, EntryDamage};

/// The JSON schema version; bump when a field changes meaning or disappears.
pub const SCHEMA: u32 = 2;

/// Status of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckStatus {
    Ok,
    Fail,
    /// Something worth saying that decides nothing (a third party's checksum that differs
    /// from a file whose every CRC and component digest verified).
    Warn,
    Skipped,
}

/// The whole report (README "JSON report").
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub schema: u32,
    pub file: String,
    pub size: Option<u64>,
    /// Bytes read over HTTP (every response, headers included) when `file` is a URL;
    /// absent for local files.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bytes_fetched: Option<u64>,
    /// `fetch` from a server without range support: what was verified while the bytes
    /// arrived and what only once the download was complete; absent otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub streamed: Option<StreamedFacts>,
    pub verdict: Verdict,
    pub exit_code: i32,
    pub firmware: Option<FirmwareFacts>,
    pub device: Option<DeviceFacts>,
    pub identity: Option<IdentityFacts>,
    pub checks: Checks,
    /// The Finder/iTunes error a restore with this file would end in, e.g. `"14"`.
    pub predicted_restore_error: Option<String>,
    /// What failed, with what to do, in restore order of discovery (from `findings`).
    pub problems: Vec<Problem>,
    /// What is worth saying but fails nothing (unverifiable components, `--quick`, an
    /// advisory checksum, signing not checked).
    pub notes: Vec<Problem>,
    /// The typed findings everything above is judged from.
    #[serde(skip)]
    pub findings: Vec<Finding>,
}

/// How a download from a server without range support was verified (README "JSON
/// report"): entries whose CRC-32, size and component digests were verified while it
/// arrived (and the directory confirmed), and entries verified from the file after the
/// last byte.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct StreamedFacts {
    /// Entries verified during the download, and their compressed bytes.
    pub entries_during: usize,
    pub bytes_during: u64,
    /// Of those, entries that arrived before BuildManifest.plist and were read a second
    /// time from the partial file (not downloaded again) for their component digests,
    /// and their compressed bytes.
    pub entries_reread: usize,
    pub bytes_reread: u64,
    /// Entries verified from the file once it was complete, and their compressed bytes.
    pub entries_after: usize,
    pub bytes_after: u64,
    /// The whole-file digests (`--sha1`/`--sha256`, ipsw.me's SHA-1) were computed as
    /// the bytes arrived.
    pub whole_file_during: bool,
    /// The download was stopped after this many bytes (damage found, or a manifest for
    /// another device); absent when it ran to the end.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stopped_at: Option<u64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct FirmwareFacts {
    /// `iOS`, `iPadOS`, `tvOS`, `watchOS`, `macOS`, … (from the manifest's product types).
    pub platform: String,
    pub product_version: String,
    pub build: String,
    pub supported_product_types: Vec<String>,
    pub beta: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct DeviceFacts {
    pub product_type: String,
    /// The board (hardware model); with several boards, the first (all are in `boards`).
    pub board: String,
    /// `0x8010`, as Apple writes it.
    pub chip_id: String,
    /// `0x0C`.
    pub board_id: String,
    pub name: String,
    /// Every board checked (iPhone8,1 has two).
    pub boards: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct IdentityFacts {
    pub variant: Option<String>,
    pub restore_behavior: Option<String>,
    pub device_class: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Checks {
    pub archive: ArchiveCheck,
    pub compatibility: CompatibilityCheck,
    pub components: ComponentsCheck,
    pub checksum: ChecksumCheck,
    pub signing: SigningCheck,
}

#[derive(Debug, Clone, Serialize)]
pub struct ArchiveCheck {
    pub status: CheckStatus,
    pub entries: usize,
    pub crc_failures: usize,
    /// One line per damaged entry, or the directory problem.
    pub damage: Vec<EntryDamage>,
    /// How many entries had their CRC-32 verified (0 with `--quick`).
    pub crc_checked: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct CompatibilityCheck {
    pub status: CheckStatus,
    pub message: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct ComponentsCheck {
    pub status: CheckStatus,
    pub items: Vec<ComponentFinding>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ChecksumCheck {
    pub status: CheckStatus,
    pub algorithm: Option<DigestAlgorithm>,
    pub expected: Option<String>,
    pub actual: Option<String>,
    /// `user` (--sha1/--sha256) or `ipsw.me`.
    pub source: Option<String>,
    /// What the comparison means, in a sentence (e.g. "matches the SHA-1 Apple published
    /// (via ipsw.me)").
    pub message: Option<String>,
}

/// One finding in words: what is wrong (or worth saying), and what to do about it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Problem {
    /// The finding's kind (`component_missing`, `not_for_device`, …: [`Finding`]).
    pub kind: String,
    /// The check that found it: `file`, `archive`, `compatibility`, `components`,
    /// `checksum`, `signing`.
    pub check: String,
    pub message: String,
    pub hint: Option<String>,
}

impl Problem {
    fn of(finding: &Finding) -> Problem {
        let kind = serde_json::to_value(finding)
            .ok()
            .and_then(|v| v.get("kind").and_then(|k| k.as_str()).map(str::to_owned))
            .unwrap_or_default();
        Problem {
            kind,
            check: finding.check().to_owned(),
            message: finding.message(),
            hint: finding.hint(),
        }
    }
}

impl ChecksumCheck {
    /// No whole-file checksum was compared (none expected, or not computed).
    pub fn skipped() -> ChecksumCheck {
        ChecksumCheck {
            status: CheckStatus::Skipped,
            algorithm: None,
            expected: None,
            actual: None,
            source: None,
            message: None,
        }
    }
}

impl Checks {
    /// Checks of a file that could not be opened: everything skipped.
    pub fn skipped(reason: &str) -> Checks {
        Checks {
            archive: ArchiveCheck {
                status: CheckStatus::Skipped,
                entries: 0,
                crc_failures: 0,
                damage: Vec::new(),
                crc_checked: 0,
            },
            compatibility: CompatibilityCheck {
                status: CheckStatus::Skipped,
                message: reason.to_owned(),
            },
            components: ComponentsCheck {
                status: CheckStatus::Skipped,
                items: Vec::new(),
            },
            checksum: ChecksumCheck::skipped(),
            signing: SigningCheck::skipped(reason),
        }
    }
}

impl Report {
    /// An empty report for `file`: no facts, every check skipped, no findings.
    pub fn new(file: String, checks: Checks) -> Report {
        Report {
            schema: SCHEMA,
            file,
            size: None,
            bytes_fetched: None,
            streamed: None,
            verdict: Verdict::NotReady,
            exit_code: 0,
            firmware: None,
            device: None,
            identity: None,
            checks,
            predicted_restore_error: None,
            problems: Vec::new(),
            notes: Vec::new(),
            findings: Vec::new(),
        }
    }

    /// Add a finding (call [`Report::conclude`] afterwards).
    pub fn add(&mut self, finding: Finding) {
        self.findings.push(finding);
    }

    /// Judge the findings: exit code, verdict, predicted restore error, and the words of
    /// `problems`/`notes`. The only way a report gets a verdict.
    pub fn conclude(&mut self) -> Judgement {
        let j = judge(&self.findings);
        self.exit_code = j.exit.code();
        self.verdict = j.verdict;
        self.predicted_restore_error = j.predicted_restore_error.map(str::to_owned);
        self.problems = self
            .findings
            .iter()
            .filter(|f| !f.is_note())
            .map(Problem::of)
            .collect();
        self.notes = self
            .findings
            .iter()
            .filter(|f| f.is_note())
            .map(Problem::of)
            .collect();
        j
    }

    /// The judge's full answer (scan status, the file's own restore error).
    pub fn judgement(&self) -> Judgement {
        judge(&self.findings)
    }

    /// The JSON document (`--json`).
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a report always serializes")
    }

    /// The human report (`crate::render::human`).
    pub fn render(&self, verbose: bool) -> String {
        crate::render::human::render(self, verbose)
    }

    /// The human report's first line: the answer.
    pub fn headline(&self) -> String {
        crate::render::human::headline(self)
    }

    /// The exit code as the enum.
    pub fn exit(&self) -> ExitCode {
        ExitCode::from_code(self.exit_code).unwrap_or(ExitCode::NotAnIpsw)
    }
}
