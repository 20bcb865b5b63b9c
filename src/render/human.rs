//! The human report: the verdict on the first line, then what failed and what to do,
//! grouped by check; `-v` adds every check and every component.

use std::fmt::Write as _;

use super::{escape, paint, Color, Renderer, ScanResult, SignedList, Style};
use crate::exit::ExitCode;
use crate::judge::{Finding, Verdict};
use crate::report::{CheckStatus, Problem, Report};

/// The human format; `verbose` lists every check and component.
pub struct Human {
    pub verbose: bool,
    pub style: Style,
}

impl Renderer for Human {
    fn report(&self, report: &Report) -> String {
        render_styled(report, self.verbose, self.style)
    }

    /// A library is read as a table (one line per file), then the summary.
    fn scan(&self, result: &ScanResult) -> String {
        super::table::Table { style: self.style }.scan(result)
    }

    fn signed(&self, list: &SignedList) -> String {
        let mut out = String::new();
        if let Some(e) = &list.error {
            let _ = writeln!(out, "could not ask ipsw.me: {}", escape(e));
            return out;
        }
        let _ = writeln!(
            out,
            "Builds ipsw.me reports as signed for {} ({}) — ipsw.me's word, not Apple's; \
             `ipswcheck FILE --device {}` asks Apple:",
            list.device, list.product_type, list.product_type
        );
        for b in &list.builds {
            let _ = writeln!(
                out,
                "  {} ({})  {}",
                escape(&b.version),
                escape(&b.buildid),
                escape(b.url.as_deref().unwrap_or(""))
            );
        }
        if list.builds.is_empty() {
            let _ = writeln!(out, "  (none)");
        }
        out
    }
}

/// The whole human report.
pub fn render(report: &Report, verbose: bool) -> String {
    render_styled(report, verbose, Style::default())
}

/// The verdict words a headline starts with, and their colors.
const VERDICTS: [(&str, Color); 4] = [
    ("NOT READY", Color::Red),
    ("READY", Color::Green),
    ("STRUCTURE OK", Color::Yellow),
    ("UNKNOWN", Color::Yellow),
];

/// The headline with its verdict word in its color (when `color`).
fn painted_headline(report: &Report, color: bool) -> String {
    let line = headline(report);
    if !color {
        return line;
    }
    for (word, c) in VERDICTS {
        if let Some(rest) = line.strip_prefix(word) {
            if rest.starts_with(':') {
                return format!("{}{rest}", paint(word, c, true));
            }
        }
    }
    line
}

/// The whole human report in `style` (its verdict word and ✗ marks in color when
/// `style.color`; a report is never fitted to a width).
pub fn render_styled(report: &Report, verbose: bool, style: Style) -> String {
    let cross = paint("✗", Color::Red, style.color);
    let mut out = String::new();
    let _ = writeln!(out, "{}", painted_headline(report, style.color));
    let mut groups: Vec<(&str, Vec<&Problem>)> = Vec::new();
    for p in &report.problems {
        match groups.iter_mut().find(|(check, _)| *check == p.check) {
            Some((_, list)) => list.push(p),
            None => groups.push((&p.check, vec![p])),
        }
    }
    const SHOWN: usize = 8;
    let first = report.problems.first();
    for (check, list) in &groups {
        let in_headline =
            headline_is_first_problem(report) && list.len() == 1 && first == Some(list[0]);
        if in_headline {
            // The headline already says it.
        } else if list.len() == 1 {
            let _ = writeln!(out, "  {cross} {check}: {}", escape(&list[0].message));
        } else {
            let _ = writeln!(out, "  {cross} {check}: {} problems", list.len());
            let limit = if verbose { list.len() } else { SHOWN };
            for p in list.iter().take(limit) {
                let _ = writeln!(out, "      {}", escape(&p.message));
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
            let _ = writeln!(out, "    → {}", escape(h));
        }
    }
    for (finding, note) in report
        .findings
        .iter()
        .filter(|f| f.is_note())
        .zip(&report.notes)
    {
        // `--quick` is already the headline of a structure-only verdict.
        if matches!(finding, Finding::ContentsNotVerified { .. })
            && report.verdict == Verdict::StructureOk
        {
            continue;
        }
        let mark = if matches!(
            finding,
            Finding::ChecksumAdvisory { .. } | Finding::ArchiveOddity { .. }
        ) {
            "warning"
        } else {
            "note"
        };
        let _ = writeln!(out, "  {mark}: {}: {}", note.check, escape(&note.message));
    }
    if let Some(fetched) = report.bytes_fetched {
        let size = report
            .size
            .map(|n| format!(" of this {} file", super::human_bytes(n)))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "  note: read {}{size} over HTTP",
            super::human_bytes(fetched)
        );
    }
    if verbose {
        render_details(report, &mut out);
    }
    out
}

/// `iOS 15.8 (19H370)`, `tvOS 17.1 (21K69, beta)`.
fn firmware_label(report: &Report) -> String {
    match &report.firmware {
        Some(f) => format!(
            "{} {} ({}){}",
            escape(&f.platform),
            escape(&f.product_version),
            escape(&f.build),
            if f.beta { ", beta" } else { "" }
        ),
        None => String::new(),
    }
}

/// Whether the headline of a report is its first problem: the file could not be read,
/// restores nothing, was cut off (no firmware facts), or changed during the check.
fn headline_is_first_problem(report: &Report) -> bool {
    match report.findings.iter().find(|f| !f.is_note()) {
        Some(Finding::NotAnIpsw { .. } | Finding::NotARestoreIpsw { .. }) => true,
        Some(Finding::ChangedDuringCheck { .. } | Finding::Truncated { .. }) => true,
        Some(f) => f.exit_code() == Some(ExitCode::ArchiveDamaged) && report.firmware.is_none(),
        None => false,
    }
}

/// One line that answers the user's question, built from ipswcheck's own words and
/// escaped values only.
pub fn headline(report: &Report) -> String {
    let name = escape(file_name(&report.file));
    let device = report
        .device
        .as_ref()
        .map(|d| format!("{} ({})", escape(&d.name), escape(&d.product_type)));
    let target = device
        .as_ref()
        .map(|d| format!(" for the {d}"))
        .unwrap_or_default();
    let firmware = firmware_label(report);
    let first = report.findings.iter().find(|f| !f.is_note());
    let first_problem = first.map(|f| escape(&f.message())).unwrap_or_default();
    let unverifiable = report.findings.iter().find_map(|f| match f {
        Finding::Unverifiable { count, .. } => Some(*count),
        _ => None,
    });
    let caveat = match unverifiable {
        Some(n) => format!(
            " ({n} component{} could not be verified: see below)",
            if n == 1 { "" } else { "s" }
        ),
        None => String::new(),
    };
    if headline_is_first_problem(report) {
        return format!("NOT READY: {first_problem}");
    }
    match report.exit() {
        ExitCode::Ready if report.verdict == Verdict::StructureOk => {
            let how = if report.bytes_fetched.is_some() {
                "only the zip directory and manifests were read; `ipswcheck fetch` verifies \
                 everything while downloading"
            } else {
                "run without --quick"
            };
            match &device {
                Some(d) => format!(
                    "STRUCTURE OK: {name} ({firmware}) fits the {d}: structure and model OK — \
                     contents not verified ({how})"
                ),
                None => format!(
                    "STRUCTURE OK: {name} ({firmware}): structure OK — contents not verified \
                     ({how})"
                ),
            }
        }
        ExitCode::Ready => match &device {
            Some(d) => format!("READY: {name} ({firmware}) can restore the {d}{caveat}"),
            None => format!("READY: {name} ({firmware}) is intact{caveat}"),
        },
        ExitCode::WrongDevice => match first {
            Some(Finding::OnlyOtherBehavior { has, .. }) => format!(
                "NOT READY: {name} ({firmware}) has only {} identity{target}: {}",
                match has {
                    crate::manifest::RestoreBehavior::Update => "an Update",
                    crate::manifest::RestoreBehavior::Erase => "a restore (Erase)",
                },
                match has {
                    crate::manifest::RestoreBehavior::Update => "check it with --update",
                    crate::manifest::RestoreBehavior::Erase => "drop --update",
                }
            ),
            _ => format!(
                "NOT READY: {name} ({firmware}) is not for the {}: Finder would refuse it as \
                 \"not compatible\"",
                device.unwrap_or_default()
            ),
        },
        ExitCode::NotSigned if matches!(first, Some(Finding::HostsRedirect { .. })) => format!(
            "NOT READY: {name}{target}: the hosts file redirects gs.apple.com, so a restore \
             would fail with error 3194"
        ),
        ExitCode::NotSigned => format!(
            "NOT READY: Apple no longer signs {firmware}{target}: a restore would fail with \
             error 3194"
        ),
        ExitCode::SigningUnknown if matches!(first, Some(Finding::SigningDisputed { .. })) => {
            format!(
                "UNKNOWN: {name} ({firmware}) passed the local checks{target}, but Apple's \
                 signing server and ipsw.me disagree on whether it is signed"
            )
        }
        ExitCode::SigningUnknown => format!(
            "UNKNOWN: {name} ({firmware}) passed the local checks{target}, but whether Apple \
             signs it is unknown"
        ),
        ExitCode::Interrupted => format!("UNKNOWN: the check of {name} was interrupted"),
        ExitCode::NotAnIpsw => format!("NOT READY: {first_problem}"),
        _ => {
            let label = if firmware.is_empty() {
                String::new()
            } else {
                format!(" ({firmware})")
            };
            match &report.predicted_restore_error {
                Some(e) => {
                    format!("NOT READY: {name}{label}{target}: a restore would fail with error {e}")
                }
                None => format!("NOT READY: {name}{label}{target}"),
            }
        }
    }
}

fn render_details(report: &Report, out: &mut String) {
    let _ = writeln!(out, "details:");
    let c = &report.checks;
    let status = |s: CheckStatus| match s {
        CheckStatus::Ok => "ok",
        CheckStatus::Fail => "FAIL",
        CheckStatus::Warn => "warning",
        CheckStatus::Skipped => "skipped",
    };
    if let Some(f) = &report.firmware {
        let _ = writeln!(
            out,
            "  firmware:      {}, for {}",
            firmware_label(report),
            escape(&f.supported_product_types.join(", "))
        );
    }
    if let Some(d) = &report.device {
        let _ = writeln!(
            out,
            "  device:        {} ({}), board {}",
            d.name,
            d.product_type,
            d.boards.join(" + ")
        );
    }
    if let Some(i) = &report.identity {
        let _ = writeln!(
            out,
            "  identity:      {}",
            escape(i.variant.as_deref().unwrap_or("(no variant)"))
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
        escape(&c.compatibility.message)
    );
    let mut counts = std::collections::BTreeMap::new();
    for item in &c.components.items {
        *counts.entry(item.status).or_insert(0usize) += 1;
    }
    let summary: Vec<String> = counts
        .iter()
        .map(|(s, n)| format!("{n} {}", s.name()))
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
        c.signing.status,
        escape(&c.signing.message)
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
                "    {:<12} {:<width$}  {}{}",
                item.status.name(),
                escape(&label),
                escape(item.path.as_deref().unwrap_or("-")),
                item.reason
                    .as_deref()
                    .map(|r| format!("  ({})", escape(r)))
                    .unwrap_or_default(),
            );
        }
    }
}

fn file_name(path: &str) -> &str {
    std::path::Path::new(path)
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or(path)
}
