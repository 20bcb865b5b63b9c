//! The device on the cable, on recorded data only: real serial strings of devices in DFU
//! and Recovery mode, device listings with speeds and port chains (hub / no hub /
//! full speed), a fake usbmuxd for normal mode, and a loopback server playing Apple's
//! TSS server. The listing reaches the binary through `IPSWCHECK_USB_FIXTURE` (test-only)
//! and the usbmuxd socket through `IPSWCHECK_USBMUXD_SOCKET`; every run points the latter
//! at a temporary path so that a usbmuxd on the test machine is never asked.

use std::path::{Path, PathBuf};

use ipswcheck::usb::{self, serial, AutoError, JsonSource, Mode, UsbSource};
use ipswcheck_fixture::{DeviceSpec, IpswSpec};
use plist::Value;

use crate::util::run_env;
use crate::util::signing::{signed_body, status_body, FakeServer, Reply, NOT_ELIGIBLE};
use crate::util::usb::*;

/// A listing with `devices` (plus a root hub and a keyboard) in a temp dir.
fn listing(devices: Vec<serde_json::Value>) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = write_listing(dir.path(), devices);
    (dir, path)
}

fn attached(path: &Path) -> Vec<usb::AttachedDevice> {
    let entries = JsonSource {
        path: path.to_path_buf(),
    }
    .list()
    .unwrap();
    usb::attached_devices(&entries, None)
}

#[test]
fn real_serial_strings_name_their_boards() {
    // (string, CPID, BDID, ECID, product type and board in libirecovery's table)
    let cases = [
        (
            DFU_IPHONE7_GSM,
            0x8010,
            0x0C,
            0x001A_4036_2045_E526,
            "iPhone9,3",
            "d101ap",
        ),
        (
            DFU_IPHONE7_GSM_2,
            0x8010,
            0x0C,
            0x000E_459A_38F3_4D26,
            "iPhone9,3",
            "d101ap",
        ),
        (
            DFU_IPHONE6,
            0x7000,
            0x06,
            0x0011_7120_1046_E026,
            "iPhone7,2",
            "n61ap",
        ),
        (
            DFU_IPHONE6S_PLUS,
            0x8000,
            0x06,
            0x0000_038E_8E58_B41C,
            "iPhone8,2",
            "n66ap",
        ),
        (
            DFU_IPHONE6S_TSMC,
            0x8003,
            0x04,
            0x0002_64D4_10FB_0226,
            "iPhone8,1",
            "n71map",
        ),
        (
            RECOVERY_IPHONE6S,
            0x8000,
            0x04,
            0x0000_0575_2935_F194,
            "iPhone8,1",
            "n71ap",
        ),
        (
            RECOVERY_8947,
            0x8947,
            0x00,
            0x0000_0271_3C84_D50E,
            "AppleTV3,2",
            "j33iap",
        ),
    ];
    for (text, cpid, bdid, ecid, product_type, board) in cases {
        let info = serial::parse(text);
        assert!(info.has_cpid, "{text}");
        assert_eq!(
            (info.cpid, info.bdid, info.ecid),
            (cpid, Some(bdid), Some(ecid)),
            "{text}"
        );
        assert_eq!(info.cpfm, Some(3), "{text}");
        assert_eq!(info.is_production(), Some(true), "{text}");
        let pid = if info.srnm.is_some() { 0x1281 } else { 0x1227 };
        let (_dir, path) = listing(vec![apple(pid, text, "high", &[2])]);
        let found = attached(&path);
        assert_eq!(found.len(), 1, "{text}");
        let d = found[0]
            .board()
            .unwrap_or_else(|| panic!("no board for {text}"));
        assert_eq!((d.product_type, d.board), (product_type, board), "{text}");
        assert_eq!(found[0].ecid(), Some(ecid));
    }
    // DFU strings carry the SecureROM's tag, Recovery strings the serial number.
    let dfu = serial::parse(DFU_IPHONE7_GSM);
    assert_eq!(dfu.srtg.as_deref(), Some("iBoot-2696.0.0.1.33"));
    assert_eq!((dfu.srnm, dfu.ibfl), (None, Some(0x3C)));
    let rec = serial::parse(RECOVERY_IPHONE6S);
    assert_eq!(rec.srnm.as_deref(), Some("FVMCL013HFLV"));
    assert_eq!(rec.srtg, None);
    let nonces = serial::parse(RECOVERY_IPHONE6S_NONCES);
    assert_eq!(nonces.ap_nonce.as_ref().map(Vec::len), Some(20));
    assert_eq!(nonces.ap_nonce.unwrap()[..3], [0xd5, 0x26, 0x5c]);
    assert_eq!(nonces.sep_nonce.unwrap()[19], 0x23);
}

#[test]
fn modes_and_strangers_in_a_listing() {
    let (_dir, path) = listing(vec![
        apple(0x1227, DFU_IPHONE7_GSM, "high", &[2]),
        apple(0x1281, RECOVERY_IPHONE6S, "high", &[3]),
        apple(
            0x12a8,
            "0123456789abcdef0123456789abcdef01234567",
            "high",
            &[4],
        ),
        // An Apple keyboard: Apple's vendor id, not a phone.
        serde_json::json!({"bus": "1", "port_chain": [5], "vendor_id": 0x05ac,
                           "product_id": 0x024f, "class": 0, "speed": "full"}),
    ]);
    let found = attached(&path);
    let modes: Vec<Mode> = found.iter().map(|d| d.mode).collect();
    assert_eq!(modes, [Mode::Dfu, Mode::Recovery, Mode::Normal]);
    // Normal mode without usbmuxd: no model, and says why.
    assert!(found[2].board().is_none());
    assert_eq!(
        found[2].lockdown_error.as_deref(),
        Some("usbmuxd is not running")
    );
}

#[test]
fn choosing_the_device_for_auto() {
    let (_dir, two) = listing(vec![
        apple(0x1227, DFU_IPHONE7_GSM, "high", &[2]),
        apple(0x1227, DFU_IPHONE7_GSM_2, "high", &[3]),
    ]);
    let found = attached(&two);
    match usb::select_auto(&found, None, "2 devices") {
        Err(e @ AutoError::Several { count: 2, .. }) => {
            let text = e.to_string();
            assert!(text.contains("--ecid"), "{text}");
            assert!(
                text.contains("0x1A40362045E526") && text.contains("0xE459A38F34D26"),
                "{text}"
            );
            assert!(
                text.contains("bus 1, port 2") && text.contains("bus 1, port 3"),
                "{text}"
            );
        }
        other => panic!("{other:?}"),
    }
    let chosen = usb::select_auto(&found, Some(0x000E_459A_38F3_4D26), "").unwrap();
    assert_eq!(chosen.usb.port_chain, [3]);
    assert!(matches!(
        usb::select_auto(&found, Some(1), ""),
        Err(AutoError::NoSuchEcid { .. })
    ));
    assert!(matches!(
        usb::select_auto(&[], None, "3 USB devices"),
        Err(AutoError::NoDevice { .. })
    ));
    // A board the table does not know is not guessed (a real string, its BDID changed).
    let unknown = DFU_IPHONE7_GSM.replace("BDID:0C", "BDID:7E");
    let (_dir2, path) = listing(vec![apple(0x1227, &unknown, "high", &[2])]);
    match usb::select_auto(&attached(&path), None, "") {
        Err(e @ AutoError::UnknownBoard { .. }) => {
            assert!(e.to_string().contains("chip 0x8010 board 0x7e"), "{e}")
        }
        other => panic!("{other:?}"),
    }
}

/// The three link situations: direct at high speed, behind a hub, full speed.
fn link_listings() -> [(&'static str, Vec<serde_json::Value>, bool); 3] {
    [
        (
            "direct",
            vec![apple(0x1281, RECOVERY_IPHONE6S, "high", &[2])],
            false,
        ),
        (
            "hub",
            vec![
                hub(&[3], "high"),
                apple(0x1281, RECOVERY_IPHONE6S, "high", &[3, 4]),
            ],
            true,
        ),
        (
            "full",
            vec![apple(0x1281, RECOVERY_IPHONE6S, "full", &[2])],
            true,
        ),
    ]
}

#[test]
fn doctor_usb_says_speed_hubs_and_what_it_cannot_see() {
    for (name, devices, suspect) in link_listings() {
        let (dir, path) = listing(devices);
        let socket = dir.path().join("no-usbmuxd");
        let (code, out, err) = run_env(
            &["doctor", "--usb"],
            &[
                ("IPSWCHECK_USB_FIXTURE", path.to_str().unwrap()),
                ("IPSWCHECK_USBMUXD_SOCKET", socket.to_str().unwrap()),
            ],
        );
        assert_eq!(code, i32::from(suspect), "{name}: {out}{err}");
        assert!(
            out.contains("iPhone 6s (iPhone8,1, n71ap) in Recovery mode"),
            "{name}: {out}"
        );
        assert!(out.contains("ECID 0x5752935F194"), "{name}: {out}");
        assert!(out.contains("What it cannot: the cable's quality"), "{out}");
        assert!(out.contains("NAND") && out.contains("audio chip"), "{out}");
        assert!(out.contains("4013, 4014 or 4005"), "{out}");
        match name {
            "direct" => {
                assert!(
                    out.contains("high speed (480 Mbit/s) — as it should be"),
                    "{out}"
                );
                assert!(out.contains("no hub between"), "{out}");
            }
            "hub" => {
                assert!(
                    out.contains("through 1 hub: 05e3:0610 \"USB2.0 Hub\""),
                    "{out}"
                );
                assert!(out.contains("bus 1, port 3.4"), "{out}");
                assert!(out.contains("connect the device directly"), "{out}");
            }
            _ => {
                assert!(out.contains("full speed (12 Mbit/s) — too slow"), "{out}");
                assert!(out.contains("another cable"), "{out}");
            }
        }
    }
    // Nothing connected: exit 2, and it says so.
    let (dir, path) = listing(vec![]);
    let socket = dir.path().join("no-usbmuxd");
    let (code, out, _) = run_env(
        &["doctor", "--usb"],
        &[
            ("IPSWCHECK_USB_FIXTURE", path.to_str().unwrap()),
            ("IPSWCHECK_USBMUXD_SOCKET", socket.to_str().unwrap()),
        ],
    );
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("no iPhone, iPad or iPod found"), "{out}");
    assert!(
        out.contains("2 USB devices listed by the recorded listing"),
        "{out}"
    );
}

struct AutoRun {
    dir: tempfile::TempDir,
    ipsw: PathBuf,
    listing: PathBuf,
}

impl AutoRun {
    fn new(devices: Vec<serde_json::Value>) -> AutoRun {
        Self::with_spec(IpswSpec::sample(), devices)
    }

    fn with_spec(spec: IpswSpec, devices: Vec<serde_json::Value>) -> AutoRun {
        let dir = tempfile::tempdir().unwrap();
        let ipsw = dir.path().join("Restore.ipsw");
        spec.build(&ipsw).unwrap();
        let listing = write_listing(dir.path(), devices);
        AutoRun { dir, ipsw, listing }
    }

    /// `ipswcheck FILE --device auto --json …` against `server` (offline without one).
    fn run(
        &self,
        server: Option<&FakeServer>,
        socket: Option<&Path>,
        extra: &[&str],
    ) -> (i32, serde_json::Value, String) {
        let hosts = self.dir.path().join("hosts");
        std::fs::write(&hosts, "127.0.0.1 localhost\n").unwrap();
        let cache = self.dir.path().join("cache");
        let mut args = vec![
            self.ipsw.to_str().unwrap().to_owned(),
            "--device".into(),
            "auto".into(),
            "--json".into(),
            "--quick".into(),
            "--hosts-file".into(),
            hosts.to_str().unwrap().into(),
            "--cache-dir".into(),
            cache.to_str().unwrap().into(),
        ];
        match server {
            Some(s) => args.extend([
                "--tss-url".into(),
                s.tss_url(),
                "--api-url".into(),
                s.api_url(),
                "--timeout".into(),
                "5".into(),
            ]),
            None => args.push("--offline".into()),
        }
        args.extend(extra.iter().map(|s| s.to_string()));
        let no_socket = self.dir.path().join("no-usbmuxd");
        let socket = socket.unwrap_or(&no_socket);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (code, out, err) = run_env(
            &args,
            &[
                ("IPSWCHECK_USB_FIXTURE", self.listing.to_str().unwrap()),
                ("IPSWCHECK_USBMUXD_SOCKET", socket.to_str().unwrap()),
            ],
        );
        let doc = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}{err}"));
        (code, doc, err)
    }
}

fn notes(doc: &serde_json::Value) -> Vec<String> {
    doc["notes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["message"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn auto_signs_for_this_iphone_with_its_ecid() {
    let run = AutoRun::new(vec![apple(0x1227, DFU_IPHONE7_GSM, "high", &[2])]);
    let server = FakeServer::apple_and_ipswme(Reply::ok(signed_body()), Reply::status(404));
    let (code, doc, err) = run.run(Some(&server), None, &[]);
    assert_eq!(code, 0, "{doc:#}{err}");
    assert_eq!(doc["device"]["product_type"], "iPhone9,3");
    assert_eq!(doc["device"]["board"], "d101ap");
    let message = doc["checks"]["signing"]["message"].as_str().unwrap();
    assert!(
        message.starts_with("Apple will sign 15.8 for this iPhone (ECID 0x1A40362045E526)"),
        "{message}"
    );
    // The request Apple got carries the device's ECID, and the nonce lengths of its chip.
    let requests = server.tss_requests();
    assert_eq!(requests.len(), 1);
    let req = requests[0].plist();
    assert_eq!(
        req["ApECID"].as_unsigned_integer(),
        Some(0x001A_4036_2045_E526)
    );
    assert_eq!(req["ApNonce"].as_data().unwrap().len(), 32);
    assert_eq!(req["ApBoardID"].as_unsigned_integer(), Some(0x0C));
    // The report names the device, its mode and its link.
    let notes = notes(&doc);
    assert!(
        notes.iter().any(
            |n| n.contains("iPhone 7 (GSM) (iPhone9,3, d101ap) in DFU mode")
                && n.contains("USB link: high speed (480 Mbit/s), no hub")
        ),
        "{notes:?}"
    );
    // A personal answer is not cached: the next run asks Apple again.
    let (code, _, _) = run.run(Some(&server), None, &[]);
    assert_eq!(code, 0);
    assert_eq!(server.tss_requests().len(), 2);
}

#[test]
fn auto_not_signed_names_the_device() {
    let run = AutoRun::new(vec![apple(0x1227, DFU_IPHONE7_GSM, "high", &[2])]);
    let server =
        FakeServer::apple_and_ipswme(Reply::ok(status_body(94, NOT_ELIGIBLE)), Reply::status(404));
    let (code, doc, _) = run.run(Some(&server), None, &[]);
    assert_eq!(code, 30, "{doc:#}");
    let message = doc["checks"]["signing"]["message"].as_str().unwrap();
    assert!(
        message.starts_with("Apple will not sign 15.8 for this iPhone (ECID 0x1A40362045E526)"),
        "{message}"
    );
    assert!(message.contains("3194"), "{message}");
}

#[test]
fn a_given_nonce_is_sent_and_checked() {
    let run = AutoRun::new(vec![apple(0x1227, DFU_IPHONE7_GSM, "high", &[2])]);
    let server = FakeServer::apple_and_ipswme(Reply::ok(signed_body()), Reply::status(404));
    let nonce = "ab".repeat(32);
    let (code, _, _) = run.run(Some(&server), None, &["--ap-nonce", &nonce]);
    assert_eq!(code, 0);
    assert_eq!(
        server.tss_requests()[0].plist()["ApNonce"]
            .as_data()
            .unwrap(),
        [0xab; 32]
    );
    // 20 bytes do not fit an A10: no request is sent with it.
    let (code, doc, _) = run.run(Some(&server), None, &["--ap-nonce", &"ab".repeat(20)]);
    assert_eq!(code, 31, "{doc:#}");
    assert!(doc["checks"]["signing"]["message"]
        .as_str()
        .unwrap()
        .contains("chip 0x8010 uses 32"));
    assert_eq!(server.tss_requests().len(), 1);
}

#[test]
fn a_file_for_another_model_is_refused_as_with_device() {
    let run = AutoRun::new(vec![apple(0x1227, DFU_IPHONE6, "high", &[2])]);
    let (code, auto, _) = run.run(None, None, &[]);
    assert_eq!(code, 20, "{auto:#}");
    // Exactly what naming the same board gives.
    let (code2, out, err) = run_env(
        &[
            run.ipsw.to_str().unwrap(),
            "--device",
            "iPhone7,2",
            "--json",
            "--quick",
            "--offline",
        ],
        &[],
    );
    assert_eq!(code2, 20, "{err}");
    let named: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(auto["problems"], named["problems"]);
    assert_eq!(
        auto["checks"]["compatibility"],
        named["checks"]["compatibility"]
    );
    assert_eq!(auto["device"]["board"], "n61ap");
}

#[test]
fn auto_without_one_device_is_a_usage_error() {
    let run = AutoRun::new(vec![]);
    let (code, doc, err) = run.run(None, None, &[]);
    assert_eq!(code, 2, "{doc:#}");
    assert!(
        err.contains("no iPhone, iPad or iPod is connected"),
        "{err}"
    );
    assert_eq!(doc["error"]["kind"], "usage");

    let two = AutoRun::new(vec![
        apple(0x1227, DFU_IPHONE7_GSM, "high", &[2]),
        apple(0x1281, RECOVERY_IPHONE6S, "high", &[3]),
    ]);
    let (code, _, err) = two.run(None, None, &[]);
    assert_eq!(code, 2);
    assert!(
        err.contains("2 devices are connected; choose one with --ecid"),
        "{err}"
    );
    assert!(
        err.contains("iPhone 6s (iPhone8,1, n71ap) in Recovery mode"),
        "{err}"
    );
    let (code, doc, _) = two.run(None, None, &["--ecid", "0x001A40362045E526"]);
    assert_eq!(code, 0, "{doc:#}");
    assert_eq!(doc["device"]["board"], "d101ap");

    // Normal mode without usbmuxd: say what to do.
    let normal = AutoRun::new(vec![apple(
        0x12a8,
        "0123456789abcdef0123456789abcdef01234567",
        "high",
        &[2],
    )]);
    let (code, _, err) = normal.run(None, None, &[]);
    assert_eq!(code, 2);
    assert!(
        err.contains("connected, in normal mode")
            && err.contains("put it in Recovery mode or pass --device"),
        "{err}"
    );
}

fn lockdown_values(version: &str) -> Vec<(&'static str, Value)> {
    vec![
        ("ProductType", "iPhone9,3".into()),
        ("HardwareModel", "D101AP".into()),
        ("ProductVersion", version.into()),
        ("BuildVersion", "19H12".into()),
        (
            "UniqueChipID",
            Value::Integer(7_366_571_670_679_408u64.into()),
        ),
    ]
}

#[test]
fn normal_mode_through_lockdownd_gives_model_and_version() {
    const UDID: &str = "0123456789abcdef0123456789abcdef01234567";
    let run = AutoRun::new(vec![apple(0x12a8, UDID, "high", &[2])]);
    let mux = FakeUsbmuxd::start(run.dir.path(), UDID, lockdown_values("15.8"));
    let (code, doc, err) = run.run(None, Some(&mux.socket), &["--update"]);
    assert_eq!(code, 0, "{doc:#}{err}");
    assert_eq!(doc["device"]["board"], "d101ap");
    let notes = notes(&doc);
    assert!(
        notes
            .iter()
            .any(|n| n.contains("in normal mode running 15.8, ECID 0x1A2BDB9FA4AF70")),
        "{notes:?}"
    );
    assert!(
        notes
            .iter()
            .any(|n| n.contains("already runs 15.8") && n.contains("keeps the data")),
        "{notes:?}"
    );
    // Read-only: the requests were a listing, a connection to port 62078 and GetValues.
    let requests = mux.requests.lock().unwrap().clone();
    let connect = requests
        .iter()
        .find(|r| r.get("MessageType").and_then(Value::as_string) == Some("Connect"))
        .unwrap();
    assert_eq!(
        connect["PortNumber"].as_unsigned_integer(),
        Some(62078u16.swap_bytes().into())
    );
    for r in &requests {
        if let Some(request) = r.get("Request").and_then(Value::as_string) {
            assert_eq!(request, "GetValue");
        }
    }
}

#[test]
fn a_file_older_than_the_device_is_a_downgrade() {
    const UDID: &str = "0123456789abcdef0123456789abcdef01234567";
    let run = AutoRun::new(vec![apple(0x12a8, UDID, "high", &[2])]);
    let mux = FakeUsbmuxd::start(run.dir.path(), UDID, lockdown_values("16.0"));
    let server =
        FakeServer::apple_and_ipswme(Reply::ok(status_body(94, NOT_ELIGIBLE)), Reply::status(404));
    let (code, doc, _) = run.run(Some(&server), Some(&mux.socket), &[]);
    // The refusal decides (30, 3194); the downgrade is said beside it.
    assert_eq!(code, 30, "{doc:#}");
    let notes = notes(&doc);
    assert!(
        notes
            .iter()
            .any(|n| n.contains("runs 16.0, this file is 15.8")
                && n.contains("downgrade")
                && n.contains("1015")),
        "{notes:?}"
    );
}

#[test]
fn a_slow_link_is_one_line_of_every_check() {
    let run = AutoRun::new(vec![
        hub(&[3], "full"),
        apple(0x1227, DFU_IPHONE7_GSM, "full", &[3, 1]),
    ]);
    let (code, doc, _) = run.run(None, None, &[]);
    // The link is said, never a failure of the file.
    assert_eq!(code, 0, "{doc:#}");
    let note = doc["notes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["kind"] == "connected_device")
        .unwrap()
        .clone();
    let message = note["message"].as_str().unwrap();
    assert!(
        message.contains("full speed (12 Mbit/s), through 1 hub"),
        "{message}"
    );
    assert!(message.contains("4013/4014/4005"), "{message}");
    assert!(message.contains("Next: use another cable"), "{message}");
    let hint = note["hint"].as_str().unwrap();
    assert!(
        hint.contains("another cable") && hint.contains("directly"),
        "{hint}"
    );
}

#[test]
fn the_devices_own_nonce_only_when_asked() {
    // The iPhone 6s in Recovery whose serial and nonce strings were recorded, and a file
    // for its board.
    let spec = IpswSpec {
        devices: vec![DeviceSpec::new("iPhone8,1", "n71ap", 0x8000, 0x04)],
        ..IpswSpec::sample()
    };
    let mut device = apple(0x1281, RECOVERY_IPHONE6S, "high", &[2]);
    device["nonce_string"] = RECOVERY_IPHONE6S_NONCES.into();
    let run = AutoRun::with_spec(spec, vec![device]);
    let server = FakeServer::apple_and_ipswme(Reply::ok(signed_body()), Reply::status(404));
    let recorded = serial::parse(RECOVERY_IPHONE6S_NONCES);

    let (code, doc, err) = run.run(Some(&server), None, &[]);
    assert_eq!(code, 0, "{doc:#}{err}");
    let random = server.tss_requests()[0].plist();
    assert_eq!(
        random["ApECID"].as_unsigned_integer(),
        Some(0x0000_0575_2935_F194)
    );
    assert_eq!(random["ApNonce"].as_data().unwrap().len(), 20);
    assert_ne!(random["ApNonce"].as_data(), recorded.ap_nonce.as_deref());

    let (code, _, _) = run.run(Some(&server), None, &["--ap-nonce", "device"]);
    assert_eq!(code, 0);
    let asked = server.tss_requests()[1].plist();
    assert_eq!(asked["ApNonce"].as_data(), recorded.ap_nonce.as_deref());
    assert_eq!(asked["SepNonce"].as_data(), recorded.sep_nonce.as_deref());
}

#[test]
fn ecid_with_a_named_device_personalizes_without_usb() {
    let run = AutoRun::new(vec![]);
    let server = FakeServer::apple_and_ipswme(Reply::ok(signed_body()), Reply::status(404));
    let (code, out, err) = run_env(
        &[
            run.ipsw.to_str().unwrap(),
            "--device",
            "iPhone9,3",
            "--ecid",
            "7366571670679408",
            "--json",
            "--quick",
            "--tss-url",
            &server.tss_url(),
            "--api-url",
            &server.api_url(),
            "--hosts-file",
            "/nonexistent/ipswcheck-test/hosts",
            "--cache-dir",
            run.dir.path().join("cache").to_str().unwrap(),
        ],
        &[(
            "IPSWCHECK_USB_FIXTURE",
            "/nonexistent/ipswcheck-test/usb.json",
        )],
    );
    assert_eq!(code, 0, "{out}{err}");
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(doc["checks"]["signing"]["message"]
        .as_str()
        .unwrap()
        .starts_with("Apple will sign 15.8 for this iPhone (ECID 0x1A2BDB9FA4AF70)"));
    assert_eq!(
        server.tss_requests()[0].plist()["ApECID"].as_unsigned_integer(),
        Some(7_366_571_670_679_408)
    );
    // No device on the cable was looked for: no device note.
    assert!(!doc["notes"].to_string().contains("connected_device"));
}

#[test]
fn a_broken_listing_is_one_line_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("usb.json");
    std::fs::write(&bad, "{\"devices\": [{\"bus\": 1}]}").unwrap();
    let (code, out, err) = run_env(
        &["doctor", "--usb"],
        &[("IPSWCHECK_USB_FIXTURE", bad.to_str().unwrap())],
    );
    assert_eq!(code, 2, "{out}{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains(bad.to_str().unwrap()) && err.contains("not a recorded USB listing"),
        "{err}"
    );
}

/// A usbmuxd that answers garbage, or never answers: an error, not a hang.
#[test]
fn a_hostile_usbmuxd_is_an_error_not_a_hang() {
    use std::io::{Read, Write};
    use std::os::unix::net::UnixListener;
    for reply in [
        Some(vec![0xff; 16]),
        Some(b"0123456789abcdef<plist".to_vec()),
        None,
    ] {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("usbmuxd");
        let listener = UnixListener::bind(&socket).unwrap();
        std::thread::spawn(move || {
            let mut held = Vec::new();
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { return };
                let mut buf = [0u8; 64];
                let _ = stream.read(&mut buf);
                if let Some(reply) = &reply {
                    let _ = stream.write_all(reply);
                }
                held.push(stream); // never closed: a silent peer
            }
        });
        let started = std::time::Instant::now();
        let result = usb::lockdown::query(&socket, None);
        assert!(result.is_err(), "{result:?}");
        assert!(started.elapsed() < std::time::Duration::from_secs(30));
    }
}

#[test]
fn fetch_with_auto_names_the_device_too() {
    let run = AutoRun::new(vec![apple(0x1281, RECOVERY_IPHONE6S, "high", &[2])]);
    let files = crate::util::remote::FileServer::start();
    let url = files.serve("s.ipsw", &run.ipsw);
    let dest = run.dir.path().join("fetched.ipsw");
    let socket = run.dir.path().join("no-usbmuxd");
    let (code, out, err) = run_env(
        &[
            "fetch",
            &url,
            "-o",
            dest.to_str().unwrap(),
            "--device",
            "auto",
            "--offline",
            "--json",
        ],
        &[
            ("IPSWCHECK_USB_FIXTURE", run.listing.to_str().unwrap()),
            ("IPSWCHECK_USBMUXD_SOCKET", socket.to_str().unwrap()),
        ],
    );
    // The sample file is for iPhone9,x: the iPhone 6s on the cable refuses it, as
    // `--device iPhone8,1 --board n71ap` would, and the report says which device it was.
    assert_eq!(code, 20, "{out}{err}");
    assert!(!dest.exists());
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(doc["device"]["board"], "n71ap");
    assert!(
        notes(&doc)
            .iter()
            .any(|n| n.contains("iPhone 6s (iPhone8,1, n71ap) in Recovery mode")),
        "{doc:#}"
    );
}
