//! Two cores on the one entry that bounds a check.
//!
//! A deflated entry costs two serial streams: inflate (with its CRC-32) and the digest.
//! Neither can be split, but they can run on different cores: the worker that owns the
//! entry inflates into a small pool of buffers (a *lane*), and the other workers hash
//! the buffers in order, between the chunks of their own entries and after the queue is
//! empty. On the benchmark fixture (BENCHMARKS.md) this takes the OS image from
//! inflate + SHA-384 (~10.7 s on one core) to about max(inflate, SHA-384) (~6.6 s).
//!
//! Rules that keep it correct and bounded:
//! - the digests are fed by one thread at a time, in production order: a thread takes
//!   the lane's [`Digester`] out of the lane together with the oldest piece, and puts
//!   it back before anyone can take the next piece;
//! - at most [`MAX_PIECES`] pieces wait per lane (16 MiB of buffers for a deflated
//!   entry, none for a stored one, whose pieces are slices of the mapping);
//! - pieces are cut where the one-core pass cuts its chunks, so a damaged entry gets
//!   the same (partial) digest either way;
//! - a producer whose lane is full hashes a piece itself rather than wait, so a lane
//!   makes progress with no helper at all (one core, or every core producing);
//! - helpers never block inside a lane: they only wait when no lane has work.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};

use super::Digester;

/// Bytes a pipelined deflated entry is inflated into at a time: the size
/// [`crate::archive::EntryStream::next_chunk`] inflates, so a damaged entry is cut at the
/// same byte (and reports the same partial digest) pipelined or not.
pub(super) const PIECE: usize = crate::archive::INFLATE_CHUNK;
/// Pieces that may wait to be hashed, per lane (16 MiB of buffers).
pub(super) const MAX_PIECES: usize = 64;

/// A run of an entry's uncompressed bytes, waiting to be hashed.
enum Piece<'a> {
    /// A stored entry's bytes, in the mapping.
    Mapped(&'a [u8]),
    /// A deflated entry's bytes: the first `n` bytes of a pool buffer.
    Owned(Vec<u8>, usize),
}

impl Piece<'_> {
    fn bytes(&self) -> &[u8] {
        match self {
            Piece::Mapped(s) => s,
            Piece::Owned(buf, n) => &buf[..*n],
        }
    }
}

struct Lane<'a> {
    id: usize,
    pending: VecDeque<Piece<'a>>,
    /// Buffers hashed and ready to be filled again.
    free: Vec<Vec<u8>>,
    /// `None` while a thread is feeding it.
    digester: Option<Digester>,
}

impl Lane<'_> {
    fn can_hash(&self) -> bool {
        self.digester.is_some() && !self.pending.is_empty()
    }
}

/// The lanes of one [`super::run_plans`] call.
pub(super) struct Hub<'a> {
    lanes: Mutex<Vec<Lane<'a>>>,
    /// Signalled on every change: a piece pushed or hashed, a lane opened or closed.
    changed: Condvar,
    /// Open lanes; read without the lock on every chunk of every entry.
    open: AtomicUsize,
    next_id: AtomicUsize,
}

/// A producer's handle on its lane.
pub(super) struct LaneId(usize);

impl<'a> Hub<'a> {
    pub(super) fn new() -> Self {
        Hub {
            lanes: Mutex::new(Vec::new()),
            changed: Condvar::new(),
            open: AtomicUsize::new(0),
            next_id: AtomicUsize::new(0),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Vec<Lane<'a>>> {
        // A panic while holding the lock leaves only plain data behind.
        self.lanes.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn wait<'g>(&self, guard: MutexGuard<'g, Vec<Lane<'a>>>) -> MutexGuard<'g, Vec<Lane<'a>>> {
        self.changed.wait(guard).unwrap_or_else(|e| e.into_inner())
    }

    /// Start a lane that feeds `digester`.
    pub(super) fn open(&self, digester: Digester) -> LaneId {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let mut lanes = self.lock();
        lanes.push(Lane {
            id,
            pending: VecDeque::new(),
            free: Vec::new(),
            digester: Some(digester),
        });
        self.open.fetch_add(1, Ordering::Release);
        drop(lanes);
        self.changed.notify_all();
        LaneId(id)
    }

    /// Wait until `lane` has room for one more piece, hashing its oldest pieces on this
    /// thread meanwhile if no one else is; then a buffer to fill (`want_buffer`: a
    /// deflated entry) or an empty one (stored).
    pub(super) fn reserve(&self, lane: &LaneId, want_buffer: bool) -> Vec<u8> {
        let mut lanes = self.lock();
        loop {
            let l = lane_mut(&mut lanes, lane.0);
            if l.pending.len() < MAX_PIECES {
                return match (want_buffer, l.free.pop()) {
                    (false, _) => Vec::new(),
                    (true, Some(buf)) => buf,
                    (true, None) => {
                        drop(lanes);
                        vec![0; PIECE]
                    }
                };
            }
            lanes = if l.can_hash() {
                self.hash_one(lanes, lane.0)
            } else {
                // Someone is feeding the digests: they will signal when done.
                self.wait(lanes)
            };
        }
    }

    /// Queue the next piece of `lane`: `buf[..n]` (deflated) or a slice of the mapping.
    pub(super) fn push_owned(&self, lane: &LaneId, buf: Vec<u8>, n: usize) {
        self.push(lane, Piece::Owned(buf, n));
    }

    pub(super) fn push_mapped(&self, lane: &LaneId, bytes: &'a [u8]) {
        self.push(lane, Piece::Mapped(bytes));
    }

    fn push(&self, lane: &LaneId, piece: Piece<'a>) {
        let mut lanes = self.lock();
        lane_mut(&mut lanes, lane.0).pending.push_back(piece);
        drop(lanes);
        self.changed.notify_all();
    }

    /// Close `lane` once every queued piece is hashed (`hash_rest`) or dropped (a
    /// cancelled check), and give back its digester.
    pub(super) fn close(&self, lane: LaneId, hash_rest: bool) -> Digester {
        let mut lanes = self.lock();
        loop {
            let l = lane_mut(&mut lanes, lane.0);
            if !hash_rest && l.digester.is_some() {
                l.pending.clear();
            }
            if l.digester.is_some() && l.pending.is_empty() {
                let at = lanes
                    .iter()
                    .position(|l| l.id == lane.0)
                    .expect("lane is open");
                let digester = lanes.swap_remove(at).digester.expect("digester is home");
                self.open.fetch_sub(1, Ordering::Release);
                drop(lanes);
                self.changed.notify_all();
                return digester;
            }
            lanes = if l.can_hash() {
                self.hash_one(lanes, lane.0)
            } else {
                self.wait(lanes)
            };
        }
    }

    /// Hash the pieces waiting in lanes that no one else is feeding, up to
    /// [`MAX_PIECES`] of them (then the caller's own entry gets a turn). Cheap when no
    /// lane is open: called between the chunks of every entry.
    pub(super) fn help(&self) {
        if self.open.load(Ordering::Acquire) == 0 {
            return;
        }
        let mut lanes = self.lock();
        for _ in 0..MAX_PIECES {
            let Some(id) = lanes.iter().find(|l| l.can_hash()).map(|l| l.id) else {
                return;
            };
            lanes = self.hash_one(lanes, id);
        }
    }

    /// Hash for the open lanes until every lane is closed: a worker whose queue is empty.
    pub(super) fn help_until_closed(&self) {
        if self.open.load(Ordering::Acquire) == 0 {
            return;
        }
        let mut lanes = self.lock();
        loop {
            if let Some(id) = lanes.iter().find(|l| l.can_hash()).map(|l| l.id) {
                lanes = self.hash_one(lanes, id);
            } else if lanes.is_empty() {
                return;
            } else {
                lanes = self.wait(lanes);
            }
        }
    }

    /// Feed the oldest piece of lane `id` (which [`Lane::can_hash`]) to its digests,
    /// without the lock, then recycle its buffer.
    fn hash_one<'s>(
        &'s self,
        mut lanes: MutexGuard<'s, Vec<Lane<'a>>>,
        id: usize,
    ) -> MutexGuard<'s, Vec<Lane<'a>>> {
        let l = lane_mut(&mut lanes, id);
        let (Some(mut digester), Some(piece)) = (l.digester.take(), l.pending.pop_front()) else {
            unreachable!("hash_one is only called on a lane that can hash");
        };
        drop(lanes);
        digester.feed(piece.bytes());
        let mut lanes = self.lock();
        let l = lane_mut(&mut lanes, id);
        l.digester = Some(digester);
        if let Piece::Owned(buf, _) = piece {
            l.free.push(buf);
        }
        self.changed.notify_all();
        lanes
    }
}

fn lane_mut<'l, 'a>(lanes: &'l mut [Lane<'a>], id: usize) -> &'l mut Lane<'a> {
    lanes.iter_mut().find(|l| l.id == id).expect("lane is open")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digest::DigestAlgorithm;
    use crate::verify::DigestRequest;

    fn data(len: usize) -> Vec<u8> {
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }

    /// Feed `data` through a lane in pieces of varying sizes (owned buffers, or slices
    /// when `mapped`), with `helpers` threads hashing; return the digest.
    fn through_lane(data: &[u8], helpers: usize, mapped: bool) -> Vec<u8> {
        let req = DigestRequest {
            algorithm: DigestAlgorithm::Sha256,
            retag: None,
        };
        let hub = Hub::new();
        let lane = hub.open(Digester::new(vec![req], data.len() as u64));
        let digester = std::thread::scope(|s| {
            for _ in 0..helpers {
                s.spawn(|| hub.help_until_closed());
            }
            let mut at = 0;
            let mut step = 1usize;
            while at < data.len() {
                // 1 byte, then growing odd sizes, up to a whole piece.
                let n = step.min(PIECE).min(data.len() - at);
                step = step * 3 + 1;
                if mapped {
                    let _ = hub.reserve(&lane, false);
                    hub.push_mapped(&lane, &data[at..at + n]);
                } else {
                    let mut buf = hub.reserve(&lane, true);
                    assert_eq!(buf.len(), PIECE);
                    buf[..n].copy_from_slice(&data[at..at + n]);
                    hub.push_owned(&lane, buf, n);
                }
                at += n;
            }
            hub.close(lane, true)
        });
        assert_eq!(hub.open.load(Ordering::Relaxed), 0);
        digester.finish()[&req].primary.clone()
    }

    #[test]
    fn pieces_are_hashed_in_order_whoever_hashes_them() {
        let data = data(40 * PIECE + 12345);
        let want = DigestAlgorithm::Sha256.digest(&data);
        for helpers in [0, 1, 3] {
            assert_eq!(
                through_lane(&data, helpers, false),
                want,
                "{helpers} helpers"
            );
            assert_eq!(
                through_lane(&data, helpers, true),
                want,
                "{helpers} helpers, mapped"
            );
        }
    }

    #[test]
    fn a_cancelled_lane_closes_without_hashing_the_rest() {
        let req = DigestRequest {
            algorithm: DigestAlgorithm::Sha1,
            retag: None,
        };
        let hub = Hub::new();
        let lane = hub.open(Digester::new(vec![req], 1 << 30));
        let data = data(PIECE);
        for _ in 0..MAX_PIECES {
            let mut buf = hub.reserve(&lane, true);
            buf.copy_from_slice(&data);
            hub.push_owned(&lane, buf, PIECE);
        }
        let _ = hub.close(lane, false);
        assert_eq!(hub.open.load(Ordering::Relaxed), 0);
        // Nothing is left waiting, and helpers return at once.
        hub.help_until_closed();
        hub.help();
    }
}
