//! A minimal, read-only usbmuxd + lockdownd client: which iPhone is this, and which iOS
//! does it run?
//!
//! In normal mode the USB serial string is only the UDID. usbmuxd (the daemon Finder,
//! iTunes and libimobiledevice share, `/var/run/usbmuxd` on macOS and Linux) relays a
//! connection to the device's lockdownd on port 62078, which answers `GetValue` for
//! ProductType, HardwareModel, ProductVersion, BuildVersion and UniqueChipID (the ECID)
//! without a pairing session — what `ideviceinfo -s` shows. We never pair, never start a
//! session, never write. The wire format is usbmuxd's plist protocol (a 16-byte
//! little-endian header: length, version 1, message 8, tag; then an XML plist) and
//! lockdownd's (a 32-bit big-endian length, then an XML plist), as libusbmuxd's
//! `usbmuxd_get_device_list`/`usbmuxd_connect` and libimobiledevice's
//! `lockdownd_get_value` speak them.
//!
//! Hand-written instead of a crate: the maintained Rust crate for this (`idevice` 0.1.68)
//! is async (tokio is a required dependency, its `usbmuxd` feature adds `tokio/net` and
//! `futures`) and its default feature builds aws-lc for the TLS of paired sessions, which
//! a read-only check never opens; this is ~300 lines on std and the plist crate we have.
//! (Its build cost was not measured here.)
//! Windows' Apple Mobile Device Service listens on TCP 27015 instead: not supported (the
//! device is then "connected, in normal mode").

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use plist::{Dictionary, Value};
use serde::Serialize;

/// Test-only: the usbmuxd socket to use instead of `/var/run/usbmuxd` (a fake server in
/// the tests).
pub const SOCKET_ENV: &str = "IPSWCHECK_USBMUXD_SOCKET";

/// lockdownd's port, as usbmuxd wants it: in network byte order inside the integer.
const LOCKDOWN_PORT: u16 = 62078;

/// Largest message read from usbmuxd or lockdownd (real ones are a few kB).
const MAX_MESSAGE: u32 = 1 << 20;

/// How long one read or write may wait: a device that does not answer is "unknown".
const IO_TIMEOUT: Duration = Duration::from_secs(3);

/// What lockdownd told us.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct LockdownInfo {
    pub product_type: Option<String>,
    pub hardware_model: Option<String>,
    pub product_version: Option<String>,
    pub build_version: Option<String>,
    pub unique_chip_id: Option<u64>,
    pub udid: Option<String>,
}

impl LockdownInfo {
    /// The ECID: UniqueChipID, or — when lockdownd does not give it — the second half of
    /// a UDID of the A12-and-later form `CCCCCCCC-EEEEEEEEEEEEEEEE` (chip id, ECID).
    pub fn ecid(&self) -> Option<u64> {
        self.unique_chip_id.or_else(|| {
            let (chip, ecid) = self.udid.as_deref()?.split_once('-')?;
            (chip.len() == 8 && ecid.len() == 16)
                .then(|| u64::from_str_radix(ecid, 16).ok())
                .flatten()
        })
    }
}

/// Why lockdownd could not be asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LockdownError {
    #[error("usbmuxd is not running ({0})")]
    NoUsbmuxd(String),
    #[error("usbmuxd: {0}")]
    Usbmuxd(String),
    #[error("usbmuxd does not list this device")]
    NotListed,
    #[error("lockdownd: {0}")]
    Lockdown(String),
    #[error("not supported on this platform")]
    Unsupported,
}

/// `IPSWCHECK_USBMUXD_SOCKET` (test-only), else `/var/run/usbmuxd`.
pub fn socket_path() -> PathBuf {
    std::env::var_os(SOCKET_ENV)
        .filter(|p| !p.is_empty())
        .map_or_else(|| PathBuf::from("/var/run/usbmuxd"), PathBuf::from)
}

/// Ask the device whose USB serial is `usb_serial` (the UDID, with or without its
/// hyphen; any device when `None` and only one is listed) for its model and iOS version.
#[cfg(unix)]
pub fn query(socket: &Path, usb_serial: Option<&str>) -> Result<LockdownInfo, LockdownError> {
    let id = find_device(socket, usb_serial)?;
    let mut stream = connect(socket)?;
    let reply = mux_request(
        &mut stream,
        1,
        &[
            ("MessageType", Value::from("Connect")),
            ("DeviceID", Value::Integer(id.into())),
            (
                "PortNumber",
                Value::Integer(LOCKDOWN_PORT.swap_bytes().into()),
            ),
        ],
    )?;
    match reply.get("Number").and_then(Value::as_unsigned_integer) {
        Some(0) => {}
        other => {
            return Err(LockdownError::Usbmuxd(format!(
                "could not connect to lockdownd (result {})",
                other.map_or("missing".to_owned(), |n| n.to_string())
            )))
        }
    }
    let mut info = LockdownInfo::default();
    let mut text = |key: &str| -> Result<Option<String>, LockdownError> {
        Ok(get_value(&mut stream, key)?.and_then(|v| v.into_string()))
    };
    info.product_type = text("ProductType")?;
    info.hardware_model = text("HardwareModel")?;
    info.product_version = text("ProductVersion")?;
    info.build_version = text("BuildVersion")?;
    info.udid = text("UniqueDeviceID")?;
    info.unique_chip_id =
        get_value(&mut stream, "UniqueChipID")?.and_then(|v| v.as_unsigned_integer());
    Ok(info)
}

#[cfg(not(unix))]
pub fn query(_socket: &Path, _usb_serial: Option<&str>) -> Result<LockdownInfo, LockdownError> {
    Err(LockdownError::Unsupported)
}

#[cfg(unix)]
fn connect(socket: &Path) -> Result<std::os::unix::net::UnixStream, LockdownError> {
    let stream = std::os::unix::net::UnixStream::connect(socket)
        .map_err(|e| LockdownError::NoUsbmuxd(format!("{}: {e}", socket.display())))?;
    let _ = stream.set_read_timeout(Some(IO_TIMEOUT));
    let _ = stream.set_write_timeout(Some(IO_TIMEOUT));
    Ok(stream)
}

/// usbmuxd's DeviceID for the USB device with this serial.
#[cfg(unix)]
fn find_device(socket: &Path, usb_serial: Option<&str>) -> Result<u64, LockdownError> {
    let mut stream = connect(socket)?;
    let reply = mux_request(
        &mut stream,
        0,
        &[("MessageType", Value::from("ListDevices"))],
    )?;
    let list = reply
        .get("DeviceList")
        .and_then(Value::as_array)
        .ok_or_else(|| LockdownError::Usbmuxd("no DeviceList in its answer".into()))?;
    let normalize = |s: &str| s.replace('-', "").to_ascii_uppercase();
    let usb: Vec<(u64, Option<String>)> = list
        .iter()
        .filter_map(Value::as_dictionary)
        .filter_map(|d| d.get("Properties").and_then(Value::as_dictionary))
        .filter(|p| p.get("ConnectionType").and_then(Value::as_string) == Some("USB"))
        .filter_map(|p| {
            let id = p.get("DeviceID")?.as_unsigned_integer()?;
            let serial = p
                .get("USBSerialNumber")
                .or_else(|| p.get("SerialNumber"))
                .and_then(Value::as_string)
                .map(normalize);
            Some((id, serial))
        })
        .collect();
    match usb_serial {
        Some(wanted) => usb
            .iter()
            .find(|(_, s)| s.as_deref() == Some(normalize(wanted).as_str()))
            .map(|(id, _)| *id)
            .ok_or(LockdownError::NotListed),
        None if usb.len() == 1 => Ok(usb[0].0),
        None => Err(LockdownError::NotListed),
    }
}

/// One usbmuxd plist request and its answer.
#[cfg(unix)]
fn mux_request(
    stream: &mut std::os::unix::net::UnixStream,
    tag: u32,
    fields: &[(&str, Value)],
) -> Result<Dictionary, LockdownError> {
    let err = |e: String| LockdownError::Usbmuxd(e);
    let mut dict = Dictionary::new();
    for (k, v) in fields {
        dict.insert((*k).into(), v.clone());
    }
    dict.insert("ClientVersionString".into(), "ipswcheck".into());
    dict.insert("ProgName".into(), "ipswcheck".into());
    dict.insert("kLibUSBMuxVersion".into(), Value::Integer(3.into()));
    let body = to_xml(dict);
    let mut frame = Vec::with_capacity(16 + body.len());
    for word in [16 + body.len() as u32, 1, 8, tag] {
        frame.extend_from_slice(&word.to_le_bytes());
    }
    frame.extend_from_slice(&body);
    stream.write_all(&frame).map_err(|e| err(e.to_string()))?;
    let mut header = [0u8; 16];
    stream
        .read_exact(&mut header)
        .map_err(|e| err(format!("no answer: {e}")))?;
    let len = u32::from_le_bytes(header[0..4].try_into().expect("4 bytes"));
    if !(16..=MAX_MESSAGE).contains(&len) {
        return Err(err(format!("an answer of {len} bytes")));
    }
    let mut body = vec![0u8; len as usize - 16];
    stream
        .read_exact(&mut body)
        .map_err(|e| err(format!("a cut answer: {e}")))?;
    from_plist(&body).map_err(err)
}

/// lockdownd `GetValue` for one key; `None` when it answers with an error (a key it gives
/// only to a paired host).
#[cfg(unix)]
fn get_value(
    stream: &mut std::os::unix::net::UnixStream,
    key: &str,
) -> Result<Option<Value>, LockdownError> {
    let err = |e: String| LockdownError::Lockdown(e);
    let mut dict = Dictionary::new();
    dict.insert("Label".into(), "ipswcheck".into());
    dict.insert("Request".into(), "GetValue".into());
    dict.insert("Key".into(), key.into());
    let body = to_xml(dict);
    let mut frame = (body.len() as u32).to_be_bytes().to_vec();
    frame.extend_from_slice(&body);
    stream.write_all(&frame).map_err(|e| err(e.to_string()))?;
    let mut len = [0u8; 4];
    stream
        .read_exact(&mut len)
        .map_err(|e| err(format!("no answer: {e}")))?;
    let len = u32::from_be_bytes(len);
    if len > MAX_MESSAGE {
        return Err(err(format!("an answer of {len} bytes")));
    }
    let mut body = vec![0u8; len as usize];
    stream
        .read_exact(&mut body)
        .map_err(|e| err(format!("a cut answer: {e}")))?;
    let reply = from_plist(&body).map_err(err)?;
    if reply.contains_key("Error") {
        return Ok(None);
    }
    Ok(reply.get("Value").cloned())
}

fn to_xml(dict: Dictionary) -> Vec<u8> {
    let mut out = Vec::new();
    Value::Dictionary(dict)
        .to_writer_xml(&mut out)
        .expect("writing a small plist to memory");
    out
}

fn from_plist(bytes: &[u8]) -> Result<Dictionary, String> {
    crate::manifest::read_plist_bounded(bytes)
        .map_err(|e| format!("an answer that is not a plist: {e}"))?
        .into_dictionary()
        .ok_or_else(|| "an answer that is not a dictionary".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ecid_from_udid_only_in_the_new_form() {
        let info = |udid: &str| LockdownInfo {
            udid: Some(udid.into()),
            ..LockdownInfo::default()
        };
        assert_eq!(
            info("00008020-001A2B3C4D5E6F70").ecid(),
            Some(0x001A_2B3C_4D5E_6F70)
        );
        assert_eq!(
            info("0123456789abcdef0123456789abcdef01234567").ecid(),
            None
        );
        let both = LockdownInfo {
            unique_chip_id: Some(7),
            ..info("00008020-001A2B3C4D5E6F70")
        };
        assert_eq!(both.ecid(), Some(7));
    }
}
