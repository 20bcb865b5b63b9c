//! Verifying a download from a server without range support while it arrives.
//!
//! Such a server sends the file only whole, front to back, and the zip directory comes
//! last, so the plan of a ranged download ([`super::run_plan_as_written`]) cannot be made
//! before the last byte. But a zip repeats what its directory says about each entry in a
//! local header in front of the entry's data: a [`Follower`] walks those headers as the
//! bytes land in `FILE.part`, reading it with `pread` through an [`Archive::growing`]
//! (every read waits until its bytes are written, so an inflater never sees a byte that
//! is not in place), and
//!
//! - verifies each entry with [`process_entry`], as a plan's job does — CRC-32 and size,
//!   a deflated entry inflated as its bytes arrive, a stored one hashed chunk by chunk —
//!   with the work the manifest asks of its name ([`Selected`]: the rule of
//!   [`VerifyPlan::new`](super::VerifyPlan::new), for the identities the check selects);
//! - until BuildManifest.plist has arrived that work is unknown: small entries get their
//!   CRC-32 checked, large ones also the digests of [`SPECULATE`] in the same pass
//!   (Apple's IPSWs put their disk images, gigabytes, before the manifest). Once the
//!   manifest is parsed, an entry whose work cannot be taken from that pass ([`derive`])
//!   is read again from `FILE.part` — not downloaded again — while the download goes on;
//! - hashes the whole file for the whole-file digests the check needs, on a thread of its
//!   own that follows the writer.
//!
//! Bounded: a header costs its name and extra field (at most 128 KiB); the walk ends at
//! the central directory, at anything that is not a local header, past the archive
//! reader's caps ([`MAX_ENTRIES`] entries, [`MAX_DIRECTORY_BYTES`] of names), at a stored
//! entry with a data descriptor (where it ends cannot be known in stream order), and at a
//! deflated one with a descriptor that does not end within [`MAX_MEASURED`] bytes of
//! output. Whatever the walk did not reach is verified once the download is complete.
//!
//! The directory is the judge ([`VerifyPlan::inject`](super::VerifyPlan::inject)): a
//! streamed outcome counts only for the entry the directory describes at that offset,
//! with the same fields and work. Two decisions are taken from the stream alone, because
//! waiting for the directory would mean downloading gigabytes for nothing
//! ([`StopReason`]): damage in an entry as its local header describes it, and a manifest
//! that is not for the device asked about.
//! Apple's local headers always agree with the directory; for a crafted file whose do
//! not, the stopped download's report describes the stream, not the directory.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};

use flate2::{Decompress, FlushDecompress, Status};

use super::count::PlanProgress;
use super::shortcut::Stop;
use super::{
    derive, judge_baseband, judge_digest, planned_checks, process_entry, work_by_path,
    ComponentFinding, ComponentStatus, Counters, DigestRequest, EntryWork, JobOutcome,
    PlannedCheck, Role, Rule, MAX_BASEBAND_TOTAL,
};
use crate::archive::{
    Archive, Entry, EntryError, LocalHeader, Method, Watermark, LOCAL_HEADER, LOCAL_HEADER_LEN,
    MAX_DIRECTORY_BYTES, MAX_ENTRIES,
};
use crate::digest::{DigestAlgorithm, Hasher};
use crate::manifest::{BuildIdentity, BuildManifest};

/// The digests computed over a large entry that arrives before the manifest: the two
/// algorithms of iOS manifests' file digests (FIRMWARE.md §3: SHA-1 up to A9, SHA-384
/// from A10 on). With them the disk images that precede the manifest in Apple's files
/// need not be read a second time.
pub const SPECULATE: [DigestAlgorithm; 2] = [DigestAlgorithm::Sha384, DigestAlgorithm::Sha1];
/// Entries this large (uncompressed) get [`SPECULATE`]'s digests before the manifest
/// arrives; smaller ones are cheaper to read again from `FILE.part` than to hash twice.
pub const SPECULATE_MIN: u64 = 4 << 20;
/// The most a deflated entry with a data descriptor is inflated to find where it ends
/// (the output is thrown away): a real IPSW entry is at most a few GB; past this the
/// walk ends and the rest is verified once the download is complete.
pub const MAX_MEASURED: u64 = 4 << 30;
/// The name the manifest is looked up by, byte for byte (as [`Archive::entry`] does).
const MANIFEST_NAME: &[u8] = b"BuildManifest.plist";

/// What the manifest asks of each entry for the device asked about, and whether it
/// refuses that device.
pub struct Selected {
    checks: Vec<PlannedCheck>,
    work: BTreeMap<String, EntryWork>,
    refused: bool,
}

impl Selected {
    /// The checks of `identities` (as the check selects them for its options);
    /// `refused`: the manifest is not for the device asked about (exit 20).
    pub fn new(identities: &[&BuildIdentity], refused: bool) -> Selected {
        let checks = planned_checks(identities);
        let work = work_by_path(&checks);
        Selected {
            checks,
            work,
            refused,
        }
    }

    /// Whether the manifest is not for the device asked about.
    pub fn refused(&self) -> bool {
        self.refused
    }

    /// The entry's work, by exact name as [`Archive::index_of`] answers: never for a
    /// directory, never for a name whose bytes are not valid UTF-8.
    fn work_for(&self, entry: &Entry) -> EntryWork {
        match exact_name(entry) {
            Some(name) => self.work.get(name).cloned().unwrap_or_default(),
            None => EntryWork::default(),
        }
    }

    /// Whether the check would fail this entry with this outcome ([`fails`]).
    fn fails(&self, entry: &Entry, outcome: &JobOutcome) -> bool {
        fails(&self.checks, entry, outcome)
    }
}

/// Whether a check of `checks` would fail `entry` with `outcome`: damage, or a component
/// of it judged a mismatch ([`judge_digest`], [`judge_baseband`]). What stops a download
/// early, streamed or ranged ([`super::run_plan_as_written`]).
pub(super) fn fails(checks: &[PlannedCheck], entry: &Entry, outcome: &JobOutcome) -> bool {
    if is_damage(outcome) {
        return true;
    }
    let Some(name) = exact_name(entry) else {
        return false;
    };
    checks
        .iter()
        .filter(|c| c.path.as_deref() == Some(name))
        .any(|check| {
            let mut finding = ComponentFinding {
                name: check.name.clone(),
                board: None,
                path: check.path.clone(),
                algorithm: None,
                status: ComponentStatus::Skipped,
                expected: None,
                actual: None,
                reason: None,
            };
            let expected = check.expected.as_deref().unwrap_or_default();
            let outcome = Some(&outcome);
            match &check.rule {
                Rule::Digest(req) => judge_digest(&mut finding, expected, *req, outcome),
                Rule::BasebandMember { prefix, .. } => {
                    judge_baseband(&mut finding, expected, prefix, outcome)
                }
                _ => return false,
            }
            finding.status == ComponentStatus::Mismatch
        })
}

/// The name a manifest `Path` can mean: the exact bytes, valid UTF-8, not a directory.
fn exact_name(entry: &Entry) -> Option<&str> {
    (!entry.is_dir && entry.name.as_bytes() == entry.raw_name.as_slice())
        .then_some(entry.name.as_str())
}

/// An outcome that fails the entry whatever the manifest says.
fn is_damage(outcome: &JobOutcome) -> bool {
    matches!(outcome, JobOutcome::Entry { error: Some(e), .. } if *e != EntryError::Cancelled)
}

/// The work of an entry that arrives before the manifest ([`SPECULATE`]).
fn speculative(entry: &Entry) -> EntryWork {
    let mut work = EntryWork::default();
    if entry.size >= SPECULATE_MIN {
        for algorithm in SPECULATE {
            work.digests.insert(DigestRequest {
                algorithm,
                retag: None,
            });
        }
    }
    work
}

/// Why a download should stop before its last byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// An entry is damaged, or a component does not hash to the manifest's digest: the
    /// file can never be ready (the report names what is wrong).
    Damage,
    /// The manifest is for another device: what a ranged download's preflight stops for.
    OtherDevice,
}

/// One verification of an entry that finished.
struct Done {
    /// The work it was done with.
    work: EntryWork,
    outcome: JobOutcome,
    /// It was read again from the file once the manifest was known.
    reread: bool,
}

#[derive(Default)]
struct Slot {
    done: Option<Done>,
    busy: bool,
    /// Waiting in [`State::rereads`].
    queued: bool,
}

#[derive(Default)]
enum ManifestState {
    #[default]
    NotSeen,
    Reading,
    Read(BuildManifest),
    Unusable,
}

#[derive(Default)]
struct State {
    /// The entries walked, in stream order, and what became of each.
    walked: Vec<Entry>,
    slots: Vec<Slot>,
    /// The next walked entry to verify.
    next: usize,
    /// Entries to read again with the manifest's work.
    rereads: VecDeque<usize>,
    /// Workers verifying an entry now.
    busy: usize,
    walk_done: bool,
    manifest: ManifestState,
    selected: Option<Arc<Selected>>,
    /// Bytes hashed from the start and the whole-file digests over them.
    whole_file: Option<(u64, BTreeMap<DigestAlgorithm, Vec<u8>>)>,
}

/// Reads the manifest entry's bytes and selects what to verify for the check's options
/// (given by the check, which owns those rules); `None` when it cannot be used.
pub type ManifestReader<'a> =
    dyn Fn(&Archive, &Entry) -> Option<(BuildManifest, Selected)> + Sync + 'a;

/// Verifies a download as it is written (see the module documentation): [`Follower::run`]
/// on a thread of its own while the download writes and advances the watermark.
pub struct Follower<'a> {
    archive: &'a Archive,
    watermark: &'a Watermark,
    manifest: &'a ManifestReader<'a>,
    whole_file: Vec<DigestAlgorithm>,
    state: Mutex<State>,
    changed: Condvar,
    abort: AtomicBool,
    stopped: OnceLock<StopReason>,
    /// Bytes verified (not shown: the download's progress counts each byte once).
    verified: AtomicU64,
    progress: PlanProgress,
    baseband_budget: AtomicU64,
}

impl<'a> Follower<'a> {
    /// Follow the download into `archive` (an [`Archive::growing`] over `watermark`),
    /// hashing the whole file with `whole_file` and reading the manifest with `manifest`.
    pub fn new(
        archive: &'a Archive,
        watermark: &'a Watermark,
        whole_file: Vec<DigestAlgorithm>,
        manifest: &'a ManifestReader<'a>,
    ) -> Self {
        Follower {
            archive,
            watermark,
            manifest,
            whole_file,
            state: Mutex::default(),
            changed: Condvar::new(),
            abort: AtomicBool::new(false),
            stopped: OnceLock::new(),
            verified: AtomicU64::new(0),
            progress: PlanProgress::new(u64::MAX, u64::MAX),
            baseband_budget: AtomicU64::new(MAX_BASEBAND_TOTAL),
        }
    }

    /// Walk, verify and hash until the download is over (the watermark closed) and
    /// everything in place is verified, or until [`Follower::abort`].
    pub fn run(&self) {
        let workers = rayon::current_num_threads().max(2);
        std::thread::scope(|s| {
            s.spawn(|| self.walk());
            if !self.whole_file.is_empty() {
                s.spawn(|| self.hash_whole_file());
            }
            for _ in 0..workers {
                s.spawn(|| self.work());
            }
        });
    }

    /// Why the download should stop, once something says so.
    pub fn stop_reason(&self) -> Option<StopReason> {
        self.stopped.get().copied()
    }

    /// Stop everything now (the download failed or stopped): nothing more is verified.
    pub fn abort(&self) {
        self.abort.store(true, Ordering::Relaxed);
        drop(self.lock());
        self.changed.notify_all();
    }

    /// Bytes of entries verified so far, each pass counted.
    pub fn verified(&self) -> u64 {
        self.verified.load(Ordering::Relaxed)
    }

    /// What was verified, for [`VerifyPlan::inject`](super::VerifyPlan::inject).
    pub fn into_streamed(self) -> Streamed {
        let stop = self.stopped.get().copied();
        let state = self.state.into_inner().unwrap_or_else(|e| e.into_inner());
        let by_offset = state
            .walked
            .iter()
            .enumerate()
            .map(|(i, e)| (e.header_offset, i))
            .collect();
        Streamed {
            by_offset,
            results: state.slots.into_iter().map(|s| s.done).collect(),
            walked: state.walked,
            whole_file: state.whole_file,
            manifest: match state.manifest {
                ManifestState::Read(m) => Some(m),
                _ => None,
            },
            stop,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Plain data: a panic elsewhere leaves it usable.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn aborted(&self) -> bool {
        self.abort.load(Ordering::Relaxed)
    }

    fn stop(&self, reason: StopReason) {
        let _ = self.stopped.set(reason);
    }

    /// Walk the local headers in stream order, handing each entry to the workers.
    fn walk(&self) {
        let mut pos = 0u64;
        let mut name_bytes = 0u64;
        while !self.aborted() {
            let mut fixed = [0u8; LOCAL_HEADER_LEN];
            // The signature first: the central directory, junk or the end of the stream
            // ends the walk.
            if self.archive.read_exact_at(&mut fixed[..4], pos).is_err()
                || &fixed[..4] != LOCAL_HEADER
                || self
                    .archive
                    .read_exact_at(&mut fixed[4..], pos.saturating_add(4))
                    .is_err()
            {
                break;
            }
            let (name_len, extra_len) = LocalHeader::tail_len(&fixed);
            name_bytes += name_len as u64;
            if self.lock().walked.len() as u64 >= MAX_ENTRIES || name_bytes > MAX_DIRECTORY_BYTES {
                break;
            }
            let mut tail = vec![0u8; name_len + extra_len];
            let tail_at = pos.saturating_add(LOCAL_HEADER_LEN as u64);
            if self.archive.read_exact_at(&mut tail, tail_at).is_err() {
                break;
            }
            let (name, extra) = tail.split_at(name_len);
            let Some(mut header) = LocalHeader::parse(pos, &fixed, name, extra) else {
                break;
            };
            let end = if header.descriptor {
                self.descriptor_end(&mut header)
            } else {
                header.data_start.checked_add(header.entry.compressed_size)
            };
            let Some(end) = end else { break };
            let mut state = self.lock();
            state.walked.push(header.entry);
            state.slots.push(Slot::default());
            drop(state);
            self.changed.notify_all();
            pos = end;
        }
        self.lock().walk_done = true;
        self.changed.notify_all();
    }

    /// Where an entry with a data descriptor ends, its CRC-32 and sizes taken from the
    /// descriptor: only a deflated entry can be followed (its deflate stream says where
    /// it ends).
    fn descriptor_end(&self, header: &mut LocalHeader) -> Option<u64> {
        if header.entry.method != Method::Deflated || header.entry.encrypted {
            return None;
        }
        let compressed = self.measure(header.data_start)?;
        let data_end = header.data_start.checked_add(compressed)?;
        let after = self.read_up_to(data_end, 24);
        let len = header.complete_with_descriptor(&after, compressed)?;
        data_end.checked_add(len)
    }

    /// The compressed length of the deflate stream at `start`: inflated into a scratch
    /// buffer (nothing is kept) until it ends; `None` when it is broken, does not end
    /// before the download does, or inflates past [`MAX_MEASURED`].
    fn measure(&self, start: u64) -> Option<u64> {
        const WINDOW: usize = 64 << 10;
        let mut inflater = Decompress::new(false);
        let mut out = vec![0u8; crate::archive::INFLATE_CHUNK];
        let mut input: Vec<u8> = Vec::new();
        let mut used = 0usize;
        loop {
            if self.aborted() {
                return None;
            }
            if used == input.len() {
                input = self.read_up_to(start.checked_add(inflater.total_in())?, WINDOW);
                used = 0;
                if input.is_empty() {
                    return None;
                }
            }
            let (in_before, out_before) = (inflater.total_in(), inflater.total_out());
            let status = inflater
                .decompress(&input[used..], &mut out, FlushDecompress::None)
                .ok()?;
            used += (inflater.total_in() - in_before) as usize;
            if inflater.total_out() > MAX_MEASURED {
                return None;
            }
            match status {
                Status::StreamEnd => return Some(inflater.total_in()),
                _ if inflater.total_in() == in_before && inflater.total_out() == out_before => {
                    // Stuck on what is left of the window: read it again with more.
                    let more = self.read_up_to(
                        start.checked_add(inflater.total_in())?,
                        input.len() - used + WINDOW,
                    );
                    if more.len() <= input.len() - used {
                        return None;
                    }
                    input = more;
                    used = 0;
                }
                _ => {}
            }
        }
    }

    /// Up to `max` bytes at `at`: as many as are in place once that many are, or once
    /// the download is over.
    fn read_up_to(&self, at: u64, max: usize) -> Vec<u8> {
        let _ = self.watermark.wait_for(at.saturating_add(max as u64));
        let n = self.watermark.written().saturating_sub(at).min(max as u64) as usize;
        let mut buf = vec![0u8; n];
        if self.archive.read_exact_at(&mut buf, at).is_err() {
            buf.clear();
        }
        buf
    }

    /// The whole-file digests, over the bytes in the order they are written.
    fn hash_whole_file(&self) {
        let mut hashers: Vec<(DigestAlgorithm, Hasher)> =
            self.whole_file.iter().map(|a| (*a, a.hasher())).collect();
        let mut buf = vec![0u8; 4 << 20];
        let mut at = 0u64;
        loop {
            if self.aborted() {
                return;
            }
            let n = match self.watermark.wait_for(at + buf.len() as u64) {
                Ok(()) => buf.len(),
                Err(_) => (self.watermark.written() - at) as usize,
            };
            if n == 0 {
                break;
            }
            if self.archive.read_exact_at(&mut buf[..n], at).is_err() {
                return;
            }
            for (_, h) in &mut hashers {
                h.update(&buf[..n]);
            }
            at += n as u64;
        }
        let digests = hashers.into_iter().map(|(a, h)| (a, h.finish())).collect();
        self.lock().whole_file = Some((at, digests));
    }

    /// A worker: verify walked entries in stream order, and entries to read again.
    fn work(&self) {
        while let Some(task) = self.next_task() {
            let counters = Counters {
                global: &self.verified,
                local: &self.progress,
                whole: false,
            };
            let outcome = process_entry(
                self.archive,
                &task.entry,
                &task.work,
                &self.baseband_budget,
                counters,
                Stop::plain(&self.abort),
                None,
                Role::Alone,
            );
            let parsed = if task.manifest && !is_damage(&outcome) {
                (self.manifest)(self.archive, &task.entry)
            } else {
                None
            };
            self.finished(task, outcome, parsed);
        }
    }

    fn next_task(&self) -> Option<Task> {
        let mut state = self.lock();
        loop {
            if self.aborted() {
                return None;
            }
            let (i, reread) = if let Some(i) = state.rereads.pop_front() {
                (i, true)
            } else if state.next < state.walked.len() {
                state.next += 1;
                (state.next - 1, false)
            } else if state.walk_done && state.busy == 0 {
                // Nothing left, and no one busy who could queue more.
                drop(state);
                self.changed.notify_all();
                return None;
            } else {
                state = self.changed.wait(state).unwrap_or_else(|e| e.into_inner());
                continue;
            };
            let entry = state.walked[i].clone();
            if entry.is_dir {
                // A plan has no job for a directory either.
                continue;
            }
            let manifest =
                matches!(state.manifest, ManifestState::NotSeen) && entry.raw_name == MANIFEST_NAME;
            if manifest {
                state.manifest = ManifestState::Reading;
            }
            let work = match &state.selected {
                Some(selected) => selected.work_for(&entry),
                None => speculative(&entry),
            };
            state.slots[i].busy = true;
            state.slots[i].queued = false;
            state.busy += 1;
            return Some(Task {
                index: i,
                entry,
                work,
                manifest,
                reread,
            });
        }
    }

    /// Record a verification; once the manifest is known, judge it (and every entry
    /// verified before it) and queue what must be read again.
    fn finished(&self, task: Task, outcome: JobOutcome, parsed: Option<(BuildManifest, Selected)>) {
        let mut state = self.lock();
        state.busy -= 1;
        state.slots[task.index].busy = false;
        let cancelled = matches!(
            &outcome,
            JobOutcome::Entry {
                error: Some(EntryError::Cancelled),
                ..
            }
        );
        if !cancelled {
            state.slots[task.index].done = Some(Done {
                work: task.work,
                outcome,
                reread: task.reread,
            });
        }
        if task.manifest {
            match parsed {
                Some((manifest, selected)) => {
                    if selected.refused {
                        self.stop(StopReason::OtherDevice);
                    }
                    state.manifest = ManifestState::Read(manifest);
                    state.selected = Some(Arc::new(selected));
                    for i in 0..state.slots.len() {
                        self.settle(&mut state, i);
                    }
                }
                None => {
                    state.manifest = ManifestState::Unusable;
                    self.settle(&mut state, task.index);
                }
            }
        } else {
            self.settle(&mut state, task.index);
        }
        drop(state);
        self.changed.notify_all();
    }

    /// Judge entry `i`'s verification with what is known: before the manifest, only its
    /// own damage; after it, its components too, with the manifest's work taken from the
    /// pass made ([`derive`]) or, when it cannot be, from a second read of the file.
    fn settle(&self, state: &mut State, i: usize) {
        let slot = &state.slots[i];
        if slot.busy || slot.queued {
            return;
        }
        let Some(done) = &slot.done else { return };
        let entry = &state.walked[i];
        let Some(selected) = state.selected.clone() else {
            if is_damage(&done.outcome) {
                self.stop(StopReason::Damage);
            }
            return;
        };
        let target = selected.work_for(entry);
        match derive(&done.work, &done.outcome, &target) {
            Some(outcome) => {
                if selected.fails(entry, &outcome) {
                    self.stop(StopReason::Damage);
                }
                let reread = done.reread;
                state.slots[i].done = Some(Done {
                    work: target,
                    outcome,
                    reread,
                });
            }
            None => {
                if is_damage(&done.outcome) {
                    self.stop(StopReason::Damage);
                }
                state.slots[i].queued = true;
                state.rereads.push_back(i);
            }
        }
    }
}

/// One entry for a worker.
struct Task {
    index: usize,
    entry: Entry,
    work: EntryWork,
    /// It is the manifest: parse it once verified.
    manifest: bool,
    reread: bool,
}

/// What a [`Follower`] verified: for [`VerifyPlan::inject`](super::VerifyPlan::inject),
/// and for the report of a download stopped part way (its entries so far and the
/// manifest, when it arrived).
pub struct Streamed {
    walked: Vec<Entry>,
    by_offset: HashMap<u64, usize>,
    results: Vec<Option<Done>>,
    whole_file: Option<(u64, BTreeMap<DigestAlgorithm, Vec<u8>>)>,
    manifest: Option<BuildManifest>,
    stop: Option<StopReason>,
}

impl Streamed {
    /// The entries walked, in stream order, as their local headers describe them.
    pub fn entries(&self) -> &[Entry] {
        &self.walked
    }

    /// Whether two walked entries have the same name.
    pub fn has_duplicate_names(&self) -> bool {
        let mut names: Vec<&[u8]> = self.walked.iter().map(|e| e.raw_name.as_slice()).collect();
        names.sort_unstable();
        names.windows(2).any(|w| w[0] == w[1])
    }

    /// The manifest as it arrived (its memory budget is held until it is dropped).
    pub fn take_manifest(&mut self) -> Option<BuildManifest> {
        self.manifest.take()
    }

    pub fn stop_reason(&self) -> Option<StopReason> {
        self.stop
    }

    /// How many walked entries were verified (however the manifest judges them), and
    /// their compressed bytes.
    pub fn verified(&self) -> (usize, u64) {
        self.walked
            .iter()
            .zip(&self.results)
            .filter(|(_, done)| done.is_some())
            .fold((0, 0), |(n, bytes), (e, _)| {
                (n + 1, bytes.saturating_add(e.compressed_size))
            })
    }

    /// The outcome the job of `entry` (a directory record) with `work` would have, if
    /// this entry's local header is that record's and its verification gives it;
    /// whether it was read a second time.
    pub(super) fn outcome_for(
        &self,
        entry: &Entry,
        work: &EntryWork,
    ) -> Option<(JobOutcome, bool)> {
        let &i = self.by_offset.get(&entry.header_offset)?;
        let walked = &self.walked[i];
        let same = walked.raw_name == entry.raw_name
            && walked.method == entry.method
            && walked.encrypted == entry.encrypted
            && walked.crc32 == entry.crc32
            && walked.compressed_size == entry.compressed_size
            && walked.size == entry.size;
        let done = self.results[i].as_ref().filter(|_| same)?;
        Some((derive(&done.work, &done.outcome, work)?, done.reread))
    }

    /// The whole-file digests with `algorithms`, if they were computed over `len` bytes.
    pub(super) fn whole_file(
        &self,
        len: u64,
        algorithms: &[DigestAlgorithm],
    ) -> Option<BTreeMap<DigestAlgorithm, Vec<u8>>> {
        let (hashed, digests) = self.whole_file.as_ref()?;
        (*hashed == len
            && digests.len() == algorithms.len()
            && algorithms.iter().all(|a| digests.contains_key(a)))
        .then(|| digests.clone())
    }
}

/// What [`VerifyPlan::inject`](super::VerifyPlan::inject) took from a download verified
/// as it arrived.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Injected {
    /// Entries whose verification during the download stood.
    pub entries: usize,
    /// Their compressed bytes.
    pub bytes: u64,
    /// Of those, the entries read a second time from the file (they arrived before the
    /// manifest, and their digests could not be taken from the first pass).
    pub reread: usize,
    pub bytes_reread: u64,
    /// Entries left to verify from the file once it was complete.
    pub entries_after: usize,
    pub bytes_after: u64,
    /// The whole-file digests were computed during the download.
    pub whole_file: bool,
}
