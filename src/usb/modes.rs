//! Which mode an Apple USB device is in, from its product id alone.
//!
//! The table is libirecovery's (`include/libirecovery.h` `enum irecv_mode` and
//! `KIS_PRODUCT_ID` in `src/libirecovery.c`, libimobiledevice/libirecovery HEAD): the ids a
//! device uses while iBoot (Recovery) or the SecureROM (DFU, WTF, Port DFU, Debug USB)
//! drives the USB port. Normal mode is usbmuxd's range (`src/usb.h`: `PID_RANGE_LOW`
//! 0x1290 … `PID_RANGE_MAX` 0x12af): iPhone, iPad and iPod touch running iOS (and a device
//! in Restore mode, which runs a ramdisk iOS).

use serde::Serialize;

/// Apple's USB vendor id.
pub const APPLE_VENDOR_ID: u16 = 0x05ac;

/// The mode of a connected Apple device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// iOS is running (or a restore ramdisk): talk to it through usbmuxd and lockdownd.
    Normal,
    /// iBoot's Recovery mode (0x1280–0x1283; libirecovery `IRECV_K_RECOVERY_MODE_1..4`).
    Recovery,
    /// The SecureROM's DFU mode (0x1227, `IRECV_K_DFU_MODE`).
    Dfu,
    /// "WTF" mode of the oldest devices' SecureROM (0x1222, `IRECV_K_WTF_MODE`).
    Wtf,
    /// DFU over a USB-C port's debug channel (0xf014, `IRECV_K_PORT_DFU_MODE`).
    PortDfu,
    /// DFU via Debug USB, "KIS" (0x1881, `KIS_PRODUCT_ID`).
    DebugUsb,
}

impl Mode {
    /// Mode from the product id, for Apple's vendor id; `None` for every other Apple
    /// product (keyboards, Macs, AirPods…).
    pub fn from_product_id(product_id: u16) -> Option<Mode> {
        Some(match product_id {
            0x1280..=0x1283 => Mode::Recovery,
            0x1227 => Mode::Dfu,
            0x1222 => Mode::Wtf,
            0xf014 => Mode::PortDfu,
            0x1881 => Mode::DebugUsb,
            0x1290..=0x12af => Mode::Normal,
            _ => return None,
        })
    }

    /// As people say it (and as `irecovery -q` prints it: "Recovery", "DFU", "WTF",
    /// "Port DFU").
    pub fn name(self) -> &'static str {
        match self {
            Mode::Normal => "normal",
            Mode::Recovery => "Recovery",
            Mode::Dfu => "DFU",
            Mode::Wtf => "WTF",
            Mode::PortDfu => "Port DFU",
            Mode::DebugUsb => "DFU via Debug USB (KIS)",
        }
    }

    /// Whether the USB serial-number string is iBoot's/the SecureROM's
    /// `CPID:… ECID:…` string (every mode but normal).
    pub fn has_iboot_serial(self) -> bool {
        self != Mode::Normal
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn libirecovery_table() {
        for pid in 0x1280..=0x1283 {
            assert_eq!(Mode::from_product_id(pid), Some(Mode::Recovery));
        }
        assert_eq!(Mode::from_product_id(0x1227), Some(Mode::Dfu));
        assert_eq!(Mode::from_product_id(0x1222), Some(Mode::Wtf));
        assert_eq!(Mode::from_product_id(0xf014), Some(Mode::PortDfu));
        assert_eq!(Mode::from_product_id(0x1881), Some(Mode::DebugUsb));
        assert_eq!(Mode::from_product_id(0x12a8), Some(Mode::Normal));
        assert_eq!(Mode::from_product_id(0x1284), None);
        assert_eq!(Mode::from_product_id(0x024f), None); // an Apple keyboard
        assert!(!Mode::Normal.has_iboot_serial() && Mode::Dfu.has_iboot_serial());
    }
}
