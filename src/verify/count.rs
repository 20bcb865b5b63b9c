//! Progress that counts each byte of the file once.
//!
//! A check with a whole-file digest (`--sha1`, or ipsw.me's SHA-1 when online) reads the
//! file twice at the same time: entry by entry for the CRCs and component digests, and
//! front to back for the whole-file hash. Adding both to one counter showed a 1.41 GiB
//! file as 2.82 GiB online. Here the two passes count separately, and what is shown is
//! how far the one further ahead has come, in bytes of the file: the total is the file's
//! entry bytes, and a whole-file digest that covers the components
//! ([`super::shortcut`]) completes the bar at once.

use std::sync::atomic::{AtomicU64, Ordering};

/// One plan's progress: the two passes and what was shown of them.
#[derive(Default)]
pub(super) struct PlanProgress {
    /// Bytes the entry jobs read (compressed sizes: bytes of the file).
    entries: AtomicU64,
    /// Bytes the whole-file job hashed.
    whole: AtomicU64,
    /// What the run's counter was given so far: never decreases.
    shown: AtomicU64,
    /// The shown total: the entries' compressed bytes (the file when it has none).
    total: u64,
    /// The file's length (the whole-file pass's total).
    file_len: u64,
}

impl PlanProgress {
    pub(super) fn new(total: u64, file_len: u64) -> Self {
        PlanProgress {
            total,
            file_len,
            ..PlanProgress::default()
        }
    }

    pub(super) fn total(&self) -> u64 {
        self.total
    }

    pub(super) fn shown(&self) -> u64 {
        self.shown.load(Ordering::Relaxed)
    }

    /// `n` more bytes read by a pass (`whole`: the whole-file one); the run's counter
    /// `global` gets what this moves the shown figure by.
    pub(super) fn add(&self, global: &AtomicU64, n: u64, whole: bool) {
        let reached = if whole {
            let w = self.whole.fetch_add(n, Ordering::Relaxed).saturating_add(n);
            scale(w, self.total, self.file_len)
        } else {
            self.entries
                .fetch_add(n, Ordering::Relaxed)
                .saturating_add(n)
        };
        self.show(global, reached);
    }

    /// Everything is accounted for (the components were covered by the whole file).
    pub(super) fn complete(&self, global: &AtomicU64) {
        self.show(global, self.total);
    }

    fn show(&self, global: &AtomicU64, reached: u64) {
        let reached = reached.min(self.total);
        let before = self.shown.fetch_max(reached, Ordering::Relaxed);
        if reached > before {
            global.fetch_add(reached - before, Ordering::Relaxed);
        }
    }
}

/// `part` of `of`, in units of `total`.
fn scale(part: u64, total: u64, of: u64) -> u64 {
    if of == 0 {
        return total;
    }
    (u128::from(part) * u128::from(total) / u128::from(of)) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_passes_over_the_same_bytes_count_once() {
        let global = AtomicU64::new(0);
        // 1.41 GiB of entries in a file a little bigger (directory, headers).
        let total = 1_514_000_000;
        let file = total + 2_000_000;
        let p = PlanProgress::new(total, file);
        for _ in 0..1000 {
            p.add(&global, total / 1000, false);
            p.add(&global, file / 1000, true);
        }
        let shown = global.load(Ordering::Relaxed);
        assert!(shown <= total, "{shown} > {total}");
        assert!(shown >= total - 2000, "{shown}");
        assert_eq!(p.shown(), shown);
    }

    #[test]
    fn the_pass_further_ahead_is_shown_and_complete_fills_up() {
        let global = AtomicU64::new(0);
        let p = PlanProgress::new(1000, 2000);
        p.add(&global, 100, false);
        assert_eq!(global.load(Ordering::Relaxed), 100);
        p.add(&global, 1000, true); // half the file = 500 of 1000
        assert_eq!(global.load(Ordering::Relaxed), 500);
        p.add(&global, 100, false); // entries at 200: behind, nothing moves
        assert_eq!(global.load(Ordering::Relaxed), 500);
        p.complete(&global);
        assert_eq!(global.load(Ordering::Relaxed), 1000);
        p.add(&global, 5000, false);
        assert_eq!(global.load(Ordering::Relaxed), 1000);
    }
}
