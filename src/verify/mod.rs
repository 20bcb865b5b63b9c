//! Component verification: every file a build identity names is hashed against its
//! manifest `Digest`, and every zip entry's CRC-32 is checked, in one streaming pass per
//! entry, entries spread over all cores, largest first.
//!
//! Why this file is long (~1,600 lines): every digest rule of FIRMWARE.md §3 (whole-file,
//! retagged IM4P, IMG4, IMG3 signed area, baseband members, AEA) is planned and executed
//! in the same single streaming pass per entry, and splitting the rules from the pass would
//! separate each rule from the bytes it reads; the pipelined large-entry lane is in
//! `pipeline.rs`.
//!
//! The digest rules are those of FIRMWARE.md §3, verified against real Apple files in
//! `../shared/realdata` (see `tests/realdata.rs`):
//! - the algorithm is given by the digest length (20/32/48 bytes);
//! - IM4P and raw files are hashed whole, as stored;
//! - Restore* twins are hashed after retagging the IM4P type to `Img4PayloadType`
//!   (or idevicerestore's table when the key is absent);
//! - an IMG4 container is hashed over its embedded IM4P; an IMG3 over its signed area;
//! - `BasebandFirmware` has no Digest: its `*-DownloadDigest` keys are hashes of members
//!   inside the `.bbfw` zip;
//! - FTAB members, `eUICC,*`, `SE,UpdatePayload` and entries without a Digest are skipped
//!   with the reason.
//!
//! Verification never stops at the first problem: it returns every finding as data.
//! Each distinct (path, algorithm, retag) is hashed once, however many identities or
//! components name it; the whole-file SHA-1/SHA-256 is one more job in the same queue,
//! reading the same mapped bytes concurrently.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::Read;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::OnceLock;

use serde::Serialize;

use crate::archive::{Archive, Chunk, Entry, EntryError, EntryStream, Method};
use crate::digest::{to_hex, DigestAlgorithm, Hasher};
use crate::img4::{self, Container};
use crate::manifest::{BuildIdentity, ManifestComponent};

mod count;
pub mod follow;
mod pipeline;
mod shortcut;
use count::PlanProgress;
use pipeline::Hub;
use shortcut::{Shortcut, Stop};
pub use shortcut::{TrustSource, TrustedDigest};

/// The result for one component.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ComponentStatus {
    /// The file is present and hashes to the manifest Digest.
    Ok,
    /// The file is present but its hash differs (a restore fails with error 14).
    Mismatch,
    /// The manifest names a file the IPSW does not contain (a restore fails with error 11).
    Missing,
    /// Nothing to verify, for the reason given (no Digest, FTAB member, …).
    Skipped,
    /// A digest rule ipswcheck cannot confirm for this file; not counted as a failure.
    Unverifiable,
}

impl ComponentStatus {
    pub fn is_failure(self) -> bool {
        matches!(self, ComponentStatus::Mismatch | ComponentStatus::Missing)
    }

    /// The name in the JSON report, the human report and the verified-results cache.
    pub fn name(self) -> &'static str {
        match self {
            ComponentStatus::Ok => "ok",
            ComponentStatus::Mismatch => "mismatch",
            ComponentStatus::Missing => "missing",
            ComponentStatus::Skipped => "skipped",
            ComponentStatus::Unverifiable => "unverifiable",
        }
    }
}

/// One component of one identity, as verified.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ComponentFinding {
    /// Manifest component name (`RestoreSEP`; baseband members as `BasebandFirmware:ACDB`).
    pub name: String,
    /// The identity's board, when more than one identity was verified.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub board: Option<String>,
    pub path: Option<String>,
    pub algorithm: Option<DigestAlgorithm>,
    pub status: ComponentStatus,
    pub expected: Option<String>,
    pub actual: Option<String>,
    pub reason: Option<String>,
}

/// A zip entry that could not be read back intact.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EntryDamage {
    pub entry: String,
    pub problem: String,
    /// The damage is a CRC-32 mismatch (as opposed to a broken header or deflate stream).
    pub crc: bool,
}

/// Everything verification found.
#[derive(Debug, Clone, Default)]
pub struct Verification {
    /// One finding per (component, path, expected digest), across all identities.
    pub components: Vec<ComponentFinding>,
    /// Entries whose bytes, size or CRC-32 are wrong.
    pub damaged_entries: Vec<EntryDamage>,
    /// Whole-file digests that were asked for.
    pub whole_file: BTreeMap<DigestAlgorithm, Vec<u8>>,
    /// Whether entry data was hashed (false in quick mode).
    pub hashed: bool,
    /// How many zip entries had their CRC-32 checked.
    pub entries_checked: usize,
    /// The check was cancelled before it finished.
    pub cancelled: bool,
    /// The whole file matched this trusted digest, so the components not hashed by then
    /// are reported covered by it ([`shortcut`]).
    pub covered_by: Option<TrustedDigest>,
}

/// What to do besides reading the directory.
#[derive(Debug, Default, Clone)]
pub struct VerifyOptions {
    /// Hash component files and check every CRC (false: `--quick`, presence only).
    pub hash: bool,
    /// Whole-file digests to compute alongside (`--sha1`, `--sha256`, ipsw.me's SHA-1).
    pub whole_file: Vec<DigestAlgorithm>,
    /// A trusted whole-file digest is known (`trusted`) or may arrive while the check
    /// runs ([`VerifyPlan::trust`]): hash the whole file first and, once it matches,
    /// stop the components and report them covered ([`shortcut`]).
    pub shortcut: bool,
    /// The trusted whole-file digest known before the check (`--sha1`/`--sha256`).
    pub trusted: Option<TrustedDigest>,
}

/// A digest to compute over one entry: the algorithm, and the type to retag an IM4P to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
struct DigestRequest {
    algorithm: DigestAlgorithm,
    retag: Option<[u8; 4]>,
}

/// How one component is to be checked.
#[derive(Debug, Clone)]
enum Rule {
    Skip(String),
    /// The file must exist; there is no digest of it to compare.
    PresenceOnly(String),
    Digest(DigestRequest),
    Unverifiable(String),
    /// `*-DownloadDigest` of a `.bbfw` member.
    BasebandMember {
        prefix: String,
        algorithm: DigestAlgorithm,
    },
}

/// One check derived from the manifest, before any hashing.
#[derive(Debug, Clone)]
struct PlannedCheck {
    name: String,
    board: Option<String>,
    path: Option<String>,
    expected: Option<Vec<u8>>,
    rule: Rule,
}

/// What the manifest asks of one zip entry.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct EntryWork {
    digests: BTreeSet<DigestRequest>,
    baseband: BTreeMap<String, DigestAlgorithm>,
}

/// The verification of one archive, planned but not yet run. Several plans (a library
/// scan) can be run through one queue with [`run_plans`].
pub struct VerifyPlan<'a> {
    archive: &'a Archive,
    checks: Vec<PlannedCheck>,
    work: BTreeMap<usize, EntryWork>,
    options: VerifyOptions,
    outcomes: Vec<OnceLock<JobOutcome>>,
    job_entries: Vec<Option<usize>>,
    /// Bytes of this plan read so far (per-file progress lines), each counted once.
    done: PlanProgress,
    shortcut: Shortcut,
    /// Bytes the `.bbfw` members of this file may still inflate to, across all of its
    /// baseband archives ([`MAX_BASEBAND_TOTAL`]).
    baseband_budget: AtomicU64,
}

#[derive(Debug, Clone)]
struct DigestOutcome {
    container: Container,
    /// The hash of the bytes the rule says the Digest covers.
    primary: Vec<u8>,
    /// For IMG3 only: the whole-file hash, the fallback rule.
    whole: Option<Vec<u8>>,
}

#[derive(Debug, Clone)]
enum BasebandOutcome {
    Hashed(Vec<u8>),
    NotFound,
    Unreadable(String),
    /// A member no Apple baseband archive has (one inflating past
    /// [`MAX_BASEBAND_MEMBER`]): it is not the member Apple hashed.
    Crafted(String),
}

#[derive(Debug, Clone)]
enum JobOutcome {
    Entry {
        error: Option<EntryError>,
        digests: HashMap<DigestRequest, DigestOutcome>,
        baseband: HashMap<String, BasebandOutcome>,
    },
    WholeFile(Result<BTreeMap<DigestAlgorithm, Vec<u8>>, EntryError>),
}

impl<'a> VerifyPlan<'a> {
    /// Plan the checks of `identities` (deduplicated across them) on `archive`.
    pub fn new(
        archive: &'a Archive,
        identities: &[&BuildIdentity],
        options: VerifyOptions,
    ) -> Self {
        let checks = planned_checks(identities);
        let mut work: BTreeMap<usize, EntryWork> = BTreeMap::new();
        if options.hash {
            for (i, entry) in archive.entries().iter().enumerate() {
                if !entry.is_dir {
                    work.insert(i, EntryWork::default());
                }
            }
            for (path, w) in work_by_path(&checks) {
                // Exact names only: `Archive::index_of` never answers with a directory
                // or with a name whose bytes are not the Path's (class 8 of issue 14).
                if let Some(i) = archive.index_of(&path) {
                    work.insert(i, w);
                }
            }
        }
        let mut job_entries: Vec<Option<usize>> = work.keys().map(|&i| Some(i)).collect();
        if options.hash && !options.whole_file.is_empty() {
            job_entries.push(None);
        }
        let outcomes = job_entries.iter().map(|_| OnceLock::new()).collect();
        let shortcut = Shortcut::default();
        if let (true, Some(t)) = (options.shortcut, &options.trusted) {
            shortcut.expect(t.clone());
        }
        let entry_bytes = work
            .keys()
            .fold(0u64, |t, &i| t.saturating_add(entry_cost(archive, i)));
        let total = match (work.is_empty(), job_entries.is_empty()) {
            (false, _) => entry_bytes,
            (true, false) => archive.len(),
            (true, true) => 0,
        };
        VerifyPlan {
            archive,
            checks,
            work,
            options,
            outcomes,
            job_entries,
            done: PlanProgress::new(total, archive.len()),
            shortcut,
            baseband_budget: AtomicU64::new(MAX_BASEBAND_TOTAL),
        }
    }

    /// A trusted whole-file digest learnt while the check runs (ipsw.me's SHA-1, from
    /// the signing thread): if the file matches it, the components still hashing stop
    /// and are reported covered. Ignored unless the plan was made with `shortcut`.
    pub fn trust(&self, trusted: TrustedDigest) {
        if self.options.shortcut && self.options.hash {
            self.shortcut.expect(trusted);
        }
    }

    /// The whole-file job runs first: it is the one that can make the others moot.
    fn runs_first(&self, job: Option<usize>) -> bool {
        job.is_none() && self.options.shortcut
    }

    /// Bytes of this plan read so far, each counted once.
    pub fn done(&self) -> u64 {
        self.done.shown()
    }

    /// The archive this plan verifies.
    pub fn archive(&self) -> &'a Archive {
        self.archive
    }

    /// Bytes of the file the run reads, each counted once however many passes read it
    /// (the entries' compressed sizes; the whole-file digest reads the same bytes):
    /// the total of the progress counter ([`count`]).
    pub fn total_work(&self) -> u64 {
        self.done.total()
    }

    fn job_cost(&self, job: Option<usize>) -> u64 {
        match job {
            Some(i) => entry_cost(self.archive, i),
            None => self.archive.len(),
        }
    }

    /// Roughly how long job `job` keeps one core busy, in hundredths of a nanosecond
    /// (the rates of this machine, BENCHMARKS.md: inflate ~2.8 ns per compressed byte
    /// whatever the data, SHA-384 ~1.6 ns per byte, SHA-1/SHA-256 ~0.55). Orders the
    /// queue and decides which entries are pipelined; only ratios matter.
    fn job_estimate(&self, job: Option<usize>) -> u64 {
        let hash = |a: DigestAlgorithm| -> u64 {
            match a {
                DigestAlgorithm::Sha1 => 52,
                DigestAlgorithm::Sha256 => 56,
                DigestAlgorithm::Sha384 => 164,
            }
        };
        match job {
            Some(i) => {
                let entry = &self.archive.entries()[i];
                let read = match entry.method {
                    Method::Deflated => entry.compressed_size.saturating_mul(280),
                    _ => entry.compressed_size.saturating_mul(5),
                };
                let work = &self.work[&i];
                work.digests.iter().fold(read, |t, d| {
                    t.saturating_add(entry.size.saturating_mul(hash(d.algorithm)))
                })
            }
            None => self.options.whole_file.iter().fold(0u64, |t, a| {
                t.saturating_add(self.archive.len().saturating_mul(hash(*a)))
            }),
        }
    }

    /// Whether job `job` can be pipelined: a deflated entry with digests to compute and
    /// nothing else to do on the way (no baseband members), big enough to be worth it.
    fn pipelinable(&self, job: Option<usize>) -> bool {
        let Some(i) = job else { return false };
        let entry = &self.archive.entries()[i];
        let work = &self.work[&i];
        entry.method == Method::Deflated
            && entry.size >= PIPELINE_MIN
            && !work.digests.is_empty()
            && work.baseband.is_empty()
    }

    fn run_job<'h>(
        &'h self,
        job: usize,
        global: &AtomicU64,
        cancel: &AtomicBool,
        role: Role<'_, 'h>,
    ) {
        let progress = Counters {
            global,
            local: &self.done,
            whole: self.job_entries[job].is_none(),
        };
        let outcome = match self.job_entries[job] {
            Some(i) => {
                let archive: &'h Archive = self.archive;
                let entry = &archive.entries()[i];
                let stop = if self.options.shortcut {
                    Stop::or_covered(cancel, &self.shortcut.covered)
                } else {
                    Stop::plain(cancel)
                };
                let budget = &self.baseband_budget;
                process_entry(
                    archive,
                    entry,
                    &self.work[&i],
                    budget,
                    progress,
                    stop,
                    None,
                    role,
                )
            }
            None => {
                let result = hash_whole_file(
                    self.archive.bytes(),
                    &self.options.whole_file,
                    progress,
                    cancel,
                    role,
                );
                if let Ok(digests) = &result {
                    self.whole_file_known(digests, global);
                }
                JobOutcome::WholeFile(result)
            }
        };
        let _ = self.outcomes[job].set(outcome);
    }

    /// The whole-file digests are computed: they may cover the components ([`shortcut`]).
    fn whole_file_known(&self, digests: &BTreeMap<DigestAlgorithm, Vec<u8>>, global: &AtomicU64) {
        self.shortcut.computed(digests);
        if self.shortcut.covered.load(Ordering::Acquire) {
            self.done.complete(global);
        }
    }

    /// Take the results a download verified as it arrived ([`follow`]) for the jobs
    /// they answer, before the plan runs ([`run_plans`] then runs only the others).
    ///
    /// The plan's archive (its real directory, read once the download was complete) is
    /// the judge: an entry's streamed outcome is taken only when the local header it came
    /// from is this directory record's — same name bytes, header offset, method,
    /// encryption, CRC-32 and sizes — and it is exactly the outcome this plan's own job
    /// would give: computed with the same [`EntryWork`], or with more digests of the same
    /// pass ([`derive`]). The whole-file digests are taken when they cover this file's
    /// length with the plan's algorithms. Everything else (a directory that disagrees with
    /// a local header, entries the directory hides or the walk never reached, entries
    /// whose verification did not finish) is left to run from the file.
    pub fn inject(&self, streamed: &follow::Streamed, progress: &AtomicU64) -> follow::Injected {
        let mut injected = follow::Injected::default();
        for (job, slot) in self.job_entries.iter().zip(&self.outcomes) {
            let Some(i) = *job else {
                if let Some(digests) =
                    streamed.whole_file(self.archive.len(), &self.options.whole_file)
                {
                    self.whole_file_known(&digests, progress);
                    let _ = slot.set(JobOutcome::WholeFile(Ok(digests)));
                    injected.whole_file = true;
                }
                continue;
            };
            let entry = &self.archive.entries()[i];
            match streamed.outcome_for(entry, &self.work[&i]) {
                Some((outcome, reread)) => {
                    let _ = slot.set(outcome);
                    self.done.add(progress, entry.compressed_size, false);
                    injected.entries += 1;
                    injected.bytes = injected.bytes.saturating_add(entry.compressed_size);
                    if reread {
                        injected.reread += 1;
                        injected.bytes_reread =
                            injected.bytes_reread.saturating_add(entry.compressed_size);
                    }
                }
                None => {
                    injected.entries_after += 1;
                    injected.bytes_after =
                        injected.bytes_after.saturating_add(entry.compressed_size);
                }
            }
        }
        injected
    }

    /// Turn the outcomes into findings.
    pub fn finish(self) -> Verification {
        self.judge(false)
    }

    /// What the jobs that ran found so far (a download stopped part way, whose other
    /// entries never arrived): jobs not run are neither cancelled nor failed, and the
    /// components whose file has not arrived or was not hashed are left out.
    pub fn verification_so_far(&self) -> Verification {
        self.judge(true)
    }

    fn judge(&self, so_far: bool) -> Verification {
        let archive = self.archive;
        let mut v = Verification {
            hashed: self.options.hash,
            ..Verification::default()
        };
        // Jobs stopped because the whole file matched a trusted digest are not
        // "cancelled": their bytes are Apple's, CRC-32s included.
        let covering = self.shortcut.covering();
        let stopped_by_cover =
            |e: &Option<EntryError>| covering.is_some() && matches!(e, Some(EntryError::Cancelled));
        let mut by_entry: HashMap<usize, &JobOutcome> = HashMap::new();
        for (job, slot) in self.job_entries.iter().zip(&self.outcomes) {
            match (job, slot.get()) {
                // A job stopped part way in a download that was stopped: not run.
                (
                    _,
                    Some(
                        JobOutcome::Entry {
                            error: Some(EntryError::Cancelled),
                            ..
                        }
                        | JobOutcome::WholeFile(Err(EntryError::Cancelled)),
                    ),
                ) if so_far => {}
                (Some(i), Some(outcome)) => {
                    by_entry.insert(*i, outcome);
                }
                (None, Some(JobOutcome::WholeFile(Ok(digests)))) => v.whole_file = digests.clone(),
                (_, None) if so_far => {}
                (Some(_), None) if covering.is_some() => v.entries_checked += 1,
                (None, Some(JobOutcome::WholeFile(Err(EntryError::Cancelled)))) | (_, None) => {
                    v.cancelled = true
                }
                (None, Some(_)) => {}
            }
        }
        for (&i, outcome) in &by_entry {
            if let JobOutcome::Entry { error, .. } = outcome {
                match error {
                    _ if stopped_by_cover(error) => v.entries_checked += 1,
                    Some(EntryError::Cancelled) => v.cancelled = true,
                    Some(e) => {
                        v.entries_checked += 1;
                        v.damaged_entries.push(EntryDamage {
                            entry: archive.entries()[i].name.clone(),
                            problem: e.to_string(),
                            crc: matches!(e, EntryError::Crc { .. }),
                        })
                    }
                    None => v.entries_checked += 1,
                }
            }
        }
        v.damaged_entries.sort_by(|a, b| a.entry.cmp(&b.entry));

        for check in &self.checks {
            let algorithm = match &check.rule {
                Rule::Digest(req) => Some(req.algorithm),
                Rule::BasebandMember { algorithm, .. } => Some(*algorithm),
                _ => check
                    .expected
                    .as_deref()
                    .and_then(|d| DigestAlgorithm::from_digest_len(d.len())),
            };
            let mut finding = ComponentFinding {
                name: check.name.clone(),
                board: check.board.clone(),
                path: check.path.clone(),
                algorithm,
                status: ComponentStatus::Skipped,
                expected: check.expected.as_deref().map(to_hex),
                actual: None,
                reason: None,
            };
            let entry_index = check.path.as_deref().and_then(|p| archive.index_of(p));
            let hashed = |i: usize| by_entry.contains_key(&i);
            if so_far
                && check.path.is_some()
                && entry_index.is_none_or(|i| {
                    matches!(check.rule, Rule::Digest(_) | Rule::BasebandMember { .. })
                        && !hashed(i)
                })
            {
                // Not arrived, or not hashed yet: nothing to say about it so far.
                continue;
            }
            if let (Some(path), None) = (&check.path, entry_index) {
                if matches!(check.rule, Rule::BasebandMember { .. }) {
                    // One missing .bbfw is one missing component, not one per member.
                    finding.name = "BasebandFirmware".into();
                    finding.expected = None;
                    if v.components
                        .iter()
                        .any(|c| c.name == finding.name && c.path == finding.path)
                    {
                        continue;
                    }
                }
                finding.status = ComponentStatus::Missing;
                finding.reason = Some(format!("{path} is not in the archive"));
                v.components.push(finding);
                continue;
            }
            match &check.rule {
                Rule::Skip(reason) => finding.reason = Some(reason.clone()),
                Rule::PresenceOnly(reason) => {
                    finding.status = ComponentStatus::Ok;
                    finding.reason = Some(reason.clone());
                }
                Rule::Unverifiable(reason) => {
                    finding.status = ComponentStatus::Unverifiable;
                    finding.reason = Some(reason.clone());
                }
                _ if !self.options.hash => {
                    finding.reason = Some("present; not hashed (--quick)".into());
                }
                _ if covering.is_some()
                    && entry_index.is_none_or(|i| match by_entry.get(&i) {
                        Some(JobOutcome::Entry { error, .. }) => stopped_by_cover(error),
                        _ => true,
                    }) =>
                {
                    finding.status = ComponentStatus::Ok;
                    finding.reason = covering.as_ref().map(TrustedDigest::covered_reason);
                }
                Rule::Digest(req) => {
                    let expected = check.expected.as_deref().unwrap_or_default();
                    let outcome = entry_index.and_then(|i| by_entry.get(&i));
                    judge_digest(&mut finding, expected, *req, outcome);
                }
                Rule::BasebandMember { prefix, .. } => {
                    let expected = check.expected.as_deref().unwrap_or_default();
                    let outcome = entry_index.and_then(|i| by_entry.get(&i));
                    judge_baseband(&mut finding, expected, prefix, outcome);
                }
            }
            v.components.push(finding);
        }
        v.covered_by = covering;
        v
    }
}

/// The checks of `identities`, deduplicated across them: one per (component name, path,
/// digest), labelled with the board only where the boards disagree.
fn planned_checks(identities: &[&BuildIdentity]) -> Vec<PlannedCheck> {
    let label_boards = identities.len() > 1;
    let mut checks = Vec::new();
    for identity in identities {
        let board = if label_boards {
            identity.info.device_class.clone()
        } else {
            None
        };
        for component in &identity.components {
            for (name, expected, rule) in rules_for(component) {
                checks.push(PlannedCheck {
                    name,
                    board: board.clone(),
                    path: component.path.clone(),
                    expected,
                    rule,
                });
            }
        }
    }
    // The same (name, path, digest) in several identities is one check.
    let mut seen = BTreeSet::new();
    checks.retain(|c| seen.insert((c.name.clone(), c.path.clone(), c.expected.clone())));
    // Drop board labels where every board agrees.
    let mut per_name: HashMap<&str, usize> = HashMap::new();
    for c in &checks {
        *per_name.entry(c.name.as_str()).or_default() += 1;
    }
    let single: BTreeSet<String> = per_name
        .into_iter()
        .filter(|&(_, n)| n == 1)
        .map(|(k, _)| k.to_owned())
        .collect();
    for c in &mut checks {
        if single.contains(&c.name) {
            c.board = None;
        }
    }
    checks
}

/// What `checks` ask of the entry at each path (digests with their retags, baseband
/// members): the one rule by which a plan ([`VerifyPlan::new`]) and a download verified
/// as it arrives ([`follow`]) give an entry its work.
fn work_by_path(checks: &[PlannedCheck]) -> BTreeMap<String, EntryWork> {
    let mut work: BTreeMap<String, EntryWork> = BTreeMap::new();
    for check in checks {
        let Some(path) = &check.path else { continue };
        let w = work.entry(path.clone()).or_default();
        match &check.rule {
            Rule::Digest(req) => {
                w.digests.insert(*req);
            }
            Rule::BasebandMember { prefix, algorithm } => {
                w.baseband.insert(prefix.clone(), *algorithm);
            }
            _ => {}
        }
    }
    work
}

fn judge_digest(
    finding: &mut ComponentFinding,
    expected: &[u8],
    req: DigestRequest,
    outcome: Option<&&JobOutcome>,
) {
    let Some(JobOutcome::Entry { error, digests, .. }) = outcome.copied() else {
        finding.status = ComponentStatus::Unverifiable;
        finding.reason = Some("the check was cancelled before this file was hashed".into());
        return;
    };
    let Some(d) = digests.get(&req) else {
        finding.status = ComponentStatus::Mismatch;
        finding.reason = Some(match error {
            Some(e) => format!("the file could not be read: {e}"),
            None => "the file could not be read".into(),
        });
        return;
    };
    finding.actual = Some(to_hex(&d.primary));
    let retag_note = match (req.retag, d.container.payload_type()) {
        (Some(tag), Some((_, own))) if tag != own => Some(format!(
            "{} retagged {}→{}",
            d.container.name(),
            String::from_utf8_lossy(&own),
            String::from_utf8_lossy(&tag)
        )),
        _ => None,
    };
    match d.container {
        Container::Img3 { .. } => {
            if d.primary == expected {
                finding.status = ComponentStatus::Ok;
                finding.reason = Some("IMG3 signed area".into());
            } else if d.whole.as_deref() == Some(expected) {
                finding.status = ComponentStatus::Ok;
                finding.actual = d.whole.as_deref().map(to_hex);
                finding.reason = Some("IMG3, whole file".into());
            } else {
                // FIRMWARE.md §3: the IMG3 rule comes from source, not from real files;
                // a double miss is not proof of corruption.
                finding.status = ComponentStatus::Unverifiable;
                finding.reason = Some(
                    "IMG3: neither the signed area nor the whole file hashes to the Digest".into(),
                );
            }
        }
        _ => {
            if d.primary == expected {
                finding.status = ComponentStatus::Ok;
                finding.reason = retag_note;
            } else if error.is_none()
                && finding.path.as_deref().is_some_and(|p| p.ends_with(".aea"))
            {
                // iOS 18+ ships the root filesystem as an Apple Encrypted Archive. No real
                // file here shows whether its Digest covers the encrypted file or the image
                // inside it, so a difference is no proof of damage (the zip CRC-32 of the
                // same bytes still is).
                finding.status = ComponentStatus::Unverifiable;
                finding.reason = Some(
                    "AEA-encrypted image: its hash differs, and Apple's digest may cover the decrypted image; the zip CRC-32 decides its integrity".into(),
                );
            } else {
                finding.status = ComponentStatus::Mismatch;
                finding.reason = Some(match (error, retag_note) {
                    (Some(e), _) => format!("the file is damaged: {e}"),
                    (None, Some(note)) => format!("hash differs from the manifest ({note})"),
                    (None, None) => "hash differs from the manifest".into(),
                });
            }
        }
    }
}

fn judge_baseband(
    finding: &mut ComponentFinding,
    expected: &[u8],
    prefix: &str,
    outcome: Option<&&JobOutcome>,
) {
    let Some(JobOutcome::Entry {
        error, baseband, ..
    }) = outcome.copied()
    else {
        finding.status = ComponentStatus::Unverifiable;
        finding.reason = Some("the check was cancelled before this file was hashed".into());
        return;
    };
    match baseband.get(prefix) {
        Some(BasebandOutcome::Hashed(actual)) => {
            finding.actual = Some(to_hex(actual));
            if actual == expected {
                finding.status = ComponentStatus::Ok;
            } else {
                finding.status = ComponentStatus::Mismatch;
                finding.reason = Some("member hash differs from the manifest".into());
            }
        }
        Some(BasebandOutcome::NotFound) => {
            finding.status = ComponentStatus::Unverifiable;
            finding.reason = Some(format!(
                "no member of the baseband archive could be identified as {prefix}"
            ));
        }
        Some(BasebandOutcome::Crafted(why)) => {
            finding.status = ComponentStatus::Mismatch;
            finding.reason = Some(format!("the baseband archive is not Apple's: {why}"));
        }
        Some(BasebandOutcome::Unreadable(why)) => {
            finding.status = if error.is_some() {
                ComponentStatus::Mismatch
            } else {
                ComponentStatus::Unverifiable
            };
            finding.reason = Some(format!("the baseband archive could not be read: {why}"));
        }
        None => {
            finding.status = ComponentStatus::Mismatch;
            finding.reason = Some(match error {
                Some(e) => format!("the baseband archive could not be read: {e}"),
                None => "the baseband archive could not be read".into(),
            });
        }
    }
}

/// The checks FIRMWARE.md §3 prescribes for one manifest component, each with the
/// name it is reported under and the digest it must match.
fn rules_for(c: &ManifestComponent) -> Vec<(String, Option<Vec<u8>>, Rule)> {
    let one = |rule: Rule| vec![(c.name.clone(), c.digest.clone(), rule)];
    if c.name == "BasebandFirmware" && !c.download_digests.is_empty() {
        return c
            .download_digests
            .iter()
            .map(|(prefix, digest)| {
                let name = format!("BasebandFirmware:{prefix}");
                let rule = match DigestAlgorithm::from_digest_len(digest.len()) {
                    Some(algorithm) => Rule::BasebandMember {
                        prefix: prefix.clone(),
                        algorithm,
                    },
                    None => Rule::Unverifiable(format!(
                        "a {}-byte digest matches no known algorithm",
                        digest.len()
                    )),
                };
                (name, Some(digest.clone()), rule)
            })
            .collect();
    }
    if c.is_ftab {
        return one(Rule::Skip(
            "IsFTAB: the Digest covers one entry inside ftab.bin, not the file".into(),
        ));
    }
    if c.name.starts_with("eUICC,") {
        return one(Rule::Skip(
            "eUICC firmware: the manifest hashes are not of the file".into(),
        ));
    }
    if c.name == "SE,UpdatePayload" {
        return one(Rule::Skip(
            "SE,UpdatePayload: its hashes cover sub-elements, not the file".into(),
        ));
    }
    let Some(digest) = &c.digest else {
        return match c.path {
            Some(_) => one(Rule::PresenceOnly(
                "present; the manifest has no Digest for it".into(),
            )),
            None => one(Rule::Skip("no file and no Digest in the manifest".into())),
        };
    };
    if c.path.is_none() {
        return one(Rule::Skip(
            "the manifest gives no file for this Digest".into(),
        ));
    }
    let Some(algorithm) = DigestAlgorithm::from_digest_len(digest.len()) else {
        return one(Rule::Unverifiable(format!(
            "a {}-byte digest matches no known algorithm",
            digest.len()
        )));
    };
    let retag = c
        .img4_payload_type
        .as_deref()
        .and_then(|t| <[u8; 4]>::try_from(t.as_bytes()).ok())
        .or_else(|| img4::default_retag(&c.name));
    one(Rule::Digest(DigestRequest { algorithm, retag }))
}

/// A running digest over a window of the stream, with an optional 4-byte overwrite.
struct Sink {
    request: DigestRequest,
    hasher: Hasher,
    start: u64,
    end: u64,
    patch: Option<(u64, [u8; 4])>,
    /// IMG3 whole-file fallback hasher.
    alternate: Option<Hasher>,
}

impl Sink {
    fn new(request: DigestRequest, container: Container, total: u64) -> Sink {
        let patch = request.retag.and_then(|tag| {
            container
                .payload_type()
                .map(|(offset, _)| (offset as u64, tag))
        });
        let (start, end, alternate) = match container {
            Container::Img4 {
                im4p_start,
                im4p_end,
                ..
            } => (im4p_start, im4p_end, None),
            Container::Img3 {
                signed_start,
                signed_end,
            } => (signed_start, signed_end, Some(request.algorithm.hasher())),
            _ => (0, total, None),
        };
        Sink {
            request,
            hasher: request.algorithm.hasher(),
            start,
            end,
            patch,
            alternate,
        }
    }

    /// Feed `chunk`, which sits at stream offset `at`.
    fn feed(&mut self, at: u64, chunk: &[u8]) {
        if let Some(alt) = &mut self.alternate {
            alt.update(chunk);
        }
        let chunk_end = at + chunk.len() as u64;
        let lo = self.start.max(at);
        let hi = self.end.min(chunk_end);
        if lo >= hi {
            return;
        }
        let seg = &chunk[(lo - at) as usize..(hi - at) as usize];
        match self.patch {
            Some((p, tag)) if p < hi && p + 4 > lo => {
                let plo = p.max(lo);
                let phi = (p + 4).min(hi);
                let a = (plo - lo) as usize;
                let b = (phi - lo) as usize;
                self.hasher.update(&seg[..a]);
                let tag_part = &tag[(plo - p) as usize..(phi - p) as usize];
                self.hasher.update(tag_part);
                self.hasher.update(&seg[b..]);
            }
            _ => self.hasher.update(seg),
        }
    }

    fn finish(self, container: Container) -> (DigestRequest, DigestOutcome) {
        (
            self.request,
            DigestOutcome {
                container,
                primary: self.hasher.finish(),
                whole: self.alternate.map(Hasher::finish),
            },
        )
    }
}

/// Streams an entry once: CRC and size through [`EntryStream`], digests through sinks
/// set up once the first bytes have shown which container the file is.
struct Digester {
    requests: Vec<DigestRequest>,
    total: u64,
    head: Vec<u8>,
    container: Option<Container>,
    sinks: Vec<Sink>,
    offset: u64,
}

impl Digester {
    fn new(requests: Vec<DigestRequest>, total: u64) -> Self {
        Digester {
            requests,
            total,
            head: Vec::new(),
            container: None,
            sinks: Vec::new(),
            offset: 0,
        }
    }

    fn is_idle(&self) -> bool {
        self.requests.is_empty()
    }

    fn feed(&mut self, chunk: &[u8]) {
        if self.requests.is_empty() {
            return;
        }
        if self.container.is_none() {
            let need = img4::HEAD_LEN - self.head.len();
            self.head.extend_from_slice(&chunk[..need.min(chunk.len())]);
            if self.head.len() < img4::HEAD_LEN {
                // Hold back until we know the container; head is tiny.
                return;
            }
            self.start_sinks();
            let rest = &chunk[need.min(chunk.len())..];
            self.feed_sinks(rest);
            return;
        }
        self.feed_sinks(chunk);
    }

    fn start_sinks(&mut self) {
        let container = img4::classify(&self.head, self.total);
        self.container = Some(container);
        self.sinks = self
            .requests
            .iter()
            .map(|r| Sink::new(*r, container, self.total))
            .collect();
        let head = std::mem::take(&mut self.head);
        self.feed_sinks(&head);
    }

    fn feed_sinks(&mut self, chunk: &[u8]) {
        if chunk.is_empty() {
            return;
        }
        for sink in &mut self.sinks {
            sink.feed(self.offset, chunk);
        }
        self.offset += chunk.len() as u64;
    }

    fn finish(mut self) -> HashMap<DigestRequest, DigestOutcome> {
        if self.requests.is_empty() {
            return HashMap::new();
        }
        if self.container.is_none() {
            self.start_sinks();
        }
        let container = self.container.unwrap_or(Container::Raw);
        self.sinks
            .into_iter()
            .map(|s| s.finish(container))
            .collect()
    }
}

/// The progress counters one job adds to: the whole run's and its plan's, which counts
/// the bytes the two passes share once ([`count`]).
#[derive(Clone, Copy)]
struct Counters<'p> {
    global: &'p AtomicU64,
    local: &'p PlanProgress,
    /// The job is the whole-file digest (the second pass over the same bytes).
    whole: bool,
}

impl Counters<'_> {
    fn add(&self, n: u64) {
        self.local.add(self.global, n, self.whole);
    }
}

/// Entries smaller than this are never pipelined: the hand-over costs more than it saves.
const PIPELINE_MIN: u64 = 16 << 20;

/// How a job shares the cores with the others of [`run_plans`].
#[derive(Clone, Copy)]
enum Role<'h, 'a> {
    /// On its own ([`VerifyPlan::run_one`], [`run_plan_as_written`]).
    Alone,
    /// Hashes the pipelined entries' pieces between the chunks of its own entry.
    Helper(&'h Hub<'a>),
    /// Inflates its entry into a lane of the hub; the helpers hash it.
    Producer(&'h Hub<'a>),
}

impl Role<'_, '_> {
    fn help(self) {
        if let Role::Helper(hub) = self {
            hub.help();
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn process_entry<'a>(
    archive: &'a Archive,
    entry: &'a Entry,
    work: &EntryWork,
    baseband_budget: &AtomicU64,
    progress: Counters<'_>,
    cancel: Stop<'_>,
    gate: Option<&WrittenGate<'_>>,
    role: Role<'_, 'a>,
) -> JobOutcome {
    let mut digester = Digester::new(work.digests.iter().copied().collect(), entry.size);
    let mut baseband = HashMap::new();
    let mut stream = match archive.stream(entry) {
        Ok(s) => s,
        Err(e) => {
            return JobOutcome::Entry {
                error: Some(e),
                digests: HashMap::new(),
                baseband,
            }
        }
    };
    let result = if let (Role::Producer(hub), true, None) = (role, work.baseband.is_empty(), gate) {
        let (result, fed) = stream_pipelined(&mut stream, digester, hub, progress, cancel);
        digester = fed;
        result
    } else if work.baseband.is_empty() {
        stream_digests(&mut stream, &mut digester, progress, cancel, gate, role)
    } else {
        let mut tee = Tee {
            stream: &mut stream,
            digester: &mut digester,
            cancel,
        };
        baseband = hash_baseband_members(&mut tee, &work.baseband, baseband_budget);
        // What the inner-zip parser left in the read buffer still belongs to the digests.
        digester.feed(stream.take_pending());
        stream_digests(&mut stream, &mut digester, progress, cancel, gate, role)
    };
    let complete = !matches!(result, Err(EntryError::Cancelled))
        && (result.is_ok() || stream.produced() > 0 || digester.is_idle());
    let digests = if complete {
        digester.finish()
    } else {
        HashMap::new()
    };
    JobOutcome::Entry {
        error: result.err(),
        digests,
        baseband,
    }
}

/// The outcome [`process_entry`] gives an entry with `target` work, from the one it gave
/// with `used` work in the same pass over the same bytes; `None` when that cannot be
/// told. Equal work: the outcome itself. Otherwise the baseband members must be the same
/// and every digest `target` asks for must have been computed: as asked, or without a
/// retag where the retag would rewrite nothing (the file is no IM4P, or its type is
/// already the one asked for: the bytes hashed are the same). The digests are
/// independent sinks over one stream ([`Digester`]), so those picked are what a pass
/// with `target` alone computes; a pass that produced nothing has none either way.
fn derive(used: &EntryWork, outcome: &JobOutcome, target: &EntryWork) -> Option<JobOutcome> {
    if used == target {
        return Some(outcome.clone());
    }
    let JobOutcome::Entry {
        error,
        digests,
        baseband,
    } = outcome
    else {
        return None;
    };
    if used.baseband != target.baseband || (used.digests.is_empty() && !target.digests.is_empty()) {
        return None;
    }
    let mut picked = HashMap::new();
    if !digests.is_empty() {
        for req in &target.digests {
            let plain = DigestRequest {
                algorithm: req.algorithm,
                retag: None,
            };
            let found = match (digests.get(req), digests.get(&plain), req.retag) {
                (Some(d), _, _) => d,
                (None, Some(d), Some(tag))
                    if d.container.payload_type().is_none_or(|(_, own)| own == tag) =>
                {
                    d
                }
                _ => return None,
            };
            picked.insert(*req, found.clone());
        }
    }
    Some(JobOutcome::Entry {
        error: error.clone(),
        digests: picked,
        baseband: baseband.clone(),
    })
}

fn stream_digests(
    stream: &mut EntryStream<'_>,
    digester: &mut Digester,
    progress: Counters<'_>,
    cancel: Stop<'_>,
    gate: Option<&WrittenGate<'_>>,
    role: Role<'_, '_>,
) -> Result<(), EntryError> {
    // Count from the start of the entry: a baseband pass may already have read some.
    let mut reported = 0;
    let result = loop {
        if cancel.load(Ordering::Relaxed) {
            break Err(EntryError::Cancelled);
        }
        if let Some(gate) = gate {
            if !gate.wait_next(stream.consumed()) {
                break Err(EntryError::Cancelled);
            }
        }
        match stream.next_chunk() {
            Ok(Some(chunk)) => digester.feed(chunk),
            Ok(None) => break Ok(()),
            Err(e) => break Err(e),
        }
        let now = stream.consumed();
        progress.add(now - reported);
        reported = now;
        role.help();
    };
    progress.add(stream.consumed() - reported);
    result
}

/// [`stream_digests`] for a producer: inflate (and CRC) here, into the buffers of a lane
/// of `hub`, while the other workers feed the digests ([`pipeline`]). Returns the
/// digester fed with everything produced (nothing more when cancelled).
fn stream_pipelined<'a>(
    stream: &mut EntryStream<'a>,
    digester: Digester,
    hub: &Hub<'a>,
    progress: Counters<'_>,
    cancel: Stop<'_>,
) -> (Result<(), EntryError>, Digester) {
    let lane = hub.open(digester);
    let deflated = !stream.is_stored();
    let mut reported = 0;
    let mut spare = None;
    let result = loop {
        if cancel.load(Ordering::Relaxed) {
            break Err(EntryError::Cancelled);
        }
        let mut buf = match spare.take() {
            Some(buf) => buf,
            None => hub.reserve(&lane, deflated),
        };
        match stream.next_into(&mut buf) {
            Ok(Some(Chunk::Inflated(n))) => hub.push_owned(&lane, buf, n),
            Ok(Some(Chunk::Mapped(bytes))) => {
                hub.push_mapped(&lane, bytes);
                spare = Some(buf);
            }
            Ok(None) => break Ok(()),
            Err(e) => break Err(e),
        }
        let now = stream.consumed();
        progress.add(now - reported);
        reported = now;
    };
    progress.add(stream.consumed() - reported);
    let cancelled = matches!(result, Err(EntryError::Cancelled));
    (result, hub.close(lane, !cancelled))
}

/// Reads an entry for the baseband parser while feeding the digests of the same pass.
struct Tee<'s, 'a> {
    stream: &'s mut EntryStream<'a>,
    digester: &'s mut Digester,
    cancel: Stop<'s>,
}

impl Read for Tee<'_, '_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.cancel.load(Ordering::Relaxed) {
            return Err(std::io::Error::other(EntryError::Cancelled));
        }
        let n = self.stream.read(buf)?;
        self.digester.feed(&buf[..n]);
        Ok(n)
    }
}

/// The most bytes one `.bbfw` member may inflate to. Real members are a few megabytes
/// (the largest, the modem image, tens); the outer entry is bounded by its declared
/// size, but what a member inside it inflates to is not.
const MAX_BASEBAND_MEMBER: u64 = 256 << 20;
/// The most bytes all `.bbfw` members of one file may inflate to together: a crafted
/// baseband archive can repeat a member, and a crafted manifest can name many baseband
/// archives. Inflating and hashing 2 GiB costs about 4 s of one core (FIRMWARE.md §6);
/// a real file needs a few hundred megabytes at most. Past it the members left are
/// unverifiable, not mismatched: a real file could in principle need more.
const MAX_BASEBAND_TOTAL: u64 = 2 << 30;

/// Hash the `.bbfw` members named by `*-DownloadDigest` keys, reading the inner zip
/// front to back (its local headers) so the outer entry is still read only once.
/// A member is identified by its file stem: `ACDB` → `acdb.mbn` (verified on Mav21).
///
/// Bounded: a member is inflated only when a key names it, at most once per key (the
/// first member with the stem is the one judged; later ones are skipped without being
/// inflated: a crafted archive could repeat a bomb under one name), to at most
/// [`MAX_BASEBAND_MEMBER`] bytes (more is not Apple's member: a mismatch), and within
/// `budget` (what is left of [`MAX_BASEBAND_TOTAL`] for the file). Members nobody asks for are skipped over
/// their compressed bytes without inflating them.
fn hash_baseband_members(
    reader: &mut impl Read,
    wanted: &BTreeMap<String, DigestAlgorithm>,
    budget: &AtomicU64,
) -> HashMap<String, BasebandOutcome> {
    let mut found: HashMap<String, BasebandOutcome> = HashMap::new();
    let mut failure = None;
    loop {
        match zip::read::read_zipfile_from_stream(reader) {
            Ok(Some(mut member)) => {
                let name = String::from_utf8_lossy(member.name_raw()).into_owned();
                let stem = name
                    .rsplit('/')
                    .next()
                    .unwrap_or(&name)
                    .split('.')
                    .next()
                    .unwrap_or_default()
                    .to_owned();
                let Some((prefix, algorithm)) = wanted
                    .iter()
                    .find(|(prefix, _)| prefix.eq_ignore_ascii_case(&stem))
                else {
                    // Dropping a streamed member skips its compressed bytes without
                    // inflating them (the `zip` crate drains the raw reader).
                    drop(member);
                    continue;
                };
                if found.contains_key(prefix) {
                    // The first member of that name was hashed and is judged; a crafted
                    // archive repeating a bomb under the same name gets no second pass.
                    drop(member);
                    continue;
                }
                let mut hasher = algorithm.hasher();
                let mut buf = vec![0u8; 64 << 10];
                let mut total = 0u64;
                let outcome = loop {
                    match member.read(&mut buf) {
                        Ok(0) => break BasebandOutcome::Hashed(hasher.finish()),
                        Ok(n) => {
                            total += n as u64;
                            if total > MAX_BASEBAND_MEMBER {
                                break BasebandOutcome::Crafted(format!(
                                    "{name:?} inflates beyond {MAX_BASEBAND_MEMBER} bytes"
                                ));
                            }
                            let charged =
                                budget.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |left| {
                                    left.checked_sub(n as u64)
                                });
                            if charged.is_err() {
                                break BasebandOutcome::Unreadable(format!(
                                    "its members inflate beyond the {MAX_BASEBAND_TOTAL} bytes \
                                     ipswcheck reads from the baseband archives of one file"
                                ));
                            }
                            hasher.update(&buf[..n]);
                        }
                        Err(e) => break BasebandOutcome::Unreadable(e.to_string()),
                    }
                };
                if matches!(
                    outcome,
                    BasebandOutcome::Unreadable(_) | BasebandOutcome::Crafted(_)
                ) {
                    found.insert(prefix.clone(), outcome);
                    failure = Some("a member could not be read".into());
                    break;
                }
                found.insert(prefix.clone(), outcome);
            }
            Ok(None) => break,
            Err(e) => {
                failure = Some(e.to_string());
                break;
            }
        }
    }
    for prefix in wanted.keys() {
        found
            .entry(prefix.clone())
            .or_insert_with(|| match &failure {
                Some(why) => BasebandOutcome::Unreadable(why.clone()),
                None => BasebandOutcome::NotFound,
            });
    }
    found
}

fn hash_whole_file(
    bytes: &[u8],
    algorithms: &[DigestAlgorithm],
    progress: Counters<'_>,
    cancel: &AtomicBool,
    role: Role<'_, '_>,
) -> Result<BTreeMap<DigestAlgorithm, Vec<u8>>, EntryError> {
    let mut hashers: Vec<(DigestAlgorithm, Hasher)> =
        algorithms.iter().map(|a| (*a, a.hasher())).collect();
    for chunk in bytes.chunks(1 << 20) {
        if cancel.load(Ordering::Relaxed) {
            return Err(EntryError::Cancelled);
        }
        for (_, h) in &mut hashers {
            h.update(chunk);
        }
        progress.add(chunk.len() as u64);
        role.help();
    }
    Ok(hashers.into_iter().map(|(a, h)| (a, h.finish())).collect())
}

/// Job-level access for a scheduler that feeds many plans through its own queue (the
/// library scan's sliding window, `scan.rs`): job `j` of `0..job_count()` reads
/// `job_size(j)` bytes; [`run_plans`] is the same thing for a fixed set of plans.
impl VerifyPlan<'_> {
    /// How many jobs the plan has (entries to read, plus the whole-file digest).
    pub fn job_count(&self) -> usize {
        self.job_entries.len()
    }

    /// Bytes job `job` reads (its queue priority).
    pub fn job_size(&self, job: usize) -> u64 {
        self.job_cost(self.job_entries[job])
    }

    /// Run job `job`, adding the bytes read to `progress` (and to [`VerifyPlan::done`]).
    /// Each job is run at most once; its outcome is kept for [`VerifyPlan::finish`].
    pub fn run_one(&self, job: usize, progress: &AtomicU64, cancel: &AtomicBool) {
        self.run_job(job, progress, cancel, Role::Alone)
    }
}

/// Run every job of every plan through one queue, costliest first, on the rayon pool.
///
/// Costliest-first matters: one SHA stream cannot be split, so the OS image bounds the
/// whole check (FIRMWARE.md §6); starting it first lets the other cores work through
/// the small entries meanwhile instead of leaving one core alone with it at the end.
///
/// A deflated entry that would still bound the run alone (its estimated cost times the
/// number of workers exceeds all the work left when it starts) is pipelined: its worker
/// inflates, and the others hash what it inflates between their own chunks and once
/// their queue is empty ([`pipeline`]). Its time goes from inflate + hash to about the
/// larger of the two.
pub fn run_plans(plans: &[&VerifyPlan<'_>], progress: &AtomicU64, cancel: &AtomicBool) {
    // (plan, job, estimated cost)
    let mut queue: Vec<(usize, usize, u64)> = plans
        .iter()
        .enumerate()
        .flat_map(|(p, plan)| {
            plan.job_entries
                .iter()
                .enumerate()
                // Jobs answered already ([`VerifyPlan::inject`]) are not run again.
                .filter(|&(j, _)| plan.outcomes[j].get().is_none())
                .map(move |(j, job)| (p, j, plan.job_estimate(*job)))
        })
        .collect();
    // A whole-file digest that may cover the components goes first ([`shortcut`]);
    // then costliest first.
    queue.sort_by_key(|&(p, j, cost)| {
        let first = plans[p].runs_first(plans[p].job_entries[j]);
        (std::cmp::Reverse(first), std::cmp::Reverse(cost))
    });
    let workers = rayon::current_num_threads().min(queue.len()).max(1);
    // Estimated work from each position of the queue to its end.
    let mut left: Vec<u64> = queue
        .iter()
        .rev()
        .scan(0u64, |sum, &(_, _, cost)| {
            *sum = sum.saturating_add(cost);
            Some(*sum)
        })
        .collect();
    left.reverse();
    let total = left.first().copied().unwrap_or(0);
    // Estimated cost of the jobs that have ended.
    let finished = AtomicU64::new(0);
    // Pipeline job k only when it would bound the run alone: its cost on one core is
    // more than a fair share of *all* the work not yet done — the jobs after it and what
    // the jobs started before it still have to do (counted whole until they end). Those
    // running jobs matter: on a modern IPSW the stored 2 GiB OS starts first and is the
    // bound itself; pipelining the 400 MB Cryptex next to it made the OS's worker hash
    // the Cryptex's pieces too, and the check took 1.25 × the OS stream's time
    // (BENCHMARKS.md, "modern").
    let pipelined = |k: usize| {
        let (p, j, cost) = queue[k];
        let not_done = total.saturating_sub(finished.load(Ordering::Relaxed));
        workers > 1
            && cost.saturating_mul(workers as u64) > not_done
            && plans[p].pipelinable(plans[p].job_entries[j])
    };
    let next = AtomicUsize::new(0);
    let hub = Hub::new();
    rayon::scope(|s| {
        for _ in 0..workers {
            s.spawn(|_| {
                loop {
                    hub.help();
                    let k = next.fetch_add(1, Ordering::Relaxed);
                    let Some(&(p, j, cost)) = queue.get(k) else {
                        break;
                    };
                    let role = if pipelined(k) {
                        Role::Producer(&hub)
                    } else {
                        Role::Helper(&hub)
                    };
                    plans[p].run_job(j, progress, cancel, role);
                    finished.fetch_add(cost, Ordering::Relaxed);
                }
                hub.help_until_closed();
            });
        }
    });
}

/// Run one plan over a file that is still being written front to back (a download):
/// `written` is how many bytes from the start are in place. Entries are verified in file
/// order on one thread per core, and the whole-file digests follow the writer on a thread
/// of their own, so the checks finish moments after the last byte arrives:
/// - a stored entry (the multi-GB root filesystem DMG) is hashed as its bytes arrive, its
///   reader waiting for each next chunk to be written;
/// - a deflated entry is verified once all of its bytes are written (an inflater may read
///   ahead of what it has produced, so it is never given bytes not yet in place).
///
/// `written` only ever grows. Setting `cancel` (e.g. when the download fails) stops the
/// waiting: jobs not run are reported as cancelled by [`VerifyPlan::finish`], and left out
/// by [`VerifyPlan::verification_so_far`].
///
/// `failed`, when given, is set as soon as an entry's outcome fails the check (damage, or
/// a component mismatch: [`follow::fails`], the rule a streamed download stops by), so
/// the download can stop instead of fetching gigabytes of a file that can never be ready.
///
/// The plan's archive must not be mapped ([`Archive::unmap`]): every byte is read with
/// `pread` into buffers of its own, after it was written, so no `&[u8]` ever covers bytes
/// the writer is still changing.
pub fn run_plan_as_written(
    plan: &VerifyPlan<'_>,
    written: &AtomicU64,
    progress: &AtomicU64,
    cancel: &AtomicBool,
    failed: Option<&AtomicBool>,
) {
    let archive = plan.archive;
    let len = archive.len();
    let mut order: Vec<(u64, usize)> = plan
        .job_entries
        .iter()
        .enumerate()
        .filter_map(|(j, job)| job.map(|i| (archive.entries()[i].header_offset, j)))
        .collect();
    order.sort_unstable();
    let whole = plan.job_entries.iter().position(Option::is_none);
    let next = AtomicUsize::new(0);
    let workers = rayon::current_num_threads().min(order.len()).max(1);
    std::thread::scope(|s| {
        if let Some(job) = whole {
            s.spawn(move || {
                let counters = Counters {
                    global: progress,
                    local: &plan.done,
                    whole: true,
                };
                let mut hashers: Vec<(DigestAlgorithm, Hasher)> = plan
                    .options
                    .whole_file
                    .iter()
                    .map(|a| (*a, a.hasher()))
                    .collect();
                let mut buf = vec![0u8; 4 << 20];
                let mut at = 0u64;
                let outcome = loop {
                    if at == len {
                        break Ok(hashers.into_iter().map(|(a, h)| (a, h.finish())).collect());
                    }
                    let n = (len - at).min(buf.len() as u64) as usize;
                    if !wait_until_written(written, at + n as u64, cancel) {
                        break Err(EntryError::Cancelled);
                    }
                    if let Err(e) = archive.read_exact_at(&mut buf[..n], at) {
                        break Err(EntryError::Unreadable(e.to_string()));
                    }
                    for (_, h) in &mut hashers {
                        h.update(&buf[..n]);
                    }
                    counters.add(n as u64);
                    at += n as u64;
                };
                let _ = plan.outcomes[job].set(JobOutcome::WholeFile(outcome));
            });
        }
        for _ in 0..workers {
            s.spawn(|| loop {
                let k = next.fetch_add(1, Ordering::Relaxed);
                let Some(&(header, job)) = order.get(k) else {
                    break;
                };
                let i = plan.job_entries[job].expect("an entry job");
                let entry = &archive.entries()[i];
                let work = &plan.work[&i];
                // The local header says where the data starts and ends.
                if !wait_until_written(written, header.saturating_add(30), cancel) {
                    break;
                }
                let range = archive.raw_range(entry).ok();
                let (start, end) = range
                    .as_ref()
                    .map_or((len, len), |r| (r.start as u64, r.end as u64));
                let progressive = entry.method == crate::archive::Method::Stored
                    && work.baseband.is_empty()
                    && range.is_some();
                let gate = WrittenGate {
                    written,
                    data_start: start,
                    data_end: end,
                    cancel,
                };
                let ready = if progressive {
                    gate.wait_next(0)
                } else {
                    wait_until_written(written, end, cancel)
                };
                if !ready {
                    break;
                }
                let counters = Counters {
                    global: progress,
                    local: &plan.done,
                    whole: false,
                };
                let gate = progressive.then_some(&gate);
                let stop = Stop::plain(cancel);
                let budget = &plan.baseband_budget;
                let outcome = process_entry(
                    archive,
                    entry,
                    work,
                    budget,
                    counters,
                    stop,
                    gate,
                    Role::Alone,
                );
                if let Some(failed) = failed {
                    if follow::fails(&plan.checks, entry, &outcome) {
                        failed.store(true, Ordering::Relaxed);
                    }
                }
                let _ = plan.outcomes[job].set(outcome);
            });
        }
    });
}

/// Wait until `written` reaches `end`; false when `cancel` is set first.
fn wait_until_written(written: &AtomicU64, end: u64, cancel: &AtomicBool) -> bool {
    loop {
        if written.load(Ordering::Acquire) >= end {
            return true;
        }
        if cancel.load(Ordering::Relaxed) {
            return false;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

/// Where a stored entry's data lies in a file being written ([`run_plan_as_written`]).
struct WrittenGate<'g> {
    written: &'g AtomicU64,
    data_start: u64,
    data_end: u64,
    cancel: &'g AtomicBool,
}

impl WrittenGate<'_> {
    /// Wait until the chunk the stream reads after `consumed` bytes is written (a stored
    /// stream reads [`crate::archive::STORED_CHUNK`] at a time); false when cancelled.
    fn wait_next(&self, consumed: u64) -> bool {
        let need = self
            .data_start
            .saturating_add(consumed)
            .saturating_add(crate::archive::STORED_CHUNK as u64)
            .min(self.data_end);
        wait_until_written(self.written, need, self.cancel)
    }
}

/// Bytes of the file entry `i`'s job reads: its compressed size, at most the file's
/// length. A directory can claim a zip64 size near 2^64 for an entry whose data is not
/// there (it fails at once); the sum of such claims must neither overflow nor dwarf the
/// real work.
fn entry_cost(archive: &Archive, i: usize) -> u64 {
    archive.entries()[i].compressed_size.min(archive.len())
}

/// Plan, run and judge the verification of one archive.
pub fn verify(
    archive: &Archive,
    identities: &[&BuildIdentity],
    options: VerifyOptions,
    progress: &AtomicU64,
    cancel: &AtomicBool,
) -> Verification {
    let plan = VerifyPlan::new(archive, identities, options);
    run_plans(&[&plan], progress, cancel);
    plan.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sink_digest(
        request: DigestRequest,
        container: Container,
        data: &[u8],
        step: usize,
    ) -> Vec<u8> {
        let mut sink = Sink::new(request, container, data.len() as u64);
        let mut at = 0;
        for chunk in data.chunks(step) {
            sink.feed(at, chunk);
            at += chunk.len() as u64;
        }
        sink.finish(container).1.primary
    }

    #[test]
    fn retag_patch_is_independent_of_chunking() {
        let mut data = vec![0x30, 0x20, 0x16, 0x04];
        data.extend_from_slice(b"IM4P\x16\x04dtre");
        data.extend((0..200u8).collect::<Vec<_>>());
        let container = img4::classify(&data, data.len() as u64);
        let req = DigestRequest {
            algorithm: DigestAlgorithm::Sha384,
            retag: Some(*b"rdtr"),
        };
        let mut patched = data.clone();
        assert_eq!(container.payload_type(), Some((10, *b"dtre")));
        patched[10..14].copy_from_slice(b"rdtr");
        let want = DigestAlgorithm::Sha384.digest(&patched);
        for step in [1, 3, 9, 10, 11, 64, 1000] {
            assert_eq!(
                sink_digest(req, container, &data, step),
                want,
                "step {step}"
            );
        }
    }

    /// The digests a pass computed over an IM4P of type `dtre`, as [`process_entry`]
    /// gives them.
    fn im4p_pass(requests: &[DigestRequest], data: &[u8]) -> JobOutcome {
        let mut digester = Digester::new(requests.to_vec(), data.len() as u64);
        digester.feed(data);
        JobOutcome::Entry {
            error: None,
            digests: digester.finish(),
            baseband: HashMap::new(),
        }
    }

    fn work(requests: &[DigestRequest]) -> EntryWork {
        EntryWork {
            digests: requests.iter().copied().collect(),
            baseband: BTreeMap::new(),
        }
    }

    /// What a pass computed serves another work only where it would compute the same:
    /// a subset of its digests, or a retag that rewrites nothing.
    #[test]
    fn derived_outcomes_are_the_outcomes_of_a_pass_with_that_work() {
        let mut data = vec![0x30, 0x20, 0x16, 0x04];
        data.extend_from_slice(b"IM4P\x16\x04dtre");
        data.extend((0..200u8).collect::<Vec<_>>());
        let req = |algorithm, retag: Option<&[u8; 4]>| DigestRequest {
            algorithm,
            retag: retag.copied(),
        };
        let speculated = [
            req(DigestAlgorithm::Sha384, None),
            req(DigestAlgorithm::Sha1, None),
        ];
        let pass = im4p_pass(&speculated, &data);
        let used = work(&speculated);
        let digests = |o: &JobOutcome| match o {
            JobOutcome::Entry { digests, .. } => digests
                .iter()
                .map(|(r, d)| (*r, (d.container, d.primary.clone(), d.whole.clone())))
                .collect::<BTreeMap<_, _>>(),
            JobOutcome::WholeFile(_) => unreachable!(),
        };
        for target in [
            vec![req(DigestAlgorithm::Sha384, None)],
            vec![req(DigestAlgorithm::Sha1, None)],
            // The file is of type dtre already: retagging to it rewrites nothing.
            vec![req(DigestAlgorithm::Sha384, Some(b"dtre"))],
            vec![],
        ] {
            let derived = derive(&used, &pass, &work(&target)).expect("derivable");
            assert_eq!(
                digests(&derived),
                digests(&im4p_pass(&target, &data)),
                "{target:?}"
            );
        }
        // A retag that rewrites the type, another algorithm, baseband members: not there.
        for target in [
            work(&[req(DigestAlgorithm::Sha384, Some(b"rdtr"))]),
            work(&[req(DigestAlgorithm::Sha256, None)]),
            EntryWork {
                digests: BTreeSet::new(),
                baseband: [("ACDB".to_owned(), DigestAlgorithm::Sha384)].into(),
            },
        ] {
            assert!(derive(&used, &pass, &target).is_none(), "{target:?}");
        }
        // A pass that computed no digest serves no work that asks for one.
        let crc_only = im4p_pass(&[], &data);
        assert!(derive(&work(&[]), &crc_only, &used).is_none());
    }

    #[test]
    fn digester_handles_files_shorter_than_the_head() {
        let req = DigestRequest {
            algorithm: DigestAlgorithm::Sha256,
            retag: None,
        };
        let mut d = Digester::new(vec![req], 0);
        d.feed(b"");
        let out = d.finish();
        assert_eq!(out[&req].primary, DigestAlgorithm::Sha256.digest(b""));
        let mut d = Digester::new(vec![req], 5);
        d.feed(b"ab");
        d.feed(b"cde");
        assert_eq!(
            d.finish()[&req].primary,
            DigestAlgorithm::Sha256.digest(b"abcde")
        );
    }

    /// A directory may claim a zip64 compressed size near 2^64 for entries whose data is
    /// not there (found by fuzzing: two such claims overflowed the progress total). Each
    /// entry counts at most the file's length, the run's progress never passes the total,
    /// and the entries are reported as damage while the rest still verifies.
    #[test]
    fn compressed_sizes_near_2_64_neither_overflow_nor_swell_the_total() {
        use crate::manifest::{BuildManifest, RestoreBehavior};
        use ipswcheck_fixture::ipsw::IpswSpec;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("z64.ipsw");
        let spec = IpswSpec {
            force_zip64: true,
            ..IpswSpec::sample()
        };
        let layout = spec.build(&path).unwrap();
        let mut bytes = std::fs::read(&path).unwrap();
        let claimed = [1u64 << 63, (1 << 63) | (1 << 62)];
        let victims: Vec<_> = layout
            .zip
            .entries
            .iter()
            .filter(|e| e.name.starts_with("kernelcache.") || e.name.contains("iBSS"))
            .take(2)
            .collect();
        assert_eq!(victims.len(), 2);
        for (e, value) in victims.iter().zip(claimed) {
            // The central record's zip64 extra: uncompressed size, compressed size, offset.
            let at = e.central_header_offset as usize + 46 + e.name.len() + 4 + 8;
            bytes[at..at + 8].copy_from_slice(&value.to_le_bytes());
        }
        let archive = Archive::from_bytes("z64.ipsw", &bytes).unwrap();
        let manifest = archive.entry("BuildManifest.plist").unwrap();
        let manifest =
            BuildManifest::from_bytes(&archive.read_small(manifest, 1 << 20).unwrap()).unwrap();
        let identities = crate::identify::customer_identities(&manifest, RestoreBehavior::Erase);
        let options = VerifyOptions {
            hash: true,
            ..VerifyOptions::default()
        };
        let plan = VerifyPlan::new(&archive, &identities, options);
        let jobs = plan.job_count() as u64;
        assert!(jobs > 2);
        let total = plan.total_work();
        assert!(total <= jobs * archive.len(), "{total} for {jobs} jobs");
        let (progress, cancel) = (AtomicU64::new(0), AtomicBool::new(false));
        run_plans(&[&plan], &progress, &cancel);
        assert!(progress.load(Ordering::Relaxed) <= total);
        let v = plan.finish();
        let damaged: BTreeSet<&str> = v.damaged_entries.iter().map(|d| d.entry.as_str()).collect();
        let names: BTreeSet<&str> = victims.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(damaged, names, "{:?}", v.damaged_entries);
        assert!(v.entries_checked > 2);
    }
}
