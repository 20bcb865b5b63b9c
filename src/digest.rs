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

    /// A running hash through the fastest backend built in ([`Backend::fastest`]).
    pub fn hasher(self) -> Hasher {
        Hasher::with_backend(self, Backend::fastest(self))
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

/// Who computes a hash. The digest is the same whoever computes it; only the speed
/// differs, and on the stored multi-GB OS image of a modern IPSW the speed of one
/// SHA-384 stream *is* the speed of the check (FIRMWARE.md §6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Backend {
    /// RustCrypto `sha1` / `sha2`: pure Rust (SHA-NI for SHA-1/SHA-256 where the CPU
    /// has it), builds on every target Rust does.
    RustCrypto,
    /// aws-lc (through `aws-lc-rs`, already linked for rustls): OpenSSL-lineage
    /// assembly, notably its AVX2/BMI2 SHA-512 family, which RustCrypto lacks. Only with
    /// the `aws-lc` cargo feature (on by default).
    #[cfg(feature = "aws-lc")]
    AwsLc,
}

impl Backend {
    /// The backend for `algorithm`, chosen by the single-core throughputs measured on
    /// the reference machine (BENCHMARKS.md, "Hash backends"): aws-lc for SHA-384
    /// (RustCrypto has no SHA-512 assembly), and for SHA-1/SHA-256 whichever was faster
    /// there. Builds without the `aws-lc` feature use RustCrypto for everything.
    pub fn fastest(algorithm: DigestAlgorithm) -> Backend {
        #[cfg(feature = "aws-lc")]
        if AWS_LC_WINS.contains(&algorithm) {
            return Backend::AwsLc;
        }
        let _ = algorithm;
        Backend::RustCrypto
    }

    /// Every backend built in.
    pub fn all() -> &'static [Backend] {
        &[
            Backend::RustCrypto,
            #[cfg(feature = "aws-lc")]
            Backend::AwsLc,
        ]
    }

    pub fn name(self) -> &'static str {
        match self {
            Backend::RustCrypto => "rustcrypto",
            #[cfg(feature = "aws-lc")]
            Backend::AwsLc => "aws-lc",
        }
    }
}

/// The algorithms aws-lc computes faster than RustCrypto here (BENCHMARKS.md).
#[cfg(feature = "aws-lc")]
const AWS_LC_WINS: &[DigestAlgorithm] = &[DigestAlgorithm::Sha384];

/// A running hash of one of the manifest algorithms.
#[derive(Clone)]
pub struct Hasher(Inner);

#[derive(Clone)]
enum Inner {
    Sha1(Sha1),
    Sha256(Sha256),
    Sha384(Sha384),
    #[cfg(feature = "aws-lc")]
    AwsLc(aws_lc_rs::digest::Context),
}

impl Hasher {
    /// A running `algorithm` hash computed by `backend` (benchmarks compare them).
    pub fn with_backend(algorithm: DigestAlgorithm, backend: Backend) -> Hasher {
        match backend {
            Backend::RustCrypto => Hasher(match algorithm {
                DigestAlgorithm::Sha1 => Inner::Sha1(Sha1::new()),
                DigestAlgorithm::Sha256 => Inner::Sha256(Sha256::new()),
                DigestAlgorithm::Sha384 => Inner::Sha384(Sha384::new()),
            }),
            #[cfg(feature = "aws-lc")]
            Backend::AwsLc => {
                use aws_lc_rs::digest;
                let alg = match algorithm {
                    DigestAlgorithm::Sha1 => &digest::SHA1_FOR_LEGACY_USE_ONLY,
                    DigestAlgorithm::Sha256 => &digest::SHA256,
                    DigestAlgorithm::Sha384 => &digest::SHA384,
                };
                Hasher(Inner::AwsLc(digest::Context::new(alg)))
            }
        }
    }

    pub fn update(&mut self, data: &[u8]) {
        match &mut self.0 {
            Inner::Sha1(h) => h.update(data),
            Inner::Sha256(h) => h.update(data),
            Inner::Sha384(h) => h.update(data),
            #[cfg(feature = "aws-lc")]
            Inner::AwsLc(h) => h.update(data),
        }
    }

    pub fn finish(self) -> Vec<u8> {
        match self.0 {
            Inner::Sha1(h) => h.finalize().to_vec(),
            Inner::Sha256(h) => h.finalize().to_vec(),
            Inner::Sha384(h) => h.finalize().to_vec(),
            #[cfg(feature = "aws-lc")]
            Inner::AwsLc(h) => h.finish().as_ref().to_vec(),
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
    fn every_backend_gives_the_same_digest_whatever_the_chunking() {
        let data: Vec<u8> = (0..300_001u32).map(|i| (i * 2_654_435_761) as u8).collect();
        for alg in [
            DigestAlgorithm::Sha1,
            DigestAlgorithm::Sha256,
            DigestAlgorithm::Sha384,
        ] {
            let want = {
                let mut h = Hasher::with_backend(alg, Backend::RustCrypto);
                h.update(&data);
                h.finish()
            };
            assert_eq!(want.len(), alg.output_len());
            for &backend in Backend::all() {
                for chunk in [1, 63, 4096, 1 << 20] {
                    let mut h = Hasher::with_backend(alg, backend);
                    for c in data.chunks(chunk) {
                        h.update(c);
                    }
                    assert_eq!(h.finish(), want, "{alg} {} chunk {chunk}", backend.name());
                }
            }
        }
    }

    #[test]
    fn hex_round_trips() {
        assert_eq!(from_hex("0aFf"), Some(vec![0x0a, 0xff]));
        assert_eq!(from_hex("abc"), None);
        assert_eq!(from_hex("zz"), None);
        assert_eq!(to_hex(&[0x0a, 0xff]), "0aff");
    }
}
