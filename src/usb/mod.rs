//! The iPhone/iPad on the cable: which one, in which mode, and over what kind of link.
//!
//! Read-only, and without claiming the device: the listing comes from what the operating
//! system already knows about every USB device (vendor and product id, the serial-number
//! string it read at enumeration, the negotiated speed, the chain of hub ports), through a
//! [`UsbSource`]. The real source is nusb ([`nusb_source`], feature `usb`); tests and
//! `IPSWCHECK_USB_FIXTURE` (test-only) use a recorded JSON list ([`JsonSource`]).
//!
//! - **Recovery / DFU** ([`modes`]): iBoot and the SecureROM put `CPID:… BDID:… ECID:…`
//!   in the serial-number string ([`serial`]); CPID + BDID name the board in the device
//!   table (libirecovery's), so the product type, board and ECID are known exactly.
//! - **Normal mode**: the serial string is only the UDID. When usbmuxd runs, lockdownd
//!   answers ProductType, HardwareModel, ProductVersion and UniqueChipID ([`lockdown`]);
//!   otherwise the device is named "connected, in normal mode" and the user is asked to
//!   put it in Recovery or to name it with `--device`.
//! - **The link** ([`link`]): the speed the port negotiated and the hubs between the
//!   device and the computer — what ipswcheck can see of the causes of errors
//!   4013/4014/4005.

pub mod link;
pub mod lockdown;
pub mod modes;
#[cfg(feature = "usb")]
pub mod nusb_source;
pub mod serial;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::device::{self, Device};
pub use modes::{Mode, APPLE_VENDOR_ID};
pub use serial::SerialInfo;

/// The USB class of a hub.
pub const HUB_CLASS: u8 = 0x09;

/// The environment variable that replaces the real USB listing by a recorded JSON one.
/// Test-only (README "With the device plugged in"): it lets the integration tests and a
/// bug report replay a listing without hardware.
pub const FIXTURE_ENV: &str = "IPSWCHECK_USB_FIXTURE";

/// Most devices a listing may hold: far more than any machine has, few enough that a
/// hostile fixture cannot make the hub search quadratic in anything large.
const MAX_ENTRIES: usize = 4096;

/// The speed a USB port negotiated with the device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Speed {
    /// 1.5 Mbit/s.
    Low,
    /// 12 Mbit/s (USB 1.1).
    Full,
    /// 480 Mbit/s (USB 2.0): what an iPhone negotiates on a good cable and port.
    High,
    /// 5 Gbit/s.
    Super,
    /// 10 Gbit/s or more.
    SuperPlus,
}

impl Speed {
    pub fn describe(self) -> &'static str {
        match self {
            Speed::Low => "low speed (1.5 Mbit/s)",
            Speed::Full => "full speed (12 Mbit/s)",
            Speed::High => "high speed (480 Mbit/s)",
            Speed::Super => "SuperSpeed (5 Gbit/s)",
            Speed::SuperPlus => "SuperSpeed+ (10 Gbit/s)",
        }
    }
}

/// One USB device as the operating system lists it, read without opening it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsbEntry {
    /// The bus (controller) it hangs off: `1` on Linux, a location on macOS/Windows.
    pub bus: String,
    /// Port numbers from the root port to the device: one per tier, so a device behind
    /// one hub has two.
    pub port_chain: Vec<u8>,
    pub vendor_id: u16,
    pub product_id: u16,
    /// Device class (9 = hub).
    #[serde(default)]
    pub class: u8,
    #[serde(default)]
    pub speed: Option<Speed>,
    /// The serial-number string the OS cached (iBoot's `CPID:…` string in Recovery/DFU,
    /// the UDID in normal mode).
    #[serde(default)]
    pub serial: Option<String>,
    #[serde(default)]
    pub manufacturer: Option<String>,
    #[serde(default)]
    pub product: Option<String>,
    /// Recovery/DFU only, recorded fixtures only: string descriptor 1 (`NONC:… SNON:…`),
    /// which the real source reads only when asked (`--ap-nonce device`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce_string: Option<String>,
}

impl UsbEntry {
    /// `bus 1, port 2.1`.
    pub fn location(&self) -> String {
        let ports: Vec<String> = self.port_chain.iter().map(u8::to_string).collect();
        format!(
            "bus {}, port {}",
            crate::render::escape(&self.bus),
            if ports.is_empty() {
                "?".to_owned()
            } else {
                ports.join(".")
            }
        )
    }
}

/// Why the USB devices could not be listed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UsbError {
    #[error("this ipswcheck was built without USB support (feature `usb`)")]
    Unsupported,
    #[error("cannot list USB devices: {0}")]
    List(String),
    #[error("{path}: {reason}")]
    Fixture { path: String, reason: String },
}

/// Where the USB listing comes from.
pub trait UsbSource {
    /// Every USB device attached, hubs included.
    fn list(&self) -> Result<Vec<UsbEntry>, UsbError>;
    /// What it is, for messages: `nusb`, or the fixture's path.
    fn name(&self) -> String;
    /// String descriptor 1 (`NONC:… SNON:…`) of a device in Recovery/DFU. Reading it means
    /// opening the device, so this runs only when the user asks for the device's nonce.
    fn nonce_string(&self, entry: &UsbEntry) -> Result<Option<String>, UsbError> {
        Ok(entry.nonce_string.clone())
    }
}

/// A recorded listing: `{"devices": [UsbEntry, …]}` (tests, bug reports).
#[derive(Debug, Clone)]
pub struct JsonSource {
    pub path: PathBuf,
}

#[derive(Deserialize)]
struct Recorded {
    devices: Vec<UsbEntry>,
}

/// The largest recorded listing read (a real one is a few kB).
const MAX_FIXTURE_BYTES: u64 = 4 << 20;

impl UsbSource for JsonSource {
    fn list(&self) -> Result<Vec<UsbEntry>, UsbError> {
        let fail = |reason: String| UsbError::Fixture {
            path: self.path.display().to_string(),
            reason,
        };
        let file = std::fs::File::open(&self.path).map_err(|e| fail(e.to_string()))?;
        let mut text = String::new();
        use std::io::Read;
        file.take(MAX_FIXTURE_BYTES + 1)
            .read_to_string(&mut text)
            .map_err(|e| fail(e.to_string()))?;
        if text.len() as u64 > MAX_FIXTURE_BYTES {
            return Err(fail(format!(
                "larger than {MAX_FIXTURE_BYTES} bytes; not a USB listing"
            )));
        }
        let recorded: Recorded = serde_json::from_str(&text)
            .map_err(|e| fail(format!("not a recorded USB listing: {e}")))?;
        if recorded.devices.len() > MAX_ENTRIES {
            return Err(fail(format!("more than {MAX_ENTRIES} devices")));
        }
        Ok(recorded.devices)
    }

    fn name(&self) -> String {
        format!("the recorded listing {}", self.path.display())
    }
}

/// The source to use: the recorded listing named by [`FIXTURE_ENV`] (test-only), else
/// nusb; without the `usb` feature, a source that says so.
pub fn default_source() -> Box<dyn UsbSource> {
    if let Some(path) = std::env::var_os(FIXTURE_ENV).filter(|p| !p.is_empty()) {
        return Box::new(JsonSource {
            path: PathBuf::from(path),
        });
    }
    #[cfg(feature = "usb")]
    {
        Box::new(nusb_source::NusbSource)
    }
    #[cfg(not(feature = "usb"))]
    {
        Box::new(NoUsb)
    }
}

/// The source of a build without the `usb` feature.
#[cfg(not(feature = "usb"))]
struct NoUsb;

#[cfg(not(feature = "usb"))]
impl UsbSource for NoUsb {
    fn list(&self) -> Result<Vec<UsbEntry>, UsbError> {
        Err(UsbError::Unsupported)
    }
    fn name(&self) -> String {
        "no USB support".into()
    }
}

/// An Apple device found on USB, with what its mode lets us know about it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AttachedDevice {
    pub mode: Mode,
    pub usb: UsbEntry,
    /// Recovery/DFU: the parsed serial-number string.
    pub serial: Option<SerialInfo>,
    /// Normal mode with usbmuxd: what lockdownd said.
    pub lockdown: Option<lockdown::LockdownInfo>,
    /// Normal mode without lockdownd's answer: why (no usbmuxd, refused, …).
    pub lockdown_error: Option<String>,
    /// The hubs between the computer and the device, nearest the computer first.
    pub hubs: Vec<UsbEntry>,
}

impl AttachedDevice {
    /// The ECID: from the serial string (Recovery/DFU) or lockdownd (normal).
    pub fn ecid(&self) -> Option<u64> {
        self.serial
            .as_ref()
            .and_then(|s| s.ecid)
            .or_else(|| self.lockdown.as_ref().and_then(|l| l.ecid()))
    }

    /// The board in the device table: CPID + BDID in Recovery/DFU, ProductType +
    /// HardwareModel from lockdownd in normal mode.
    pub fn board(&self) -> Option<&'static Device> {
        if let Some(s) = &self.serial {
            let bdid = s.bdid?;
            if !s.has_cpid {
                return None;
            }
            return device::all()
                .iter()
                .find(|d| d.chip_id == s.cpid && d.board_id == bdid);
        }
        let l = self.lockdown.as_ref()?;
        let product_type = l.product_type.as_deref()?;
        let boards = device::by_product_type(product_type);
        match l.hardware_model.as_deref() {
            Some(model) => boards
                .into_iter()
                .find(|d| d.board.eq_ignore_ascii_case(model)),
            None if boards.len() == 1 => boards.into_iter().next(),
            None => None,
        }
    }

    /// The boards to check for: the exact board when known, else (normal mode, lockdownd
    /// named the product type but not the board) every board of the product type.
    pub fn boards(&self) -> Option<Vec<&'static Device>> {
        if let Some(board) = self.board() {
            return Some(vec![board]);
        }
        let product_type = self.lockdown.as_ref()?.product_type.as_deref()?;
        let boards = device::by_product_type(product_type);
        (!boards.is_empty()).then_some(boards)
    }

    /// The iOS version running (normal mode with lockdownd only).
    pub fn os_version(&self) -> Option<&str> {
        self.lockdown.as_ref()?.product_version.as_deref()
    }

    /// "iPhone", "iPad", "iPod" — the kind of device, for "Apple will sign … for this
    /// iPhone".
    pub fn kind(&self) -> &'static str {
        let boards = self.boards().unwrap_or_default();
        kind_of(boards.first().map_or("", |d| d.product_type))
    }

    /// One line naming the device: `iPhone 7 (GSM) (iPhone9,3, d101ap) in Recovery mode,
    /// ECID 0x1A2B3C4D5E6F70`.
    pub fn describe(&self) -> String {
        let who = match (self.board(), self.boards()) {
            (Some(d), _) => format!("{} ({}, {})", d.name, d.product_type, d.board),
            (None, Some(boards)) => format!("{} ({})", boards[0].name, boards[0].product_type),
            (None, None) => match &self.serial {
                Some(s) => format!(
                    "an Apple device with chip {:#06x} board {}",
                    s.cpid,
                    s.bdid.map_or("?".to_owned(), |b| format!("{b:#04x}"))
                ),
                None => format!(
                    "an Apple device (USB product id {:#06x})",
                    self.usb.product_id
                ),
            },
        };
        let mut line = format!("{who} in {} mode", self.mode.name());
        if let Some(v) = self.os_version() {
            line.push_str(&format!(" running {}", crate::render::escape(v)));
        }
        if let Some(ecid) = self.ecid() {
            line.push_str(&format!(", ECID {}", format_ecid(ecid)));
        }
        line
    }
}

/// The notes a check with a connected device adds: the device, its mode and link, and
/// (normal mode, iOS version known) whether the file is a downgrade or the same version.
/// `file_version` is the file's ProductVersion; `update` is `--update`.
pub fn device_findings(
    device: &AttachedDevice,
    file_version: Option<&str>,
    update: bool,
) -> Vec<crate::judge::Finding> {
    use crate::judge::Finding;
    let link = link::LinkAssessment::of(device);
    let mut out = vec![Finding::ConnectedDevice {
        device: device.describe(),
        link: link.line(),
        advice: link.advice(),
    }];
    let name = device
        .boards()
        .and_then(|b| b.first().map(|d| d.name))
        .unwrap_or("device");
    if let (Some(on), Some(file)) = (device.os_version(), file_version) {
        match compare_versions(file, on) {
            Some(std::cmp::Ordering::Less) => out.push(Finding::Downgrade {
                device: name.to_owned(),
                on_device: crate::render::escape(on),
                file: crate::render::escape(file),
                update,
            }),
            Some(std::cmp::Ordering::Equal) => out.push(Finding::SameVersion {
                device: name.to_owned(),
                version: crate::render::escape(file),
                update,
            }),
            _ => {}
        }
    }
    out
}

/// `15.8` vs `15.7.1`, number by number (a missing part is 0: `16` = `16.0`); `None` when
/// either is not dotted numbers.
pub fn compare_versions(a: &str, b: &str) -> Option<std::cmp::Ordering> {
    let parse = |v: &str| -> Option<Vec<u64>> {
        v.trim()
            .split('.')
            .map(|p| p.parse::<u64>().ok())
            .collect::<Option<Vec<_>>>()
            .filter(|p| !p.is_empty() && p.len() <= 8)
    };
    let (mut a, mut b) = (parse(a)?, parse(b)?);
    let len = a.len().max(b.len());
    a.resize(len, 0);
    b.resize(len, 0);
    Some(a.cmp(&b))
}

/// `0x1A2B3C4D5E6F70`: how idevicerestore and irecovery print an ECID.
pub fn format_ecid(ecid: u64) -> String {
    format!("{ecid:#X}").replacen("0X", "0x", 1)
}

/// Read `--ecid`: hexadecimal (`0x1A2B…`, or 13+ hex digits as irecovery prints them) or
/// decimal (as Finder and ideviceinfo's UniqueChipID show it).
pub fn parse_ecid(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let parsed = if let Some(hex) = t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        u64::from_str_radix(hex, 16).ok()
    } else if t.chars().all(|c| c.is_ascii_digit()) {
        t.parse().ok()
    } else {
        u64::from_str_radix(t, 16).ok()
    };
    match parsed {
        Some(v) if v != 0 => Ok(v),
        _ => Err(format!(
            "--ecid takes the device's ECID, hexadecimal (0x1A2B3C4D5E6F70) or decimal \
             (7366571670679408), got \"{}\"",
            crate::render::escape(text)
        )),
    }
}

/// "iPhone", "iPad", "iPod", "Apple TV", … from a product type.
pub fn kind_of(product_type: &str) -> &'static str {
    const KINDS: [(&str, &str); 6] = [
        ("iPhone", "iPhone"),
        ("iPad", "iPad"),
        ("iPod", "iPod"),
        ("AppleTV", "Apple TV"),
        ("Watch", "Apple Watch"),
        ("AudioAccessory", "HomePod"),
    ];
    KINDS
        .iter()
        .find(|(prefix, _)| product_type.starts_with(prefix))
        .map_or("device", |(_, kind)| kind)
}

/// The Apple devices in a listing (iPhone/iPad/iPod in any mode of [`Mode`]), with their
/// hubs, and — in normal mode — lockdownd's answers through the usbmuxd socket at
/// `usbmuxd` (none when `None`).
pub fn attached_devices(entries: &[UsbEntry], usbmuxd: Option<&Path>) -> Vec<AttachedDevice> {
    let mut out = Vec::new();
    for entry in entries.iter().take(MAX_ENTRIES) {
        if entry.vendor_id != APPLE_VENDOR_ID {
            continue;
        }
        let Some(mode) = Mode::from_product_id(entry.product_id) else {
            continue;
        };
        let serial = if mode.has_iboot_serial() {
            entry.serial.as_deref().map(serial::parse)
        } else {
            None
        };
        let (lockdown, lockdown_error) = if mode == Mode::Normal {
            match usbmuxd {
                Some(socket) => match lockdown::query(socket, entry.serial.as_deref()) {
                    Ok(info) => (Some(info), None),
                    Err(e) => (None, Some(e.to_string())),
                },
                None => (None, Some("usbmuxd is not running".to_owned())),
            }
        } else {
            (None, None)
        };
        out.push(AttachedDevice {
            mode,
            usb: entry.clone(),
            serial,
            lockdown,
            lockdown_error,
            hubs: hubs_above(entry, entries),
        });
    }
    out
}

/// The hubs whose port chain leads to `entry` (same bus, a strict prefix of its chain),
/// nearest the computer first. Root hubs have an empty chain and are not counted.
pub fn hubs_above(entry: &UsbEntry, entries: &[UsbEntry]) -> Vec<UsbEntry> {
    let mut hubs: Vec<UsbEntry> = entries
        .iter()
        .take(MAX_ENTRIES)
        .filter(|h| {
            h.class == HUB_CLASS
                && h.bus == entry.bus
                && !h.port_chain.is_empty()
                && h.port_chain.len() < entry.port_chain.len()
                && entry.port_chain.starts_with(&h.port_chain)
        })
        .cloned()
        .collect();
    hubs.sort_by_key(|h| h.port_chain.len());
    hubs
}

/// Why `--device auto` found no single device to use (every one exits 2).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AutoError {
    #[error("{0}")]
    Listing(String),
    #[error("--device auto: no iPhone, iPad or iPod is connected by USB ({looked}); connect it (unlocked, \"Trust this computer\"), or put it in Recovery mode, or name it with --device iPhone9,3")]
    NoDevice { looked: String },
    #[error("--device auto: {count} devices are connected; choose one with --ecid:\n{list}")]
    Several { count: usize, list: String },
    #[error("--device auto: no connected device has ECID {ecid}; connected:\n{list}")]
    NoSuchEcid { ecid: String, list: String },
    #[error("--device auto: {device} is connected, in normal mode, but ipswcheck cannot ask it which model it is ({why}) — put it in Recovery mode or pass --device (e.g. --device iPhone9,3)")]
    NormalUnknown { device: String, why: String },
    #[error("--device auto: {device} is not in ipswcheck's device table (libirecovery's); pass --device")]
    UnknownBoard { device: String },
}

/// `--device auto`: the one device to check for. With `ecid`, the device with that ECID
/// (several connected, or to make sure); without, the only one connected.
pub fn select_auto(
    devices: &[AttachedDevice],
    ecid: Option<u64>,
    looked: &str,
) -> Result<AttachedDevice, AutoError> {
    let list = || {
        devices
            .iter()
            .map(|d| format!("  {} [{}]", d.describe(), d.usb.location()))
            .collect::<Vec<_>>()
            .join("\n")
    };
    let chosen = match (devices, ecid) {
        ([], _) => {
            return Err(AutoError::NoDevice {
                looked: looked.to_owned(),
            })
        }
        (_, Some(ecid)) => match devices.iter().find(|d| d.ecid() == Some(ecid)) {
            Some(d) => d,
            None => {
                return Err(AutoError::NoSuchEcid {
                    ecid: format_ecid(ecid),
                    list: list(),
                })
            }
        },
        ([one], None) => one,
        (_, None) => {
            return Err(AutoError::Several {
                count: devices.len(),
                list: list(),
            })
        }
    };
    if chosen.boards().is_none() {
        return Err(if chosen.mode == Mode::Normal {
            AutoError::NormalUnknown {
                device: chosen.describe(),
                why: chosen
                    .lockdown_error
                    .clone()
                    .unwrap_or_else(|| "lockdownd did not name its model".into()),
            }
        } else {
            AutoError::UnknownBoard {
                device: chosen.describe(),
            }
        });
    }
    Ok(chosen.clone())
}

/// List the source and pick the device (`--device auto`): usbmuxd is asked for devices
/// in normal mode when its socket exists ([`lockdown::socket_path`]).
pub fn detect(source: &dyn UsbSource, ecid: Option<u64>) -> Result<AttachedDevice, AutoError> {
    let (devices, looked) = list_attached(source).map_err(|e| AutoError::Listing(e.to_string()))?;
    select_auto(&devices, ecid, &looked)
}

/// Every Apple device of the source, and a phrase saying what was looked at.
pub fn list_attached(source: &dyn UsbSource) -> Result<(Vec<AttachedDevice>, String), UsbError> {
    let entries = source.list()?;
    let socket = lockdown::socket_path();
    let usbmuxd = socket.exists().then_some(socket.as_path());
    let devices = attached_devices(&entries, usbmuxd);
    let looked = format!(
        "{} USB device{} listed by {}",
        entries.len(),
        if entries.len() == 1 { "" } else { "s" },
        source.name()
    );
    Ok((devices, looked))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(pid: u16, chain: &[u8], class: u8, serial: Option<&str>) -> UsbEntry {
        UsbEntry {
            bus: "1".into(),
            port_chain: chain.to_vec(),
            vendor_id: if class == HUB_CLASS {
                0x05e3
            } else {
                APPLE_VENDOR_ID
            },
            product_id: pid,
            class,
            speed: Some(Speed::High),
            serial: serial.map(str::to_owned),
            manufacturer: None,
            product: None,
            nonce_string: None,
        }
    }

    #[test]
    fn hubs_are_the_prefixes_of_the_chain() {
        let phone = entry(0x1281, &[3, 2, 4], 0, None);
        let all = vec![
            entry(0x0610, &[3, 2], HUB_CLASS, None),
            entry(0x0610, &[3], HUB_CLASS, None),
            entry(0x0610, &[4], HUB_CLASS, None),
            entry(0x0610, &[], HUB_CLASS, None),
            phone.clone(),
        ];
        let hubs = hubs_above(&phone, &all);
        assert_eq!(
            hubs.iter()
                .map(|h| h.port_chain.clone())
                .collect::<Vec<_>>(),
            vec![vec![3], vec![3, 2]]
        );
    }

    #[test]
    fn ecids_parse_in_both_spellings() {
        assert_eq!(parse_ecid("0x1A2B"), Ok(0x1a2b));
        assert_eq!(parse_ecid("001171201046E026"), Ok(0x0011_7120_1046_e026));
        assert_eq!(parse_ecid("7366571670679408"), Ok(7_366_571_670_679_408));
        assert!(parse_ecid("0").is_err() && parse_ecid("xyz").is_err());
        assert_eq!(format_ecid(0x0011_7120_1046_e026), "0x1171201046E026");
    }
}
