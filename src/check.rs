//! The check of one IPSW, end to end: open → identify → verify ∥ sign → report.
//!
//! Every failure ends up in the [`Report`] as data; this function never returns an
//! error. Signing runs on its own thread while the cores hash, so the network round
//! trip costs no wall time on a full check.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};

use crate::archive::{Archive, ArchiveError};
use crate::device::Device;
use crate::digest::{to_hex, DigestAlgorithm};
use crate::identify;
use crate::judge::Finding;
use crate::manifest::{BuildIdentity, BuildManifest, RestoreBehavior, RestorePlist};
use crate::report::{
    ArchiveCheck, CheckStatus, Checks, ChecksumCheck, CompatibilityCheck, ComponentsCheck,
    DeviceFacts, FirmwareFacts, IdentityFacts, Report,
};
use crate::signing::{self, SigningCheck, SigningOptions};
use crate::verify::follow::{Injected, Selected, Streamed};
use crate::verify::{self, ComponentStatus, TrustSource, TrustedDigest, VerifyOptions, VerifyPlan};

/// The largest plist ipswcheck will read: 16× the largest real manifest seen (1 MB of
/// XML for iOS 26); manifests for many boards at once run to a few MB.
pub const MAX_PLIST_BYTES: u64 = 16 << 20;

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
    /// 1 once hashing is done while the signing answer may still be awaited (the
    /// progress line then says so instead of a full bar); 0 before.
    pub phase: AtomicU8,
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
///
/// Memory: opening reserves the directory's cost and [`MANIFEST_ALLOWANCE`] of the
/// budget at once ([`crate::budget`]); the manifests are read within that allowance,
/// the BuildManifest keeps what it costs, and the rest is given back before returning.
pub fn open_ipsw(path: &Path) -> Result<OpenedIpsw, OpenError> {
    let mut archive = Archive::open_reserving(path, MANIFEST_ALLOWANCE)?;
    let mut allowance = archive.take_reserved();
    let entry = archive
        .entry("BuildManifest.plist")
        .ok_or(OpenError::NoManifest)?;
    let bytes = archive
        .read_small(entry, MAX_PLIST_BYTES)
        .map_err(OpenError::ManifestUnreadable)?;
    let manifest = BuildManifest::from_bytes_within(&bytes, &mut allowance).map_err(|e| {
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
    drop(bytes);
    let restore = archive
        .entry("Restore.plist")
        .and_then(|e| archive.read_small(e, MAX_PLIST_BYTES).ok())
        .and_then(|b| RestorePlist::from_bytes(&b).ok());
    drop(allowance);
    Ok(OpenedIpsw {
        archive,
        manifest,
        restore,
    })
}

/// What opening a file reserves for reading its manifests: the largest plist, and what
/// parsing one may cost at the caps of [`crate::manifest`].
pub const MANIFEST_ALLOWANCE: u64 = MAX_PLIST_BYTES + crate::manifest::PARSE_COST_CAP;

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
    let file = path.display().to_string();
    let finding = if error.is_damage() {
        checks.archive.status = CheckStatus::Fail;
        checks.archive.damage.push(verify::EntryDamage {
            entry: String::new(),
            problem: error.to_string(),
            crc: false,
        });
        if matches!(error, OpenError::Archive(ArchiveError::Truncated)) {
            Finding::Truncated {
                file,
                reason: error.to_string(),
            }
        } else {
            Finding::ArchiveDamage {
                entry: String::new(),
                problem: format!("{file}: {error}"),
                crc: false,
            }
        }
    } else {
        Finding::NotAnIpsw {
            file,
            reason: error.to_string(),
            hint: "point ipswcheck at an .ipsw restore file".into(),
        }
    };
    let mut report = Report::new(path.display().to_string(), checks);
    report.size = size;
    report.device = device_facts(options);
    report.add(finding);
    report.conclude();
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
    check_opened_streamed(ipsw, options, progress, None).0
}

/// [`check_opened`] of a file that a download verified as it arrived (`fetch` from a
/// server without range support, [`verify::follow`]): what `streamed` verified of the
/// entries this file's directory describes is taken ([`VerifyPlan::inject`]), the rest
/// runs as in any check, and the report is judged as any check's. Also says what was
/// taken.
pub fn check_opened_streamed(
    ipsw: &OpenedIpsw,
    options: &CheckOptions,
    progress: &Progress,
    streamed: Option<&Streamed>,
) -> (Report, Injected) {
    let prepared = PreparedCheck::new(ipsw, options);
    progress
        .total
        .store(prepared.plan().total_work(), Ordering::Relaxed);
    let injected = streamed
        .map(|s| prepared.plan().inject(s, &progress.done))
        .unwrap_or_default();
    let signing = std::thread::scope(|s| {
        let signer = s.spawn(|| {
            let signing = prepared.sign();
            prepared.trust_ipswme(&signing);
            signing
        });
        verify::run_plans(&[prepared.plan()], &progress.done, &progress.cancel);
        progress.phase.store(1, Ordering::Relaxed);
        signer.join().unwrap_or_else(|_| {
            let mut failed = SigningCheck::skipped("the signing check failed internally");
            failed.status = signing::SigningStatus::Unknown;
            failed
        })
    });
    (prepared.finish(signing), injected)
}

/// How the verification of a download as it arrives reads BuildManifest.plist: as a
/// check opens it ([`open_ipsw`]: at most [`MAX_PLIST_BYTES`], parsed by the same bounded
/// reader within [`MANIFEST_ALLOWANCE`]), then the identities a check of `options`
/// selects. `None` when it cannot be read or parsed (the check of the complete file then
/// says why).
pub fn streamed_manifest(
    archive: &Archive,
    entry: &crate::archive::Entry,
    options: &CheckOptions,
) -> Option<(BuildManifest, Selected)> {
    let mut allowance = crate::budget::reserve(MANIFEST_ALLOWANCE);
    let bytes = archive.read_small(entry, MAX_PLIST_BYTES).ok()?;
    let manifest = BuildManifest::from_bytes_within(&bytes, &mut allowance).ok()?;
    drop(bytes);
    drop(allowance);
    let selection = select(&manifest, options, false, archive.path());
    let refused = selection
        .findings
        .iter()
        .any(|f| f.exit_code() == Some(crate::exit::ExitCode::WrongDevice));
    let selected = Selected::new(&selection.identities, refused);
    drop(selection);
    Some((manifest, selected))
}

/// The report of a download stopped because what arrived is damaged ([`verify::follow`]):
/// the check of what arrived, judged as any check — the entries walked as a directory
/// (`label`, `len`), the damage and component mismatches found, the device verdict when
/// the manifest arrived — with signing not asked (`why`). Components whose file did not
/// arrive are not reported.
pub fn stopped_report(
    label: &str,
    len: u64,
    streamed: &mut Streamed,
    options: &CheckOptions,
    why: &str,
) -> Report {
    let archive = Archive::from_directory(
        label,
        len,
        streamed.entries().to_vec(),
        streamed.has_duplicate_names(),
    );
    let no_progress = AtomicU64::new(0);
    let Some(manifest) = streamed.take_manifest() else {
        // Without the manifest: the archive check of what arrived.
        let plan = VerifyPlan::new(
            &archive,
            &[],
            VerifyOptions {
                hash: true,
                ..VerifyOptions::default()
            },
        );
        plan.inject(streamed, &no_progress);
        let mut findings = Vec::new();
        let archive_check = archive_check(&archive, &plan.verification_so_far(), &mut findings);
        let mut report = Report::new(label.to_owned(), Checks::skipped(why));
        report.checks.archive = archive_check;
        report.device = device_facts(options);
        report.findings = findings;
        report.conclude();
        return report;
    };
    let opened = OpenedIpsw {
        archive,
        manifest,
        restore: None,
    };
    let prepared = PreparedCheck::new(&opened, options);
    prepared.plan().inject(streamed, &no_progress);
    prepared.finish_so_far(SigningCheck::skipped(why))
}

/// One file's check after "identify" and before "verify": the identities chosen, the
/// compatibility verdict and the verification plan. A library scan prepares every file,
/// runs all plans through one queue, then finishes each.
pub struct PreparedCheck<'a> {
    ipsw: &'a OpenedIpsw,
    options: &'a CheckOptions,
    identities: Vec<&'a BuildIdentity>,
    compatibility: CompatibilityCheck,
    findings: Vec<Finding>,
    plan: VerifyPlan<'a>,
}

impl<'a> PreparedCheck<'a> {
    /// Prepare the check of one file for the device asked about. A file refused for
    /// that device gets one finding, not its whole component list: no identity is
    /// verified (every entry's CRC-32 still is).
    pub fn new(ipsw: &'a OpenedIpsw, options: &'a CheckOptions) -> Self {
        Self::with_refused(ipsw, options, false)
    }

    /// [`PreparedCheck::new`] for a library scan: a file refused for the device is still
    /// verified against every customer identity, because the scan says which files are
    /// intact whatever device they serve (and names intact copies of damaged ones).
    pub fn for_library(ipsw: &'a OpenedIpsw, options: &'a CheckOptions) -> Self {
        Self::with_refused(ipsw, options, true)
    }

    fn with_refused(ipsw: &'a OpenedIpsw, options: &'a CheckOptions, verify_refused: bool) -> Self {
        let Selection {
            identities,
            compatibility,
            findings,
        } = select(&ipsw.manifest, options, verify_refused, ipsw.archive.path());
        let whole_file = whole_file_algorithms(options);
        // A whole-file digest the user gives, or the one Apple published (ipsw.me, when
        // online), covers every component once the file matches it (verify::shortcut).
        let trusted = options.expected.as_ref().map(|e| TrustedDigest {
            algorithm: e.algorithm,
            digest: e.digest.clone(),
            source: TrustSource::User,
        });
        let plan = VerifyPlan::new(
            &ipsw.archive,
            &identities,
            VerifyOptions {
                hash: !options.quick,
                whole_file,
                shortcut: !options.quick && (trusted.is_some() || !options.signing.offline),
                trusted,
            },
        );
        PreparedCheck {
            ipsw,
            options,
            identities,
            compatibility,
            findings,
            plan,
        }
    }

    pub fn plan(&self) -> &VerifyPlan<'a> {
        &self.plan
    }

    /// Hand ipsw.me's whole-file SHA-1 (Apple's, relayed) to the running verification:
    /// if the file matches it, the components still hashing stop, covered by it.
    pub fn trust_ipswme(&self, signing: &SigningCheck) {
        if let Some(sha1) = &signing.ipswme_sha1 {
            self.plan.trust(TrustedDigest {
                algorithm: DigestAlgorithm::Sha1,
                digest: sha1.clone(),
                source: TrustSource::IpswMe,
            });
        }
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
        if self.is_compatible() && !self.identities.is_empty() {
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
        if self.is_compatible() && !self.identities.is_empty() {
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

    /// The report of a download stopped part way: what the jobs that ran found
    /// ([`verify::VerifyPlan::verification_so_far`]), with `signing`. Components whose
    /// file did not arrive are not reported; when none of those that did failed, the
    /// components are "skipped", never "ok": the file was not verified.
    pub fn finish_so_far(self, signing: SigningCheck) -> Report {
        let so_far = self.plan.verification_so_far();
        let mut report = self.finish_with(&so_far, signing);
        if report.checks.components.status == CheckStatus::Ok {
            report.checks.components.status = CheckStatus::Skipped;
        }
        report
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
            mut findings,
            plan,
        } = self;
        let archive = &ipsw.archive;
        let manifest = &ipsw.manifest;
        let compatible = compatibility.status != CheckStatus::Fail;
        let fresh = match earlier {
            Some(_) => None,
            None => Some(plan.finish()),
        };
        let verification = match earlier {
            Some(v) => v,
            None => fresh.as_ref().expect("the plan was finished above"),
        };

        let archive_check = archive_check(archive, verification, &mut findings);

        // components
        for c in verification.components.iter() {
            match c.status {
                ComponentStatus::Missing => findings.push(Finding::ComponentMissing {
                    name: c.name.clone(),
                    path: c.path.clone(),
                    board: c.board.clone(),
                }),
                ComponentStatus::Mismatch => findings.push(Finding::ComponentMismatch {
                    name: c.name.clone(),
                    path: c.path.clone(),
                    board: c.board.clone(),
                    reason: c.reason.clone(),
                }),
                _ => {}
            }
        }
        let unverifiable: Vec<&verify::ComponentFinding> = verification
            .components
            .iter()
            .filter(|c| c.status == ComponentStatus::Unverifiable)
            .collect();
        if !unverifiable.is_empty() {
            let mut reasons: Vec<String> = Vec::new();
            for c in &unverifiable {
                let reason = format!(
                    "{}: {}",
                    c.name,
                    c.reason
                        .as_deref()
                        .unwrap_or("no rule confirmed for this file")
                );
                if reasons.len() < 4 && !reasons.contains(&reason) {
                    reasons.push(reason);
                }
            }
            findings.push(Finding::Unverifiable {
                count: unverifiable.len(),
                reasons,
            });
        }
        let failed = verification
            .components
            .iter()
            .any(|c| c.status.is_failure());
        let components = ComponentsCheck {
            status: if failed {
                CheckStatus::Fail
            } else if verification.hashed && !identities.is_empty() {
                CheckStatus::Ok
            } else {
                CheckStatus::Skipped
            },
            items: verification.components.clone(),
        };
        if options.quick && compatible {
            findings.push(Finding::ContentsNotVerified { remote: false });
        }
        if let Some(t) = &verification.covered_by {
            findings.push(Finding::ComponentsCovered {
                algorithm: t.algorithm,
                source: match t.source {
                    TrustSource::User => "user",
                    TrustSource::IpswMe => "ipsw.me",
                }
                .into(),
                count: verification
                    .components
                    .iter()
                    .filter(|c| c.reason.as_deref() == Some(t.covered_reason().as_str()))
                    .count(),
            });
        }

        let checksum = checksum_check(options, &signing, &verification.whole_file, &mut findings);

        for r in &signing.hosts_redirects {
            findings.push(Finding::HostsRedirect {
                hosts_file: options.signing.hosts_file.display().to_string(),
                line: r.line,
                address: r.address.clone(),
                entry: r.entry.clone(),
            });
        }
        let message = signing.message.clone();
        match signing.status {
            signing::SigningStatus::NotSigned => findings.push(Finding::NotSigned { message }),
            signing::SigningStatus::Disputed => findings.push(Finding::SigningDisputed { message }),
            signing::SigningStatus::Unknown => findings.push(Finding::SigningUnknown { message }),
            signing::SigningStatus::Skipped if compatible => {
                findings.push(Finding::SigningNotChecked { reason: message })
            }
            _ => {}
        }
        if verification.cancelled {
            findings.push(Finding::Interrupted {
                message: "the check was interrupted before it finished".into(),
            });
        }

        // The identity checked: the one asked for, never another board's or behaviour's.
        let identity = identities
            .first()
            .filter(|_| compatible)
            .map(|i| IdentityFacts {
                variant: i.info.variant.clone(),
                restore_behavior: i.info.restore_behavior.clone(),
                device_class: i.info.device_class.clone(),
            });
        let mut report = Report::new(
            archive.path().display().to_string(),
            Checks {
                archive: archive_check,
                compatibility,
                components,
                checksum,
                signing,
            },
        );
        report.size = Some(archive.len());
        report.firmware = Some(FirmwareFacts {
            platform: manifest.platform().to_owned(),
            product_version: manifest.product_version.clone(),
            build: manifest.build.clone(),
            supported_product_types: manifest.supported_product_types.clone(),
            beta: manifest.is_beta(),
        });
        report.device = device_facts(options);
        report.identity = identity;
        report.findings = findings;
        report.conclude();
        (report, fresh)
    }
}

/// The archive check of a verification: its damaged entries, and what the archive
/// itself shows (names repeated or escaping the archive, an unusual layout, a read error,
/// a change during the check), each also a finding.
fn archive_check(
    archive: &Archive,
    verification: &verify::Verification,
    findings: &mut Vec<Finding>,
) -> ArchiveCheck {
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
        findings.push(Finding::ArchiveDamage {
            entry: d.entry.clone(),
            problem: d.problem.clone(),
            crc: d.crc,
        });
    }
    for oddity in archive.oddities() {
        findings.push(Finding::ArchiveOddity {
            file: archive.path().display().to_string(),
            oddity: oddity.to_string(),
        });
    }
    if let Some(why) = archive.read_error() {
        let problem = format!("{}: {why}", archive.path().display());
        damage.push(verify::EntryDamage {
            entry: String::new(),
            problem: problem.clone(),
            crc: false,
        });
        // First, as a change is: every other finding may be its effect.
        findings.insert(
            0,
            Finding::ArchiveDamage {
                entry: String::new(),
                problem,
                crc: false,
            },
        );
    }
    if let Some(why) = archive.changed() {
        damage.push(verify::EntryDamage {
            entry: String::new(),
            problem: format!("the file changed during the check: {why}"),
            crc: false,
        });
        // First: every other finding may be an effect of the change, and the
        // headline shows the first finding of a damaged file.
        findings.insert(
            0,
            Finding::ChangedDuringCheck {
                file: archive.path().display().to_string(),
                why,
            },
        );
    }
    ArchiveCheck {
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
    }
}

/// The whole-file digests a check computes: the one the user expects (`--sha1`,
/// `--sha256`) and, online, the SHA-1 ipsw.me publishes (Apple's), so its answer can be
/// compared — alongside the rest, at no cost in wall time.
pub fn whole_file_algorithms(options: &CheckOptions) -> Vec<DigestAlgorithm> {
    let mut whole_file = Vec::new();
    if let Some(e) = &options.expected {
        whole_file.push(e.algorithm);
    }
    if !options.signing.offline && !whole_file.contains(&DigestAlgorithm::Sha1) {
        whole_file.push(DigestAlgorithm::Sha1);
    }
    whole_file
}

/// What a check decides from the manifest alone: the identities it verifies, the
/// compatibility verdict, and the finding that refuses the file when it is not for the
/// device.
struct Selection<'m> {
    identities: Vec<&'m BuildIdentity>,
    compatibility: CompatibilityCheck,
    findings: Vec<Finding>,
}

/// The [`Selection`] of a check of `options` (`file` names the file in a refusal): one
/// rule for a check and for a download verified as it arrives ([`streamed_manifest`]). A
/// file refused for the device gets no identity, unless `verify_refused` (a library
/// scan); one that restores nothing is verified against what it lists.
fn select<'m>(
    manifest: &'m BuildManifest,
    options: &CheckOptions,
    verify_refused: bool,
    file: &Path,
) -> Selection<'m> {
    let mut findings = Vec::new();
    let restorable = !identify::restore_identities(manifest).is_empty();
    let selection = if restorable {
        identify::select(manifest, options.device.as_deref(), options.behavior)
    } else {
        let mut variants: Vec<String> = Vec::new();
        for v in manifest
            .identities
            .iter()
            .filter_map(|i| i.info.variant.clone())
        {
            if !variants.contains(&v) && variants.len() < 3 {
                variants.push(v);
            }
        }
        Err(Finding::NotARestoreIpsw {
            file: file.display().to_string(),
            variants,
        })
    };
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
        Err(finding) => {
            let message = finding.message();
            let restorable = !matches!(finding, Finding::NotARestoreIpsw { .. });
            findings.push(finding);
            // A file that restores nothing (a Developer Disk Image) is still verified
            // against what it does list: its integrity is a fact worth stating.
            let verified = if !restorable {
                manifest
                    .identities
                    .iter()
                    .filter(|i| !i.info.is_research())
                    .collect()
            } else if verify_refused {
                identify::customer_identities(manifest, options.behavior)
            } else {
                Vec::new()
            };
            (
                verified,
                CompatibilityCheck {
                    status: CheckStatus::Fail,
                    message,
                },
            )
        }
    };
    Selection {
        identities,
        compatibility,
        findings,
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

/// The whole-file checksum, judged by who vouches for it.
///
/// Only a checksum the user gives (`--sha1`/`--sha256`) can fail the check (exit 12).
/// ipsw.me's `sha1sum` is a third party's number and has been wrong before
/// (Legacy-iOS-Kit #302, idevicerestore #462): when it differs from a file whose every
/// CRC-32 and component digest verified, that is a warning (exit 0, and `fetch` keeps the
/// file); when the file's own integrity checks failed, the exit code already says so.
fn checksum_check(
    options: &CheckOptions,
    signing: &SigningCheck,
    computed: &std::collections::BTreeMap<DigestAlgorithm, Vec<u8>>,
    findings: &mut Vec<Finding>,
) -> ChecksumCheck {
    let (expected, from_user) = match (&options.expected, &signing.ipswme_sha1) {
        (Some(e), _) => (e.clone(), true),
        (None, Some(sha1)) => (
            ExpectedChecksum {
                algorithm: DigestAlgorithm::Sha1,
                digest: sha1.clone(),
            },
            false,
        ),
        (None, None) => return ChecksumCheck::skipped(),
    };
    let actual = computed.get(&expected.algorithm);
    let matches = actual.map(|a| *a == expected.digest);
    let algorithm = expected.algorithm;
    let label = algorithm.label();
    let (status, message) = match (matches, from_user) {
        (None, _) => (CheckStatus::Skipped, None),
        (Some(true), true) => (
            CheckStatus::Ok,
            Some(format!("the file's {label} matches the one you gave")),
        ),
        (Some(true), false) => (
            CheckStatus::Ok,
            Some(format!(
                "the file's {label} matches the SHA-1 Apple published (via ipsw.me)"
            )),
        ),
        (Some(false), true) => {
            findings.push(Finding::ChecksumMismatch {
                algorithm,
                expected: to_hex(&expected.digest),
                actual: to_hex(actual.map(Vec::as_slice).unwrap_or_default()),
            });
            (CheckStatus::Fail, None)
        }
        (Some(false), false) => (
            CheckStatus::Warn,
            Some(format!(
                "the file's {label} {} differs from ipsw.me's published SHA-1 {}; every \
                 CRC and component digest was verified by ipswcheck itself, and ipsw.me has \
                 published wrong hashes before, so this alone does not make the file corrupt",
                to_hex(actual.map(Vec::as_slice).unwrap_or_default()),
                to_hex(&expected.digest)
            )),
        ),
    };
    if let (CheckStatus::Warn, Some(message)) = (status, &message) {
        findings.push(Finding::ChecksumAdvisory {
            message: message.clone(),
        });
    }
    ChecksumCheck {
        status,
        algorithm: Some(algorithm),
        expected: Some(to_hex(&expected.digest)),
        actual: actual.map(|a| to_hex(a)),
        source: Some(if from_user { "user" } else { "ipsw.me" }.into()),
        message,
    }
}
