//! The trusted whole-file digest short-circuit.
//!
//! Apple publishes the SHA-1 of every IPSW (its catalog's `FirmwareSHA1`, relayed by
//! ipsw.me's `sha1sum`), and users pass it with `--sha1` (or a SHA-256 with `--sha256`).
//! A file that hashes to it is byte-identical to Apple's, so every component digest and
//! every CRC-32 in it is implied: checking them again proves nothing more. The whole-file
//! digest is one stream over the file, so it is started first, on one core, while the
//! components run on the others; once it matches, the component jobs stop at their next
//! chunk and their components are reported "ok (covered by …)". A mismatch changes
//! nothing: the components finish as they would have, and name what is wrong.
//!
//! The expected digest may come late (ipsw.me answers on the signing thread while the
//! cores hash): whichever of "expected known" and "computed" comes second decides.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use crate::digest::DigestAlgorithm;

/// Who vouches for an expected whole-file digest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrustSource {
    /// `--sha1` / `--sha256` on the command line.
    User,
    /// ipsw.me's `sha1sum`: Apple's own whole-file SHA-1, relayed.
    IpswMe,
}

/// A whole-file digest that, when the file matches it, covers every component.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustedDigest {
    pub algorithm: DigestAlgorithm,
    pub digest: Vec<u8>,
    pub source: TrustSource,
}

impl TrustedDigest {
    /// The reason a covered component is reported with.
    pub fn covered_reason(&self) -> String {
        let label = self.algorithm.label();
        match self.source {
            TrustSource::User => {
                format!("covered by the whole-file {label} you gave (the file matches it)")
            }
            TrustSource::IpswMe => {
                format!("covered by the whole-file {label} Apple published (via ipsw.me)")
            }
        }
    }
}

/// The trusted digest, once known, and the computed ones, once hashed.
type State = (
    Option<TrustedDigest>,
    Option<BTreeMap<DigestAlgorithm, Vec<u8>>>,
);

/// What one plan knows about its whole-file digest, filled from two threads.
#[derive(Default)]
pub(super) struct Shortcut {
    state: Mutex<State>,
    /// Set once the computed digest equals the trusted one: component jobs stop.
    pub(super) covered: AtomicBool,
}

impl Shortcut {
    /// An expected digest is known (the flag, at planning; ipsw.me's, later). The first
    /// one offered stays.
    pub(super) fn expect(&self, trusted: TrustedDigest) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if state.0.is_none() {
            state.0 = Some(trusted);
        }
        self.decide(&state);
    }

    /// The whole-file digests are computed.
    pub(super) fn computed(&self, digests: &BTreeMap<DigestAlgorithm, Vec<u8>>) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.1 = Some(digests.clone());
        self.decide(&state);
    }

    fn decide(&self, state: &State) {
        if let (Some(t), Some(c)) = state {
            if c.get(&t.algorithm) == Some(&t.digest) {
                self.covered.store(true, Ordering::Release);
            }
        }
    }

    /// The digest that covers the file, once it does.
    pub(super) fn covering(&self) -> Option<TrustedDigest> {
        if !self.covered.load(Ordering::Acquire) {
            return None;
        }
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.0.clone()
    }
}

/// When a job stops early: the user's cancel (Ctrl-C, a failed download), or its plan's
/// components being covered by the whole-file digest. Reads like the `AtomicBool` it
/// extends, so the streaming loops test it the same way.
#[derive(Clone, Copy)]
pub(super) struct Stop<'s> {
    cancel: &'s AtomicBool,
    covered: Option<&'s AtomicBool>,
}

impl<'s> Stop<'s> {
    /// Only the user's cancel.
    pub(super) fn plain(cancel: &'s AtomicBool) -> Self {
        Stop {
            cancel,
            covered: None,
        }
    }

    pub(super) fn or_covered(cancel: &'s AtomicBool, covered: &'s AtomicBool) -> Self {
        Stop {
            cancel,
            covered: Some(covered),
        }
    }

    pub(super) fn load(&self, order: Ordering) -> bool {
        self.cancel.load(order) || self.covered.is_some_and(|c| c.load(order))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trusted(digest: &[u8]) -> TrustedDigest {
        TrustedDigest {
            algorithm: DigestAlgorithm::Sha1,
            digest: digest.to_vec(),
            source: TrustSource::IpswMe,
        }
    }

    #[test]
    fn covered_whichever_comes_second_and_only_on_a_match() {
        let computed: BTreeMap<_, _> = [(DigestAlgorithm::Sha1, vec![1u8; 20])].into();
        // expected first
        let s = Shortcut::default();
        s.expect(trusted(&[1; 20]));
        assert!(s.covering().is_none());
        s.computed(&computed);
        assert_eq!(s.covering(), Some(trusted(&[1; 20])));
        // computed first
        let s = Shortcut::default();
        s.computed(&computed);
        s.expect(trusted(&[1; 20]));
        assert!(s.covered.load(Ordering::Relaxed));
        // a mismatch covers nothing
        let s = Shortcut::default();
        s.computed(&computed);
        s.expect(trusted(&[2; 20]));
        assert!(s.covering().is_none());
        // the wrong algorithm covers nothing
        let s = Shortcut::default();
        s.computed(&computed);
        s.expect(TrustedDigest {
            algorithm: DigestAlgorithm::Sha256,
            ..trusted(&[1; 20])
        });
        assert!(s.covering().is_none());
    }

    #[test]
    fn stop_reads_both_flags() {
        let cancel = AtomicBool::new(false);
        let covered = AtomicBool::new(false);
        let stop = Stop::or_covered(&cancel, &covered);
        assert!(!stop.load(Ordering::Relaxed));
        covered.store(true, Ordering::Relaxed);
        assert!(stop.load(Ordering::Relaxed));
        assert!(!Stop::plain(&cancel).load(Ordering::Relaxed));
    }
}
