//! `BuildManifest.plist` and `Restore.plist` as typed structs.
//!
//! A BuildManifest is Apple's promise of what a restore will install: for each board
//! ("build identity") it lists the components (iBSS, KernelCache, OS, …) with the path of
//! their file inside the IPSW and the digest the device's boot chain will demand
//! (FIRMWARE.md §2–3). Both plists may be XML or binary; `plist` reads either.
//!
//! We keep the parts ipswcheck reasons about as typed fields, and keep the raw
//! component dictionaries only for the one consumer that must echo them verbatim:
//! the TSS request (FIRMWARE.md §4 asks for "the entry minus `Info`").

use std::collections::BTreeMap;

use plist::{Dictionary, Value};

use crate::digest::DigestAlgorithm;

mod bounded;
mod quick;
mod tss;

pub use bounded::{
    read_plist_bounded, read_plist_costed, MemoryHold, MAX_PLIST_DEPTH, MAX_PLIST_PAYLOAD,
    MAX_PLIST_VALUES, PARSE_COST_CAP, VALUE_COST,
};
pub use quick::read_xml_plist;
pub use tss::{plist_bool, plist_uint, RequestRule, TssParameters, TSS_AP_STRING_KEYS};

/// Why a manifest could not be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ManifestError {
    #[error("{file} is not a property list: {reason}")]
    NotAPlist { file: &'static str, reason: String },
    #[error("{file} has no {key}")]
    MissingKey { file: &'static str, key: String },
    #[error("{file}: {key} has the wrong type (expected {expected})")]
    WrongType {
        file: &'static str,
        key: String,
        expected: &'static str,
    },
}

const BUILD_MANIFEST: &str = "BuildManifest.plist";
const RESTORE_PLIST: &str = "Restore.plist";

/// The top level of `BuildManifest.plist`.
#[derive(Debug, Clone, PartialEq)]
pub struct BuildManifest {
    /// `ProductVersion`, e.g. `15.4`.
    pub product_version: String,
    /// `ProductBuildVersion`, e.g. `19E241`.
    pub build: String,
    /// `SupportedProductTypes`: every product type this file may be restored onto.
    pub supported_product_types: Vec<String>,
    /// `BuildIdentities`, in manifest order.
    pub identities: Vec<BuildIdentity>,
    /// Its share of the memory budget ([`crate::budget`]), given back with the last copy.
    pub memory: MemoryHold,
}

impl BuildManifest {
    /// Parse an XML or binary BuildManifest, within a reservation of the memory budget
    /// ([`crate::budget`]) made here: [`PARSE_COST_CAP`] while it parses, what it keeps
    /// afterwards.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, ManifestError> {
        let mut allowance = crate::budget::reserve(PARSE_COST_CAP + bytes.len() as u64);
        Self::from_bytes_within(bytes, &mut allowance)
    }

    /// [`BuildManifest::from_bytes`] within `allowance`, reserved earlier (opening a file
    /// reserves its directory and manifests at once, see [`crate::budget`]): the
    /// manifest takes what it keeps out of it and leaves the rest.
    pub fn from_bytes_within(
        bytes: &[u8],
        allowance: &mut crate::budget::Ticket,
    ) -> Result<Self, ManifestError> {
        let (root, cost) = parse_plist(bytes, BUILD_MANIFEST)?;
        // The tree is taken apart, not copied: components move their dictionaries into
        // `tss_fields` (cloning them was a third of `--quick`'s time on a 1 MB manifest).
        let Value::Dictionary(mut root) = root else {
            return Err(ManifestError::WrongType {
                file: BUILD_MANIFEST,
                key: "the top level".into(),
                expected: "dictionary",
            });
        };
        let identities_raw = match root.remove("BuildIdentities") {
            Some(Value::Array(a)) => a,
            None => return Err(Fields::new(&root, BUILD_MANIFEST, "").missing("BuildIdentities")),
            Some(_) => {
                return Err(Fields::new(&root, BUILD_MANIFEST, "").wrong("BuildIdentities", "array"))
            }
        };
        let f = Fields::new(&root, BUILD_MANIFEST, "");
        let mut identities = Vec::with_capacity(identities_raw.len());
        for (index, value) in identities_raw.into_iter().enumerate() {
            let Value::Dictionary(dict) = value else {
                return Err(ManifestError::WrongType {
                    file: BUILD_MANIFEST,
                    key: format!("BuildIdentities[{index}]"),
                    expected: "dictionary",
                });
            };
            identities.push(BuildIdentity::from_dict(index, dict)?);
        }
        Ok(BuildManifest {
            product_version: f.required_string("ProductVersion")?,
            build: f.required_string("ProductBuildVersion")?,
            supported_product_types: f.string_array("SupportedProductTypes")?,
            identities,
            // What the typed copy keeps is at most what the tree cost.
            memory: MemoryHold::new(allowance.split_off(cost)),
        })
    }

    /// The operating system the file installs, named as Apple names it, from the product
    /// types it supports (a BuildManifest has no platform key of its own; identities from
    /// about iOS 17 carry `Ap,SDKPlatform`, older ones do not): `iOS` for iPhone and iPod,
    /// `iPadOS` for iPad from 13 on, `tvOS`, `watchOS`, `audioOS` (HomePod), `macOS`,
    /// `visionOS`, `bridgeOS`. A file whose product types are mixed or unknown says
    /// `firmware`.
    pub fn platform(&self) -> &'static str {
        let major: u32 = self
            .product_version
            .split('.')
            .next()
            .and_then(|m| m.parse().ok())
            .unwrap_or(0);
        let of = |t: &str| -> &'static str {
            let t = t.to_ascii_lowercase();
            if t.starts_with("iphone") || t.starts_with("ipod") {
                "iOS"
            } else if t.starts_with("ipad") {
                if major >= 13 {
                    "iPadOS"
                } else {
                    "iOS"
                }
            } else if t.starts_with("appletv") {
                "tvOS"
            } else if t.starts_with("watch") {
                "watchOS"
            } else if t.starts_with("audioaccessory") {
                "audioOS"
            } else if t.starts_with("realitydevice") {
                "visionOS"
            } else if t.starts_with("ibridge") {
                "bridgeOS"
            } else if t.starts_with("mac")
                || t.starts_with("imac")
                || t.starts_with("virtualmac")
                || t.starts_with("adp")
            {
                "macOS"
            } else {
                "firmware"
            }
        };
        // Identities from about iOS 17 name their SDK: the surest word, and the only one
        // for a file whose product types name no device (a bootability bundle: iSim1,1).
        let sdk = self.identities.iter().find_map(|i| {
            i.tss
                .ap_strings
                .iter()
                .find(|(k, _)| *k == "Ap,SDKPlatform")
                .map(|(_, v)| v.to_ascii_lowercase())
        });
        let by_types = |types: &[String]| types.iter().all(|t| of(t) == "iPadOS");
        match sdk.as_deref() {
            Some("iphoneos")
                if !self.supported_product_types.is_empty()
                    && by_types(&self.supported_product_types) =>
            {
                return "iPadOS"
            }
            Some("iphoneos") => return "iOS",
            Some("macosx") => return "macOS",
            Some("appletvos") => return "tvOS",
            Some("watchos") => return "watchOS",
            Some("xros") => return "visionOS",
            Some("bridgeos") => return "bridgeOS",
            Some("audioos") => return "audioOS",
            _ => {}
        }
        // Compute modules and the Simulator (in developer disk images) name no platform.
        let mut platforms = self
            .supported_product_types
            .iter()
            .map(|t| of(t))
            .filter(|p| *p != "firmware");
        match platforms.next() {
            None => "firmware",
            // iPhone + iPad in one file (developer disk images): the iPhone's name.
            Some(first) => {
                let all: Vec<&str> = std::iter::once(first).chain(platforms).collect();
                if all.iter().all(|p| *p == first) {
                    first
                } else if all.iter().all(|p| matches!(*p, "iOS" | "iPadOS")) {
                    "iOS"
                } else {
                    "firmware"
                }
            }
        }
    }

    /// Beta builds end in a lower-case letter (`19A5318f`); releases never do.
    pub fn is_beta(&self) -> bool {
        self.build
            .chars()
            .last()
            .is_some_and(|c| c.is_ascii_lowercase())
    }
}

/// What a restore with an identity does to the device (`Info/RestoreBehavior`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RestoreBehavior {
    /// A full restore that wipes the device (`Erase`).
    Erase,
    /// An update that keeps user data (`Update`; some manifests say `Upgrade`).
    Update,
}

/// One `BuildIdentities[]` entry: the recipe for one board and one kind of restore.
#[derive(Debug, Clone, PartialEq)]
pub struct BuildIdentity {
    /// Position in `BuildIdentities`, for messages.
    pub index: usize,
    /// `ApChipID` (stored as a hex string such as `"0x8010"`).
    pub chip_id: Option<u32>,
    /// `ApBoardID` (`"0x0C"`).
    pub board_id: Option<u32>,
    /// `ApSecurityDomain` (`"0x01"`).
    pub security_domain: Option<u32>,
    /// `Ap,ProductType`, present only in iOS 26 identities.
    pub product_type: Option<String>,
    /// `UniqueBuildID`: names this exact identity to Apple's TSS server.
    pub unique_build_id: Option<Vec<u8>>,
    /// `Info`.
    pub info: IdentityInfo,
    /// `Manifest`, sorted by component name.
    pub components: Vec<ManifestComponent>,
    /// What libtatsu's `tss_parameters_add_from_manifest` reads from the identity for an
    /// AP ticket request (FIRMWARE.md §4).
    pub tss: TssParameters,
}

impl BuildIdentity {
    fn from_dict(index: usize, mut dict: Dictionary) -> Result<Self, ManifestError> {
        let prefix = format!("BuildIdentities[{index}].");
        let tss = TssParameters::from_identity(&dict);
        let manifest = dict.remove("Manifest");
        let f = Fields::new(&dict, BUILD_MANIFEST, &prefix);
        let info = match dict.get("Info") {
            Some(Value::Dictionary(info)) => IdentityInfo::from_dict(info, &prefix)?,
            Some(_) => {
                return Err(ManifestError::WrongType {
                    file: BUILD_MANIFEST,
                    key: format!("{prefix}Info"),
                    expected: "dictionary",
                })
            }
            None => IdentityInfo::default(),
        };
        let mut components = Vec::new();
        if let Some(manifest) = manifest {
            let Value::Dictionary(manifest) = manifest else {
                return Err(ManifestError::WrongType {
                    file: BUILD_MANIFEST,
                    key: format!("{prefix}Manifest"),
                    expected: "dictionary",
                });
            };
            for (name, entry) in manifest {
                // A component that is not a dictionary has nothing to verify; keep the
                // rest of the identity usable rather than rejecting the whole file.
                if let Value::Dictionary(entry) = entry {
                    components.push(ManifestComponent::from_dict(name, entry));
                }
            }
            components.sort_by(|a, b| a.name.cmp(&b.name));
        }
        Ok(BuildIdentity {
            index,
            chip_id: f.hex_u32("ApChipID")?,
            board_id: f.hex_u32("ApBoardID")?,
            security_domain: f.hex_u32("ApSecurityDomain")?,
            product_type: f.optional_string("Ap,ProductType")?,
            unique_build_id: f.optional_data("UniqueBuildID")?,
            info,
            components,
            tss,
        })
    }

    /// The component called `name`, if this identity has one.
    pub fn component(&self, name: &str) -> Option<&ManifestComponent> {
        self.components
            .binary_search_by(|c| c.name.as_str().cmp(name))
            .ok()
            .map(|i| &self.components[i])
    }

    /// Whether this identity restores a device whose hardware model is `board`
    /// (`d101ap`) or whose chip/board ids are `chip_id`/`board_id`.
    pub fn matches_board(&self, board: &str, chip_id: u32, board_id: u32) -> bool {
        match &self.info.device_class {
            Some(class) => class.eq_ignore_ascii_case(board),
            None => self.chip_id == Some(chip_id) && self.board_id == Some(board_id),
        }
    }
}

/// The `Info` dictionary of a build identity.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct IdentityInfo {
    /// `DeviceClass`: the hardware model, e.g. `d101ap`.
    pub device_class: Option<String>,
    /// `Variant`, e.g. `Customer Erase Install (IPSW)`.
    pub variant: Option<String>,
    /// `RestoreBehavior` as written (`Erase`, `Update`, sometimes `Upgrade`).
    pub restore_behavior: Option<String>,
    /// `BuildNumber`.
    pub build_number: Option<String>,
}

impl IdentityInfo {
    fn from_dict(info: &Dictionary, prefix: &str) -> Result<Self, ManifestError> {
        let prefix = format!("{prefix}Info.");
        let f = Fields::new(info, BUILD_MANIFEST, &prefix);
        Ok(IdentityInfo {
            device_class: f.optional_string("DeviceClass")?,
            variant: f.optional_string("Variant")?,
            restore_behavior: f.optional_string("RestoreBehavior")?,
            build_number: f.optional_string("BuildNumber")?,
        })
    }

    /// The restore behaviour, when it is one ipswcheck knows.
    pub fn behavior(&self) -> Option<RestoreBehavior> {
        match self.restore_behavior.as_deref()? {
            "Erase" => Some(RestoreBehavior::Erase),
            "Update" | "Upgrade" => Some(RestoreBehavior::Update),
            _ => None,
        }
    }

    /// Research identities (internal "Research" variants, often without a
    /// RestoreBehavior) must never be picked by default: idevicerestore #511 picked one
    /// and Apple refused to sign a build that was in fact signed.
    pub fn is_research(&self) -> bool {
        self.variant
            .as_deref()
            .is_some_and(|v| v.to_ascii_lowercase().contains("research"))
    }
}

/// One entry of an identity's `Manifest`.
#[derive(Debug, Clone, PartialEq)]
pub struct ManifestComponent {
    /// The component name, e.g. `KernelCache`, `RestoreSEP`, `Ap,SystemVolumeCanonicalMetadata`.
    pub name: String,
    /// `Digest`: the hash of the file (see FIRMWARE.md §3 for what it covers).
    pub digest: Option<Vec<u8>>,
    /// `Trusted`.
    pub trusted: Option<bool>,
    /// `Info/Path`: where the file sits inside the IPSW.
    pub path: Option<String>,
    /// `Info/Img4PayloadType`: the 4CC the IM4P is retagged to before hashing.
    pub img4_payload_type: Option<String>,
    /// `Info/HashMethod` (`sha1`, `sha2-256`, `sha2-384`), where present.
    pub hash_method: Option<String>,
    /// `Info/IsFTAB`: the digest covers one entry inside an `ftab.bin`, not the file.
    pub is_ftab: bool,
    /// Whether the entry has an `Info` key: libtatsu leaves entries without one out of a
    /// ticket request.
    pub has_info: bool,
    /// `Info/RestoreRequestRules`, when the key is present (an empty list when it is not
    /// an array). They decide the `EPRO`/`ESEC`/… flags of the entry in a TSS request.
    pub restore_request_rules: Option<Vec<RequestRule>>,
    /// `*-DownloadDigest` keys of a `BasebandFirmware` entry, by member prefix
    /// (`ACDB` for `ACDB-DownloadDigest`).
    pub download_digests: BTreeMap<String, Vec<u8>>,
    /// The entry minus `Info`, exactly as Apple wrote it (for the TSS request).
    pub tss_fields: Dictionary,
}

impl ManifestComponent {
    fn from_dict(name: String, mut entry: Dictionary) -> Self {
        let has_info = entry.contains_key("Info");
        // `tss_fields` is the entry minus `Info` (removed as before: `swap_remove` order).
        let mut info_value = entry.remove("Info");
        // The rules move out of `Info` rather than being copied (most of a manifest's
        // values are in them).
        let rules = match &mut info_value {
            Some(Value::Dictionary(info)) => info.remove("RestoreRequestRules"),
            _ => None,
        };
        let info = info_value.as_ref().and_then(Value::as_dictionary);
        let info_str = |key: &str| {
            info.and_then(|i| i.get(key))
                .and_then(Value::as_string)
                .map(str::to_owned)
        };
        let download_digests = entry
            .iter()
            .filter_map(|(k, v)| {
                let prefix = k.strip_suffix("-DownloadDigest")?;
                Some((prefix.to_owned(), v.as_data()?.to_vec()))
            })
            .collect();
        ManifestComponent {
            name,
            digest: entry
                .get("Digest")
                .and_then(Value::as_data)
                .map(<[u8]>::to_vec),
            trusted: entry.get("Trusted").and_then(Value::as_boolean),
            path: info_str("Path"),
            img4_payload_type: info_str("Img4PayloadType"),
            hash_method: info_str("HashMethod"),
            is_ftab: info.and_then(|i| i.get("IsFTAB")).is_some_and(plist_bool),
            has_info,
            restore_request_rules: rules.map(RequestRule::list),
            download_digests,
            tss_fields: entry,
        }
    }

    /// Whether the manifest marks the entry `Trusted`, read as libtatsu reads it.
    pub fn is_trusted(&self) -> bool {
        self.tss_fields.get("Trusted").is_some_and(plist_bool)
    }

    /// The digest algorithm, from the digest length (the rule verified on real files),
    /// falling back to `HashMethod` when the digest is absent.
    pub fn algorithm(&self) -> Option<DigestAlgorithm> {
        match &self.digest {
            Some(d) => DigestAlgorithm::from_digest_len(d.len()),
            None => self
                .hash_method
                .as_deref()
                .and_then(DigestAlgorithm::from_hash_method),
        }
    }
}

/// `Restore.plist`: the older, smaller summary Finder reads for the device list.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RestorePlist {
    pub product_version: Option<String>,
    pub build: Option<String>,
    pub supported_product_types: Vec<String>,
    /// `DeviceMap`: one row per board.
    pub device_map: Vec<DeviceMapEntry>,
}

/// One `DeviceMap` row of `Restore.plist`.
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceMapEntry {
    pub board_config: String,
    pub chip_id: Option<u32>,
    pub board_id: Option<u32>,
}

/// Most `DeviceMap` rows or `SupportedProductTypes` a Restore.plist may list (real ones:
/// a handful of rows, under a hundred product types).
const MAX_RESTORE_ROWS: usize = 4096;

impl RestorePlist {
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, ManifestError> {
        let (root, _) = parse_plist(bytes, RESTORE_PLIST)?;
        let root = root.as_dictionary().ok_or(ManifestError::WrongType {
            file: RESTORE_PLIST,
            key: "the top level".into(),
            expected: "dictionary",
        })?;
        let f = Fields::new(root, RESTORE_PLIST, "");
        let device_map = match root.get("DeviceMap") {
            Some(Value::Array(rows)) => rows
                .iter()
                .filter_map(Value::as_dictionary)
                .filter_map(|row| {
                    let f = Fields::new(row, RESTORE_PLIST, "DeviceMap.");
                    Some(DeviceMapEntry {
                        board_config: f.optional_string("BoardConfig").ok()??,
                        chip_id: f.hex_u32("CPID").ok()?,
                        board_id: f.hex_u32("BDID").ok()?,
                    })
                })
                .collect(),
            _ => Vec::new(),
        };
        // Restore.plist is kept for the whole check outside the memory budget: hold its
        // lists to what real files have (a few rows, a few dozen product types).
        let supported_product_types = f.string_array("SupportedProductTypes")?;
        if device_map.len() > MAX_RESTORE_ROWS || supported_product_types.len() > MAX_RESTORE_ROWS {
            return Err(ManifestError::NotAPlist {
                file: RESTORE_PLIST,
                reason: format!(
                    "it lists more than {MAX_RESTORE_ROWS} devices or product types (a crafted plist?)"
                ),
            });
        }
        Ok(RestorePlist {
            product_version: f.optional_string("ProductVersion")?,
            build: f.optional_string("ProductBuildVersion")?,
            supported_product_types,
            device_map,
        })
    }
}

fn parse_plist(bytes: &[u8], file: &'static str) -> Result<(Value, u64), ManifestError> {
    // Apple's XML through the fast reader; anything else (binary, or XML outside the
    // subset it reads exactly, or over a bound) through the full one, which says why.
    if let Some(read) = quick::read_xml_plist_costed(bytes) {
        return Ok(read);
    }
    read_plist_costed(bytes).map_err(|reason| ManifestError::NotAPlist { file, reason })
}

/// Typed access to a plist dictionary with errors that name the key path.
struct Fields<'a> {
    dict: &'a Dictionary,
    file: &'static str,
    prefix: &'a str,
}

impl<'a> Fields<'a> {
    fn new(dict: &'a Dictionary, file: &'static str, prefix: &'a str) -> Self {
        Fields { dict, file, prefix }
    }

    fn wrong(&self, key: &str, expected: &'static str) -> ManifestError {
        ManifestError::WrongType {
            file: self.file,
            key: format!("{}{key}", self.prefix),
            expected,
        }
    }

    fn missing(&self, key: &str) -> ManifestError {
        ManifestError::MissingKey {
            file: self.file,
            key: format!("{}{key}", self.prefix),
        }
    }

    fn optional_string(&self, key: &str) -> Result<Option<String>, ManifestError> {
        match self.dict.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(self.wrong(key, "string")),
        }
    }

    fn required_string(&self, key: &str) -> Result<String, ManifestError> {
        self.optional_string(key)?.ok_or_else(|| self.missing(key))
    }

    /// An array of strings; absent means empty.
    fn string_array(&self, key: &str) -> Result<Vec<String>, ManifestError> {
        match self.dict.get(key) {
            None => Ok(Vec::new()),
            Some(Value::Array(a)) => a
                .iter()
                .map(|v| v.as_string().map(str::to_owned))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| self.wrong(key, "array of strings")),
            Some(_) => Err(self.wrong(key, "array of strings")),
        }
    }

    fn optional_data(&self, key: &str) -> Result<Option<Vec<u8>>, ManifestError> {
        match self.dict.get(key) {
            None => Ok(None),
            Some(Value::Data(d)) => Ok(Some(d.clone())),
            Some(_) => Err(self.wrong(key, "data")),
        }
    }

    /// Apple stores chip and board ids as hex strings (`"0x8010"`); some tools write
    /// integers. Accept both.
    fn hex_u32(&self, key: &str) -> Result<Option<u32>, ManifestError> {
        match self.dict.get(key) {
            None => Ok(None),
            Some(Value::Integer(i)) => i
                .as_unsigned()
                .and_then(|u| u32::try_from(u).ok())
                .map(Some)
                .ok_or_else(|| self.wrong(key, "32-bit integer")),
            Some(Value::String(s)) => parse_id(s)
                .map(Some)
                .ok_or_else(|| self.wrong(key, "hex string such as \"0x8010\"")),
            Some(_) => Err(self.wrong(key, "hex string such as \"0x8010\"")),
        }
    }
}

/// Parse `"0x8010"`, `"0X0c"` or a decimal string.
pub fn parse_id(text: &str) -> Option<u32> {
    let t = text.trim();
    match t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        Some(hex) => u32::from_str_radix(hex, 16).ok(),
        None => t.parse().ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_parse_in_apples_spellings() {
        assert_eq!(parse_id("0x8010"), Some(0x8010));
        assert_eq!(parse_id("0x0C"), Some(12));
        assert_eq!(parse_id("12"), Some(12));
        assert_eq!(parse_id("0xZZ"), None);
    }

    #[test]
    fn garbage_is_not_a_manifest() {
        let err = BuildManifest::from_bytes(b"\x00\x01garbage").unwrap_err();
        assert!(err.to_string().starts_with("BuildManifest.plist"), "{err}");
        let err = BuildManifest::from_bytes(b"<plist><dict><key>a").unwrap_err();
        assert!(matches!(err, ManifestError::NotAPlist { .. }), "{err}");
    }

    #[test]
    fn missing_identities_are_named() {
        let mut d = Dictionary::new();
        d.insert("ProductVersion".into(), "1.0".into());
        let mut buf = Vec::new();
        Value::Dictionary(d).to_writer_xml(&mut buf).unwrap();
        let err = BuildManifest::from_bytes(&buf).unwrap_err();
        assert_eq!(
            err.to_string(),
            "BuildManifest.plist has no BuildIdentities"
        );
    }

    #[test]
    fn bounded_reading_agrees_with_plist_on_ordinary_files() {
        let mut root = Dictionary::new();
        root.insert("ProductVersion".into(), "15.8".into());
        let mut inner = Dictionary::new();
        inner.insert("Digest".into(), Value::Data(vec![1, 2, 3]));
        inner.insert("Trusted".into(), true.into());
        inner.insert("Size".into(), Value::Integer(7u64.into()));
        inner.insert("Ratio".into(), Value::Real(0.5));
        root.insert(
            "BuildIdentities".into(),
            Value::Array(vec![
                Value::Dictionary(inner),
                "x".into(),
                Value::Array(vec![]),
            ]),
        );
        let value = Value::Dictionary(root);
        let (mut xml, mut bin) = (Vec::new(), Vec::new());
        value.to_writer_xml(&mut xml).unwrap();
        value.to_writer_binary(&mut bin).unwrap();
        for bytes in [&xml, &bin] {
            assert_eq!(read_plist_bounded(bytes).unwrap(), value);
            assert_eq!(
                read_plist_bounded(bytes).unwrap(),
                Value::from_reader(std::io::Cursor::new(bytes)).unwrap()
            );
        }
        assert!(read_plist_bounded(b"").is_err());
        assert!(read_plist_bounded(b"<plist><array><string>a</string>").is_err());
    }

    #[test]
    fn deep_nesting_is_refused_without_touching_the_stack() {
        let depth = 100_000;
        let xml = format!(
            "<?xml version=\"1.0\"?><plist version=\"1.0\">{}{}</plist>",
            "<array>".repeat(depth),
            "</array>".repeat(depth)
        );
        // A 64 KiB stack: refusing must not recurse at all.
        let handle = std::thread::Builder::new()
            .stack_size(64 << 10)
            .spawn(move || {
                let xml_err = read_plist_bounded(xml.as_bytes()).unwrap_err();
                let bin_err = read_plist_bounded(&ipswcheck_fixture::binary_plist_chain(depth, 1))
                    .unwrap_err();
                (xml_err, bin_err)
            })
            .unwrap();
        let (xml_err, bin_err) = handle.join().unwrap();
        assert!(xml_err.contains("more than 64 deep"), "{xml_err}");
        assert!(bin_err.contains("more than 64 deep"), "{bin_err}");
        let err = BuildManifest::from_bytes(&ipswcheck_fixture::binary_plist_chain(depth, 1))
            .unwrap_err();
        assert!(matches!(err, ManifestError::NotAPlist { .. }), "{err}");
        // At the limit it still reads.
        assert!(
            read_plist_bounded(&ipswcheck_fixture::binary_plist_chain(MAX_PLIST_DEPTH, 1)).is_ok()
        );
    }

    #[test]
    fn shared_references_cannot_expand_without_bound() {
        // 40 levels of [x, x]: 2^40 values once expanded, 600 bytes on disk.
        let bomb = ipswcheck_fixture::binary_plist_chain(40, 2);
        let started = std::time::Instant::now();
        let err = read_plist_bounded(&bomb).unwrap_err();
        assert!(
            err.contains(&format!("more than {MAX_PLIST_VALUES} values")),
            "{err}"
        );
        assert!(started.elapsed() < std::time::Duration::from_secs(10));
    }

    #[test]
    fn beta_builds_end_in_a_lowercase_letter() {
        let m = |build: &str| BuildManifest {
            product_version: "15.0".into(),
            build: build.into(),
            supported_product_types: vec![],
            identities: vec![],
            memory: MemoryHold::new(crate::budget::Ticket::none()),
        };
        assert!(m("19A5318f").is_beta());
        assert!(!m("19A346").is_beta());
    }
}
