//! `ipswcheck scan`: the check of a whole firmware library.
//!
//! Why this file is long (~1,100 lines): it is the one place where a library scan's
//! pipeline (walk → open → one shared hashing queue → signing session → judge → summary)
//! is wired together; the parts that stand alone live beside it (walk, schedule, cache,
//! recommend, display).
//!
//! Walk the paths ([`walk`]), keep every regular file that is a zip with a
//! `BuildManifest.plist` (by content, not by extension), check each one as `check.rs`
//! checks a single file, then summarize: counts per status, the damaged (with the
//! predicted restore error), the incomplete, the unsigned, the betas, the duplicates,
//! and with `--device` the newest intact, signed file that restores it — or why none
//! does. Nothing is ever moved, renamed or deleted.
//!
//! # Scheduling and memory
//! Files are taken **largest first** into a **sliding window** of prepared files (open
//! mapping, parsed manifest, verification plan). Every job of every file in the window
//! — each zip entry, and the whole-file SHA-1 when online — goes into **one queue**,
//! served largest first to `--jobs` cores ([`schedule`]); when a file's last job ends
//! its report is written, its memory released, and the next file enters the window.
//!
//! The window is [`default_window`]`(jobs)` = 4 files per core, between 4 and 32 (8 on
//! a 2-core machine). Why bounded: each prepared file holds an open descriptor, a slot
//! of the SIGBUS guard (4096 in all), an address range as large as the file, and a
//! parsed manifest (a few MB for iOS 26); hundreds of files at once would exhaust the
//! descriptor limit long before memory. Why not smaller: the queue must hold the work
//! of several files so that a core that finishes the small entries of one file finds
//! work in another while its neighbour hashes an OS image; with 4 files per core there
//! are always at least two files' worth of jobs per core, and since files enter
//! largest first the last jobs of the scan are the small ones.
//!
//! # Signing
//! One [`SigningSession`] for the whole scan: one TSS query per distinct (UniqueBuildID,
//! chip, board) across the library, one ipsw.me list per product type, both backed by
//! the on-disk signing cache shared with single-file checks. Each file asks on its own
//! thread while its entries are hashed; Ctrl-C never waits for the network.
//!
//! # Verified-results cache
//! See [`cache`]: a file unchanged since a complete verification (same device, inode,
//! size, mtime, tool version and verification options) is not hashed again;
//! `--rehash` forces it. The summary counts `files_hashed` and `files_from_cache`.
//!
//! # Duplicates
//! Two files are duplicates when they have the same build and the same **content
//! fingerprint**: a SHA-256 over the sorted (name, size, CRC-32) of every zip entry —
//! the names and checksums of everything inside, available in microseconds from the
//! directory, cached or not, online or offline. Only files whose archive and components
//! verified are grouped (a copy with a CRC failure has the same directory but not the
//! same content: it is listed as damaged, with the intact copy named).
//!
//! # Exit status
//! 0 when every IPSW passed the checks asked for (a file for another device than
//! `--device` is not a failure), 1 when any failed or a folder or file inside could not
//! be read, 3 when a given path cannot be read at all (before anything is scanned),
//! 130 when interrupted — the results so far are still printed.

pub mod cache;
mod display;
pub mod merge;
mod recommend;
pub mod schedule;
pub mod shard;
pub mod walk;

use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::archive::{Archive, ArchiveError};
use crate::check::{self, CheckOptions, OpenError, OpenedIpsw, PreparedCheck};
use crate::digest::{to_hex, DigestAlgorithm};
use crate::exit::ExitCode;
use crate::judge::Finding;
use crate::report::{CheckStatus, Report};
use crate::signing::{SigningCheck, SigningSession, SigningStatus};

pub use cache::{CacheKey, VerifiedCache};
pub use display::draw_progress;
pub use schedule::JobQueue;
pub use walk::{FileStat, PathProblem, ScanError};

/// Files prepared at once for `jobs` hashing threads (see the module docs).
pub fn default_window(jobs: usize) -> usize {
    (jobs * 4).clamp(4, 32)
}

/// Hashing threads by default: one per core.
pub fn default_jobs() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}

/// What to scan and how.
#[derive(Debug, Clone)]
pub struct ScanOptions {
    pub paths: Vec<PathBuf>,
    /// IPSW URLs to check remotely (`--urls FILE`): a quick check by range requests of
    /// each ([`crate::remote::check_urls`]), sharing the scan's signing session.
    pub urls: Vec<String>,
    /// The per-file check (device, Erase/Update, `--quick`, signing options).
    pub check: CheckOptions,
    /// Hashing threads (`--jobs`).
    pub jobs: usize,
    /// Files prepared at once.
    pub window: usize,
    /// Hash even files the verified-results cache knows (`--rehash`).
    pub rehash: bool,
    /// The verified-results cache directory; `None` disables it.
    pub verified_cache: Option<PathBuf>,
    /// Only this shard of the library (`--shard K/N`, [`shard`]).
    pub shard: Option<shard::Shard>,
}

impl ScanOptions {
    /// Defaults for `paths`: one thread per core, the standard window, the verified
    /// cache in `<signing cache dir>/verified`.
    pub fn new(paths: Vec<PathBuf>, check: CheckOptions) -> Self {
        let jobs = default_jobs();
        let verified_cache = check.signing.cache_dir.as_ref().map(|d| d.join("verified"));
        ScanOptions {
            paths,
            urls: Vec::new(),
            check,
            jobs,
            window: default_window(jobs),
            rehash: false,
            verified_cache,
            shard: None,
        }
    }
}

pub use crate::judge::FileStatus;

/// One IPSW of the library, checked.
#[derive(Debug, Clone)]
pub struct FileResult {
    pub path: PathBuf,
    /// The single-file report (the `ipswcheck FILE --json` document).
    pub report: Report,
    pub status: FileStatus,
    /// The verification came from the verified-results cache.
    pub cached: bool,
    /// The file's entries were hashed by this scan.
    pub hashed: bool,
    /// Content fingerprint (see the module docs); `None` when the directory is unreadable.
    pub fingerprint: Option<String>,
    /// With `--device`: whether the file is for that device (`None` when unknown).
    pub for_device: Option<bool>,
    /// The first (by path) intact file with the same build and content.
    pub duplicate_of: Option<String>,
    /// For a damaged file: an intact file with the same build and directory.
    pub intact_copy: Option<String>,
}

/// The Finder/iTunes error the file's own damage causes on a device it is for: the
/// report's `predicted_restore_error`, except that a report for another `--device` has
/// none (Finder refuses it first), so the judge names the file's own.
pub fn restore_error(report: &Report) -> Option<String> {
    let j = report.judgement();
    j.predicted_restore_error
        .or(j.own_restore_error)
        .map(str::to_owned)
}

/// One file as `json`/`ndjson` print it: the single-file document plus `path` and the
/// scan's facts.
#[derive(Serialize)]
pub struct Row<'a> {
    path: String,
    #[serde(flatten)]
    report: &'a Report,
    scan: RowScan<'a>,
}

#[derive(Serialize)]
struct RowScan<'a> {
    status: FileStatus,
    cached: bool,
    hashed: bool,
    fingerprint: Option<&'a str>,
    for_device: Option<bool>,
    duplicate_of: Option<&'a str>,
    intact_copy: Option<&'a str>,
    /// The error the file's own damage causes (see [`restore_error`]).
    restore_error: Option<String>,
}

impl<'a> From<&'a FileResult> for Row<'a> {
    fn from(f: &'a FileResult) -> Self {
        Row {
            path: f.path_str(),
            report: &f.report,
            scan: RowScan {
                status: f.status,
                cached: f.cached,
                hashed: f.hashed,
                fingerprint: f.fingerprint.as_deref(),
                for_device: f.for_device,
                duplicate_of: f.duplicate_of.as_deref(),
                intact_copy: f.intact_copy.as_deref(),
                restore_error: restore_error(&f.report),
            },
        }
    }
}

impl FileResult {
    pub fn path_str(&self) -> String {
        self.path.display().to_string()
    }

    fn version(&self) -> Option<&str> {
        self.report
            .firmware
            .as_ref()
            .map(|f| f.product_version.as_str())
    }

    fn build(&self) -> Option<&str> {
        self.report.firmware.as_ref().map(|f| f.build.as_str())
    }

    fn beta(&self) -> bool {
        self.report.firmware.as_ref().is_some_and(|f| f.beta)
    }

    /// `iOS 15.8 (19H370)`, `tvOS 17.0 (21J5273q, beta)`.
    fn label(&self) -> String {
        let platform = self
            .report
            .firmware
            .as_ref()
            .map_or("iOS", |f| f.platform.as_str());
        match (self.version(), self.build()) {
            (Some(v), Some(b)) => {
                format!(
                    "{platform} {v} ({b}{})",
                    if self.beta() { ", beta" } else { "" }
                )
            }
            _ => "unidentified".into(),
        }
    }

    /// The one-line reason for the status: for a damaged or incomplete file its damage
    /// (not that it is for another device), for an unsigned one the signing answer;
    /// without the file's own path in front.
    pub fn problem(&self) -> Option<String> {
        let findings = || self.report.findings.iter().filter(|f| !f.is_note());
        let f = match self.status {
            FileStatus::Damaged
            | FileStatus::Incomplete
            | FileStatus::Interrupted
            | FileStatus::NotRestorable => {
                findings().find(|f| f.is_damage() || f.check() == "file")
            }
            FileStatus::Unsigned | FileStatus::SigningUnknown => {
                findings().find(|f| f.check() == "signing")
            }
            FileStatus::Ok => None,
        }
        .or_else(|| findings().next())?;
        let message = f.message();
        let prefix = format!("{}: ", self.path_str());
        Some(message.strip_prefix(&prefix).unwrap_or(&message).to_owned())
    }

    fn listed(&self) -> Listed {
        Listed {
            path: self.path_str(),
            platform: self.report.firmware.as_ref().map(|f| f.platform.clone()),
            product_version: self.version().map(str::to_owned),
            build: self.build().map(str::to_owned),
            predicted_restore_error: restore_error(&self.report),
            problem: self.problem(),
            intact_copy: self.intact_copy.clone(),
        }
    }
}

/// A file named in a summary list.
#[derive(Debug, Clone, Serialize)]
pub struct Listed {
    pub path: String,
    /// `iOS`, `tvOS`, … (the report's `firmware.platform`).
    pub platform: Option<String>,
    pub product_version: Option<String>,
    pub build: Option<String>,
    pub predicted_restore_error: Option<String>,
    pub problem: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub intact_copy: Option<String>,
}

/// Files with the same build and content.
#[derive(Debug, Clone, Serialize)]
pub struct DuplicateGroup {
    pub product_version: String,
    pub build: String,
    pub fingerprint: String,
    /// Sorted; the first is the one the others are `duplicate_of`.
    pub paths: Vec<String>,
}

/// The answer to "which file restores this device now?".
#[derive(Debug, Clone, Serialize)]
pub struct Recommendation {
    pub product_type: String,
    pub device: String,
    /// The file to use; `None` when no file qualifies (`message` says why).
    pub path: Option<String>,
    pub product_version: Option<String>,
    pub build: Option<String>,
    pub signing: Option<SigningStatus>,
    pub message: String,
}

/// Everything but the per-file rows.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub paths: Vec<String>,
    /// Regular files looked at (IPSWs and others).
    pub files_examined: usize,
    /// IPSWs found (one row each).
    pub ipsw_files: usize,
    /// Files that are not IPSWs, or not files, by reason. Never opened beyond a sniff.
    pub skipped: BTreeMap<String, usize>,
    /// Paths that lead to a file or folder already found by another path.
    pub aliases: usize,
    /// Folders and files inside the library that could not be read.
    pub unreadable: Vec<PathProblem>,
    /// IPSWs per status (every status present, zeros included).
    pub counts: BTreeMap<FileStatus, usize>,
    pub damaged: Vec<Listed>,
    pub incomplete: Vec<Listed>,
    pub unsigned: Vec<Listed>,
    pub signing_unknown: Vec<Listed>,
    pub betas: Vec<Listed>,
    pub duplicates: Vec<DuplicateGroup>,
    /// With `--device` only.
    pub recommendation: Option<Recommendation>,
    /// Files whose entries this scan hashed.
    pub files_hashed: usize,
    /// Files whose verification was reused from the verified-results cache.
    pub files_from_cache: usize,
    /// Bytes read while hashing.
    pub bytes_hashed: u64,
    /// Files found but not checked because the scan was interrupted.
    pub not_checked: usize,
    pub interrupted: bool,
    pub elapsed_seconds: f64,
    pub exit_code: i32,
}

/// The result of a scan: rows sorted by path, and the summary.
#[derive(Debug, Clone)]
pub struct ScanResult {
    pub files: Vec<FileResult>,
    pub summary: Summary,
}

impl ScanResult {
    pub fn exit(&self) -> ExitCode {
        ExitCode::from_code(self.summary.exit_code).unwrap_or(ExitCode::ScanFailures)
    }

    /// The row of `path`.
    pub fn file(&self, path: &Path) -> Option<&FileResult> {
        self.files.iter().find(|f| f.path == path)
    }
}

/// One in-flight file, for the progress display.
#[derive(Debug, Clone)]
pub struct InFlight {
    pub id: u64,
    pub name: String,
    pub total: u64,
    pub done: Arc<AtomicU64>,
}

/// Counters a progress display polls while a scan runs.
#[derive(Debug, Default)]
pub struct ScanProgress {
    /// Bytes the scan will read: exact for files already planned, the file size (twice
    /// with a whole-file digest) for files not yet opened.
    total: AtomicU64,
    /// Bytes read by files that have finished.
    finished_bytes: AtomicU64,
    files_total: AtomicUsize,
    files_done: AtomicUsize,
    next_id: AtomicU64,
    in_flight: Mutex<Vec<InFlight>>,
}

/// A moment of a running scan.
#[derive(Debug, Clone, Default)]
pub struct ProgressSnapshot {
    pub total: u64,
    pub done: u64,
    pub files_total: usize,
    pub files_done: usize,
    pub in_flight: Vec<(u64, String, u64, u64)>,
}

impl ScanProgress {
    pub fn snapshot(&self) -> ProgressSnapshot {
        let in_flight = self.in_flight.lock().unwrap_or_else(|e| e.into_inner());
        let rows: Vec<_> = in_flight
            .iter()
            .map(|f| {
                (
                    f.id,
                    f.name.clone(),
                    f.done.load(Ordering::Relaxed),
                    f.total,
                )
            })
            .collect();
        let done =
            self.finished_bytes.load(Ordering::Relaxed) + rows.iter().map(|r| r.2).sum::<u64>();
        ProgressSnapshot {
            total: self.total.load(Ordering::Relaxed).max(done),
            done,
            files_total: self.files_total.load(Ordering::Relaxed),
            files_done: self.files_done.load(Ordering::Relaxed),
            in_flight: rows,
        }
    }

    fn replace_estimate(&self, estimate: u64, actual: u64) {
        self.total.fetch_add(actual, Ordering::Relaxed);
        self.total.fetch_sub(estimate, Ordering::Relaxed);
    }

    fn start(&self, name: String, total: u64, done: Arc<AtomicU64>) -> u64 {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.in_flight
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(InFlight {
                id,
                name,
                total,
                done,
            });
        id
    }

    fn end(&self, id: u64) {
        let mut in_flight = self.in_flight.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(pos) = in_flight.iter().position(|f| f.id == id) {
            let f = in_flight.remove(pos);
            self.finished_bytes
                .fetch_add(f.done.load(Ordering::Relaxed), Ordering::Relaxed);
        }
    }
}

/// Set by SIGINT once [`interrupt_flag`] has installed the handler.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// A flag that Ctrl-C sets. The first call installs a SIGINT handler that only sets
/// it (with `SA_RESETHAND`: a second Ctrl-C ends the process the usual way).
pub fn interrupt_flag() -> &'static AtomicBool {
    #[cfg(unix)]
    {
        static INSTALL: std::sync::Once = std::sync::Once::new();
        extern "C" fn on_sigint(_sig: libc::c_int) {
            INTERRUPTED.store(true, Ordering::SeqCst);
        }
        INSTALL.call_once(|| unsafe {
            // SAFETY: a plain sigaction call; the handler only stores to an atomic.
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = on_sigint as *const () as usize;
            action.sa_flags = libc::SA_RESTART | libc::SA_RESETHAND;
            libc::sigemptyset(&mut action.sa_mask);
            libc::sigaction(libc::SIGINT, &action, std::ptr::null_mut());
        });
    }
    &INTERRUPTED
}

/// Whole-file digests a cached verification must hold to be reused: only the one the
/// user gives (`--sha1`/`--sha256`), which can fail the check. The SHA-1 an online check
/// computes for ipsw.me's advisory comparison is not needed: an online scan reuses the
/// integrity result of an earlier offline one and only asks about signing (its
/// checksum line then says the comparison was skipped).
fn required_whole_file(options: &CheckOptions) -> Vec<DigestAlgorithm> {
    match &options.expected {
        Some(e) if !options.quick => vec![e.algorithm],
        _ => Vec::new(),
    }
}

/// What became of one candidate file.
enum Outcome {
    Row(Box<FileResult>),
    Skipped(String),
    Unreadable(PathProblem),
    /// Not started: the scan was interrupted first.
    NotChecked,
}

struct Ctx<'s> {
    check: Arc<CheckOptions>,
    session: Arc<SigningSession>,
    cache: Option<VerifiedCache>,
    rehash: bool,
    jobs: usize,
    queue: &'s JobQueue,
    progress: &'s ScanProgress,
    cancel: &'s AtomicBool,
    /// Whole-file digests a cached verification must hold ([`required_whole_file`]).
    whole_file: Vec<DigestAlgorithm>,
    boards: Option<Vec<String>>,
    hashed_bytes: AtomicU64,
}

impl Ctx<'_> {
    /// The progress estimate for a file not yet opened.
    fn estimate(&self, size: u64) -> u64 {
        if self.check.quick {
            0
        } else {
            // Each byte counted once, however many passes read it (verify::count).
            size
        }
    }
}

/// Scan a library. `cancel` (Ctrl-C) stops it promptly: files in progress end as
/// `interrupted`, files not started are counted as `not_checked`, and the result holds
/// everything found so far.
pub fn scan(
    options: &ScanOptions,
    progress: &ScanProgress,
    cancel: &AtomicBool,
) -> Result<ScanResult, ScanError> {
    let started = Instant::now();
    let mut walk = walk::walk(&options.paths, cancel)?;
    let sharded;
    let options = match options.shard {
        Some(sh) => {
            // Each file, URL and unreadable path is one shard's; what the walk counts
            // without a path (skipped kinds, aliases) is shard 0's, so that merged
            // shard outputs add up to the unsharded scan.
            let key = |p: &Path| shard::Shard::key(p, &options.paths);
            walk.candidates.retain(|c| sh.owns(&key(&c.path)));
            walk.unreadable
                .retain(|u| sh.owns(&key(Path::new(&u.path))));
            if sh.index != 0 {
                walk.skipped.clear();
                walk.aliases = 0;
            }
            sharded = ScanOptions {
                urls: options
                    .urls
                    .iter()
                    .filter(|u| sh.owns(u))
                    .cloned()
                    .collect(),
                ..options.clone()
            };
            &sharded
        }
        None => options,
    };
    let mut candidates = walk.candidates;
    // Largest first: the biggest jobs enter the queue first (see `schedule`).
    candidates.sort_by(|a, b| {
        b.stat
            .size
            .cmp(&a.stat.size)
            .then_with(|| a.path.cmp(&b.path))
    });

    let check = Arc::new(options.check.clone());
    let window = options.window.max(1).min(candidates.len().max(1));
    let queue = JobQueue::new(window, options.jobs.max(1));
    let ctx = Ctx {
        session: Arc::new(SigningSession::new(options.check.signing.clone())),
        cache: options.verified_cache.clone().map(VerifiedCache::new),
        rehash: options.rehash,
        jobs: options.jobs.max(1),
        queue: &queue,
        progress,
        cancel,
        whole_file: required_whole_file(&options.check),
        boards: options
            .check
            .device
            .as_ref()
            .map(|boards| boards.iter().map(|d| d.board.to_owned()).collect()),
        hashed_bytes: AtomicU64::new(0),
        check,
    };
    progress.total.store(
        candidates.iter().map(|c| ctx.estimate(c.stat.size)).sum(),
        Ordering::Relaxed,
    );
    progress
        .files_total
        .store(candidates.len() + options.urls.len(), Ordering::Relaxed);

    let next = AtomicUsize::new(0);
    let outcomes: Mutex<Vec<Option<Outcome>>> =
        Mutex::new((0..candidates.len()).map(|_| None).collect());
    let run_slot = |slot: usize| loop {
        let i = next.fetch_add(1, Ordering::Relaxed);
        let Some(candidate) = candidates.get(i) else {
            break;
        };
        let outcome = if ctx.cancel.load(Ordering::Relaxed) {
            Outcome::NotChecked
        } else {
            process(candidate, slot, &ctx)
        };
        outcomes.lock().unwrap_or_else(|e| e.into_inner())[i] = Some(outcome);
        ctx.progress.files_done.fetch_add(1, Ordering::Relaxed);
    };
    std::thread::scope(|s| {
        for slot in 1..window {
            // A thread that cannot be created (a tight process limit) only means a
            // smaller window: this thread works through the files too.
            let run_slot = &run_slot;
            if std::thread::Builder::new()
                .spawn_scoped(s, move || run_slot(slot))
                .is_err()
            {
                break;
            }
        }
        run_slot(0);
    });

    let url_outcomes = check_urls(options, &ctx);

    let mut files = Vec::new();
    let mut skipped = walk.skipped;
    let mut unreadable = walk.unreadable;
    let mut not_checked = 0;
    let outcomes = outcomes.into_inner().unwrap_or_else(|e| e.into_inner());
    for outcome in outcomes.into_iter().chain(url_outcomes) {
        match outcome {
            Some(Outcome::Row(row)) => files.push(*row),
            Some(Outcome::Skipped(reason)) => *skipped.entry(reason).or_default() += 1,
            Some(Outcome::Unreadable(p)) => unreadable.push(p),
            Some(Outcome::NotChecked) | None => not_checked += 1,
        }
    }
    files.sort_by(|a, b| a.path.cmp(&b.path));
    mark_duplicates(&mut files);
    let interrupted = cancel.load(Ordering::Relaxed) || walk.cancelled;
    let summary = summarize(
        options,
        &files,
        SummaryInputs {
            files_examined: candidates.len() + options.urls.len(),
            skipped,
            aliases: walk.aliases,
            unreadable,
            not_checked,
            interrupted,
            bytes_hashed: ctx.hashed_bytes.load(Ordering::Relaxed),
            elapsed: started.elapsed(),
        },
    );
    Ok(ScanResult { files, summary })
}

/// `--urls`: each URL checked remotely (quick, nothing downloaded) with the scan's
/// signing session. A URL that cannot be read at all (unreachable, HTTP error, no range
/// support, not an IPSW) is listed as unreadable; the others get a row like a file's.
fn check_urls(options: &ScanOptions, ctx: &Ctx<'_>) -> Vec<Option<Outcome>> {
    if options.urls.is_empty() {
        return Vec::new();
    }
    let reports = crate::remote::check_urls(&options.urls, &ctx.check, &ctx.session, ctx.cancel);
    ctx.progress
        .files_done
        .fetch_add(reports.iter().flatten().count(), Ordering::Relaxed);
    reports
        .into_iter()
        .map(|report| {
            let mut report = report?;
            if report.exit() == ExitCode::NotAnIpsw {
                let message = report
                    .problems
                    .first()
                    .map(|p| p.message.as_str())
                    .unwrap_or_default();
                return Some(Outcome::Unreadable(PathProblem {
                    path: report.file.clone(),
                    error: message
                        .strip_prefix(&format!("{}: ", report.file))
                        .unwrap_or(message)
                        .to_owned(),
                }));
            }
            let for_device = ctx
                .check
                .device
                .is_some()
                .then(|| report.checks.compatibility.status != CheckStatus::Fail);
            Some(Outcome::Row(Box::new(FileResult {
                path: PathBuf::from(&report.file),
                status: classify(&mut report, false),
                report,
                cached: false,
                hashed: false,
                fingerprint: None,
                for_device,
                duplicate_of: None,
                intact_copy: None,
            })))
        })
        .collect()
}

/// Check one candidate in window slot `slot`.
fn process(candidate: &walk::Candidate, slot: usize, ctx: &Ctx<'_>) -> Outcome {
    let path = &candidate.path;
    let estimate = ctx.estimate(candidate.stat.size);
    let before = FileStat::now(path).ok();
    let ipsw = match check::open_ipsw(path) {
        Ok(ipsw) => Arc::new(ipsw),
        Err(e) => {
            ctx.progress.replace_estimate(estimate, 0);
            return open_failure(candidate, &e, ctx);
        }
    };
    let prepared = PreparedCheck::for_library(&ipsw, &ctx.check);
    let fingerprint = Some(fingerprint(&ipsw.archive));
    let for_device = ctx.check.device.is_some().then(|| prepared.is_compatible());
    let key = before
        .filter(|s| s.size == ipsw.archive.len())
        .map(|s| CacheKey::new(s, ctx.boards.clone(), ctx.check.behavior));
    let cached = match (&ctx.cache, &key) {
        (Some(cache), Some(key)) if !ctx.check.quick && !ctx.rehash => {
            cache.get(key, &ctx.whole_file)
        }
        _ => None,
    };
    let signer = start_signing(&ipsw, &prepared, ctx);
    let row = |report: Report, status, cached, hashed| {
        Outcome::Row(Box::new(FileResult {
            path: path.clone(),
            report,
            status,
            cached,
            hashed,
            fingerprint: fingerprint.clone(),
            for_device,
            duplicate_of: None,
            intact_copy: None,
        }))
    };

    if let Some(verification) = cached {
        ctx.progress.replace_estimate(estimate, 0);
        let (signing, signing_interrupted) = signer.wait(ctx.cancel);
        let mut report = prepared.finish_with(&verification, signing);
        let status = classify(&mut report, signing_interrupted);
        return row(report, status, true, false);
    }

    let plan = prepared.plan();
    let total = plan.total_work();
    ctx.progress.replace_estimate(estimate, total);
    let done = Arc::new(AtomicU64::new(0));
    let name = path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    let id = ctx.progress.start(name, total, Arc::clone(&done));
    let jobs = plan.job_count();
    if jobs > 0 {
        ctx.queue
            .submit(slot, (0..jobs).map(|j| (j, plan.job_size(j))));
        let hashed = AtomicBool::new(false);
        std::thread::scope(|s| {
            // ipsw.me's whole-file SHA-1 reaches the running plan as soon as the signing
            // thread has it, as in a single check: a file that matches it stops hashing
            // its components (verify::shortcut). Without an answer nothing changes.
            if let Signer::Pending { early, .. } = &signer {
                let (early, hashed, prepared) = (Arc::clone(early), &hashed, &prepared);
                s.spawn(move || {
                    while !hashed.load(Ordering::Relaxed) {
                        if let Some(signing) = early.get() {
                            prepared.trust_ipswme(signing);
                            break;
                        }
                        std::thread::sleep(Duration::from_millis(20));
                    }
                });
            }
            ctx.queue.run_slot(slot, ctx.jobs.min(jobs), &|j| {
                plan.run_one(j, &done, ctx.cancel)
            });
            hashed.store(true, Ordering::Relaxed);
        });
    }
    let (signing, signing_interrupted) = signer.wait(ctx.cancel);
    // An answer that came after the last byte was hashed still says whether the file
    // is the one Apple published (the shortcut's "whichever comes second").
    prepared.trust_ipswme(&signing);
    let (mut report, verification) = prepared.finish_keeping(signing);
    ctx.progress.end(id);
    ctx.hashed_bytes
        .fetch_add(done.load(Ordering::Relaxed), Ordering::Relaxed);
    // Changed under the mapping (the report says how): the findings prove nothing.
    let changed = ipsw.archive.changed().is_some();
    // Replaced or touched by path since it was looked at: the findings may be right
    // for what was read, but the key no longer names it.
    let same_file = FileStat::now(path).ok() == before;
    if let (Some(cache), Some(key)) = (&ctx.cache, &key) {
        // Only a complete verification of a file that did not change may be reused.
        if verification.hashed && !verification.cancelled && !changed && same_file {
            let _ = cache.put(key, path, &verification);
        }
    }
    let status = classify(&mut report, verification.cancelled || signing_interrupted);
    row(report, status, false, verification.hashed)
}

/// The signing answer of one file, asked on its own thread.
enum Signer {
    Ready(SigningCheck),
    /// Asked on another thread; `early` holds a copy of the answer as soon as there is
    /// one, for the running verification ([`PreparedCheck::trust_ipswme`]).
    Pending {
        rx: mpsc::Receiver<SigningCheck>,
        early: Arc<std::sync::OnceLock<SigningCheck>>,
    },
}

impl Signer {
    /// The answer, or "skipped" at once when the scan is interrupted (the query thread
    /// is left to finish on its own). The flag says whether that happened.
    fn wait(self, cancel: &AtomicBool) -> (SigningCheck, bool) {
        let rx = match self {
            Signer::Ready(s) => return (s, false),
            Signer::Pending { rx, .. } => rx,
        };
        loop {
            match rx.recv_timeout(Duration::from_millis(50)) {
                Ok(s) => return (s, false),
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    if cancel.load(Ordering::Relaxed) {
                        return (
                            SigningCheck::skipped(
                                "interrupted before Apple's signing server answered",
                            ),
                            true,
                        );
                    }
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    let mut failed = SigningCheck::skipped("the signing check failed internally");
                    failed.status = SigningStatus::Unknown;
                    return (failed, false);
                }
            }
        }
    }
}

fn start_signing(ipsw: &Arc<OpenedIpsw>, prepared: &PreparedCheck<'_>, ctx: &Ctx<'_>) -> Signer {
    if ctx.check.signing.offline || !prepared.is_compatible() {
        // Nothing to wait for: the hosts file is read, nothing is asked.
        return Signer::Ready(prepared.sign_with(&ctx.session));
    }
    let (tx, rx) = mpsc::channel();
    let early = Arc::new(std::sync::OnceLock::new());
    let ipsw = Arc::clone(ipsw);
    let check = Arc::clone(&ctx.check);
    let session = Arc::clone(&ctx.session);
    let answer = Arc::clone(&early);
    let spawned = std::thread::Builder::new().spawn(move || {
        let prepared = PreparedCheck::for_library(&ipsw, &check);
        let signing = prepared.sign_with(&session);
        let _ = answer.set(signing.clone());
        let _ = tx.send(signing);
    });
    match spawned {
        Ok(_) => Signer::Pending { rx, early },
        // No thread to spare: ask on this one.
        Err(_) => Signer::Ready(prepared.sign_with(&ctx.session)),
    }
}

/// A file that did not open as an IPSW.
///
/// A file named on the command line, or named `*.ipsw`, is always a row with its exit
/// code (an empty download, an HTML error page saved as `.ipsw`, a truncated file): the
/// user expects it to be an IPSW, and saying nothing would call a broken library clean.
/// Only files found while walking that neither look like an IPSW nor hold a manifest are
/// skipped, and the summary counts them by reason.
fn open_failure(candidate: &walk::Candidate, error: &OpenError, ctx: &Ctx<'_>) -> Outcome {
    let path = &candidate.path;
    let row = || {
        let mut report = check::unreadable_report(path, &ctx.check, error);
        let status = classify(&mut report, false);
        Outcome::Row(Box::new(FileResult {
            path: path.to_path_buf(),
            report,
            status,
            cached: false,
            hashed: false,
            fingerprint: None,
            for_device: None,
            duplicate_of: None,
            intact_copy: None,
        }))
    };
    let expected_ipsw = candidate.explicit || has_ipsw_name(path);
    match error {
        OpenError::Archive(ArchiveError::NotFound) => Outcome::Unreadable(PathProblem {
            path: path.display().to_string(),
            error: "disappeared during the scan".into(),
        }),
        OpenError::Archive(ArchiveError::Unreadable(e)) => Outcome::Unreadable(PathProblem {
            path: path.display().to_string(),
            error: e.to_string(),
        }),
        _ if expected_ipsw => row(),
        OpenError::Archive(ArchiveError::NotAZip) => Outcome::Skipped("not a zip archive".into()),
        OpenError::Archive(ArchiveError::Empty) => Outcome::Skipped("empty file".into()),
        OpenError::NoManifest => Outcome::Skipped("zip without BuildManifest.plist".into()),
        OpenError::Archive(ArchiveError::IsDirectory | ArchiveError::NotRegularFile) => {
            Outcome::Skipped("not a regular file (FIFO, socket or device)".into())
        }
        OpenError::Archive(ArchiveError::Truncated | ArchiveError::BrokenDirectory(_)) => {
            if looks_like_ipsw(path) {
                row()
            } else {
                Outcome::Skipped("damaged zip that is not recognisably an IPSW".into())
            }
        }
        _ => row(),
    }
}

/// `*.ipsw`, or a partial download of one (`….ipsw.part`, `….ipsw.download`).
fn has_ipsw_name(path: &Path) -> bool {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    name.ends_with(".ipsw") || name.contains(".ipsw.")
}

/// For a zip whose directory is gone (a cut-off download): is it an IPSW? Yes when
/// its name says so (`.ipsw`, `.ipsw.part`, …) or when its first local headers name a
/// manifest or IM4P firmware — read front to back, as far as the file goes.
fn looks_like_ipsw(path: &Path) -> bool {
    if has_ipsw_name(path) {
        return true;
    }
    local_header_names(path, 4096).iter().any(|n| {
        n == "BuildManifest.plist"
            || n == "Restore.plist"
            || (n.starts_with("Firmware/") && n.ends_with(".im4p"))
    })
}

/// Names of the local headers from the start of a zip, stopping at the first entry
/// whose size the local header does not give (data descriptor) or at the end.
fn local_header_names(path: &Path, max: usize) -> Vec<String> {
    let mut names = Vec::new();
    let Ok(mut file) = std::fs::File::open(path) else {
        return names;
    };
    let Ok(len) = file.metadata().map(|m| m.len()) else {
        return names;
    };
    let mut offset = 0u64;
    let u16_at = |b: &[u8], i: usize| u16::from_le_bytes([b[i], b[i + 1]]);
    let u32_at = |b: &[u8], i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
    while names.len() < max && offset + 30 <= len {
        let mut head = [0u8; 30];
        if file.seek(SeekFrom::Start(offset)).is_err() || file.read_exact(&mut head).is_err() {
            break;
        }
        if &head[..4] != b"PK\x03\x04" {
            break;
        }
        let flags = u16_at(&head, 6);
        let mut compressed = u64::from(u32_at(&head, 18));
        let uncompressed32 = u32_at(&head, 22);
        let name_len = usize::from(u16_at(&head, 26));
        let extra_len = usize::from(u16_at(&head, 28));
        let mut rest = vec![0u8; name_len + extra_len];
        if file.read_exact(&mut rest).is_err() {
            break;
        }
        names.push(String::from_utf8_lossy(&rest[..name_len]).into_owned());
        if compressed == u64::from(u32::MAX) {
            // Zip64: the sizes are in extra field 0x0001 (uncompressed first if present).
            let extra = &rest[name_len..];
            let mut i = 0;
            let mut found = None;
            while i + 4 <= extra.len() {
                let id = u16_at(extra, i);
                let size = usize::from(u16_at(extra, i + 2));
                let body = &extra[(i + 4).min(extra.len())..(i + 4 + size).min(extra.len())];
                if id == 1 {
                    let at = if uncompressed32 == u32::MAX { 8 } else { 0 };
                    if body.len() >= at + 8 {
                        found = Some(u64::from_le_bytes(
                            body[at..at + 8].try_into().expect("8 bytes"),
                        ));
                    }
                }
                i += 4 + size;
            }
            match found {
                Some(c) => compressed = c,
                None => break,
            }
        }
        if flags & 0x08 != 0 {
            break;
        }
        offset += 30 + (name_len + extra_len) as u64 + compressed;
    }
    names
}

/// SHA-256 over the sorted (name, size, CRC-32) of every file entry, 32 hex digits.
fn fingerprint(archive: &Archive) -> String {
    let mut rows: Vec<(&str, u64, u32)> = archive
        .entries()
        .iter()
        .filter(|e| !e.is_dir)
        .map(|e| (e.name.as_str(), e.size, e.crc32))
        .collect();
    rows.sort_unstable();
    let mut text = Vec::new();
    for (name, size, crc) in rows {
        text.extend_from_slice(name.as_bytes());
        text.extend_from_slice(format!("\0{size}\0{crc:08x}\n").as_bytes());
    }
    to_hex(&DigestAlgorithm::Sha256.digest(&text)[..16])
}

/// The scan status of a report, from the judge. `interrupted`: the check did not
/// finish (Ctrl-C while hashing or waiting for Apple), which the report then says too.
fn classify(report: &mut Report, interrupted: bool) -> FileStatus {
    let said = report
        .findings
        .iter()
        .any(|f| matches!(f, Finding::Interrupted { .. }));
    if interrupted && !said {
        report.add(Finding::Interrupted {
            message: "the scan was interrupted before this file's check finished".into(),
        });
        report.conclude();
    }
    report.judgement().file_status
}

/// Group intact files by (build, fingerprint); name the intact copy of damaged files.
fn mark_duplicates(files: &mut [FileResult]) {
    let intact = |f: &FileResult| {
        !matches!(
            f.status,
            FileStatus::Damaged | FileStatus::Incomplete | FileStatus::Interrupted
        )
    };
    let mut first: HashMap<(String, String), String> = HashMap::new();
    for f in files.iter() {
        if let (true, Some(build), Some(fp)) = (intact(f), f.build(), &f.fingerprint) {
            first
                .entry((build.to_owned(), fp.clone()))
                .or_insert_with(|| f.path_str());
        }
    }
    for f in files.iter_mut() {
        let (Some(build), Some(fp)) = (f.build().map(str::to_owned), f.fingerprint.clone()) else {
            continue;
        };
        let Some(original) = first.get(&(build, fp)) else {
            continue;
        };
        if *original == f.path_str() {
            continue;
        }
        if intact(f) {
            f.duplicate_of = Some(original.clone());
        } else if f.status == FileStatus::Damaged {
            f.intact_copy = Some(original.clone());
        }
    }
}

struct SummaryInputs {
    files_examined: usize,
    skipped: BTreeMap<String, usize>,
    aliases: usize,
    unreadable: Vec<PathProblem>,
    not_checked: usize,
    interrupted: bool,
    bytes_hashed: u64,
    elapsed: Duration,
}

fn summarize(options: &ScanOptions, files: &[FileResult], inputs: SummaryInputs) -> Summary {
    let mut counts: BTreeMap<FileStatus, usize> = FileStatus::ALL.iter().map(|s| (*s, 0)).collect();
    for f in files {
        *counts.entry(f.status).or_default() += 1;
    }
    let list = |status: FileStatus| -> Vec<Listed> {
        files
            .iter()
            .filter(|f| f.status == status)
            .map(FileResult::listed)
            .collect()
    };
    let mut groups: BTreeMap<(String, String), DuplicateGroup> = BTreeMap::new();
    for f in files {
        let Some(original) = &f.duplicate_of else {
            continue;
        };
        let (Some(build), Some(fp)) = (f.build(), &f.fingerprint) else {
            continue;
        };
        let group = groups
            .entry((build.to_owned(), fp.clone()))
            .or_insert_with(|| DuplicateGroup {
                product_version: f.version().unwrap_or_default().to_owned(),
                build: build.to_owned(),
                fingerprint: fp.clone(),
                paths: vec![original.clone()],
            });
        group.paths.push(f.path_str());
    }
    let recommendation = options
        .check
        .device
        .as_ref()
        .and_then(|boards| boards.first())
        .map(|device| {
            recommend::recommend(device.product_type, device.name, files, &options.check)
        });
    let failed = files.iter().any(|f| f.status.is_failure()) || !inputs.unreadable.is_empty();
    let exit = if inputs.interrupted {
        ExitCode::Interrupted
    } else if failed {
        ExitCode::ScanFailures
    } else {
        ExitCode::Ready
    };
    Summary {
        paths: options
            .paths
            .iter()
            .map(|p| p.display().to_string())
            .collect(),
        files_examined: inputs.files_examined,
        ipsw_files: files.len(),
        skipped: inputs.skipped,
        aliases: inputs.aliases,
        unreadable: inputs.unreadable,
        counts,
        damaged: list(FileStatus::Damaged),
        incomplete: list(FileStatus::Incomplete),
        unsigned: list(FileStatus::Unsigned),
        signing_unknown: list(FileStatus::SigningUnknown),
        betas: files
            .iter()
            .filter(|f| f.beta())
            .map(FileResult::listed)
            .collect(),
        duplicates: groups.into_values().collect(),
        recommendation,
        files_hashed: files.iter().filter(|f| f.hashed).count(),
        files_from_cache: files.iter().filter(|f| f.cached).count(),
        bytes_hashed: inputs.bytes_hashed,
        not_checked: inputs.not_checked,
        interrupted: inputs.interrupted,
        elapsed_seconds: (inputs.elapsed.as_secs_f64() * 1000.0).round() / 1000.0,
        exit_code: exit.code(),
    }
}
