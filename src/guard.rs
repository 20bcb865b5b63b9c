//! Memory-map safety: a file that shrinks while it is mapped must not kill the process.
//!
//! Reading a mapped page that lies past the (new) end of its file raises SIGBUS. That
//! happens when the user checks a download that is still being written, or a file that
//! another program truncates. We cannot stop it from happening, so we make it harmless:
//!
//! 1. every mapping the archive reader makes is registered here;
//! 2. a SIGBUS handler looks up the faulting address; inside a registered mapping it
//!    maps an anonymous zero page over the faulting page (`MAP_FIXED`), flags the
//!    mapping as changed, and returns — the read resumes and sees zeros;
//! 3. the check asks [`Registration::faulted`] (and compares size and mtime with the
//!    values at open) before it reports, and says "file changed during check" instead of
//!    trusting hashes computed over zeros.
//!
//! Faults outside our mappings are handed back to the previous handler (Rust's own
//! stack-overflow detection, or the default action), so real bugs still crash loudly.
//! The handler only uses atomics and `mmap`/`sigaction` system calls.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

const SLOTS: usize = 4096;

struct Region {
    start: AtomicUsize,
    len: AtomicUsize,
    faulted: AtomicBool,
}

#[allow(clippy::declare_interior_mutable_const)]
const EMPTY: Region = Region {
    start: AtomicUsize::new(0),
    len: AtomicUsize::new(0),
    faulted: AtomicBool::new(false),
};

static REGIONS: [Region; SLOTS] = [EMPTY; SLOTS];

/// A registered mapping; unregisters itself when dropped.
#[derive(Debug)]
pub struct Registration {
    slot: Option<usize>,
}

impl Registration {
    /// Whether a read of this mapping hit a page past the end of the file.
    pub fn faulted(&self) -> bool {
        self.slot
            .is_some_and(|s| REGIONS[s].faulted.load(Ordering::SeqCst))
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        if let Some(s) = self.slot {
            REGIONS[s].len.store(0, Ordering::SeqCst);
            REGIONS[s].faulted.store(false, Ordering::SeqCst);
            REGIONS[s].start.store(0, Ordering::SeqCst);
        }
    }
}

/// Register `bytes` (a mapping) so that SIGBUS inside it is survived. When all slots
/// are taken the mapping is unguarded (a fault then ends the process as before).
pub fn register(bytes: &[u8]) -> Registration {
    if bytes.is_empty() {
        return Registration { slot: None };
    }
    platform::install();
    let start = bytes.as_ptr() as usize;
    for (i, r) in REGIONS.iter().enumerate() {
        if r.start
            .compare_exchange(0, start, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok()
        {
            r.faulted.store(false, Ordering::SeqCst);
            r.len.store(bytes.len(), Ordering::SeqCst);
            return Registration { slot: Some(i) };
        }
    }
    Registration { slot: None }
}

#[cfg(unix)]
mod platform {
    use super::{Ordering, REGIONS};
    use std::sync::Once;

    static INSTALL: Once = Once::new();
    static mut PREVIOUS: std::mem::MaybeUninit<libc::sigaction> = std::mem::MaybeUninit::uninit();
    static PAGE: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(4096);

    pub fn install() {
        INSTALL.call_once(|| unsafe {
            let page = libc::sysconf(libc::_SC_PAGESIZE);
            if page > 0 {
                PAGE.store(page as usize, Ordering::SeqCst);
            }
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = handler as *const () as usize;
            action.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
            libc::sigemptyset(&mut action.sa_mask);
            let previous = std::ptr::addr_of_mut!(PREVIOUS).cast::<libc::sigaction>();
            libc::sigaction(libc::SIGBUS, &action, previous);
        });
    }

    extern "C" fn handler(_sig: libc::c_int, info: *mut libc::siginfo_t, _ctx: *mut libc::c_void) {
        // SAFETY: the kernel passes a valid siginfo for SA_SIGINFO handlers.
        let addr = unsafe { (*info).si_addr() } as usize;
        for r in REGIONS.iter() {
            let start = r.start.load(Ordering::SeqCst);
            let len = r.len.load(Ordering::SeqCst);
            if start != 0 && addr >= start && addr < start + len {
                let page_size = PAGE.load(Ordering::SeqCst);
                let page = addr & !(page_size - 1);
                // SAFETY: the page lies inside a read-only mapping we own; replacing it
                // with zeros keeps the address range valid until the mapping is dropped.
                let p = unsafe {
                    libc::mmap(
                        page as *mut libc::c_void,
                        page_size,
                        libc::PROT_READ,
                        libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED,
                        -1,
                        0,
                    )
                };
                if p != libc::MAP_FAILED {
                    r.faulted.store(true, Ordering::SeqCst);
                    return;
                }
            }
        }
        // Not ours: restore the previous handler and return; the faulting instruction
        // runs again and faults into it (or the default action).
        unsafe {
            let previous = std::ptr::addr_of!(PREVIOUS).cast::<libc::sigaction>();
            libc::sigaction(libc::SIGBUS, previous, std::ptr::null_mut());
        }
    }
}

#[cfg(not(unix))]
mod platform {
    pub fn install() {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn a_file_truncated_under_its_mapping_reads_as_zeros_and_is_flagged() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("growing.bin");
        let mut f = std::fs::File::create(&path).unwrap();
        f.write_all(&vec![0xAB; 1 << 20]).unwrap();
        f.sync_all().unwrap();
        let file = std::fs::File::open(&path).unwrap();
        let map = unsafe { memmap2::Mmap::map(&file).unwrap() };
        let guard = register(&map);
        assert!(!guard.faulted());
        assert_eq!(map[(1 << 20) - 1], 0xAB);
        // Another writer cuts the file to 4 KiB.
        std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(4096)
            .unwrap();
        let tail: u64 = map[512 << 10..].iter().map(|&b| b as u64).sum();
        assert_eq!(tail, 0, "pages past the new end read as zeros");
        assert!(guard.faulted());
        drop(guard);
        drop(map);
    }
}
