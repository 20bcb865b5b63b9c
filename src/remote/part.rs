//! The files `fetch` writes — `FILE.part`, its sidecar `FILE.part.json` (and that one's
//! temporary), the published `FILE` and `FILE.failed` — created and replaced so that a
//! symbolic or hard link placed at any of those names (beforehand, or racing the
//! download) can never make `fetch` write into, truncate or replace another file.
//!
//! The rules, each the root of one way it went wrong before:
//! - a new file is created with `O_CREAT|O_EXCL|O_NOFOLLOW`: whatever is at the name,
//!   a dangling link included, makes the creation fail instead of being followed;
//! - an existing `FILE.part` is opened with `O_NOFOLLOW` and refused when it is not a
//!   regular file, has more than one name (a hard link to a file of the user's would
//!   be written through), or belongs to someone else;
//! - a file is replaced (the sidecar) by writing a fresh temporary and renaming it over
//!   the name: `rename` replaces a link itself, never its target;
//! - a file is published from the descriptor that was written (`linkat` of
//!   `/proc/self/fd/N`), so a `FILE.part` swapped after the check cannot be published
//!   in its place, and never over an existing name (`linkat` and
//!   `renameat2(RENAME_NOREPLACE)` fail on an existing name, links included);
//! - a name is only removed while it still is the file this run wrote.

use std::fs::{File, Metadata, OpenOptions};
use std::io::{self, Write};
use std::path::Path;

/// Why an existing `FILE.part` is not used (the caller names the file).
#[derive(Debug)]
pub(super) enum Refusal {
    /// A symbolic link, a FIFO, a directory…: `fetch` only writes regular files.
    NotRegular(&'static str),
    /// More than one name: writing it would change the file behind the other names.
    Linked(u64),
    /// Owned by another user.
    OtherOwner,
    Io(io::Error),
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::NotRegular(what) => write!(f, "is {what}, not a file fetch wrote"),
            Refusal::Linked(n) => write!(
                f,
                "has {n} names (hard links): writing it would change another file"
            ),
            Refusal::OtherOwner => write!(f, "belongs to another user"),
            Refusal::Io(e) => write!(f, "{e}"),
        }
    }
}

#[cfg(unix)]
fn flags(options: &mut OpenOptions, extra: i32) {
    use std::os::unix::fs::OpenOptionsExt;
    options.custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC | extra);
}

#[cfg(not(unix))]
fn flags(_options: &mut OpenOptions, _extra: i32) {}

/// Create `path` for reading and writing; fails if anything (a link too) is there.
pub(super) fn create_new(path: &Path) -> io::Result<File> {
    let mut options = OpenOptions::new();
    options.read(true).write(true).create_new(true);
    flags(&mut options, 0);
    options.open(path)
}

/// Open an existing `FILE.part` for reading and writing, refusing anything but a
/// regular file of ours with a single name.
pub(super) fn open_existing(path: &Path) -> Result<File, Refusal> {
    let mut options = OpenOptions::new();
    options.read(true).write(true);
    #[cfg(unix)]
    flags(&mut options, libc::O_NONBLOCK | libc::O_NOCTTY);
    let file = match options.open(path) {
        Ok(f) => f,
        #[cfg(unix)]
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
            return Err(Refusal::NotRegular("a symbolic link"))
        }
        Err(e) if e.kind() == io::ErrorKind::IsADirectory => {
            return Err(Refusal::NotRegular("a directory"))
        }
        Err(e) => return Err(Refusal::Io(e)),
    };
    let meta = file.metadata().map_err(Refusal::Io)?;
    if !meta.is_file() {
        return Err(Refusal::NotRegular("not a regular file"));
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        if meta.nlink() > 1 {
            return Err(Refusal::Linked(meta.nlink()));
        }
        // SAFETY: geteuid has no preconditions and cannot fail.
        if meta.uid() != unsafe { libc::geteuid() } {
            return Err(Refusal::OtherOwner);
        }
        // Only opening had to be non-blocking; reads and writes block as usual.
        use std::os::unix::io::AsRawFd;
        // SAFETY: fcntl on a descriptor we own; no memory is involved.
        unsafe {
            let fl = libc::fcntl(file.as_raw_fd(), libc::F_GETFL);
            if fl >= 0 {
                libc::fcntl(file.as_raw_fd(), libc::F_SETFL, fl & !libc::O_NONBLOCK);
            }
        }
    }
    Ok(file)
}

/// (device, inode) of a file: what binds a sidecar to its `FILE.part`.
pub(super) fn identity(meta: &Metadata) -> (u64, u64) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        (meta.dev(), meta.ino())
    }
    #[cfg(not(unix))]
    {
        let _ = meta;
        (0, 0)
    }
}

/// Whether the name `path` (not followed) is the file `file` is open on.
pub(super) fn is_same(path: &Path, file: &File) -> bool {
    match (std::fs::symlink_metadata(path), file.metadata()) {
        (Ok(a), Ok(b)) => a.is_file() && identity(&a) == identity(&b),
        _ => false,
    }
}

/// Remove `path` only if it still is the file `file` is open on.
pub(super) fn remove_if_same(path: &Path, file: &File) {
    if is_same(path, file) {
        let _ = std::fs::remove_file(path);
    }
}

/// A path that opens the very file `file` is open on (`/proc/self/fd/N` where the
/// system has it, else `path`): what `fetch` verifies must be the file it wrote and will
/// publish, even if `FILE.part` is swapped for a link to another file meanwhile.
pub(super) fn through_descriptor(file: &File, path: &Path) -> std::path::PathBuf {
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::io::AsRawFd;
        let proc_path = std::path::PathBuf::from(format!("/proc/self/fd/{}", file.as_raw_fd()));
        if let (Ok(a), Ok(b)) = (std::fs::metadata(&proc_path), file.metadata()) {
            if identity(&a) == identity(&b) {
                return proc_path;
            }
        }
    }
    let _ = file;
    path.to_path_buf()
}

/// Put `bytes` at `path`: a fresh temporary `path.tmp` (created exclusively; a leftover
/// or a planted link there is removed as a name, never written through), then renamed
/// over `path`, which replaces whatever name was there without following it.
pub(super) fn write_replace(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let tmp = super::fetch::with_suffix(path, ".tmp");
    let mut file = match create_new(&tmp) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            std::fs::remove_file(&tmp)?;
            create_new(&tmp)?
        }
        Err(e) => return Err(e),
    };
    let written = file.write_all(bytes).and_then(|()| file.flush());
    if let Err(e) = written {
        remove_if_same(&tmp, &file);
        return Err(e);
    }
    // Renamed only if the temporary still is the file written (not swapped meanwhile).
    if !is_same(&tmp, &file) {
        return Err(io::Error::other(format!(
            "{} was replaced while it was written",
            tmp.display()
        )));
    }
    std::fs::rename(&tmp, path).inspect_err(|_| remove_if_same(&tmp, &file))
}

/// Give the file `file` (open on `from`) the name `to`, never replacing an existing
/// `to` (a dangling link counts as existing), then remove `from` if it still names it.
pub(super) fn publish(file: &File, from: &Path, to: &Path) -> io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::ffi::OsStrExt;
        use std::os::unix::io::AsRawFd;
        let proc_path = format!("/proc/self/fd/{}\0", file.as_raw_fd());
        let mut target = to.as_os_str().as_bytes().to_vec();
        target.push(0);
        if !target[..target.len() - 1].contains(&0) {
            // SAFETY: both paths are NUL-terminated byte strings that outlive the call.
            let status = unsafe {
                libc::linkat(
                    libc::AT_FDCWD,
                    proc_path.as_ptr().cast(),
                    libc::AT_FDCWD,
                    target.as_ptr().cast(),
                    libc::AT_SYMLINK_FOLLOW,
                )
            };
            if status == 0 {
                remove_if_same(from, file);
                return Ok(());
            }
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::AlreadyExists {
                return Err(e);
            }
            // No /proc, or a file system without hard links: the path-based ways below.
        }
    }
    if !is_same(from, file) {
        return Err(io::Error::other(format!(
            "{} was replaced during the download",
            from.display()
        )));
    }
    match std::fs::hard_link(from, to) {
        Ok(()) => {
            if !is_same(to, file) {
                // `from` was swapped between the look and the link: undo our name.
                let _ = std::fs::remove_file(to);
                return Err(io::Error::other(format!(
                    "{} was replaced during the download",
                    from.display()
                )));
            }
            remove_if_same(from, file);
            Ok(())
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Err(e),
        Err(_) => rename_noreplace(from, to),
    }
}

/// `rename(from, to)` that fails when `to` exists.
fn rename_noreplace(from: &Path, to: &Path) -> io::Result<()> {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        use std::os::unix::ffi::OsStrExt;
        let c =
            |p: &Path| std::ffi::CString::new(p.as_os_str().as_bytes()).map_err(io::Error::other);
        let (a, b) = (c(from)?, c(to)?);
        // SAFETY: both paths are NUL-terminated C strings that outlive the call.
        let status = unsafe {
            libc::renameat2(
                libc::AT_FDCWD,
                a.as_ptr(),
                libc::AT_FDCWD,
                b.as_ptr(),
                libc::RENAME_NOREPLACE,
            )
        };
        if status == 0 {
            return Ok(());
        }
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EINVAL) && e.raw_os_error() != Some(libc::ENOSYS) {
            return Err(e);
        }
    }
    // Last resort where the kernel offers neither: look, then rename (a tiny race).
    if std::fs::symlink_metadata(to).is_ok() {
        return Err(io::ErrorKind::AlreadyExists.into());
    }
    std::fs::rename(from, to)
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    #[test]
    fn links_are_never_written_through() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, b"precious").unwrap();
        let sym = dir.path().join("sym");
        std::os::unix::fs::symlink(&victim, &sym).unwrap();
        let hard = dir.path().join("hard");
        std::fs::hard_link(&victim, &hard).unwrap();

        assert!(create_new(&sym).is_err());
        assert!(matches!(open_existing(&sym), Err(Refusal::NotRegular(_))));
        assert!(matches!(open_existing(&hard), Err(Refusal::Linked(2))));
        // Replacing the link's name leaves the victim alone.
        write_replace(&sym, b"new").unwrap();
        assert_eq!(std::fs::read(&sym).unwrap(), b"new");
        std::os::unix::fs::symlink(&victim, dir.path().join("sym.tmp")).unwrap();
        write_replace(&sym, b"newer").unwrap();
        assert_eq!(std::fs::read(&victim).unwrap(), b"precious");

        // Publishing never replaces a name, not even a dangling link.
        let part = dir.path().join("part");
        let file = create_new(&part).unwrap();
        std::os::unix::fs::symlink(dir.path().join("nowhere"), dir.path().join("dest")).unwrap();
        assert!(publish(&file, &part, &dir.path().join("dest")).is_err());
        assert!(publish(&file, &part, &hard).is_err());
        publish(&file, &part, &dir.path().join("final")).unwrap();
        assert!(!part.exists() && dir.path().join("final").exists());
        assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
    }
}
