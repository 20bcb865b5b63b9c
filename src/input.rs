//! Safe reading of the small files a user names or the tool keeps: `--hosts-file`,
//! `--ca-file`, `scan --urls`, `fetch`'s sidecar, cache entries.
//!
//! Why a module of its own: any of those paths may turn out to be a FIFO (opening it for
//! reading blocks until a writer comes, possibly forever), a device (`/dev/zero` never
//! ends), a directory, or a file far larger than anything the tool would write there.
//! Checking the path with `stat` first and opening it afterwards leaves a window in
//! which it can be swapped; so the file is opened without blocking (`O_NONBLOCK`, a
//! no-op on regular files), the *opened* descriptor is examined with `fstat`, only a
//! regular file is accepted, and at most `cap` bytes (plus one, to tell "too large") are
//! ever read. Every refusal is a short reason the caller puts after the file's name.

use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

/// Why a file was not read. [`std::fmt::Display`] gives the reason alone ("is a FIFO,
/// not a regular file"); the caller names the file.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    #[error("no such file")]
    NotFound,
    #[error("permission denied")]
    PermissionDenied,
    #[error("is a directory, not a file")]
    Directory,
    #[error("is {0}, not a regular file")]
    NotRegular(&'static str),
    #[error("is larger than {}, more than such a file can hold", crate::render::human_bytes(*.cap))]
    TooLarge { cap: u64 },
    #[error("{0}")]
    Io(io::Error),
}

impl InputError {
    fn from_io(e: io::Error) -> Self {
        match e.kind() {
            io::ErrorKind::NotFound => InputError::NotFound,
            io::ErrorKind::PermissionDenied => InputError::PermissionDenied,
            _ => InputError::Io(e),
        }
    }

    /// The same reason as an [`io::Error`] (for callers whose errors are `io::Error`s;
    /// a missing file stays [`io::ErrorKind::NotFound`]).
    pub fn into_io(self) -> io::Error {
        match self {
            InputError::NotFound => io::ErrorKind::NotFound.into(),
            InputError::Io(e) => e,
            other => io::Error::new(io::ErrorKind::InvalidData, other.to_string()),
        }
    }
}

/// What a non-regular file is, in words.
fn kind_of(meta: &std::fs::Metadata) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        let t = meta.file_type();
        if t.is_fifo() {
            return "a FIFO";
        }
        if t.is_char_device() {
            return "a character device";
        }
        if t.is_block_device() {
            return "a block device";
        }
        if t.is_socket() {
            return "a socket";
        }
    }
    let _ = meta;
    "not a regular file"
}

/// Open `path` for reading as a regular file, without blocking on a FIFO and without
/// trusting an earlier `stat`: the descriptor itself is checked. `nofollow` also
/// refuses a symbolic link at `path` (for files the tool itself wrote).
pub fn open_regular(path: &Path, nofollow: bool) -> Result<File, InputError> {
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        let mut flags = libc::O_NONBLOCK | libc::O_NOCTTY;
        if nofollow {
            flags |= libc::O_NOFOLLOW;
        }
        options.custom_flags(flags);
    }
    let file = match options.open(path) {
        Ok(f) => f,
        #[cfg(unix)]
        Err(e) if nofollow && e.raw_os_error() == Some(libc::ELOOP) => {
            return Err(InputError::NotRegular("a symbolic link"))
        }
        Err(e) => return Err(InputError::from_io(e)),
    };
    let meta = file.metadata().map_err(InputError::from_io)?;
    if meta.is_dir() {
        return Err(InputError::Directory);
    }
    if !meta.is_file() {
        return Err(InputError::NotRegular(kind_of(&meta)));
    }
    Ok(file)
}

/// The bytes of `path`, a regular file of at most `cap` bytes (see the module
/// documentation for what is refused, and why).
pub fn read_bounded(path: &Path, cap: u64) -> Result<Vec<u8>, InputError> {
    read_file_bounded(open_regular(path, false)?, cap)
}

/// [`read_bounded`] refusing a symbolic link at `path` too: for the files the tool
/// wrote itself (sidecars, caches), where a link can only have been planted.
pub fn read_bounded_nofollow(path: &Path, cap: u64) -> Result<Vec<u8>, InputError> {
    read_file_bounded(open_regular(path, true)?, cap)
}

/// At most `cap` bytes of an opened regular file.
pub fn read_file_bounded(file: File, cap: u64) -> Result<Vec<u8>, InputError> {
    let len = file.metadata().map_err(InputError::from_io)?.len();
    if len > cap {
        return Err(InputError::TooLarge { cap });
    }
    let mut bytes = Vec::with_capacity(len as usize);
    file.take(cap + 1)
        .read_to_end(&mut bytes)
        .map_err(InputError::from_io)?;
    if bytes.len() as u64 > cap {
        return Err(InputError::TooLarge { cap });
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_small_regular_files_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a.txt");
        std::fs::write(&file, b"hello").unwrap();
        assert_eq!(read_bounded(&file, 5).unwrap(), b"hello");
        assert!(matches!(
            read_bounded(&file, 4),
            Err(InputError::TooLarge { cap: 4 })
        ));
        assert!(matches!(
            read_bounded(dir.path(), 10),
            Err(InputError::Directory)
        ));
        assert!(matches!(
            read_bounded(&dir.path().join("missing"), 10),
            Err(InputError::NotFound)
        ));
        #[cfg(unix)]
        {
            assert!(matches!(
                read_bounded(Path::new("/dev/zero"), 10),
                Err(InputError::NotRegular("a character device"))
            ));
            let fifo = dir.path().join("fifo");
            let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
            // SAFETY: a valid NUL-terminated path.
            assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
            assert!(matches!(
                read_bounded(&fifo, 10),
                Err(InputError::NotRegular("a FIFO"))
            ));
            let link = dir.path().join("link");
            std::os::unix::fs::symlink(&file, &link).unwrap();
            assert_eq!(read_bounded(&link, 10).unwrap(), b"hello");
            assert!(matches!(
                read_bounded_nofollow(&link, 10),
                Err(InputError::NotRegular("a symbolic link"))
            ));
        }
    }
}
