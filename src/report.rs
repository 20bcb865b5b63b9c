//! The report of one check: the JSON document (schema 1, field names are a contract
//! documented in the README), the verdict and exit code derived from the checks, and
//! the human rendering (verdict first, then only what failed and what to do).

use std::fmt::Write as _;

use serde::Serialize;

use crate::digest::DigestAlgorithm;
use crate::exit::ExitCode;
use crate::signing::{SigningCheck, SigningStatus};
use crate::verify::{ComponentFinding, ComponentStatus, EntryDamage};

/// The JSON schema version; bump when a field changes meaning or disappears.
pub const SCHEMA: u32 = 1;

/// Overall answer to "can I restore with this file now?".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Ready,
    NotReady,
    /// Nothing failed, but something could not be established (signing unknown,
    /// check interrupted).
    Unknown,
}

/// Status of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckStatus {
    Ok,
    Fail,
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
    pub verdict: Verdict,
    pub exit_code: i32,
    pub firmware: Option<FirmwareFacts>,
    pub device: Option<DeviceFacts>,
    pub identity: Option<IdentityFacts>,
    pub checks: Checks,
    /// The Finder/iTunes error a restore with this file would end in, e.g. `"14"`.
    pub predicted_restore_error: Option<String>,
    pub problems: Vec<Problem>,
}

#[derive(Debug, Clone, Serialize)]
pub struct FirmwareFacts {
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
}

/// One thing that is wrong, and what to do about it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Problem {
    /// The check that found it: `file`, `archive`, `compatibility`, `components`,
    /// `checksum`, `signing`.
    pub check: String,
    pub message: String,
    pub hint: Option<String>,
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
            checksum: ChecksumCheck {
                status: CheckStatus::Skipped,
                algorithm: None,
                expected: None,
                actual: None,
                source: None,
            },
            signing: SigningCheck::skipped(reason),
        }
    }
}

impl Report {
    /// Derive the exit code, verdict and predicted restore error from the checks and
    /// problems. `unreadable` marks a file that is not a readable IPSW (exit 3);
    /// `interrupted` a check stopped by the user.
    pub fn conclude(&mut self, unreadable: bool, interrupted: bool) {
        let c = &self.checks;
        let mut codes = Vec::new();
        let mut errors: Vec<(ExitCode, Option<&'static str>)> = Vec::new();
        let mut note = |code: ExitCode, error: Option<&'static str>| {
            codes.push(code);
            errors.push((code, error));
        };
        if unreadable {
            note(ExitCode::NotAnIpsw, None);
        }
        if c.compatibility.status == CheckStatus::Fail {
            note(ExitCode::WrongDevice, None);
        }
        if c.archive.status == CheckStatus::Fail {
            note(ExitCode::ArchiveDamaged, Some("14"));
        }
        if c.components.status == CheckStatus::Fail {
            let missing = c
                .components
                .items
                .iter()
                .any(|i| i.status == ComponentStatus::Missing);
            note(
                ExitCode::ComponentFailure,
                Some(if missing { "11" } else { "14" }),
            );
        }
        if c.checksum.status == CheckStatus::Fail {
            note(ExitCode::ChecksumMismatch, Some("14"));
        }
        // A hosts-file redirect of gs.apple.com fails the restore's signing step with
        // 3194 whatever Apple would answer: same class as "not signed".
        if !c.signing.hosts_redirects.is_empty() {
            note(ExitCode::NotSigned, Some("3194"));
        }
        match c.signing.status {
            SigningStatus::NotSigned => note(ExitCode::NotSigned, Some("3194")),
            SigningStatus::Unknown => note(ExitCode::SigningUnknown, None),
            SigningStatus::Signed | SigningStatus::Skipped => {}
        }
        if interrupted {
            codes.push(ExitCode::Interrupted);
        }
        let code = ExitCode::first_in_restore_order(codes);
        // The error a restore would end in is that of the first problem it meets; a
        // file for another device is refused before any numbered error.
        let restore_error = errors
            .iter()
            .find(|(c, _)| *c == code)
            .and_then(|(_, e)| *e);
        self.exit_code = code.code();
        self.verdict = match code {
            ExitCode::Ready => Verdict::Ready,
            ExitCode::SigningUnknown | ExitCode::Interrupted => Verdict::Unknown,
            _ => Verdict::NotReady,
        };
        self.predicted_restore_error = restore_error.map(str::to_owned);
    }

    /// The exit code as the enum.
    pub fn exit(&self) -> ExitCode {
        ExitCode::from_code(self.exit_code).unwrap_or(ExitCode::NotAnIpsw)
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a report always serializes")
    }

    /// The human report: the verdict on the first line, then what failed and what to
    /// do, grouped by check; `verbose` adds every check and every component.
    pub fn render(&self, verbose: bool) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "{}", self.headline());
        let mut groups: Vec<(&str, Vec<&Problem>)> = Vec::new();
        for p in &self.problems {
            match groups.iter_mut().find(|(check, _)| *check == p.check) {
                Some((_, list)) => list.push(p),
                None => groups.push((&p.check, vec![p])),
            }
        }
        const SHOWN: usize = 8;
        for (check, list) in &groups {
            let in_headline = (self.exit() == ExitCode::NotAnIpsw && *check == "file")
                || (self.headline_is_first_problem()
                    && list.len() == 1
                    && std::ptr::eq(list[0], &self.problems[0]));
            if in_headline {
                // The headline already says it.
            } else if list.len() == 1 {
                let _ = writeln!(out, "  ✗ {check}: {}", list[0].message);
            } else {
                let _ = writeln!(out, "  ✗ {check}: {} problems", list.len());
                let limit = if verbose { list.len() } else { SHOWN };
                for p in list.iter().take(limit) {
                    let _ = writeln!(out, "      {}", p.message);
                }
                if list.len() > limit {
                    let _ = writeln!(
                        out,
                        "      … and {} more (-v lists them all)",
                        list.len() - limit
                    );
                }
            }
            let mut hints: Vec<&str> = Vec::new();
            for h in list.iter().filter_map(|p| p.hint.as_deref()) {
                if !hints.contains(&h) {
                    hints.push(h);
                }
            }
            for h in hints {
                let _ = writeln!(out, "    → {h}");
            }
        }
        if self.checks.signing.status == SigningStatus::Skipped
            && self.checks.archive.status != CheckStatus::Skipped
        {
            let _ = writeln!(
                out,
                "  note: signing was not checked ({})",
                self.checks.signing.message
            );
        }
        if let Some(fetched) = self.bytes_fetched {
            let size = self
                .size
                .map(|n| format!(" of this {} file", crate::remote::human_bytes(n)))
                .unwrap_or_default();
            let quick = if self.checks.components.status == CheckStatus::Skipped
                && self.firmware.is_some()
                && !matches!(self.exit(), ExitCode::NotAnIpsw | ExitCode::Interrupted)
            {
                " (the zip directory and manifests; nothing was hashed)"
            } else {
                ""
            };
            let _ = writeln!(
                out,
                "  note: read {}{size} over HTTP{quick}",
                crate::remote::human_bytes(fetched)
            );
        }
        if verbose {
            let firmware = self.firmware_label();
            self.render_details(&mut out, &firmware);
        }
        out
    }

    fn firmware_label(&self) -> String {
        match &self.firmware {
            Some(f) => format!(
                "iOS {} ({}){}",
                f.product_version,
                f.build,
                if f.beta { ", beta" } else { "" }
            ),
            None => String::new(),
        }
    }

    /// Whether the headline of a damaged file is its first problem: the file could not
    /// be opened at all (no firmware facts), or it changed during the check.
    fn headline_is_first_problem(&self) -> bool {
        self.exit() == ExitCode::ArchiveDamaged
            && (self.firmware.is_none() || self.problems.first().is_some_and(|p| p.check == "file"))
    }

    /// One line that answers the user's question.
    pub fn headline(&self) -> String {
        let name = file_name(&self.file);
        let device = self
            .device
            .as_ref()
            .map(|d| format!("{} ({})", d.name, d.product_type));
        let target = device
            .as_ref()
            .map(|d| format!(" for the {d}"))
            .unwrap_or_default();
        let firmware = self.firmware_label();
        let first_problem = self
            .problems
            .first()
            .map(|p| p.message.as_str())
            .unwrap_or("");
        match self.exit() {
            ExitCode::Ready => match &device {
                Some(d) => format!("READY: {name} ({firmware}) can restore the {d}"),
                None => format!("READY: {name} ({firmware}) is intact"),
            },
            ExitCode::NotAnIpsw => format!("NOT READY: {first_problem}"),
            // A file that is cut off or changed under the check: the reason is the news.
            ExitCode::ArchiveDamaged if self.headline_is_first_problem() => {
                format!("NOT READY: {first_problem}")
            }
            ExitCode::WrongDevice => format!(
                "NOT READY: {name} ({firmware}) is not for the {}: Finder would refuse it as \"not compatible\"",
                device.unwrap_or_default()
            ),
            ExitCode::NotSigned if self.checks.signing.status != SigningStatus::NotSigned => format!(
                "NOT READY: {name}{target}: the hosts file redirects gs.apple.com, so a restore would fail with error 3194"
            ),
            ExitCode::NotSigned => format!(
                "NOT READY: Apple no longer signs {firmware}{target}: a restore would fail with error 3194"
            ),
            ExitCode::SigningUnknown => format!(
                "UNKNOWN: {name} ({firmware}) passed the local checks{target}, but whether Apple signs it is unknown"
            ),
            ExitCode::Interrupted => format!("UNKNOWN: the check of {name} was interrupted"),
            _ => match &self.predicted_restore_error {
                Some(e) => format!("NOT READY: {name}{target}: a restore would fail with error {e}"),
                None => format!("NOT READY: {name}{target}"),
            },
        }
    }

    fn render_details(&self, out: &mut String, firmware: &str) {
        let _ = writeln!(out, "details:");
        let c = &self.checks;
        let status = |s: CheckStatus| match s {
            CheckStatus::Ok => "ok",
            CheckStatus::Fail => "FAIL",
            CheckStatus::Skipped => "skipped",
        };
        if let Some(f) = &self.firmware {
            let _ = writeln!(
                out,
                "  firmware:      {firmware}, for {}",
                f.supported_product_types.join(", ")
            );
        }
        if let Some(d) = &self.device {
            let _ = writeln!(
                out,
                "  device:        {} ({}), board {}",
                d.name,
                d.product_type,
                d.boards.join(" + ")
            );
        }
        if let Some(i) = &self.identity {
            let _ = writeln!(
                out,
                "  identity:      {}",
                i.variant.as_deref().unwrap_or("(no variant)")
            );
        }
        let _ = writeln!(
            out,
            "  archive:       {} ({} entries, {} CRC-checked, {} CRC failures)",
            status(c.archive.status),
            c.archive.entries,
            c.archive.crc_checked,
            c.archive.crc_failures
        );
        let _ = writeln!(
            out,
            "  compatibility: {} {}",
            status(c.compatibility.status),
            c.compatibility.message
        );
        let mut counts = std::collections::BTreeMap::new();
        for item in &c.components.items {
            *counts.entry(item.status).or_insert(0usize) += 1;
        }
        let summary: Vec<String> = counts
            .iter()
            .map(|(s, n)| format!("{n} {}", component_status_name(*s)))
            .collect();
        let _ = writeln!(
            out,
            "  components:    {} ({})",
            status(c.components.status),
            summary.join(", ")
        );
        let _ = writeln!(out, "  checksum:      {}", status(c.checksum.status));
        let _ = writeln!(
            out,
            "  signing:       {:?} {}",
            c.signing.status, c.signing.message
        );
        if !c.components.items.is_empty() {
            let _ = writeln!(out, "  components:");
            let width = c
                .components
                .items
                .iter()
                .map(|i| i.name.len() + i.board.as_ref().map_or(0, |b| b.len() + 3))
                .max()
                .unwrap_or(0);
            for item in &c.components.items {
                let label = match &item.board {
                    Some(b) => format!("{} [{b}]", item.name),
                    None => item.name.clone(),
                };
                let _ = writeln!(
                    out,
                    "    {:<12} {label:<width$}  {}{}",
                    component_status_name(item.status),
                    item.path.as_deref().unwrap_or("-"),
                    item.reason
                        .as_deref()
                        .map(|r| format!("  ({r})"))
                        .unwrap_or_default(),
                );
            }
        }
    }
}

fn component_status_name(s: ComponentStatus) -> &'static str {
    match s {
        ComponentStatus::Ok => "ok",
        ComponentStatus::Mismatch => "mismatch",
        ComponentStatus::Missing => "missing",
        ComponentStatus::Skipped => "skipped",
        ComponentStatus::Unverifiable => "unverifiable",
    }
}

fn file_name(path: &str) -> &str {
    std::path::Path::new(path)
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or(path)
}
