//! Asking Apple's TSS server for a ticket, and reading its answer (FIRMWARE.md §4).
//!
//! A restore asks `gs.apple.com` for an AP ticket ("SHSH blob") covering every component
//! it will install; Apple answers with one only while it signs the build for that board.
//! Whether a build is signed does not depend on the device's ECID or nonce, so we send
//! random ones (from the OS's cryptographic RNG: nothing we send identifies the user) and
//! ask for the AP ticket only — no baseband keys, which would need the device's real
//! baseband serial and give refusals (STATUS=49, 128) unrelated to signing.

use std::time::SystemTime;

use plist::{Dictionary, Value};

use super::http::Http;
use super::{IdentityAnswer, SigningOptions, SigningStatus};
use crate::manifest::{BuildIdentity, ManifestComponent};

/// The headers Apple's own client (`libauthinstall`) sends.
pub const TSS_HEADERS: [(&str, &str); 3] = [
    ("Content-Type", "text/xml; charset=\"utf-8\""),
    ("Cache-Control", "no-cache"),
    ("User-Agent", "InetURL/1.0"),
];

/// The `@VersionInfo` of the libauthinstall whose request format we follow.
pub const VERSION_INFO: &str = "libauthinstall-1104.0.9";

/// Manifest entries that never go into an AP ticket request: the baseband has its own
/// ticket; `SE,UpdatePayload` belongs to the secure element's; BaseSystem, Diags and
/// Ap,ExclaveOS are not part of an iOS restore ticket (libtatsu skips them too).
const SKIPPED_COMPONENTS: [&str; 5] = [
    "BasebandFirmware",
    "SE,UpdatePayload",
    "BaseSystem",
    "Diags",
    "Ap,ExclaveOS",
];

/// S5L chips (iPod2,1's 0x8720 … A6's 0x8955) boot IMG3 images and get an `APTicket`;
/// A7 (0x8960) and everything later use IMG4.
///
/// The issue text said "below 0x7000", but the S5L ids are numerically above that and
/// the M1 Pro/Max family (0x6000…) is IMG4, so the range is spelled out.
pub fn is_img3_chip(chip_id: u32) -> bool {
    (0x8720..0x8960).contains(&chip_id)
}

/// ApNonce length: 20 bytes (a SHA-1 of the generator) for A9 and older, 32 from A10
/// (0x8010) on. "Older than A10" is not `chip < 0x8010`: A7 is 0x8960 and the IMG3 S5L
/// chips are 0x87xx–0x89xx; the 0x6000-series Mac chips are newer than A10.
pub fn ap_nonce_len(chip_id: u32) -> usize {
    let a8_to_a9 = (0x7000..0x8010).contains(&chip_id);
    let a7_or_older = (0x8720..=0x8960).contains(&chip_id);
    if a8_to_a9 || a7_or_older {
        20
    } else {
        32
    }
}

/// The SEP nonce is always 20 bytes.
pub const SEP_NONCE_LEN: usize = 20;

/// Build the TSS request for `identity`, as described in FIRMWARE.md §4, with a random
/// ECID, UUID and nonces.
///
/// # Panics
/// If the operating system's random number generator fails (getrandom documents this as
/// not happening on supported systems). [`check_signing`](super::check_signing) does not
/// panic: it reports such a failure as `Unknown`.
pub fn build_tss_request(identity: &BuildIdentity) -> Dictionary {
    try_build_tss_request(identity).expect("the operating system's random number generator failed")
}

/// [`build_tss_request`], reporting an RNG failure instead of panicking.
pub fn try_build_tss_request(identity: &BuildIdentity) -> Result<Dictionary, getrandom::Error> {
    let img3 = identity.chip_id.is_some_and(is_img3_chip);
    let mut req = Dictionary::new();
    let mut set = |k: &str, v: Value| {
        req.insert(k.to_owned(), v);
    };
    set("@HostPlatformInfo", "mac".into());
    set("@VersionInfo", VERSION_INFO.into());
    set("@UUID", random_uuid()?.into());
    set(
        if img3 { "@APTicket" } else { "@ApImg4Ticket" },
        true.into(),
    );
    // Real ECIDs fit in about 52 bits; like tsschecker we stay below 2^53 so the request
    // looks like one a device would send.
    let ecid = (u64::from_le_bytes(random_array()?) & ((1 << 53) - 1)).max(1);
    set("ApECID", Value::Integer(ecid.into()));
    let nonce_len = identity.chip_id.map_or(32, ap_nonce_len);
    set("ApNonce", Value::Data(random_bytes(nonce_len)?));
    if !img3 {
        set("SepNonce", Value::Data(random_bytes(SEP_NONCE_LEN)?));
    }
    set("ApProductionMode", true.into());
    set("ApSecurityMode", true.into());
    for (key, value) in [
        ("ApChipID", identity.chip_id),
        ("ApBoardID", identity.board_id),
        ("ApSecurityDomain", identity.security_domain),
    ] {
        if let Some(value) = value {
            set(key, Value::Integer(u64::from(value).into()));
        }
    }
    if let Some(ubid) = &identity.unique_build_id {
        set("UniqueBuildID", Value::Data(ubid.clone()));
    }
    for (key, value) in &identity.ap_tags {
        set(key, value.clone());
    }
    for component in identity.components.iter().filter(|c| wanted_in_request(c)) {
        set(
            &component.name,
            Value::Dictionary(component_entry(component, img3)),
        );
    }
    req.sort_keys();
    Ok(req)
}

/// libtatsu's rule for which manifest entries the AP ticket covers.
fn wanted_in_request(c: &ManifestComponent) -> bool {
    !SKIPPED_COMPONENTS.contains(&c.name.as_str())
        && !c.is_ftab
        && (c.has_restore_request_rules || c.trusted.is_some())
}

/// The manifest entry minus `Info`, with the production/security flags Image4 requests
/// carry, and an empty `Digest` for a Trusted entry that has none (Apple expects the key).
fn component_entry(c: &ManifestComponent, img3: bool) -> Dictionary {
    let mut entry = c.tss_fields.clone();
    if !img3 {
        entry.insert("EPRO".into(), true.into());
        entry.insert("ESEC".into(), true.into());
    }
    if c.trusted == Some(true) && !entry.contains_key("Digest") {
        entry.insert("Digest".into(), Value::Data(Vec::new()));
    }
    entry.sort_keys();
    entry
}

fn random_bytes(n: usize) -> Result<Vec<u8>, getrandom::Error> {
    let mut buf = vec![0u8; n];
    getrandom::fill(&mut buf)?;
    Ok(buf)
}

fn random_array<const N: usize>() -> Result<[u8; N], getrandom::Error> {
    let mut buf = [0u8; N];
    getrandom::fill(&mut buf)?;
    Ok(buf)
}

/// A random (version 4) GUID in upper case, as Apple's client writes `@UUID`.
fn random_uuid() -> Result<String, getrandom::Error> {
    let mut b: [u8; 16] = random_array()?;
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02X}")).collect();
    Ok(format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    ))
}

/// What Apple's TSS server answered, read without trusting it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TssAnswer {
    /// `STATUS=`, when present and a number.
    pub status: Option<i64>,
    /// `MESSAGE=`, trimmed, control characters removed, at most 300 characters.
    pub message: Option<String>,
    /// Whether `REQUEST_STRING=` held a plist with a non-empty `ApImg4Ticket` or `APTicket`.
    pub has_ticket: bool,
    /// Why the answer could not be read as a TSS answer, when it could not.
    pub problem: Option<String>,
}

impl TssAnswer {
    /// The verdict this answer supports — and no more: Signed needs STATUS=0 *and* a
    /// ticket, NotSigned needs STATUS=94 or 69, everything else is Unknown.
    pub fn signing_status(&self) -> SigningStatus {
        match self.status {
            Some(0) if self.has_ticket => SigningStatus::Signed,
            Some(94 | 69) => SigningStatus::NotSigned,
            _ => SigningStatus::Unknown,
        }
    }

    /// One phrase for the report: the code, Apple's message, and what the code means.
    pub fn describe(&self) -> String {
        let Some(status) = self.status else {
            return self
                .problem
                .clone()
                .unwrap_or_else(|| "the answer has no STATUS".into());
        };
        let mut text = format!("TSS STATUS={status}");
        if let Some(message) = self.message.as_deref().filter(|m| !m.is_empty()) {
            text.push_str(&format!(" \"{message}\""));
        }
        let meaning = match status {
            0 if self.has_ticket => None,
            0 => Some(
                self.problem
                    .as_deref()
                    .unwrap_or("but no ticket in the answer"),
            ),
            // Apple's own message says it ("This device isn't eligible …").
            94 | 69 => None,
            8 | 49 => Some("Apple rejected the request (a baseband problem, not a signing answer)"),
            100 | 126 => Some("Apple found the request malformed"),
            128 => Some("Apple did not issue a ticket for this request"),
            133 => Some("a connection failure on Apple's side"),
            168 => Some("an internal error on Apple's server"),
            _ => Some("a status ipswcheck does not know"),
        };
        if let Some(meaning) = meaning {
            text.push_str(": ");
            text.push_str(meaning);
        }
        text
    }
}

/// Read a TSS answer: `STATUS=0&MESSAGE=SUCCESS&REQUEST_STRING=<?xml …>`.
///
/// The body is split once at `REQUEST_STRING=`: the plist after it contains `&amp;` and
/// `=`, so splitting the whole body at `&` would cut it. Never panics, whatever the bytes
/// (a fuzz target calls it).
pub fn parse_tss_response(body: &[u8]) -> TssAnswer {
    const MARK: &[u8] = b"REQUEST_STRING=";
    let (head, plist) = match find(body, MARK) {
        Some(at) => (&body[..at], Some(&body[at + MARK.len()..])),
        None => (body, None),
    };
    let head = String::from_utf8_lossy(head);
    let mut answer = TssAnswer::default();
    let mut status_text = None;
    for pair in head.split('&') {
        let Some((key, value)) = pair.split_once('=') else {
            continue;
        };
        match key.trim() {
            "STATUS" if status_text.is_none() => status_text = Some(value.trim().to_owned()),
            "MESSAGE" if answer.message.is_none() => answer.message = Some(clean(value)),
            _ => {}
        }
    }
    match status_text {
        None => {
            answer.problem = Some(if body.is_empty() {
                "the server's answer was empty".into()
            } else {
                format!(
                    "not a TSS answer (no STATUS=; it starts with \"{}\")",
                    clean(&String::from_utf8_lossy(&body[..body.len().min(60)]))
                )
            });
            return answer;
        }
        Some(text) => match text.parse::<i64>() {
            Ok(status) => answer.status = Some(status),
            Err(_) => {
                answer.problem = Some(format!("not a TSS answer (STATUS={:?})", clean(&text)));
                return answer;
            }
        },
    }
    if let Some(plist) = plist {
        match ticket_in(plist) {
            Ok(found) => answer.has_ticket = found,
            Err(reason) => answer.problem = Some(reason),
        }
    } else if answer.status == Some(0) {
        answer.problem = Some("no ticket in the answer (no REQUEST_STRING)".into());
    }
    if answer.status == Some(0) && !answer.has_ticket && answer.problem.is_none() {
        answer.problem = Some("no ApImg4Ticket or APTicket in the answer".into());
    }
    answer
}

/// Whether the XML plist after `REQUEST_STRING=` carries a non-empty AP ticket. XML only:
/// that is what Apple sends, and it keeps arbitrary bytes away from the binary reader.
fn ticket_in(plist: &[u8]) -> Result<bool, String> {
    let start = plist
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(plist.len());
    let plist = &plist[start..];
    if !plist.starts_with(b"<") {
        return Err("the REQUEST_STRING is not an XML plist".into());
    }
    // Bounded: a hostile answer nesting 100,000 arrays must not overflow this thread's
    // stack (see `read_plist_bounded`).
    let value = crate::manifest::read_plist_bounded(plist)
        .map_err(|e| format!("the REQUEST_STRING plist does not parse: {e}"))?;
    let Some(dict) = value.as_dictionary() else {
        return Err("the REQUEST_STRING plist is not a dictionary".into());
    };
    Ok(["ApImg4Ticket", "APTicket"].iter().any(|key| {
        dict.get(key)
            .and_then(Value::as_data)
            .is_some_and(|d| !d.is_empty())
    }))
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Printable, trimmed, at most 300 characters: server text goes into our report.
fn clean(text: &str) -> String {
    text.trim()
        .chars()
        .filter(|c| !c.is_control())
        .take(300)
        .collect()
}

/// Why an identity cannot be asked about (no UniqueBuildID, chip or board id).
pub(crate) fn missing_fields(identity: &BuildIdentity) -> String {
    let missing: Vec<&str> = [
        ("UniqueBuildID", identity.unique_build_id.is_none()),
        ("ApChipID", identity.chip_id.is_none()),
        ("ApBoardID", identity.board_id.is_none()),
    ]
    .iter()
    .filter(|(_, gone)| *gone)
    .map(|(name, _)| *name)
    .collect();
    format!(
        "the manifest's build identity has no {}, so Apple cannot be asked about it",
        missing.join(" or ")
    )
}

/// One TSS query for `identity`: POST the request, read the answer, decide.
///
/// `timeout` bounds the whole query, retries included (at most `opts.timeout`; less when
/// the query is one of several sharing one deadline).
pub(crate) fn query(
    http: &Http,
    identity: &BuildIdentity,
    opts: &SigningOptions,
    timeout: std::time::Duration,
) -> IdentityAnswer {
    let answer = |status, tss_status, detail: String| IdentityAnswer {
        status,
        tss_status,
        detail,
        obtained_at: SystemTime::now(),
        source: Some("tss"),
    };
    let unknown = |detail: String| answer(SigningStatus::Unknown, None, detail);
    let request = match try_build_tss_request(identity) {
        Ok(r) => r,
        Err(e) => return unknown(format!("could not draw random nonces: {e}")),
    };
    let mut xml = Vec::new();
    if let Err(e) = Value::Dictionary(request).to_writer_xml(&mut xml) {
        return unknown(format!("could not write the TSS request: {e}"));
    }
    let reply = match http.post(&opts.tss_url, &xml, &TSS_HEADERS, timeout) {
        Ok(reply) => reply,
        Err(e) => return unknown(e.to_string()),
    };
    if reply.status != 200 {
        return unknown(format!("{} answered HTTP {}", opts.tss_url, reply.status));
    }
    let parsed = parse_tss_response(&reply.body);
    answer(parsed.signing_status(), parsed.status, parsed.describe())
}

#[cfg(test)]
mod tests {
    use super::*;

    const TICKET: &str =
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<plist version=\"1.0\"><dict>\
        <key>ApImg4Ticket</key><data>MIIBAA==</data></dict></plist>";

    #[test]
    fn signed_needs_status_zero_and_a_ticket() {
        let body = format!("STATUS=0&MESSAGE=SUCCESS&REQUEST_STRING={TICKET}");
        let a = parse_tss_response(body.as_bytes());
        assert_eq!(a.status, Some(0));
        assert_eq!(a.message.as_deref(), Some("SUCCESS"));
        assert!(a.has_ticket);
        assert_eq!(a.signing_status(), SigningStatus::Signed);

        let no_ticket = parse_tss_response(b"STATUS=0&MESSAGE=SUCCESS");
        assert_eq!(no_ticket.signing_status(), SigningStatus::Unknown);
        assert!(
            no_ticket.describe().contains("no REQUEST_STRING"),
            "{}",
            no_ticket.describe()
        );

        let empty_ticket = parse_tss_response(
            b"STATUS=0&MESSAGE=SUCCESS&REQUEST_STRING=<plist version=\"1.0\"><dict>\
              <key>ApImg4Ticket</key><data></data></dict></plist>",
        );
        assert_eq!(empty_ticket.signing_status(), SigningStatus::Unknown);
    }

    #[test]
    fn img3_tickets_count() {
        let body = b"STATUS=0&MESSAGE=SUCCESS&REQUEST_STRING=<plist version=\"1.0\"><dict>\
            <key>APTicket</key><data>AAEC</data></dict></plist>";
        assert_eq!(
            parse_tss_response(body).signing_status(),
            SigningStatus::Signed
        );
    }

    #[test]
    fn the_plist_is_not_split_at_ampersands() {
        let body = "STATUS=0&MESSAGE=SUCCESS&REQUEST_STRING=<plist version=\"1.0\"><dict>\
            <key>Note</key><string>a &amp; b = c&amp;STATUS=94</string>\
            <key>ApImg4Ticket</key><data>AAEC</data></dict></plist>";
        let a = parse_tss_response(body.as_bytes());
        assert_eq!(a.status, Some(0));
        assert_eq!(a.signing_status(), SigningStatus::Signed);
    }

    #[test]
    fn refusals_and_errors() {
        let a = parse_tss_response(
            b"STATUS=94&MESSAGE=This device isn't eligible for the requested build.",
        );
        assert_eq!(a.signing_status(), SigningStatus::NotSigned);
        assert!(a.describe().contains("isn't eligible"));
        assert_eq!(
            parse_tss_response(b"STATUS=69&MESSAGE=x").signing_status(),
            SigningStatus::NotSigned
        );
        for code in [8, 49, 100, 126, 128, 133, 168, 1, -1] {
            let a = parse_tss_response(format!("STATUS={code}&MESSAGE=whatever").as_bytes());
            assert_eq!(a.status, Some(code));
            assert_eq!(a.signing_status(), SigningStatus::Unknown, "{code}");
            assert!(a.describe().contains(&format!("STATUS={code}")));
        }
    }

    #[test]
    fn garbage_is_unknown_with_a_reason() {
        for body in [
            &b""[..],
            b"<html>502 Bad Gateway</html>",
            b"STATUS=abc",
            b"STATUS=0&MESSAGE=SUCCESS&REQUEST_STRING=\x00\xff\xfe",
            b"STATUS=0&REQUEST_STRING=<plist><dict><key>ApImg4Ticket</key>",
            b"REQUEST_STRING=",
            b"STATUS=&MESSAGE=",
            b"\xff\xfe\xfd=\xff&&&==",
        ] {
            let a = parse_tss_response(body);
            assert_eq!(a.signing_status(), SigningStatus::Unknown, "{body:?}");
            assert!(!a.describe().is_empty());
        }
    }

    #[test]
    fn nonce_and_ticket_kinds_follow_the_chip() {
        assert_eq!(ap_nonce_len(0x8000), 20); // A9
        assert_eq!(ap_nonce_len(0x8003), 20);
        assert_eq!(ap_nonce_len(0x7000), 20); // A8
        assert_eq!(ap_nonce_len(0x8960), 20); // A7
        assert_eq!(ap_nonce_len(0x8010), 32); // A10
        assert_eq!(ap_nonce_len(0x8120), 32);
        assert_eq!(ap_nonce_len(0x6000), 32); // M1 Pro
        assert!(is_img3_chip(0x8900) && is_img3_chip(0x8950) && is_img3_chip(0x8720));
        assert!(!is_img3_chip(0x8960) && !is_img3_chip(0x6000) && !is_img3_chip(0x8010));
    }

    #[test]
    fn uuids_are_upper_case_guids() {
        let u = random_uuid().unwrap();
        assert_eq!(u.len(), 36);
        assert_eq!(u.matches('-').count(), 4);
        assert!(u
            .chars()
            .all(|c| c == '-' || c.is_ascii_digit() || c.is_ascii_uppercase()));
        assert_ne!(u, random_uuid().unwrap());
    }
}
