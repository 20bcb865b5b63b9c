//! The device table and `--device` resolution, seen from outside the crate.

use std::path::PathBuf;

use ipswcheck::device::{self, Device, DeviceError};

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
    let chip_col = lines[0].find("CHIP").unwrap();
    for (line, d) in lines[1..].iter().zip(&rows) {
        assert!(line.starts_with(d.product_type));
        assert_eq!(&line[name_col..], d.name, "{line}");
        assert_eq!(&line[chip_col..chip_col + 6], d.chip_id_hex(), "{line}");
    }
    assert!(table.contains("iPhone9,3     d101ap  0x8010  0x0C      iPhone 7 (GSM)\n"));
}
