//! Checking a firmware file on a web server before downloading it (issue 7).
//!
//! An IPSW is 5–10 GB; its model and signing status are decided by a few hundred KB at
//! its end and in its manifest. [`check_url`] reads only those, with HTTP range requests:
//!
//! 1. one request for the last 64 KiB + 22 bytes ([`client::TAIL_LEN`]) finds the zip
//!    end record (and the zip64 locator and record), the file's size and validators;
//! 2. the central directory, when the tail does not already hold it, in one request;
//!    it is parsed by the `zip` crate (as for local files) through a `Read + Seek` view
//!    of the fetched blocks ([`Archive::read_directory`]);
//! 3. `BuildManifest.plist` and `Restore.plist`: local header and data in one request
//!    each (none when they lie in the tail), inflated with CRC-32 and size checked;
//! 4. the usual check in quick mode on an [`Archive`] that has the directory but no
//!    data ([`Archive::from_directory`]): device, identity, presence of every component
//!    file, signing. Quick mode never reads entry data.
//!
//! The report is the usual one with `file` the URL, `size` from `Content-Range` and
//! `bytes_fetched` counting every byte received (headers included). A server that does
//! not honour ranges is refused before its body is read. [`fetch()`] downloads a file
//! after the same preflight, verifying it as it arrives; from a server without ranges it
//! downloads the whole body, verifying it as it arrives from its local headers, and its
//! directory, at the end, decides what of that stands.

pub mod client;
pub mod fetch;
mod part;

use std::io::{self, Read, Seek, SeekFrom};
use std::path::Path;

use crate::archive::{Archive, ArchiveError, Entry, EntryError, EntryStream};
use crate::check::{self, CheckOptions, OpenError, OpenedIpsw, PreparedCheck, MAX_PLIST_BYTES};
use crate::judge::Finding;
use crate::manifest::{BuildManifest, RestorePlist};
use crate::report::Report;
use crate::signing::{SigningCheck, SigningSession};

pub use client::{is_url, RemoteError, RemoteFile, Validators, TAIL_LEN};
pub use fetch::{fetch, FetchError, FetchOptions, FetchOutcome};

const EOCD_SIGNATURE: &[u8; 4] = b"PK\x05\x06";
const ZIP64_LOCATOR_SIGNATURE: &[u8; 4] = b"PK\x06\x07";
const ZIP64_EOCD_SIGNATURE: &[u8; 4] = b"PK\x06\x06";
/// The largest central directory we read. Real IPSWs have ~100–200 KB for a few hundred
/// entries; 32 MiB is 150 times that, and fits the process-wide budget for answers held
/// in memory (`signing::http::MAX_HELD_BYTES`, 48 MiB) with room for the manifests. It
/// bounds both the directory's declared range (from the end record or the zip64
/// record, fetched if it lies before the tail) and every byte the zip parser asks for
/// beyond what was fetched ([`RangeReader`]), whatever the records claim.
pub const MAX_DIRECTORY_BYTES: u64 = 32 << 20;
/// The zip64 end record without its extensible data.
const ZIP64_EOCD_LEN: u64 = 56;
/// Smallest request made on behalf of the zip parser for bytes not fetched yet.
const MIN_FETCH: u64 = 64 << 10;
/// Room for a local header's extra field beyond the central record's, fetched along with
/// an entry so that one request usually suffices.
const LOCAL_EXTRA_SLACK: u64 = 1024;

pub(crate) use crate::render::human_bytes;

/// Check the IPSW at `url` without downloading it: device, identity, presence of every
/// component file and signing (quick mode whatever `options.quick` says: nothing is
/// hashed). `session` shares signing answers between checks (a scan); without it each
/// check asks on its own. Never fails: problems are in the report, with `file` the URL
/// and `bytes_fetched` set.
pub fn check_url(url: &str, options: &CheckOptions, session: Option<&SigningSession>) -> Report {
    if options.signing.offline {
        return remote_failure(url, options, None, &RemoteError::Offline);
    }
    let remote = match RemoteFile::with_options(url, &options.signing) {
        Ok(r) => r,
        Err(e) => return remote_failure(url, options, None, &e),
    };
    let mut report = match open_url(&remote) {
        Ok(ipsw) => quick_check(&ipsw, options, session).0,
        Err(e) => unreadable(url, options, &e),
    };
    fix_remote_report(&mut report, url, Some(&remote));
    report
}

/// Concurrent remote checks at once in [`check_urls`]: the work is round trips, not CPU.
pub const URL_CHECKS_AT_ONCE: usize = 8;

/// [`check_url`] for each of `urls` (a catalogue survey), [`URL_CHECKS_AT_ONCE`] at a
/// time, sharing `session` so each distinct build identity is asked about once. Reports
/// come back in the order of `urls`; `None` for URLs not started because `cancel` was set.
pub fn check_urls(
    urls: &[String],
    options: &CheckOptions,
    session: &SigningSession,
    cancel: &std::sync::atomic::AtomicBool,
) -> Vec<Option<Report>> {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let next = AtomicUsize::new(0);
    let out: std::sync::Mutex<Vec<Option<Report>>> =
        std::sync::Mutex::new(urls.iter().map(|_| None).collect());
    std::thread::scope(|s| {
        for _ in 0..URL_CHECKS_AT_ONCE.min(urls.len()) {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(url) = urls.get(i) else { break };
                if cancel.load(Ordering::Relaxed) {
                    break;
                }
                let report = check_url(url, options, Some(session));
                out.lock().unwrap_or_else(|e| e.into_inner())[i] = Some(report);
            });
        }
    });
    out.into_inner().unwrap_or_else(|e| e.into_inner())
}

/// The largest `--urls` file read (10,000 URLs of ~200 bytes fit twice over).
pub const MAX_URL_LIST_BYTES: u64 = 4 << 20;
/// The most URLs one `scan --urls` checks: each is a remote check of its own.
pub const MAX_URLS: usize = 10_000;

/// The URLs of a list file (`scan --urls FILE`): one per line; blank lines and lines
/// starting with `#` are ignored. A line that is not an http(s) URL is an error that
/// names its line number. The file is read through [`crate::input`] (a FIFO or a device
/// is refused, not waited on) and bounded: at most [`MAX_URL_LIST_BYTES`] and
/// [`MAX_URLS`] URLs, far more than any library, far less than would exhaust memory.
pub fn read_url_list(path: &Path) -> io::Result<Vec<String>> {
    let bytes = crate::input::read_bounded(path, MAX_URL_LIST_BYTES).map_err(|e| e.into_io())?;
    let text = String::from_utf8(bytes).map_err(|e| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("not UTF-8 text (byte {})", e.utf8_error().valid_up_to()),
        )
    })?;
    let mut urls = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if urls.len() == MAX_URLS {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "more than {MAX_URLS} URLs (line {}); split the list into several scans",
                    n + 1
                ),
            ));
        }
        if !is_url(line) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "{} line {}: {line:?} is not an http:// or https:// URL",
                    path.display(),
                    n + 1
                ),
            ));
        }
        urls.push(line.to_owned());
    }
    Ok(urls)
}

/// The quick check of an IPSW opened remotely: the report, and the signing answer
/// (which [`fetch`] reuses for the full check after the download).
pub(crate) fn quick_check(
    ipsw: &OpenedIpsw,
    options: &CheckOptions,
    session: Option<&SigningSession>,
) -> (Report, SigningCheck) {
    let quick = CheckOptions {
        quick: true,
        ..options.clone()
    };
    let prepared = PreparedCheck::new(ipsw, &quick);
    let signing = match session {
        Some(s) => prepared.sign_with(s),
        None => prepared.sign(),
    };
    (prepared.finish(signing.clone()), signing)
}

/// The report of a URL that could not be read at all.
pub(crate) fn remote_failure(
    url: &str,
    options: &CheckOptions,
    remote: Option<&RemoteFile>,
    error: &RemoteError,
) -> Report {
    let mut report = unreadable(url, options, &to_open_error(error.clone()));
    fix_remote_report(&mut report, url, remote);
    report
}

/// [`check::unreadable_report`] with a hint that fits a URL.
pub(crate) fn unreadable(url: &str, options: &CheckOptions, error: &OpenError) -> Report {
    let mut report = check::unreadable_report(Path::new(url), options, error);
    let remote = match error {
        OpenError::Archive(ArchiveError::Unreadable(e)) => e
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<RemoteError>()),
        _ => None,
    };
    let hint = match remote {
        Some(RemoteError::NoRanges { .. }) => {
            "`ipswcheck fetch URL` downloads it whole and verifies it; or download it with a browser or curl and check the file (`ipswcheck FILE`), or use a mirror that supports ranges"
        }
        Some(RemoteError::Offline) => "drop --offline, or download the file and check it locally",
        Some(RemoteError::NotAUrl) => "give an http:// or https:// URL",
        Some(RemoteError::Redirect(_)) => {
            "the server sent the request elsewhere; if you trust the target, give its URL directly"
        }
        Some(RemoteError::TooSlowOverall { .. }) => {
            "the server answered, but too slowly for one check; try again later, or give a larger --timeout (the check deadline grows with it)"
        }
        Some(_) => "check the URL and the connection, then try again",
        None => return report,
    };
    for f in &mut report.findings {
        if let Finding::NotAnIpsw { hint: h, .. } = f {
            *h = hint.into();
        }
    }
    report.conclude();
    report
}

/// Make a report built by the file-oriented code right for a URL: `file` is the URL,
/// `size` the remote size, `bytes_fetched` everything received.
pub(crate) fn fix_remote_report(report: &mut Report, url: &str, remote: Option<&RemoteFile>) {
    report.file = url.to_owned();
    report.size = remote.and_then(RemoteFile::size_known);
    report.bytes_fetched = Some(remote.map_or(0, RemoteFile::bytes_fetched));
    // Quick mode's wording assumes the user asked for --quick.
    for item in &mut report.checks.components.items {
        if item.reason.as_deref() == Some("present; not hashed (--quick)") {
            item.reason = Some("present; not hashed (remote check)".into());
        }
    }
    for f in &mut report.findings {
        if let Finding::ContentsNotVerified { remote } = f {
            *remote = true;
        }
    }
    report.conclude();
}

fn to_open_error(e: RemoteError) -> OpenError {
    OpenError::Archive(match e {
        RemoteError::Empty => ArchiveError::Empty,
        other => ArchiveError::Unreadable(io::Error::other(other)),
    })
}

/// Read the directory and manifests of the IPSW at `remote` (a handful of range
/// requests) into an [`OpenedIpsw`] whose archive has no data.
pub fn open_url(remote: &RemoteFile) -> Result<OpenedIpsw, OpenError> {
    let tail_start = remote.fetch_tail().map_err(to_open_error)?;
    let size = remote.size();
    let tail = remote
        .cached(tail_start, size)
        .expect("the tail was just fetched");
    let Some(eocd) = find_end_record(&tail) else {
        // As for local files: a cut-off download starts like a zip but has no end.
        let head = remote.read_at(0, 4, 4).map_err(to_open_error)?;
        return Err(OpenError::Archive(if head == b"PK\x03\x04" {
            ArchiveError::Truncated
        } else {
            ArchiveError::NotAZip
        }));
    };
    let too_large = |bytes: u64| {
        OpenError::Archive(ArchiveError::BrokenDirectory(format!(
            "its central directory is {bytes} bytes, more than the {MAX_DIRECTORY_BYTES} \
             ipswcheck reads"
        )))
    };
    let read_record = |at: u64| remote.read_at(at, ZIP64_EOCD_LEN, 0).ok();
    if let Some((cd_start, cd_end)) = directory_range(&tail, tail_start, eocd, read_record) {
        // Declared, before any clipping: a giant claim is refused whatever it overlaps.
        if cd_end - cd_start > MAX_DIRECTORY_BYTES {
            return Err(too_large(cd_end - cd_start));
        }
        let cd_end = cd_end.min(tail_start);
        if cd_start < cd_end && cd_end <= size {
            remote
                .fetch_range(cd_start, cd_end)
                .map_err(to_open_error)?;
        }
    }
    let mut reader = RangeReader {
        remote,
        pos: 0,
        failure: None,
        budget: MAX_DIRECTORY_BYTES,
        over_budget: false,
    };
    let parsed = Archive::read_directory(&mut reader);
    if let Some(e) = reader.failure {
        return Err(to_open_error(e));
    }
    if reader.over_budget {
        return Err(OpenError::Archive(ArchiveError::BrokenDirectory(format!(
            "its end records lead to no central directory within the {MAX_DIRECTORY_BYTES} \
             bytes ipswcheck reads for one"
        ))));
    }
    let (entries, duplicates) = parsed?;
    let archive = Archive::from_directory(remote.url(), size, entries, duplicates);
    let entry = archive
        .entry("BuildManifest.plist")
        .ok_or(OpenError::NoManifest)?;
    let bytes = read_entry(remote, entry, MAX_PLIST_BYTES).map_err(|e| match e {
        EntryRead::Remote(e) => to_open_error(e),
        EntryRead::Entry(e) => OpenError::ManifestUnreadable(e),
    })?;
    let manifest = BuildManifest::from_bytes(&bytes)?;
    let restore = archive
        .entry("Restore.plist")
        .and_then(|e| read_entry(remote, e, MAX_PLIST_BYTES).ok())
        .and_then(|b| RestorePlist::from_bytes(&b).ok());
    Ok(OpenedIpsw {
        archive,
        manifest,
        restore,
    })
}

/// The file a fuzz input of the remote reader stands for (the `remote_directory` fuzz
/// target and its seeds): the input is `gap` (u32 LE, at most 1 MiB), `at` (u32 LE), then
/// bytes; the file is those bytes with `gap` zeros inserted at `at`. A few bytes thus
/// stand for a file larger than the tail whose zip64 record or directory lies before it
/// (a seed's 64 KiB zip comment, a giant directory's claim), which the fuzzer could not
/// reach by mutating raw files of a few KiB. `None` for an input shorter than 8 bytes.
#[doc(hidden)]
pub fn fuzz_file(input: &[u8]) -> Option<Vec<u8>> {
    let gap = u32::from_le_bytes(input.get(..4)?.try_into().ok()?) as usize % (1 << 20);
    let at = u32::from_le_bytes(input.get(4..8)?.try_into().ok()?) as usize;
    let bytes = &input[8..];
    let at = at.min(bytes.len());
    let mut file = Vec::with_capacity(bytes.len() + gap);
    file.extend_from_slice(&bytes[..at]);
    file.resize(at + gap, 0);
    file.extend_from_slice(&bytes[at..]);
    Some(file)
}

/// Where the end record starts in `tail`: its comment length must reach exactly to the
/// end of the file (the rule of `archive::triage`), searching from the end.
fn find_end_record(tail: &[u8]) -> Option<usize> {
    if tail.len() < 22 {
        return None;
    }
    (0..=tail.len() - 22).rev().find(|&pos| {
        &tail[pos..pos + 4] == EOCD_SIGNATURE
            && pos + 22 + u16::from_le_bytes([tail[pos + 20], tail[pos + 21]]) as usize
                == tail.len()
    })
}

fn u32_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?) as u64)
}

fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

/// The central directory's byte range, from the end record or the zip64 record: from the
/// tail when it holds the record, else from `read_record(offset)` (its first
/// [`ZIP64_EOCD_LEN`] bytes, one more request) — a zip64 record before the tail is where
/// a giant directory would be claimed. `None` when it cannot be told: the zip parser then
/// asks for what it needs, within [`RangeReader`]'s budget.
fn directory_range(
    tail: &[u8],
    tail_start: u64,
    eocd: usize,
    read_record: impl FnOnce(u64) -> Option<Vec<u8>>,
) -> Option<(u64, u64)> {
    let entries = u16::from_le_bytes([tail[eocd + 10], tail[eocd + 11]]);
    let size = u32_at(tail, eocd + 12)?;
    let offset = u32_at(tail, eocd + 16)?;
    if entries != 0xFFFF && size != 0xFFFF_FFFF && offset != 0xFFFF_FFFF {
        return Some((offset, offset.checked_add(size)?));
    }
    let locator = eocd.checked_sub(20)?;
    if &tail[locator..locator + 4] != ZIP64_LOCATOR_SIGNATURE {
        return None;
    }
    let at = u64_at(tail, locator + 8)?;
    let fetched;
    let record: &[u8] = match at.checked_sub(tail_start) {
        Some(rel) => tail.get(usize::try_from(rel).ok()?..)?,
        None => {
            fetched = read_record(at)?;
            &fetched
        }
    };
    if record.get(..4)? != ZIP64_EOCD_SIGNATURE {
        return None;
    }
    let size = u64_at(record, 40)?;
    let offset = u64_at(record, 48)?;
    Some((offset, offset.checked_add(size)?))
}

enum EntryRead {
    Remote(RemoteError),
    Entry(EntryError),
}

/// Read a small entry whole: local header and data with one request (unless fetched
/// already), inflated with size and CRC-32 checked by [`EntryStream`].
fn read_entry(remote: &RemoteFile, entry: &Entry, limit: u64) -> Result<Vec<u8>, EntryRead> {
    if entry.size > limit || entry.compressed_size > limit {
        return Err(EntryRead::Entry(EntryError::TooLarge(limit)));
    }
    let start = entry.header_offset;
    let guess = 30 + entry.name.len() as u64 + LOCAL_EXTRA_SLACK + entry.compressed_size;
    let mut bytes = remote.read_at(start, guess, 0).map_err(EntryRead::Remote)?;
    if bytes.len() < 30 || &bytes[..4] != b"PK\x03\x04" {
        return Err(EntryRead::Entry(EntryError::BadLocalHeader(start)));
    }
    let name_len = u16::from_le_bytes([bytes[26], bytes[27]]) as u64;
    let extra_len = u16::from_le_bytes([bytes[28], bytes[29]]) as u64;
    let need = 30 + name_len + extra_len + entry.compressed_size;
    if need > bytes.len() as u64 {
        let more = remote
            .read_at(start + bytes.len() as u64, need - bytes.len() as u64, 0)
            .map_err(EntryRead::Remote)?;
        bytes.extend_from_slice(&more);
    }
    // The fetched bytes start at the local header: an entry at offset 0 of them.
    let local = Entry {
        header_offset: 0,
        ..entry.clone()
    };
    let mut stream = EntryStream::new(&bytes, &local).map_err(EntryRead::Entry)?;
    // The inflated bytes live as long as the fetched ones: counted alike.
    remote.hold(entry.size).map_err(EntryRead::Remote)?;
    let mut out = Vec::with_capacity(entry.size as usize);
    while let Some(chunk) = stream.next_chunk().map_err(EntryRead::Entry)? {
        out.extend_from_slice(chunk);
    }
    Ok(out)
}

/// `Read + Seek` over the remote file for the zip parser: served from fetched blocks,
/// fetching at least [`MIN_FETCH`] bytes when it asks for something new, and at most
/// `budget` bytes in all: whatever the records claim (a zip64 record nobody could
/// fetch, a search for one across a 10 GB file), the parser cannot make us fetch and
/// keep more than one maximal directory.
struct RangeReader<'a> {
    remote: &'a RemoteFile,
    pos: u64,
    failure: Option<RemoteError>,
    /// Bytes the parser may still have fetched.
    budget: u64,
    /// The parser wanted more than `budget`.
    over_budget: bool,
}

impl Read for RangeReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let size = self.remote.size();
        let n = (buf.len() as u64).min(size.saturating_sub(self.pos));
        if n == 0 {
            return Ok(0);
        }
        if self.remote.cached(self.pos, self.pos + n).is_none() {
            let fetch = n.max(MIN_FETCH).min(size - self.pos);
            if fetch > self.budget {
                self.over_budget = true;
                return Err(io::Error::other(
                    "the zip parser asked for more than a central directory's worth of bytes",
                ));
            }
            self.budget -= fetch;
        }
        match self.remote.read_at(self.pos, n, MIN_FETCH) {
            Ok(bytes) => {
                buf[..bytes.len()].copy_from_slice(&bytes);
                self.pos += bytes.len() as u64;
                Ok(bytes.len())
            }
            Err(e) => {
                self.failure = Some(e.clone());
                Err(io::Error::other(e))
            }
        }
    }
}

impl Seek for RangeReader<'_> {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let size = self.remote.size() as i128;
        let target = match to {
            SeekFrom::Start(n) => n as i128,
            SeekFrom::End(d) => size + d as i128,
            SeekFrom::Current(d) => self.pos as i128 + d as i128,
        };
        if target < 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "seek before the start of the file",
            ));
        }
        self.pos = target as u64;
        Ok(self.pos)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A zip64 end record declaring `cd_size` bytes of directory at `cd_offset`.
    fn zip64_record(cd_size: u64, cd_offset: u64) -> Vec<u8> {
        let mut r = ZIP64_EOCD_SIGNATURE.to_vec();
        r.extend_from_slice(&44u64.to_le_bytes());
        r.extend_from_slice(&[0; 4 + 8]);
        r.extend_from_slice(&[0xFF; 16]);
        r.extend_from_slice(&cd_size.to_le_bytes());
        r.extend_from_slice(&cd_offset.to_le_bytes());
        r
    }

    /// `head` at offset 0, `gap` zeros, then a zip64 locator pointing at `record` and an
    /// end record that defers to zip64.
    fn zip64_file(head: &[u8], gap: usize, record: u64) -> Vec<u8> {
        let mut f = head.to_vec();
        f.resize(head.len() + gap, 0);
        f.extend_from_slice(ZIP64_LOCATOR_SIGNATURE);
        f.extend_from_slice(&0u32.to_le_bytes());
        f.extend_from_slice(&record.to_le_bytes());
        f.extend_from_slice(&1u32.to_le_bytes());
        f.extend_from_slice(EOCD_SIGNATURE);
        f.extend_from_slice(&[0; 4]);
        f.extend_from_slice(&[0xFF; 12]);
        f.extend_from_slice(&[0; 2]);
        f
    }

    #[test]
    fn the_directory_cap_holds_when_the_zip64_record_is_before_the_tail() {
        let gap = TAIL_LEN as usize + 1000;
        for (cd_size, cd_offset) in [
            (MAX_DIRECTORY_BYTES + 1, 56),
            (u64::MAX / 2, 0),
            (1 << 40, 56),
        ] {
            let file = zip64_file(&zip64_record(cd_size, cd_offset), gap, 0);
            let remote = RemoteFile::in_memory("mem.ipsw", file);
            match open_url(&remote) {
                Err(OpenError::Archive(ArchiveError::BrokenDirectory(m))) => {
                    assert!(m.contains("more than the 33554432"), "{m}")
                }
                other => panic!("{cd_size}: {:?}", other.err()),
            }
            // The tail, and the record: two requests, nothing of the directory.
            assert_eq!(remote.requests(), 2);
            assert!(remote.bytes_fetched() < TAIL_LEN + 100);
        }
    }

    #[test]
    fn a_record_that_cannot_be_read_leaves_the_parser_within_its_budget() {
        // The locator points beyond the file, or at zeros, in 40 MiB: the parser looks
        // for itself, and fetches no more than the budget.
        for record in [u64::MAX - 10, 5] {
            let file = zip64_file(&[0; 100], 40 << 20, record);
            let remote = RemoteFile::in_memory("mem.ipsw", file);
            assert!(open_url(&remote).is_err());
            let bound = TAIL_LEN + ZIP64_EOCD_LEN + MAX_DIRECTORY_BYTES;
            assert!(
                remote.bytes_fetched() <= bound,
                "{}",
                remote.bytes_fetched()
            );
        }
        let mut reader = RangeReader {
            remote: &RemoteFile::in_memory("mem", vec![0; 4 * MIN_FETCH as usize]),
            pos: 0,
            failure: None,
            budget: MIN_FETCH,
            over_budget: false,
        };
        reader.remote.fetch_tail().unwrap();
        let mut buf = [0u8; 10];
        assert!(reader.read(&mut buf).is_ok(), "the first 64 KiB fit");
        reader.pos = MIN_FETCH;
        assert!(reader.read(&mut buf).is_err(), "the next do not");
        assert!(reader.over_budget);
    }

    #[test]
    fn end_record_needs_its_comment_to_reach_the_end() {
        let mut tail = vec![0u8; 100];
        tail.extend_from_slice(EOCD_SIGNATURE);
        tail.extend_from_slice(&[0; 16]);
        tail.extend_from_slice(&[3, 0]);
        tail.extend_from_slice(b"abc");
        assert_eq!(find_end_record(&tail), Some(100));
        tail.push(0);
        assert_eq!(find_end_record(&tail), None);
    }
}
