//! `table`: one line per file (a scan, or a single check), then a scan's summary; for
//! people, so every value from a file or a server is escaped.

use std::fmt::Write as _;

use super::{escape, human_bytes, Renderer, ScanResult, SignedList};
use crate::report::Report;
use crate::scan::{FileResult, FileStatus, Listed};

pub struct Table;

fn clip(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        text.to_owned()
    } else {
        let mut out: String = text.chars().take(width - 1).collect();
        out.push('…');
        out
    }
}

fn devices_of(report: &Report) -> String {
    let Some(f) = &report.firmware else {
        return "?".into();
    };
    let types = &f.supported_product_types;
    if types.len() <= 2 {
        types.join(" ")
    } else {
        format!("{} +{}", types[..2].join(" "), types.len() - 2)
    }
}

/// The short note of the table's last column.
fn note(f: &FileResult, product_type: Option<&str>) -> String {
    let mut notes = Vec::new();
    let problem = f.problem();
    match f.status {
        FileStatus::Ok => {}
        FileStatus::Damaged | FileStatus::Incomplete => {
            let text = problem.as_deref().unwrap_or("damaged");
            notes.push(
                match f.report.judgement().own_restore_error.map(str::to_owned) {
                    Some(e) => format!("error {e}: {}", clip(text, 70)),
                    None => clip(text, 80),
                },
            );
        }
        FileStatus::Unsigned => notes.push("not signed: a restore fails with error 3194".into()),
        FileStatus::SigningUnknown => notes.push("signing status unknown".into()),
        FileStatus::Interrupted => notes.push("interrupted".into()),
        FileStatus::NotRestorable => notes.push("not a restore IPSW".into()),
    }
    if let Some(copy) = &f.intact_copy {
        notes.push(format!("intact copy: {copy}"));
    }
    if f.report.firmware.as_ref().is_some_and(|fw| fw.beta) {
        notes.push("beta".into());
    }
    if let Some(original) = &f.duplicate_of {
        notes.push(format!("duplicate of {original}"));
    }
    if let (Some(false), Some(pt)) = (f.for_device, product_type) {
        notes.push(format!("not for {pt}"));
    }
    notes.join("; ")
}

/// Lay out `rows` (the first is the header) in columns; the last column is not padded.
fn columns(rows: &[[String; 7]]) -> String {
    let mut widths = [0usize; 7];
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            if i == 6 {
                line.push_str(cell);
            } else {
                let _ = write!(line, "{cell:w$}  ", w = widths[i]);
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

fn header() -> [String; 7] {
    ["STATUS", "VERSION", "BUILD", "SIZE", "FOR", "FILE", "NOTE"].map(str::to_owned)
}

fn cells(report: &Report, status: FileStatus, path: &str, note: String) -> [String; 7] {
    let fw = report.firmware.as_ref();
    [
        status.name().to_owned(),
        fw.map_or("?".into(), |f| escape(&f.product_version)),
        fw.map_or("?".into(), |f| escape(&f.build)),
        report.size.map(human_bytes).unwrap_or_default(),
        escape(&devices_of(report)),
        escape(path),
        escape(&note),
    ]
}

impl Renderer for Table {
    fn report(&self, report: &Report) -> String {
        let note = report
            .problems
            .first()
            .map(|p| clip(&p.message, 100))
            .unwrap_or_default();
        columns(&[
            header(),
            cells(report, report.judgement().file_status, &report.file, note),
        ])
    }

    /// One line per file, then the summary.
    fn scan(&self, result: &ScanResult) -> String {
        let product_type = result
            .summary
            .recommendation
            .as_ref()
            .map(|r| r.product_type.as_str());
        let mut rows = vec![header()];
        for f in &result.files {
            rows.push(cells(
                &f.report,
                f.status,
                &f.path_str(),
                note(f, product_type),
            ));
        }
        let mut out = String::new();
        if !result.files.is_empty() {
            out.push_str(&columns(&rows));
            out.push('\n');
        }
        render_summary(result, &mut out);
        out
    }

    fn signed(&self, list: &SignedList) -> String {
        let mut out = String::new();
        let mut rows = vec![["VERSION", "BUILD", "URL"].map(str::to_owned)];
        for b in &list.builds {
            rows.push([
                escape(&b.version),
                escape(&b.buildid),
                escape(b.url.as_deref().unwrap_or("")),
            ]);
        }
        let w0 = rows.iter().map(|r| r[0].chars().count()).max().unwrap_or(0);
        let w1 = rows.iter().map(|r| r[1].chars().count()).max().unwrap_or(0);
        for r in &rows {
            let _ = writeln!(out, "{:w0$}  {:w1$}  {}", r[0], r[1], r[2]);
        }
        if let Some(e) = &list.error {
            let _ = writeln!(out, "could not ask ipsw.me: {}", escape(e));
        }
        out
    }
}

/// The summary under a scan's table.
fn render_summary(result: &ScanResult, out: &mut String) {
    let s = &result.summary;
    let skipped: usize = s.skipped.values().sum();
    let reasons: Vec<String> = s.skipped.iter().map(|(r, n)| format!("{n} {r}")).collect();
    let _ = writeln!(
        out,
        "{} {} among {} {}{}; {} hashed, {} from cache; {} read in {:.1} s",
        s.ipsw_files,
        if s.ipsw_files == 1 { "IPSW" } else { "IPSWs" },
        s.files_examined,
        if s.files_examined == 1 {
            "file"
        } else {
            "files"
        },
        if skipped > 0 {
            format!("; skipped: {}", reasons.join(", "))
        } else {
            String::new()
        },
        s.files_hashed,
        s.files_from_cache,
        human_bytes(s.bytes_hashed),
        s.elapsed_seconds
    );
    let counts: Vec<String> = s
        .counts
        .iter()
        .map(|(status, n)| format!("{} {n}", status.name().replace('_', " ")))
        .collect();
    let _ = writeln!(out, "{}", counts.join(" · "));
    let list = |out: &mut String, title: &str, items: &[Listed], detail: bool| {
        if items.is_empty() {
            return;
        }
        let _ = writeln!(out, "{title}:");
        for item in items {
            let label = match (&item.product_version, &item.build) {
                (Some(v), Some(b)) => format!(
                    "{} {} ({})",
                    escape(item.platform.as_deref().unwrap_or("iOS")),
                    escape(v),
                    escape(b)
                ),
                _ => "unidentified".into(),
            };
            let mut line = format!("  {}: {label}", escape(&item.path));
            if detail {
                if let Some(e) = &item.predicted_restore_error {
                    let _ = write!(line, ", error {e}");
                }
                if let Some(p) = &item.problem {
                    let _ = write!(line, ": {}", clip(p, 100));
                }
            }
            if let Some(copy) = &item.intact_copy {
                let _ = write!(line, " (an intact copy: {copy})");
            }
            let _ = writeln!(out, "{line}");
        }
    };
    list(out, "damaged (a restore would fail)", &s.damaged, true);
    list(out, "incomplete", &s.incomplete, true);
    list(
        out,
        "unsigned (Apple no longer signs them: error 3194)",
        &s.unsigned,
        false,
    );
    list(out, "signing unknown", &s.signing_unknown, true);
    list(out, "betas", &s.betas, false);
    if !s.duplicates.is_empty() {
        let _ = writeln!(out, "duplicates (same build, same content):");
        for g in &s.duplicates {
            let _ = writeln!(
                out,
                "  iOS {} ({}): {}",
                g.product_version,
                g.build,
                g.paths.join(" = ")
            );
        }
    }
    if !s.unreadable.is_empty() {
        let _ = writeln!(out, "could not be read:");
        for p in &s.unreadable {
            let _ = writeln!(out, "  {}: {}", p.path, p.error);
        }
    }
    if s.aliases > 0 {
        let _ = writeln!(
            out,
            "{} {} to a file or folder already scanned (a link or a loop): not scanned twice",
            s.aliases,
            if s.aliases == 1 {
                "path leads"
            } else {
                "paths lead"
            }
        );
    }
    if let Some(r) = &s.recommendation {
        let _ = writeln!(
            out,
            "for the {} ({}): {}",
            r.device, r.product_type, r.message
        );
    }
    if s.interrupted {
        let _ = writeln!(
            out,
            "INTERRUPTED: {} {} not checked",
            s.not_checked,
            if s.not_checked == 1 {
                "file was"
            } else {
                "files were"
            }
        );
    }
}
