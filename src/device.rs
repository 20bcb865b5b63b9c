//! Which devices exist, and which boards each one has.
//!
//! Why this file is long (~1,050 lines): every way a person names a device (product type,
//! board, model number, printed name, ambiguous names with how to tell them apart) resolves
//! here, with its unit tests; the data are in `device_table.rs` and `device_models.rs`.
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
//! A user rarely knows the product type. [`resolve`] also takes the model number printed on the
//! back of the device (`A1778`, from appledb via `shared/data/device_models.tsv`, embedded as
//! `src/device_models.rs`) and the name ipswcheck prints (`iPhone 7 (GSM)`), ignoring case and
//! spaces. A name or number that fits several product types ("iPhone 7", or A1332, which both
//! iPhone3,1 and iPhone3,2 carry) is [`DeviceError::Ambiguous`]: the message lists the
//! candidates with their model numbers and says how to tell them apart.
//!
//! We never judge a firmware by its file name: `iPhone9,1_10.0.1_14A403_Restore.ipsw` also serves
//! iPhone9,3. Only the manifest's `SupportedProductTypes` and identities decide; this module just
//! tells the rest of the program what the user's device is.

use std::fmt::Write as _;

#[path = "device_table.rs"]
mod table;

#[path = "device_models.rs"]
mod models;

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

/// One row of `shared/data/device_models.tsv` (appledb): the model numbers of a product type on
/// a board, as printed on the device and its box and shown in Settings › General › About.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct DeviceModel {
    /// e.g. `iPhone9,3`.
    pub product_type: &'static str,
    /// Hardware model, lowercase, e.g. `d101ap`; empty for a few unreleased entries.
    pub board: &'static str,
    /// e.g. `["A1778"]`; empty for unreleased and internal entries. One number may belong to two
    /// product types (A1332: iPhone3,1 and iPhone3,2).
    pub model_numbers: &'static [&'static str],
}

/// One of the devices an ambiguous `--device` value could mean.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// e.g. `iPhone9,1`.
    pub product_type: String,
    /// ipswcheck's name, e.g. `iPhone 7 (Global)`.
    pub name: String,
    /// e.g. `["A1660", "A1779", "A1780"]`; empty when appledb lists none.
    pub model_numbers: Vec<String>,
    /// Its boards, e.g. `["d10ap"]`.
    pub boards: Vec<String>,
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
    /// A name or model number that fits several product types ("iPhone 7": iPhone9,1 and
    /// iPhone9,3; A1332: iPhone3,1 and iPhone3,2). `query` is what the user typed.
    #[error("{}", ambiguous_message(.query, .candidates))]
    Ambiguous {
        query: String,
        candidates: Vec<Candidate>,
    },
    /// A model number whose product types the device table (libirecovery's) does not list, so
    /// their boards are unknown (A3473, iPhone19,3).
    #[error("{query} is the model number of {}, which ipswcheck's device table (libirecovery's) does not list yet, so its boards are unknown. Run `ipswcheck devices` for the full list.", .product_types.join(" / "))]
    NotInTable {
        query: String,
        product_types: Vec<String>,
    },
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

/// `two devices`, `three devices`, …
fn count_words(n: usize) -> String {
    const WORDS: [&str; 9] = [
        "no", "one", "two", "three", "four", "five", "six", "seven", "eight",
    ];
    match WORDS.get(n) {
        Some(w) => format!("{w} devices"),
        None => format!("{n} devices"),
    }
}

/// `a`, `a and b`, `a, b and c`.
fn join_and(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [head @ .., last] => format!("{} and {last}", head.join(", ")),
    }
}

/// A radio variant as the message tells it: libirecovery's "Global" is the model that also
/// speaks CDMA (appledb calls the same iPhones "CDMA").
fn variant_label(variant: &str) -> String {
    if variant == "Global" {
        "Global/CDMA".to_string()
    } else {
        variant.to_string()
    }
}

/// Where the owner of `product_type` finds its model number.
fn model_number_place(product_type: &str) -> &'static str {
    let lower = product_type.to_ascii_lowercase();
    if lower.starts_with("iphone") {
        "from the back of the phone / Settings › General › About (tap Model Number)"
    } else if lower.starts_with("ipad") {
        "from the back of the iPad / Settings › General › About (tap Model Number)"
    } else if lower.starts_with("ipod") {
        "from the back of the iPod / Settings › General › About (tap Model Number)"
    } else if lower.starts_with("watch") {
        "from the back of the watch / the Watch app › General › About"
    } else {
        "from the label on the device or its box"
    }
}

fn ambiguous_message(query: &str, candidates: &[Candidate]) -> String {
    let number = model_number_key(query);
    let split: Vec<(String, Option<String>)> =
        candidates.iter().map(|c| variant_of(&c.name)).collect();
    let same_model = split.windows(2).all(|w| w[0].0 == w[1].0);
    let subject = match (&number, split.first()) {
        (Some(n), _) => n.clone(),
        (None, Some((model, _))) if same_model => model.clone(),
        _ => format!("\"{}\"", query.trim()),
    };
    // Variant words tell same-model siblings apart when each has its own; otherwise full names.
    let variants: Option<Vec<String>> = if same_model {
        split
            .iter()
            .map(|(_, v)| v.as_deref().map(variant_label))
            .collect()
    } else {
        None
    };
    let labels = match variants {
        Some(v) if v.iter().enumerate().all(|(i, x)| !v[..i].contains(x)) => v,
        _ => candidates.iter().map(|c| c.name.clone()).collect(),
    };
    let items: Vec<String> = candidates
        .iter()
        .zip(&labels)
        .map(|(c, label)| {
            if c.model_numbers.is_empty() {
                format!("{} ({label})", c.product_type)
            } else {
                format!(
                    "{} ({label}: {})",
                    c.product_type,
                    c.model_numbers.join(", ")
                )
            }
        })
        .collect();
    let mut msg = format!(
        "{subject} is {}: {}",
        count_words(candidates.len()),
        join_and(&items)
    );
    let Some(last) = candidates.last() else {
        return msg;
    };
    let _ = write!(msg, "; name one with --device {}", last.product_type);
    let shared_number = candidates.iter().enumerate().any(|(i, c)| {
        c.model_numbers.iter().any(|m| {
            candidates[i + 1..]
                .iter()
                .any(|o| o.model_numbers.contains(m))
        })
    });
    if !shared_number && candidates.iter().all(|c| !c.model_numbers.is_empty()) {
        let _ = write!(
            msg,
            " or its model number {}",
            model_number_place(&last.product_type)
        );
    } else {
        msg.push_str(
            " (the model number does not tell them apart: `ideviceinfo -k ProductType` prints it), \
             or add --board with its hardware model (`ideviceinfo -k HardwareModel`)",
        );
    }
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

/// Every (product type, board) of appledb with its model numbers, in the order of
/// `shared/data/device_models.tsv`. Covers iPhone, iPad, iPod touch, Apple TV, Apple Watch and
/// HomePod; Macs and a few others have no row.
pub fn models() -> &'static [DeviceModel] {
    models::DEVICE_MODELS
}

/// The model numbers of a product type (case-insensitive), over all its boards, in table order
/// and without repeats: `iPhone9,3` → `["A1778"]`. Empty when appledb lists none.
pub fn model_numbers(product_type: &str) -> Vec<&'static str> {
    let wanted = product_type.trim();
    let mut out: Vec<&'static str> = Vec::new();
    for m in models()
        .iter()
        .filter(|m| m.product_type.eq_ignore_ascii_case(wanted))
    {
        for n in m.model_numbers {
            if !out.contains(n) {
                out.push(n);
            }
        }
    }
    out
}

/// Lowercase, whitespace removed: how product types and boards are compared (`iPhone 9,3`).
fn compact(s: &str) -> String {
    s.chars()
        .filter(|c| !c.is_whitespace())
        .flat_map(char::to_lowercase)
        .collect()
}

/// Lowercase letters and digits only: how names are compared, so that `iphone 7 gsm`,
/// `iPhone7(GSM)` and `iPhone 7 (GSM)` are one name, and `iPad 2 Wi-Fi` is `iPad 2 (WiFi)`.
fn name_key(s: &str) -> String {
    s.chars()
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_lowercase)
        .collect()
}

/// `A1778` (any case, spaces ignored) when `query` has the shape of a model number.
fn model_number_key(query: &str) -> Option<String> {
    let key: String = compact(query).to_ascii_uppercase();
    let digits = key.strip_prefix('A')?;
    (digits.len() == 4 && digits.bytes().all(|b| b.is_ascii_digit())).then_some(key)
}

/// Distinct product types of the rows that `keep`, in table order.
fn product_types_where(keep: impl Fn(&Device) -> bool) -> Vec<&'static str> {
    let mut out: Vec<&'static str> = Vec::new();
    for d in all().iter().filter(|d| keep(d)) {
        if !out.contains(&d.product_type) {
            out.push(d.product_type);
        }
    }
    out
}

/// The product types a model number or a name stands for: `Ok(None)` when it is neither.
///
/// A model number (`A1778`) is looked up in appledb's table, keeping the product types the
/// device table knows; a name is compared with ipswcheck's names (`iPhone 7 (GSM)`), then with
/// the model part of them (`iPhone 7`, which iPhone9,1 and iPhone9,3 share).
fn product_types_named(query: &str) -> Result<Option<Vec<&'static str>>, DeviceError> {
    if let Some(number) = model_number_key(query) {
        let mut named: Vec<&'static str> = Vec::new();
        for m in models()
            .iter()
            .filter(|m| m.model_numbers.contains(&number.as_str()))
        {
            if !named.contains(&m.product_type) {
                named.push(m.product_type);
            }
        }
        if named.is_empty() {
            return Ok(None);
        }
        let known = product_types_where(|d| named.contains(&d.product_type));
        if known.is_empty() {
            return Err(DeviceError::NotInTable {
                query: number,
                product_types: named.iter().map(|t| t.to_string()).collect(),
            });
        }
        return Ok(Some(known));
    }
    let key = name_key(query);
    if key.is_empty() {
        return Ok(None);
    }
    let exact = product_types_where(|d| name_key(d.name) == key);
    if !exact.is_empty() {
        return Ok(Some(exact));
    }
    // libirecovery's "Global" iPhones and iPads are appledb's (and many users') "CDMA" ones.
    let cdma = product_types_where(|d| match variant_of(d.name) {
        (model, Some(v)) if v == "Global" => name_key(&model) + "cdma" == key,
        _ => false,
    });
    if !cdma.is_empty() {
        return Ok(Some(cdma));
    }
    let model = product_types_where(|d| name_key(&variant_of(d.name).0) == key);
    Ok((!model.is_empty()).then_some(model))
}

/// The rows of `product_type`, narrowed to `board` when given. `named` is what the user called
/// the device, for the error.
fn narrow(
    named: &str,
    rows: Vec<&'static Device>,
    board: Option<&str>,
) -> Result<Vec<&'static Device>, DeviceError> {
    let Some(board) = board else {
        return Ok(rows);
    };
    let wanted = compact(board);
    let narrowed: Vec<_> = rows
        .iter()
        .copied()
        .filter(|d| d.board.eq_ignore_ascii_case(&wanted))
        .collect();
    if narrowed.is_empty() {
        return Err(DeviceError::UnknownBoard {
            product_type: named.to_string(),
            board: board.to_string(),
            boards: rows.iter().map(|d| d.board.to_string()).collect(),
        });
    }
    Ok(narrowed)
}

/// Resolve a user's `--device` value, optionally narrowed by `--board` (a hardware model,
/// case-insensitive; must be one of the device's boards). Case and spaces never matter. In order:
///
/// 1. a product type (`iPhone9,3`, `iphone 9,3`);
/// 2. a hardware model (`d101ap`): one board, so one row; a `--board` beside it must be that
///    same board;
/// 3. a model number (`A1778`), from appledb's table;
/// 4. ipswcheck's name of a device (`iPhone 7 (GSM)`, also `iphone 7 gsm`; a "Global" one also
///    as `iPhone 7 CDMA`), then the model part of names (`iPhone 7`).
///
/// Returns every board of the type when `board` is `None` (iPhone8,1 → n71ap and n71map), because
/// without knowing which SoC the phone has, a firmware must suit both. A name or model number
/// that fits several product types is [`DeviceError::Ambiguous`] — unless `--board` picks one of
/// their boards.
pub fn resolve(query: &str, board: Option<&str>) -> Result<Vec<&'static Device>, DeviceError> {
    let query = query.trim();
    let board = board.map(str::trim);
    let wanted = compact(query);

    let rows = by_product_type(&wanted);
    if let Some(first) = rows.first() {
        return narrow(first.product_type, rows, board);
    }

    if let Some(row) = by_board(&wanted) {
        return narrow(row.board, vec![row], board);
    }

    if let Some(types) = product_types_named(query)? {
        if let [one] = types[..] {
            return narrow(one, by_product_type(one), board);
        }
        let rows: Vec<&'static Device> = types.iter().flat_map(|t| by_product_type(t)).collect();
        if let Some(board) = board {
            return narrow(query, rows, Some(board));
        }
        return Err(DeviceError::Ambiguous {
            query: query.to_string(),
            candidates: types
                .iter()
                .map(|t| {
                    let rows = by_product_type(t);
                    Candidate {
                        product_type: t.to_string(),
                        name: rows[0].name.to_string(),
                        model_numbers: model_numbers(t).iter().map(|m| m.to_string()).collect(),
                        boards: rows.iter().map(|d| d.board.to_string()).collect(),
                    }
                })
                .collect(),
        });
    }

    for (prefix, what) in NOT_RESTORABLE {
        if wanted.starts_with(prefix) && wanted[prefix.len()..].contains(',') {
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

/// `ipswcheck devices [QUERY]`: the rows QUERY names, ignoring case and spaces; all rows when
/// empty.
///
/// A query with a comma is part of a product type (`iphone9,` → iPhone9,1…9,4). Otherwise it is
/// looked for in names, boards and model numbers (`iphone7` and `iPhone 7` → the iPhone 7 and
/// 7 Plus, `n71`, `A1778`), and only when nothing matches there in product types (`iphone9`):
/// so `iphone7` means the iPhone 7, not iPhone7,1 (an iPhone 6 Plus).
pub fn search(query: &str) -> Vec<&'static Device> {
    let wanted = compact(query);
    if wanted.is_empty() {
        return all().iter().collect();
    }
    let in_type = |d: &&Device| compact(d.product_type).contains(&wanted);
    if wanted.contains(',') {
        return all()
            .iter()
            .filter(|d| in_type(d) || compact(d.name).contains(&wanted))
            .collect();
    }
    let key = name_key(query);
    let found: Vec<&'static Device> = if key.is_empty() {
        all()
            .iter()
            .filter(|d| compact(d.name).contains(&wanted) || d.board.contains(&wanted))
            .collect()
    } else {
        all()
            .iter()
            .filter(|d| {
                name_key(d.name).contains(&key)
                    || d.board.contains(&key)
                    || model_numbers(d.product_type)
                        .iter()
                        .any(|m| m.to_ascii_lowercase().contains(&key))
            })
            .collect()
    };
    if !found.is_empty() {
        return found;
    }
    all().iter().filter(in_type).collect()
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

/// Aligned columns for `ipswcheck devices`: PRODUCT TYPE, BOARD, CHIP, BOARD ID, NAME, MODEL
/// NUMBERS, with the ids spelled as in BuildManifests (`0x8010`, `0x0C`) and the model numbers
/// comma-separated (empty when appledb lists none). One line per row after the header; ends with
/// a newline; no trailing spaces.
pub fn format_table(rows: &[&Device]) -> String {
    const HEADER: [&str; 6] = [
        "PRODUCT TYPE",
        "BOARD",
        "CHIP",
        "BOARD ID",
        "NAME",
        "MODEL NUMBERS",
    ];
    let cells: Vec<[String; 6]> = rows
        .iter()
        .map(|d| {
            [
                d.product_type.to_string(),
                d.board.to_string(),
                d.chip_id_hex(),
                d.board_id_hex(),
                d.name.to_string(),
                model_numbers(d.product_type).join(","),
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
    let mut line = |cols: [&str; 6]| {
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
        assert_eq!(
            lines[0],
            "PRODUCT TYPE  BOARD   CHIP    BOARD ID  NAME       MODEL NUMBERS"
        );
        assert_eq!(
            lines[1],
            "iPhone8,1     n71ap   0x8000  0x04      iPhone 6s  A1633,A1688,A1691,A1700"
        );
        assert_eq!(
            lines[2],
            "iPhone8,1     n71map  0x8003  0x04      iPhone 6s  A1633,A1688,A1691,A1700"
        );
        assert_eq!(
            format_table(&[]),
            "PRODUCT TYPE  BOARD  CHIP  BOARD ID  NAME  MODEL NUMBERS\n"
        );
        // A device appledb lists no model number for ends with its name.
        let mac = format_table(&by_product_type("Mac14,2"));
        assert!(mac
            .lines()
            .nth(1)
            .unwrap()
            .ends_with("MacBook Air (M2, 2022)"));
    }

    #[test]
    fn keys_and_model_numbers() {
        assert_eq!(compact(" iPhone 9,3 "), "iphone9,3");
        assert_eq!(name_key("iPhone 7 (GSM)"), name_key("iphone7 gsm"));
        assert_eq!(name_key("iPad 2 (WiFi)"), name_key("ipad 2 wi-fi"));
        assert_eq!(model_number_key("a 1778"), Some("A1778".to_string()));
        assert_eq!(model_number_key("A177"), None);
        assert_eq!(model_number_key("B1778"), None);
        assert_eq!(model_numbers("iphone9,1"), ["A1660", "A1779", "A1780"]);
        // Two boards, one list.
        assert_eq!(
            model_numbers("iPhone8,1"),
            ["A1633", "A1688", "A1691", "A1700"]
        );
        assert!(model_numbers("Mac14,2").is_empty());
        assert_eq!(count_words(2), "two devices");
        assert_eq!(count_words(12), "12 devices");
        assert_eq!(
            join_and(&["a".into(), "b".into(), "c".into()]),
            "a, b and c"
        );
    }

    #[test]
    fn ambiguous_message_shapes() {
        let Err(e) = resolve("iphone 7", None) else {
            panic!("iphone 7 must be ambiguous");
        };
        assert_eq!(
            e.to_string(),
            "iPhone 7 is two devices: iPhone9,1 (Global/CDMA: A1660, A1779, A1780) and \
             iPhone9,3 (GSM: A1778); name one with --device iPhone9,3 or its model number from \
             the back of the phone / Settings › General › About (tap Model Number)"
        );
        let Err(e) = resolve("A1332", None) else {
            panic!("A1332 must be ambiguous");
        };
        let msg = e.to_string();
        assert!(
            msg.starts_with(
                "A1332 is two devices: iPhone3,1 (iPhone 4 (GSM): A1332) and \
                 iPhone3,2 (iPhone 4 (GSM) R2 2012: A1332); name one with --device iPhone3,2 \
                 (the model number does not tell them apart"
            ),
            "{msg}"
        );
        assert!(msg.contains("--board"), "{msg}");
    }
}
