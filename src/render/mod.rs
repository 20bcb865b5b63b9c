//! Every output format, behind one trait (hyperfine's `src/export/`: one small file per
//! format). The single-file check, `fetch`, `scan` and `signed` all print through a
//! [`Renderer`], so a verdict reads the same in every command and every format.
//!
//! - `human` ([`human`]): the verdict first, then what failed and what to do.
//! - `table` ([`table`]): one line per file and a summary (a scan's default).
//! - `json`, `ndjson`, `csv`: for programs; field names are a contract (README).
//!
//! Strings that came from a file, a manifest, a server or a path are escaped for the
//! terminal ([`escape`]) by the human formats: nothing in the input can print a line of
//! its own or repaint the screen.

pub mod csv;
pub mod human;
pub mod json;
pub mod ndjson;
pub mod table;

use serde::Serialize;

use crate::report::Report;
use crate::scan::ScanResult;
use crate::signing::IpswMeFirmware;

/// An output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Human,
    Table,
    Json,
    Ndjson,
    Csv,
}

/// What `ipswcheck signed` prints: ipsw.me's list (its word, not Apple's).
#[derive(Debug, Clone, Serialize)]
pub struct SignedList {
    pub product_type: String,
    pub device: String,
    /// Always `ipsw.me`.
    pub source: &'static str,
    pub builds: Vec<IpswMeFirmware>,
    /// Why the list could not be had (then `builds` is empty).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// One output format for every kind of result.
pub trait Renderer {
    /// One file's report (a check, a remote check, a fetch).
    fn report(&self, report: &Report) -> String;
    /// A library scan.
    fn scan(&self, result: &ScanResult) -> String;
    /// `ipswcheck signed`.
    fn signed(&self, list: &SignedList) -> String;
}

/// How the human formats (`human`, `table`) are drawn on a terminal. The default (no
/// color, no width) is the layout for a pipe or a file, and what the machine formats
/// always use.
#[derive(Debug, Clone, Copy, Default)]
pub struct Style {
    /// Color the verdict and status with ANSI SGR codes (only on a terminal).
    pub color: bool,
    /// Fit the table to this many display columns (the terminal's width).
    pub width: Option<usize>,
}

/// The renderer for `format`; `verbose` lists every check and component (human only).
pub fn renderer(format: Format, verbose: bool) -> Box<dyn Renderer> {
    renderer_with(format, verbose, Style::default())
}

/// [`renderer`] drawn in `style` (color, terminal width); the machine formats (`json`,
/// `ndjson`, `csv`) ignore the style.
pub fn renderer_with(format: Format, verbose: bool, style: Style) -> Box<dyn Renderer> {
    match format {
        Format::Human => Box::new(human::Human { verbose, style }),
        Format::Table => Box::new(table::Table { style }),
        Format::Json => Box::new(json::Json),
        Format::Ndjson => Box::new(ndjson::Ndjson),
        Format::Csv => Box::new(csv::Csv),
    }
}

/// ANSI SGR colors of the human formats (only drawn when [`Style::color`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Color {
    Green,
    Yellow,
    Red,
}

/// `text` in `color` (bold) when `on`, else `text` unchanged.
pub(crate) fn paint(text: &str, color: Color, on: bool) -> String {
    if !on {
        return text.to_owned();
    }
    let code = match color {
        Color::Green => "32",
        Color::Yellow => "33",
        Color::Red => "31",
    };
    format!("\x1b[1;{code}m{text}\x1b[0m")
}

/// The display columns `text` takes on a terminal (wide characters count two).
pub(crate) fn display_width(text: &str) -> usize {
    unicode_width::UnicodeWidthStr::width(text)
}

/// `1.4 GiB`, `412.0 KiB`, `980 B`: binary units, one system everywhere (progress bars
/// too, which indicatif draws in binary units).
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut value = n as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// `text` made safe to print on a terminal: control characters (newlines, escapes, NUL),
/// bidirectional overrides and other invisible format characters become `\u{..}`
/// escapes, so a name from a file or a server can neither start a line of its own (a fake
/// `READY:`) nor repaint the screen.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        // C0/C1 controls (NUL, ESC, CR, LF, NEL), zero-width and direction marks, the
        // line and paragraph separators (a line break to Unicode-aware terminals), bidi
        // embeddings, overrides and isolates, invisible operators, the BOM.
        let invisible = c.is_control()
            || matches!(
                c,
                '\u{061C}'
                    | '\u{200B}'..='\u{200F}'
                    | '\u{2028}'..='\u{202E}'
                    | '\u{2060}'..='\u{2069}'
                    | '\u{FEFF}'
            );
        if invisible {
            out.push_str(&format!("\\u{{{:x}}}", c as u32));
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_binary() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(1023), "1023 B");
        assert_eq!(human_bytes(1024), "1.0 KiB");
        assert_eq!(human_bytes(1_514_000_000), "1.4 GiB");
        assert_eq!(human_bytes(5 << 40), "5.0 TiB");
    }

    #[test]
    fn escape_defuses_terminal_tricks() {
        assert_eq!(escape("plain name.ipsw"), "plain name.ipsw");
        assert_eq!(escape("a\nREADY: b"), "a\\u{a}READY: b");
        assert_eq!(escape("\x1b[2J"), "\\u{1b}[2J");
        assert_eq!(escape("x\u{202E}y\0"), "x\\u{202e}y\\u{0}");
        assert_eq!(
            escape("a\u{2028}b\u{85}c\u{2066}"),
            "a\\u{2028}b\\u{85}c\\u{2066}"
        );
    }
}
