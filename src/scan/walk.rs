//! Finding the files of a library: a recursive walk that follows symbolic links, never
//! loops, never opens anything but regular files, and reports what it cannot read.
//!
//! - Directories are identified by (device, inode); one already entered is not entered
//!   again, so `lib/loop -> ..` or two links to one folder cost nothing and never hang.
//! - Files are identified the same way: a file reached by two paths (a symbolic or hard
//!   link) is checked once, under the first path found; the others are counted as
//!   aliases. Duplicates are copies with their own inode (see the scan summary).
//! - FIFOs, sockets and devices are counted and never opened (opening a FIFO for
//!   reading blocks until a writer appears).
//! - A folder or file inside the library that cannot be read is reported and skipped;
//!   a path the user gave that does not exist or cannot be read at all is an error
//!   ([`ScanError::Path`], exit 3) before anything is scanned.

use std::collections::{BTreeMap, HashSet};
use std::fs::{self, Metadata};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use serde::Serialize;

/// What identifies a file's content for the verified-results cache: where it lives
/// (device, inode) and what it looked like (size, modification time in nanoseconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
pub struct FileStat {
    pub dev: u64,
    pub ino: u64,
    pub size: u64,
    pub mtime_ns: i64,
}

impl FileStat {
    pub fn of(meta: &Metadata) -> FileStat {
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt;
            FileStat {
                dev: meta.dev(),
                ino: meta.ino(),
                size: meta.len(),
                mtime_ns: meta
                    .mtime()
                    .saturating_mul(1_000_000_000)
                    .saturating_add(meta.mtime_nsec()),
            }
        }
        #[cfg(not(unix))]
        {
            let mtime_ns = meta
                .modified()
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_nanos() as i64);
            FileStat {
                dev: 0,
                ino: 0,
                size: meta.len(),
                mtime_ns,
            }
        }
    }

    /// The file at `path` now (following links).
    pub fn now(path: &Path) -> io::Result<FileStat> {
        fs::metadata(path).map(|m| FileStat::of(&m))
    }
}

/// A regular file to look at.
#[derive(Debug, Clone)]
pub struct Candidate {
    pub path: PathBuf,
    pub stat: FileStat,
    /// Named on the command line (not found while walking a folder): such a file is
    /// always a row of the scan, whatever it holds.
    pub explicit: bool,
}

/// A path inside the library that could not be read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PathProblem {
    pub path: String,
    pub error: String,
}

/// A path the user gave that cannot be scanned at all.
#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    #[error("{path}: {message}")]
    Path { path: String, message: String },
}

/// Everything the walk found.
#[derive(Debug, Default)]
pub struct Walk {
    /// Regular files, each once.
    pub candidates: Vec<Candidate>,
    /// Things that are not files to check, by reason (never opened).
    pub skipped: BTreeMap<String, usize>,
    /// Folders and files that could not be read.
    pub unreadable: Vec<PathProblem>,
    /// Paths that lead to a file or folder already found by another path.
    pub aliases: usize,
    /// The walk was stopped by Ctrl-C.
    pub cancelled: bool,
}

fn describe(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::NotFound => "no such file or directory".into(),
        io::ErrorKind::PermissionDenied => "permission denied".into(),
        _ => e.to_string(),
    }
}

fn key(meta: &Metadata) -> (u64, u64) {
    let s = FileStat::of(meta);
    (s.dev, s.ino)
}

struct Walker {
    walk: Walk,
    dirs: HashSet<(u64, u64)>,
    files: HashSet<(u64, u64)>,
    stack: Vec<PathBuf>,
}

impl Walker {
    fn skip(&mut self, reason: &str) {
        *self.walk.skipped.entry(reason.to_owned()).or_default() += 1;
    }

    fn unreadable(&mut self, path: &Path, e: &io::Error) {
        self.walk.unreadable.push(PathProblem {
            path: path.display().to_string(),
            error: describe(e),
        });
    }

    /// Classify `path` (reached inside the library) by its target's metadata.
    fn visit(&mut self, path: PathBuf, explicit: bool) {
        let meta = match fs::metadata(&path) {
            Ok(m) => m,
            Err(e) => {
                if fs::symlink_metadata(&path).is_ok_and(|m| m.file_type().is_symlink()) {
                    self.skip("broken symbolic link");
                } else {
                    self.unreadable(&path, &e);
                }
                return;
            }
        };
        if meta.is_dir() {
            if self.dirs.insert(key(&meta)) {
                self.stack.push(path);
            } else {
                self.walk.aliases += 1;
            }
        } else if meta.is_file() {
            if self.files.insert(key(&meta)) {
                self.walk.candidates.push(Candidate {
                    path,
                    stat: FileStat::of(&meta),
                    explicit,
                });
            } else {
                self.walk.aliases += 1;
            }
        } else {
            self.skip("not a regular file (FIFO, socket or device)");
        }
    }

    fn read_dir(&mut self, dir: &Path) {
        let entries = match fs::read_dir(dir) {
            Ok(rd) => rd,
            Err(e) => return self.unreadable(dir, &e),
        };
        let mut paths = Vec::new();
        for entry in entries {
            match entry {
                Ok(entry) => paths.push(entry.path()),
                Err(e) => {
                    self.unreadable(dir, &e);
                    break;
                }
            }
        }
        // Depth first, in name order: the same library always gives the same order.
        paths.sort();
        for path in paths.into_iter().rev() {
            self.visit(path, false);
        }
    }
}

/// Walk `roots`. Fails (exit 3) when a root does not exist or cannot be read at all.
pub fn walk(roots: &[PathBuf], cancel: &AtomicBool) -> Result<Walk, ScanError> {
    let mut w = Walker {
        walk: Walk::default(),
        dirs: HashSet::new(),
        files: HashSet::new(),
        stack: Vec::new(),
    };
    // Every root is validated before any is walked: a typo fails in milliseconds, not
    // after an hour of hashing.
    let mut metas = Vec::new();
    for root in roots {
        let fail = |message: String| ScanError::Path {
            path: root.display().to_string(),
            message,
        };
        let meta = fs::metadata(root).map_err(|e| fail(describe(&e)))?;
        if meta.is_dir() {
            fs::read_dir(root).map_err(|e| fail(format!("cannot be read: {}", describe(&e))))?;
        } else if meta.is_file() {
            fs::File::open(root).map_err(|e| fail(format!("cannot be read: {}", describe(&e))))?;
        }
        metas.push(meta);
    }
    for (root, meta) in roots.iter().zip(metas) {
        if meta.is_dir() {
            if w.dirs.insert(key(&meta)) {
                w.stack.push(root.clone());
            } else {
                w.walk.aliases += 1;
            }
        } else {
            w.visit(root.clone(), true);
        }
        while let Some(dir) = w.stack.pop() {
            if cancel.load(Ordering::Relaxed) {
                w.walk.cancelled = true;
                return Ok(w.walk);
            }
            w.read_dir(&dir);
        }
    }
    Ok(w.walk)
}
