//! ipsw.me's v4 device answer (JSON), read leniently: a malformed firmware entry is
//! skipped, anything else is an error with a reason.
#![no_main]

use ipswcheck::signing::ipswme::parse_device_firmwares;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(firmwares) = parse_device_firmwares(data) {
        for fw in firmwares {
            if let Some(sha1) = fw.sha1() {
                assert_eq!(sha1.len(), 20);
            }
        }
    }
});
