//! The device table and `--device` resolution, seen from outside the crate.

use std::path::PathBuf;

use ipswcheck::device::{self, Device, DeviceError};

use crate::util::{run, sample_ipsw, shared};

/// shared/data/devices.tsv, or `IPSWCHECK_DEVICES_TSV` if set.
fn tsv_path() -> PathBuf {
    match std::env::var_os("IPSWCHECK_DEVICES_TSV") {
        Some(p) => PathBuf::from(p),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/data/devices.tsv"),
    }
}

fn parse_hex(s: &str) -> u32 {
    u32::from_str_radix(s.strip_prefix("0x").expect("0x prefix"), 16).expect("hex")
}

#[test]
fn embedded_table_equals_devices_tsv() {
    let path = tsv_path();
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) => {
            let ci = std::env::var("CI").is_ok_and(|v| v.eq_ignore_ascii_case("true"));
            assert!(!ci, "CI=true but {} is unreadable: {e}", path.display());
            println!(
                "SKIPPED: {} not found ({e}); embedded table not cross-checked",
                path.display()
            );
            return;
        }
    };
    let mut lines = text.lines();
    assert_eq!(
        lines.next(),
        Some("product_type\thardware_model\tchip_id\tboard_id\tdisplay_name")
    );
    let expected: Vec<(String, String, u32, u32, String, String, String)> = lines
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let c: Vec<&str> = l.split('\t').collect();
            assert_eq!(c.len(), 5, "{l:?}");
            (
                c[0].to_string(),
                c[1].to_string(),
                parse_hex(c[2]),
                parse_hex(c[3]),
                c[4].to_string(),
                c[2].to_string(),
                c[3].to_string(),
            )
        })
        .collect();
    assert_eq!(expected.len(), 318);

    let table = device::all();
    assert_eq!(table.len(), expected.len());
    for (i, (d, e)) in table.iter().zip(&expected).enumerate() {
        let row = i + 2;
        assert_eq!(d.product_type, e.0, "line {row}");
        assert_eq!(d.board, e.1, "line {row}");
        assert_eq!(d.chip_id, e.2, "line {row}");
        assert_eq!(d.board_id, e.3, "line {row}");
        assert_eq!(d.name, e.4, "line {row}");
        // And the hex spelling round-trips (0x%04X, 0x%02X).
        assert_eq!(d.chip_id_hex(), e.5, "line {row}");
        assert_eq!(d.board_id_hex(), e.6, "line {row}");
    }
}

fn boards(rows: &[&Device]) -> Vec<(&'static str, u32)> {
    rows.iter().map(|d| (d.board, d.chip_id)).collect()
}

#[test]
fn resolve_product_type_or_hardware_model_any_case() {
    for q in [
        "iPhone9,3",
        "IPHONE9,3",
        "iphone9,3",
        "d101ap",
        "D101AP",
        " d101ap ",
    ] {
        let rows = device::resolve(q, None).unwrap_or_else(|e| panic!("{q}: {e}"));
        assert_eq!(rows.len(), 1, "{q}");
        let d = rows[0];
        assert_eq!(
            (d.product_type, d.board, d.chip_id, d.board_id),
            ("iPhone9,3", "d101ap", 0x8010, 0x0C),
            "{q}"
        );
        assert_eq!(d.name, "iPhone 7 (GSM)");
    }
    let d10 = device::resolve("d10ap", None).unwrap();
    assert_eq!(d10.len(), 1);
    assert_eq!(d10[0].product_type, "iPhone9,1");
}

#[test]
fn resolve_dual_board_product_type() {
    let rows = device::resolve("iPhone8,1", None).unwrap();
    assert_eq!(boards(&rows), [("n71ap", 0x8000), ("n71map", 0x8003)]);

    let one = device::resolve("iPhone8,1", Some("n71map")).unwrap();
    assert_eq!(boards(&one), [("n71map", 0x8003)]);
    let one = device::resolve("iphone8,1", Some("N71AP")).unwrap();
    assert_eq!(boards(&one), [("n71ap", 0x8000)]);

    let err = device::resolve("iPhone8,1", Some("d101ap")).unwrap_err();
    assert_eq!(
        err,
        DeviceError::UnknownBoard {
            product_type: "iPhone8,1".into(),
            board: "d101ap".into(),
            boards: vec!["n71ap".into(), "n71map".into()],
        }
    );
    assert_eq!(
        err.to_string(),
        "iPhone8,1 has no board \"d101ap\"; its boards are: n71ap, n71map"
    );

    // The other dual-sourced types resolve to two boards as well.
    for t in ["iPhone8,2", "iPhone8,4", "iPad6,11", "iPad6,12"] {
        assert_eq!(device::resolve(t, None).unwrap().len(), 2, "{t}");
    }
}

#[test]
fn resolve_unknown_suggests() {
    let err = device::resolve("iPhone9,9", None).unwrap_err();
    let DeviceError::Unknown { query, suggestions } = &err else {
        panic!("expected Unknown, got {err:?}");
    };
    assert_eq!(query, "iPhone9,9");
    assert!(suggestions.len() <= 5);
    assert!(
        suggestions.contains(&"iPhone9,1 (iPhone 7 (Global))".to_string()),
        "{suggestions:?}"
    );
    assert!(
        suggestions.contains(&"iPhone9,3 (iPhone 7 (GSM))".to_string()),
        "{suggestions:?}"
    );
    let msg = err.to_string();
    assert!(
        msg.starts_with("unknown device \"iPhone9,9\"; did you mean: iPhone9,"),
        "{msg}"
    );
    assert!(
        msg.ends_with("Run `ipswcheck devices` for the full list."),
        "{msg}"
    );

    // A misspelt board is found too.
    let DeviceError::Unknown { suggestions, .. } = device::resolve("d101a", None).unwrap_err()
    else {
        panic!("expected Unknown");
    };
    assert_eq!(suggestions[0], "iPhone9,3 (iPhone 7 (GSM))");

    assert!(matches!(
        device::resolve("", None),
        Err(DeviceError::Unknown { .. })
    ));
}

#[test]
fn by_product_type_and_display_name() {
    assert_eq!(device::by_product_type("IPAD6,11").len(), 2);
    assert!(device::by_product_type("iPhone9,9").is_empty());
    assert_eq!(device::display_name("iPhone3,3"), "iPhone 4 (CDMA)");
    assert_eq!(device::display_name("Foo1,1"), "Foo1,1");
}

fn one(product_type: &str) -> &'static Device {
    device::by_product_type(product_type)[0]
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

#[test]
fn variant_of_real_names() {
    assert_eq!(
        device::variant_of(one("iPhone3,1").name),
        ("iPhone 4".to_string(), Some("GSM".to_string()))
    );
    assert_eq!(
        device::variant_of(one("iPhone3,3").name),
        ("iPhone 4".to_string(), Some("CDMA".to_string()))
    );
    assert_eq!(
        device::variant_of(one("iPhone9,1").name),
        ("iPhone 7".to_string(), Some("Global".to_string()))
    );
    assert_eq!(
        device::variant_of(one("iPad2,1").name),
        ("iPad 2".to_string(), Some("Wi-Fi".to_string()))
    );
    assert_eq!(
        device::variant_of(one("iPad16,4").name),
        (
            "iPad Pro 11-inch (M4)".to_string(),
            Some("Cellular".to_string())
        )
    );
    assert_eq!(
        device::variant_of(one("Watch4,4").name),
        (
            "Apple Watch Series 4 (44mm)".to_string(),
            Some("Cellular".to_string())
        )
    );
    assert_eq!(
        device::variant_of(one("iPhone8,1").name),
        ("iPhone 6s".to_string(), None)
    );
}

#[test]
fn sibling_variants() {
    // iOS <= 9: one file per variant; the CDMA iPhone 4 given the GSM file.
    assert_eq!(
        device::sibling_variant(one("iPhone3,3"), &strings(&["iPhone3,1"])),
        Some("iPhone3,1")
    );
    assert_eq!(
        device::sibling_variant(one("iPhone9,3"), &strings(&["iPhone9,1"])),
        Some("iPhone9,1")
    );
    // A different model is not a sibling.
    assert_eq!(
        device::sibling_variant(one("iPhone10,6"), &strings(&["iPhone9,1", "iPhone9,3"])),
        None
    );
    // Supported already: nothing to explain.
    assert_eq!(
        device::sibling_variant(one("iPhone9,3"), &strings(&["iPhone9,1", "iPhone9,3"])),
        None
    );
    // iPad Wi-Fi vs Cellular, both directions; "WiFi" and "Wi-Fi" spellings alike.
    assert_eq!(
        device::sibling_variant(one("iPad16,4"), &strings(&["iPad16,3"])),
        Some("iPad16,3")
    );
    assert_eq!(
        device::sibling_variant(one("iPad16,8"), &strings(&["iPad16,9"])),
        Some("iPad16,9")
    );
    // The revised-board GSM iPhone 4 is still a sibling of the CDMA one.
    assert_eq!(
        device::sibling_variant(one("iPhone3,3"), &strings(&["iPhone3,2"])),
        Some("iPhone3,2")
    );
    // Same model, same variant (a board revision) is not a cellular mix-up.
    assert_eq!(
        device::sibling_variant(one("iPhone3,1"), &strings(&["iPhone3,2"])),
        None
    );
    // Unknown product types in `supported` are ignored.
    assert_eq!(
        device::sibling_variant(one("iPhone3,1"), &strings(&["Foo1,1"])),
        None
    );
}

#[test]
fn search_and_format_table() {
    let found: Vec<&str> = device::search("iphone 7")
        .iter()
        .map(|d| d.product_type)
        .collect();
    assert_eq!(found, ["iPhone9,1", "iPhone9,2", "iPhone9,3", "iPhone9,4"]);
    assert_eq!(device::search("").len(), 318);
    assert_eq!(device::search("  ").len(), 318);
    assert_eq!(device::search("N71M").len(), 1);
    assert!(device::search("no such thing").is_empty());

    let rows = device::search("iphone 7");
    let table = device::format_table(&rows);
    assert!(table.ends_with('\n'));
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 1 + rows.len());
    for col in ["PRODUCT TYPE", "BOARD", "CHIP", "BOARD ID", "NAME"] {
        assert!(lines[0].contains(col), "{}", lines[0]);
    }
    let name_col = lines[0].find("NAME").unwrap();
    let models_col = lines[0].find("MODEL NUMBERS").unwrap();
    let chip_col = lines[0].find("CHIP").unwrap();
    for (line, d) in lines[1..].iter().zip(&rows) {
        assert!(line.starts_with(d.product_type));
        assert_eq!(line[name_col..models_col].trim_end(), d.name, "{line}");
        assert_eq!(
            &line[models_col..],
            device::model_numbers(d.product_type).join(","),
            "{line}"
        );
        assert_eq!(&line[chip_col..chip_col + 6], d.chip_id_hex(), "{line}");
    }
    assert!(
        table.contains("iPhone9,3     d101ap  0x8010  0x0C      iPhone 7 (GSM)          A1778\n")
    );
}

// ---- Naming the device as users do: model numbers and names (issue 13) ----

/// `../shared/data/device_models.tsv` row for row against the embedded table
/// (`src/device_models.rs`): product type, board and model numbers.
#[test]
fn embedded_models_equal_device_models_tsv() {
    let Some(path) = shared("data/device_models.tsv") else {
        return;
    };
    let text = std::fs::read_to_string(&path).expect("device_models.tsv");
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().expect("a header").split('\t').collect();
    assert_eq!(header[..3], ["product_type", "board", "model_numbers"]);
    let rows: Vec<Vec<&str>> = lines
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.split('\t').collect())
        .collect();
    let table = device::models();
    assert_eq!(table.len(), rows.len(), "rows");
    for (i, (m, r)) in table.iter().zip(&rows).enumerate() {
        let line = i + 2;
        assert_eq!(r.len(), header.len(), "line {line}");
        assert_eq!(m.product_type, r[0], "line {line}");
        assert_eq!(m.board, r[1], "line {line}");
        let numbers: Vec<&str> = r[2].split(',').filter(|n| !n.is_empty()).collect();
        assert_eq!(m.model_numbers, numbers, "line {line}");
    }
    // Every board the two tables share belongs to the same product type.
    for m in table.iter().filter(|m| !m.board.is_empty()) {
        if let Ok(rows) = device::resolve(m.board, None) {
            if rows[0].product_type != m.product_type {
                // b520ap: AudioAccessory5,1 and AudioAccessorySingle5,1 (not in libirecovery).
                assert!(device::by_product_type(m.product_type).is_empty(), "{m:?}");
            }
        }
    }
}

fn types(rows: &[&Device]) -> Vec<&'static str> {
    let mut out: Vec<&'static str> = Vec::new();
    for d in rows {
        if !out.contains(&d.product_type) {
            out.push(d.product_type);
        }
    }
    out
}

fn candidates(err: &DeviceError) -> Vec<(String, Vec<String>)> {
    let DeviceError::Ambiguous { candidates, .. } = err else {
        panic!("expected Ambiguous, got {err:?}");
    };
    candidates
        .iter()
        .map(|c| (c.product_type.clone(), c.model_numbers.clone()))
        .collect()
}

#[test]
fn resolve_every_form_of_the_iphone_7_gsm() {
    for q in [
        "iPhone9,3",
        "iphone 9,3",
        "IPHONE9,3",
        "d101ap",
        "D101 AP",
        "A1778",
        "a1778",
        " a 1778 ",
        "iPhone 7 (GSM)",
        "iphone 7 (gsm)",
        "iPhone7(GSM)",
        "iphone 7 gsm",
        "IPHONE7GSM",
    ] {
        let rows = device::resolve(q, None).unwrap_or_else(|e| panic!("{q:?}: {e}"));
        assert_eq!(types(&rows), ["iPhone9,3"], "{q:?}");
        assert_eq!(rows.len(), 1, "{q:?}");
        assert_eq!(rows[0].board, "d101ap", "{q:?}");
    }
    // Its sibling by model number and by name.
    for q in [
        "A1660",
        "A1779",
        "a1780",
        "iPhone 7 (Global)",
        "iphone7global",
        "iPhone 7 CDMA",
        "iphone 7 (cdma)",
    ] {
        let rows = device::resolve(q, None).unwrap_or_else(|e| panic!("{q:?}: {e}"));
        assert_eq!(types(&rows), ["iPhone9,1"], "{q:?}");
    }
}

#[test]
fn resolve_names_and_numbers_of_dual_board_types() {
    // A name or a model number of iPhone8,1 still gives both of its boards.
    for q in ["iPhone 6s", "iphone6s", "A1688", "a1633"] {
        let rows = device::resolve(q, None).unwrap_or_else(|e| panic!("{q:?}: {e}"));
        assert_eq!(
            boards(&rows),
            [("n71ap", 0x8000), ("n71map", 0x8003)],
            "{q:?}"
        );
    }
    let one = device::resolve("iPhone 6s", Some("n71map")).unwrap();
    assert_eq!(boards(&one), [("n71map", 0x8003)]);
    let err = device::resolve("A1688", Some("d101ap")).unwrap_err();
    assert_eq!(
        err,
        DeviceError::UnknownBoard {
            product_type: "iPhone8,1".into(),
            board: "d101ap".into(),
            boards: vec!["n71ap".into(), "n71map".into()],
        }
    );
    // "iPhone 6s" is not "iPhone 6s Plus", and "iPhone 6" is not "iPhone 6s".
    assert_eq!(
        types(&device::resolve("iphone 6s plus", None).unwrap()),
        ["iPhone8,2"]
    );
    assert_eq!(
        types(&device::resolve("iPhone 6", None).unwrap()),
        ["iPhone7,2"]
    );
}

#[test]
fn resolve_ambiguous_names_list_candidates() {
    for q in ["iPhone 7", "iphone 7", "IPHONE7", " iPhone  7 "] {
        let err = device::resolve(q, None).unwrap_err();
        assert_eq!(
            candidates(&err),
            [
                (
                    "iPhone9,1".to_string(),
                    vec!["A1660".to_string(), "A1779".into(), "A1780".into()]
                ),
                ("iPhone9,3".to_string(), vec!["A1778".to_string()]),
            ],
            "{q:?}"
        );
        let msg = err.to_string();
        assert!(msg.starts_with("iPhone 7 is two devices: "), "{msg}");
        assert!(
            msg.contains("iPhone9,1 (Global/CDMA: A1660, A1779, A1780)"),
            "{msg}"
        );
        assert!(msg.contains("iPhone9,3 (GSM: A1778)"), "{msg}");
        assert!(msg.contains("--device iPhone9,3"), "{msg}");
        assert!(msg.contains("Settings › General › About"), "{msg}");
    }
    // --board picks one of them.
    let rows = device::resolve("iPhone 7", Some("d10ap")).unwrap();
    assert_eq!(types(&rows), ["iPhone9,1"]);
    let err = device::resolve("iPhone 7", Some("n71ap")).unwrap_err();
    assert_eq!(
        err,
        DeviceError::UnknownBoard {
            product_type: "iPhone 7".into(),
            board: "n71ap".into(),
            boards: vec!["d10ap".into(), "d101ap".into()],
        }
    );

    // Three iPhone 4s: GSM, its 2012 board revision, CDMA. Labels are full names then.
    let err = device::resolve("iphone 4", None).unwrap_err();
    let got: Vec<String> = candidates(&err).into_iter().map(|c| c.0).collect();
    assert_eq!(got, ["iPhone3,1", "iPhone3,2", "iPhone3,3"]);
    let msg = err.to_string();
    assert!(
        msg.starts_with("iPhone 4 is three devices: iPhone3,1 (iPhone 4 (GSM): A1332), "),
        "{msg}"
    );

    // iPads: Wi-Fi and Cellular.
    let err = device::resolve("ipad pro 11-inch (m4)", None).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.starts_with(
            "iPad Pro 11-inch (M4) is two devices: iPad16,3 (Wi-Fi: A2836) and \
             iPad16,4 (Cellular: A2837, A3006)"
        ),
        "{msg}"
    );
    assert!(msg.contains("back of the iPad"), "{msg}");
    // With the variant, one.
    assert_eq!(
        types(&device::resolve("iPad Pro 11-inch (M4, Cellular)", None).unwrap()),
        ["iPad16,4"]
    );
}

#[test]
fn resolve_shared_model_numbers() {
    // appledb: 20 A-numbers belong to two product types.
    for (number, expect) in [
        ("A1332", ["iPhone3,1", "iPhone3,2"]),
        ("A1429", ["iPhone5,1", "iPhone5,2"]),
        ("A1980", ["iPad8,1", "iPad8,2"]),
    ] {
        let err = device::resolve(number, None).unwrap_err();
        let got: Vec<String> = candidates(&err).into_iter().map(|c| c.0).collect();
        assert_eq!(got, expect, "{number}");
        let msg = err.to_string();
        assert!(
            msg.starts_with(&format!("{number} is two devices: ")),
            "{msg}"
        );
        assert!(
            msg.contains("the model number does not tell them apart"),
            "{msg}"
        );
    }
    // --board tells them apart.
    let rows = device::resolve("a1332", Some("N90BAP")).unwrap();
    assert_eq!(types(&rows), ["iPhone3,2"]);
    // A2374: AudioAccessory5,1 and AudioAccessorySingle5,1, which libirecovery does not list.
    assert_eq!(
        types(&device::resolve("A2374", None).unwrap()),
        ["AudioAccessory5,1"]
    );
    // A number only of product types the device table lacks.
    let err = device::resolve("A3473", None).unwrap_err();
    assert_eq!(
        err,
        DeviceError::NotInTable {
            query: "A3473".into(),
            product_types: vec!["iPhone19,3".into()],
        }
    );
    assert!(err
        .to_string()
        .starts_with("A3473 is the model number of iPhone19,3"));
    // A number nobody has: unknown.
    assert!(matches!(
        device::resolve("A0000", None),
        Err(DeviceError::Unknown { .. })
    ));
}

#[test]
fn every_model_number_resolves() {
    for m in device::models() {
        for n in m.model_numbers {
            match device::resolve(n, None) {
                Ok(rows) => assert!(
                    device::model_numbers(rows[0].product_type).contains(n),
                    "{n}: {rows:?}"
                ),
                Err(DeviceError::Ambiguous { candidates, .. }) => {
                    assert!(candidates.len() >= 2, "{n}");
                    for c in &candidates {
                        assert!(c.model_numbers.iter().any(|x| x == n), "{n}: {c:?}");
                    }
                }
                Err(DeviceError::NotInTable { .. }) => {
                    assert!(device::by_product_type(m.product_type).is_empty(), "{n}")
                }
                Err(e) => panic!("{n}: {e}"),
            }
        }
    }
}

#[test]
fn every_printed_name_resolves_to_its_device() {
    for d in device::all() {
        match device::resolve(d.name, None) {
            Ok(rows) => assert_eq!(types(&rows), [d.product_type], "{}", d.name),
            // Two product types with one name: HomePod (1st gen), two MacBook Pros.
            Err(DeviceError::Ambiguous { candidates, .. }) => {
                assert!(
                    candidates.iter().any(|c| c.product_type == d.product_type),
                    "{}",
                    d.name
                );
                assert!(candidates.iter().all(|c| c.name == d.name), "{}", d.name);
            }
            Err(e) => panic!("{}: {e}", d.name),
        }
    }
}

#[test]
fn search_ignores_spaces_and_prefers_names() {
    let found = |q: &str| types(&device::search(q));
    let sevens = ["iPhone9,1", "iPhone9,2", "iPhone9,3", "iPhone9,4"];
    assert_eq!(found("iphone7"), sevens);
    assert_eq!(found("IPHONE 7"), sevens);
    assert_eq!(found("iPhone 7 (GSM)"), ["iPhone9,3"]);
    // A product type still, with a comma or when no name matches.
    assert_eq!(found("iphone7,"), ["iPhone7,1", "iPhone7,2"]);
    assert_eq!(found("iPhone 9,3"), ["iPhone9,3"]);
    assert_eq!(found("audioaccessory5"), ["AudioAccessory5,1"]);
    // Model numbers.
    assert_eq!(found("a1778"), ["iPhone9,3"]);
}

#[test]
fn binary_device_by_model_number() {
    let sample = sample_ipsw();
    let sample = sample.to_str().unwrap();
    let (code, out, err) = run(&[sample, "--device", "A1778", "--offline", "--quick"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("iPhone 7 (GSM)"), "{out}");
    assert!(out.contains("iPhone9,3"), "{out}");
    // By name, unquoted case aside.
    let (code, out, err) = run(&[sample, "--device", "iphone 7 (gsm)", "--offline", "--quick"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("iPhone 7 (GSM)"), "{out}");
}

#[test]
fn binary_ambiguous_device_is_a_usage_error() {
    let sample = sample_ipsw();
    let sample = sample.to_str().unwrap();
    for q in ["iPhone 7", "A1332"] {
        let (code, out, err) = run(&[sample, "--device", q, "--offline", "--quick"]);
        assert_eq!(code, 2, "{q}: {out}{err}");
        assert!(err.contains("is two devices"), "{err}");
    }
    let (_, _, err) = run(&[sample, "--device", "iPhone 7", "--offline", "--quick"]);
    for want in ["iPhone9,1", "A1660, A1779, A1780", "iPhone9,3", "A1778"] {
        assert!(err.contains(want), "{want}: {err}");
    }
    // The same through `signed`, which needs one device too (no network: refused first).
    let (code, _, err) = run(&["signed", "--device", "iphone 7"]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("iPhone9,1") && err.contains("iPhone9,3"),
        "{err}"
    );
}

#[test]
fn binary_devices_query_of_several_words() {
    let (code, out, err) = run(&["devices", "iphone", "7"]);
    assert_eq!(code, 0, "{err}");
    for t in ["iPhone9,1", "iPhone9,2", "iPhone9,3", "iPhone9,4", "A1778"] {
        assert!(out.contains(t), "{t}: {out}");
    }
    assert!(out.contains("MODEL NUMBERS"), "{out}");
    let (code, out, err) = run(&["devices", "iphone7"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("iPhone 7 (GSM)"), "{out}");
    assert!(!out.contains("iPhone 6"), "{out}");
    assert!(!out.contains("iPhone7,"), "{out}");
    let (code, out, _) = run(&["devices", "A1778"]);
    assert_eq!(code, 0);
    assert_eq!(out.lines().count(), 2, "{out}");
}
