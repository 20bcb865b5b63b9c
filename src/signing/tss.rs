//! Asking Apple's TSS server for a ticket, and reading its answer (FIRMWARE.md §4).
//!
//! A restore asks `gs.apple.com` for an AP ticket ("SHSH blob") covering every component
//! it will install; Apple answers with one only while it signs the build for that board.
//! Whether a build is signed does not depend on the device's ECID or nonce, so we send
//! random ones (from the OS's cryptographic RNG: nothing we send identifies the user) and
//! ask for the AP ticket only — no baseband keys, which would need the device's real
//! baseband serial and give refusals (STATUS=49, 128) unrelated to signing.

use std::time::{Duration, Instant, SystemTime};

use plist::{Dictionary, Value};

use super::http::Http;
use super::{IdentityAnswer, SigningOptions, SigningStatus};
use crate::manifest::{BuildIdentity, ManifestComponent, RequestRule};

/// The headers Apple's own client (`libauthinstall`) sends.
pub const TSS_HEADERS: [(&str, &str); 3] = [
    ("Content-Type", "text/xml; charset=\"utf-8\""),
    ("Cache-Control", "no-cache"),
    ("User-Agent", "InetURL/1.0"),
];

/// The `@VersionInfo` of the libauthinstall whose request format we follow.
pub const VERSION_INFO: &str = "libauthinstall-1104.0.9";

/// Manifest entries that never go into an AP ticket request (libtatsu's
/// `tss_request_add_ap_tags`): the baseband has its own ticket; `SE,UpdatePayload`
/// belongs to the secure element's; BaseSystem, Diags and Ap,ExclaveOS are not part of
/// an AP restore ticket.
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

/// Chips whose ApNonce is 20 bytes (a SHA-1 of the generator): the ones without KTRR.
/// tsschecker (`tss_populate_random`) keys this on product-type prefixes; over every row
/// of libirecovery's device table those prefixes name exactly these chips: A7 (0x8960),
/// A8/A8X/S1 (0x7000–0x7002: iPhone 6, iPad Air 2, Apple TV HD, HomePod, Apple Watch
/// Series 0), A9/A9X (0x8000, 0x8001, 0x8003), and every IMG3 chip. Apple Watch S1P/S2
/// (0x8002), S3 (0x8004) and S4/S5 (0x8006) are *not* in it, although their ids fall
/// between A9's: tsschecker gives Watch2,x–Watch5,x and HomePod mini 32 bytes.
/// Everything else, Macs included, has 32 (a SHA-384 of the generator, cut).
pub fn ap_nonce_len(chip_id: u32) -> usize {
    const TWENTY: [u32; 7] = [0x8960, 0x7000, 0x7001, 0x7002, 0x8000, 0x8001, 0x8003];
    if TWENTY.contains(&chip_id) || is_img3_chip(chip_id) {
        20
    } else {
        32
    }
}

/// The SEP nonce is always 20 bytes.
pub const SEP_NONCE_LEN: usize = 20;

/// What a request says about the device itself. For "is this build signed for this
/// board" any values do (FIRMWARE.md §4): [`try_build_tss_request`] draws random ones;
/// tests pass fixed ones to compare requests with a peer's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestDevice {
    /// `ApECID`.
    pub ecid: u64,
    /// `ApNonce`: [`ap_nonce_len`] bytes for the identity's chip.
    pub ap_nonce: Vec<u8>,
    /// `SepNonce` ([`SEP_NONCE_LEN`] bytes), sent only when the identity has a SEP.
    pub sep_nonce: Vec<u8>,
}

impl RequestDevice {
    /// A made-up device for `identity`: a random ECID below 2^53 (tsschecker draws 16
    /// decimal digits, so ECIDs look like real ones) and random nonces of the right
    /// lengths, from the OS's cryptographic RNG: nothing we send identifies the user.
    pub fn random_for(identity: &BuildIdentity) -> Result<Self, getrandom::Error> {
        let ecid = (u64::from_le_bytes(random_array()?) & ((1 << 53) - 1)).max(1);
        Ok(RequestDevice {
            ecid,
            ap_nonce: random_bytes(identity.chip_id.map_or(32, ap_nonce_len))?,
            sep_nonce: random_bytes(SEP_NONCE_LEN)?,
        })
    }
}

/// A real device to personalize the request for (`--device auto`, `--ecid`): the request
/// is then the one Finder or idevicerestore sends for this phone — its `ApECID` — with
/// the device's own nonces only when the user gave them (`--ap-nonce`). Apple's answer
/// ("will it sign this build for this device") is the same with any nonce; a nonce
/// matters only to a ticket someone means to use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PersonalDevice {
    /// The device's ECID (`ApECID`).
    pub ecid: u64,
    /// The device's ApNonce (Recovery/DFU `NONC`), when the user asked for it.
    pub ap_nonce: Option<Vec<u8>>,
    /// The device's SEP nonce (`SNON`), when the user asked for it.
    pub sep_nonce: Option<Vec<u8>>,
    /// "iPhone", "iPad", …: the verdict says "for this iPhone".
    pub kind: String,
}

impl RequestDevice {
    /// The device values for `personal` and `identity`: its ECID, and its nonces when
    /// given — checked against the lengths the chip uses — else random ones, as
    /// [`RequestDevice::random_for`] draws them.
    pub fn personal_for(
        identity: &BuildIdentity,
        personal: &PersonalDevice,
    ) -> Result<Self, RequestError> {
        let random = Self::random_for(identity).map_err(|e| RequestError::Random(e.to_string()))?;
        let want = identity.chip_id.map_or(32, ap_nonce_len);
        if let Some(nonce) = &personal.ap_nonce {
            if nonce.len() != want {
                return Err(RequestError::BadNonce(format!(
                    "the ApNonce given has {} bytes; chip {:#06x} uses {want}",
                    nonce.len(),
                    identity.chip_id.unwrap_or(0)
                )));
            }
        }
        if let Some(nonce) = &personal.sep_nonce {
            if nonce.len() != SEP_NONCE_LEN {
                return Err(RequestError::BadNonce(format!(
                    "the SEP nonce given has {} bytes, not {SEP_NONCE_LEN}",
                    nonce.len()
                )));
            }
        }
        Ok(RequestDevice {
            ecid: personal.ecid,
            ap_nonce: personal.ap_nonce.clone().unwrap_or(random.ap_nonce),
            sep_nonce: personal.sep_nonce.clone().unwrap_or(random.sep_nonce),
        })
    }
}

/// [`try_build_tss_request`] for a real device: its ECID (and nonces when given).
pub fn try_build_personal_request(
    identity: &BuildIdentity,
    personal: &PersonalDevice,
) -> Result<Dictionary, RequestError> {
    let device = RequestDevice::personal_for(identity, personal)?;
    let uuid = random_uuid().map_err(|e| RequestError::Random(e.to_string()))?;
    build_tss_request_for(identity, &device, &uuid)
}

/// Why no request can be built for an identity.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// libtatsu refuses too (`tss_parameters_add_from_manifest` / the IMG3 tags).
    #[error("{0}")]
    MissingFields(String),
    #[error("could not draw random nonces: {0}")]
    Random(String),
    /// A nonce the user gave does not fit the device's chip.
    #[error("{0}")]
    BadNonce(String),
}

/// Build the TSS request for `identity`, with a random ECID, UUID and nonces.
///
/// # Panics
/// If the identity lacks what a request needs (see [`try_build_tss_request`]) or the
/// operating system's random number generator fails. [`check_signing`](super::check_signing)
/// does not panic: it reports either as `Unknown`.
pub fn build_tss_request(identity: &BuildIdentity) -> Dictionary {
    try_build_tss_request(identity).expect("a TSS request for this identity")
}

/// [`build_tss_request`], reporting a failure instead of panicking.
pub fn try_build_tss_request(identity: &BuildIdentity) -> Result<Dictionary, RequestError> {
    let device =
        RequestDevice::random_for(identity).map_err(|e| RequestError::Random(e.to_string()))?;
    let uuid = random_uuid().map_err(|e| RequestError::Random(e.to_string()))?;
    build_tss_request_for(identity, &device, &uuid)
}

/// The AP ticket request libtatsu builds for `identity` and `device`, key for key.
///
/// This is what idevicerestore and tsschecker send (libtatsu `src/tss.c` @60a39f3, with
/// the parameters tsschecker's `tssrequest` sets up for a device it does not have):
/// `tss_request_new` + `tss_request_add_common_tags` + `tss_request_add_ap_tags` +
/// `tss_request_add_ap_img4_tags` (or `..._img3_tags` for S5L chips), applied in that
/// order, later keys replacing earlier ones as in libtatsu. The parameters are: `ApECID`,
/// `ApNonce`, `ApSepNonce` when the identity has a SEP, `ApProductionMode = true`, and for
/// IMG4 `ApSecurityMode = true`, `ApSupportsImg4 = true` (false for IMG3).
///
/// Each rule below is a peer's, and each matters to Apple's answer:
/// - `UID_MODE = false` and `Ap,SikaFuse = 0` when `Info/RequiresUIDMode`: without them
///   Apple answers STATUS=69 for signed builds (idevicerestore #598, #532).
/// - `NeRDEpoch`, `PermitNeRDPivot` (empty data), `AllowNeRDBoot`,
///   `PearlCertificationRootPub` when the identity has them.
/// - Only the eight `Ap,*` strings of [`crate::manifest::TSS_AP_STRING_KEYS`].
/// - Components: entries without `Info`, [`SKIPPED_COMPONENTS`] and FTAB members are left
///   out; for IMG4 so are entries with neither `RestoreRequestRules` nor `Trusted`. Each
///   entry is the manifest's minus `Info`; its `EPRO`/`ESEC` (and `DPRO`/`DSEC`) come from
///   its `RestoreRequestRules` evaluated for a production, secure device; only entries
///   without rules get `EPRO`/`ESEC` forced to the production/security mode. A trusted
///   entry without a `Digest` gets an empty one.
/// - IMG3 (`@APTicket`) requests carry no `ApSecurityMode` and no SEP nonce, and need
///   `ApSecurityDomain`.
pub fn build_tss_request_for(
    identity: &BuildIdentity,
    device: &RequestDevice,
    uuid: &str,
) -> Result<Dictionary, RequestError> {
    let (Some(ubid), Some(chip), Some(board)) = (
        &identity.unique_build_id,
        identity.chip_id,
        identity.board_id,
    ) else {
        return Err(RequestError::MissingFields(missing_fields(identity)));
    };
    let img4 = !is_img3_chip(chip);
    let params = Conditions {
        img4,
        security_mode: img4,
    };
    if !img4 && identity.security_domain.is_none() {
        return Err(RequestError::MissingFields(
            "the manifest's build identity has no ApSecurityDomain, which an IMG3 ticket \
             request needs, so Apple cannot be asked about it"
                .into(),
        ));
    }
    let uint = |v: u64| Value::Integer(v.into());
    let mut req = Dictionary::new();
    // tss_request_new
    req.insert("@HostPlatformInfo".into(), "mac".into());
    req.insert("@VersionInfo".into(), VERSION_INFO.into());
    req.insert("@UUID".into(), uuid.into());
    // tss_request_add_common_tags
    req.insert("ApECID".into(), uint(device.ecid));
    req.insert("UniqueBuildID".into(), Value::Data(ubid.clone()));
    req.insert("ApChipID".into(), uint(chip.into()));
    req.insert("ApBoardID".into(), uint(board.into()));
    if let Some(domain) = identity.security_domain {
        req.insert("ApSecurityDomain".into(), uint(domain.into()));
    }
    // tss_request_add_ap_tags
    for component in &identity.components {
        if let Some(entry) = component_entry(component, &params) {
            req.insert(component.name.clone(), Value::Dictionary(entry));
        }
    }
    let tss = &identity.tss;
    if img4 {
        // tss_request_add_ap_img4_tags
        for (key, value) in &tss.ap_strings {
            req.insert((*key).into(), value.as_str().into());
        }
        req.insert("ApNonce".into(), Value::Data(device.ap_nonce.clone()));
        req.insert("@ApImg4Ticket".into(), true.into());
        req.insert("ApSecurityMode".into(), true.into());
        req.insert("ApProductionMode".into(), true.into());
        if tss.has_sep {
            req.insert("SepNonce".into(), Value::Data(device.sep_nonce.clone()));
        }
        if let Some(epoch) = tss.nerd_epoch {
            req.insert("NeRDEpoch".into(), uint(epoch));
        }
        if let Some(key) = &tss.pearl_certification_root_pub {
            req.insert("PearlCertificationRootPub".into(), Value::Data(key.clone()));
        }
        if let Some(allow) = tss.allow_nerd_boot {
            req.insert("AllowNeRDBoot".into(), allow.into());
        }
        if tss.nerd_epoch.is_some() {
            req.insert("PermitNeRDPivot".into(), Value::Data(Vec::new()));
        }
        if tss.requires_uid_mode {
            req.insert("UID_MODE".into(), false.into());
            req.insert("Ap,SikaFuse".into(), uint(0));
        }
    } else {
        // tss_request_add_ap_img3_tags
        req.insert("ApNonce".into(), Value::Data(device.ap_nonce.clone()));
        req.insert("@APTicket".into(), true.into());
        req.insert("ApBoardID".into(), uint(board.into()));
        req.insert("ApChipID".into(), uint(chip.into()));
        if let Some(domain) = identity.security_domain {
            req.insert("ApSecurityDomain".into(), uint(domain.into()));
        }
        req.insert("ApProductionMode".into(), true.into());
    }
    req.sort_keys();
    Ok(req)
}

/// The device properties `RestoreRequestRules` conditions are evaluated against: a
/// production-fused, secure device (what a customer's device is). `ApProductionMode` is
/// always true; `ApSecurityMode` and `ApSupportsImg4` are set for IMG4 only.
struct Conditions {
    img4: bool,
    security_mode: bool,
}

impl Conditions {
    /// libtatsu's mapping from a condition name to the request parameter it compares
    /// with; `None` when that parameter is not set (the condition then fails, as in
    /// libtatsu, which also fails conditions it does not know).
    fn value(&self, condition: &str) -> Option<Value> {
        match condition {
            "ApRawProductionMode" | "ApCurrentProductionMode" => Some(true.into()),
            "ApRawSecurityMode" => self.security_mode.then(|| true.into()),
            "ApRequiresImage4" => Some(self.img4.into()),
            // DemotionPolicy and ApInRomDFU are never parameters of a restore request.
            _ => None,
        }
    }

    /// Whether every condition of `rule` holds (an empty list holds).
    fn hold(&self, rule: &RequestRule) -> bool {
        rule.conditions
            .iter()
            .all(|(key, wanted)| self.value(key).as_ref() == Some(wanted))
    }
}

/// The request entry for one manifest component, or `None` when libtatsu leaves it out.
fn component_entry(c: &ManifestComponent, params: &Conditions) -> Option<Dictionary> {
    if SKIPPED_COMPONENTS.contains(&c.name.as_str()) || !c.has_info {
        return None;
    }
    let trusted = c.is_trusted();
    if params.img4 && c.restore_request_rules.is_none() && !trusted {
        return None;
    }
    if c.is_ftab {
        return None;
    }
    let mut entry = c.tss_fields.clone();
    match &c.restore_request_rules {
        Some(rules) => {
            for rule in rules.iter().filter(|r| r.is_dict && params.hold(r)) {
                for (key, value) in &rule.actions {
                    entry.insert(key.clone(), (*value).into());
                }
            }
        }
        None if params.img4 => {
            entry.insert("EPRO".into(), true.into());
            entry.insert("ESEC".into(), params.security_mode.into());
        }
        None => {}
    }
    if trusted && !entry.contains_key("Digest") {
        entry.insert("Digest".into(), Value::Data(Vec::new()));
    }
    if entry.is_empty() {
        return None;
    }
    entry.sort_keys();
    Some(entry)
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
    /// ticket, NotSigned needs STATUS=94; everything else is Unknown.
    ///
    /// STATUS=69 carries the same "This device isn't eligible" message as 94, but every
    /// documented 69 was Apple refusing a request it found incomplete for a build that
    /// *was* signed (idevicerestore #598 and #532, tsschecker #32: requests without
    /// `UID_MODE`/`Ap,SikaFuse`), so it is never a signing verdict (FIRMWARE.md §4).
    pub fn signing_status(&self) -> SigningStatus {
        match self.status {
            Some(0) if self.has_ticket => SigningStatus::Signed,
            Some(94) => SigningStatus::NotSigned,
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
            94 => None,
            69 => Some(
                "Apple refused the request as incomplete for this device; it has answered \
                 69 for builds that were signed, so this is not a signing verdict",
            ),
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

/// How long to wait before asking again after an answer without `STATUS=` (libtatsu
/// sleeps 2 s between its attempts; we stay within the caller's deadline).
const NO_STATUS_PAUSE: Duration = Duration::from_millis(500);
/// Attempts at most for answers without `STATUS=` (libtatsu: 15, across Apple's mirrors).
const MAX_ATTEMPTS: u32 = 4;

/// One TSS query for `identity`: POST the request, read the answer, decide.
///
/// Like libtatsu's `tss_request_send`, an answer without `STATUS=` (a CDN error page, a
/// connection that broke) is asked again, here while the deadline allows; an answer with
/// a status, whatever it is, is Apple's word and is not. `timeout` bounds the whole
/// query, retries included. With `opts.tss_dump`, every request and answer is saved.
pub(crate) fn query(
    http: &Http,
    identity: &BuildIdentity,
    opts: &SigningOptions,
    timeout: Duration,
) -> IdentityAnswer {
    let answer = |status, tss_status, detail: String| IdentityAnswer {
        status,
        tss_status,
        detail,
        obtained_at: SystemTime::now(),
        source: Some("tss"),
    };
    let unknown = |detail: String| answer(SigningStatus::Unknown, None, detail);
    let built = match &opts.personal {
        Some(personal) => try_build_personal_request(identity, personal),
        None => try_build_tss_request(identity),
    };
    let request = match built {
        Ok(r) => r,
        Err(e) => return unknown(e.to_string()),
    };
    let mut xml = Vec::new();
    if let Err(e) = Value::Dictionary(request).to_writer_xml(&mut xml) {
        return unknown(format!("could not write the TSS request: {e}"));
    }
    let deadline = Instant::now() + timeout;
    let mut attempt = 0;
    loop {
        attempt += 1;
        let left = deadline.saturating_duration_since(Instant::now());
        let reply = http.post(&opts.tss_url, &xml, &TSS_HEADERS, left);
        if let Some(dir) = &opts.tss_dump {
            dump::save(dir, identity, attempt, &xml, &reply);
        }
        let reply = match reply {
            Ok(reply) => reply,
            Err(e) => return unknown(e.to_string()),
        };
        if reply.status != 200 {
            return unknown(format!("{} answered HTTP {}", opts.tss_url, reply.status));
        }
        let parsed = parse_tss_response(&reply.body);
        let again = parsed.status.is_none()
            && attempt < MAX_ATTEMPTS
            && deadline.saturating_duration_since(Instant::now()) > NO_STATUS_PAUSE * 2;
        if again {
            std::thread::sleep(NO_STATUS_PAUSE);
            continue;
        }
        let mut detail = parsed.describe();
        if parsed.status.is_none() && attempt > 1 {
            detail.push_str(&format!(" (asked {attempt} times)"));
        }
        return answer(parsed.signing_status(), parsed.status, detail);
    }
}

/// `--tss-dump DIR`: every request and answer, for a user (or a bug report) to inspect.
mod dump {
    use std::path::Path;

    use super::super::http::HttpAnswer;
    use super::super::SigningError;
    use crate::manifest::BuildIdentity;

    /// Write `<board>-<chip>-<board id>-<n>.request.plist` and `….response.txt` into `dir`
    /// (created if needed). Best effort: a dump that cannot be written never changes the
    /// answer. Files are created new (never through an existing link): a name that is
    /// taken gets a numbered sibling.
    pub(super) fn save(
        dir: &Path,
        identity: &BuildIdentity,
        attempt: u32,
        request: &[u8],
        reply: &Result<HttpAnswer, SigningError>,
    ) {
        let _ = std::fs::create_dir_all(dir);
        let label: String = identity
            .info
            .device_class
            .as_deref()
            .unwrap_or("identity")
            .chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .take(32)
            .collect();
        let stem = format!(
            "{label}-{:04x}-{:02x}-{}-{attempt}",
            identity.chip_id.unwrap_or(0),
            identity.board_id.unwrap_or(0),
            identity.index
        );
        let response = match reply {
            Ok(r) => {
                let mut text = format!("HTTP {}\n\n", r.status).into_bytes();
                text.extend_from_slice(&r.body);
                text
            }
            Err(e) => format!("no answer: {e}\n").into_bytes(),
        };
        write_new(dir, &stem, "request.plist", request);
        write_new(dir, &stem, "response.txt", &response);
    }

    fn write_new(dir: &Path, stem: &str, ext: &str, bytes: &[u8]) {
        use std::io::Write;
        for n in 0..100 {
            let name = if n == 0 {
                format!("{stem}.{ext}")
            } else {
                format!("{stem}.{n}.{ext}")
            };
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(dir.join(name))
            {
                Ok(mut f) => {
                    let _ = f.write_all(bytes);
                    return;
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(_) => return,
            }
        }
    }
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
        // 69 carries the same message as 94 but has only ever been a refused request for
        // a signed build: never a signing verdict.
        let a = parse_tss_response(
            b"STATUS=69&MESSAGE=This device isn't eligible for the requested build.",
        );
        assert_eq!(a.signing_status(), SigningStatus::Unknown);
        assert!(
            a.describe().contains("not a signing verdict"),
            "{}",
            a.describe()
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
