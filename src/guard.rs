//! Memory-map safety: a file that shrinks while it is mapped must not kill the process.
//!
//! The archive is a read-only *shared* mapping of the file (memmap2's `Mmap::map`:
//! `PROT_READ`, `MAP_SHARED`), so it shows the file as it is now, not a copy. Reading a
//! mapped page that lies past the (new) end of the file raises SIGBUS; so does a page the
//! kernel cannot read from the disk (an I/O error). That happens when the user checks a
//! download that is still being written, a file that another program truncates, or a
//! file on a failing disk or a network file system. We cannot stop it from happening, so
//! we make it harmless:
//!
//! 1. every mapping the archive reader makes is registered here;
//! 2. a SIGBUS handler looks up the faulting address; inside a registered mapping it
//!    maps an anonymous zero page over the faulting page (`MAP_FIXED`), records where
//!    the first fault was, and returns — the read resumes and sees zeros;
//! 3. the check asks [`Registration::fault`] before it reports: a fault at or past the
//!    file's current end means the file shrank ("changed during the check"), a fault
//!    inside it means the bytes could not be read (an I/O error). Either way no hash
//!    computed over those zeros is reported as a verdict.
//!
//! Faults outside our mappings are passed on to the handler that was installed before
//! ours (Rust's own stack-overflow detection, or another library's), called as the
//! kernel would have called it. When there was none (the default action), the default
//! is put back and the handler returns: the faulting instruction runs again and the
//! process ends with SIGBUS, as it would have without us, so real bugs still crash
//! loudly. The handler keeps `errno` as it found it, and only uses atomics and the
//! async-signal-safe `mmap` and `sigaction` system calls.

use std::sync::atomic::{AtomicUsize, Ordering};

const SLOTS: usize = 4096;
/// `fault` of a region without one.
const NO_FAULT: usize = usize::MAX;

struct Region {
    start: AtomicUsize,
    len: AtomicUsize,
    /// Offset in the mapping of the first page that faulted, or [`NO_FAULT`].
    fault: AtomicUsize,
}

#[allow(clippy::declare_interior_mutable_const)]
const EMPTY: Region = Region {
    start: AtomicUsize::new(0),
    len: AtomicUsize::new(0),
    fault: AtomicUsize::new(NO_FAULT),
};

static REGIONS: [Region; SLOTS] = [EMPTY; SLOTS];

/// A registered mapping; unregisters itself when dropped.
#[derive(Debug)]
pub struct Registration {
    slot: Option<usize>,
}

impl Registration {
    /// Whether a read of this mapping faulted (see [`Registration::fault`]).
    pub fn faulted(&self) -> bool {
        self.fault().is_some()
    }

    /// Where in the mapping the first faulting read was (the start of its page), if any
    /// faulted. Compared with the file's size now, it tells a file that shrank (the
    /// page is past the end) from one that could not be read (an I/O error).
    pub fn fault(&self) -> Option<u64> {
        let s = self.slot?;
        let at = REGIONS[s].fault.load(Ordering::SeqCst);
        (at != NO_FAULT).then_some(at as u64)
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        if let Some(s) = self.slot {
            REGIONS[s].len.store(0, Ordering::SeqCst);
            REGIONS[s].fault.store(NO_FAULT, Ordering::SeqCst);
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
            r.fault.store(NO_FAULT, Ordering::SeqCst);
            r.len.store(bytes.len(), Ordering::SeqCst);
            return Registration { slot: Some(i) };
        }
    }
    Registration { slot: None }
}

#[cfg(unix)]
mod platform {
    use super::{Ordering, NO_FAULT, REGIONS};
    use std::sync::Once;

    static INSTALL: Once = Once::new();
    /// The SIGBUS action before ours; written once, before ours is installed.
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

    /// Where this thread's `errno` lives.
    fn errno() -> Option<*mut libc::c_int> {
        // SAFETY: these return the calling thread's errno slot, valid for its lifetime.
        #[cfg(any(target_os = "linux", target_os = "android"))]
        return Some(unsafe { libc::__errno_location() });
        #[cfg(any(target_os = "macos", target_os = "ios", target_os = "freebsd"))]
        return Some(unsafe { libc::__error() });
        #[allow(unreachable_code)]
        None
    }

    /// Puts `errno` back when the handler returns, whichever way: the interrupted code
    /// may be between a failing call and its read of `errno`, and our `mmap` or
    /// `sigaction` would otherwise overwrite it.
    pub(super) struct SavedErrno(Option<(*mut libc::c_int, libc::c_int)>);

    impl SavedErrno {
        pub(super) fn save() -> SavedErrno {
            // SAFETY: the slot is this thread's and valid (see `errno`).
            SavedErrno(errno().map(|p| (p, unsafe { p.read() })))
        }
    }

    impl Drop for SavedErrno {
        fn drop(&mut self) {
            if let Some((p, value)) = self.0 {
                // SAFETY: as in `save`.
                unsafe { p.write(value) };
            }
        }
    }

    extern "C" fn handler(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
        let _errno = SavedErrno::save();
        // SAFETY: the kernel passes a valid siginfo for SA_SIGINFO handlers.
        let addr = unsafe { (*info).si_addr() } as usize;
        for r in REGIONS.iter() {
            let start = r.start.load(Ordering::SeqCst);
            let len = r.len.load(Ordering::SeqCst);
            if start != 0 && addr >= start && addr < start + len {
                let page_size = PAGE.load(Ordering::SeqCst);
                let page = addr & !(page_size - 1);
                // SAFETY: the page lies inside a read-only mapping we own (registered
                // until the `Registration`, dropped before the mapping, goes away);
                // replacing it with zeros keeps the address range valid and readable
                // until memmap2 unmaps the whole range.
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
                    let offset = page.saturating_sub(start);
                    let _ = r.fault.compare_exchange(
                        NO_FAULT,
                        offset,
                        Ordering::SeqCst,
                        Ordering::SeqCst,
                    );
                    return;
                }
            }
        }
        // Not ours: pass it on.
        // SAFETY: PREVIOUS was written by `sigaction` before this handler was installed,
        // and never again.
        let previous = unsafe {
            std::ptr::addr_of!(PREVIOUS)
                .cast::<libc::sigaction>()
                .read()
        };
        let action = previous.sa_sigaction;
        if action == libc::SIG_DFL || action == libc::SIG_IGN {
            // The default action for a fault is to end the process; ignoring a fault
            // would spin on it. Put the default back and return: the instruction faults
            // again and the process ends with SIGBUS, as it would have without us.
            unsafe {
                let mut default: libc::sigaction = std::mem::zeroed();
                default.sa_sigaction = libc::SIG_DFL;
                libc::sigemptyset(&mut default.sa_mask);
                libc::sigaction(libc::SIGBUS, &default, std::ptr::null_mut());
            }
        } else if previous.sa_flags & libc::SA_SIGINFO != 0 {
            // SAFETY: an SA_SIGINFO action is a three-argument handler.
            let f: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) =
                unsafe { std::mem::transmute(action) };
            f(sig, info, ctx);
        } else {
            // SAFETY: without SA_SIGINFO the action is a one-argument handler.
            let f: extern "C" fn(libc::c_int) = unsafe { std::mem::transmute(action) };
            f(sig);
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

    /// A 1 MiB file of 0xAB and a shared read-only mapping of it.
    fn mapped(dir: &std::path::Path) -> (std::path::PathBuf, memmap2::Mmap) {
        let path = dir.join("growing.bin");
        let mut f = std::fs::File::create(&path).unwrap();
        f.write_all(&vec![0xAB; 1 << 20]).unwrap();
        f.sync_all().unwrap();
        let file = std::fs::File::open(&path).unwrap();
        let map = unsafe { memmap2::Mmap::map(&file).unwrap() };
        (path, map)
    }

    fn cut(path: &std::path::Path, len: u64) {
        std::fs::OpenOptions::new()
            .write(true)
            .open(path)
            .unwrap()
            .set_len(len)
            .unwrap();
    }

    #[test]
    fn a_file_truncated_under_its_mapping_reads_as_zeros_and_is_flagged() {
        let dir = tempfile::tempdir().unwrap();
        let (path, map) = mapped(dir.path());
        let guard = register(&map);
        assert!(!guard.faulted());
        assert_eq!(guard.fault(), None);
        assert_eq!(map[(1 << 20) - 1], 0xAB);
        // Another writer cuts the file to 4 KiB.
        cut(&path, 4096);
        let tail: u64 = map[512 << 10..].iter().map(|&b| b as u64).sum();
        assert_eq!(tail, 0, "pages past the new end read as zeros");
        assert!(guard.faulted());
        // The first fault is where the read began, past the new end: the mark of a
        // file that shrank, not of an I/O error.
        assert_eq!(guard.fault(), Some(512 << 10));
        drop(guard);
        drop(map);
    }

    #[cfg(any(target_os = "linux", target_os = "android"))]
    #[test]
    fn the_handler_puts_errno_back_and_a_fault_does_not_change_it() {
        // The mechanism the handler starts with: whatever happens to errno while it is
        // held (a failing `mmap` would set it), dropping puts the old value back.
        let errno = unsafe { libc::__errno_location() };
        unsafe { errno.write_volatile(libc::EAGAIN) };
        {
            let _saved = platform::SavedErrno::save();
            unsafe { errno.write_volatile(libc::ENOMEM) };
        }
        assert_eq!(unsafe { errno.read_volatile() }, libc::EAGAIN);
        // And end to end: faults in between a "failing call" and its errno read.
        let dir = tempfile::tempdir().unwrap();
        let (path, map) = mapped(dir.path());
        let guard = register(&map);
        cut(&path, 0);
        for sentinel in [libc::EAGAIN, libc::ENOENT, 12345] {
            unsafe { errno.write_volatile(sentinel) };
            let at = (sentinel as usize % 200 + 8) * 4096;
            let byte = unsafe { std::ptr::read_volatile(map.as_ptr().add(at)) };
            assert_eq!(byte, 0);
            assert_eq!(unsafe { errno.read_volatile() }, sentinel);
        }
        assert!(guard.faulted());
    }

    /// Runs one of the `chain_child_*` tests below in a fresh process (the handler is
    /// installed once per process, after whatever handler was there before).
    fn run_child(name: &str) -> std::process::Output {
        std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                &format!("guard::tests::{name}"),
                "--exact",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("IPSWCHECK_GUARD_CHILD", "1")
            .output()
            .unwrap()
    }

    #[cfg(any(target_os = "linux", target_os = "android"))]
    #[test]
    fn faults_outside_our_mappings_go_to_the_previous_handler() {
        let out = run_child("chain_child_previous_handler");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{:?}\n{text}", out.status);
        assert!(
            text.contains("1 passed"),
            "the child test did not run: {text}"
        );
    }

    #[cfg(any(target_os = "linux", target_os = "android"))]
    #[test]
    fn faults_outside_our_mappings_still_end_the_process_by_default() {
        use std::os::unix::process::ExitStatusExt;
        let out = run_child("chain_child_default_action");
        assert_eq!(
            out.status.signal(),
            Some(libc::SIGBUS),
            "{:?}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout)
        );
        // It got as far as the fault: the guard of its own mapping had worked.
        assert!(String::from_utf8_lossy(&out.stdout).contains("own mapping survived"));
    }

    static PREVIOUS_CALLS: AtomicUsize = AtomicUsize::new(0);

    /// A handler someone else installed before ours: counts, and maps zeros over the
    /// faulting page so the read can go on.
    extern "C" fn previous_handler(
        _sig: libc::c_int,
        info: *mut libc::siginfo_t,
        _ctx: *mut libc::c_void,
    ) {
        PREVIOUS_CALLS.fetch_add(1, Ordering::SeqCst);
        let page = unsafe { (*info).si_addr() } as usize & !4095;
        unsafe {
            libc::mmap(
                page as *mut libc::c_void,
                4096,
                libc::PROT_READ,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED,
                -1,
                0,
            );
        }
    }

    fn in_child() -> bool {
        std::env::var_os("IPSWCHECK_GUARD_CHILD").is_some()
    }

    #[test]
    #[ignore = "run in a child process by faults_outside_our_mappings_go_to_the_previous_handler"]
    fn chain_child_previous_handler() {
        if !in_child() {
            return;
        }
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = previous_handler as *const () as usize;
            action.sa_flags = libc::SA_SIGINFO;
            libc::sigemptyset(&mut action.sa_mask);
            libc::sigaction(libc::SIGBUS, &action, std::ptr::null_mut());
        }
        let dir = tempfile::tempdir().unwrap();
        let (ours_path, ours) = mapped(dir.path());
        let guard = register(&ours);
        let other_path = dir.path().join("other.bin");
        std::fs::write(&other_path, vec![0xCD; 1 << 20]).unwrap();
        let other =
            unsafe { memmap2::Mmap::map(&std::fs::File::open(&other_path).unwrap()) }.unwrap();
        cut(&other_path, 0);
        cut(&ours_path, 0);
        // A fault outside our mappings goes to the previous handler, every time (ours
        // stays installed: a later fault of our own mapping is still ours).
        assert_eq!(unsafe { std::ptr::read_volatile(other.as_ptr()) }, 0);
        assert_eq!(PREVIOUS_CALLS.load(Ordering::SeqCst), 1);
        assert_eq!(unsafe { std::ptr::read_volatile(ours.as_ptr()) }, 0);
        assert!(guard.faulted());
        assert_eq!(PREVIOUS_CALLS.load(Ordering::SeqCst), 1);
        assert_eq!(
            unsafe { std::ptr::read_volatile(other.as_ptr().add(8192)) },
            0
        );
        assert_eq!(PREVIOUS_CALLS.load(Ordering::SeqCst), 2);
    }

    #[test]
    #[ignore = "run in a child process by faults_outside_our_mappings_still_end_the_process_by_default"]
    fn chain_child_default_action() {
        if !in_child() {
            return;
        }
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = libc::SIG_DFL;
            libc::sigemptyset(&mut action.sa_mask);
            libc::sigaction(libc::SIGBUS, &action, std::ptr::null_mut());
        }
        let dir = tempfile::tempdir().unwrap();
        let (ours_path, ours) = mapped(dir.path());
        let guard = register(&ours);
        cut(&ours_path, 0);
        assert_eq!(unsafe { std::ptr::read_volatile(ours.as_ptr()) }, 0);
        assert!(guard.faulted());
        println!("own mapping survived");
        let other_path = dir.path().join("other.bin");
        std::fs::write(&other_path, vec![0xCD; 1 << 20]).unwrap();
        let other =
            unsafe { memmap2::Mmap::map(&std::fs::File::open(&other_path).unwrap()) }.unwrap();
        cut(&other_path, 0);
        let _ = unsafe { std::ptr::read_volatile(other.as_ptr()) };
        println!("survived a fault that was not ours");
    }
}
