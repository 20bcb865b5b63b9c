//! The IPSW as a zip archive: opened read-only by memory map, central directory parsed
//! once, entries streamed straight out of the mapping.
//!
//! Why this file is long (~1,500 lines): the zip layout checks (end records, zip64, local
//! headers against the directory, overlaps), the streaming entry reader and the reading
//! of local headers in stream order (a download without its directory yet) must agree on
//! one reading of the bytes, so they stay together.
//!
//! Why this shape:
//! - An IPSW is 3–20 GB (FIRMWARE.md §1). Mapping it lets every core hash its own entry
//!   from the page cache with no read buffers and no copies for stored entries.
//! - A cut-off download has no end-of-central-directory record. We look for it in the
//!   last 64 KiB ourselves, before handing the file to the `zip` crate, so a truncated
//!   5 GB file is diagnosed in microseconds and is never mistaken for "not a zip".
//! - The central directory itself is parsed by the `zip` crate; the local header of an
//!   entry is read here (it is 30 bytes plus a name) to find the raw data range.
//! - Every entry is read through [`EntryStream`], which checks the CRC-32 and the
//!   declared size while the bytes pass by, and refuses to inflate past the declared
//!   size (a deflate bomb stops at the size the directory promised).

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read, Seek};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};

use flate2::{Decompress, FlushDecompress, Status};
use memmap2::Mmap;

const EOCD_SIGNATURE: &[u8; 4] = b"PK\x05\x06";
const LOCAL_HEADER_SIGNATURE: &[u8; 4] = b"PK\x03\x04";
/// The end record is 22 bytes plus a comment of at most 65535 bytes.
const EOCD_SEARCH_WINDOW: usize = 22 + 65535;
/// Stored data is handed out in slices of this size (progress and cancellation granularity;
/// `verify::run_plan_as_written` waits for this much ahead of a stored entry's reader).
pub(crate) const STORED_CHUNK: usize = 1 << 20;
/// Inflated data is produced into a buffer of this size (also the piece size of a
/// pipelined entry, `verify::pipeline`, so both give the same chunks).
pub(crate) const INFLATE_CHUNK: usize = 256 << 10;

/// Why a file is not a usable zip archive at all.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("no such file")]
    NotFound,
    #[error("is a directory, not a file")]
    IsDirectory,
    #[error("is not a regular file")]
    NotRegularFile,
    #[error("cannot be read: {0}")]
    Unreadable(io::Error),
    #[error("is empty (0 bytes)")]
    Empty,
    #[error("is not a zip archive, so not an IPSW")]
    NotAZip,
    #[error("is truncated: it starts like a zip but has no end-of-central-directory record (an unfinished download?)")]
    Truncated,
    #[error("has a broken zip central directory: {0}")]
    BrokenDirectory(String),
}

impl ArchiveError {
    /// Damage (the file was a zip once) as opposed to "this was never an IPSW".
    pub fn is_damage(&self) -> bool {
        matches!(
            self,
            ArchiveError::Truncated | ArchiveError::BrokenDirectory(_)
        )
    }
}

/// Why one entry could not be read, or read back wrong.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum EntryError {
    #[error("its local header at offset {0} is missing or damaged")]
    BadLocalHeader(u64),
    #[error("its local header disagrees with the central directory about its {0}")]
    LocalHeaderMismatch(&'static str),
    #[error("its data runs past the end of the file")]
    OutOfBounds,
    #[error("it uses compression method {0}, which IPSWs never use")]
    UnsupportedMethod(u16),
    #[error("it is encrypted")]
    Encrypted,
    #[error("its deflate data is corrupt: {0}")]
    Inflate(String),
    #[error("it inflates beyond its declared size of {0} bytes")]
    LargerThanDeclared(u64),
    #[error("it ends after {actual} of its declared {declared} bytes")]
    ShorterThanDeclared { declared: u64, actual: u64 },
    #[error("CRC-32 mismatch: directory says {expected:08x}, data gives {actual:08x}")]
    Crc { expected: u32, actual: u32 },
    #[error("it is larger than the {0}-byte limit for this kind of entry")]
    TooLarge(u64),
    #[error("the check was cancelled")]
    Cancelled,
    /// A read of an archive that is not mapped ([`Archive::unmap`]) failed.
    #[error("it could not be read: {0}")]
    Unreadable(String),
}

/// How an entry's bytes are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Stored,
    Deflated,
    Other(u16),
}

/// One central-directory record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The entry name for display; non-UTF-8 bytes are replaced (U+FFFD). Lookups never
    /// use it when it differs from [`Entry::raw_name`].
    pub name: String,
    /// The name exactly as the central directory spells it. A manifest `Info/Path` is
    /// matched against these bytes: `iBSS\xff` shown as `iBSS\u{FFFD}` is not the file a
    /// restore asks for (idevicerestore looks names up byte for byte through libzip).
    pub raw_name: Vec<u8>,
    pub method: Method,
    pub compressed_size: u64,
    /// Uncompressed size as declared by the central directory.
    pub size: u64,
    pub crc32: u32,
    /// Offset of the local header.
    pub header_offset: u64,
    pub encrypted: bool,
    pub is_dir: bool,
}

/// An IPSW opened for reading: the mapping plus its parsed central directory.
///
/// [`Archive::from_directory`] makes one with a directory but no data (a remote file
/// whose directory was read with range requests): [`Archive::bytes`] is then empty, so
/// only checks that never read entry data (`--quick`) can run on it.
pub struct Archive {
    path: PathBuf,
    /// Kept open to notice changes (size, mtime) made while the check runs; `None` for a
    /// directory read from elsewhere.
    file: Option<File>,
    /// Which file was opened (device, inode, size, mtime), taken from the open
    /// descriptor, so [`Archive::changed`] can tell when the path names another file.
    opened: FileIdentity,
    /// Registered with [`crate::guard`] so a shrinking file cannot crash the process.
    /// Declared before `map` so it is unregistered before the mapping goes away.
    guard: crate::guard::Registration,
    /// `None` when only the directory is known ([`Archive::from_directory`]).
    map: Option<Mmap>,
    /// Size of the whole file, mapped or not.
    len: u64,
    entries: Vec<Entry>,
    /// Exact (raw byte) names of the entries that can be a component: every entry but
    /// directories, keyed only when the raw name is valid UTF-8 (a manifest `Info/Path`
    /// is a plist string, so a name that is not UTF-8 can never be the one it means).
    by_name: HashMap<String, usize>,
    /// Directory records that repeat a name (the `zip` crate keeps one of each).
    duplicate_names: usize,
    /// The file behind `map` in the registry of mapped files ([`MappedCheck`]).
    mapped_file: Option<MappedFile>,
    /// Readable layouts Apple never writes (see [`Oddity`]).
    oddities: Vec<Oddity>,
    /// The directory's share of the memory budget ([`crate::budget`]).
    _directory_memory: crate::budget::Ticket,
    /// Reserved with the directory for what the caller reads next (the manifests, see
    /// [`Archive::open_reserving`]); empty once taken.
    reserved: crate::budget::Ticket,
    /// How much of a file still being written is in place ([`Archive::growing`]): every
    /// read waits for its bytes. `None` for a file that is complete.
    watermark: Option<Arc<Watermark>>,
}

/// A zip layout that `unzip` and Python's `zipfile` read and that is unambiguous, but that
/// no Apple IPSW has: everything is still verified, and the report says so as a warning
/// (the whole-file checksum cannot match Apple's anyway).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Oddity {
    /// `n` bytes precede the archive (a self-extractor stub, a header some tool added):
    /// every offset in the directory is `n` short of where its record really is.
    Prefix(u64),
    /// `n` bytes follow the end-of-central-directory record and its comment.
    Trailing(u64),
}

impl std::fmt::Display for Oddity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Oddity::Prefix(n) => write!(
                f,
                "{n} bytes come before the zip archive (a self-extractor stub or an added \
                 header); the archive after them was read and checked"
            ),
            Oddity::Trailing(n) => write!(
                f,
                "{n} bytes of something else follow the zip's end record; they were ignored"
            ),
        }
    }
}

/// What identifies the file a check opened: device and inode (which file), size and
/// modification time (which contents).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileIdentity {
    dev: u64,
    ino: u64,
    len: u64,
    modified: Option<std::time::SystemTime>,
}

impl FileIdentity {
    fn of(meta: &std::fs::Metadata) -> FileIdentity {
        #[cfg(unix)]
        let (dev, ino) = {
            use std::os::unix::fs::MetadataExt;
            (meta.dev(), meta.ino())
        };
        #[cfg(not(unix))]
        let (dev, ino) = (0, 0);
        FileIdentity {
            dev,
            ino,
            len: meta.len(),
            modified: meta.modified().ok(),
        }
    }

    fn unknown(len: u64) -> FileIdentity {
        FileIdentity {
            dev: 0,
            ino: 0,
            len,
            modified: None,
        }
    }
}

/// Caps on what the central directory may cost, checked from the end records before
/// the `zip` crate parses anything. Real IPSWs have a few hundred to a few thousand
/// entries in well under a megabyte of directory; these caps allow several times that
/// and hold a crafted directory to about 25 MB ([`directory_cost`]).
pub const MAX_ENTRIES: u64 = 20_000;
/// See [`MAX_ENTRIES`].
pub const MAX_DIRECTORY_BYTES: u64 = 2 << 20;

/// What parsing a directory of `entries` records in `bytes` bytes costs at its peak,
/// generously: the `zip` crate builds a record of about 300 bytes per entry with the
/// name twice and an index keyed by it, and [`Archive`] keeps an [`Entry`] with the
/// name twice and its own index; with the allocator's overhead about 640 bytes per
/// entry plus six copies of the directory's bytes.
fn directory_cost(entries: u64, bytes: u64) -> u64 {
    entries * 640 + bytes * 6
}

impl std::fmt::Debug for Archive {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Archive")
            .field("path", &self.path)
            .field("len", &self.len)
            .field("entries", &self.entries.len())
            .finish()
    }
}

impl Archive {
    /// Open `path` read-only and parse its central directory. Costs one `stat`, one
    /// `mmap` and a walk over the directory: milliseconds even for a 10 GB file.
    pub fn open(path: &Path) -> Result<Archive, ArchiveError> {
        Self::open_reserving(path, 0)
    }

    /// [`Archive::open`], reserving `extra` bytes of the memory budget together with the
    /// directory's (one reservation, see [`crate::budget`] for why); the caller takes
    /// them with [`Archive::take_reserved`] for what it reads next.
    pub fn open_reserving(path: &Path, extra: u64) -> Result<Archive, ArchiveError> {
        let meta = std::fs::metadata(path).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => ArchiveError::NotFound,
            _ => ArchiveError::Unreadable(e),
        })?;
        if meta.is_dir() {
            return Err(ArchiveError::IsDirectory);
        }
        // Never open FIFOs or devices: opening a FIFO for reading blocks forever.
        if !meta.is_file() {
            return Err(ArchiveError::NotRegularFile);
        }
        let mut options = std::fs::OpenOptions::new();
        options.read(true);
        // Non-blocking: the path may have been swapped for a FIFO since the `stat` above,
        // and opening a FIFO would block (on a regular file the flag changes nothing).
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::custom_flags(&mut options, libc::O_NONBLOCK);
        let file = options.open(path).map_err(ArchiveError::Unreadable)?;
        // What was opened, from the descriptor: the path may have been swapped for
        // something else between the `stat` above and the `open`.
        let meta = file.metadata().map_err(ArchiveError::Unreadable)?;
        if !meta.is_file() {
            return Err(ArchiveError::NotRegularFile);
        }
        if meta.len() == 0 {
            return Err(ArchiveError::Empty);
        }
        // SAFETY: memmap2's `Mmap::map` makes a read-only *shared* mapping
        // (`PROT_READ`, `MAP_SHARED`) of the whole file: it shows the file's pages as
        // they are now and as anyone changes them later, never a private copy. We never
        // write through it, and while a `&[u8]` over it is alive another process may
        // still rewrite the bytes (the slice then reads the new bytes — we detect that
        // through size and mtime in `changed`) or truncate the file (a read past the new
        // end raises SIGBUS, which `guard` turns into zeros and a "changed during the
        // check" report). No Rust invariant depends on the bytes' values.
        let map = unsafe { Mmap::map(&file) }.map_err(ArchiveError::Unreadable)?;
        // Every entry is read front to back once: a larger readahead reads a file that is
        // not in the page cache about 3.5 times faster through the mapping (BENCHMARKS.md).
        // A hint only, so a refusal changes nothing.
        #[cfg(unix)]
        let _ = map.advise(memmap2::Advice::Sequential);
        let guard = crate::guard::register(&map);
        let opened = FileIdentity::of(&meta);
        let mapped = MappedFile::register(&file);
        let mut archive =
            Self::from_map(path.to_path_buf(), Some(file), opened, guard, map, extra)?;
        archive.mapped_file = mapped;
        Ok(archive)
    }

    fn from_map(
        path: PathBuf,
        file: Option<File>,
        opened: FileIdentity,
        guard: crate::guard::Registration,
        map: Mmap,
        extra: u64,
    ) -> Result<Archive, ArchiveError> {
        let bytes: &[u8] = &map;
        let (eocd, trailing) = triage(bytes)?;
        let layout = directory_span(bytes, eocd)?;
        let cost = directory_cost(layout.entries, layout.span.end - layout.span.start);
        let mut directory_memory = crate::budget::reserve(cost + extra);
        let reserved = directory_memory.split_off(extra);
        let (entries, duplicate_names) = Self::read_directory(io::Cursor::new(bytes))?;
        check_layout(bytes, layout.span.clone(), &entries)?;
        let oddities = [
            (layout.prefix > 0).then_some(Oddity::Prefix(layout.prefix)),
            (trailing > 0).then_some(Oddity::Trailing(trailing)),
        ]
        .into_iter()
        .flatten()
        .collect();
        let mut archive = Archive::from_directory(path, map.len() as u64, entries, duplicate_names);
        archive.file = file;
        archive.opened = opened;
        archive.guard = guard;
        archive.map = Some(map);
        archive.oddities = oddities;
        archive._directory_memory = directory_memory;
        archive.reserved = reserved;
        Ok(archive)
    }

    /// An archive over a copy of `bytes` (an anonymous mapping), checked exactly as
    /// [`Archive::open`] checks a file; [`Archive::changed`] is always `None`. For the
    /// fuzz targets (`fuzz/`) and tests, which have bytes rather than files.
    pub fn from_bytes(label: impl Into<PathBuf>, bytes: &[u8]) -> Result<Archive, ArchiveError> {
        if bytes.is_empty() {
            return Err(ArchiveError::Empty);
        }
        let mut anon = memmap2::MmapMut::map_anon(bytes.len()).map_err(ArchiveError::Unreadable)?;
        anon.copy_from_slice(bytes);
        let map = anon.make_read_only().map_err(ArchiveError::Unreadable)?;
        // Anonymous memory cannot shrink under us: no guard slot needed.
        let opened = FileIdentity::unknown(map.len() as u64);
        Self::from_map(
            label.into(),
            None,
            opened,
            crate::guard::register(&[]),
            map,
            0,
        )
    }

    /// An archive whose central directory was read elsewhere (a remote file read with
    /// range requests) and whose data is not mapped: `len` is the whole file's size,
    /// [`Archive::bytes`] is empty and [`Archive::changed`] is always `None`.
    pub fn from_directory(
        label: impl Into<PathBuf>,
        len: u64,
        entries: Vec<Entry>,
        duplicate_names: bool,
    ) -> Archive {
        let by_name = entries
            .iter()
            .enumerate()
            .filter(|(_, e)| !e.is_dir && e.name.as_bytes() == e.raw_name.as_slice())
            .map(|(i, e)| (e.name.clone(), i))
            .collect();
        Archive {
            path: label.into(),
            file: None,
            opened: FileIdentity::unknown(len),
            guard: crate::guard::register(&[]),
            map: None,
            len,
            entries,
            by_name,
            duplicate_names: usize::from(duplicate_names),
            mapped_file: None,
            oddities: Vec::new(),
            _directory_memory: crate::budget::Ticket::none(),
            reserved: crate::budget::Ticket::none(),
            watermark: None,
        }
    }

    /// An archive over `file`, which a download is still writing front to back and whose
    /// zip directory has not arrived: a server without range support sends the directory
    /// last, yet `fetch` verifies the entries as they land (`verify::follow`). It has no
    /// entries; the caller makes them from the local headers ([`LocalHeader`]) and reads
    /// them with [`Archive::stream`] and [`Archive::read_exact_at`], which wait until
    /// `watermark` says their bytes are in place (an inflater never sees a byte before it
    /// is written) and fail — the stream with [`EntryError::Cancelled`] — once the
    /// download ended short of them. Nothing is mapped (the file is being written: see
    /// [`Archive::unmap`]). `len` is the size the download will have (its
    /// `Content-Length`; `u64::MAX` when unknown).
    pub fn growing(
        label: impl Into<PathBuf>,
        file: File,
        len: u64,
        watermark: Arc<Watermark>,
    ) -> Archive {
        let mut archive = Archive::from_directory(label, len, Vec::new(), false);
        archive.file = Some(file);
        archive.watermark = Some(watermark);
        archive
    }

    /// Parse a central directory with the `zip` crate: the entries, and whether some
    /// name appears more than once. A directory entry can never be a component file.
    pub fn read_directory<R: Read + Seek>(reader: R) -> Result<(Vec<Entry>, bool), ArchiveError> {
        let zip = zip::ZipArchive::new(reader)
            .map_err(|e| ArchiveError::BrokenDirectory(e.to_string()))?;
        let metadata = zip.metadata();
        if metadata.len() as u64 > MAX_ENTRIES {
            return Err(too_many_entries(metadata.len() as u64));
        }
        let mut entries = Vec::with_capacity(metadata.len());
        for index in 0..metadata.len() {
            let e = metadata
                .entry(index)
                .map_err(|e| ArchiveError::BrokenDirectory(e.to_string()))?;
            let method = match e.compression() {
                zip::CompressionMethod::Stored => Method::Stored,
                zip::CompressionMethod::Deflated => Method::Deflated,
                #[allow(deprecated)]
                other => Method::Other(other.to_u16()),
            };
            let raw_name = e.name_raw().to_vec();
            entries.push(Entry {
                name: String::from_utf8_lossy(&raw_name).into_owned(),
                // A name ending in a slash or a backslash, or a Unix mode that says directory:
                // `unzip` would make a directory of it.
                is_dir: e.is_dir() || e.unix_mode().is_some_and(|m| m & 0o170000 == 0o040000),
                raw_name,
                method,
                compressed_size: e.compressed_size(),
                size: e.size(),
                crc32: e.crc32(),
                header_offset: e.header_start(),
                encrypted: e.encrypted(),
            });
        }
        Ok((entries, metadata.has_duplicate_names()))
    }

    /// Whether the file changed since it was opened: it shrank under the mapping
    /// (see [`crate::guard`]), its size or modification time differ, or the path now
    /// names another file (renamed over it: the verdict would describe a file that is no
    /// longer the one at the path). Hashes computed over a changing file prove nothing,
    /// so a check must not report them as verdicts.
    pub fn changed(&self) -> Option<String> {
        let now = self.file.as_ref().and_then(|f| f.metadata().ok());
        // A fault inside the file is an I/O error ([`Archive::read_error`]), not a change.
        if self.guard.faulted() && self.read_error().is_none() {
            return Some("it shrank while it was being read".into());
        }
        let now = FileIdentity::of(&now?);
        if now.len != self.opened.len {
            return Some(format!(
                "its size went from {} to {} bytes",
                self.opened.len, now.len
            ));
        }
        if now.modified != self.opened.modified {
            return Some("it was modified".into());
        }
        match std::fs::metadata(&self.path) {
            Ok(meta) => {
                let at_path = FileIdentity::of(&meta);
                if (at_path.dev, at_path.ino) != (self.opened.dev, self.opened.ino) {
                    return Some(
                        "another file was put in its place (renamed or copied over it), so \
                         the file at the path is not the one checked"
                            .into(),
                    );
                }
            }
            Err(_) => {
                return Some(
                    "it was removed or renamed away, so no file at the path is the one checked"
                        .into(),
                )
            }
        }
        None
    }

    /// What [`Archive::open_reserving`] reserved for the caller (empty after the first
    /// call).
    pub fn take_reserved(&mut self) -> crate::budget::Ticket {
        std::mem::replace(&mut self.reserved, crate::budget::Ticket::none())
    }

    /// Whether a read of the mapping failed although the page lies inside the file: the
    /// kernel could not deliver it (an I/O error: a failing disk, a network file system
    /// that dropped the file). A fault past the file's current end is a file that shrank
    /// instead ([`Archive::changed`]); see [`crate::guard`].
    pub fn read_error(&self) -> Option<String> {
        let at = self.guard.fault()?;
        let len = self.file.as_ref()?.metadata().ok()?.len();
        (at < len).then(|| {
            format!(
                "reading it failed with an I/O error at offset {at} (a failing disk, or a \
                 network file system that lost it); what was read there is not the file"
            )
        })
    }

    /// Readable layouts Apple never writes, found while opening (a warning each).
    pub fn oddities(&self) -> &[Oddity] {
        &self.oddities
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The whole file, as mapped (empty when the data is not mapped, see
    /// [`Archive::from_directory`] and [`Archive::unmap`]).
    pub fn bytes(&self) -> &[u8] {
        self.map.as_deref().unwrap_or(&[])
    }

    /// Stop reading the file through its mapping: from now on [`Archive::stream`],
    /// [`Archive::raw_range`] and [`Archive::read_exact_at`] read it with `pread` into
    /// buffers of their own, and [`Archive::bytes`] is empty.
    ///
    /// Why: `fetch` verifies `FILE.part` while the download writes into it. The mapping
    /// is shared (memmap2's `Mmap::map`: `MAP_SHARED`), so a `&[u8]` over it would see
    /// its bytes change under it — which Rust's shared references forbid, whatever the
    /// reader does with them. Bytes copied out with `pread` are the reader's own. The
    /// directory was parsed from the mapping before the first write; once the download
    /// is over the file can be opened (and mapped) again.
    pub fn unmap(&mut self) {
        if self.file.is_none() || self.map.is_none() {
            // No file (`from_bytes`: anonymous memory nobody writes, or no data at all).
            return;
        }
        // Unregister before the mapping goes away (the guard's rule).
        self.guard = crate::guard::register(&[]);
        self.map = None;
        self.mapped_file = None;
    }

    /// Fill `buf` with the bytes at `offset`, from the mapping or (after
    /// [`Archive::unmap`]) with `pread`.
    pub fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        match (&self.map, &self.file) {
            (None, Some(file)) => pread_in_place(file, buf, offset, self.watermark.as_deref()),
            _ => {
                let bytes = self.bytes();
                let src = usize::try_from(offset)
                    .ok()
                    .and_then(|at| bytes.get(at..at.checked_add(buf.len())?))
                    .ok_or_else(|| io::Error::from(io::ErrorKind::UnexpectedEof))?;
                buf.copy_from_slice(src);
                Ok(())
            }
        }
    }

    /// The file to `pread` from, when it is open but not mapped ([`Archive::unmap`]).
    fn unmapped_file(&self) -> Option<&File> {
        self.file.as_ref().filter(|_| self.map.is_none())
    }

    /// Whether the data is mapped ([`Archive::open`]) or only the directory is known.
    pub fn is_mapped(&self) -> bool {
        self.map.is_some()
    }

    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// Whether the directory names some entry more than once (Apple never does).
    pub fn has_duplicate_names(&self) -> bool {
        self.duplicate_names > 0
    }

    /// The entry called `name`, exactly as Apple spells it in `Info/Path`.
    pub fn entry(&self, name: &str) -> Option<&Entry> {
        self.by_name.get(name).map(|&i| &self.entries[i])
    }

    /// Position of the entry called `name` in [`Archive::entries`].
    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.by_name.get(name).copied()
    }

    /// The raw (possibly compressed) bytes of `entry`, located through its local header.
    pub fn raw_range(&self, entry: &Entry) -> Result<Range<usize>, EntryError> {
        match self.unmapped_file() {
            Some(file) => {
                read_local_header(file, self.len, entry, false, self.watermark.as_deref())
                    .map(|(range, _)| range)
            }
            None => raw_range(self.bytes(), entry),
        }
    }

    /// A stream over the uncompressed bytes of `entry`, checking CRC and size.
    pub fn stream<'a>(&'a self, entry: &'a Entry) -> Result<EntryStream<'a>, EntryError> {
        match self.unmapped_file() {
            Some(file) => {
                EntryStream::from_growing_file(file, self.len, entry, self.watermark.as_deref())
            }
            None => EntryStream::new(self.bytes(), entry),
        }
    }

    /// Read a small entry (a plist) whole, refusing more than `limit` bytes.
    pub fn read_small(&self, entry: &Entry, limit: u64) -> Result<Vec<u8>, EntryError> {
        if entry.size > limit {
            return Err(EntryError::TooLarge(limit));
        }
        let mut out = Vec::with_capacity(entry.size as usize);
        let mut stream = self.stream(entry)?;
        while let Some(chunk) = stream.next_chunk()? {
            out.extend_from_slice(chunk);
        }
        Ok(out)
    }
}

/// Decide quickly between "not a zip", "a cut-off zip" and "a zip to parse"; for the
/// last, the offset of the end-of-central-directory record and how many bytes follow
/// it and its comment.
///
/// The end record is looked for from the end of the file. One whose comment reaches
/// exactly to the end wins (the normal case; a stray signature inside compressed data
/// almost never lines up so). Failing that, the last signature whose comment fits in the
/// file is taken, with what follows it reported as trailing bytes: `unzip` and Python's
/// `zipfile` read such files, and [`directory_span`] then insists that the directory the
/// record names is really there, so a stray signature in garbage is not believed.
fn triage(bytes: &[u8]) -> Result<(usize, u64), ArchiveError> {
    let window_start = bytes.len().saturating_sub(EOCD_SEARCH_WINDOW);
    let tail = &bytes[window_start..];
    let record_end = |pos: usize| -> Option<usize> {
        (tail.get(pos..pos + 4)? == EOCD_SIGNATURE && tail.len() >= pos + 22)
            .then(|| pos + 22 + u16::from_le_bytes([tail[pos + 20], tail[pos + 21]]) as usize)
    };
    let candidates = || (0..tail.len().saturating_sub(3)).rev();
    if let Some(pos) = candidates().find(|&pos| record_end(pos) == Some(tail.len())) {
        return Ok((window_start + pos, 0));
    }
    let fitting = candidates().find_map(|pos| {
        let end = record_end(pos).filter(|&end| end <= tail.len())?;
        directory_span(bytes, window_start + pos)
            .is_ok()
            .then_some((window_start + pos, (tail.len() - end) as u64))
    });
    if let Some(found) = fitting {
        return Ok(found);
    }
    if bytes.starts_with(LOCAL_HEADER_SIGNATURE) {
        Err(ArchiveError::Truncated)
    } else if bytes.starts_with(EOCD_SIGNATURE) || bytes.starts_with(b"PK\x07\x08") {
        Err(ArchiveError::BrokenDirectory(
            "no end-of-central-directory record".into(),
        ))
    } else {
        Err(ArchiveError::NotAZip)
    }
}

fn too_many_entries(n: u64) -> ArchiveError {
    ArchiveError::BrokenDirectory(format!(
        "its central directory lists {n} entries, more than the {MAX_ENTRIES} ipswcheck \
         reads (Apple's IPSWs have a few thousand at most: a crafted file?)"
    ))
}

/// What the `zip` crate tolerates but an IPSW never has, checked once the directory is
/// parsed (after the crate's own checks, whose messages come first):
///
/// - entries that share bytes with each other or run into the central directory.
///   Apple's never do; a crafted archive whose directory records all point into the same
///   compressed data (an "overlapping" zip bomb: a 10 MB file declaring petabytes) would
///   otherwise have the check inflate the same bytes once per record, without bound.
///   Each entry spans its local header to the end of its data; entries whose local
///   header cannot be read are left to be reported as damaged when they are read.
///
/// (End records that put the directory anywhere but right before themselves were
/// refused by [`directory_span`] before the crate parsed anything.)
fn check_layout(
    bytes: &[u8],
    directory: Range<u64>,
    entries: &[Entry],
) -> Result<(), ArchiveError> {
    let mut spans: Vec<(u64, u64, usize)> = entries
        .iter()
        .enumerate()
        .filter_map(|(i, e)| Some((e.header_offset, raw_range(bytes, e).ok()?.end as u64, i)))
        .collect();
    spans.sort_unstable();
    for pair in spans.windows(2) {
        let ((_, end, a), (start, _, b)) = (pair[0], pair[1]);
        if start < end {
            return Err(ArchiveError::BrokenDirectory(format!(
                "entries {:?} and {:?} overlap (Apple's archives never share bytes between entries: a crafted file?)",
                entries[a].name, entries[b].name
            )));
        }
    }
    if let Some(&(_, end, i)) = spans.iter().max_by_key(|s| s.1) {
        if end > directory.start {
            return Err(ArchiveError::BrokenDirectory(format!(
                "entry {:?} runs into the central directory",
                entries[i].name
            )));
        }
    }
    Ok(())
}

/// Where the central directory is, as [`directory_span`] found it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct DirectoryLayout {
    /// Its byte range in the file.
    span: Range<u64>,
    /// How many records the end record promises.
    entries: u64,
    /// Bytes before the archive: the directory's real position minus the offset the end
    /// record gives (0 for every Apple IPSW).
    prefix: u64,
}

/// Where the end records say the central directory is, checked before anything parses
/// it. It must end where they begin: the zip64 end record when there is one (found
/// through its locator, right before the end record), else the end record.
///
/// When the end record's offset falls short of that position by `n` bytes and a
/// directory record starts exactly `n` bytes later, the archive has `n` bytes of
/// something before it (a self-extractor stub): every offset in it is off by `n`, as
/// `unzip` and the `zip` crate both work out. Anything else that does not add up is a
/// broken directory.
///
/// The entry count and directory size are held to [`MAX_ENTRIES`] and
/// [`MAX_DIRECTORY_BYTES`] here, so a crafted million-entry directory is refused before
/// the `zip` crate allocates for it.
fn directory_span(bytes: &[u8], eocd: usize) -> Result<DirectoryLayout, ArchiveError> {
    let broken = |why: String| ArchiveError::BrokenDirectory(why);
    let le = |at: usize, n: usize| -> Option<u64> {
        let b = bytes.get(at..at.checked_add(n)?)?;
        Some(b.iter().rev().fold(0u64, |v, &x| (v << 8) | u64::from(x)))
    };
    let (count, size, offset) = (
        le(eocd + 10, 2).unwrap_or(0),
        le(eocd + 12, 4).unwrap_or(0),
        le(eocd + 16, 4).unwrap_or(0),
    );
    let zip64 = count == 0xFFFF || size == 0xFFFF_FFFF || offset == 0xFFFF_FFFF;
    let (end, count, size, offset) = if zip64 {
        let locator = eocd
            .checked_sub(20)
            .filter(|&l| bytes.get(l..l + 4) == Some(b"PK\x06\x07"))
            .ok_or_else(|| broken("its end record needs a zip64 end record, but there is no zip64 locator before it".into()))?;
        let at = le(locator + 8, 8).unwrap_or(u64::MAX);
        let is_record = |z: usize| {
            z.checked_add(56).is_some_and(|e| e <= locator)
                && bytes.get(z..z + 4) == Some(b"PK\x06\x06")
        };
        // Where the locator says, or (bytes before the archive) right before the locator.
        let record = usize::try_from(at)
            .ok()
            .filter(|&z| is_record(z))
            .or_else(|| {
                locator
                    .checked_sub(56)
                    .filter(|&z| z as u64 > at && is_record(z))
            })
            .ok_or_else(|| {
                broken(format!(
                    "the zip64 locator points to offset {at}, where there is no zip64 end record"
                ))
            })?;
        (
            record,
            le(record + 32, 8).unwrap_or(u64::MAX),
            le(record + 40, 8).unwrap_or(u64::MAX),
            le(record + 48, 8).unwrap_or(u64::MAX),
        )
    } else {
        (eocd, count, size, offset)
    };
    let end = end as u64;
    if size > end || offset.checked_add(size).is_none_or(|e| e > end) {
        return Err(broken(format!(
            "the end record puts a {size}-byte central directory at offset {offset}, beyond its own position {end}"
        )));
    }
    if count > MAX_ENTRIES {
        return Err(too_many_entries(count));
    }
    if size > MAX_DIRECTORY_BYTES {
        return Err(broken(format!(
            "its central directory is {size} bytes, more than the {MAX_DIRECTORY_BYTES} \
             ipswcheck reads (Apple's take well under a megabyte: a crafted file?)"
        )));
    }
    // Every directory record is at least 46 bytes.
    if count.saturating_mul(46) > size {
        return Err(broken(format!(
            "its end record counts {count} entries in a central directory of {size} bytes, \
             too small to hold them"
        )));
    }
    let start = end - size;
    let prefix = start - offset;
    let record_at =
        |at: u64| size == 0 || bytes.get(at as usize..at as usize + 4) == Some(b"PK\x01\x02");
    if prefix > 0 && (record_at(offset) || !record_at(start)) {
        return Err(broken(format!(
            "the end record puts a {size}-byte central directory at offset {offset}, which \
             does not end where the end record begins ({end})"
        )));
    }
    Ok(DirectoryLayout {
        span: start..end,
        entries: count,
        prefix,
    })
}

fn raw_range(bytes: &[u8], entry: &Entry) -> Result<Range<usize>, EntryError> {
    let header = usize::try_from(entry.header_offset)
        .ok()
        .and_then(|start| bytes.get(start..))
        .ok_or(EntryError::BadLocalHeader(entry.header_offset))?;
    data_range(header, bytes.len() as u64, entry)
}

/// The raw data range of `entry` in a file of `file_len` bytes, from its local header
/// (`header`: the bytes from the header on, at least its 30 fixed bytes).
fn data_range(header: &[u8], file_len: u64, entry: &Entry) -> Result<Range<usize>, EntryError> {
    let bad = || EntryError::BadLocalHeader(entry.header_offset);
    let start = usize::try_from(entry.header_offset).map_err(|_| bad())?;
    let header = header.get(..30).ok_or_else(bad)?;
    if &header[..4] != LOCAL_HEADER_SIGNATURE {
        return Err(bad());
    }
    let name_len = u16::from_le_bytes([header[26], header[27]]) as usize;
    let extra_len = u16::from_le_bytes([header[28], header[29]]) as usize;
    let data_start = start
        .checked_add(30 + name_len + extra_len)
        .ok_or(EntryError::OutOfBounds)?;
    let data_end = usize::try_from(entry.compressed_size)
        .ok()
        .and_then(|n| data_start.checked_add(n))
        .ok_or(EntryError::OutOfBounds)?;
    if data_end as u64 > file_len {
        return Err(EntryError::OutOfBounds);
    }
    Ok(data_start..data_end)
}

/// [`raw_range`] for a file read with `pread` ([`Archive::unmap`]): the data range, and
/// the local header's fixed part, followed by the name (what [`check_local_header`]
/// reads) when `with_name`. Only the fixed 30 bytes are read otherwise: a download
/// verified as it is written has written those when it asks where an entry's data is.
fn read_local_header(
    file: &File,
    file_len: u64,
    entry: &Entry,
    with_name: bool,
    watermark: Option<&Watermark>,
) -> Result<(Range<usize>, Vec<u8>), EntryError> {
    let bad = || EntryError::BadLocalHeader(entry.header_offset);
    let failed = |e: io::Error| match e.kind() {
        _ if is_not_written(&e) => EntryError::Cancelled,
        io::ErrorKind::UnexpectedEof => bad(),
        _ => EntryError::Unreadable(e.to_string()),
    };
    let mut header = vec![0u8; 30];
    pread_in_place(file, &mut header, entry.header_offset, watermark).map_err(failed)?;
    let range = data_range(&header, file_len, entry)?;
    if !with_name {
        return Ok((range, header));
    }
    let name_len = u16::from_le_bytes([header[26], header[27]]) as usize;
    header.resize(30 + name_len, 0);
    pread_in_place(file, &mut header[30..], entry.header_offset + 30, watermark).map_err(failed)?;
    Ok((range, header))
}

/// How far a file that is being written front to back (a download into `FILE.part`) is
/// in place: the writer advances it after each write and closes it when it stops; readers
/// of an [`Archive::growing`] wait on it for the bytes they need.
#[derive(Debug, Default)]
pub struct Watermark {
    written: AtomicU64,
    closed: AtomicBool,
    lock: Mutex<()>,
    changed: Condvar,
}

/// The download ended before the bytes asked for were written ([`Watermark::wait_for`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the download ended before these bytes arrived")]
pub struct NotWritten;

impl Watermark {
    pub fn new() -> Watermark {
        Watermark::default()
    }

    fn guard(&self) -> std::sync::MutexGuard<'_, ()> {
        // Guards no data of its own: a panic elsewhere leaves nothing broken.
        self.lock.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The first `to` bytes of the file are written (it only ever grows).
    pub fn advance(&self, to: u64) {
        let guard = self.guard();
        self.written.fetch_max(to, Ordering::Release);
        drop(guard);
        self.changed.notify_all();
    }

    /// No more bytes will be written (the download is over, however it ended).
    pub fn close(&self) {
        let guard = self.guard();
        self.closed.store(true, Ordering::Release);
        drop(guard);
        self.changed.notify_all();
    }

    /// Bytes from the start in place now.
    pub fn written(&self) -> u64 {
        self.written.load(Ordering::Acquire)
    }

    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Wait until the first `end` bytes are in place; [`NotWritten`] once the download
    /// ended short of them.
    pub fn wait_for(&self, end: u64) -> Result<(), NotWritten> {
        if self.written() >= end {
            return Ok(());
        }
        let mut guard = self.guard();
        loop {
            if self.written() >= end {
                return Ok(());
            }
            if self.is_closed() {
                return Err(NotWritten);
            }
            guard = self.changed.wait(guard).unwrap_or_else(|e| e.into_inner());
        }
    }

    /// Wait until some byte at or after `at` is in place, or the download is over; how
    /// many bytes from `at` on are in place then (0: the download ended at or before `at`).
    pub fn wait_past(&self, at: u64) -> u64 {
        match self.wait_for(at.saturating_add(1)) {
            Ok(()) => self.written() - at,
            Err(NotWritten) => self.written().saturating_sub(at),
        }
    }
}

/// `pread` the whole of `buf` at `offset`, first waiting for its bytes when the file is
/// still being written (`watermark`); [`NotWritten`] (inside the error) when they never
/// came.
fn pread_in_place(
    file: &File,
    buf: &mut [u8],
    offset: u64,
    watermark: Option<&Watermark>,
) -> io::Result<()> {
    if let Some(watermark) = watermark {
        let end = offset
            .checked_add(buf.len() as u64)
            .ok_or(io::ErrorKind::UnexpectedEof)?;
        watermark.wait_for(end).map_err(io::Error::other)?;
    }
    pread(file, buf, offset)
}

/// Whether a read failed because a download ended before its bytes arrived.
pub fn is_not_written(e: &io::Error) -> bool {
    e.get_ref().is_some_and(|inner| inner.is::<NotWritten>())
}

/// `pread` the whole of `buf` at `offset` (a short file: `UnexpectedEof`).
fn pread(file: &File, buf: &mut [u8], offset: u64) -> io::Result<()> {
    #[cfg(unix)]
    {
        std::os::unix::fs::FileExt::read_exact_at(file, buf, offset)
    }
    #[cfg(windows)]
    {
        let (mut buf, mut offset) = (buf, offset);
        while !buf.is_empty() {
            match std::os::windows::fs::FileExt::seek_read(file, buf, offset) {
                Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
                Ok(n) => {
                    buf = &mut buf[n..];
                    offset += n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

/// The files mapped right now by [`Archive::open`], by (device, inode), once per live
/// mapping. `fetch` asks [`MappedCheck`] before every write to `FILE.part`: the bytes
/// of a file being written are read with `pread` ([`Archive::unmap`]), never through a
/// `&[u8]` over its shared mapping, and this registry makes that checkable.
static MAPPED_FILES: Mutex<Vec<(u64, u64)>> = Mutex::new(Vec::new());

/// One entry of [`MAPPED_FILES`]; removed when dropped (with the mapping).
#[derive(Debug)]
struct MappedFile((u64, u64));

impl MappedFile {
    fn register(file: &File) -> Option<MappedFile> {
        let id = file_id(file)?;
        mapped_files().push(id);
        Some(MappedFile(id))
    }
}

impl Drop for MappedFile {
    fn drop(&mut self) {
        let mut files = mapped_files();
        if let Some(at) = files.iter().position(|&id| id == self.0) {
            files.swap_remove(at);
        }
    }
}

fn mapped_files() -> std::sync::MutexGuard<'static, Vec<(u64, u64)>> {
    // The list is plain data: a panic elsewhere while holding it leaves it usable.
    MAPPED_FILES.lock().unwrap_or_else(|e| e.into_inner())
}

/// (device, inode) of an open file.
fn file_id(file: &File) -> Option<(u64, u64)> {
    let meta = file.metadata().ok()?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        Some((meta.dev(), meta.ino()))
    }
    #[cfg(not(unix))]
    {
        let _ = meta;
        None
    }
}

/// What a writer of a file asks before each write: whether some live [`Archive`] maps
/// that file (the same device and inode). It must not write while one does: see
/// [`Archive::unmap`]. The file's identity is taken once, so asking costs a lock.
#[derive(Debug, Clone, Copy)]
pub struct MappedCheck(Option<(u64, u64)>);

impl MappedCheck {
    pub fn new(file: &File) -> MappedCheck {
        MappedCheck(file_id(file))
    }

    /// Whether some live [`Archive`] maps the file now.
    pub fn is_mapped(&self) -> bool {
        self.0.is_some_and(|id| mapped_files().contains(&id))
    }
}

/// The local header repeats the name, method, flags and (without a data descriptor) the
/// CRC-32 and sizes of the central record; they must agree. Readers that walk local
/// headers (streaming unzip, some restore tools) would otherwise see another archive
/// than the one verified. Checked when an entry is read, so its header is there to read.
fn check_local_header(header: &[u8], entry: &Entry) -> Result<(), EntryError> {
    let field = |off: usize, n: usize| -> u64 {
        header[off..off + n]
            .iter()
            .rev()
            .fold(0u64, |v, &x| (v << 8) | u64::from(x))
    };
    let name_len = field(26, 2) as usize;
    let name = header
        .get(30..30 + name_len)
        .ok_or(EntryError::BadLocalHeader(entry.header_offset))?;
    let mismatch = |what| Err(EntryError::LocalHeaderMismatch(what));
    if name != entry.raw_name.as_slice() {
        return mismatch("name");
    }
    let method = match entry.method {
        Method::Stored => 0,
        Method::Deflated => 8,
        Method::Other(m) => m,
    };
    if field(8, 2) != u64::from(method) {
        return mismatch("compression method");
    }
    let flags = field(6, 2);
    if (flags & 1 != 0) != entry.encrypted {
        return mismatch("encryption");
    }
    if flags & 8 == 0 {
        if field(14, 4) != u64::from(entry.crc32) {
            return mismatch("CRC-32");
        }
        // 0xFFFFFFFF: the size is in the local zip64 extra field.
        let (csize, usize) = (field(18, 4), field(22, 4));
        if (csize != 0xFFFF_FFFF && csize != entry.compressed_size)
            || (usize != 0xFFFF_FFFF && usize != entry.size)
        {
            return mismatch("size");
        }
    }
    Ok(())
}

/// The signature of a local file header, which starts every entry in stream order.
pub const LOCAL_HEADER: &[u8; 4] = LOCAL_HEADER_SIGNATURE;
/// The fixed part of a local file header, before its name and extra field.
pub const LOCAL_HEADER_LEN: usize = 30;

/// An entry as its local file header describes it, read in stream order (a download
/// from a server without range support, whose zip directory comes last): `fetch`
/// verifies entries as they arrive from these, and the directory, once it has arrived,
/// decides which of those verifications stand (`verify::follow`). Apple's IPSWs repeat
/// every directory field in the local header; a header that disagrees is simply not the
/// entry the directory describes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalHeader {
    /// The entry with the header's name, method, flags, CRC-32 and sizes, at its offset
    /// (`is_dir` from the name alone: the mode bits are only in the directory).
    pub entry: Entry,
    /// Where the entry's data starts.
    pub data_start: u64,
    /// Flag bit 3: the CRC-32 and sizes follow the data in a data descriptor (the
    /// header's are zero), so where the data ends is not known from the header.
    pub descriptor: bool,
    /// The sizes came from a zip64 extra field (a data descriptor then has 8-byte sizes).
    pub zip64: bool,
}

impl LocalHeader {
    /// The name and extra-field lengths of the header whose fixed part is `fixed`.
    pub fn tail_len(fixed: &[u8; LOCAL_HEADER_LEN]) -> (usize, usize) {
        (
            u16::from_le_bytes([fixed[26], fixed[27]]) as usize,
            u16::from_le_bytes([fixed[28], fixed[29]]) as usize,
        )
    }

    /// The header at `offset`: its fixed part and the `name`/`extra` that follow (of the
    /// lengths [`LocalHeader::tail_len`] gave). `None` when it is not a local header.
    pub fn parse(
        offset: u64,
        fixed: &[u8; LOCAL_HEADER_LEN],
        name: &[u8],
        extra: &[u8],
    ) -> Option<LocalHeader> {
        if &fixed[..4] != LOCAL_HEADER_SIGNATURE {
            return None;
        }
        let u16_at = |at: usize| u16::from_le_bytes([fixed[at], fixed[at + 1]]);
        let u32_at = |at: usize| u32::from_le_bytes(fixed[at..at + 4].try_into().expect("4 bytes"));
        let flags = u16_at(6);
        let method = match u16_at(8) {
            0 => Method::Stored,
            8 => Method::Deflated,
            m => Method::Other(m),
        };
        let mut compressed_size = u64::from(u32_at(18));
        let mut size = u64::from(u32_at(22));
        let mut zip64 = false;
        // The zip64 extra field holds the sizes whose 32-bit fields are all ones, the
        // uncompressed one first (APPNOTE 4.5.3).
        let mut at = 0;
        while let Some(head) = extra.get(at..at + 4) {
            let id = u16::from_le_bytes([head[0], head[1]]);
            let len = u16::from_le_bytes([head[2], head[3]]) as usize;
            let Some(data) = extra.get(at + 4..at + 4 + len) else {
                break;
            };
            if id == 0x0001 {
                zip64 = true;
                let mut fields = data
                    .chunks_exact(8)
                    .map(|c| u64::from_le_bytes(c.try_into().expect("8 bytes")));
                if size == 0xFFFF_FFFF {
                    size = fields.next().unwrap_or(size);
                }
                if compressed_size == 0xFFFF_FFFF {
                    compressed_size = fields.next().unwrap_or(compressed_size);
                }
            }
            at += 4 + len;
        }
        let data_start =
            offset.checked_add((LOCAL_HEADER_LEN + name.len() + extra.len()) as u64)?;
        Some(LocalHeader {
            entry: Entry {
                name: String::from_utf8_lossy(name).into_owned(),
                raw_name: name.to_vec(),
                method,
                compressed_size,
                size,
                crc32: u32_at(14),
                header_offset: offset,
                encrypted: flags & 1 != 0,
                // As the `zip` crate decides from a name (`unzip` makes a directory).
                is_dir: matches!(name.last(), Some(b'/' | b'\\')),
            },
            data_start,
            descriptor: flags & 8 != 0,
            zip64,
        })
    }

    /// Complete a header with a data descriptor from the bytes that follow its data
    /// (`after`, up to 24 of them), once the data was found to be `compressed` bytes
    /// long: the descriptor's CRC-32 and sizes go into the entry; returns the
    /// descriptor's length. `None` when no reading of `after` (with or without its
    /// optional signature, 4- or 8-byte sizes) gives that compressed size.
    pub fn complete_with_descriptor(&mut self, after: &[u8], compressed: u64) -> Option<u64> {
        let read = |at: usize, n: usize| -> Option<u64> {
            let b = after.get(at..at + n)?;
            Some(b.iter().rev().fold(0u64, |v, &x| (v << 8) | u64::from(x)))
        };
        let signed = after.get(..4) == Some(b"PK\x07\x08");
        let mut readings = Vec::new();
        for start in [if signed { Some(4) } else { None }, Some(0)]
            .into_iter()
            .flatten()
        {
            for width in if self.zip64 { [8, 4] } else { [4, 8] } {
                readings.push((start, width));
            }
        }
        for (start, width) in readings {
            let (Some(crc), Some(csize), Some(usize_)) = (
                read(start, 4),
                read(start + 4, width),
                read(start + 4 + width, width),
            ) else {
                continue;
            };
            if csize == compressed {
                self.entry.crc32 = crc as u32;
                self.entry.compressed_size = csize;
                self.entry.size = usize_;
                return Some((start + 4 + 2 * width) as u64);
            }
        }
        None
    }
}

/// One chunk from [`EntryStream::next_into`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Chunk<'a> {
    /// A stored entry's next bytes: a slice of the mapping (the buffer is untouched).
    Mapped(&'a [u8]),
    /// A deflated entry's next bytes: the first `n` bytes of the buffer.
    Inflated(usize),
}

/// The raw bytes of an entry read from a file with `pread` ([`EntryStream::from_file`]).
struct FileInput<'a> {
    file: &'a File,
    /// Set when the file is still being written ([`Archive::growing`]).
    watermark: Option<&'a Watermark>,
    /// Offset of the entry's raw data in the file.
    start: u64,
    /// Raw bytes `window_at..window_at + window.len()` of the entry (deflated entries).
    window: Vec<u8>,
    window_at: usize,
}

/// The raw bytes of a deflated entry read into memory at a time.
const INPUT_WINDOW: usize = 256 << 10;

impl FileInput<'_> {
    /// Fill `out` with the entry's raw bytes from `pos` on.
    fn read(&self, pos: usize, out: &mut [u8]) -> Result<(), EntryError> {
        pread_in_place(self.file, out, self.start + pos as u64, self.watermark).map_err(|e| match e
            .kind()
        {
            // The download ended before these bytes arrived.
            _ if is_not_written(&e) => EntryError::Cancelled,
            // The file got shorter than its directory says since it was opened.
            io::ErrorKind::UnexpectedEof => EntryError::OutOfBounds,
            _ => EntryError::Unreadable(e.to_string()),
        })
    }

    /// The raw bytes from `pos` on (of `len`), at most [`INPUT_WINDOW`] of them: the
    /// window read before when it still has bytes from `pos` on and `reread` is false,
    /// else a new one read from `pos`.
    fn window(&mut self, pos: usize, len: usize, reread: bool) -> Result<&[u8], EntryError> {
        let end = self.window_at + self.window.len();
        if reread || pos < self.window_at || pos >= end {
            let n = (len - pos).min(INPUT_WINDOW);
            let mut window = std::mem::take(&mut self.window);
            window.resize(n, 0);
            self.read(pos, &mut window)?;
            self.window = window;
            self.window_at = pos;
        }
        Ok(&self.window[pos - self.window_at..])
    }
}

/// The uncompressed bytes of one entry, chunk by chunk, with CRC-32 and size checked.
///
/// Stored entries are handed out as slices of the mapping (no copy); deflated entries
/// are inflated into a 256 KiB buffer. After the last chunk the stream compares what it
/// produced with the directory's size and CRC, and reports any difference as an error.
///
/// A stream over an unmapped file ([`Archive::unmap`], [`EntryStream::from_file`])
/// reads the raw bytes with `pread` instead: stored chunks are copied into the buffer,
/// and a deflated entry's input is read a window at a time.
pub struct EntryStream<'a> {
    /// The raw bytes, in the mapping (empty when read from a file).
    input: &'a [u8],
    /// The raw bytes, read from a file with `pread` (`None`: in the mapping).
    file: Option<FileInput<'a>>,
    /// Length of the raw bytes.
    len: usize,
    pos: usize,
    inflater: Option<Box<Decompress>>,
    /// The deflate stream has signalled its end.
    inflate_ended: bool,
    out: Vec<u8>,
    declared: u64,
    produced: u64,
    expected_crc: u32,
    crc: crc32fast::Hasher,
    /// The chunk of a mapped stored entry whose CRC-32 is still owed: it is taken when the
    /// next chunk is asked for, after the caller has hashed this one. The caller's SHA
    /// pass is the first to touch the bytes and pays for bringing them into the cache;
    /// the CRC then reads them from there. Taken first, the CRC-32 of a stored 2 GiB
    /// image was a fifth of its SHA-384 time on the critical thread (BENCHMARKS.md,
    /// modern-x3); after it, a few per cent.
    crc_behind: Range<usize>,
    done: bool,
    /// Leftover of the current chunk for the `Read` impl.
    pending: Range<usize>,
    pending_stored: bool,
}

impl<'a> EntryStream<'a> {
    pub fn new(bytes: &'a [u8], entry: &'a Entry) -> Result<Self, EntryError> {
        if entry.encrypted {
            return Err(EntryError::Encrypted);
        }
        let range = raw_range(bytes, entry)?;
        check_local_header(&bytes[entry.header_offset as usize..], entry)?;
        Self::over(&bytes[range], entry)
    }

    /// A stream over `entry` of `file` (of `file_len` bytes), read with `pread`: for a
    /// file that must not be mapped ([`Archive::unmap`]).
    pub fn from_file(file: &'a File, file_len: u64, entry: &'a Entry) -> Result<Self, EntryError> {
        Self::from_growing_file(file, file_len, entry, None)
    }

    /// [`EntryStream::from_file`] for a file still being written ([`Archive::growing`]):
    /// every read waits until `watermark` says its bytes are in place.
    fn from_growing_file(
        file: &'a File,
        file_len: u64,
        entry: &'a Entry,
        watermark: Option<&'a Watermark>,
    ) -> Result<Self, EntryError> {
        if entry.encrypted {
            return Err(EntryError::Encrypted);
        }
        let (range, header) = read_local_header(file, file_len, entry, true, watermark)?;
        check_local_header(&header, entry)?;
        let mut stream = Self::over(&[], entry)?;
        stream.len = range.len();
        stream.file = Some(FileInput {
            file,
            watermark,
            start: range.start as u64,
            window: Vec::new(),
            window_at: 0,
        });
        Ok(stream)
    }

    /// The stream of `entry` over `input`, once its local header has been checked.
    fn over(input: &'a [u8], entry: &'a Entry) -> Result<Self, EntryError> {
        let inflater = match entry.method {
            Method::Stored => {
                if entry.compressed_size != entry.size {
                    return Err(EntryError::ShorterThanDeclared {
                        declared: entry.size,
                        actual: entry.compressed_size,
                    });
                }
                None
            }
            Method::Deflated => Some(Box::new(Decompress::new(false))),
            Method::Other(m) => return Err(EntryError::UnsupportedMethod(m)),
        };
        Ok(EntryStream {
            input,
            file: None,
            len: input.len(),
            pos: 0,
            inflater,
            inflate_ended: false,
            // Allocated on the first `next_chunk`: `next_into` callers bring their own.
            out: Vec::new(),
            declared: entry.size,
            produced: 0,
            expected_crc: entry.crc32,
            crc: crc32fast::Hasher::new(),
            crc_behind: 0..0,
            done: false,
            pending: 0..0,
            pending_stored: false,
        })
    }

    /// Raw (compressed) bytes consumed so far: the unit of progress.
    pub fn consumed(&self) -> u64 {
        self.pos as u64
    }

    /// Bytes of uncompressed output so far.
    pub fn produced(&self) -> u64 {
        self.produced
    }

    /// Whether the entry is stored and mapped: [`EntryStream::next_into`] then hands out
    /// slices of the mapping and never writes to its buffer.
    pub fn is_stored(&self) -> bool {
        self.inflater.is_none() && self.file.is_none()
    }

    /// Like [`EntryStream::next_chunk`], but a deflated entry is inflated into `buf`
    /// (which must not be empty) instead of the stream's own buffer, and a stored
    /// entry's chunk borrows the mapping for `'a` rather than the stream. This lets the
    /// bytes be handed to another thread while the stream goes on (the pipelined
    /// verification of a large entry, `verify::pipeline`), with no copy.
    pub fn next_into(&mut self, buf: &mut [u8]) -> Result<Option<Chunk<'a>>, EntryError> {
        if self.done {
            return Ok(None);
        }
        assert!(
            self.is_stored() || !buf.is_empty(),
            "next_into needs a buffer to inflate into"
        );
        let input: &'a [u8] = self.input;
        Ok(self.advance_into(buf)?.map(|(start, end, stored)| {
            if stored {
                Chunk::Mapped(&input[start..end])
            } else {
                Chunk::Inflated(end)
            }
        }))
    }

    /// The next chunk of uncompressed bytes; `Ok(None)` once the entry ended and its
    /// size and CRC-32 agreed with the central directory.
    pub fn next_chunk(&mut self) -> Result<Option<&[u8]>, EntryError> {
        if self.done {
            return Ok(None);
        }
        let (start, end, stored) = match self.advance()? {
            Some(r) => r,
            None => return Ok(None),
        };
        Ok(Some(if stored {
            &self.input[start..end]
        } else {
            &self.out[start..end]
        }))
    }

    /// Produce the next chunk; returns its range in `input` (stored) or `out` (deflated).
    fn advance(&mut self) -> Result<Option<(usize, usize, bool)>, EntryError> {
        if self.out.is_empty() && self.inflater.is_some() {
            self.out = vec![0; INFLATE_CHUNK];
        } else if self.out.is_empty() && self.file.is_some() {
            // A stored entry read from a file: chunks of the size a mapped one gets.
            self.out = vec![0; STORED_CHUNK];
        }
        let mut out = std::mem::take(&mut self.out);
        let result = self.advance_into(&mut out);
        self.out = out;
        result
    }

    /// Produce the next chunk into `out` (deflated); returns its range in `input`
    /// (stored) or `out` (deflated, always from 0).
    fn advance_into(&mut self, out: &mut [u8]) -> Result<Option<(usize, usize, bool)>, EntryError> {
        let result = match self.inflater.as_mut() {
            None if self.pos == self.len => None,
            None if self.file.is_some() => {
                let n = (self.len - self.pos).min(STORED_CHUNK).min(out.len());
                let file = self.file.as_ref().expect("checked above");
                file.read(self.pos, &mut out[..n])?;
                self.pos += n;
                self.crc.update(&out[..n]);
                Some((0, n, false))
            }
            None => {
                let end = (self.pos + STORED_CHUNK).min(self.len);
                let start = self.pos;
                self.pos = end;
                let behind = std::mem::replace(&mut self.crc_behind, start..end);
                self.crc.update(&self.input[behind]);
                Some((start, end, true))
            }
            Some(_) if self.inflate_ended => None,
            Some(inflater) => {
                let mut produced_now = 0usize;
                let mut ended = false;
                let mut refilled = false;
                while produced_now == 0 && !ended {
                    let in_before = inflater.total_in();
                    let out_before = inflater.total_out();
                    let input = match self.file.as_mut() {
                        None => &self.input[self.pos..],
                        Some(file) => file.window(self.pos, self.len, refilled)?,
                    };
                    let whole_rest = input.len() == self.len - self.pos;
                    let status = inflater
                        .decompress(input, out, FlushDecompress::None)
                        .map_err(|e| EntryError::Inflate(e.to_string()))?;
                    let consumed = (inflater.total_in() - in_before) as usize;
                    produced_now = (inflater.total_out() - out_before) as usize;
                    self.pos += consumed;
                    if consumed > 0 {
                        refilled = false;
                    }
                    match status {
                        Status::StreamEnd if self.pos < self.len => {
                            // The directory's compressed size is not this stream's.
                            return Err(EntryError::Inflate(format!(
                                "the deflate stream ends {} bytes before the compressed size the directory declares",
                                self.len - self.pos
                            )));
                        }
                        Status::StreamEnd => ended = true,
                        Status::Ok | Status::BufError => {
                            if consumed == 0 && produced_now == 0 && !whole_rest && !refilled {
                                // A window read from a file: read it again from here.
                                refilled = true;
                            } else if consumed == 0 && produced_now == 0 {
                                // No progress possible: the input ran out mid-stream.
                                return Err(EntryError::Inflate(
                                    "the deflate stream is cut short".into(),
                                ));
                            }
                        }
                    }
                }
                self.inflate_ended = ended;
                (produced_now > 0).then(|| {
                    self.crc.update(&out[..produced_now]);
                    (0, produced_now, false)
                })
            }
        };
        match result {
            Some((start, end, stored)) => {
                self.produced += (end - start) as u64;
                if self.produced > self.declared {
                    self.done = true;
                    return Err(EntryError::LargerThanDeclared(self.declared));
                }
                Ok(Some((start, end, stored)))
            }
            None => {
                self.done = true;
                let behind = std::mem::replace(&mut self.crc_behind, 0..0);
                self.crc.update(&self.input[behind]);
                if self.produced < self.declared {
                    return Err(EntryError::ShorterThanDeclared {
                        declared: self.declared,
                        actual: self.produced,
                    });
                }
                let actual = self.crc.clone().finalize();
                if actual != self.expected_crc {
                    return Err(EntryError::Crc {
                        expected: self.expected_crc,
                        actual,
                    });
                }
                Ok(None)
            }
        }
    }

    /// Bytes produced for the [`Read`] impl but not yet read out; taking them lets a
    /// caller switch from `read` back to [`EntryStream::next_chunk`] without losing any.
    pub fn take_pending(&mut self) -> &[u8] {
        let range = std::mem::replace(&mut self.pending, 0..0);
        if self.pending_stored {
            &self.input[range]
        } else {
            &self.out[range]
        }
    }

    /// Read and discard the rest of the entry, so its size and CRC get checked.
    pub fn drain(&mut self) -> Result<(), EntryError> {
        self.pending = 0..0;
        while self.next_chunk()?.is_some() {}
        Ok(())
    }
}

impl Read for EntryStream<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.pending.is_empty() {
            match self.advance().map_err(io::Error::other)? {
                Some((start, end, stored)) => {
                    self.pending = start..end;
                    self.pending_stored = stored;
                }
                None => return Ok(0),
            }
        }
        let src = if self.pending_stored {
            &self.input[self.pending.clone()]
        } else {
            &self.out[self.pending.clone()]
        };
        let n = src.len().min(buf.len());
        buf[..n].copy_from_slice(&src[..n]);
        self.pending.start += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every entry read back whole, or the error that ended it.
    fn read_all(archive: &Archive) -> Vec<Result<Vec<u8>, EntryError>> {
        archive
            .entries()
            .iter()
            .map(|e| {
                let mut stream = archive.stream(e)?;
                let mut out = Vec::new();
                while let Some(chunk) = stream.next_chunk()? {
                    out.extend_from_slice(chunk);
                }
                Ok(out)
            })
            .collect()
    }

    /// Read with `pread` (an unmapped archive: a download being verified) or through the
    /// mapping, an archive gives the same bytes and the same damage — here with deflated
    /// entries far larger than the input window and a stored one larger than a chunk.
    #[test]
    fn an_unmapped_archive_reads_as_the_mapped_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bench.ipsw");
        let layout = ipswcheck_fixture::IpswSpec {
            ramdisk_method: ipswcheck_fixture::Method::Stored,
            ..ipswcheck_fixture::IpswSpec::benchmark(0.012)
        }
        .build(&path)
        .unwrap();
        let stored = layout.component_entry(0, "RestoreRamDisk").unwrap();
        assert!(stored.compressed_size > STORED_CHUNK as u64, "{stored:?}");
        let stored = stored.name.clone();
        let deflated = Archive::open(&path)
            .unwrap()
            .entries()
            .iter()
            .filter(|e| e.method == Method::Deflated)
            .map(|e| e.compressed_size)
            .max()
            .unwrap();
        assert!(deflated > 4 * INPUT_WINDOW as u64, "{deflated}");
        for damaged in [false, true] {
            if damaged {
                // One byte of the stored ramdisk, one in the middle of the largest
                // deflated entry (the OS image).
                let mut bytes = std::fs::read(&path).unwrap();
                let archive = Archive::open(&path).unwrap();
                for e in archive.entries().iter().filter(|e| {
                    e.name == stored
                        || (e.method == Method::Deflated && e.compressed_size == deflated)
                }) {
                    let range = archive.raw_range(e).unwrap();
                    bytes[range.start + range.len() / 2] ^= 0x55;
                }
                std::fs::write(&path, bytes).unwrap();
            }
            let mapped = Archive::open(&path).unwrap();
            let mut unmapped = Archive::open(&path).unwrap();
            let check = MappedCheck::new(&File::open(&path).unwrap());
            assert!(check.is_mapped());
            unmapped.unmap();
            assert!(unmapped.bytes().is_empty());
            let want = read_all(&mapped);
            assert_eq!(
                want.iter().filter(|r| r.is_err()).count(),
                usize::from(damaged) * 2
            );
            assert_eq!(read_all(&unmapped), want);
            for e in mapped.entries() {
                assert_eq!(unmapped.raw_range(e), mapped.raw_range(e));
            }
            let (mut a, mut b) = (vec![0; 1000], vec![0; 1000]);
            mapped.read_exact_at(&mut a, mapped.len() - 1000).unwrap();
            unmapped.read_exact_at(&mut b, mapped.len() - 1000).unwrap();
            assert_eq!(a, b);
            assert!(unmapped.read_exact_at(&mut b, mapped.len() - 999).is_err());
            drop(mapped);
            // The unmapped archive holds the file open but maps nothing.
            assert!(!check.is_mapped());
        }
    }

    /// The registry a writer asks ([`MappedCheck`]) counts every live mapping of a file.
    #[test]
    fn the_registry_knows_which_files_are_mapped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sample.ipsw");
        ipswcheck_fixture::IpswSpec::sample().build(&path).unwrap();
        let other = dir.path().join("other.ipsw");
        std::fs::copy(&path, &other).unwrap();
        let check = MappedCheck::new(&File::open(&path).unwrap());
        assert!(!check.is_mapped());
        let first = Archive::open(&path).unwrap();
        let second = Archive::open(&path).unwrap();
        let _elsewhere = Archive::open(&other).unwrap();
        assert!(check.is_mapped());
        drop(first);
        assert!(check.is_mapped(), "the second mapping is still alive");
        let mut second = second;
        second.unmap();
        assert!(!check.is_mapped());
        // An archive from bytes maps no file.
        let _copy = Archive::from_bytes("copy", &std::fs::read(&path).unwrap()).unwrap();
        assert!(!check.is_mapped());
    }

    /// A fault past the file's end is a file that shrank; a fault at a page that is
    /// inside the file (here: cut, read, then grown back, as a page the disk failed to
    /// deliver looks) is an I/O error. Either way the check is told.
    #[test]
    fn a_fault_is_told_apart_as_shrinking_or_an_io_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sample.ipsw");
        ipswcheck_fixture::IpswSpec::sample().build(&path).unwrap();
        let len = std::fs::metadata(&path).unwrap().len();
        let file = || std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        let archive = Archive::open(&path).unwrap();
        assert_eq!(archive.changed(), None);
        file().set_len(4096).unwrap();
        assert_eq!(archive.bytes()[len as usize / 2], 0);
        assert_eq!(
            archive.changed().as_deref(),
            Some("it shrank while it was being read")
        );
        assert_eq!(archive.read_error(), None);
        file().set_len(len).unwrap();
        let why = archive.read_error().unwrap();
        assert!(
            why.starts_with("reading it failed with an I/O error at offset"),
            "{why}"
        );
        assert_ne!(
            archive.changed().as_deref(),
            Some("it shrank while it was being read")
        );
    }

    #[test]
    fn the_path_must_still_name_the_file_opened() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sample.ipsw");
        ipswcheck_fixture::IpswSpec::sample().build(&path).unwrap();
        let archive = Archive::open(&path).unwrap();
        let other = dir.path().join("other.ipsw");
        std::fs::copy(&path, &other).unwrap();
        assert_eq!(archive.changed(), None);
        std::fs::rename(&other, &path).unwrap();
        let why = archive.changed().unwrap();
        assert!(why.contains("another file was put in its place"), "{why}");
    }

    #[test]
    fn lookups_are_by_exact_bytes_and_never_find_directories() {
        let entry = |raw: &[u8], is_dir: bool| Entry {
            name: String::from_utf8_lossy(raw).into_owned(),
            raw_name: raw.to_vec(),
            method: Method::Stored,
            compressed_size: 0,
            size: 0,
            crc32: 0,
            header_offset: 0,
            encrypted: false,
            is_dir,
        };
        let archive = Archive::from_directory(
            "x",
            0,
            vec![
                entry(b"iBSS\xff", false),
                entry(b"Firmware/", true),
                entry(b"LLB", false),
            ],
            false,
        );
        assert_eq!(archive.entry("iBSS\u{FFFD}"), None);
        assert_eq!(archive.index_of("Firmware/"), None);
        assert_eq!(archive.index_of("LLB"), Some(2));
        assert_eq!(archive.entries().len(), 3);
    }

    /// Local headers read in stream order: the fields, the zip64 sizes, a data
    /// descriptor's, and reads of a growing file that wait for their bytes.
    #[test]
    fn local_headers_are_read_in_stream_order() {
        let mut fixed = [0u8; LOCAL_HEADER_LEN];
        fixed[..4].copy_from_slice(LOCAL_HEADER);
        fixed[6] = 8; // a data descriptor follows
        fixed[8] = 8; // deflated
        fixed[14..18].copy_from_slice(&0x1234_5678u32.to_le_bytes());
        fixed[18..26].copy_from_slice(&[0xFF; 8]);
        let mut extra = vec![1, 0, 16, 0];
        extra.extend_from_slice(&5_000_000_000u64.to_le_bytes());
        extra.extend_from_slice(&7u64.to_le_bytes());
        let header = LocalHeader::parse(100, &fixed, b"dir/a.dmg", &extra).unwrap();
        assert_eq!(header.entry.size, 5_000_000_000);
        assert_eq!(header.entry.compressed_size, 7);
        assert_eq!(header.entry.method, Method::Deflated);
        assert_eq!(header.entry.crc32, 0x1234_5678);
        assert_eq!(header.data_start, 100 + 30 + 9 + 20);
        assert!(header.descriptor && header.zip64 && !header.entry.is_dir);
        // The descriptor's fields are taken where its compressed size is the one found.
        let mut header = header;
        let mut after = b"PK\x07\x08".to_vec();
        after.extend_from_slice(&0xAABB_CCDDu32.to_le_bytes());
        after.extend_from_slice(&42u64.to_le_bytes());
        after.extend_from_slice(&99u64.to_le_bytes());
        assert_eq!(header.complete_with_descriptor(&after, 41), None);
        assert_eq!(header.complete_with_descriptor(&after, 42), Some(24));
        assert_eq!(
            (
                header.entry.crc32,
                header.entry.compressed_size,
                header.entry.size
            ),
            (0xAABB_CCDD, 42, 99)
        );
        fixed[0] = b'X';
        assert_eq!(LocalHeader::parse(0, &fixed, b"", &[]), None);

        // A growing file: a read waits for its bytes, and fails once none will come.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("part");
        std::fs::write(&path, b"").unwrap();
        let watermark = Arc::new(Watermark::new());
        let archive = Archive::growing(
            &path,
            File::open(&path).unwrap(),
            u64::MAX,
            Arc::clone(&watermark),
        );
        std::thread::scope(|s| {
            let reader = s.spawn(|| {
                let mut buf = [0u8; 4];
                archive.read_exact_at(&mut buf, 2).map(|()| buf)
            });
            std::thread::sleep(std::time::Duration::from_millis(50));
            let mut out = std::fs::OpenOptions::new()
                .append(true)
                .open(&path)
                .unwrap();
            io::Write::write_all(&mut out, b"abcdef").unwrap();
            watermark.advance(6);
            assert_eq!(reader.join().unwrap().unwrap(), *b"cdef");
        });
        watermark.close();
        let mut buf = [0u8; 4];
        let e = archive.read_exact_at(&mut buf, 4).unwrap_err();
        assert!(is_not_written(&e), "{e}");
        assert_eq!(watermark.wait_past(4), 2);
        assert_eq!(watermark.wait_past(6), 0);
    }

    #[test]
    fn triage_tells_truncated_from_not_a_zip() {
        assert!(matches!(
            triage(b"PK\x03\x04 and then nothing"),
            Err(ArchiveError::Truncated)
        ));
        assert!(matches!(triage(b"hello world"), Err(ArchiveError::NotAZip)));
        let mut empty_zip = b"PK\x05\x06".to_vec();
        empty_zip.extend_from_slice(&[0; 18]);
        assert!(triage(&empty_zip).is_ok());
        // A stray signature whose comment length does not reach the end is not an end record.
        let mut stray = b"PK\x03\x04xxxxPK\x05\x06".to_vec();
        stray.extend_from_slice(&[0; 16]);
        stray.extend_from_slice(&[9, 0]);
        stray.extend_from_slice(b"abc");
        assert!(matches!(triage(&stray), Err(ArchiveError::Truncated)));
    }
}
