//! USB fixtures: real serial-number strings of devices in DFU and Recovery mode, recorded
//! device listings (speeds, port chains, hubs) and a fake usbmuxd for normal mode.
//!
//! Where each serial string was recorded is said beside it. The listings around them
//! (bus, port chain, speed, hubs) are written in the shape nusb reports them; no test
//! needs hardware.

use std::io::{Read, Write};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use plist::{Dictionary, Value};
use serde_json::{json, Value as Json};

/// iPhone 7 (GSM, d101ap, A10) in DFU mode, from the checkm8 technical write-up that
/// quotes the serial string its exploit reads ("in our case, the string is …").
pub const DFU_IPHONE7_GSM: &str =
    "CPID:8010 CPRV:11 CPFM:03 SCEP:01 BDID:0C ECID:001A40362045E526 IBFL:3C SRTG:[iBoot-2696.0.0.1.33]";
/// Another iPhone 7 (GSM) in DFU mode: the sample of ipwndfu's `test_serial_number`.
pub const DFU_IPHONE7_GSM_2: &str =
    "CPID:8010 CPRV:11 CPFM:03 SCEP:01 BDID:0C ECID:000E459A38F34D26 IBFL:3C SRTG:[iBoot-2696.0.0.1.33]";
/// iPhone 6 (n61ap, A8) in DFU mode: axi0mX/ipwndfu pull request #156.
pub const DFU_IPHONE6: &str =
    "CPID:7000 CPRV:11 CPFM:03 SCEP:01 BDID:06 ECID:001171201046E026 IBFL:1C SRTG:[iBoot-1992.0.0.1.19]";
/// iPhone 6s Plus (n66ap, Samsung A9) in DFU mode: axi0mX/ipwndfu pull request #156.
pub const DFU_IPHONE6S_PLUS: &str =
    "CPID:8000 CPRV:20 CPFM:03 SCEP:01 BDID:06 ECID:0000038E8E58B41C IBFL:1C SRTG:[iBoot-2234.0.0.3.3]";
/// iPhone 6s (n71map, TSMC A9) in DFU mode: axi0mX/ipwndfu issue #178.
pub const DFU_IPHONE6S_TSMC: &str =
    "CPID:8003 CPRV:01 CPFM:03 SCEP:01 BDID:04 ECID:000264D410FB0226 IBFL:1C SRTG:[iBoot-2234.0.0.2.22]";
/// A Mac's T2 chip (0x8012, board 0x3B: MacBookPro16,3's j223ap) in DFU mode:
/// axi0mX/ipwndfu pull request #234.
pub const DFU_T2: &str =
    "CPID:8012 CPRV:10 CPFM:03 SCEP:01 BDID:3B ECID:001578110EA28026 IBFL:3C SRTG:[iBoot-3401.0.0.1.16]";
/// A device in Recovery mode (SRNM instead of SRTG), quoted as a real capture in a DFU
/// detector's source (`serialStringIndicatesRealDFU`).
pub const RECOVERY_8947: &str =
    "CPID:8947 CPRV:00 CPFM:03 SCEP:10 BDID:00 ECID:000002713C84D50E IBFL:1B SRNM:[F6KM4D1TFF54]";
/// iPhone 6s (n71ap) in Recovery mode: the fields `irecovery -q` printed in
/// turdus-m3rula/bugTracker issue #24, put back in iBoot's serial-string form, and the
/// nonce string (`NONC`/`SNON`, string descriptor 1) it printed.
pub const RECOVERY_IPHONE6S: &str =
    "CPID:8000 CPRV:20 CPFM:03 SCEP:01 BDID:04 ECID:000005752935F194 IBFL:1C SRNM:[FVMCL013HFLV]";
pub const RECOVERY_IPHONE6S_NONCES: &str =
    "NONC:d5265cb58f540b2fd7e8291e1085292507b31b60 SNON:a372272417195f808bcc91966823548332215f23";

/// An Apple device in a listing.
pub fn apple(product_id: u16, serial: &str, speed: &str, chain: &[u8]) -> Json {
    json!({
        "bus": "1", "port_chain": chain, "vendor_id": 0x05ac, "product_id": product_id,
        "class": 0, "speed": speed, "serial": serial, "manufacturer": "Apple Inc.",
        "product": match product_id {
            0x1227 => "Apple Mobile Device (DFU Mode)",
            0x1280..=0x1283 => "Apple Mobile Device (Recovery Mode)",
            _ => "iPhone",
        },
    })
}

/// A hub at `chain` (Genesys Logic GL850G, a common USB 2.0 hub).
pub fn hub(chain: &[u8], speed: &str) -> Json {
    json!({
        "bus": "1", "port_chain": chain, "vendor_id": 0x05e3, "product_id": 0x0610,
        "class": 9, "speed": speed, "product": "USB2.0 Hub",
    })
}

/// The root hub and a keyboard, present in every listing.
pub fn background() -> Vec<Json> {
    vec![
        json!({"bus": "1", "port_chain": [], "vendor_id": 0x1d6b, "product_id": 2,
               "class": 9, "speed": "high", "product": "xHCI Host Controller"}),
        json!({"bus": "1", "port_chain": [1], "vendor_id": 0x046d, "product_id": 0xc31c,
               "class": 0, "speed": "low", "product": "USB Keyboard"}),
    ]
}

/// Write `{"devices": [...]}` (the background devices first) to `dir/usb.json`.
pub fn write_listing(dir: &Path, devices: Vec<Json>) -> PathBuf {
    let mut all = background();
    all.extend(devices);
    let path = dir.join("usb.json");
    std::fs::write(&path, json!({ "devices": all }).to_string()).unwrap();
    path
}

/// A fake usbmuxd on a Unix socket: lists one USB device, relays "Connect" to a fake
/// lockdownd that answers `GetValue` from `values` (a key it lacks: an error, as a real
/// one answers for values it gives only to a paired host). Records every request.
pub struct FakeUsbmuxd {
    pub socket: PathBuf,
    pub requests: Arc<Mutex<Vec<Dictionary>>>,
}

impl FakeUsbmuxd {
    pub fn start(dir: &Path, udid: &str, values: Vec<(&str, Value)>) -> FakeUsbmuxd {
        let socket = dir.join("usbmuxd");
        let listener = UnixListener::bind(&socket).unwrap();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&requests);
        let udid = udid.to_owned();
        let values: Dictionary = values.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { return };
                let Some(request) = read_mux(&mut stream) else {
                    continue;
                };
                log.lock().unwrap().push(request.clone());
                match request.get("MessageType").and_then(Value::as_string) {
                    Some("ListDevices") => {
                        let mut props = Dictionary::new();
                        props.insert("ConnectionType".into(), "USB".into());
                        props.insert("DeviceID".into(), Value::Integer(7.into()));
                        props.insert("SerialNumber".into(), udid.clone().into());
                        let mut dev = Dictionary::new();
                        dev.insert("DeviceID".into(), Value::Integer(7.into()));
                        dev.insert("MessageType".into(), "Attached".into());
                        dev.insert("Properties".into(), Value::Dictionary(props));
                        let mut reply = Dictionary::new();
                        reply.insert(
                            "DeviceList".into(),
                            Value::Array(vec![Value::Dictionary(dev)]),
                        );
                        write_mux(&mut stream, reply);
                    }
                    Some("Connect") => {
                        let mut reply = Dictionary::new();
                        reply.insert("MessageType".into(), "Result".into());
                        reply.insert("Number".into(), Value::Integer(0.into()));
                        write_mux(&mut stream, reply);
                        while let Some(req) = read_lockdown(&mut stream) {
                            log.lock().unwrap().push(req.clone());
                            let key = req.get("Key").and_then(Value::as_string).unwrap_or("");
                            let mut reply = Dictionary::new();
                            reply.insert("Request".into(), "GetValue".into());
                            reply.insert("Key".into(), key.into());
                            match values.get(key) {
                                Some(v) => reply.insert("Value".into(), v.clone()),
                                None => reply.insert("Error".into(), "MissingValue".into()),
                            };
                            write_lockdown(&mut stream, reply);
                        }
                    }
                    _ => {}
                }
            }
        });
        FakeUsbmuxd { socket, requests }
    }
}

fn xml(dict: Dictionary) -> Vec<u8> {
    let mut out = Vec::new();
    Value::Dictionary(dict).to_writer_xml(&mut out).unwrap();
    out
}

fn read_mux(stream: &mut impl Read) -> Option<Dictionary> {
    let mut header = [0u8; 16];
    stream.read_exact(&mut header).ok()?;
    let len = u32::from_le_bytes(header[..4].try_into().unwrap()) as usize;
    let mut body = vec![0u8; len.checked_sub(16)?];
    stream.read_exact(&mut body).ok()?;
    Value::from_reader_xml(&body[..]).ok()?.into_dictionary()
}

fn write_mux(stream: &mut impl Write, dict: Dictionary) {
    let body = xml(dict);
    let mut frame = Vec::new();
    for word in [16 + body.len() as u32, 1, 8, 0] {
        frame.extend_from_slice(&word.to_le_bytes());
    }
    frame.extend_from_slice(&body);
    let _ = stream.write_all(&frame);
}

fn read_lockdown(stream: &mut impl Read) -> Option<Dictionary> {
    let mut len = [0u8; 4];
    stream.read_exact(&mut len).ok()?;
    let mut body = vec![0u8; u32::from_be_bytes(len) as usize];
    stream.read_exact(&mut body).ok()?;
    Value::from_reader_xml(&body[..]).ok()?.into_dictionary()
}

fn write_lockdown(stream: &mut impl Write, dict: Dictionary) {
    let body = xml(dict);
    let mut frame = (body.len() as u32).to_be_bytes().to_vec();
    frame.extend_from_slice(&body);
    let _ = stream.write_all(&frame);
}
