//! Signing answers on disk, one small JSON file per question, trusted for [`CACHE_TTL`].
//!
//! - Key: a TSS answer depends only on (UniqueBuildID, chip id, board id) — the same
//!   identity in two IPSW files (re-downloads, copies in a library) shares one file here.
//!   ipsw.me's firmware list is cached per product type. Each entry also records the
//!   server it came from, so an answer from a test or mirror server is never served as
//!   Apple's.
//! - Only Signed and NotSigned are written: an Unknown is a failure to find out, and
//!   caching it would repeat the failure for an hour.
//! - Writes are atomic: a temporary file in the same directory, then a rename over the
//!   entry. Two processes writing at once leave one complete entry, never a mix; a reader
//!   sees the old file or the new one. An unreadable entry is just a miss.
//! - The entry keeps when the answer was obtained, so a report can say how old it is.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::{IdentityAnswer, IpswMeFirmware, SigningStatus, TssKey, CACHE_TTL};

/// Bumped when the entry format changes; other versions are misses.
const FORMAT: u32 = 1;
/// The largest cache entry read: an ipsw.me answer for one device or one identity's
/// TSS answer is well under 1 MB; anything larger was not written by us.
const MAX_ENTRY: u64 = 16 << 20;

/// A directory of cached signing answers.
#[derive(Debug, Clone)]
pub struct SigningCache {
    dir: PathBuf,
    ttl: Duration,
}

#[derive(Serialize, Deserialize)]
struct Entry<T> {
    format: u32,
    /// The URL that gave the answer.
    server: String,
    /// Seconds since the Unix epoch.
    obtained_at: u64,
    value: T,
}

#[derive(Serialize, Deserialize)]
struct TssValue {
    status: SigningStatus,
    tss_status: Option<i64>,
    detail: String,
}

impl SigningCache {
    /// A cache in `dir` (created on first write) with the standard one-hour TTL.
    pub fn new(dir: PathBuf) -> Self {
        SigningCache {
            dir,
            ttl: CACHE_TTL,
        }
    }

    /// The same cache with another TTL.
    pub fn with_ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The file name for a TSS answer: `tss-<chip>-<board>-<UniqueBuildID hex>.json`.
    pub fn tss_file(&self, key: &TssKey) -> PathBuf {
        let ubid: String = key
            .unique_build_id
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        self.dir.join(format!(
            "tss-{:04x}-{:02x}-{ubid}.json",
            key.chip_id, key.board_id
        ))
    }

    fn ipswme_file(&self, product_type: &str) -> PathBuf {
        // Product types are validated (letters, digits, comma) before they get here.
        self.dir.join(format!("ipswme-{product_type}.json"))
    }

    /// A fresh Signed/NotSigned answer from `server` for `key`, if there is one.
    pub fn get_tss(&self, key: &TssKey, server: &str, now: SystemTime) -> Option<IdentityAnswer> {
        let (value, obtained_at): (TssValue, _) = self.read(&self.tss_file(key), server, now)?;
        matches!(
            value.status,
            SigningStatus::Signed | SigningStatus::NotSigned
        )
        .then(|| IdentityAnswer {
            status: value.status,
            tss_status: value.tss_status,
            detail: value.detail,
            obtained_at,
            source: Some("cache"),
        })
    }

    /// Forget the answer for `key` (a refusal that ipsw.me disputes must be asked again
    /// next time, not served from the cache). A missing entry is not an error.
    pub fn remove_tss(&self, key: &TssKey) -> std::io::Result<()> {
        match std::fs::remove_file(self.tss_file(key)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    /// Store a Signed/NotSigned answer; anything else is not written (returns `Ok(false)`).
    pub fn put_tss(
        &self,
        key: &TssKey,
        server: &str,
        answer: &IdentityAnswer,
    ) -> std::io::Result<bool> {
        if !matches!(
            answer.status,
            SigningStatus::Signed | SigningStatus::NotSigned
        ) {
            return Ok(false);
        }
        let value = TssValue {
            status: answer.status,
            tss_status: answer.tss_status,
            detail: answer.detail.clone(),
        };
        self.write(&self.tss_file(key), server, answer.obtained_at, &value)?;
        Ok(true)
    }

    /// A fresh ipsw.me firmware list for `product_type` from `server`.
    pub fn get_ipswme(
        &self,
        product_type: &str,
        server: &str,
        now: SystemTime,
    ) -> Option<Vec<IpswMeFirmware>> {
        self.read(&self.ipswme_file(product_type), server, now)
            .map(|(list, _)| list)
    }

    pub fn put_ipswme(
        &self,
        product_type: &str,
        server: &str,
        list: &[IpswMeFirmware],
        obtained_at: SystemTime,
    ) -> std::io::Result<()> {
        self.write(&self.ipswme_file(product_type), server, obtained_at, &list)
    }

    fn read<T: DeserializeOwned>(
        &self,
        path: &Path,
        server: &str,
        now: SystemTime,
    ) -> Option<(T, SystemTime)> {
        // A FIFO, a device or a huge file planted in the cache is a miss, never a hang.
        let bytes = crate::input::read_bounded_nofollow(path, MAX_ENTRY).ok()?;
        let entry: Entry<T> = serde_json::from_slice(&bytes).ok()?;
        if entry.format != FORMAT || entry.server != server {
            return None;
        }
        let obtained_at = UNIX_EPOCH + Duration::from_secs(entry.obtained_at);
        // An entry from the future (clock changed) is not trusted either.
        let age = now.duration_since(obtained_at).ok()?;
        (age < self.ttl).then_some((entry.value, obtained_at))
    }

    fn write<T: Serialize>(
        &self,
        path: &Path,
        server: &str,
        obtained_at: SystemTime,
        value: &T,
    ) -> std::io::Result<()> {
        let entry = Entry {
            format: FORMAT,
            server: server.to_owned(),
            obtained_at: obtained_at
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            value,
        };
        let json = serde_json::to_vec_pretty(&entry).map_err(std::io::Error::other)?;
        std::fs::create_dir_all(&self.dir)?;
        let tmp = self.dir.join(temp_name(path));
        let result = (|| {
            let mut file = std::fs::File::create(&tmp)?;
            file.write_all(&json)?;
            file.sync_all()?;
            drop(file);
            std::fs::rename(&tmp, path)
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        result
    }
}

/// `.<name>.<pid>.<random>.tmp`: unique per writer, hidden, in the entry's directory (a
/// rename is only atomic within one file system).
fn temp_name(path: &Path) -> String {
    let mut salt = [0u8; 8];
    // Uniqueness, not secrecy: fall back to the clock if the RNG fails.
    if getrandom::fill(&mut salt).is_err() {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        salt = nanos.to_le_bytes();
    }
    format!(
        ".{}.{}.{:016x}.tmp",
        path.file_name()
            .map_or("entry".into(), |n| n.to_string_lossy()),
        std::process::id(),
        u64::from_le_bytes(salt)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn key() -> TssKey {
        TssKey {
            unique_build_id: vec![0xab; 20],
            chip_id: 0x8010,
            board_id: 0x0c,
        }
    }

    fn answer(status: SigningStatus, at: SystemTime) -> IdentityAnswer {
        IdentityAnswer {
            status,
            tss_status: Some(94),
            detail: "TSS STATUS=94".into(),
            obtained_at: at,
            source: Some("tss"),
        }
    }

    const SERVER: &str = "https://gs.apple.com/TSS/controller?action=2";

    #[test]
    fn round_trip_ttl_and_server() {
        let dir = tempfile::tempdir().unwrap();
        let cache = SigningCache::new(dir.path().join("sub"));
        let t0 = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert!(cache
            .put_tss(&key(), SERVER, &answer(SigningStatus::NotSigned, t0))
            .unwrap());
        let name = cache.tss_file(&key());
        assert!(name.ends_with(format!("tss-8010-0c-{}.json", "ab".repeat(20))));

        let hit = cache
            .get_tss(&key(), SERVER, t0 + Duration::from_secs(3599))
            .unwrap();
        assert_eq!(hit.status, SigningStatus::NotSigned);
        assert_eq!(hit.obtained_at, t0);
        assert_eq!(hit.source, Some("cache"));
        assert!(
            cache.get_tss(&key(), SERVER, t0 + CACHE_TTL).is_none(),
            "expired"
        );
        assert!(
            cache
                .get_tss(&key(), SERVER, t0 - Duration::from_secs(5))
                .is_none(),
            "future"
        );
        assert!(
            cache.get_tss(&key(), "http://127.0.0.1:1/", t0).is_none(),
            "other server"
        );
        let other = TssKey {
            board_id: 8,
            ..key()
        };
        assert!(cache.get_tss(&other, SERVER, t0).is_none());
    }

    #[test]
    fn unknown_is_never_written() {
        let dir = tempfile::tempdir().unwrap();
        let cache = SigningCache::new(dir.path().to_path_buf());
        let now = SystemTime::now();
        assert!(!cache
            .put_tss(&key(), SERVER, &answer(SigningStatus::Unknown, now))
            .unwrap());
        assert!(!cache.tss_file(&key()).exists());
        assert!(cache.get_tss(&key(), SERVER, now).is_none());
    }

    #[test]
    fn corrupt_entries_are_misses() {
        let dir = tempfile::tempdir().unwrap();
        let cache = SigningCache::new(dir.path().to_path_buf());
        std::fs::write(cache.tss_file(&key()), b"{\"format\":1,").unwrap();
        assert!(cache.get_tss(&key(), SERVER, SystemTime::now()).is_none());
    }

    #[test]
    fn concurrent_writers_leave_a_valid_entry() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Arc::new(SigningCache::new(dir.path().to_path_buf()));
        let now = SystemTime::now();
        let threads: Vec<_> = (0..8)
            .map(|i| {
                let cache = Arc::clone(&cache);
                std::thread::spawn(move || {
                    let status = if i % 2 == 0 {
                        SigningStatus::Signed
                    } else {
                        SigningStatus::NotSigned
                    };
                    for _ in 0..20 {
                        cache.put_tss(&key(), SERVER, &answer(status, now)).unwrap();
                        // Every read in the middle of the storm finds a whole entry.
                        assert!(cache.get_tss(&key(), SERVER, now).is_some());
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert!(cache.get_tss(&key(), SERVER, now).is_some());
        let leftovers: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .filter_map(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }
}
