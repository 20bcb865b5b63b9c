//! ipsw.me v4: a second opinion on signing, and Apple's whole-file SHA-1 for a build.
//!
//! ipsw.me polls Apple and republishes a `signed` flag per build; it lags Apple by minutes
//! to hours, so it never decides a verdict — TSS does. What it adds: a remark when it
//! disagrees, the list of builds it believes signed for a device (when there is no file
//! to check), and `sha1sum`, the SHA-1 Apple published for the whole IPSW, which is the
//! usual way to check a download.

use serde::{Deserialize, Serialize};

use super::http::Http;
use super::{SigningError, SigningOptions, SigningSession};

/// One firmware of `GET /v4/device/{identifier}?type=ipsw`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IpswMeFirmware {
    /// The product type, e.g. `iPhone9,3`.
    pub identifier: String,
    /// e.g. `15.4`.
    pub version: String,
    /// e.g. `19E241`.
    pub buildid: String,
    #[serde(default)]
    pub sha1sum: Option<String>,
    #[serde(default)]
    pub md5sum: Option<String>,
    #[serde(default)]
    pub sha256sum: Option<String>,
    #[serde(default)]
    pub filesize: Option<u64>,
    #[serde(default)]
    pub url: Option<String>,
    #[serde(default)]
    pub releasedate: Option<String>,
    #[serde(default)]
    pub uploaddate: Option<String>,
    /// ipsw.me's belief, not Apple's answer.
    pub signed: bool,
}

impl IpswMeFirmware {
    /// `sha1sum` as 20 bytes, when it is 40 hex digits.
    pub fn sha1(&self) -> Option<Vec<u8>> {
        decode_hex(self.sha1sum.as_deref()?.trim()).filter(|b| b.len() == 20)
    }
}

fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if text.len() % 2 != 0 || !text.is_ascii() {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).ok())
        .collect()
}

/// Product types are like `iPhone9,3`, `iPad6,11`, `AppleTV5,3`: letters, digits, one
/// comma. Anything else is refused before it becomes part of a URL path.
pub(crate) fn validate_product_type(product_type: &str) -> Result<(), SigningError> {
    let ok = !product_type.is_empty()
        && product_type.len() <= 32
        && product_type
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == ',');
    if ok {
        Ok(())
    } else {
        Err(SigningError::InvalidProductType(product_type.to_owned()))
    }
}

#[derive(Deserialize)]
struct DeviceBody {
    #[serde(default)]
    firmwares: Vec<serde_json::Value>,
}

/// The firmwares of an ipsw.me device body. One malformed entry is skipped rather than
/// failing the whole list.
pub fn parse_device_firmwares(body: &[u8]) -> Result<Vec<IpswMeFirmware>, String> {
    let device: DeviceBody = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    Ok(device
        .firmwares
        .into_iter()
        .filter_map(|fw| serde_json::from_value(fw).ok())
        .collect())
}

/// `GET {api}/device/{product_type}?type=ipsw`.
pub(crate) fn fetch_device(
    http: &Http,
    product_type: &str,
    opts: &SigningOptions,
) -> Result<Vec<IpswMeFirmware>, SigningError> {
    validate_product_type(product_type)?;
    let url = format!(
        "{}/device/{product_type}?type=ipsw",
        opts.api_url.trim_end_matches('/')
    );
    let headers = [
        ("Accept", "application/json"),
        (
            "User-Agent",
            concat!("ipswcheck/", env!("CARGO_PKG_VERSION")),
        ),
    ];
    let reply = http.get(&url, &headers, opts.timeout)?;
    if reply.status != 200 {
        return Err(SigningError::HttpStatus {
            url,
            status: reply.status,
        });
    }
    parse_device_firmwares(&reply.body).map_err(|reason| SigningError::BadJson { url, reason })
}

/// ipsw.me's entry for `build` of `product_type`; `Ok(None)` when it lists no such build.
pub fn ipswme_firmware(
    product_type: &str,
    build: &str,
    opts: &SigningOptions,
) -> Result<Option<IpswMeFirmware>, SigningError> {
    SigningSession::new(opts.clone()).ipswme_firmware(product_type, build)
}

/// The builds ipsw.me reports signed for `product_type`, newest first as ipsw.me lists
/// them. This is ipsw.me's word, not Apple's: say so when showing it.
pub fn signed_builds(
    product_type: &str,
    opts: &SigningOptions,
) -> Result<Vec<IpswMeFirmware>, SigningError> {
    let mut list = SigningSession::new(opts.clone()).ipswme_firmwares(product_type)?;
    list.retain(|fw| fw.signed);
    Ok(list)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_v4_device_body_leniently() {
        let body = br#"{"name":"iPhone 7","identifier":"iPhone9,3","boards":[{"boardconfig":"d101ap","platform":"t8010","cpid":32784,"bdid":12}],
          "firmwares":[
            {"identifier":"iPhone9,3","version":"15.4","buildid":"19E241","sha1sum":"0123456789abcdef0123456789ABCDEF01234567","md5sum":"x","sha256sum":null,"filesize":5000000000,"url":"https://updates.cdn-apple.com/x.ipsw","releasedate":"2022-03-14T17:00:00Z","uploaddate":"2022-03-14T17:00:00Z","signed":false},
            {"identifier":"iPhone9,3","version":"15.7","buildid":"19H12","signed":true},
            {"identifier":"iPhone9,3","buildid":"broken"}
          ]}"#;
        let list = parse_device_firmwares(body).unwrap();
        assert_eq!(list.len(), 2);
        assert_eq!(list[0].buildid, "19E241");
        assert_eq!(list[0].filesize, Some(5_000_000_000));
        assert_eq!(list[0].sha1().unwrap()[..2], [0x01, 0x23]);
        assert!(list[1].signed && list[1].sha1().is_none());
        assert!(parse_device_firmwares(b"<html>").is_err());
    }

    #[test]
    fn product_types_are_checked_before_use_in_a_url() {
        assert!(validate_product_type("iPhone9,3").is_ok());
        assert!(validate_product_type("iPad6,11").is_ok());
        for bad in ["", "../x", "iPhone9,3?type=x", "iPhone 9", "é"] {
            assert!(validate_product_type(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn hex_decoding_rejects_junk() {
        assert_eq!(decode_hex("00ff"), Some(vec![0, 255]));
        assert_eq!(decode_hex("0g"), None);
        assert_eq!(decode_hex("abc"), None);
        assert_eq!(decode_hex("éé"), None);
    }
}
