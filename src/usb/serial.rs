//! The USB serial-number string of a device in Recovery or DFU mode.
//!
//! iBoot and the SecureROM put the device's identity in the serial-number string
//! descriptor, which the operating system reads at enumeration and caches (so reading it
//! needs no access to the device): `CPID:8010 CPRV:11 CPFM:03 SCEP:01 BDID:0C
//! ECID:001A2B3C4D5E6F70 IBFL:3C SRTG:[iBoot-2696.0.0.1.33]`, and in Recovery also
//! `SRNM:[serial number]` and `IMEI:[…]`. The nonces are in another string descriptor,
//! `NONC:<hex> SNON:<hex>`, which only opening the device can read.
//!
//! [`parse`] follows libirecovery's `irecv_load_device_info_from_iboot_string` (and
//! `irecv_copy_nonce_with_tag_from_buffer` for the nonces) field by field: each tag is
//! found anywhere in the string (`strstr`), read as hexadecimal (`sscanf("%x")`), a string
//! without `CPID:` is an early iOS 1 device (CPID 0x8900), and the bracketed fields end at
//! the first space or the last `]`.

use serde::Serialize;

/// Everything the serial string says. Numbers are `None` when the tag is absent (or
/// carries no hexadecimal digit, where libirecovery would keep 0).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SerialInfo {
    /// Chip id (`CPID`), e.g. 0x8010 for the A10; 0x8900 when the string has none.
    pub cpid: u32,
    /// Whether the string named the chip (early iOS 1 devices do not).
    pub has_cpid: bool,
    /// Chip revision.
    pub cprv: Option<u32>,
    /// Chip fuse mode: bit 0 production, bit 1 security (0x03 on a customer's device).
    pub cpfm: Option<u32>,
    /// Security epoch.
    pub scep: Option<u32>,
    /// Board id (`BDID`).
    pub bdid: Option<u32>,
    /// The device's unique chip id: what Apple personalizes a restore for.
    pub ecid: Option<u64>,
    /// iBoot flags.
    pub ibfl: Option<u32>,
    /// The SecureROM's or iBoot's version tag (`SRTG:[iBoot-…]`): present in DFU mode.
    pub srtg: Option<String>,
    /// The device's serial number (`SRNM:[…]`): present in Recovery mode.
    pub srnm: Option<String>,
    /// `IMEI:[…]`: present in Recovery mode on cellular devices.
    pub imei: Option<String>,
    /// `NONC:` — the ApNonce, when the string holds it.
    pub ap_nonce: Option<Vec<u8>>,
    /// `SNON:` — the SEP nonce, when the string holds it.
    pub sep_nonce: Option<Vec<u8>>,
}

impl SerialInfo {
    /// Whether the security fuses say "production, secure" (CPFM bits 0 and 1), as on
    /// every customer's device; a development-fused board is not restored by Finder.
    pub fn is_production(&self) -> Option<bool> {
        self.cpfm.map(|f| f & 0x3 == 0x3)
    }
}

/// Read a serial-number string the way libirecovery does. Never fails: a field that is
/// not there is `None` (a string with no `CPID:` at all is not an iBoot string: see
/// [`SerialInfo::has_cpid`]).
pub fn parse(text: &str) -> SerialInfo {
    let hex32 = |tag: &str| after(text, tag).and_then(scan_hex).map(|v| v as u32);
    let cpid = hex32("CPID:");
    SerialInfo {
        // "early iOS 1 doesn't identify itself"
        cpid: cpid.unwrap_or(0x8900),
        has_cpid: cpid.is_some(),
        cprv: hex32("CPRV:"),
        cpfm: hex32("CPFM:"),
        scep: hex32("SCEP:"),
        bdid: hex32("BDID:"),
        ecid: after(text, "ECID:").and_then(scan_hex),
        ibfl: hex32("IBFL:"),
        srtg: bracketed(text, "SRTG:["),
        srnm: bracketed(text, "SRNM:["),
        imei: bracketed(text, "IMEI:["),
        ap_nonce: nonce(text, "NONC"),
        sep_nonce: nonce(text, "SNON"),
    }
}

/// The text after the first occurrence of `tag` (`strstr`).
fn after<'a>(text: &'a str, tag: &str) -> Option<&'a str> {
    text.find(tag).map(|at| &text[at + tag.len()..])
}

/// `sscanf("%x")`: leading white space, an optional `0x`, then hexadecimal digits (at
/// most 16 are read: more would not fit the widest field, and the string is untrusted).
fn scan_hex(text: &str) -> Option<u64> {
    let text = text.trim_start();
    let text = text
        .strip_prefix("0x")
        .or_else(|| text.strip_prefix("0X"))
        .unwrap_or(text);
    let digits: String = text
        .chars()
        .take_while(char::is_ascii_hexdigit)
        .take(16)
        .collect();
    u64::from_str_radix(&digits, 16).ok()
}

/// `sscanf(ptr, "TAG:[%s]")` then cut at the last `]`: up to the first white space, at
/// most 255 bytes (libirecovery's buffer).
fn bracketed(text: &str, tag: &str) -> Option<String> {
    let rest = after(text, tag)?;
    let word: String = rest
        .chars()
        .take_while(|c| !c.is_whitespace())
        .take(255)
        .collect();
    let word = match word.rfind(']') {
        Some(end) => word[..end].to_owned(),
        None => word,
    };
    Some(word)
}

/// `irecv_copy_nonce_with_tag_from_buffer`: the space-separated `TAG:hex` word whose tag
/// matches; `None` when it is absent or not whole hexadecimal bytes.
fn nonce(text: &str, tag: &str) -> Option<Vec<u8>> {
    let word = text
        .split(' ')
        .find_map(|w| w.split_once(':').filter(|(t, _)| t.ends_with(tag)))?
        .1;
    if word.is_empty() || word.len() % 2 != 0 || word.len() > 128 {
        return None;
    }
    (0..word.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(word.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_fields_read_like_sscanf() {
        assert_eq!(scan_hex(" 0x1c rest"), Some(0x1c));
        assert_eq!(scan_hex("zz"), None);
        assert_eq!(scan_hex("FFFFFFFFFFFFFFFFFF"), Some(u64::MAX));
        let info = parse("CPID:8010 BDID:ZZ ECID:");
        assert_eq!(info.cpid, 0x8010);
        assert_eq!(info.bdid, None);
        assert_eq!(info.ecid, None);
    }

    #[test]
    fn a_string_without_cpid_is_an_early_device() {
        let info = parse("89000000000001");
        assert!(!info.has_cpid);
        assert_eq!(info.cpid, 0x8900);
    }

    #[test]
    fn nonces_need_whole_bytes() {
        assert_eq!(parse("NONC:0a0B SNON:ff").ap_nonce, Some(vec![0x0a, 0x0b]));
        assert_eq!(parse("NONC:0a0B SNON:ff").sep_nonce, Some(vec![0xff]));
        assert_eq!(parse("NONC:abc").ap_nonce, None);
        assert_eq!(parse("NONC:zz").ap_nonce, None);
        assert_eq!(parse("XNONC:").ap_nonce, None);
    }
}
