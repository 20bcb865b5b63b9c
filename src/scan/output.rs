//! The four output formats of a scan: `table` (people), `ndjson` (one single-file JSON
//! document per line, plus `path` and `scan`, then one `{"summary": …}` line), `json`
//! (`{"schema", "files": [rows], "summary"}`) and `csv` (one row per file).

use std::fmt::Write as _;

use serde::Serialize;

use crate::report::{CheckStatus, Report, SCHEMA};
use crate::signing::SigningStatus;

use super::{FileResult, FileStatus, ScanResult, Summary};

/// The scan's facts about one file, beside the single-file document.
#[derive(Serialize)]
struct RowScan<'a> {
    status: FileStatus,
    cached: bool,
    hashed: bool,
    fingerprint: Option<&'a str>,
    for_device: Option<bool>,
    duplicate_of: Option<&'a str>,
    intact_copy: Option<&'a str>,
    /// The error the file's own damage causes (see [`super::restore_error`]).
    restore_error: Option<String>,
}

#[derive(Serialize)]
struct Row<'a> {
    path: String,
    #[serde(flatten)]
    report: &'a Report,
    scan: RowScan<'a>,
}

impl<'a> From<&'a FileResult> for Row<'a> {
    fn from(f: &'a FileResult) -> Self {
        Row {
            path: f.path_str(),
            report: &f.report,
            scan: RowScan {
                status: f.status,
                cached: f.cached,
                hashed: f.hashed,
                fingerprint: f.fingerprint.as_deref(),
                for_device: f.for_device,
                duplicate_of: f.duplicate_of.as_deref(),
                intact_copy: f.intact_copy.as_deref(),
                restore_error: super::restore_error(&f.report),
            },
        }
    }
}

#[derive(Serialize)]
struct Document<'a> {
    schema: u32,
    files: Vec<Row<'a>>,
    summary: &'a Summary,
}

#[derive(Serialize)]
struct SummaryLine<'a> {
    summary: &'a Summary,
}

fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KB", "MB", "GB", "TB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit < UNITS.len() - 1 {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else if value < 10.0 {
        format!("{value:.1} {}", UNITS[unit])
    } else {
        format!("{value:.0} {}", UNITS[unit])
    }
}

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
            notes.push(match super::restore_error(&f.report) {
                Some(e) => format!("error {e}: {}", clip(text, 70)),
                None => clip(text, 80),
            });
        }
        FileStatus::Unsigned => notes.push("not signed: a restore fails with error 3194".into()),
        FileStatus::SigningUnknown => notes.push("signing status unknown".into()),
        FileStatus::Interrupted => notes.push("interrupted".into()),
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

impl ScanResult {
    /// `ndjson`: one row per file, then the summary line.
    pub fn to_ndjson(&self) -> String {
        let mut out = String::new();
        for f in &self.files {
            out.push_str(&serde_json::to_string(&Row::from(f)).expect("a row serializes"));
            out.push('\n');
        }
        out.push_str(
            &serde_json::to_string(&SummaryLine {
                summary: &self.summary,
            })
            .expect("the summary serializes"),
        );
        out.push('\n');
        out
    }

    /// `json`: the rows and the summary in one document.
    pub fn to_json(&self) -> String {
        let doc = Document {
            schema: SCHEMA,
            files: self.files.iter().map(Row::from).collect(),
            summary: &self.summary,
        };
        serde_json::to_string_pretty(&doc).expect("the document serializes") + "\n"
    }

    /// `csv`: a header, then one row per file.
    pub fn to_csv(&self) -> String {
        fn field(text: &str) -> String {
            if text.contains([',', '"', '\n', '\r']) {
                format!("\"{}\"", text.replace('"', "\"\""))
            } else {
                text.to_owned()
            }
        }
        fn status(s: CheckStatus) -> &'static str {
            match s {
                CheckStatus::Ok => "ok",
                CheckStatus::Fail => "fail",
                CheckStatus::Skipped => "skipped",
            }
        }
        fn signing(s: SigningStatus) -> &'static str {
            match s {
                SigningStatus::Signed => "signed",
                SigningStatus::NotSigned => "not_signed",
                SigningStatus::Unknown => "unknown",
                SigningStatus::Skipped => "skipped",
            }
        }
        let mut out = String::from(
            "path,status,product_version,build,beta,supported_product_types,size,archive,\
             components,checksum,signing,for_device,predicted_restore_error,restore_error,exit_code,\
             cached,duplicate_of,problem\n",
        );
        for f in &self.files {
            let r = &f.report;
            let fw = r.firmware.as_ref();
            let cells = [
                f.path_str(),
                f.status.name().to_owned(),
                fw.map(|f| f.product_version.clone()).unwrap_or_default(),
                fw.map(|f| f.build.clone()).unwrap_or_default(),
                fw.map(|f| f.beta.to_string()).unwrap_or_default(),
                fw.map(|f| f.supported_product_types.join(" "))
                    .unwrap_or_default(),
                r.size.map(|s| s.to_string()).unwrap_or_default(),
                status(r.checks.archive.status).to_owned(),
                status(r.checks.components.status).to_owned(),
                status(r.checks.checksum.status).to_owned(),
                signing(r.checks.signing.status).to_owned(),
                f.for_device.map(|b| b.to_string()).unwrap_or_default(),
                r.predicted_restore_error.clone().unwrap_or_default(),
                super::restore_error(r).unwrap_or_default(),
                r.exit_code.to_string(),
                f.cached.to_string(),
                f.duplicate_of.clone().unwrap_or_default(),
                f.problem().unwrap_or_default(),
            ];
            let line: Vec<String> = cells.iter().map(|c| field(c)).collect();
            out.push_str(&line.join(","));
            out.push('\n');
        }
        out
    }

    /// `table`: one line per file, then the summary, for people.
    pub fn render_table(&self) -> String {
        let s = &self.summary;
        let product_type = s.recommendation.as_ref().map(|r| r.product_type.as_str());
        let mut rows = vec![[
            "STATUS".to_owned(),
            "VERSION".to_owned(),
            "BUILD".to_owned(),
            "SIZE".to_owned(),
            "FOR".to_owned(),
            "FILE".to_owned(),
            "NOTE".to_owned(),
        ]];
        for f in &self.files {
            let fw = f.report.firmware.as_ref();
            rows.push([
                f.status.name().to_owned(),
                fw.map_or("?".into(), |f| f.product_version.clone()),
                fw.map_or("?".into(), |f| f.build.clone()),
                f.report.size.map(human_bytes).unwrap_or_default(),
                devices_of(&f.report),
                f.path_str(),
                note(f, product_type),
            ]);
        }
        let mut widths = [0usize; 7];
        for row in &rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let mut out = String::new();
        if !self.files.is_empty() {
            for row in &rows {
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
            out.push('\n');
        }
        self.render_summary(&mut out);
        out
    }

    fn render_summary(&self, out: &mut String) {
        let s = &self.summary;
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
        let list = |out: &mut String, title: &str, items: &[super::Listed], detail: bool| {
            if items.is_empty() {
                return;
            }
            let _ = writeln!(out, "{title}:");
            for item in items {
                let label = match (&item.product_version, &item.build) {
                    (Some(v), Some(b)) => format!("iOS {v} ({b})"),
                    _ => "unidentified".into(),
                };
                let mut line = format!("  {}: {label}", item.path);
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
            let _ =
                writeln!(
                out,
                "{} {} to a file or folder already scanned (a link or a loop): not scanned twice",
                s.aliases,
                if s.aliases == 1 { "path leads" } else { "paths lead" }
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
}
