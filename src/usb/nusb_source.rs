//! The real USB listing, through nusb (pure Rust: no libusb to install).
//!
//! nusb reads what the operating system already knows about each device — sysfs on Linux,
//! IOKit on macOS, SetupAPI on Windows — without opening it: vendor and product ids, the
//! cached serial-number string (iBoot's `CPID:… ECID:…` string in Recovery/DFU), the
//! negotiated speed and the port chain. Only cached strings are used: a string the
//! system did not cache is absent, never read from the device.
//!
//! Only [`UsbSource::nonce_string`] opens a device (a control transfer reading string
//! descriptor 1, as libirecovery's `irecv_copy_nonce_with_tag` does), and only when the
//! user asks for the device's own ApNonce (`--ap-nonce device`).

use std::time::Duration;

use nusb::MaybeFuture;

use super::{Speed, UsbEntry, UsbError, UsbSource};

/// The listing nusb gives.
pub struct NusbSource;

impl UsbSource for NusbSource {
    fn list(&self) -> Result<Vec<UsbEntry>, UsbError> {
        let devices = nusb::list_devices()
            .wait()
            .map_err(|e| UsbError::List(e.to_string()))?;
        Ok(devices
            .take(super::MAX_ENTRIES)
            .map(|d| entry(&d))
            .collect())
    }

    fn name(&self) -> String {
        "nusb".into()
    }

    fn nonce_string(&self, wanted: &UsbEntry) -> Result<Option<String>, UsbError> {
        let devices = nusb::list_devices()
            .wait()
            .map_err(|e| UsbError::List(e.to_string()))?;
        let Some(info) = devices.into_iter().find(|d| entry(d) == *wanted) else {
            return Err(UsbError::List(
                "the device is no longer connected as it was listed".into(),
            ));
        };
        let device = info.open().wait().map_err(|e| {
            UsbError::List(format!("cannot open the device to read its nonce: {e}"))
        })?;
        let index = std::num::NonZeroU8::new(1).expect("1 is not zero");
        device
            .get_string_descriptor(index, 0x0409, Duration::from_secs(2))
            .wait()
            .map(Some)
            .map_err(|e| UsbError::List(format!("cannot read the device's nonce string: {e}")))
    }
}

fn entry(d: &nusb::DeviceInfo) -> UsbEntry {
    UsbEntry {
        bus: d.bus_id().to_owned(),
        port_chain: d.port_chain().to_vec(),
        vendor_id: d.vendor_id(),
        product_id: d.product_id(),
        class: d.class(),
        speed: d.speed().map(|s| match s {
            nusb::Speed::Low => Speed::Low,
            nusb::Speed::Full => Speed::Full,
            nusb::Speed::High => Speed::High,
            nusb::Speed::Super => Speed::Super,
            _ => Speed::SuperPlus,
        }),
        serial: d.serial_number().map(str::to_owned),
        manufacturer: d.manufacturer_string().map(str::to_owned),
        product: d.product_string().map(str::to_owned),
        nonce_string: None,
    }
}
