//! One memory budget for everything ipswcheck builds from what a file says about itself:
//! zip central directories and manifests (issue 14, class 4: "an aggregate budget
//! across concurrent work").
//!
//! Each input is capped on its own (entry counts and directory bytes in
//! `crate::archive`, values and bytes in `crate::manifest`'s bounded reader), but a
//! `scan` holds several files open at once (its window) and each holds its directory
//! and parsed manifest until its check ends. Caps alone would let window × cap grow with
//! the number of cores; this budget makes the sum bounded whatever the window:
//!
//! - opening a file reserves what its directory will cost (known from the end record
//!   before anything is parsed) plus a worst-case allowance for its manifests, in **one**
//!   reservation, waiting while other files hold too much;
//! - once the manifests are parsed the reservation shrinks to what they keep, and the
//!   rest goes back;
//! - it is all given back when the file's check ends (the tickets are dropped).
//!
//! Why waiting cannot deadlock: a thread reserves once per file, before it holds anything
//! of that file, and never waits for the budget while holding a ticket; every holder is a
//! file whose check goes on without the budget (hashing, signing) and then drops it. A
//! reservation larger than the whole budget is clamped to it, so it waits at most until
//! every other file is done. With real files (about 1 MB of directory and 3 MB of
//! manifest each) nothing ever waits; with crafted ones the scan briefly checks fewer
//! files at a time.

use std::sync::{Condvar, Mutex};

/// Bytes all open files may hold at once for directories and manifests: one file at
/// its caps fits (a 2 MiB directory, a 32 MiB manifest and its values), as estimated;
/// measured peaks are in README "What ipswcheck guarantees".
pub const BUDGET: u64 = 64 << 20;

static IN_USE: Mutex<u64> = Mutex::new(0);
static RELEASED: Condvar = Condvar::new();

/// A share of [`BUDGET`]; given back when dropped.
#[derive(Debug)]
pub struct Ticket {
    bytes: u64,
}

/// Reserve `bytes` (at most [`BUDGET`]), waiting until other files give enough back.
pub fn reserve(bytes: u64) -> Ticket {
    let bytes = bytes.min(BUDGET);
    let mut in_use = IN_USE.lock().unwrap_or_else(|e| e.into_inner());
    while *in_use + bytes > BUDGET {
        in_use = RELEASED.wait(in_use).unwrap_or_else(|e| e.into_inner());
    }
    *in_use += bytes;
    Ticket { bytes }
}

/// Bytes of the budget held now by all tickets (for tests and diagnostics).
pub fn in_use() -> u64 {
    *IN_USE.lock().unwrap_or_else(|e| e.into_inner())
}

impl Ticket {
    /// A ticket for nothing (an input that costs no budget).
    pub fn none() -> Ticket {
        Ticket { bytes: 0 }
    }

    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Take `bytes` of this ticket (at most all of it) into a ticket of its own.
    pub fn split_off(&mut self, bytes: u64) -> Ticket {
        let bytes = bytes.min(self.bytes);
        self.bytes -= bytes;
        Ticket { bytes }
    }

    /// Give back all but `bytes` (a ticket never grows: that would be a second wait).
    pub fn shrink_to(&mut self, bytes: u64) {
        let rest = self.split_off(self.bytes.saturating_sub(bytes));
        drop(rest);
    }
}

/// Releases of at least this much also give freed memory back to the system.
const TRIM_AT: u64 = 8 << 20;

impl Drop for Ticket {
    fn drop(&mut self) {
        if self.bytes > 0 {
            if self.bytes >= TRIM_AT {
                give_back_freed_memory();
            }
            let mut in_use = IN_USE.lock().unwrap_or_else(|e| e.into_inner());
            *in_use -= self.bytes;
            RELEASED.notify_all();
        }
    }
}

/// Return memory the allocator holds freed to the system. glibc keeps one arena per
/// thread (up to 8 per core) and keeps what a thread freed in its arena: a `scan` whose
/// eight window threads each parsed a large manifest once would otherwise stay at eight
/// parses' peak (measured: 494 MB for eight crafted 7 MB manifests) although the budget
/// let only one be alive at a time. Called when a large share of the budget is given
/// back, i.e. after the transient tree of a large manifest was dropped.
fn give_back_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks the allocator's own free lists.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_reservation_waits_for_the_budget_and_never_exceeds_it() {
        // Other tests may hold some of the budget: take what is left but one byte.
        let big = reserve(BUDGET);
        assert_eq!(big.bytes(), BUDGET);
        assert!(in_use() <= BUDGET);
        let (tx, rx) = std::sync::mpsc::channel();
        let waiter = std::thread::spawn(move || {
            let t = reserve(1 << 20);
            tx.send(t.bytes()).unwrap();
        });
        // The waiter cannot get its megabyte while the whole budget is held.
        assert!(rx.recv_timeout(Duration::from_millis(200)).is_err());
        let mut big = big;
        big.shrink_to(BUDGET - (1 << 20));
        assert_eq!(rx.recv_timeout(Duration::from_secs(30)).unwrap(), 1 << 20);
        waiter.join().unwrap();
        let mut part = big.split_off(10);
        assert_eq!(part.bytes(), 10);
        part.shrink_to(100);
        assert_eq!(part.bytes(), 10, "a ticket never grows");
    }
}
