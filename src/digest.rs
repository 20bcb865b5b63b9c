//! Digest algorithms Apple uses in BuildManifests, and a hasher that speaks all three.
//!
//! Apple never names the algorithm next to a `Digest`; the length says it (FIRMWARE.md §3,
//! verified on real files): 20 bytes SHA-1 (A9 and older boot chains, IMG3), 32 bytes
//! SHA-256 (Savage and other coprocessor firmware), 48 bytes SHA-384 (A10 and newer).

use serde::Serialize;
use sha1::Sha1;
use sha2::{Digest as _, Sha256, Sha384};

/// A hash function named by a manifest digest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DigestAlgorithm {
    Sha1,
    Sha256,
    Sha384,
}

impl DigestAlgorithm {
    /// The algorithm whose output has `len` bytes, as Apple's manifests imply.
    pub fn from_digest_len(len: usize) -> Option<Self> {
        match len {
            20 => Some(Self::Sha1),
            32 => Some(Self::Sha256),
            48 => Some(Self::Sha384),
            _ => None,
        }
    }

    /// The algorithm named by `Info/HashMethod` (`sha1`, `sha2-256`, `sha2-384`).
    pub fn from_hash_method(method: &str) -> Option<Self> {
        match method {
            "sha1" => Some(Self::Sha1),
            "sha2-256" => Some(Self::Sha256),
            "sha2-384" => Some(Self::Sha384),
            _ => None,
        }
    }

    pub fn output_len(self) -> usize {
        match self {
            Self::Sha1 => 20,
            Self::Sha256 => 32,
            Self::Sha384 => 48,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Sha1 => "sha1",
            Self::Sha256 => "sha256",
            Self::Sha384 => "sha384",
        }
    }

    /// The name people read: `SHA-1`, `SHA-256`, `SHA-384`.
    pub fn label(self) -> &'static str {
        match self {
            Self::Sha1 => "SHA-1",
            Self::Sha256 => "SHA-256",
            Self::Sha384 => "SHA-384",
        }
    }

    pub fn hasher(self) -> Hasher {
        match self {
            Self::Sha1 => Hasher::Sha1(Sha1::new()),
            Self::Sha256 => Hasher::Sha256(Sha256::new()),
            Self::Sha384 => Hasher::Sha384(Sha384::new()),
        }
    }

    /// Hash `data` in one call.
    pub fn digest(self, data: &[u8]) -> Vec<u8> {
        let mut h = self.hasher();
        h.update(data);
        h.finish()
    }
}

impl std::fmt::Display for DigestAlgorithm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A running hash of one of the manifest algorithms.
#[derive(Clone)]
pub enum Hasher {
    Sha1(Sha1),
    Sha256(Sha256),
    Sha384(Sha384),
}

impl Hasher {
    pub fn update(&mut self, data: &[u8]) {
        match self {
            Hasher::Sha1(h) => h.update(data),
            Hasher::Sha256(h) => h.update(data),
            Hasher::Sha384(h) => h.update(data),
        }
    }

    pub fn finish(self) -> Vec<u8> {
        match self {
            Hasher::Sha1(h) => h.finalize().to_vec(),
            Hasher::Sha256(h) => h.finalize().to_vec(),
            Hasher::Sha384(h) => h.finalize().to_vec(),
        }
    }
}

/// Lower-case hex, the form digests take in reports.
pub fn to_hex(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(HEX[(b >> 4) as usize] as char);
        s.push(HEX[(b & 15) as usize] as char);
    }
    s
}

/// Parse hex (either case, optional whitespace) into bytes; `None` when it is not hex.
pub fn from_hex(text: &str) -> Option<Vec<u8>> {
    let clean: Vec<u8> = text.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    if clean.len() % 2 != 0 {
        return None;
    }
    clean
        .chunks(2)
        .map(|pair| {
            let hi = (pair[0] as char).to_digit(16)?;
            let lo = (pair[1] as char).to_digit(16)?;
            Some((hi * 16 + lo) as u8)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn algorithm_follows_digest_length() {
        assert_eq!(
            DigestAlgorithm::from_digest_len(20),
            Some(DigestAlgorithm::Sha1)
        );
        assert_eq!(
            DigestAlgorithm::from_digest_len(32),
            Some(DigestAlgorithm::Sha256)
        );
        assert_eq!(
            DigestAlgorithm::from_digest_len(48),
            Some(DigestAlgorithm::Sha384)
        );
        assert_eq!(DigestAlgorithm::from_digest_len(28), None);
    }

    #[test]
    fn empty_input_hashes_to_the_published_values() {
        assert_eq!(
            to_hex(&DigestAlgorithm::Sha256.digest(b"")),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(
            to_hex(&DigestAlgorithm::Sha1.digest(b"abc")),
            "a9993e364706816aba3e25717850c26c9cd0d89d"
        );
    }

    #[test]
    fn hex_round_trips() {
        assert_eq!(from_hex("0aFf"), Some(vec![0x0a, 0xff]));
        assert_eq!(from_hex("abc"), None);
        assert_eq!(from_hex("zz"), None);
        assert_eq!(to_hex(&[0x0a, 0xff]), "0aff");
    }
}
