//! `ipswcheck fetch URL -o FILE`: download an IPSW once, verifying it as it arrives, and
//! keep it only if every check passed.
//!
//! Why this file is long (~1,100 lines): one download has to keep its `.part`, sidecar,
//! resume, verification-as-bytes-arrive and publish rules consistent, with and without
//! range support, so they stay in one place.
//!
//! 1. **Preflight, by range** ([`super::open_url`], then a quick check): the end of
//!    the zip, the directory and the manifests (well under 1 MB), then device, identity,
//!    component presence and signing. Wrong device (20), not signed (30), signing unknown
//!    (31), a missing component (11): stop here, with nothing written.
//! 2. **`FILE.part`**, pre-sized (sparse where the file system allows), gets the fetched
//!    end of the file (end records and directory) at its offset, so it can be opened as
//!    an ordinary [`Archive`] at once. `FILE.part.json` records the URL, size, validators
//!    and how many bytes from the start are in place.
//! 3. **One streamed download** of the rest, from offset 0 (or where an earlier attempt
//!    stopped) while [`verify::run_plan_as_written`] verifies every entry — CRC-32,
//!    component digests — and the whole-file SHA-1 as soon as its bytes are written
//!    (read back with `pread`: no mapping of `FILE.part` is alive while it is written,
//!    and every write makes sure of it, see [`write_part`]). A broken transfer is
//!    resumed with a range request and `If-Range` (up to
//!    [`FetchOptions::retries`] times in a row without progress); across runs, a
//!    `FILE.part` whose sidecar matches the server's ETag/Last-Modified is resumed.
//!    An entry found damaged, or a component that does not match its digest, stops the
//!    download there (unless `keep`): the file can never be ready, and the report of what
//!    was found ([`verify::VerifyPlan::verification_so_far`]) is the answer.
//! 4. **The normal full report.** Only when it is ready (exit 0) does `FILE.part` become
//!    `FILE` (a hard link then unlink, so an existing `FILE` is never replaced). On a
//!    failed check nothing is kept, or with `keep` the file is kept as `FILE.failed`.
//!
//! A server without range support gets no preflight (the directory is at the end of a
//! body it only sends whole): the body is streamed into `FILE.part` while a
//! [`Follower`] verifies it from the local headers as it arrives — CRC-32s, the
//! component digests once BuildManifest.plist is in, the whole-file digests — reading
//! it with `pread` as it grows ([`Archive::growing`]). Once complete, the file gets the
//! check `ipswcheck FILE` gives it, in which its zip directory decides which streamed
//! verifications stand and the rest is verified from the file
//! ([`check::check_opened_streamed`]): same verdict, little left to do after the last
//! byte. Damage found on the way, or a manifest for another device, stops the download
//! with nothing kept; the same rule for publishing applies (`fetch_streamed`). Such a
//! download cannot be resumed.
//!
//! Read-only rule: an existing `FILE` is never modified or deleted (fetch refuses to
//! start), and a `FILE.part` is only reused or removed when its sidecar says this command
//! wrote it for this URL — that very file (device and inode), not another one put in its
//! place. No file is ever written through a link (`remote/part.rs`: exclusive creation
//! without following links, a `FILE.part` with other names or of another user refused,
//! the sidecar replaced by rename, `FILE` linked from the descriptor written).

use std::fs::{self, File};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::client::io_error_chain;
use super::part;
use super::{fix_remote_report, human_bytes, open_url, quick_check, remote_failure, unreadable};
use super::{RemoteError, RemoteFile, Validators};
use crate::archive::{Archive, ArchiveError, Entry, MappedCheck, Watermark};
use crate::check::{self, CheckOptions, OpenError, OpenedIpsw, PreparedCheck, Progress};
use crate::judge::Finding;
use crate::report::{CheckStatus, Checks, Report, StreamedFacts};
use crate::signing::SigningSession;
use crate::verify::follow::{Follower, Injected, StopReason};
use crate::verify::{self, EntryDamage};

/// Default for [`FetchOptions::retries`].
pub const DEFAULT_RETRIES: u32 = 5;
/// How often the sidecar's byte count is brought up to date during a download.
const SIDECAR_EVERY_BYTES: u64 = 64 << 20;
const SIDECAR_EVERY: Duration = Duration::from_secs(2);
/// A reconnection that got at least this far counts as progress (resets the retries).
const PROGRESS_RESETS_RETRIES: u64 = 1 << 20;

/// What to check and how to download.
#[derive(Debug, Clone)]
pub struct FetchOptions {
    /// The check (device, behavior, expected checksum, signing). `quick` is ignored: the
    /// preflight is quick, the final check is full.
    pub check: CheckOptions,
    /// Keep a download that failed its checks as `FILE.failed` instead of deleting it.
    pub keep: bool,
    /// Reconnections after the transfer broke, in a row without progress.
    pub retries: u32,
}

/// How a fetch ended. Check failures are in `report` (its exit code is the answer).
#[derive(Debug)]
pub struct FetchOutcome {
    /// The preflight report when it stopped the fetch, else the full check of the
    /// downloaded bytes; `file` is the URL, `bytes_fetched` counts every response.
    pub report: Report,
    /// Where the verified file now is (only when every check passed).
    pub saved: Option<PathBuf>,
    /// `FILE.failed`: a download that failed a check, kept because of `keep`.
    pub kept_failed: Option<PathBuf>,
    /// `FILE.part`, kept so that running the same fetch again resumes it.
    pub partial: Option<PathBuf>,
    /// The download continued an earlier partial one from this offset.
    pub resumed_from: Option<u64>,
    /// Whether the body was downloaded at all (false: the preflight stopped it).
    pub downloaded: bool,
    /// Why a download was stopped before its end (damage or a mismatch found, or — from a
    /// server without ranges — a manifest for another device), and how far it got;
    /// nothing is kept.
    pub stopped: Option<String>,
}

impl FetchOutcome {
    fn stopped(report: Report) -> Self {
        FetchOutcome {
            report,
            saved: None,
            kept_failed: None,
            partial: None,
            resumed_from: None,
            downloaded: false,
            stopped: None,
        }
    }
}

/// Why a fetch did not start (a usage problem: exit 2).
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("{} already exists; ipswcheck never replaces a file: choose another name with -o", .0.display())]
    Exists(PathBuf),
    #[error("{} exists but was not left by `ipswcheck fetch` of this URL; remove it or choose another name with -o", .0.display())]
    ForeignPart(PathBuf),
    #[error("cannot write {}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
    #[error("another `ipswcheck fetch` is writing {}", .0.display())]
    Busy(PathBuf),
    /// A `FILE.part` that must not be written: a link, a file with other names, a file
    /// of another user. Left untouched.
    #[error("{} {why}; remove it or choose another name with -o", path.display())]
    UnsafePart { path: PathBuf, why: String },
}

/// `FILE.part.json`: what a partial download is of, and how far it got.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Sidecar {
    /// Marks the file as ours.
    ipswcheck_fetch: u32,
    url: String,
    size: u64,
    etag: Option<String>,
    last_modified: Option<String>,
    /// Bytes from the start of the file known to be written.
    completed: u64,
    /// The `FILE.part` this sidecar describes (device and inode): a sidecar next to
    /// another file of that name (replaced, or a planted one) is not trusted.
    part_dev: u64,
    part_inode: u64,
}

/// The largest sidecar read: ours are a few hundred bytes (a URL and two validators).
const MAX_SIDECAR: u64 = 64 << 10;

impl Sidecar {
    fn validators(&self) -> Validators {
        Validators {
            etag: self.etag.clone(),
            last_modified: self.last_modified.clone(),
        }
    }

    /// The sidecar at `path`: a regular file (no link, FIFO or device), at most
    /// [`MAX_SIDECAR`] bytes, of our format.
    fn read(path: &Path) -> Option<Sidecar> {
        let bytes = crate::input::read_bounded_nofollow(path, MAX_SIDECAR).ok()?;
        serde_json::from_slice::<Sidecar>(&bytes)
            .ok()
            .filter(|s| s.ipswcheck_fetch == 1)
    }

    /// A new sidecar for the download of `url` into `part`.
    fn new(url: &str, part: &File, size: u64, validators: &Validators, completed: u64) -> Self {
        let (part_dev, part_inode) = part
            .metadata()
            .map(|m| part::identity(&m))
            .unwrap_or_default();
        Sidecar {
            ipswcheck_fetch: 1,
            url: url.to_owned(),
            size,
            etag: validators.etag.clone(),
            last_modified: validators.last_modified.clone(),
            completed,
            part_dev,
            part_inode,
        }
    }

    /// Whether this sidecar describes the `FILE.part` whose metadata is `meta`: the same
    /// file (device, inode), of a size a download of ours leaves (pre-sized to the
    /// whole file, or at least as far as a download without ranges had got when the
    /// sidecar was last written — it may have been killed after writing more).
    fn describes(&self, meta: &fs::Metadata) -> bool {
        part::identity(meta) == (self.part_dev, self.part_inode)
            && (meta.len() == self.size || meta.len() >= self.completed)
    }

    /// Write atomically, never through a link ([`part::write_replace`]).
    fn save(&self, path: &Path) -> io::Result<()> {
        part::write_replace(
            path,
            &serde_json::to_vec_pretty(self).map_err(io::Error::other)?,
        )
    }
}

/// `path` with `suffix` appended to its file name.
pub fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(suffix);
    path.with_file_name(name)
}

/// The file name a URL would be saved under: its last path segment.
pub fn default_file_name(url: &str) -> Option<String> {
    let parsed = reqwest::Url::parse(url).ok()?;
    let last = parsed.path_segments()?.next_back()?.to_owned();
    let name = percent_decode(&last);
    (!name.is_empty() && name != "." && name != ".." && !name.contains(['/', '\\'])).then_some(name)
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push(h << 4 | l);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Download `url` to `dest`, verifying it on the way (see the module documentation).
/// `progress.done`/`total` count downloaded bytes; setting `progress.cancel` stops the
/// download and keeps `FILE.part` for a later resume.
pub fn fetch(
    url: &str,
    dest: &Path,
    options: &FetchOptions,
    session: Option<&SigningSession>,
    progress: &Progress,
) -> Result<FetchOutcome, FetchError> {
    // `--offline` only keeps Apple out: the download itself needs the network, and the
    // verdict rests on the local checks with signing "skipped", as for a local file.
    let part_path = with_suffix(dest, ".part");
    let sidecar_path = with_suffix(dest, ".part.json");
    if fs::symlink_metadata(dest).is_ok() {
        return Err(FetchError::Exists(dest.to_path_buf()));
    }
    let parent = match dest.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    if !parent.is_dir() {
        return Err(FetchError::Io {
            path: parent,
            source: io::Error::new(io::ErrorKind::NotFound, "no such directory"),
        });
    }
    let previous = match fs::symlink_metadata(&part_path) {
        Ok(_) => Some(open_previous(&part_path, &sidecar_path, url)?),
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => {
            return Err(FetchError::Io {
                path: part_path,
                source: e,
            })
        }
    };

    // 1. Preflight: everything a restore checks first, without the body.
    let remote = match RemoteFile::with_options(url, &options.check.signing) {
        Ok(r) => r,
        Err(e) => {
            return Ok(FetchOutcome::stopped(remote_failure(
                url,
                &options.check,
                None,
                &e,
            )))
        }
    };
    let ipsw = match open_url(&remote) {
        Ok(ipsw) => ipsw,
        Err(e) if no_ranges(&e) => {
            let paths = PartPaths {
                part: part_path,
                sidecar: sidecar_path,
                previous: previous.map(|(file, _)| file),
            };
            return fetch_streamed(url, dest, options, progress, &remote, paths);
        }
        Err(e) => {
            let mut report = unreadable(url, &options.check, &e);
            fix_remote_report(&mut report, url, Some(&remote));
            return Ok(FetchOutcome::stopped(report));
        }
    };
    let (mut preflight, signing) = quick_check(&ipsw, &options.check, session);
    fix_remote_report(&mut preflight, url, Some(&remote));
    if preflight.exit_code != 0 {
        return Ok(FetchOutcome::stopped(preflight));
    }

    // 2. FILE.part with the end of the file in place, and its sidecar.
    let size = remote.size();
    let validators = remote.validators();
    let (body_end, suffix) = remote.cached_suffix();
    let existed = previous.is_some();
    let (previous_file, previous) = previous.unzip();
    let resume_from = previous
        .filter(|p| p.size == size && p.validators().same_version(&validators))
        .map(|p| p.completed.min(body_end))
        .filter(|&n| n > 0);
    let file = match previous_file {
        Some(file) => file,
        None => create_part(&part_path)?,
    };
    let mut sidecar = Sidecar::new(url, &file, size, &validators, resume_from.unwrap_or(0));
    let started = sidecar
        .save(&sidecar_path)
        .map_err(io_err(&sidecar_path))
        .and_then(|()| {
            (|| -> io::Result<()> {
                if resume_from.is_none() {
                    file.set_len(0)?;
                }
                file.set_len(size)?;
                let mut w = &file;
                w.seek(SeekFrom::Start(body_end))?;
                write_part(&mut w, &MappedCheck::new(&file), &suffix)
            })()
            .map_err(io_err(&part_path))
        });
    if let Err(e) = started {
        // A failed start leaves nothing behind (a FILE.part of an earlier run is kept:
        // it can still be resumed).
        if !existed {
            part::remove_if_same(&part_path, &file);
            let _ = fs::remove_file(&sidecar_path);
        }
        return Err(e);
    }
    // The archive notices any change of size or mtime during the check; ours are
    // expected, so the mtime is put back once the download is complete.
    let opened_mtime = file.metadata().and_then(|m| m.modified()).ok();

    // Through our descriptor: the bytes verified are the bytes written (and published).
    // The directory is read through a mapping before the download starts; then the
    // mapping goes ([`Archive::unmap`]): the verifier reads what is written with `pread`,
    // never through a `&[u8]` over bytes the download is still changing.
    let written_path = part::through_descriptor(&file, &part_path);
    let archive = match Archive::open(&written_path) {
        Ok(mut a) if a.entries() == ipsw.archive.entries() => {
            a.unmap();
            a
        }
        other => {
            part::remove_if_same(&part_path, &file);
            drop(file);
            let _ = fs::remove_file(&sidecar_path);
            let mut report = preflight;
            let damage = match other {
                // The layout checks of a local open (a resumed prefix is in place).
                Err(e) => Some(e.to_string()),
                Ok(_) => None,
            };
            match damage {
                Some(e) => {
                    report.checks.archive.status = CheckStatus::Fail;
                    report.checks.archive.damage.push(EntryDamage {
                        entry: String::new(),
                        problem: e.clone(),
                        crc: false,
                    });
                    report.findings.insert(
                        0,
                        Finding::ArchiveDamage {
                            entry: String::new(),
                            problem: format!("{url}: {e}"),
                            crc: false,
                        },
                    );
                }
                // The same bytes parsed differently: never expected.
                None => report.findings.insert(
                    0,
                    Finding::NotDownloaded {
                        message: format!(
                            "{url}: the end of the file, written to {}, does not read back as \
                             the same zip directory",
                            part_path.display()
                        ),
                        hint: "report this as a bug in ipswcheck".into(),
                    },
                ),
            }
            report.conclude();
            return Ok(FetchOutcome::stopped(report));
        }
    };
    let OpenedIpsw {
        manifest, restore, ..
    } = ipsw;
    let local = OpenedIpsw {
        archive,
        manifest,
        restore,
    };
    let full = CheckOptions {
        quick: false,
        ..options.check.clone()
    };
    let prepared = PreparedCheck::new(&local, &full);

    // 3. Download and verify at the same time.
    let start = resume_from.unwrap_or(0);
    let written = AtomicU64::new(start);
    let stop = AtomicBool::new(false);
    // Damage or a mismatch stops the download, as on a server without ranges — unless
    // the file is to be kept whatever it holds.
    let failed = AtomicBool::new(false);
    let stop_on_failure = (!options.keep).then_some(&failed);
    let verified = AtomicU64::new(0);
    progress.total.store(size, Ordering::Relaxed);
    progress.done.store(start, Ordering::Relaxed);
    let result = std::thread::scope(|s| {
        let verifier = s.spawn(|| {
            let plan = prepared.plan();
            verify::run_plan_as_written(plan, &written, &verified, &stop, stop_on_failure)
        });
        let mut transfer = Transfer {
            remote: &remote,
            file: &file,
            mapped: MappedCheck::new(&file),
            written: &written,
            progress,
            sidecar: &mut sidecar,
            sidecar_path: &sidecar_path,
            retries: options.retries,
            failed: &failed,
        };
        let result = transfer.run(start, body_end);
        if result.is_ok() {
            written.store(size, Ordering::Release);
            progress.done.store(size, Ordering::Relaxed);
        } else {
            stop.store(true, Ordering::Relaxed);
        }
        let _ = verifier.join();
        result
    });

    let mut outcome = FetchOutcome {
        report: preflight.clone(),
        saved: None,
        kept_failed: None,
        partial: None,
        resumed_from: resume_from,
        downloaded: true,
        stopped: None,
    };
    if let Err(TransferError::Failed) = result {
        // What the verifier found in the bytes that arrived, with the signing verdict the
        // preflight already has; components not verified yet are left out.
        let done = sidecar.completed;
        // Our own writes are not a change during the check (as below).
        if let Some(t) = opened_mtime {
            let _ = file.set_modified(t);
        }
        let mut report = prepared.finish_so_far(signing);
        fix_remote_report(&mut report, url, Some(&remote));
        drop(local);
        part::remove_if_same(&part_path, &file);
        let _ = fs::remove_file(&sidecar_path);
        outcome.stopped = Some(format!(
            "the download was stopped at {} of {}: it is damaged",
            human_bytes(done),
            human_bytes(size)
        ));
        outcome.report = report;
        return Ok(outcome);
    }
    if let Err(failure) = result {
        drop(prepared);
        drop(local);
        let _ = file.sync_data();
        let mut report = preflight;
        let keep_part = !matches!(failure, TransferError::Remote(RemoteError::Changed));
        let done = sidecar.completed;
        let (message, hint, interrupted) = match failure {
            // (`Failed` was answered above.)
            TransferError::Cancelled | TransferError::Failed => (
                format!("the download was interrupted at {} of {}", human_bytes(done), human_bytes(size)),
                format!("run the same command again: it resumes from {}", part_path.display()),
                true,
            ),
            TransferError::Remote(RemoteError::Changed) => (
                format!("{url}: the file changed on the server during the download"),
                "run the same command again to download the new version from the start".into(),
                false,
            ),
            TransferError::Remote(e) => (
                format!(
                    "{url}: the download stopped at {} of {}: {}",
                    human_bytes(done),
                    human_bytes(size),
                    match e {
                        RemoteError::BrokenOff { reason, .. } => reason,
                        other => other.to_string(),
                    }
                ),
                format!("run the same command again: it resumes from {}", part_path.display()),
                false,
            ),
            TransferError::Write(e) => (
                format!("cannot write {}: {e}", part_path.display()),
                format!(
                    "free some space (the file needs {}) and run the same command again: it resumes",
                    human_bytes(size)
                ),
                false,
            ),
        };
        report.findings.insert(
            0,
            if interrupted {
                Finding::Interrupted { message }
            } else {
                Finding::NotDownloaded { message, hint }
            },
        );
        report.conclude();
        fix_remote_report(&mut report, url, Some(&remote));
        if keep_part {
            outcome.partial = Some(part_path);
        } else {
            part::remove_if_same(&part_path, &file);
            let _ = fs::remove_file(&sidecar_path);
        }
        outcome.report = report;
        return Ok(outcome);
    }

    // 4. The full report; keep the file only if it is ready.
    if let Some(t) = opened_mtime {
        let _ = file.set_modified(t);
    }
    let mut report = prepared.finish(signing);
    // Now that every byte is in place, the layout checks a local file gets when opened
    // (entries that overlap, or run into the directory) apply too.
    if let Err(e) = Archive::open(&written_path) {
        report.checks.archive.status = CheckStatus::Fail;
        report.checks.archive.damage.push(EntryDamage {
            entry: String::new(),
            problem: e.to_string(),
            crc: false,
        });
        report.add(Finding::ArchiveDamage {
            entry: String::new(),
            problem: format!("{url}: {e}"),
            crc: false,
        });
        report.conclude();
    }
    name_the_download(&mut report, &written_path, url);
    fix_remote_report(&mut report, url, Some(&remote));
    drop(local);
    let _ = file.sync_all();
    let _ = fs::remove_file(&sidecar_path);
    finish_download(report, outcome, &file, &part_path, dest, options.keep)
}

/// Findings that name the checked file name it by the URL, not by the descriptor path
/// ([`part::through_descriptor`]) it was read through.
fn name_the_download(report: &mut Report, written_path: &Path, url: &str) {
    let read_as = written_path.display().to_string();
    for finding in &mut report.findings {
        if let Finding::ChangedDuringCheck { file, .. } | Finding::NotARestoreIpsw { file, .. } =
            finding
        {
            if *file == read_as {
                *file = url.to_owned();
            }
        }
    }
}

/// Whether opening the URL failed because the server ignores range requests.
fn no_ranges(e: &OpenError) -> bool {
    match e {
        OpenError::Archive(ArchiveError::Unreadable(e)) => matches!(
            e.get_ref()
                .and_then(|inner| inner.downcast_ref::<RemoteError>()),
            Some(RemoteError::NoRanges { .. })
        ),
        _ => false,
    }
}

/// `FILE.part`, its sidecar, and the part of an earlier run, opened and locked.
struct PartPaths {
    part: PathBuf,
    sidecar: PathBuf,
    previous: Option<File>,
}

/// `fetch` from a server without range support: the whole body in one streamed `GET`
/// into `FILE.part` (an earlier part of this URL is started over: nothing can be resumed
/// without ranges), verified as it arrives by a [`Follower`] — every entry from its local
/// header, the component digests once BuildManifest.plist has arrived, the whole-file
/// digests — and then, the zip directory having arrived last, the ordinary full check of
/// the local file in which the directory decides which of those verifications stand
/// ([`check::check_opened_streamed`]): what it did not confirm is verified from the file.
/// The verdict is the one `ipswcheck FILE` gives. `FILE` is published only when that
/// report is ready (exit 0); otherwise the usual rules (`keep`) apply.
///
/// Damage found on the way stops the download (unless `keep`, which asks for the whole
/// file), and so does a manifest for another device (as the ranged preflight stops
/// before downloading): nothing is kept, and the report says what was found and how far
/// the download got. A broken transfer keeps `FILE.part` as the ranged download does,
/// and says that it cannot be resumed from this server.
fn fetch_streamed(
    url: &str,
    dest: &Path,
    options: &FetchOptions,
    progress: &Progress,
    remote: &RemoteFile,
    paths: PartPaths,
) -> Result<FetchOutcome, FetchError> {
    let PartPaths {
        part: part_path,
        sidecar: sidecar_path,
        previous,
    } = paths;
    let response = match remote.open_whole() {
        Ok(r) => r,
        Err(e) => {
            return Ok(FetchOutcome::stopped(remote_failure(
                url,
                &options.check,
                Some(remote),
                &e,
            )))
        }
    };
    let size = response.content_length();
    let validators = Validators::from_response(&response);
    let existed = previous.is_some();
    let file = match previous {
        Some(file) => file,
        None => create_part(&part_path)?,
    };
    let mut sidecar = Sidecar::new(url, &file, size.unwrap_or(0), &validators, 0);
    let started = file
        .set_len(0)
        .and_then(|()| file.try_clone())
        .map_err(io_err(&part_path))
        .and_then(|reader| {
            sidecar
                .save(&sidecar_path)
                .map_err(io_err(&sidecar_path))
                .map(|()| reader)
        });
    let reader = match started {
        Ok(reader) => reader,
        Err(e) => {
            if !existed {
                part::remove_if_same(&part_path, &file);
                let _ = fs::remove_file(&sidecar_path);
            }
            return Err(e);
        }
    };
    progress.total.store(size.unwrap_or(0), Ordering::Relaxed);
    progress.done.store(0, Ordering::Relaxed);

    // The follower reads what is written through our descriptor (a duplicate of it), with
    // `pread`, each read waiting for its bytes ([`Archive::growing`]).
    let full = CheckOptions {
        quick: false,
        ..options.check.clone()
    };
    let written_path = part::through_descriptor(&file, &part_path);
    let watermark = Arc::new(Watermark::new());
    let growing = Archive::growing(
        written_path.clone(),
        reader,
        size.unwrap_or(u64::MAX),
        Arc::clone(&watermark),
    );
    let read_manifest =
        |archive: &Archive, entry: &Entry| check::streamed_manifest(archive, entry, &full);
    let follower = Follower::new(
        &growing,
        &watermark,
        check::whole_file_algorithms(&full),
        &read_manifest,
    );

    // The whole body, written as it arrives and followed by the verifier.
    let mut body = remote.watched(response).take(size.unwrap_or(u64::MAX));
    let mut out = &file;
    let mapped = MappedCheck::new(&file);
    let mut buf = vec![0u8; 1 << 20];
    let mut pos = 0u64;
    let mut last_save = Instant::now();
    let mut stopped = None;
    let failure = std::thread::scope(|s| {
        let following = s.spawn(|| follower.run());
        let failure = loop {
            if progress.cancel.load(Ordering::Relaxed) {
                break Some(TransferError::Cancelled);
            }
            // Damage never stops a download that is to be kept whatever it holds.
            match follower.stop_reason() {
                Some(StopReason::Damage) if options.keep => {}
                Some(reason) => {
                    stopped = Some(reason);
                    break None;
                }
                None => {}
            }
            let n = match body.read(&mut buf) {
                Ok(0) if size.is_none_or(|s| pos == s) => break None,
                Ok(0) => {
                    break Some(TransferError::Remote(RemoteError::BrokenOff {
                        got: pos,
                        want: size.unwrap_or(pos),
                        reason: "the connection closed".into(),
                    }))
                }
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    break Some(TransferError::Remote(RemoteError::BrokenOff {
                        got: pos,
                        want: size.unwrap_or(pos),
                        reason: io_error_chain(&e),
                    }))
                }
            };
            remote.add_fetched(n as u64);
            if let Err(e) = write_part(&mut out, &mapped, &buf[..n]) {
                break Some(TransferError::Write(e.to_string()));
            }
            pos += n as u64;
            watermark.advance(pos);
            progress.done.store(pos, Ordering::Relaxed);
            if last_save.elapsed() >= SIDECAR_EVERY {
                sidecar.completed = pos;
                let _ = sidecar.save(&sidecar_path);
                last_save = Instant::now();
            }
        };
        // Whatever happens next, no byte comes after these: the follower finishes what
        // is in place (or, when the download will not be checked, stops now).
        watermark.close();
        if failure.is_some() || stopped.is_some() {
            follower.abort();
        }
        let _ = following.join();
        // What was found before a transfer broke (a server that stalls after damaged
        // bytes) is what the report says.
        if failure.is_some() && stopped.is_none() {
            stopped = follower
                .stop_reason()
                .filter(|r| *r != StopReason::Damage || !options.keep);
        }
        failure
    });
    drop(body);
    let mut streamed = follower.into_streamed();
    drop(growing);
    sidecar.completed = pos;
    if size.is_none() {
        sidecar.size = pos;
    }
    let _ = sidecar.save(&sidecar_path);
    let _ = file.sync_data();

    let mut outcome = FetchOutcome {
        report: Report::new(
            url.to_owned(),
            Checks::skipped("the download did not finish"),
        ),
        saved: None,
        kept_failed: None,
        partial: None,
        resumed_from: None,
        downloaded: true,
        stopped: None,
    };
    let total = size.map_or_else(|| "?".into(), human_bytes);
    if let Some(reason) = stopped {
        // Nothing is kept: the file can never be ready.
        part::remove_if_same(&part_path, &file);
        let _ = fs::remove_file(&sidecar_path);
        let at = format!(
            "the download was stopped at {} of {total}",
            human_bytes(pos)
        );
        let len = size.unwrap_or(pos);
        let refusal = (reason == StopReason::OtherDevice)
            .then(|| streamed.take_manifest())
            .flatten();
        let mut report = match refusal {
            // As the ranged preflight reports it: the quick check of the manifest, over
            // the entries that arrived.
            Some(manifest) => {
                let opened = OpenedIpsw {
                    archive: Archive::from_directory(
                        url,
                        len,
                        streamed.entries().to_vec(),
                        streamed.has_duplicate_names(),
                    ),
                    manifest,
                    restore: None,
                };
                quick_check(&opened, &options.check, None).0
            }
            None => {
                let why = format!("{at}, where the file was found damaged: Apple was not asked");
                check::stopped_report(url, len, &mut streamed, &full, &why)
            }
        };
        fix_remote_report(&mut report, url, Some(remote));
        let (entries, bytes) = streamed.verified();
        report.streamed = Some(StreamedFacts {
            entries_during: entries,
            bytes_during: bytes,
            stopped_at: Some(pos),
            ..StreamedFacts::default()
        });
        outcome.downloaded = reason == StopReason::Damage;
        outcome.stopped = Some(match reason {
            StopReason::Damage => format!("{at}: it is damaged"),
            StopReason::OtherDevice => format!("{at}: the file is not for this device"),
        });
        outcome.report = report;
        return Ok(outcome);
    }
    if let Some(failure) = failure {
        // FILE.part is kept, as after a broken ranged download: a later run starts over
        // (or resumes, should the server have learnt ranges).
        let no_resume = "the server does not support range requests, so the download cannot \
                         resume: run the same command again to download it from the start";
        let finding = match failure {
            // (`Failed` is a ranged transfer's: this one stops by the follower's verdict.)
            TransferError::Cancelled | TransferError::Failed => Finding::Interrupted {
                message: format!(
                    "the download was interrupted at {} of {total}; {no_resume}",
                    human_bytes(pos)
                ),
            },
            TransferError::Remote(e) => Finding::NotDownloaded {
                message: format!(
                    "{url}: the download stopped at {} of {total}: {}",
                    human_bytes(pos),
                    match e {
                        RemoteError::BrokenOff { reason, .. } => reason,
                        other => other.to_string(),
                    }
                ),
                hint: no_resume.into(),
            },
            TransferError::Write(e) => Finding::NotDownloaded {
                message: format!("cannot write {}: {e}", part_path.display()),
                hint: format!("free some space and run the same command again; {no_resume}"),
            },
        };
        outcome.report.add(finding);
        outcome.report.conclude();
        fix_remote_report(&mut outcome.report, url, Some(remote));
        outcome.partial = Some(part_path);
        return Ok(outcome);
    }

    // The full check of the downloaded file, the device and signing verdicts included:
    // its directory decides what of the streamed verification stands. The streamed
    // manifest goes first: the check's own open reserves the memory budget anew.
    drop(streamed.take_manifest());
    let (mut report, injected) = match check::open_ipsw(&written_path) {
        Ok(ipsw) => {
            check::check_opened_streamed(&ipsw, &full, &Progress::default(), Some(&streamed))
        }
        Err(e) => (
            check::unreadable_report(&written_path, &full, &e),
            Injected::default(),
        ),
    };
    name_the_download(&mut report, &written_path, url);
    fix_remote_report(&mut report, url, Some(remote));
    if report.size.is_none() {
        report.size = Some(pos);
    }
    report.streamed = Some(StreamedFacts {
        entries_during: injected.entries,
        bytes_during: injected.bytes,
        entries_reread: injected.reread,
        bytes_reread: injected.bytes_reread,
        entries_after: injected.entries_after,
        bytes_after: injected.bytes_after,
        whole_file_during: injected.whole_file,
        stopped_at: None,
    });
    let _ = fs::remove_file(&sidecar_path);
    finish_download(report, outcome, &file, &part_path, dest, options.keep)
}

/// The end of a download: publish `part_path` as `dest` when the report is ready (exit
/// 0), else delete it or keep it as `FILE.failed` (`--keep`).
fn finish_download(
    mut report: Report,
    mut outcome: FetchOutcome,
    file: &File,
    part_path: &Path,
    dest: &Path,
    keep: bool,
) -> Result<FetchOutcome, FetchError> {
    if report.exit_code == 0 {
        match part::publish(file, part_path, dest) {
            Ok(()) => outcome.saved = Some(dest.to_path_buf()),
            Err(e) => {
                report.add(Finding::NotDownloaded {
                    message: format!(
                        "the verified download could not be renamed to {}: {e}",
                        dest.display()
                    ),
                    hint: format!("it is in {}", part_path.display()),
                });
                report.conclude();
                outcome.partial = Some(part_path.to_path_buf());
            }
        }
    } else if keep {
        outcome.kept_failed = keep_failed(file, part_path, dest);
    } else {
        part::remove_if_same(part_path, file);
    }
    outcome.report = report;
    Ok(outcome)
}

/// A maker of [`FetchError::Io`] for `path`.
fn io_err(path: &Path) -> impl FnOnce(io::Error) -> FetchError {
    let path = path.to_path_buf();
    move |source| FetchError::Io { path, source }
}

/// Create `FILE.part` for this fetch alone ([`part::create_new`]: never through a link;
/// a name taken meanwhile, by another fetch or a planted link, is an error).
fn create_part(part_path: &Path) -> Result<File, FetchError> {
    let file = part::create_new(part_path).map_err(|e| match e.kind() {
        io::ErrorKind::AlreadyExists => FetchError::UnsafePart {
            path: part_path.to_path_buf(),
            why: "appeared while fetch was starting".into(),
        },
        _ => FetchError::Io {
            path: part_path.to_path_buf(),
            source: e,
        },
    })?;
    if !lock_exclusive(&file) {
        return Err(FetchError::Busy(part_path.to_path_buf()));
    }
    Ok(file)
}

/// The `FILE.part` of an earlier run and its sidecar, if both are ours: the part a
/// regular file of ours with one name ([`part::open_existing`]), not held by another
/// fetch, and described by a sidecar of this URL bound to this very file.
fn open_previous(
    part_path: &Path,
    sidecar_path: &Path,
    url: &str,
) -> Result<(File, Sidecar), FetchError> {
    let file = part::open_existing(part_path).map_err(|why| match why {
        part::Refusal::Io(source) => FetchError::Io {
            path: part_path.to_path_buf(),
            source,
        },
        why => FetchError::UnsafePart {
            path: part_path.to_path_buf(),
            why: why.to_string(),
        },
    })?;
    if !lock_exclusive(&file) {
        return Err(FetchError::Busy(part_path.to_path_buf()));
    }
    let meta = file.metadata().map_err(io_err(part_path))?;
    match Sidecar::read(sidecar_path) {
        Some(s) if s.url == url && s.describes(&meta) => Ok((file, s)),
        _ => Err(FetchError::ForeignPart(part_path.to_path_buf())),
    }
}

/// Lock `file` for this process alone (released when it is closed, or the process
/// ends): two fetches to the same FILE must not write one FILE.part.
fn lock_exclusive(file: &File) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::io::AsRawFd;
        // SAFETY: flock on a descriptor we own; no memory is involved.
        unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) == 0 }
    }
    #[cfg(not(unix))]
    {
        let _ = file;
        true
    }
}

/// Keep a failed download as `FILE.failed` (or `FILE.failed.N` if that is taken).
fn keep_failed(file: &File, part: &Path, dest: &Path) -> Option<PathBuf> {
    for n in 0..100 {
        let target = if n == 0 {
            with_suffix(dest, ".failed")
        } else {
            with_suffix(dest, &format!(".failed.{n}"))
        };
        match part::publish(file, part, &target) {
            Ok(()) => return Some(target),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(_) => break,
        }
    }
    part::remove_if_same(part, file);
    None
}

#[derive(Debug)]
enum TransferError {
    Remote(RemoteError),
    Write(String),
    Cancelled,
    /// The verifier found the file fails the check (damage, a component mismatch): the
    /// rest is not worth downloading (a ranged download without `--keep`).
    Failed,
}

/// Write `bytes` to `FILE.part` at its position — unless some live [`Archive`] maps it
/// ([`MappedCheck`]): a `&[u8]` over a shared mapping must never see its bytes change,
/// so the verifier of a download reads the part with `pread` ([`Archive::unmap`]). Were
/// that ever broken, the download stops with this error instead of writing.
fn write_part(out: &mut &File, mapped: &MappedCheck, bytes: &[u8]) -> io::Result<()> {
    if mapped.is_mapped() {
        return Err(io::Error::other(
            "it is mapped for reading while it is being written (a bug in ipswcheck: report it)",
        ));
    }
    out.write_all(bytes)
}

/// The streamed download of `start..end` into the part file.
struct Transfer<'a> {
    remote: &'a RemoteFile,
    file: &'a File,
    /// Asked before every write ([`write_part`]).
    mapped: MappedCheck,
    written: &'a AtomicU64,
    progress: &'a Progress,
    sidecar: &'a mut Sidecar,
    sidecar_path: &'a Path,
    retries: u32,
    /// Set by the verifier when the file fails the check ([`TransferError::Failed`]).
    failed: &'a AtomicBool,
}

impl Transfer<'_> {
    fn run(&mut self, start: u64, end: u64) -> Result<(), TransferError> {
        let mut pos = start;
        let mut failures = 0u32;
        let mut buf = vec![0u8; 1 << 20];
        while pos < end {
            let before = pos;
            let result = self.attempt(&mut pos, end, &mut buf);
            self.save(pos);
            match result {
                Ok(()) => {}
                Err(TransferError::Remote(e)) if e.is_transient() => {
                    if pos - before >= PROGRESS_RESETS_RETRIES {
                        failures = 0;
                    }
                    if failures >= self.retries {
                        return Err(TransferError::Remote(e));
                    }
                    failures += 1;
                    std::thread::sleep(Duration::from_millis(200) * failures);
                }
                Err(e) => return Err(e),
            }
            if self.progress.cancel.load(Ordering::Relaxed) {
                return Err(TransferError::Cancelled);
            }
            if self.failed.load(Ordering::Relaxed) {
                return Err(TransferError::Failed);
            }
        }
        Ok(())
    }

    /// One request for `pos..end`, written as it arrives; `pos` advances.
    fn attempt(&mut self, pos: &mut u64, end: u64, buf: &mut [u8]) -> Result<(), TransferError> {
        let response = self
            .remote
            .open_range(*pos, end)
            .map_err(TransferError::Remote)?;
        let mut body = self.remote.watched(response).take(end - *pos);
        let mut out = self.file;
        out.seek(SeekFrom::Start(*pos))
            .map_err(|e| TransferError::Write(e.to_string()))?;
        let mut last_save = Instant::now();
        while *pos < end {
            if self.progress.cancel.load(Ordering::Relaxed) {
                return Err(TransferError::Cancelled);
            }
            if self.failed.load(Ordering::Relaxed) {
                return Err(TransferError::Failed);
            }
            let n = match body.read(buf) {
                Ok(0) => {
                    return Err(TransferError::Remote(RemoteError::BrokenOff {
                        got: *pos,
                        want: end,
                        reason: "the connection closed".into(),
                    }))
                }
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    return Err(TransferError::Remote(RemoteError::BrokenOff {
                        got: *pos,
                        want: end,
                        reason: io_error_chain(&e),
                    }))
                }
            };
            self.remote.add_fetched(n as u64);
            write_part(&mut out, &self.mapped, &buf[..n])
                .map_err(|e| TransferError::Write(e.to_string()))?;
            *pos += n as u64;
            self.written.store(*pos, Ordering::Release);
            self.progress.done.store(*pos, Ordering::Relaxed);
            if *pos - self.sidecar.completed >= SIDECAR_EVERY_BYTES
                || last_save.elapsed() >= SIDECAR_EVERY
            {
                self.save(*pos);
                last_save = Instant::now();
            }
        }
        Ok(())
    }

    /// Record `pos` bytes as in place (best effort: a stale count only re-downloads).
    fn save(&mut self, pos: u64) {
        self.sidecar.completed = pos;
        let _ = self.sidecar.save(self.sidecar_path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_come_from_the_url() {
        assert_eq!(
            default_file_name(
                "https://updates.cdn-apple.com/2023/x/iPhone_4.7_P3_15.8_19H370_Restore.ipsw?x=1"
            )
            .as_deref(),
            Some("iPhone_4.7_P3_15.8_19H370_Restore.ipsw")
        );
        assert_eq!(
            default_file_name("http://h/a%20b.ipsw").as_deref(),
            Some("a b.ipsw")
        );
        assert_eq!(default_file_name("http://h/"), None);
        assert_eq!(default_file_name("http://h/%2F"), None);
        assert_eq!(
            with_suffix(Path::new("/tmp/x.ipsw"), ".part"),
            PathBuf::from("/tmp/x.ipsw.part")
        );
    }
}
