//! Stand-ins for Apple's TSS server and ipsw.me (the one loopback server of
//! [`super::http`], under the name the signing tests use), the answers they give, and
//! manifests to ask about.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

use ipswcheck::manifest::BuildManifest;
use ipswcheck::signing::SigningOptions;
use plist::{Dictionary, Value};

pub use super::http::{
    plain_http_responder, refused_addr, Reply, Server as FakeServer, SilentServer,
};
pub use super::shared;

/// Options pointing at `tss_url`/`api_url`, with an empty hosts file and the given cache.
pub fn options(tss_url: String, api_url: String, cache_dir: Option<&Path>) -> SigningOptions {
    SigningOptions {
        offline: false,
        tss_url,
        api_url,
        timeout: std::time::Duration::from_secs(5),
        cache_dir: cache_dir.map(Path::to_path_buf),
        refresh: false,
        hosts_file: PathBuf::from("/nonexistent/ipswcheck-test/hosts"),
        ..SigningOptions::default()
    }
}

pub fn server_options(server: &FakeServer, cache_dir: Option<&Path>) -> SigningOptions {
    options(server.tss_url(), server.api_url(), cache_dir)
}

pub const TICKET_PLIST: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
<!DOCTYPE plist PUBLIC \"-//Apple//DTD PLIST 1.0//EN\" \"http://www.apple.com/DTDs/PropertyList-1.0.dtd\">\n\
<plist version=\"1.0\">\n<dict>\n\t<key>ApImg4Ticket</key>\n\t<data>MIIKbDADFgFJMIIKYw==</data>\n</dict>\n</plist>\n";

/// `STATUS=0&MESSAGE=SUCCESS&REQUEST_STRING=<ticket plist>`.
pub fn signed_body() -> String {
    format!("STATUS=0&MESSAGE=SUCCESS&REQUEST_STRING={TICKET_PLIST}")
}

/// `STATUS=<code>&MESSAGE=<message>`.
pub fn status_body(code: i64, message: &str) -> String {
    format!("STATUS={code}&MESSAGE={message}")
}

pub const NOT_ELIGIBLE: &str = "This device isn't eligible for the requested build.";

/// An ipsw.me v4 device body listing `build` with the given flag and SHA-1, plus another.
pub fn ipswme_body(product_type: &str, build: &str, signed: bool, sha1: &str) -> String {
    serde_json::json!({
        "name": "iPhone 7",
        "identifier": product_type,
        "boards": [{"boardconfig": "d101ap", "platform": "t8010", "cpid": 32784, "bdid": 12}],
        "firmwares": [
            {"identifier": product_type, "version": "15.8", "buildid": "19H370",
             "sha1sum": "ffffffffffffffffffffffffffffffffffffffff", "md5sum": "00", "sha256sum": "00",
             "filesize": 5_000_000_000u64, "url": "https://updates.cdn-apple.com/x.ipsw",
             "releasedate": "2023-01-23T18:00:00Z", "uploaddate": "2023-01-23T18:00:00Z", "signed": true},
            {"identifier": product_type, "version": "15.4", "buildid": build,
             "sha1sum": sha1, "md5sum": "00", "sha256sum": "00",
             "filesize": 4_900_000_000u64, "url": "https://updates.cdn-apple.com/y.ipsw",
             "releasedate": "2022-03-14T17:00:00Z", "uploaddate": "2022-03-14T17:00:00Z", "signed": signed}
        ]
    })
    .to_string()
}

pub fn shared_manifest(rel: &str) -> Option<BuildManifest> {
    let bytes = std::fs::read(shared(rel)?).unwrap();
    Some(BuildManifest::from_bytes(&bytes).expect("a real manifest parses"))
}

/// A small manifest for `product_type` with one Erase identity per board
/// `(device_class, chip_id, board_id)`. Its components exercise every rule of the request
/// builder: what goes in, what is skipped, and the empty Digest of a Trusted entry.
pub fn synthetic_manifest(
    build: &str,
    product_type: &str,
    boards: &[(&str, u32, u32)],
) -> BuildManifest {
    let component = |digest: Option<u8>, trusted: Option<bool>, info: Dictionary| {
        let mut d = Dictionary::new();
        if let Some(b) = digest {
            d.insert("Digest".into(), Value::Data(vec![b; 48]));
        }
        if let Some(t) = trusted {
            d.insert("Trusted".into(), t.into());
        }
        d.insert("Info".into(), Value::Dictionary(info));
        Value::Dictionary(d)
    };
    let info = |path: Option<&str>, rules: bool, ftab: bool| {
        let mut i = Dictionary::new();
        if let Some(p) = path {
            i.insert("Path".into(), p.into());
        }
        if rules {
            // The two rules real boot-chain entries carry (iOS 15 manifests): EPRO and
            // ESEC set for a production, secure device that requires Image4.
            let rule = |condition: &str, action: &str| {
                let mut conditions = Dictionary::new();
                conditions.insert(condition.into(), true.into());
                conditions.insert("ApRequiresImage4".into(), true.into());
                let mut actions = Dictionary::new();
                actions.insert(action.into(), true.into());
                let mut r = Dictionary::new();
                r.insert("Conditions".into(), Value::Dictionary(conditions));
                r.insert("Actions".into(), Value::Dictionary(actions));
                Value::Dictionary(r)
            };
            i.insert(
                "RestoreRequestRules".into(),
                Value::Array(vec![
                    rule("ApRawProductionMode", "EPRO"),
                    rule("ApRawSecurityMode", "ESEC"),
                ]),
            );
        }
        if ftab {
            i.insert("IsFTAB".into(), true.into());
        }
        i
    };
    let identities = boards
        .iter()
        .enumerate()
        .map(|(n, (class, chip, board))| {
            let mut m = Dictionary::new();
            let mut ibss = component(
                Some(1),
                Some(true),
                info(Some("Firmware/dfu/iBSS.im4p"), true, false),
            );
            ibss.as_dictionary_mut()
                .unwrap()
                .insert("BuildString".into(), "iBoot-7459.102.5~1".into());
            m.insert("iBSS".into(), ibss);
            m.insert(
                "SEP".into(),
                component(Some(10), Some(true), info(Some("sep.im4p"), true, false)),
            );
            m.insert(
                "OS".into(),
                component(Some(2), Some(true), info(Some("os.dmg"), false, false)),
            );
            m.insert(
                "AOP".into(),
                component(Some(3), Some(false), info(Some("aop.im4p"), true, false)),
            );
            m.insert(
                "ftap".into(),
                component(None, Some(true), info(None, true, false)),
            );
            m.insert(
                "Diags".into(),
                component(Some(4), Some(true), info(Some("diag.im4p"), true, false)),
            );
            m.insert(
                "BaseSystem".into(),
                component(Some(5), Some(true), info(Some("bs.dmg"), true, false)),
            );
            m.insert(
                "Ap,ExclaveOS".into(),
                component(Some(6), Some(true), info(Some("x.im4p"), true, false)),
            );
            m.insert(
                "SE,UpdatePayload".into(),
                component(Some(7), Some(true), info(Some("se.bin"), true, false)),
            );
            m.insert(
                "Rap,RTKitOS".into(),
                component(Some(8), Some(true), info(Some("ftab.bin"), true, true)),
            );
            m.insert(
                "Loose".into(),
                component(Some(9), None, info(Some("loose.bin"), false, false)),
            );
            let mut bb = Dictionary::new();
            bb.insert("PSI-PartialDigest".into(), Value::Data(vec![0; 28]));
            bb.insert(
                "Info".into(),
                Value::Dictionary(info(Some("bb.bbfw"), false, false)),
            );
            m.insert("BasebandFirmware".into(), Value::Dictionary(bb));

            let mut id = Dictionary::new();
            id.insert("ApChipID".into(), format!("{chip:#06x}").into());
            id.insert("ApBoardID".into(), format!("{board:#04x}").into());
            id.insert("ApSecurityDomain".into(), "0x01".into());
            id.insert("UniqueBuildID".into(), Value::Data(vec![n as u8 + 1; 20]));
            id.insert("Ap,OSLongVersion".into(), format!("15.4.{build}").into());
            id.insert("BbChipID".into(), Value::Integer(0x1a0e1u64.into()));
            id.insert(
                "BbProvisioningManifestKeyHash".into(),
                Value::Data(vec![1; 32]),
            );
            let mut idinfo = Dictionary::new();
            idinfo.insert("DeviceClass".into(), (*class).into());
            idinfo.insert("RestoreBehavior".into(), "Erase".into());
            idinfo.insert("Variant".into(), "Customer Erase Install (IPSW)".into());
            id.insert("Info".into(), Value::Dictionary(idinfo));
            id.insert("Manifest".into(), Value::Dictionary(m));
            Value::Dictionary(id)
        })
        .collect();
    let mut root = Dictionary::new();
    root.insert("ProductVersion".into(), "15.4".into());
    root.insert("ProductBuildVersion".into(), build.into());
    root.insert(
        "SupportedProductTypes".into(),
        Value::Array(vec![product_type.into()]),
    );
    root.insert("BuildIdentities".into(), Value::Array(identities));
    let mut xml = Vec::new();
    Value::Dictionary(root).to_writer_xml(&mut xml).unwrap();
    BuildManifest::from_bytes(&xml).expect("the synthetic manifest parses")
}
