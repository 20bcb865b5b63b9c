//! Apple's TSS answer (`STATUS=…&MESSAGE=…&REQUEST_STRING=<plist>`), read without trust.
//!
//! Invariants: nothing panics; "signed" needs STATUS=0 and a ticket, "not signed" needs
//! STATUS=94 or 69, everything else is unknown; the message is short and printable.
#![no_main]

use ipswcheck::signing::{parse_tss_response, SigningStatus};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let answer = parse_tss_response(data);
    match answer.signing_status() {
        SigningStatus::Signed => assert!(answer.status == Some(0) && answer.has_ticket),
        SigningStatus::NotSigned => assert!(matches!(answer.status, Some(94 | 69))),
        SigningStatus::Unknown => {}
        SigningStatus::Skipped => panic!("a TSS answer is never 'skipped'"),
        // A dispute needs ipsw.me's word too; Apple's answer alone never is one.
        SigningStatus::Disputed => panic!("a TSS answer alone is never 'disputed'"),
    }
    if let Some(message) = &answer.message {
        assert!(message.chars().count() <= 300);
        assert!(!message.chars().any(char::is_control));
    }
    assert!(!answer.describe().is_empty());
});
