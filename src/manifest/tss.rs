//! The parts of a build identity that an AP ticket request echoes, typed, and read the way
//! libtatsu reads them (libimobiledevice/libtatsu `src/tss.c` @60a39f3, with libplist's
//! accessors): `crate::signing::tss` builds the request from these alone.

use plist::{Dictionary, Value};

/// The identity-level keys of a BuildIdentity that an AP ticket request echoes, read the
/// way libtatsu (`src/tss.c`, `tss_parameters_add_from_manifest`, @60a39f3) reads them —
/// so that our request to Apple equals the one idevicerestore and tsschecker send.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TssParameters {
    /// The `Ap,*` keys libtatsu copies, in its order, when they are strings (it copies
    /// them with `plist_dict_copy_string`: another type is left out). No other `Ap,*` key
    /// goes into a request: `Ap,PairedVersionNumber` and friends are not libtatsu's.
    pub ap_strings: Vec<(&'static str, String)>,
    /// `NeRDEpoch` (an integer, or a string read like `strtoull(s, 0)`): devices with a
    /// recovery OS; it also makes libtatsu add an empty `PermitNeRDPivot`.
    pub nerd_epoch: Option<u64>,
    /// `PearlCertificationRootPub` (data): every Face ID identity carries it.
    pub pearl_certification_root_pub: Option<Vec<u8>>,
    /// `AllowNeRDBoot`, as libplist reads a boolean.
    pub allow_nerd_boot: Option<bool>,
    /// `Info/RequiresUIDMode`: iPhone 14/15 and later on iOS 16+. libtatsu then sends
    /// `UID_MODE = false` and `Ap,SikaFuse = 0`; without them Apple answers STATUS=69 for
    /// builds that are signed (idevicerestore #598, #532).
    pub requires_uid_mode: bool,
    /// Whether the identity's `Manifest` has a `SEP` entry (a dictionary): tsschecker's
    /// rule for "this device has a Secure Enclave", and so for sending a `SepNonce`.
    /// `Info/VirtualMachineMinHostOS` overrides it (a string: yes; another type: no).
    pub has_sep: bool,
}

/// The `Ap,*` string keys libtatsu copies into a request (`tss_request_add_ap_img4_tags`).
pub const TSS_AP_STRING_KEYS: [&str; 8] = [
    "Ap,OSLongVersion",
    "Ap,OSReleaseType",
    "Ap,ProductMarketingVersion",
    "Ap,ProductType",
    "Ap,SDKPlatform",
    "Ap,Target",
    "Ap,TargetType",
    "Ap,Timestamp",
];

impl TssParameters {
    pub(super) fn from_identity(dict: &Dictionary) -> Self {
        let info = dict.get("Info").and_then(Value::as_dictionary);
        let manifest = dict.get("Manifest").and_then(Value::as_dictionary);
        let mut has_sep = manifest
            .and_then(|m| m.get("SEP"))
            .is_some_and(|sep| sep.as_dictionary().is_some());
        if let Some(vm) = info.and_then(|i| i.get("VirtualMachineMinHostOS")) {
            has_sep = vm.as_string().is_some();
        }
        TssParameters {
            ap_strings: TSS_AP_STRING_KEYS
                .iter()
                .filter_map(|&k| Some((k, dict.get(k)?.as_string()?.to_owned())))
                .collect(),
            nerd_epoch: dict.get("NeRDEpoch").map(plist_uint),
            pearl_certification_root_pub: dict
                .get("PearlCertificationRootPub")
                .and_then(Value::as_data)
                .map(<[u8]>::to_vec),
            allow_nerd_boot: dict.get("AllowNeRDBoot").map(plist_bool),
            requires_uid_mode: info
                .and_then(|i| i.get("RequiresUIDMode"))
                .is_some_and(plist_bool),
            has_sep,
        }
    }
}

/// A boolean as libplist's `plist_dict_get_bool` reads one, which libtatsu uses for
/// `Trusted`, `IsFTAB`, `RequiresUIDMode` and `AllowNeRDBoot`: a boolean is itself, an
/// integer is "not zero", one byte of data is "not zero", and a string is true unless it
/// is exactly `"true"` (libplist 2.x compares with `strcmp` the wrong way round; real
/// manifests never store these as strings, and we follow the peer so that a request
/// stays equal to its).
pub fn plist_bool(v: &Value) -> bool {
    match v {
        Value::Boolean(b) => *b,
        Value::Integer(i) => i.as_unsigned() != Some(0),
        Value::String(s) => s != "true",
        Value::Data(d) => d.len() == 1 && d[0] != 0,
        _ => false,
    }
}

/// An unsigned integer as libplist's `plist_dict_get_uint` reads one: an integer, a string
/// through `strtoull(s, NULL, 0)` (so `"0x8010"` is 0x8010), little-endian data of 1, 2,
/// 4 or 8 bytes; anything else is 0.
pub fn plist_uint(v: &Value) -> u64 {
    match v {
        Value::Integer(i) => i
            .as_unsigned()
            .unwrap_or_else(|| i.as_signed().unwrap_or(0) as u64),
        Value::String(s) => strtoull(s),
        // libplist reads one byte through a (signed) `char`.
        Value::Data(d) if d.len() == 1 => d[0] as i8 as i64 as u64,
        Value::Data(d) if matches!(d.len(), 2 | 4 | 8) => {
            let mut b = [0u8; 8];
            b[..d.len()].copy_from_slice(d);
            u64::from_le_bytes(b)
        }
        _ => 0,
    }
}

/// C's `strtoull(s, NULL, 0)`: leading blanks, an optional sign, then `0x` hex, `0` octal
/// or decimal digits, as many as parse; saturating on overflow; 0 when none parse.
fn strtoull(s: &str) -> u64 {
    let t = s.trim_start_matches([' ', '\t', '\n', '\r', '\x0b', '\x0c']);
    let (neg, t) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    let (radix, digits) = if let Some(h) = t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        if h.starts_with(|c: char| c.is_ascii_hexdigit()) {
            (16, h)
        } else {
            (8, t)
        }
    } else if t.starts_with('0') {
        (8, t)
    } else {
        (10, t)
    };
    let mut value: u64 = 0;
    for c in digits.chars() {
        let Some(d) = c.to_digit(radix) else { break };
        value = match value
            .checked_mul(u64::from(radix))
            .and_then(|v| v.checked_add(u64::from(d)))
        {
            Some(v) => v,
            None => return u64::MAX,
        };
    }
    if neg {
        value.wrapping_neg()
    } else {
        value
    }
}

/// One of an entry's `Info/RestoreRequestRules`: when every condition holds for the
/// device, the actions set flags (`EPRO`, `ESEC`, `DPRO`, `DSEC`) on the entry of the
/// ticket request. Conditions name device properties (`ApRawProductionMode`,
/// `ApRequiresImage4`, `ApDemotionPolicyOverride`, …); see `signing::tss` for how they are
/// evaluated (libtatsu's `tss_entry_apply_restore_request_rules`).
#[derive(Debug, Clone, PartialEq)]
pub struct RequestRule {
    /// `Conditions`, in manifest order (empty when absent or not a dictionary: such a rule
    /// always applies, as in libtatsu).
    pub conditions: Vec<(String, Value)>,
    /// `Actions` whose value is a boolean (libtatsu ignores the others).
    pub actions: Vec<(String, bool)>,
    /// Whether the rule is a dictionary at all (libtatsu: a rule that is not has no
    /// actions, whatever its conditions).
    pub is_dict: bool,
}

impl RequestRule {
    pub(super) fn list(value: Value) -> Vec<RequestRule> {
        let Value::Array(rules) = value else {
            return Vec::new();
        };
        rules
            .into_iter()
            .map(|rule| {
                let is_dict = matches!(rule, Value::Dictionary(_));
                let mut dict = match rule {
                    Value::Dictionary(d) => d,
                    _ => Dictionary::new(),
                };
                let mut pairs = |key: &str| match dict.remove(key) {
                    Some(Value::Dictionary(d)) => d.into_iter().collect(),
                    _ => Vec::new(),
                };
                RequestRule {
                    conditions: pairs("Conditions"),
                    actions: pairs("Actions")
                        .into_iter()
                        .filter_map(|(k, v)| Some((k, v.as_boolean()?)))
                        .collect(),
                    is_dict,
                }
            })
            .collect()
    }
}
