//! The check of one IPSW, end to end: open → identify → verify ∥ sign → report.
//!
//! Every failure ends up in the [`Report`] as data; this function never returns an
//! error. Signing runs on its own thread while the cores hash, so the network round
//! trip costs no wall time on a full check.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crate::archive::{Archive, ArchiveError};
use crate::device::Device;
use crate::digest::{to_hex, DigestAlgorithm};
use crate::identify;
use crate::manifest::{BuildIdentity, BuildManifest, RestoreBehavior, RestorePlist};
use crate::report::{
    ArchiveCheck, CheckStatus, Checks, ChecksumCheck, CompatibilityCheck, ComponentsCheck,
    DeviceFacts, FirmwareFacts, IdentityFacts, Problem, Report, Verdict, SCHEMA,
};
use crate::signing::{self, SigningCheck, SigningOptions};
use crate::verify::{self, ComponentStatus, VerifyOptions, VerifyPlan};

/// The largest plist ipswcheck will read (iOS 26 manifests are a few MB).
pub const MAX_PLIST_BYTES: u64 = 64 << 20;

/// A whole-file digest the user expects (`--sha1`, `--sha256`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpectedChecksum {
    pub algorithm: DigestAlgorithm,
    pub digest: Vec<u8>,
}

/// What to check.
#[derive(Debug, Clone)]
pub struct CheckOptions {
    /// The boards of the device asked about (`device::resolve`); `None` checks every
    /// customer identity.
    pub device: Option<Vec<&'static Device>>,
    pub behavior: RestoreBehavior,
    /// Directory, manifest and device only: no hashing.
    pub quick: bool,
    pub expected: Option<ExpectedChecksum>,
    pub signing: SigningOptions,
}

/// Progress of a running check, polled by the display.
#[derive(Debug, Default)]
pub struct Progress {
    /// Bytes read so far.
    pub done: AtomicU64,
    /// Bytes the check will read in all (known once the plan is made).
    pub total: AtomicU64,
    /// Set to stop the check early (Ctrl-C).
    pub cancel: AtomicBool,
}

/// An opened IPSW with its manifests read: the "open" and "identify" inputs.
pub struct OpenedIpsw {
    pub archive: Archive,
    pub manifest: BuildManifest,
    pub restore: Option<RestorePlist>,
}

/// Why a file could not be opened as an IPSW.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("{0}")]
    Archive(#[from] ArchiveError),
    #[error("has no BuildManifest.plist, so it is not an IPSW")]
    NoManifest,
    #[error("BuildManifest.plist cannot be read: {0}")]
    ManifestUnreadable(crate::archive::EntryError),
    #[error("{0}")]
    Manifest(#[from] crate::manifest::ManifestError),
}

impl OpenError {
    /// Whether the failure is damage to a zip (exit 10) rather than "not an IPSW" (3).
    pub fn is_damage(&self) -> bool {
        use crate::archive::EntryError as E;
        match self {
            OpenError::Archive(e) => e.is_damage(),
            // The manifest entry is there but its bytes are broken (a cut-off or corrupt
            // download): damage, like any other entry's CRC failure.
            OpenError::ManifestUnreadable(e) => matches!(
                e,
                E::BadLocalHeader(_)
                    | E::LocalHeaderMismatch(_)
                    | E::OutOfBounds
                    | E::Inflate(_)
                    | E::LargerThanDeclared(_)
                    | E::ShorterThanDeclared { .. }
                    | E::Crc { .. }
            ),
            _ => false,
        }
    }
}

/// Open `path` and read its manifests.
pub fn open_ipsw(path: &Path) -> Result<OpenedIpsw, OpenError> {
    let archive = Archive::open(path)?;
    let entry = archive
        .entry("BuildManifest.plist")
        .ok_or(OpenError::NoManifest)?;
    let bytes = archive
        .read_small(entry, MAX_PLIST_BYTES)
        .map_err(OpenError::ManifestUnreadable)?;
    let manifest = BuildManifest::from_bytes(&bytes).map_err(|e| {
        if archive.has_duplicate_names() {
            // The zip crate keeps one record per name, maybe not the manifest a restore
            // would read: a damaged (or crafted) directory, not "not an IPSW".
            OpenError::Archive(ArchiveError::BrokenDirectory(format!(
                "the central directory names an entry more than once, and the \
                 BuildManifest.plist it keeps does not parse ({e})"
            )))
        } else {
            e.into()
        }
    })?;
    let restore = archive
        .entry("Restore.plist")
        .and_then(|e| archive.read_small(e, MAX_PLIST_BYTES).ok())
        .and_then(|b| RestorePlist::from_bytes(&b).ok());
    Ok(OpenedIpsw {
        archive,
        manifest,
        restore,
    })
}

/// Check one file. Never fails: problems are in the report.
pub fn check_file(path: &Path, options: &CheckOptions, progress: &Progress) -> Report {
    match open_ipsw(path) {
        Ok(ipsw) => check_opened(&ipsw, options, progress),
        Err(e) => unreadable_report(path, options, &e),
    }
}

/// The report for a file that is not a readable IPSW.
pub fn unreadable_report(path: &Path, options: &CheckOptions, error: &OpenError) -> Report {
    let size = std::fs::metadata(path)
        .ok()
        .filter(|m| m.is_file())
        .map(|m| m.len());
    let mut checks = Checks::skipped("the file is not a readable IPSW");
    let damage = error.is_damage();
    let (check, hint) = if damage {
        checks.archive.status = CheckStatus::Fail;
        checks.archive.damage.push(verify::EntryDamage {
            entry: String::new(),
            problem: error.to_string(),
            crc: false,
        });
        (
            "archive",
            "download the file again; if your browser or tool can resume, the rest is missing",
        )
    } else {
        ("file", "point ipswcheck at an .ipsw restore file")
    };
    let mut report = Report {
        schema: SCHEMA,
        file: path.display().to_string(),
        size,
        bytes_fetched: None,
        verdict: Verdict::NotReady,
        exit_code: 0,
        firmware: None,
        device: device_facts(options),
        identity: None,
        checks,
        predicted_restore_error: None,
        problems: vec![Problem {
            check: check.into(),
            message: format!("{}: {error}", path.display()),
            hint: Some(hint.into()),
        }],
    };
    report.conclude(!damage, false);
    report
}

fn device_facts(options: &CheckOptions) -> Option<DeviceFacts> {
    let boards = options.device.as_ref()?;
    let first = boards.first()?;
    Some(DeviceFacts {
        product_type: first.product_type.to_owned(),
        board: first.board.to_owned(),
        chip_id: format!("0x{:04X}", first.chip_id),
        board_id: format!("0x{:02X}", first.board_id),
        name: first.name.to_owned(),
        boards: boards.iter().map(|d| d.board.to_owned()).collect(),
    })
}

/// Check an opened IPSW: prepare, then hash and ask Apple at the same time, then judge.
pub fn check_opened(ipsw: &OpenedIpsw, options: &CheckOptions, progress: &Progress) -> Report {
    let prepared = PreparedCheck::new(ipsw, options);
    progress
        .total
        .store(prepared.plan().total_work(), Ordering::Relaxed);
    let signing = std::thread::scope(|s| {
        let signer = s.spawn(|| prepared.sign());
        verify::run_plans(&[prepared.plan()], &progress.done, &progress.cancel);
        signer.join().unwrap_or_else(|_| {
            let mut failed = SigningCheck::skipped("the signing check failed internally");
            failed.status = signing::SigningStatus::Unknown;
            failed
        })
    });
    prepared.finish(signing)
}

/// One file's check after "identify" and before "verify": the identities chosen, the
/// compatibility verdict and the verification plan. A library scan prepares every file,
/// runs all plans through one queue, then finishes each.
pub struct PreparedCheck<'a> {
    ipsw: &'a OpenedIpsw,
    options: &'a CheckOptions,
    identities: Vec<&'a BuildIdentity>,
    compatibility: CompatibilityCheck,
    problems: Vec<Problem>,
    plan: VerifyPlan<'a>,
}

impl<'a> PreparedCheck<'a> {
    pub fn new(ipsw: &'a OpenedIpsw, options: &'a CheckOptions) -> Self {
        let manifest = &ipsw.manifest;
        let mut problems = Vec::new();
        let selection = identify::select(manifest, options.device.as_deref(), options.behavior);
        let (identities, compatibility) = match selection {
            Ok(ids) => {
                let message = match &options.device {
                    Some(boards) => format!(
                        "{} is supported ({})",
                        boards[0].product_type,
                        ids.iter()
                            .filter_map(|i| i.info.device_class.as_deref())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                    None => "no device given: every customer identity is checked".into(),
                };
                let status = if options.device.is_some() {
                    CheckStatus::Ok
                } else {
                    CheckStatus::Skipped
                };
                (ids, CompatibilityCheck { status, message })
            }
            Err(why) => {
                problems.push(Problem {
                    check: "compatibility".into(),
                    message: why.message.clone(),
                    hint: Some(why.hint),
                });
                // Still check the file's integrity: it may serve another device.
                (
                    identify::customer_identities(manifest, options.behavior),
                    CompatibilityCheck {
                        status: CheckStatus::Fail,
                        message: why.message,
                    },
                )
            }
        };
        let mut whole_file = Vec::new();
        if let Some(e) = &options.expected {
            whole_file.push(e.algorithm);
        }
        if !options.signing.offline && !whole_file.contains(&DigestAlgorithm::Sha1) {
            // ipsw.me publishes Apple's whole-file SHA-1: compute it alongside, at no
            // cost in wall time, so its answer can be compared.
            whole_file.push(DigestAlgorithm::Sha1);
        }
        let plan = VerifyPlan::new(
            &ipsw.archive,
            &identities,
            VerifyOptions {
                hash: !options.quick,
                whole_file,
            },
        );
        PreparedCheck {
            ipsw,
            options,
            identities,
            compatibility,
            problems,
            plan,
        }
    }

    pub fn plan(&self) -> &VerifyPlan<'a> {
        &self.plan
    }

    pub fn identities(&self) -> &[&'a BuildIdentity] {
        &self.identities
    }

    pub fn manifest(&self) -> &'a BuildManifest {
        &self.ipsw.manifest
    }

    /// Whether the file is for the device asked about (true when none was given).
    pub fn is_compatible(&self) -> bool {
        self.compatibility.status != CheckStatus::Fail
    }

    /// The product type asked about.
    pub fn product_type(&self) -> Option<&'static str> {
        self.options
            .device
            .as_ref()
            .and_then(|d| d.first())
            .map(|d| d.product_type)
    }

    /// Ask Apple (and ipsw.me) about the chosen identities.
    pub fn sign(&self) -> SigningCheck {
        if self.is_compatible() {
            signing::check_signing(
                &self.ipsw.manifest,
                &self.identities,
                self.product_type(),
                &self.options.signing,
            )
        } else {
            SigningCheck::skipped("the file is not for this device")
        }
    }

    /// Ask through a shared [`signing::SigningSession`] (a library scan: one TSS query
    /// per distinct identity across all files, answers shared with the on-disk cache).
    pub fn sign_with(&self, session: &signing::SigningSession) -> SigningCheck {
        if self.is_compatible() {
            session.check(&self.ipsw.manifest, &self.identities, self.product_type())
        } else {
            SigningCheck::skipped("the file is not for this device")
        }
    }

    /// Judge the verification (run by now) and the signing answer into a report.
    pub fn finish(self, signing: SigningCheck) -> Report {
        self.conclude(None, signing).0
    }

    /// [`PreparedCheck::finish`], also handing back the verification findings (what the
    /// scan's verified-results cache stores).
    pub fn finish_keeping(self, signing: SigningCheck) -> (Report, verify::Verification) {
        let (report, fresh) = self.conclude(None, signing);
        (report, fresh.unwrap_or_default())
    }

    /// Like [`PreparedCheck::finish`], with the findings of an earlier complete
    /// verification of the same unchanged file (the scan's verified-results cache)
    /// instead of running the plan.
    pub fn finish_with(self, verification: &verify::Verification, signing: SigningCheck) -> Report {
        self.conclude(Some(verification), signing).0
    }

    fn conclude(
        self,
        earlier: Option<&verify::Verification>,
        signing: SigningCheck,
    ) -> (Report, Option<verify::Verification>) {
        let PreparedCheck {
            ipsw,
            options,
            identities,
            compatibility,
            mut problems,
            plan,
        } = self;
        let archive = &ipsw.archive;
        let manifest = &ipsw.manifest;
        let fresh = match earlier {
            Some(_) => None,
            None => Some(plan.finish()),
        };
        let verification = match earlier {
            Some(v) => v,
            None => fresh.as_ref().expect("the plan was finished above"),
        };

        // archive
        let crc_failures = verification
            .damaged_entries
            .iter()
            .filter(|d| d.crc)
            .count();
        let mut damage = verification.damaged_entries.clone();
        if archive.has_duplicate_names() {
            damage.push(verify::EntryDamage {
                entry: String::new(),
                problem: "the central directory names an entry more than once".into(),
                crc: false,
            });
        }
        for e in archive
            .entries()
            .iter()
            .filter(|e| escapes_archive(&e.name))
        {
            damage.push(verify::EntryDamage {
                entry: e.name.clone(),
                problem: "its name is absolute or climbs out with `..`: Apple never writes \
                          such names, and a tool that unpacks this file could write outside \
                          its folder"
                    .into(),
                crc: false,
            });
        }
        for d in &damage {
            problems.push(Problem {
                check: "archive".into(),
                message: if d.entry.is_empty() {
                    d.problem.clone()
                } else {
                    format!("{}: {}", d.entry, d.problem)
                },
                hint: Some("the file is corrupt: download it again".into()),
            });
        }
        if let Some(why) = archive.changed() {
            damage.push(verify::EntryDamage {
                entry: String::new(),
                problem: format!("the file changed during the check: {why}"),
                crc: false,
            });
            // First: every other finding may be an effect of the change, and the
            // headline shows the first problem of a damaged file.
            problems.insert(
                0,
                Problem {
                    check: "file".into(),
                    message: format!(
                        "{} changed during the check: {why}",
                        archive.path().display()
                    ),
                    hint: Some(
                        "wait until the download or copy has finished, then check again".into(),
                    ),
                },
            );
        }
        let archive_check = ArchiveCheck {
            // With --quick the directory parsed and nothing was read: still "ok".
            status: if damage.is_empty() {
                CheckStatus::Ok
            } else {
                CheckStatus::Fail
            },
            entries: archive.entries().len(),
            crc_failures,
            damage,
            crc_checked: verification.entries_checked,
        };

        // components
        let failed: Vec<_> = verification
            .components
            .iter()
            .filter(|c| c.status.is_failure())
            .collect();
        for c in &failed {
            let what = match c.status {
                ComponentStatus::Missing => format!(
                    "{} is missing: {}",
                    c.name,
                    c.path.as_deref().unwrap_or("(no path)")
                ),
                _ => format!(
                    "{} ({}) does not match the manifest{}",
                    c.name,
                    c.path.as_deref().unwrap_or("-"),
                    c.reason
                        .as_deref()
                        .map(|r| format!(": {r}"))
                        .unwrap_or_default()
                ),
            };
            problems.push(Problem {
                check: "components".into(),
                message: what,
                hint: Some(
                    "the IPSW is incomplete or corrupt: download it again from Apple".into(),
                ),
            });
        }
        let components = ComponentsCheck {
            status: if !failed.is_empty() {
                CheckStatus::Fail
            } else if verification.hashed {
                CheckStatus::Ok
            } else {
                CheckStatus::Skipped
            },
            items: verification.components.clone(),
        };

        let checksum = checksum_check(options, &signing, &verification.whole_file, &mut problems);

        for r in &signing.hosts_redirects {
            problems.push(Problem {
                check: "signing".into(),
                message: format!(
                    "{} line {} sends gs.apple.com to {} (`{}`): the restore cannot reach Apple's signing server and fails with error 3194",
                    options.signing.hosts_file.display(),
                    r.line,
                    r.address,
                    r.entry
                ),
                hint: Some("remove or comment out that line (it needs administrator rights), then restore".into()),
            });
        }
        match signing.status {
            signing::SigningStatus::NotSigned => problems.push(Problem {
                check: "signing".into(),
                message: signing.message.clone(),
                hint: Some(
                    "Apple no longer signs this build, so a restore fails with error 3194: use a signed build (`ipswcheck signed --device …` lists them)".into(),
                ),
            }),
            signing::SigningStatus::Unknown => problems.push(Problem {
                check: "signing".into(),
                message: signing.message.clone(),
                hint: Some(
                    "check the connection to Apple (`ipswcheck doctor`) and try again".into(),
                ),
            }),
            _ => {}
        }
        if verification.cancelled {
            problems.push(Problem {
                check: "file".into(),
                message: "the check was interrupted before it finished".into(),
                hint: None,
            });
        }

        let identity = identities.first().map(|i| IdentityFacts {
            variant: i.info.variant.clone(),
            restore_behavior: i.info.restore_behavior.clone(),
            device_class: i.info.device_class.clone(),
        });
        let mut report = Report {
            schema: SCHEMA,
            file: archive.path().display().to_string(),
            size: Some(archive.len()),
            bytes_fetched: None,
            verdict: Verdict::NotReady,
            exit_code: 0,
            firmware: Some(FirmwareFacts {
                product_version: manifest.product_version.clone(),
                build: manifest.build.clone(),
                supported_product_types: manifest.supported_product_types.clone(),
                beta: manifest.is_beta(),
            }),
            device: device_facts(options),
            identity,
            checks: Checks {
                archive: archive_check,
                compatibility,
                components,
                checksum,
                signing,
            },
            predicted_restore_error: None,
            problems,
        };
        report.conclude(false, verification.cancelled);
        (report, fresh)
    }
}

/// An entry name that is absolute (`/x`, `\\x`, `C:x`) or has a `..` component. Such
/// names are harmless to ipswcheck, which never writes entries out, but not to tools
/// that unpack an IPSW to restore it ("zip slip").
fn escapes_archive(name: &str) -> bool {
    let bytes = name.as_bytes();
    name.starts_with('/')
        || name.starts_with('\\')
        || (bytes.len() >= 2 && bytes[0].is_ascii_alphabetic() && bytes[1] == b':')
        || name.split(['/', '\\']).any(|part| part == "..")
}

fn checksum_check(
    options: &CheckOptions,
    signing: &SigningCheck,
    computed: &std::collections::BTreeMap<DigestAlgorithm, Vec<u8>>,
    problems: &mut Vec<Problem>,
) -> ChecksumCheck {
    let (expected, source) = match (&options.expected, &signing.ipswme_sha1) {
        (Some(e), _) => (Some(e.clone()), "user"),
        (None, Some(sha1)) => (
            Some(ExpectedChecksum {
                algorithm: DigestAlgorithm::Sha1,
                digest: sha1.clone(),
            }),
            "ipsw.me",
        ),
        (None, None) => (None, ""),
    };
    let Some(expected) = expected else {
        return ChecksumCheck {
            status: CheckStatus::Skipped,
            algorithm: None,
            expected: None,
            actual: None,
            source: None,
        };
    };
    let actual = computed.get(&expected.algorithm);
    let status = match actual {
        None => CheckStatus::Skipped,
        Some(a) if *a == expected.digest => CheckStatus::Ok,
        Some(_) => CheckStatus::Fail,
    };
    if status == CheckStatus::Fail {
        problems.push(Problem {
            check: "checksum".into(),
            message: format!(
                "the file's {} is {}, but {} {}",
                expected.algorithm,
                to_hex(actual.map(Vec::as_slice).unwrap_or_default()),
                if source == "user" {
                    "you gave"
                } else {
                    "ipsw.me says"
                },
                to_hex(&expected.digest)
            ),
            hint: Some("the download is corrupt or a different file: download it again".into()),
        });
    }
    ChecksumCheck {
        status,
        algorithm: Some(expected.algorithm),
        expected: Some(to_hex(&expected.digest)),
        actual: actual.map(|a| to_hex(a)),
        source: Some(source.into()),
    }
}
