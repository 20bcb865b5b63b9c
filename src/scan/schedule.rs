//! One queue of hashing jobs for the whole library, largest first, fed by a sliding
//! window of prepared files.
//!
//! Each file in the window is owned by one *slot* (a thread that opened it, holds its
//! mapping, manifest and verification plan, and will write its report). A slot submits
//! every job of its plan — each zip entry, and the whole-file digest — to the one
//! shared [`JobQueue`]. The queue hands out at most `permits` jobs at a time (the
//! `--jobs` cores), always the largest waiting job of any file. A dispatched job is run
//! by one of its own slot's executor threads: the plan borrows the slot's data, so only
//! threads in that slot's scope may touch it — which keeps this free of `unsafe` and
//! of any `'static` lifetime trickery, at the cost of a few sleeping threads (each slot
//! has up to `permits` executors, and never more runs at once than there are permits).
//!
//! Why largest first: one SHA stream cannot be split, so a file's OS image bounds its
//! check (FIRMWARE.md §6). Starting the big jobs first and filling in with the small
//! ones keeps every core busy until the end instead of leaving one alone with the last
//! big file.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::{Condvar, Mutex, MutexGuard};

#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Waiting {
    cost: u64,
    /// Submission order among jobs of equal cost (earlier first).
    order: Reverse<u64>,
    slot: usize,
    job: usize,
}

#[derive(Debug, Default)]
struct SlotState {
    /// Jobs dispatched to this slot and not yet picked up by one of its executors.
    assigned: Vec<usize>,
    /// Jobs of this slot not yet finished (waiting, assigned or running).
    remaining: usize,
}

#[derive(Debug)]
struct State {
    waiting: BinaryHeap<Waiting>,
    free: usize,
    submitted: u64,
    slots: Vec<SlotState>,
}

/// The library-wide job queue (see the module docs).
#[derive(Debug)]
pub struct JobQueue {
    state: Mutex<State>,
    changed: Condvar,
}

impl JobQueue {
    /// A queue for `slots` files at once running at most `permits` jobs at a time.
    pub fn new(slots: usize, permits: usize) -> Self {
        JobQueue {
            state: Mutex::new(State {
                waiting: BinaryHeap::new(),
                free: permits.max(1),
                submitted: 0,
                slots: (0..slots).map(|_| SlotState::default()).collect(),
            }),
            changed: Condvar::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn dispatch(state: &mut State) {
        while state.free > 0 {
            let Some(w) = state.waiting.pop() else {
                break;
            };
            state.slots[w.slot].assigned.push(w.job);
            state.free -= 1;
        }
    }

    /// Queue the jobs `(job, cost)` of the file in `slot`.
    pub fn submit(&self, slot: usize, jobs: impl IntoIterator<Item = (usize, u64)>) {
        let mut state = self.lock();
        for (job, cost) in jobs {
            state.submitted += 1;
            let order = Reverse(state.submitted);
            state.waiting.push(Waiting {
                cost,
                order,
                slot,
                job,
            });
            state.slots[slot].remaining += 1;
        }
        Self::dispatch(&mut state);
        drop(state);
        self.changed.notify_all();
    }

    /// The next job of `slot` to run, waiting until one is dispatched to it; `None`
    /// once every job of the slot has finished.
    pub fn next(&self, slot: usize) -> Option<usize> {
        let mut state = self.lock();
        loop {
            if let Some(job) = state.slots[slot].assigned.pop() {
                return Some(job);
            }
            if state.slots[slot].remaining == 0 {
                return None;
            }
            state = self.changed.wait(state).unwrap_or_else(|e| e.into_inner());
        }
    }

    /// A job of `slot` has finished: free its permit for the next largest job.
    pub fn finished(&self, slot: usize) {
        let mut state = self.lock();
        state.slots[slot].remaining -= 1;
        state.free += 1;
        Self::dispatch(&mut state);
        drop(state);
        self.changed.notify_all();
    }

    /// Run every job of `slot` (submitted before) with `executors` threads of the
    /// caller's, calling `run(job)` for each as the queue dispatches it.
    pub fn run_slot(&self, slot: usize, executors: usize, run: &(dyn Fn(usize) + Sync)) {
        let work = || {
            while let Some(job) = self.next(slot) {
                // Release the permit even if `run` panics, so other slots never wait
                // forever on a job that will not finish.
                let _done = Finished { queue: self, slot };
                run(job);
            }
        };
        std::thread::scope(|s| {
            for _ in 1..executors.max(1) {
                // Fewer executors if threads run out: this thread works too.
                if std::thread::Builder::new().spawn_scoped(s, work).is_err() {
                    break;
                }
            }
            work();
        });
    }
}

struct Finished<'q> {
    queue: &'q JobQueue,
    slot: usize,
}

impl Drop for Finished<'_> {
    fn drop(&mut self) {
        self.queue.finished(self.slot);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn the_largest_job_of_any_slot_goes_first() {
        let queue = JobQueue::new(2, 1);
        // Nothing runs until both slots have submitted: hold the only permit.
        queue.lock().free = 0;
        queue.submit(0, [(0, 10), (1, 300)]);
        queue.submit(1, [(0, 200), (1, 5)]);
        queue.lock().free = 1;
        let order = Mutex::new(Vec::new());
        std::thread::scope(|s| {
            for slot in 0..2 {
                let (queue, order) = (&queue, &order);
                s.spawn(move || {
                    queue.run_slot(slot, 2, &|job| order.lock().unwrap().push((slot, job)));
                });
            }
            // Wake the executors now that the permit is back.
            let mut state = queue.lock();
            JobQueue::dispatch(&mut state);
            drop(state);
            queue.changed.notify_all();
        });
        assert_eq!(
            order.into_inner().unwrap(),
            vec![(0, 1), (1, 0), (0, 0), (1, 1)],
            "300, 200, 10, 5"
        );
    }

    #[test]
    fn never_more_jobs_at_once_than_permits() {
        let queue = JobQueue::new(3, 2);
        let running = AtomicUsize::new(0);
        let peak = AtomicUsize::new(0);
        std::thread::scope(|s| {
            for slot in 0..3 {
                let (queue, running, peak) = (&queue, &running, &peak);
                s.spawn(move || {
                    queue.submit(slot, (0..20).map(|j| (j, j as u64)));
                    queue.run_slot(slot, 2, &|_| {
                        let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                        peak.fetch_max(now, Ordering::SeqCst);
                        std::thread::sleep(std::time::Duration::from_micros(200));
                        running.fetch_sub(1, Ordering::SeqCst);
                    });
                });
            }
        });
        assert!(peak.load(Ordering::SeqCst) <= 2);
        assert_eq!(queue.lock().free, 2);
    }
}
