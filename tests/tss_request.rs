//! The TSS request equals libtatsu's, key for key, on every real manifest.
//!
//! `libtatsu` below is an independent transliteration of libimobiledevice/libtatsu
//! `src/tss.c` @60a39f3 (`tss_parameters_add_from_manifest`, `tss_request_add_common_tags`,
//! `tss_request_add_ap_tags`, `tss_request_add_ap_img4_tags`, `tss_request_add_ap_img3_tags`,
//! `tss_entry_apply_restore_request_rules`) and of the libplist accessors it uses
//! (`plist_dict_get_bool`, `plist_dict_get_uint`, the `plist_dict_copy_*` family), working
//! on the raw plist of the manifest exactly as the C code does: a parameters dictionary,
//! then a request dictionary filled function by function. It shares no code with
//! ipswcheck's request builder (which reads typed structs), so the two agreeing on every
//! identity of every real manifest is evidence that ours is libtatsu's. The device values
//! (ECID, nonces) are the parameters tsschecker's `tss_populate_devicevals` sets for a
//! device it does not have; both sides get the same ones.
//!
//! The same reading was checked once against the real C library (libtatsu @60a39f3 +
//! libplist @dddb76d, built outside this repository): its requests for all 494 identities
//! of the 43 manifests equal this reading's, apart from the random `@UUID`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use ipswcheck::manifest::{BuildIdentity, BuildManifest};
use ipswcheck::signing::tss::{
    ap_nonce_len, build_tss_request_for, is_img3_chip, RequestDevice, SEP_NONCE_LEN,
};
use plist::{Dictionary, Value};

use crate::util;

/// libtatsu, read independently (see the module docs).
mod libtatsu {
    use plist::{Dictionary, Value};

    // ---- libplist accessors (src/plist.c) ----

    /// `plist_dict_get_bool`.
    pub fn get_bool(dict: &Dictionary, key: &str) -> bool {
        match dict.get(key) {
            None => false,
            Some(Value::Boolean(b)) => *b,
            Some(Value::Integer(i)) => i.as_unsigned() != Some(0) && i.as_signed() != Some(0),
            // `if (strcmp(strval, "true")) bval = 1; else if (strcmp(strval, "false")) bval = 0;`
            Some(Value::String(s)) => {
                if s != "true" {
                    true
                } else {
                    "true" == "false"
                }
            }
            Some(Value::Data(d)) => d.len() == 1 && d[0] != 0,
            Some(_) => false,
        }
    }

    /// `plist_dict_get_uint`.
    pub fn get_uint(dict: &Dictionary, key: &str) -> u64 {
        match dict.get(key) {
            Some(Value::Integer(i)) => i.as_unsigned().unwrap_or(i.as_signed().unwrap_or(0) as u64),
            Some(Value::String(s)) => c_strtoull_base0(s),
            Some(Value::Data(d)) => match d.len() {
                8 => u64::from_le_bytes(d[..8].try_into().unwrap()),
                4 => u64::from(u32::from_le_bytes(d[..4].try_into().unwrap())),
                2 => u64::from(u16::from_le_bytes(d[..2].try_into().unwrap())),
                1 => d[0] as i8 as i64 as u64,
                _ => 0,
            },
            _ => 0,
        }
    }

    /// `strtoull(s, NULL, 0)` for the spellings manifests use ("0x8010", "12", "010").
    fn c_strtoull_base0(s: &str) -> u64 {
        let s = s.trim_start();
        let (radix, digits) = match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
            Some(hex) => (16, hex),
            None if s.starts_with('0') => (8, s),
            None => (10, s),
        };
        let end = digits
            .find(|c: char| !c.is_digit(radix))
            .unwrap_or(digits.len());
        u64::from_str_radix(&digits[..end], radix).unwrap_or(0)
    }

    fn present(dict: &Dictionary, key: &str) -> bool {
        dict.get(key).is_some()
    }

    /// `plist_dict_copy_uint(target, source, key, alt)`.
    pub fn copy_uint(t: &mut Dictionary, s: &Dictionary, key: &str, alt: Option<&str>) -> bool {
        let from = alt.unwrap_or(key);
        if !present(s, from) {
            return false;
        }
        t.insert(key.into(), Value::Integer(get_uint(s, from).into()));
        true
    }

    /// `plist_dict_copy_bool`.
    pub fn copy_bool(t: &mut Dictionary, s: &Dictionary, key: &str, alt: Option<&str>) -> bool {
        let from = alt.unwrap_or(key);
        if !present(s, from) {
            return false;
        }
        t.insert(key.into(), Value::Boolean(get_bool(s, from)));
        true
    }

    /// `plist_dict_copy_data` (only a data node is copied).
    pub fn copy_data(t: &mut Dictionary, s: &Dictionary, key: &str, alt: Option<&str>) -> bool {
        match s.get(alt.unwrap_or(key)) {
            Some(v @ Value::Data(_)) => {
                t.insert(key.into(), v.clone());
                true
            }
            _ => false,
        }
    }

    /// `plist_dict_copy_string` (only a string node is copied).
    pub fn copy_string(t: &mut Dictionary, s: &Dictionary, key: &str) -> bool {
        match s.get(key) {
            Some(v @ Value::String(_)) => {
                t.insert(key.into(), v.clone());
                true
            }
            _ => false,
        }
    }

    /// `plist_dict_copy_item`.
    pub fn copy_item(t: &mut Dictionary, s: &Dictionary, key: &str, alt: Option<&str>) -> bool {
        match s.get(alt.unwrap_or(key)) {
            Some(v) => {
                t.insert(key.into(), v.clone());
                true
            }
            None => false,
        }
    }

    // ---- libtatsu (src/tss.c) ----

    const AP_STRINGS: [&str; 8] = [
        "Ap,OSLongVersion",
        "Ap,OSReleaseType",
        "Ap,ProductMarketingVersion",
        "Ap,ProductType",
        "Ap,SDKPlatform",
        "Ap,Target",
        "Ap,TargetType",
        "Ap,Timestamp",
    ];

    /// `tss_parameters_add_from_manifest(parameters, build_identity, true)`, the keys that
    /// reach an AP request (the baseband/SE/Savage/… ones only feed other requests).
    pub fn parameters_add_from_manifest(p: &mut Dictionary, id: &Dictionary) -> Result<(), String> {
        if !copy_data(p, id, "UniqueBuildID", None) {
            return Err("Unable to find UniqueBuildID node".into());
        }
        for key in AP_STRINGS {
            copy_string(p, id, key);
        }
        if !copy_uint(p, id, "ApChipID", None) {
            return Err("Unable to find ApChipID node".into());
        }
        if !copy_uint(p, id, "ApBoardID", None) {
            return Err("Unable to find ApBoardID node".into());
        }
        copy_uint(p, id, "ApSecurityDomain", None);
        copy_uint(p, id, "NeRDEpoch", None);
        copy_data(p, id, "PearlCertificationRootPub", None);
        copy_bool(p, id, "AllowNeRDBoot", None);
        if present(p, "NeRDEpoch") {
            p.insert("PermitNeRDPivot".into(), Value::Data(Vec::new()));
        }
        if let Some(Value::Dictionary(info)) = id.get("Info") {
            copy_bool(p, info, "RequiresUIDMode", None);
        }
        match id.get("Manifest") {
            Some(m @ Value::Dictionary(_)) => {
                p.insert("Manifest".into(), m.clone());
                Ok(())
            }
            _ => Err("Unable to find Manifest node".into()),
        }
    }

    /// `tss_request_new(NULL)` without the random `@UUID` (compared separately).
    pub fn request_new() -> Dictionary {
        let mut r = Dictionary::new();
        r.insert("@HostPlatformInfo".into(), "mac".into());
        r.insert("@VersionInfo".into(), "libauthinstall-1104.0.9".into());
        r
    }

    /// `tss_request_add_common_tags`.
    pub fn add_common_tags(r: &mut Dictionary, p: &Dictionary) {
        copy_uint(r, p, "ApECID", None);
        copy_data(r, p, "UniqueBuildID", None);
        copy_uint(r, p, "ApChipID", None);
        copy_uint(r, p, "ApBoardID", None);
        copy_uint(r, p, "ApSecurityDomain", None);
    }

    /// `tss_entry_apply_restore_request_rules`.
    fn apply_restore_request_rules(entry: &mut Dictionary, p: &Dictionary, rules: &Value) {
        let Value::Array(rules) = rules else { return };
        for rule in rules {
            let rule = rule.as_dictionary();
            let conditions = rule
                .and_then(|r| r.get("Conditions"))
                .and_then(Value::as_dictionary);
            let mut fulfilled = true;
            for (key, value) in conditions.into_iter().flatten() {
                let value2 = match key.as_str() {
                    "ApRawProductionMode" | "ApCurrentProductionMode" => p.get("ApProductionMode"),
                    "ApRawSecurityMode" => p.get("ApSecurityMode"),
                    "ApRequiresImage4" => p.get("ApSupportsImg4"),
                    "ApDemotionPolicyOverride" => p.get("DemotionPolicy"),
                    "ApInRomDFU" => p.get("ApInRomDFU"),
                    _ => None,
                };
                // plist_compare_node_value: same type and same value.
                fulfilled = value2.is_some_and(|v2| same_node_value(value, v2));
                if !fulfilled {
                    break;
                }
            }
            if !fulfilled {
                continue;
            }
            let actions = rule
                .and_then(|r| r.get("Actions"))
                .and_then(Value::as_dictionary);
            for (key, value) in actions.into_iter().flatten() {
                if let Value::Boolean(b) = value {
                    entry.insert(key.clone(), Value::Boolean(*b));
                }
            }
        }
    }

    fn same_node_value(a: &Value, b: &Value) -> bool {
        match (a, b) {
            (Value::Boolean(x), Value::Boolean(y)) => x == y,
            (Value::Integer(x), Value::Integer(y)) => x == y,
            (Value::String(x), Value::String(y)) => x == y,
            (Value::Data(x), Value::Data(y)) => x == y,
            _ => false,
        }
    }

    /// `tss_request_add_ap_tags`.
    pub fn add_ap_tags(r: &mut Dictionary, p: &Dictionary) -> Result<(), String> {
        let Some(Value::Dictionary(manifest)) = p.get("Manifest") else {
            return Err("Unable to find restore manifest".into());
        };
        for (key, manifest_entry) in manifest {
            let Value::Dictionary(manifest_entry) = manifest_entry else {
                return Err("Unable to fetch BuildManifest entry".into());
            };
            if [
                "BasebandFirmware",
                "SE,UpdatePayload",
                "BaseSystem",
                "Diags",
                "Ap,ExclaveOS",
            ]
            .contains(&key.as_str())
            {
                continue;
            }
            let Some(info) = manifest_entry.get("Info") else {
                continue;
            };
            let info_dict = info.as_dictionary();
            let has_rules = info_dict.is_some_and(|i| i.get("RestoreRequestRules").is_some());
            let trusted = get_bool(manifest_entry, "Trusted");
            let supports_img4 = get_bool(p, "ApSupportsImg4");
            if supports_img4 && !has_rules && !trusted {
                continue;
            }
            if info_dict.is_some_and(|i| get_bool(i, "IsFTAB")) {
                continue;
            }
            let mut entry = manifest_entry.clone();
            entry.remove("Info");
            if let Some(rules) = info_dict.and_then(|i| i.get("RestoreRequestRules")) {
                apply_restore_request_rules(&mut entry, p, rules);
            } else if supports_img4 {
                copy_bool(&mut entry, p, "EPRO", Some("ApProductionMode"));
                copy_bool(&mut entry, p, "ESEC", Some("ApSecurityMode"));
            }
            if trusted && manifest_entry.get("Digest").is_none() {
                entry.insert("Digest".into(), Value::Data(Vec::new()));
            }
            if entry.is_empty() {
                continue;
            }
            r.insert(key.clone(), Value::Dictionary(entry));
        }
        Ok(())
    }

    /// `tss_request_add_ap_img4_tags`.
    pub fn add_ap_img4_tags(r: &mut Dictionary, p: &Dictionary) -> Result<(), String> {
        for key in AP_STRINGS {
            copy_string(r, p, key);
        }
        if !copy_data(r, p, "ApNonce", None) {
            return Err("Unable to find required ApNonce in parameters".into());
        }
        r.insert("@ApImg4Ticket".into(), Value::Boolean(true));
        if !present(r, "ApSecurityMode") && !copy_bool(r, p, "ApSecurityMode", None) {
            return Err("Unable to find required ApSecurityMode in parameters".into());
        }
        if !present(r, "ApProductionMode") && !copy_bool(r, p, "ApProductionMode", None) {
            return Err("Unable to find required ApProductionMode in parameters".into());
        }
        let sep_from = if present(p, "SepNonce") {
            None
        } else {
            Some("ApSepNonce")
        };
        copy_data(r, p, "SepNonce", sep_from);
        copy_uint(r, p, "NeRDEpoch", None);
        copy_data(r, p, "PearlCertificationRootPub", None);
        copy_bool(r, p, "AllowNeRDBoot", None);
        copy_item(r, p, "PermitNeRDPivot", None);
        if present(p, "UID_MODE") {
            copy_item(r, p, "UID_MODE", None);
        } else if get_bool(p, "RequiresUIDMode") {
            r.insert("UID_MODE".into(), Value::Boolean(false));
        }
        if present(p, "ApSikaFuse") {
            copy_item(r, p, "Ap,SikaFuse", Some("ApSikaFuse"));
        } else if get_bool(p, "RequiresUIDMode") {
            r.insert("Ap,SikaFuse".into(), Value::Integer(0.into()));
        }
        Ok(())
    }

    /// `tss_request_add_ap_img3_tags`.
    pub fn add_ap_img3_tags(r: &mut Dictionary, p: &Dictionary) -> Result<(), String> {
        copy_data(r, p, "ApNonce", None);
        r.insert("@APTicket".into(), Value::Boolean(true));
        for key in ["ApBoardID", "ApChipID", "ApSecurityDomain"] {
            if !copy_uint(r, p, key, None) {
                return Err(format!("Unable to find required {key} in request"));
            }
        }
        if !copy_bool(r, p, "ApProductionMode", None) {
            return Err("Unable to find required ApProductionMode in parameters".into());
        }
        Ok(())
    }
}

/// The device values tsschecker's `tssrequest` gives libtatsu for a device it does not
/// have: `isImg4 = hasSEP || Watch1,*`, which for real identities is "not an S5L chip";
/// `hasSEP` = the identity's Manifest has a `SEP` dictionary.
fn tsschecker_parameters(identity: &Dictionary, device: &RequestDevice) -> Dictionary {
    let chip = libtatsu::get_uint(identity, "ApChipID") as u32;
    let img4 = !is_img3_chip(chip);
    let has_sep = identity
        .get("Manifest")
        .and_then(Value::as_dictionary)
        .and_then(|m| m.get("SEP"))
        .is_some_and(|s| s.as_dictionary().is_some());
    let mut p = Dictionary::new();
    p.insert("ApECID".into(), Value::Integer(device.ecid.into()));
    p.insert("ApNonce".into(), Value::Data(device.ap_nonce.clone()));
    if img4 && has_sep {
        p.insert("ApSepNonce".into(), Value::Data(device.sep_nonce.clone()));
    }
    p.insert("ApProductionMode".into(), true.into());
    if img4 {
        p.insert("ApSecurityMode".into(), true.into());
        p.insert("ApSupportsImg4".into(), true.into());
    } else {
        p.insert("ApSupportsImg4".into(), false.into());
    }
    p
}

/// libtatsu's request for one raw identity, without `@UUID`.
fn libtatsu_request(identity: &Dictionary, device: &RequestDevice) -> Result<Dictionary, String> {
    let chip = libtatsu::get_uint(identity, "ApChipID") as u32;
    let mut params = tsschecker_parameters(identity, device);
    libtatsu::parameters_add_from_manifest(&mut params, identity)?;
    let mut request = libtatsu::request_new();
    libtatsu::add_common_tags(&mut request, &params);
    libtatsu::add_ap_tags(&mut request, &params)?;
    if is_img3_chip(chip) {
        libtatsu::add_ap_img3_tags(&mut request, &params)?;
    } else {
        libtatsu::add_ap_img4_tags(&mut request, &params)?;
    }
    Ok(request)
}

fn device_for(chip: u32) -> RequestDevice {
    RequestDevice {
        ecid: 0x0011_2233_4455_6677,
        ap_nonce: vec![0xAA; ap_nonce_len(chip)],
        sep_nonce: vec![0xBB; SEP_NONCE_LEN],
    }
}

const UUID: &str = "0123ABCD-4567-89EF-0123-456789ABCDEF";

/// Every BuildManifest in ../shared (realdata and data/buildmanifests), sorted.
fn real_manifests() -> Vec<PathBuf> {
    let mut out = Vec::new();
    for rel in ["realdata", "data/buildmanifests"] {
        let Some(root) = util::shared(rel) else {
            return Vec::new();
        };
        collect(&root, &mut out);
    }
    out.sort();
    out
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            collect(&path, out);
        } else if path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with("BuildManifest") && n.ends_with(".plist"))
        {
            out.push(path);
        }
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Array(_) => "array",
        Value::Dictionary(_) => "dict",
        Value::Boolean(_) => "bool",
        Value::Data(_) => "data",
        Value::Date(_) => "date",
        Value::Real(_) => "real",
        Value::Integer(_) => "integer",
        Value::String(_) => "string",
        _ => "other",
    }
}

/// Equal key sets, equal types, equal values; `@UUID` is ours and compared by form.
fn assert_same_request(ours: &Dictionary, theirs: &Dictionary, what: &str) {
    let mut ours = ours.clone();
    assert_eq!(
        ours.remove("@UUID"),
        Some(Value::String(UUID.into())),
        "{what}: @UUID"
    );
    let keys = |d: &Dictionary| d.keys().cloned().collect::<BTreeSet<_>>();
    assert_eq!(keys(&ours), keys(theirs), "{what}: top-level keys");
    for (key, want) in theirs {
        let got = &ours[key];
        assert_eq!(type_name(got), type_name(want), "{what}: type of {key}");
        if let (Value::Dictionary(g), Value::Dictionary(w)) = (got, want) {
            assert_eq!(keys(g), keys(w), "{what}: keys of the {key} entry");
        }
        assert_eq!(got, want, "{what}: {key}");
    }
}

fn identities_raw(path: &Path) -> Vec<Dictionary> {
    let root = Value::from_file(path).unwrap();
    root.as_dictionary().unwrap()["BuildIdentities"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_dictionary().unwrap().clone())
        .collect()
}

#[test]
fn every_real_identity_gets_libtatsus_request() {
    let manifests = real_manifests();
    if manifests.is_empty() {
        return;
    }
    let (mut identities, mut img3, mut with_sep, mut pearl) = (0, 0, 0, 0);
    for path in &manifests {
        let name = path.display().to_string();
        let parsed = BuildManifest::from_bytes(&std::fs::read(path).unwrap()).unwrap();
        let raw = identities_raw(path);
        assert_eq!(parsed.identities.len(), raw.len(), "{name}");
        for (identity, raw) in parsed.identities.iter().zip(&raw) {
            let what = format!("{name} identity {}", identity.index);
            let device = device_for(identity.chip_id.unwrap());
            let theirs = libtatsu_request(raw, &device).unwrap_or_else(|e| panic!("{what}: {e}"));
            let ours = build_tss_request_for(identity, &device, UUID).unwrap();
            assert_same_request(&ours, &theirs, &what);
            identities += 1;
            img3 += usize::from(ours.contains_key("@APTicket"));
            with_sep += usize::from(ours.contains_key("SepNonce"));
            pearl += usize::from(ours.contains_key("PearlCertificationRootPub"));
        }
    }
    eprintln!(
        "{} manifests, {identities} identities ({img3} IMG3, {with_sep} with a SepNonce, \
         {pearl} with PearlCertificationRootPub): every request equals libtatsu's",
        manifests.len()
    );
    // The corpus is what the issue names: 43 manifests, 494 identities (the libtatsu
    // build that checked this reading saw the same counts).
    assert!(manifests.len() >= 43, "{}", manifests.len());
    assert!(identities >= 494 && img3 >= 24 && with_sep >= 61 && pearl >= 200);
}

/// Real facts about real requests, from the manifests themselves (not from our rules).
#[test]
fn real_requests_have_the_published_shape() {
    let Some(path) =
        util::shared("data/buildmanifests/BuildManifest_iPhone_4.7_P3_15.4_19E241.plist")
    else {
        return;
    };
    let m = BuildManifest::from_bytes(&std::fs::read(path).unwrap()).unwrap();
    let d101 = erase(&m, "d101ap");
    let req = build_tss_request_for(d101, &device_for(0x8010), UUID).unwrap();
    // The shared sample request (built libtatsu-style from this identity) has the same keys.
    if let Some(sample) = util::shared("data/tss/sample_request_iPhone9,3_d101ap_15.4_19E241.plist")
    {
        let sample = Value::from_file(sample).unwrap().into_dictionary().unwrap();
        let keys = |d: &Dictionary| d.keys().cloned().collect::<BTreeSet<_>>();
        let missing: Vec<_> = keys(&sample).difference(&keys(&req)).cloned().collect();
        let extra: Vec<_> = keys(&req).difference(&keys(&sample)).cloned().collect();
        eprintln!("sample request vs ours: missing {missing:?}, extra {extra:?}");
        for (name, entry) in &sample {
            if let (Some(Value::Dictionary(s)), Some(Value::Dictionary(o))) =
                (Some(entry), req.get(name))
            {
                assert_eq!(s.get("Digest"), o.get("Digest"), "{name}");
            }
        }
    }
    // iOS 15 on A10: rules make LLB/iBSS/iBEC EPRO and ESEC true for a production device.
    for name in ["LLB", "iBSS", "iBEC", "KernelCache", "SEP"] {
        let entry = req[name].as_dictionary().unwrap();
        assert_eq!(entry.get("EPRO"), Some(&Value::Boolean(true)), "{name}");
        assert_eq!(entry.get("ESEC"), Some(&Value::Boolean(true)), "{name}");
        assert!(!entry.contains_key("Info"), "{name}");
    }
    // No baseband, no SE payload, only libtatsu's Ap,* keys, no ApSupportsImg4.
    for key in req.keys() {
        assert!(!key.starts_with("Bb") && key != "BasebandFirmware" && key != "SE,UpdatePayload");
        assert_ne!(key, "ApSupportsImg4");
    }
    assert_eq!(req.get("ApSecurityMode"), Some(&Value::Boolean(true)));
    assert_eq!(req.get("@ApImg4Ticket"), Some(&Value::Boolean(true)));
    assert_eq!(req["ApChipID"].as_unsigned_integer(), Some(0x8010));
    assert_eq!(req["ApBoardID"].as_unsigned_integer(), Some(0x0C));
}

#[test]
fn img3_requests_carry_no_security_mode_and_no_sep_nonce() {
    let Some(path) = util::shared("realdata/iPhone3,1_7.1.2_11D257/BuildManifest.plist") else {
        return;
    };
    let m = BuildManifest::from_bytes(&std::fs::read(path).unwrap()).unwrap();
    let id = erase(&m, "n90ap");
    let req = build_tss_request_for(id, &device_for(0x8930), UUID).unwrap();
    assert_eq!(req.get("@APTicket"), Some(&Value::Boolean(true)));
    for key in ["@ApImg4Ticket", "ApSecurityMode", "SepNonce"] {
        assert!(!req.contains_key(key), "{key}");
    }
    assert_eq!(req["ApNonce"].as_data().unwrap().len(), 20);
    // IMG3 entries get no EPRO/ESEC.
    for (name, entry) in req
        .iter()
        .filter_map(|(k, v)| Some((k, v.as_dictionary()?)))
    {
        assert!(
            !entry.contains_key("EPRO") && !entry.contains_key("ESEC"),
            "{name}"
        );
    }
}

/// Keys no real manifest here carries (RequiresUIDMode, NeRD) are added to a real
/// identity, and both readings must add exactly libtatsu's keys for them.
#[test]
fn uid_mode_and_nerd_keys_follow_libtatsu() {
    let Some(path) =
        util::shared("realdata/iPhone13,2_iPhone13,3_26.2.1_23C71/BuildManifest.plist")
    else {
        return;
    };
    let mut root = Value::from_file(path).unwrap();
    {
        let ids = root.as_dictionary_mut().unwrap()["BuildIdentities"]
            .as_array_mut()
            .unwrap();
        let id = ids[0].as_dictionary_mut().unwrap();
        id["Info"]
            .as_dictionary_mut()
            .unwrap()
            .insert("RequiresUIDMode".into(), true.into());
        id.insert("NeRDEpoch".into(), "0x02".into());
        id.insert("AllowNeRDBoot".into(), true.into());
        id.insert("Ap,PairedVersionNumber".into(), "1.0".into());
    }
    let mut bytes = Vec::new();
    root.to_writer_xml(&mut bytes).unwrap();
    let m = BuildManifest::from_bytes(&bytes).unwrap();
    let raw = root.as_dictionary().unwrap()["BuildIdentities"]
        .as_array()
        .unwrap()[0]
        .as_dictionary()
        .unwrap()
        .clone();
    let identity: &BuildIdentity = &m.identities[0];
    let device = device_for(identity.chip_id.unwrap());
    let ours = build_tss_request_for(identity, &device, UUID).unwrap();
    assert_same_request(
        &ours,
        &libtatsu_request(&raw, &device).unwrap(),
        "modified 26.2.1",
    );
    assert_eq!(ours.get("UID_MODE"), Some(&Value::Boolean(false)));
    assert_eq!(ours["Ap,SikaFuse"].as_unsigned_integer(), Some(0));
    assert_eq!(ours["NeRDEpoch"].as_unsigned_integer(), Some(2));
    assert_eq!(ours.get("PermitNeRDPivot"), Some(&Value::Data(Vec::new())));
    assert_eq!(ours.get("AllowNeRDBoot"), Some(&Value::Boolean(true)));
    assert!(!ours.contains_key("Ap,PairedVersionNumber"));
    // Without the key (the real file), none of them.
    let real = BuildManifest::from_bytes(
        &std::fs::read(
            util::shared("realdata/iPhone13,2_iPhone13,3_26.2.1_23C71/BuildManifest.plist")
                .unwrap(),
        )
        .unwrap(),
    )
    .unwrap();
    let plain = build_tss_request_for(&real.identities[0], &device, UUID).unwrap();
    for key in ["UID_MODE", "Ap,SikaFuse", "NeRDEpoch", "PermitNeRDPivot"] {
        assert!(!plain.contains_key(key), "{key}");
    }
}

/// tsschecker's nonce-length table (by product type) against our rule (by chip), over
/// every row of the device table: Apple Watch, Apple TV and HomePod included.
#[test]
fn nonce_lengths_follow_tsscheckers_table() {
    const TWENTY: [&str; 24] = [
        "AudioAccessory1,",
        "AppleTV2,",
        "AppleTV3,",
        "AppleTV5,",
        "Watch1,",
        "iPad1,",
        "iPad2,",
        "iPad3,",
        "iPad4,",
        "iPad5,",
        "iPad6,",
        "iPhone1,",
        "iPhone2,",
        "iPhone3,",
        "iPhone4,",
        "iPhone5,",
        "iPhone6,",
        "iPhone7,",
        "iPhone8,",
        "iPod2,",
        "iPod3,",
        "iPod4,",
        "iPod5,",
        "iPod7,",
    ];
    let mut checked = 0;
    for d in ipswcheck::device::all() {
        if d.product_type.starts_with("iPod1,") {
            continue; // never asked about: no TSS before the iPhone 3GS era
        }
        let want = if TWENTY.iter().any(|p| d.product_type.starts_with(p)) {
            20
        } else {
            32
        };
        assert_eq!(
            ap_nonce_len(d.chip_id),
            want,
            "{} ({:#06x})",
            d.product_type,
            d.chip_id
        );
        checked += 1;
    }
    assert!(checked > 300, "{checked}");
}

fn erase<'a>(m: &'a BuildManifest, class: &str) -> &'a BuildIdentity {
    m.identities
        .iter()
        .find(|i| {
            i.info.device_class.as_deref() == Some(class)
                && i.info.restore_behavior.as_deref() == Some("Erase")
        })
        .unwrap_or_else(|| panic!("no Erase identity for {class}"))
}

/// libirecovery's `irecv_load_device_info_from_iboot_string`, read again for the three
/// fields a request needs: `strstr` for the tag, then `sscanf("%x")` (CPID) or
/// `sscanf("%" SCNx64)` (BDID, ECID), stopping at the first non-hex character.
#[cfg(unix)]
fn irecv_cpid_bdid_ecid(serial: &str) -> (u32, u32, u64) {
    let scan = |tag: &str| -> u64 {
        let Some(at) = serial.find(tag) else { return 0 };
        let rest = serial[at + tag.len()..].trim_start();
        let rest = rest.strip_prefix("0x").unwrap_or(rest);
        let end = rest
            .find(|c: char| !c.is_ascii_hexdigit())
            .unwrap_or(rest.len());
        u64::from_str_radix(&rest[..end], 16).unwrap_or(0)
    };
    (scan("CPID:") as u32, scan("BDID:") as u32, scan("ECID:"))
}

/// idevicerestore `get_tss_response` (@405fcd1) for a real device: `ApECID` is the
/// device's (`client->ecid`), `ApNonce` and `ApSepNonce` the device's, production and
/// security modes set, `ApSupportsImg4` for Image4 devices; then libtatsu's tags.
/// (In normal mode idevicerestore also adds baseband tags; ipswcheck asks for the AP
/// ticket only, FIRMWARE.md §4.)
#[cfg(unix)]
fn idevicerestore_request(
    identity: &Dictionary,
    ecid: u64,
    nonce: &[u8],
    sep_nonce: &[u8],
) -> Result<Dictionary, String> {
    let chip = libtatsu::get_uint(identity, "ApChipID") as u32;
    let image4 = !is_img3_chip(chip);
    let mut p = Dictionary::new();
    p.insert("ApECID".into(), Value::Integer(ecid.into()));
    p.insert("ApNonce".into(), Value::Data(nonce.to_vec()));
    let has_sep = identity
        .get("Manifest")
        .and_then(Value::as_dictionary)
        .and_then(|m| m.get("SEP"))
        .is_some_and(|s| s.as_dictionary().is_some());
    // get_sep_nonce: only a device with a SEP has one.
    if image4 && has_sep {
        p.insert("ApSepNonce".into(), Value::Data(sep_nonce.to_vec()));
    }
    p.insert("ApProductionMode".into(), true.into());
    if image4 {
        p.insert("ApSecurityMode".into(), true.into());
        p.insert("ApSupportsImg4".into(), true.into());
    } else {
        p.insert("ApSupportsImg4".into(), false.into());
    }
    libtatsu::parameters_add_from_manifest(&mut p, identity)?;
    let mut request = libtatsu::request_new();
    libtatsu::add_common_tags(&mut request, &p);
    libtatsu::add_ap_tags(&mut request, &p)?;
    if image4 {
        libtatsu::add_ap_img4_tags(&mut request, &p)?;
    } else {
        libtatsu::add_ap_img3_tags(&mut request, &p)?;
    }
    Ok(request)
}

/// For real devices (real serial strings) and real manifests: the personalized request
/// is idevicerestore's for that device, key for key — with the nonces the user gave, and
/// apart from the nonces when they are random.
#[cfg(unix)]
#[test]
fn a_real_devices_personal_request_is_idevicerestores() {
    use crate::util::usb::{
        DFU_IPHONE6, DFU_IPHONE6S_TSMC, DFU_IPHONE7_GSM, RECOVERY_IPHONE6S,
        RECOVERY_IPHONE6S_NONCES,
    };
    use ipswcheck::signing::tss::PersonalDevice;
    use ipswcheck::usb::serial;

    let cases = [
        (
            DFU_IPHONE7_GSM,
            None,
            "data/buildmanifests/BuildManifest_iPhone_4.7_P3_15.4_19E241.plist",
            0x001A_4036_2045_E526u64,
        ),
        (
            RECOVERY_IPHONE6S,
            Some(RECOVERY_IPHONE6S_NONCES),
            "realdata/iPhone8,1_15.7_19H12/BuildManifest.plist",
            0x0000_0575_2935_F194,
        ),
        (
            DFU_IPHONE6S_TSMC,
            None,
            "realdata/iPhone8,1_15.7_19H12/BuildManifest.plist",
            0x0002_64D4_10FB_0226,
        ),
        (
            DFU_IPHONE6,
            None,
            "realdata/iPhone7,2_8.4.1_12H321/BuildManifest.plist",
            0x0011_7120_1046_E026,
        ),
    ];
    let mut compared = 0;
    for (text, nonces, manifest, ecid_literal) in cases {
        let Some(path) = util::shared(manifest) else {
            continue;
        };
        let parsed = BuildManifest::from_bytes(&std::fs::read(&path).unwrap()).unwrap();
        let raw = identities_raw(&path);
        let (cpid, bdid, their_ecid) = irecv_cpid_bdid_ecid(text);
        assert_eq!(their_ecid, ecid_literal, "{text}");
        // The identity a restore of this device uses: its chip and board, Erase.
        let index = parsed
            .identities
            .iter()
            .position(|i| {
                i.chip_id == Some(cpid)
                    && i.board_id == Some(bdid)
                    && i.info.restore_behavior.as_deref() == Some("Erase")
            })
            .unwrap_or_else(|| panic!("{manifest}: no Erase identity for {cpid:#x}/{bdid:#x}"));
        let identity = &parsed.identities[index];
        // The device's nonces: recorded ones when there are, else ones "the user gave".
        let info = serial::parse(text);
        let from_device = nonces.map(serial::parse);
        let ap_nonce = from_device
            .as_ref()
            .and_then(|n| n.ap_nonce.clone())
            .unwrap_or_else(|| vec![0x5A; ap_nonce_len(cpid)]);
        let sep_nonce = from_device
            .as_ref()
            .and_then(|n| n.sep_nonce.clone())
            .unwrap_or_else(|| vec![0xC3; SEP_NONCE_LEN]);
        let given = PersonalDevice {
            ecid: info.ecid.unwrap(),
            ap_nonce: Some(ap_nonce.clone()),
            sep_nonce: Some(sep_nonce.clone()),
            kind: "iPhone".into(),
        };
        let theirs = idevicerestore_request(&raw[index], their_ecid, &ap_nonce, &sep_nonce)
            .unwrap_or_else(|e| panic!("{text}: {e}"));
        let device = RequestDevice::personal_for(identity, &given).unwrap();
        let ours = build_tss_request_for(identity, &device, UUID).unwrap();
        assert_same_request(&ours, &theirs, text);
        assert_eq!(ours["ApECID"].as_unsigned_integer(), Some(ecid_literal));

        // Nonces not given: random ones of the chip's lengths; everything else equal.
        let random = PersonalDevice {
            ap_nonce: None,
            sep_nonce: None,
            ..given.clone()
        };
        let device = RequestDevice::personal_for(identity, &random).unwrap();
        let mut ours = build_tss_request_for(identity, &device, UUID).unwrap();
        assert_eq!(
            ours["ApNonce"].as_data().unwrap().len(),
            ap_nonce.len(),
            "{text}"
        );
        assert_ne!(ours["ApNonce"].as_data().unwrap(), &ap_nonce[..], "{text}");
        ours.insert("ApNonce".into(), Value::Data(ap_nonce.clone()));
        if let Some(Value::Data(sep)) = ours.get("SepNonce") {
            assert_eq!(sep.len(), SEP_NONCE_LEN);
            ours.insert("SepNonce".into(), Value::Data(sep_nonce.clone()));
        }
        assert_same_request(&ours, &theirs, &format!("{text} (random nonces)"));
        compared += 1;
    }
    eprintln!("{compared} real devices: personal requests equal idevicerestore's");
    if util::shared("realdata").is_some() {
        assert_eq!(compared, 4);
    }
}
