//! Which devices exist, and which boards each one has.
//!
//! A restore is matched to a device by its *board*, not by its marketing name: a BuildManifest's
//! identities name a hardware model (`Info/DeviceClass`, e.g. `d101ap`) or an `ApChipID` +
//! `ApBoardID` pair (`0x8010`, `0x0C`), while the user knows a product type (`iPhone9,3`) or
//! a name ("iPhone 7"). Until iOS 26 the manifests do not carry the product type → board link
//! themselves, so we need a table.
//!
//! The facts come from libirecovery's `irecv_devices[]` (the table idevicerestore itself restores
//! by), copied into `shared/data/devices.tsv` and embedded here as generated Rust source
//! (`src/device_table.rs`, written by `tools/gen_device_table.py`). Nothing is fetched at run
//! time, so a check works offline and gives the same answer tomorrow.
//!
//! Two things in the table are easy to get wrong:
//!
//! * **One product type can have two boards.** Apple dual-sourced some SoCs (iPhone 6s: Samsung
//!   `n71ap` 0x8000 and TSMC `n71map` 0x8003; also iPhone8,2, iPhone8,4, iPad6,11, iPad6,12). Both
//!   boards report the same product type; the IPSW carries an identity for each. So
//!   [`resolve`] returns *every* board of a product type unless `--board` narrows it, and a
//!   check must hold for all of them.
//! * **Cellular variants are different product types.** iPhone9,1 (d10ap, Qualcomm "Global") and
//!   iPhone9,3 (d101ap, Intel "GSM") are both an "iPhone 7", with different boards and basebands.
//!   Up to iOS 9 each had its own IPSW, and restoring the sibling's file was the classic
//!   wrong-firmware mistake; [`variant_of`] and [`sibling_variant`] exist to say exactly that.
//!
//! We never judge a firmware by its file name: `iPhone9,1_10.0.1_14A403_Restore.ipsw` also serves
//! iPhone9,3. Only the manifest's `SupportedProductTypes` and identities decide; this module just
//! tells the rest of the program what the user's device is.

use std::fmt::Write as _;

#[path = "device_table.rs"]
mod table;

/// One row: a product type on one board.
///
/// `chip_id` and `board_id` are the values the device reports in DFU/recovery mode (`CPID`,
/// `BDID`) and the ones a BuildManifest identity stores as `ApChipID` / `ApBoardID`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Device {
    /// e.g. `iPhone9,3`. Not unique in the table: see the module docs on dual-sourced boards.
    pub product_type: &'static str,
    /// Hardware model / board config, lowercase, e.g. `d101ap`. Unique in the table.
    pub board: &'static str,
    /// Application processor chip id, e.g. `0x8010`.
    pub chip_id: u32,
    /// Board id, e.g. `0x0C`.
    pub board_id: u32,
    /// libirecovery's display name, e.g. `iPhone 7 (GSM)`.
    pub name: &'static str,
}

impl Device {
    /// Chip id as BuildManifests spell it: `0x8010`.
    pub fn chip_id_hex(&self) -> String {
        format!("0x{:04X}", self.chip_id)
    }

    /// Board id as BuildManifests spell it: `0x0C`.
    pub fn board_id_hex(&self) -> String {
        format!("0x{:02X}", self.board_id)
    }
}

/// Why a `--device` / `--board` value could not be resolved.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DeviceError {
    /// Neither a product type nor a hardware model we know. `suggestions` come from [`suggest`].
    #[error("{}", unknown_message(.query, .suggestions))]
    Unknown {
        query: String,
        suggestions: Vec<String>,
    },
    /// A product type that appears in Apple's manifests but names nothing a person restores
    /// with Finder (ComputeModule13,1 in macOS and visionOS files, iSim1,1 the Simulator).
    #[error("{query} is {what}, not a device that can be restored with Finder; ipswcheck checks restores of iPhone, iPad, iPod touch, Apple TV, Apple Watch, HomePod, Mac and Vision Pro (`ipswcheck devices` lists them)")]
    NotRestorable { query: String, what: &'static str },
    /// `--board` is not one of the device's boards. `product_type` is what the user named
    /// (a product type, or the hardware model when `--device` was one); `boards` are its boards.
    #[error("{product_type} has no board \"{board}\"; its boards are: {}", .boards.join(", "))]
    UnknownBoard {
        product_type: String,
        board: String,
        boards: Vec<String>,
    },
}

fn unknown_message(query: &str, suggestions: &[String]) -> String {
    let mut msg = format!("unknown device \"{query}\"");
    if suggestions.is_empty() {
        msg.push('.');
    } else {
        let _ = write!(msg, "; did you mean: {}?", suggestions.join(", "));
    }
    msg.push_str(" Run `ipswcheck devices` for the full list.");
    msg
}

/// Every known (product type, board), in libirecovery's order.
pub fn all() -> &'static [Device] {
    table::DEVICES
}

/// Rows whose product type equals `product_type` (case-insensitive), in table order.
///
/// Usually one row; two for the dual-sourced product types (iPhone8,1 → n71ap, n71map).
pub fn by_product_type(product_type: &str) -> Vec<&'static Device> {
    let wanted = product_type.trim();
    all()
        .iter()
        .filter(|d| d.product_type.eq_ignore_ascii_case(wanted))
        .collect()
}

/// The row of a hardware model (case-insensitive). Hardware models are unique in the table.
fn by_board(board: &str) -> Option<&'static Device> {
    let wanted = board.trim();
    all().iter().find(|d| d.board.eq_ignore_ascii_case(wanted))
}

/// Resolve a user's `--device` value: a product type (`iPhone9,3`) or a hardware model
/// (`d101ap`), case-insensitive, optionally narrowed by `--board` (a hardware model,
/// case-insensitive; must be one of that product type's boards).
///
/// Returns every board of the type when `board` is `None` (iPhone8,1 → n71ap and n71map), because
/// without knowing which SoC the phone has, a firmware must suit both. A hardware model names one
/// board, so it gives one row; a `--board` beside it must then be that same board.
pub fn resolve(query: &str, board: Option<&str>) -> Result<Vec<&'static Device>, DeviceError> {
    let query = query.trim();
    let board = board.map(str::trim);

    let rows = by_product_type(query);
    if !rows.is_empty() {
        let Some(board) = board else {
            return Ok(rows);
        };
        let narrowed: Vec<_> = rows
            .iter()
            .copied()
            .filter(|d| d.board.eq_ignore_ascii_case(board))
            .collect();
        if narrowed.is_empty() {
            return Err(DeviceError::UnknownBoard {
                product_type: rows[0].product_type.to_string(),
                board: board.to_string(),
                boards: rows.iter().map(|d| d.board.to_string()).collect(),
            });
        }
        return Ok(narrowed);
    }

    if let Some(row) = by_board(query) {
        if let Some(board) = board {
            if !row.board.eq_ignore_ascii_case(board) {
                return Err(DeviceError::UnknownBoard {
                    product_type: row.board.to_string(),
                    board: board.to_string(),
                    boards: vec![row.board.to_string()],
                });
            }
        }
        return Ok(vec![row]);
    }

    let lower = query.to_ascii_lowercase();
    for (prefix, what) in NOT_RESTORABLE {
        if lower.starts_with(prefix) && lower[prefix.len()..].contains(',') {
            return Err(DeviceError::NotRestorable {
                query: query.to_string(),
                what,
            });
        }
    }
    Err(DeviceError::Unknown {
        query: query.to_string(),
        suggestions: suggest(query),
    })
}

/// Product-type families that real manifests list (ComputeModule13,1/13,3 in macOS 26 and
/// visionOS files, ComputeModule13,5/14,1/14,2 in newer ones, iSim1,1 in developer disk
/// images) but that are no device of the table: named so that `--device` says what they
/// are instead of suggesting iPhones.
const NOT_RESTORABLE: [(&str, &str); 2] = [
    ("computemodule", "an Apple internal compute module"),
    ("isim", "the iOS Simulator"),
];

/// `ipswcheck devices [QUERY]`: rows where QUERY (case-insensitive) is a substring of product
/// type, board or name; all rows when empty.
pub fn search(query: &str) -> Vec<&'static Device> {
    let q = query.trim().to_lowercase();
    if q.is_empty() {
        return all().iter().collect();
    }
    all()
        .iter()
        .filter(|d| {
            [d.product_type, d.board, d.name]
                .iter()
                .any(|f| f.to_lowercase().contains(&q))
        })
        .collect()
}

/// How well `query` (lowercase) matches `field` (lowercase); lower is better, `None` is no match.
///
/// Exact beats prefix beats substring beats a small edit distance; the distance allowed grows
/// with the query (a third of its length, at least 1), so "iphone9,9" finds iPhone9,1..9,4 but
/// "zzz" finds nothing.
fn match_cost(query: &str, field: &str) -> Option<usize> {
    if field == query {
        return Some(0);
    }
    let qlen = query.chars().count();
    if qlen >= 2 && field.starts_with(query) {
        return Some(5);
    }
    if qlen >= 3 && field.contains(query) {
        return Some(8);
    }
    let limit = (qlen / 3).max(1);
    let d = levenshtein(query, field);
    (d <= limit).then_some(10 * d)
}

/// Classic edit distance (insert, delete, substitute), on chars.
fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.chars().enumerate() {
        cur[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != cb);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

/// Up to 5 close matches for an unknown query (edit distance and prefix/substring on product
/// type, board and name), best first, each as `"iPhone9,3 (iPhone 7 (GSM))"`.
///
/// Ties keep table order; a dual-board product type is suggested once.
pub fn suggest(query: &str) -> Vec<String> {
    let q = query.trim().to_lowercase();
    if q.is_empty() {
        return Vec::new();
    }
    let mut scored: Vec<(usize, usize, &Device)> = all()
        .iter()
        .enumerate()
        .filter_map(|(i, d)| {
            [d.product_type, d.board, d.name]
                .iter()
                .filter_map(|f| match_cost(&q, &f.to_lowercase()))
                .min()
                .map(|cost| (cost, i, d))
        })
        .collect();
    scored.sort_by_key(|&(cost, i, _)| (cost, i));

    let mut seen: Vec<&str> = Vec::new();
    let mut out = Vec::new();
    for (_, _, d) in scored {
        if seen.contains(&d.product_type) {
            continue;
        }
        seen.push(d.product_type);
        out.push(format!("{} ({})", d.product_type, d.name));
        if out.len() == 5 {
            break;
        }
    }
    out
}

/// Display name of a product type: `"iPhone 4 (GSM)"`; for an unknown type returns the type
/// itself, so messages stay readable for devices newer than the table.
pub fn display_name(product_type: &str) -> String {
    match by_product_type(product_type).first() {
        Some(d) => d.name.to_string(),
        None => product_type.to_string(),
    }
}

/// A word in a display name that names a cellular/radio variant, normalised.
fn variant_word(word: &str) -> Option<&'static str> {
    const WORDS: &[(&str, &str)] = &[
        ("GSM", "GSM"),
        ("CDMA", "CDMA"),
        ("Global", "Global"),
        ("WiFi", "Wi-Fi"),
        ("Wi-Fi", "Wi-Fi"),
        ("Cellular", "Cellular"),
        ("China", "China"),
    ];
    WORDS
        .iter()
        .find(|(w, _)| w.eq_ignore_ascii_case(word))
        .map(|&(_, v)| v)
}

/// A hardware-revision suffix after the parentheses, as in `iPhone 4 (GSM) R2 2012`.
fn is_revision(tail: &str) -> bool {
    let mut words = tail.split_whitespace();
    let rev_ok = words.next().is_some_and(|w| {
        w.len() > 1 && w.starts_with('R') && w[1..].bytes().all(|b| b.is_ascii_digit())
    });
    let year_ok = words
        .next()
        .is_none_or(|y| y.len() == 4 && y.bytes().all(|b| b.is_ascii_digit()));
    rev_ok && year_ok && words.next().is_none()
}

/// The model a product type belongs to and its cellular/radio variant, from the display name.
///
/// `"iPhone 4 (GSM)"` → `("iPhone 4", Some("GSM"))`; `"iPad 2 (WiFi)"` → `("iPad 2",
/// Some("Wi-Fi"))`; `"iPad Pro 11-inch (M4, Cellular)"` → `("iPad Pro 11-inch (M4)",
/// Some("Cellular"))`; `"Apple Watch Series 4 (44mm Cellular)"` → `("Apple Watch Series 4
/// (44mm)", Some("Cellular"))`; `"iPhone 6s"` → `("iPhone 6s", None)`.
///
/// Variant words (GSM, CDMA, Global, WiFi/Wi-Fi → "Wi-Fi", Cellular, China) are looked for in the
/// last parenthesised group; everything else there (generation, size, storage such as "1TB")
/// stays part of the model, because it is a different board. A trailing revision such as
/// `R2 2012` (iPhone3,2, iPad2,4) is the same model on a revised board, so it is dropped: the
/// iPhone 4 (GSM) R2 2012 is still a GSM iPhone 4, a sibling of the CDMA one.
///
/// A name without a variant word is returned unchanged with `None` (a Wi-Fi-only watch, which
/// libirecovery names without a variant, then is the `None` sibling of the "Cellular" one).
pub fn variant_of(name: &str) -> (String, Option<String>) {
    let name = name.trim();
    let (Some(open), Some(close)) = (name.rfind('('), name.rfind(')')) else {
        return (name.to_string(), None);
    };
    if close < open {
        return (name.to_string(), None);
    }
    let head = name[..open].trim_end();
    let tail = name[close + 1..].trim();

    let mut variants: Vec<&str> = Vec::new();
    let mut kept: Vec<String> = Vec::new();
    for token in name[open + 1..close].split(',') {
        let words: Vec<&str> = token
            .split_whitespace()
            .filter(|w| match variant_word(w) {
                Some(v) => {
                    variants.push(v);
                    false
                }
                None => true,
            })
            .collect();
        if !words.is_empty() {
            kept.push(words.join(" "));
        }
    }
    if variants.is_empty() {
        return (name.to_string(), None);
    }

    let mut model = head.to_string();
    if !kept.is_empty() {
        let _ = write!(model, " ({})", kept.join(", "));
    }
    if !tail.is_empty() && !is_revision(tail) {
        model.push(' ');
        model.push_str(tail);
    }
    (model, Some(variants.join(", ")))
}

/// When `device` is a sibling cellular variant of one of `supported` product types (same model,
/// different variant), return that sibling's product type, as spelled in `supported`.
///
/// Used to say "this file is for the iPhone 4 (GSM), your device is the iPhone 4 (CDMA)" rather
/// than a bare "not supported". Returns `None` when `device`'s own product type is supported
/// (nothing is wrong), and for same-model product types with the same variant (two revisions of
/// a board are not a cellular mix-up). The first matching entry of `supported` wins.
pub fn sibling_variant<'a>(device: &Device, supported: &'a [String]) -> Option<&'a str> {
    if supported
        .iter()
        .any(|s| s.trim().eq_ignore_ascii_case(device.product_type))
    {
        return None;
    }
    let (model, variant) = variant_of(device.name);
    supported.iter().map(|s| s.trim()).find(|s| {
        by_product_type(s).first().is_some_and(|other| {
            let (other_model, other_variant) = variant_of(other.name);
            other_model == model && other_variant != variant
        })
    })
}

/// Aligned columns for `ipswcheck devices`: PRODUCT TYPE, BOARD, CHIP, BOARD ID, NAME, with the
/// ids spelled as in BuildManifests (`0x8010`, `0x0C`). One line per row after the header; ends
/// with a newline; no trailing spaces.
pub fn format_table(rows: &[&Device]) -> String {
    const HEADER: [&str; 5] = ["PRODUCT TYPE", "BOARD", "CHIP", "BOARD ID", "NAME"];
    let cells: Vec<[String; 5]> = rows
        .iter()
        .map(|d| {
            [
                d.product_type.to_string(),
                d.board.to_string(),
                d.chip_id_hex(),
                d.board_id_hex(),
                d.name.to_string(),
            ]
        })
        .collect();
    let mut widths = HEADER.map(str::len);
    for row in &cells {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }

    let mut out = String::new();
    let mut line = |cols: [&str; 5]| {
        let mut l = String::new();
        for (i, col) in cols.iter().enumerate() {
            if i + 1 == cols.len() {
                l.push_str(col);
            } else {
                let _ = write!(l, "{col:<width$}  ", width = widths[i]);
            }
        }
        out.push_str(l.trim_end());
        out.push('\n');
    };
    line(HEADER);
    for row in &cells {
        line(row.each_ref().map(String::as_str));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(name: &str) -> (String, Option<String>) {
        variant_of(name)
    }

    fn some(model: &str, variant: &str) -> (String, Option<String>) {
        (model.to_string(), Some(variant.to_string()))
    }

    #[test]
    fn variant_of_examples() {
        assert_eq!(v("iPhone 4 (GSM)"), some("iPhone 4", "GSM"));
        assert_eq!(v("iPhone 4 (CDMA)"), some("iPhone 4", "CDMA"));
        assert_eq!(v("iPhone 7 (Global)"), some("iPhone 7", "Global"));
        assert_eq!(v("iPad 2 (WiFi)"), some("iPad 2", "Wi-Fi"));
        assert_eq!(v("iPad Air (China)"), some("iPad Air", "China"));
        assert_eq!(
            v("iPad Pro 11-inch (M4, Cellular)"),
            some("iPad Pro 11-inch (M4)", "Cellular")
        );
        assert_eq!(
            v("iPad Air 11-inch (M4, Wi-Fi)"),
            some("iPad Air 11-inch (M4)", "Wi-Fi")
        );
        assert_eq!(
            v("iPad Pro 11-inch (1st gen, WiFi, 1TB)"),
            some("iPad Pro 11-inch (1st gen, 1TB)", "Wi-Fi")
        );
        assert_eq!(
            v("Apple Watch Series 4 (44mm Cellular)"),
            some("Apple Watch Series 4 (44mm)", "Cellular")
        );
        assert_eq!(v("iPhone 4 (GSM) R2 2012"), some("iPhone 4", "GSM"));
        assert_eq!(v("iPad 2 (WiFi) R2 2012"), some("iPad 2", "Wi-Fi"));
        assert_eq!(v("iPhone 6s"), ("iPhone 6s".to_string(), None));
        assert_eq!(
            v("Apple Watch Series 4 (44mm)"),
            ("Apple Watch Series 4 (44mm)".to_string(), None)
        );
        assert_eq!(
            v("MacBook Pro (14-inch, M3 Max, Nov 2023)"),
            ("MacBook Pro (14-inch, M3 Max, Nov 2023)".to_string(), None)
        );
    }

    #[test]
    fn every_name_in_the_table_splits_sensibly() {
        for d in all() {
            let (model, variant) = variant_of(d.name);
            assert!(!model.is_empty(), "{d:?}");
            assert!(!model.contains("()"), "{d:?} -> {model}");
            assert!(
                !model.contains("WiFi") && !model.contains("Cellular"),
                "{model}"
            );
            if let Some(variant) = variant {
                assert!(!variant.contains(','), "{d:?} has two variant words");
            }
        }
    }

    #[test]
    fn revision_suffix() {
        assert!(is_revision("R2 2012"));
        assert!(is_revision("R2"));
        assert!(!is_revision("Rev 2012"));
        assert!(!is_revision("R2 12"));
        assert!(!is_revision("R2 2012 x"));
    }

    #[test]
    fn levenshtein_basics() {
        assert_eq!(levenshtein("", ""), 0);
        assert_eq!(levenshtein("abc", ""), 3);
        assert_eq!(levenshtein("iphone9,9", "iphone9,1"), 1);
        assert_eq!(levenshtein("kitten", "sitting"), 3);
    }

    #[test]
    fn display_name_known_and_unknown() {
        assert_eq!(display_name("iPhone3,1"), "iPhone 4 (GSM)");
        assert_eq!(display_name("iphone8,1"), "iPhone 6s");
        assert_eq!(display_name("iPhone99,99"), "iPhone99,99");
    }

    #[test]
    fn table_invariants() {
        let rows = all();
        assert_eq!(rows.len(), 318);
        for (i, d) in rows.iter().enumerate() {
            assert_eq!(d.board, d.board.to_lowercase(), "{d:?}");
            assert!(d.chip_id <= 0xFFFF && d.board_id <= 0xFF, "{d:?}");
            assert!(
                rows[i + 1..].iter().all(|e| e.board != d.board),
                "board {} twice",
                d.board
            );
            // Rows of one product type are adjacent and share a name.
            for e in &rows[i + 1..] {
                if e.product_type == d.product_type {
                    assert_eq!(e.name, d.name);
                }
            }
        }
        let two: Vec<_> = [
            "iPhone8,1",
            "iPhone8,2",
            "iPhone8,4",
            "iPad6,11",
            "iPad6,12",
        ]
        .iter()
        .map(|t| by_product_type(t).len())
        .collect();
        assert_eq!(two, [2; 5]);
    }

    #[test]
    fn hex_spelling() {
        let d = by_product_type("iPhone9,3")[0];
        assert_eq!(d.chip_id_hex(), "0x8010");
        assert_eq!(d.board_id_hex(), "0x0C");
    }

    #[test]
    fn error_messages() {
        let e = DeviceError::Unknown {
            query: "iphone9,9".into(),
            suggestions: vec![
                "iPhone9,1 (iPhone 7 (Global))".into(),
                "iPhone9,3 (iPhone 7 (GSM))".into(),
            ],
        };
        assert_eq!(
            e.to_string(),
            "unknown device \"iphone9,9\"; did you mean: iPhone9,1 (iPhone 7 (Global)), \
             iPhone9,3 (iPhone 7 (GSM))? Run `ipswcheck devices` for the full list."
        );
        let e = DeviceError::Unknown {
            query: "zzz".into(),
            suggestions: vec![],
        };
        assert_eq!(
            e.to_string(),
            "unknown device \"zzz\". Run `ipswcheck devices` for the full list."
        );
        let e = DeviceError::UnknownBoard {
            product_type: "iPhone9,3".into(),
            board: "n71ap".into(),
            boards: vec!["d101ap".into()],
        };
        assert_eq!(
            e.to_string(),
            "iPhone9,3 has no board \"n71ap\"; its boards are: d101ap"
        );
    }

    #[test]
    fn suggest_shapes() {
        assert!(suggest("").is_empty());
        assert!(suggest("zzzzzzzz").is_empty());
        let s = suggest("iphone8,3");
        assert!(s.len() <= 5);
        // iPhone8,1 has two boards but is suggested once.
        assert_eq!(s.iter().filter(|x| x.starts_with("iPhone8,1 ")).count(), 1);
        assert_eq!(suggest("n71")[0], "iPhone8,1 (iPhone 6s)");
    }

    #[test]
    fn resolve_board_beside_hardware_model() {
        assert_eq!(
            resolve("n71map", Some("N71MAP")).unwrap()[0].chip_id,
            0x8003
        );
        assert_eq!(
            resolve("n71ap", Some("n71map")),
            Err(DeviceError::UnknownBoard {
                product_type: "n71ap".into(),
                board: "n71map".into(),
                boards: vec!["n71ap".into()],
            })
        );
    }

    #[test]
    fn format_table_columns() {
        let rows = by_product_type("iPhone8,1");
        let t = format_table(&rows);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(t.ends_with('\n'));
        assert!(lines.iter().all(|l| l == &l.trim_end()));
        assert_eq!(lines[0], "PRODUCT TYPE  BOARD   CHIP    BOARD ID  NAME");
        assert_eq!(
            lines[1],
            "iPhone8,1     n71ap   0x8000  0x04      iPhone 6s"
        );
        assert_eq!(
            lines[2],
            "iPhone8,1     n71map  0x8003  0x04      iPhone 6s"
        );
        assert_eq!(
            format_table(&[]),
            "PRODUCT TYPE  BOARD  CHIP  BOARD ID  NAME\n"
        );
    }
}
