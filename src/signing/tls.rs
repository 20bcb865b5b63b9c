//! Whom the signing client trusts: the platform's roots, Apple's own roots, and the roots
//! the user adds with `--ca-file`.
//!
//! **Why Apple's roots are embedded** (FIRMWARE.md §4, "TLS"): gs.apple.com's certificate
//! is issued by "Apple Server Authentication CA", an intermediate under Apple's own roots
//! (Apple Root CA, G2, G3). Those roots are not in the Mozilla/Debian trust stores, so on
//! Linux a client that verifies with the platform roots alone gets "unknown issuer" from
//! Apple's signing server (danielpaulus/go-ios PR #348). Peers react by turning
//! verification off or falling back to plain http — which lets a hosts-file redirect or
//! an interception proxy forge a "signed" answer. We keep verification on and add Apple's
//! three public roots as *extra* trust anchors, on top of the platform's (reqwest's
//! `tls_certs_merge`, i.e. rustls-platform-verifier's `new_with_extra_roots`). The copies
//! in `roots/` are byte-for-byte `../shared/data/tls/*.pem`; the tests below recompute
//! their SHA-256 fingerprints and compare them with the values Apple publishes.
//!
//! **`--ca-file PEM`** (`IPSWCHECK_CA_FILE`) adds the user's own roots, for networks where
//! a proxy or security product inspects TLS and re-signs every certificate with its own
//! root. It only ever *adds* anchors; nothing here can switch verification off.

use std::path::{Path, PathBuf};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;

/// One of Apple's public root certificates, as embedded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppleRoot {
    /// The certificate's common name.
    pub name: &'static str,
    /// The file name, in `src/signing/roots/` and `../shared/data/tls/`.
    pub file: &'static str,
    /// The PEM text.
    pub pem: &'static str,
}

/// Apple Root CA, Apple Root CA - G2 and Apple Root CA - G3 (apple.com/certificateauthority).
pub const APPLE_ROOTS: [AppleRoot; 3] = [
    AppleRoot {
        name: "Apple Root CA",
        file: "AppleRootCA.pem",
        pem: include_str!("roots/AppleRootCA.pem"),
    },
    AppleRoot {
        name: "Apple Root CA - G2",
        file: "AppleRootCA-G2.pem",
        pem: include_str!("roots/AppleRootCA-G2.pem"),
    },
    AppleRoot {
        name: "Apple Root CA - G3",
        file: "AppleRootCA-G3.pem",
        pem: include_str!("roots/AppleRootCA-G3.pem"),
    },
];

impl AppleRoot {
    /// The certificate's DER bytes.
    pub fn der(&self) -> Vec<u8> {
        CertificateDer::from_pem_slice(self.pem.as_bytes())
            .map(|der| der.as_ref().to_vec())
            .unwrap_or_else(|e| panic!("embedded {} is not a PEM certificate: {e}", self.file))
    }
}

/// The largest `--ca-file` read: a bundle of every public root is about 200 KiB.
pub const MAX_CA_FILE: u64 = 1024 * 1024;

/// Why a `--ca-file` cannot be used. Its message is one line naming the file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("--ca-file {}: {reason}", path.display())]
pub struct CaFileError {
    pub path: PathBuf,
    pub reason: String,
}

/// The certificates (DER) of a PEM file of root certificates, each checked to be usable
/// as a trust anchor. The file must be a regular file of at most [`MAX_CA_FILE`] bytes
/// holding at least one `-----BEGIN CERTIFICATE-----` block; anything else is an error
/// naming the file.
pub fn load_ca_file(path: &Path) -> Result<Vec<Vec<u8>>, CaFileError> {
    let fail = |reason: String| CaFileError {
        path: path.to_path_buf(),
        reason,
    };
    let bytes = read_bounded(path).map_err(fail)?;
    let mut certs = Vec::new();
    for (i, item) in CertificateDer::pem_slice_iter(&bytes).enumerate() {
        let der =
            item.map_err(|e| fail(format!("certificate #{} is not valid PEM: {e}", i + 1)))?;
        // What the verifier will do with it: parse it as a trust anchor.
        rustls::RootCertStore::empty()
            .add(der.clone())
            .map_err(|e| {
                let why = match e {
                    rustls::Error::InvalidCertificate(c) => {
                        format!("not a valid X.509 certificate ({c:?})")
                    }
                    other => other.to_string(),
                };
                fail(format!(
                    "certificate #{} cannot be used as a root: {why}",
                    i + 1
                ))
            })?;
        certs.push(der.as_ref().to_vec());
    }
    if certs.is_empty() {
        let hint = if bytes.first() == Some(&0x30) {
            " (it looks like DER: convert it with `openssl x509 -inform der -in FILE -out FILE.pem`)"
        } else {
            ""
        };
        return Err(fail(format!(
            "no PEM certificate (-----BEGIN CERTIFICATE-----) in it{hint}"
        )));
    }
    Ok(certs)
}

/// The bytes of `path`, a regular file of at most [`MAX_CA_FILE`] bytes
/// ([`crate::input`]: a FIFO or a device is refused without blocking on it).
fn read_bounded(path: &Path) -> Result<Vec<u8>, String> {
    crate::input::read_bounded(path, MAX_CA_FILE).map_err(|e| match e {
        crate::input::InputError::TooLarge { .. } => format!(
            "larger than {} KiB; not a PEM file of roots",
            MAX_CA_FILE / 1024
        ),
        crate::input::InputError::NotRegular(_) => "is not a regular file".to_owned(),
        other => other.to_string(),
    })
}

/// The extra trust anchors of the signing client: Apple's roots, then the user's.
pub(crate) fn extra_roots(ca_file: Option<&Path>) -> Result<Vec<Vec<u8>>, CaFileError> {
    let mut roots: Vec<Vec<u8>> = APPLE_ROOTS.iter().map(AppleRoot::der).collect();
    if let Some(path) = ca_file {
        roots.extend(load_ca_file(path)?);
    }
    Ok(roots)
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::{Digest, Sha256};

    /// Apple's published SHA-256 fingerprints (apple.com/certificateauthority, copied in
    /// ../shared/data/tls/README.md). Hard-coded: they are published facts, not data.
    const PUBLISHED: [(&str, &str); 3] = [
        (
            "AppleRootCA.pem",
            "B0:B1:73:0E:CB:C7:FF:45:05:14:2C:49:F1:29:5E:6E:DA:6B:CA:ED:7E:2C:68:C5:BE:91:B5:A1:10:01:F0:24",
        ),
        (
            "AppleRootCA-G2.pem",
            "C2:B9:B0:42:DD:57:83:0E:7D:11:7D:AC:55:AC:8A:E1:94:07:D3:8E:41:D8:8F:32:15:BC:3A:89:04:44:A0:50",
        ),
        (
            "AppleRootCA-G3.pem",
            "63:34:3A:BF:B8:9A:6A:03:EB:B5:7E:9B:3F:5F:A7:BE:7C:4F:5C:75:6F:30:17:B3:A8:C4:88:C3:65:3E:91:79",
        ),
    ];

    fn fingerprint(der: &[u8]) -> String {
        Sha256::digest(der)
            .iter()
            .map(|b| format!("{b:02X}"))
            .collect::<Vec<_>>()
            .join(":")
    }

    #[test]
    fn embedded_apple_roots_have_apples_published_fingerprints() {
        assert_eq!(APPLE_ROOTS.len(), PUBLISHED.len());
        for (root, (file, published)) in APPLE_ROOTS.iter().zip(PUBLISHED) {
            assert_eq!(root.file, file);
            // Exactly one certificate per file.
            assert_eq!(
                CertificateDer::pem_slice_iter(root.pem.as_bytes()).count(),
                1,
                "{file}"
            );
            assert_eq!(
                fingerprint(&root.der()),
                published,
                "{file} ({})",
                root.name
            );
        }
    }

    #[test]
    fn embedded_apple_roots_are_usable_trust_anchors() {
        let mut store = rustls::RootCertStore::empty();
        for root in &APPLE_ROOTS {
            store.add(CertificateDer::from(root.der())).unwrap();
        }
        assert_eq!(store.len(), 3);
        assert_eq!(extra_roots(None).unwrap().len(), 3);
    }

    /// `../shared` beside the repository (CI always has it).
    fn shared_tls_dir() -> Option<PathBuf> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/tls");
        if dir.is_dir() {
            return Some(dir);
        }
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("{} is missing, and CI=true requires it", dir.display());
        }
        eprintln!(
            "\n*** NOTE: {} is absent: the embedded Apple roots were NOT compared with the \
             reference copies (their fingerprints were still checked). ***\n",
            dir.display()
        );
        None
    }

    #[test]
    fn embedded_apple_roots_equal_the_reference_copies() {
        let Some(dir) = shared_tls_dir() else {
            return;
        };
        for root in &APPLE_ROOTS {
            let reference = std::fs::read_to_string(dir.join(root.file))
                .unwrap_or_else(|e| panic!("{}: {e}", dir.join(root.file).display()));
            assert_eq!(
                root.pem, reference,
                "src/signing/roots/{} differs",
                root.file
            );
        }
    }

    #[test]
    fn a_ca_file_is_checked_and_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let bundle = dir.path().join("bundle.pem");
        std::fs::write(
            &bundle,
            format!(
                "# two roots\n{}\n{}",
                APPLE_ROOTS[0].pem, APPLE_ROOTS[2].pem
            ),
        )
        .unwrap();
        assert_eq!(load_ca_file(&bundle).unwrap().len(), 2);
        assert_eq!(extra_roots(Some(&bundle)).unwrap().len(), 5);

        let reason = |path: &Path| {
            let e = load_ca_file(path).unwrap_err();
            let text = e.to_string();
            assert!(
                text.starts_with(&format!("--ca-file {}: ", path.display())),
                "{text}"
            );
            assert!(!text.contains('\n'), "{text}");
            e.reason
        };
        assert_eq!(reason(&dir.path().join("missing.pem")), "no such file");
        assert!(reason(dir.path()).contains("directory"));

        let text = dir.path().join("text.pem");
        std::fs::write(&text, "hello\n").unwrap();
        assert!(reason(&text).contains("no PEM certificate"));

        let der = dir.path().join("root.der");
        std::fs::write(&der, APPLE_ROOTS[1].der()).unwrap();
        assert!(reason(&der).contains("looks like DER"));

        let broken = dir.path().join("broken.pem");
        std::fs::write(
            &broken,
            "-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        assert!(
            reason(&broken).contains("certificate #1"),
            "{}",
            reason(&broken)
        );

        // Valid base64, but not a certificate.
        let garbage = dir.path().join("garbage.pem");
        std::fs::write(
            &garbage,
            "-----BEGIN CERTIFICATE-----\nAAECAwQFBgcICQ==\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        assert!(reason(&garbage).contains("cannot be used as a root"));

        let huge = dir.path().join("huge.pem");
        std::fs::write(&huge, vec![b'A'; MAX_CA_FILE as usize + 1]).unwrap();
        assert!(reason(&huge).contains("larger than"));
    }

    #[cfg(unix)]
    #[test]
    fn a_fifo_is_refused_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo.pem");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        assert_eq!(
            load_ca_file(&fifo).unwrap_err().reason,
            "is not a regular file"
        );
    }
}
