//! `table`: one line per file (a scan, or a single check), then a scan's summary; for
//! people, so every value from a file or a server is escaped.

use std::fmt::Write as _;

use super::{
    display_width, escape, human_bytes, paint, Color, Renderer, ScanResult, SignedList, Style,
};
use crate::report::Report;
use crate::scan::{FileResult, FileStatus, Listed};

/// The table format, fitted to `style.width` when given.
pub struct Table {
    pub style: Style,
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

/// `text` cut at its end to `width` display columns, with `…`.
fn clip_columns(text: &str, width: usize) -> String {
    if display_width(text) <= width {
        return text.to_owned();
    }
    if width == 0 {
        return String::new();
    }
    let mut out = String::new();
    let mut used = 0;
    for c in text.chars() {
        let w = display_width(c.encode_utf8(&mut [0; 4]));
        if used + w > width - 1 {
            break;
        }
        used += w;
        out.push(c);
    }
    out.push('…');
    out
}

/// At most `width` display columns of `text`, from its end.
fn tail_columns(text: &str, width: usize) -> String {
    let mut chars = Vec::new();
    let mut used = 0;
    for c in text.chars().rev() {
        let w = display_width(c.encode_utf8(&mut [0; 4]));
        if used + w > width {
            break;
        }
        used += w;
        chars.push(c);
    }
    chars.iter().rev().collect()
}

/// `path` shortened in its middle to `width` display columns: the first folder and the
/// file name stay (`lib/…/iPhone_4.7_P3_15.8_19H370_Restore.ipsw`), with as many of the
/// folders nearest the file as fit; a name too long for that keeps its start and its end.
pub(crate) fn clip_path(path: &str, width: usize) -> String {
    if display_width(path) <= width {
        return path.to_owned();
    }
    let parts: Vec<&str> = path.split('/').collect();
    if parts.len() >= 3 {
        let head = parts[0];
        let mut tail = parts[parts.len() - 1].to_owned();
        let fits = |tail: &str| display_width(head) + 3 + display_width(tail) <= width;
        if fits(&tail) {
            for part in parts[1..parts.len() - 1].iter().rev() {
                let longer = format!("{part}/{tail}");
                if !fits(&longer) {
                    break;
                }
                tail = longer;
            }
            return format!("{head}/…/{tail}");
        }
    }
    if width == 0 {
        return String::new();
    }
    match parts.split_last() {
        // The name, shortened in its middle (its start names the device, its end tells
        // `(1)` copies apart), after `…/`.
        Some((name, folders)) if !folders.is_empty() && width >= 8 => {
            if display_width(name) + 2 <= width {
                format!("…/{name}")
            } else {
                format!("…/{}", clip_middle(name, width - 2))
            }
        }
        _ => clip_middle(path, width),
    }
}

/// `text` shortened in its middle to `width` (at least 1) display columns.
fn clip_middle(text: &str, width: usize) -> String {
    let head = clip_columns(text, (width - 1) / 2 + 1);
    let head = head.strip_suffix('…').unwrap_or(&head).to_owned();
    let tail = tail_columns(text, width - 1 - display_width(&head));
    format!("{head}…{tail}")
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

/// The short note of the table's last column; `fitted` (a table fitted to a terminal)
/// leaves the shortening to the layout.
fn note(f: &FileResult, product_type: Option<&str>, fitted: bool) -> String {
    let clip = |text: &str, width: usize| {
        if fitted {
            text.to_owned()
        } else {
            clip(text, width)
        }
    };
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

/// The column of file paths (shortened in the middle) and of notes (the last column).
const FILE: usize = 5;
const NOTE: usize = 6;

/// Lay out `rows` (the first is the header) in columns; the last column is not padded.
/// With a `width`, the table is fitted to it: the note, then the path (in its middle),
/// then the devices are shortened, and a line that still does not fit is cut. The first
/// column of a row is drawn in its color when `color` is on.
fn columns(rows: &[([String; 7], Option<Color>)], width: Option<usize>, color: bool) -> String {
    let mut widths = [0usize; 7];
    for (row, _) in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(display_width(cell));
        }
    }
    if let Some(limit) = width {
        let total = |widths: &[usize; 7]| widths.iter().sum::<usize>() + 2 * 6;
        // (column, narrowest it is made before the next one gives way)
        let steps = [
            (NOTE, 24),
            (FILE, 30),
            (4, 9),
            (NOTE, 10),
            (FILE, 16),
            (NOTE, 4),
            (FILE, 8),
        ];
        for (column, narrowest) in steps {
            let excess = total(&widths).saturating_sub(limit);
            if excess == 0 {
                break;
            }
            let w = &mut widths[column];
            *w = (*w).saturating_sub(excess).max(narrowest.min(*w));
        }
    }
    let mut out = String::new();
    for (row, paint_as) in rows {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            let cell = match (width, i) {
                (None, _) => cell.clone(),
                (Some(_), FILE) => clip_path(cell, widths[i]),
                (Some(_), _) => clip_columns(cell, widths[i]),
            };
            line.push_str(&cell);
            if i != NOTE {
                let pad = widths[i].saturating_sub(display_width(&cell)) + 2;
                line.extend(std::iter::repeat_n(' ', pad));
            }
        }
        let mut line = line.trim_end().to_owned();
        if let Some(limit) = width {
            // Columns too narrow to shrink further: cut the line itself.
            line = clip_columns(&line, limit);
        }
        // The status is painted last, so that colors never count as columns.
        if let (Some(c), true) = (paint_as, color) {
            if let Some(rest) = line.strip_prefix(row[0].as_str()) {
                line = format!("{}{rest}", paint(&row[0], *c, true));
            }
        }
        out.push_str(&line);
        out.push('\n');
    }
    out
}

/// The color of a file's status in the table.
fn status_color(status: FileStatus) -> Color {
    match status {
        FileStatus::Ok => Color::Green,
        FileStatus::SigningUnknown | FileStatus::Interrupted => Color::Yellow,
        FileStatus::Damaged
        | FileStatus::Incomplete
        | FileStatus::NotRestorable
        | FileStatus::Unsigned => Color::Red,
    }
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
        let fitted = self.style.width.is_some();
        let note = report
            .problems
            .first()
            .map(|p| {
                if fitted {
                    p.message.clone()
                } else {
                    clip(&p.message, 100)
                }
            })
            .unwrap_or_default();
        let status = report.judgement().file_status;
        columns(
            &[
                (header(), None),
                (
                    cells(report, status, &report.file, note),
                    Some(status_color(status)),
                ),
            ],
            self.style.width,
            self.style.color,
        )
    }

    /// One line per file, then the summary.
    fn scan(&self, result: &ScanResult) -> String {
        let product_type = result
            .summary
            .recommendation
            .as_ref()
            .map(|r| r.product_type.as_str());
        let fitted = self.style.width.is_some();
        let mut rows = vec![(header(), None)];
        for f in &result.files {
            rows.push((
                cells(
                    &f.report,
                    f.status,
                    &f.path_str(),
                    note(f, product_type, fitted),
                ),
                Some(status_color(f.status)),
            ));
        }
        let mut out = String::new();
        if !result.files.is_empty() {
            out.push_str(&columns(&rows, self.style.width, self.style.color));
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
                // The whole reason, however long: the table above may shorten it,
                // the summary never does (a terminal wraps it).
                if let Some(p) = &item.problem {
                    let _ = write!(line, ": {}", escape(p));
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
                escape(&g.product_version),
                escape(&g.build),
                escape(&g.paths.join(" = "))
            );
        }
    }
    if !s.unreadable.is_empty() {
        let _ = writeln!(out, "could not be read:");
        for p in &s.unreadable {
            let _ = writeln!(out, "  {}: {}", escape(&p.path), escape(&p.error));
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
            escape(&r.device),
            escape(&r.product_type),
            escape(&r.message)
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

#[cfg(test)]
mod tests {
    use super::*;

    const NAME: &str = "iPhone_4.7_P3_15.8_19H370_Restore.ipsw";

    #[test]
    fn paths_are_shortened_in_the_middle() {
        let path = format!("lib/Apple/iPhone 7/iOS 15/{NAME}");
        assert_eq!(clip_path(&path, 200), path);
        assert_eq!(clip_path(&path, 44), format!("lib/…/{NAME}"));
        assert_eq!(clip_path(&path, 53), format!("lib/…/iOS 15/{NAME}"));
        assert_eq!(clip_path(&path, 40), format!("…/{NAME}"));
        let short = clip_path(&path, 20);
        assert_eq!(display_width(&short), 20, "{short}");
        assert!(
            short.starts_with("…/iPhone") && short.ends_with(".ipsw"),
            "{short}"
        );
        for width in 0..path.len() {
            assert!(display_width(&clip_path(&path, width)) <= width, "{width}");
        }
        assert_eq!(clip_path("/a/bb/c.ipsw", 10), "/…/c.ipsw");
    }

    #[test]
    fn wide_characters_count_two_columns() {
        let path = "库/固件/很长的名字很长的名字.ipsw";
        for width in 0..40 {
            let got = clip_path(path, width);
            assert!(display_width(&got) <= width, "{width}: {got}");
            let cut = clip_columns(path, width);
            assert!(display_width(&cut) <= width, "{width}: {cut}");
        }
    }
}
