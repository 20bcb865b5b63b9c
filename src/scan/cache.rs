//! The verified-results cache: a file whose verification completed is not hashed again
//! while it is unchanged.
//!
//! - **Key**: (device, inode, size, mtime in ns) of the file, the tool version, the
//!   [`RULES_VERSION`], and the options that change what is verified: the boards asked
//!   about (or "every customer identity") and Erase/Update. Any change of the file (a copy
//!   over it, a `touch`, a resumed download) changes the key, so a stale answer is never
//!   served; a corrected digest rule (a new `RULES_VERSION`) re-verifies every file.
//! - **What is stored**: the verification findings (component items, damaged entries,
//!   entries CRC-checked, whole-file digests) — exactly what a report needs that only
//!   hashing can give. The report itself is rebuilt from the file (its directory and
//!   manifest, milliseconds) so compatibility and the firmware facts are always current.
//!   The signing answer is never stored here: it has its own one-hour cache.
//! - **What may be stored**: only a full verification that completed — not `--quick`,
//!   not interrupted, and not a file that changed while it was read (size, mtime and
//!   inode are compared again after hashing). Damage that was found *is* stored: an
//!   unchanged damaged file stays damaged.
//! - **One JSON file per key** under `<cache dir>/verified/`, named by a SHA-256 of the
//!   key, written to a temporary file in the same directory and renamed over the entry:
//!   two scans running at once each leave whole entries, a reader sees an old or a new
//!   entry, never a mix. An entry that fails to parse, or whose key differs, is a miss,
//!   never an error. Nothing else in the directory is touched; entries of deleted files
//!   are small (a few KB) and simply never read again.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::digest::{from_hex, to_hex, DigestAlgorithm};
use crate::manifest::RestoreBehavior;
use crate::verify::{ComponentFinding, ComponentStatus, EntryDamage, Verification};

use super::walk::FileStat;

/// Bumped when the entry format changes; other versions are misses.
const FORMAT: u32 = 1;
/// The largest cache entry read: one file's verification (a few hundred components)
/// is tens of kB; anything larger was not written by us.
const MAX_ENTRY: u64 = 16 << 20;

/// The version of the verification rules and of the report schema a cached result was
/// computed under; part of every [`CacheKey`], so an entry of another version is a miss
/// and the file is verified again.
///
/// Bump it when a verification rule changes (a digest rule of FIRMWARE.md §3, what is
/// hashed or skipped, what counts as damage) or when the report schema changes
/// (`report::SCHEMA`, now 2): a cached verdict must never outlive the rule that gave it,
/// even within one release, when the tool version stays the same.
pub const RULES_VERSION: u32 = 2;

/// What must be equal for a cached verification to be reused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheKey {
    pub dev: u64,
    pub ino: u64,
    pub size: u64,
    pub mtime_ns: i64,
    pub tool_version: String,
    /// [`RULES_VERSION`] when the entry was computed.
    pub rules_version: u32,
    /// Boards asked about, sorted; empty: every customer identity.
    pub boards: Vec<String>,
    /// `erase` or `update`.
    pub behavior: String,
}

impl CacheKey {
    pub fn new(stat: FileStat, boards: Option<Vec<String>>, behavior: RestoreBehavior) -> Self {
        let mut boards = boards.unwrap_or_default();
        boards.sort();
        CacheKey {
            dev: stat.dev,
            ino: stat.ino,
            size: stat.size,
            mtime_ns: stat.mtime_ns,
            tool_version: env!("CARGO_PKG_VERSION").to_owned(),
            rules_version: RULES_VERSION,
            boards,
            behavior: match behavior {
                RestoreBehavior::Erase => "erase",
                RestoreBehavior::Update => "update",
            }
            .to_owned(),
        }
    }

    /// `<sha256 of the key, 40 hex>.json`.
    fn file_name(&self) -> String {
        let json = serde_json::to_vec(self).expect("a key serializes");
        let digest = to_hex(&DigestAlgorithm::Sha256.digest(&json));
        format!("{}.json", &digest[..40])
    }
}

#[derive(Serialize, Deserialize)]
struct Stored {
    format: u32,
    key: CacheKey,
    /// The path it was verified under (informational).
    path: String,
    /// Seconds since the Unix epoch.
    stored_at: u64,
    components: Vec<StoredFinding>,
    damaged_entries: Vec<StoredDamage>,
    /// Algorithm name → hex digest.
    whole_file: BTreeMap<String, String>,
    entries_checked: usize,
}

#[derive(Serialize, Deserialize)]
struct StoredFinding {
    name: String,
    board: Option<String>,
    path: Option<String>,
    algorithm: Option<String>,
    status: String,
    expected: Option<String>,
    actual: Option<String>,
    reason: Option<String>,
}

#[derive(Serialize, Deserialize)]
struct StoredDamage {
    entry: String,
    problem: String,
    crc: bool,
}

fn algorithm_named(name: &str) -> Option<DigestAlgorithm> {
    [
        DigestAlgorithm::Sha1,
        DigestAlgorithm::Sha256,
        DigestAlgorithm::Sha384,
    ]
    .into_iter()
    .find(|a| a.name() == name)
}

fn status_named(name: &str) -> Option<ComponentStatus> {
    [
        ComponentStatus::Ok,
        ComponentStatus::Mismatch,
        ComponentStatus::Missing,
        ComponentStatus::Skipped,
        ComponentStatus::Unverifiable,
    ]
    .into_iter()
    .find(|s| ComponentStatus::name(*s) == name)
}

impl Stored {
    fn into_verification(self) -> Option<Verification> {
        let mut components = Vec::with_capacity(self.components.len());
        for c in self.components {
            let algorithm = match c.algorithm {
                Some(a) => Some(algorithm_named(&a)?),
                None => None,
            };
            components.push(ComponentFinding {
                name: c.name,
                board: c.board,
                path: c.path,
                algorithm,
                status: status_named(&c.status)?,
                expected: c.expected,
                actual: c.actual,
                reason: c.reason,
            });
        }
        let mut whole_file = BTreeMap::new();
        for (name, hex) in self.whole_file {
            whole_file.insert(algorithm_named(&name)?, from_hex(&hex)?);
        }
        Some(Verification {
            components,
            damaged_entries: self
                .damaged_entries
                .into_iter()
                .map(|d| EntryDamage {
                    entry: d.entry,
                    problem: d.problem,
                    crc: d.crc,
                })
                .collect(),
            whole_file,
            hashed: true,
            entries_checked: self.entries_checked,
            cancelled: false,
            // The components' covered reasons are kept; the note is about that run.
            covered_by: None,
        })
    }
}

/// A directory of verified results.
#[derive(Debug, Clone)]
pub struct VerifiedCache {
    dir: PathBuf,
}

impl VerifiedCache {
    pub fn new(dir: PathBuf) -> Self {
        VerifiedCache { dir }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The entry file for `key`.
    pub fn file(&self, key: &CacheKey) -> PathBuf {
        self.dir.join(key.file_name())
    }

    /// The cached verification for `key`, if there is a valid one that has every
    /// whole-file digest in `need`.
    pub fn get(&self, key: &CacheKey, need: &[DigestAlgorithm]) -> Option<Verification> {
        // A FIFO, a device or a huge file planted in the cache is a miss, never a hang.
        let bytes = crate::input::read_bounded_nofollow(&self.file(key), MAX_ENTRY).ok()?;
        let stored: Stored = serde_json::from_slice(&bytes).ok()?;
        if stored.format != FORMAT || stored.key != *key {
            return None;
        }
        let v = stored.into_verification()?;
        need.iter()
            .all(|a| v.whole_file.contains_key(a))
            .then_some(v)
    }

    /// Store a completed verification (atomically: temporary file, then rename).
    pub fn put(&self, key: &CacheKey, path: &Path, v: &Verification) -> std::io::Result<()> {
        let stored = Stored {
            format: FORMAT,
            key: key.clone(),
            path: path.display().to_string(),
            stored_at: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            components: v
                .components
                .iter()
                .map(|c| StoredFinding {
                    name: c.name.clone(),
                    board: c.board.clone(),
                    path: c.path.clone(),
                    algorithm: c.algorithm.map(|a| a.name().to_owned()),
                    status: ComponentStatus::name(c.status).to_owned(),
                    expected: c.expected.clone(),
                    actual: c.actual.clone(),
                    reason: c.reason.clone(),
                })
                .collect(),
            damaged_entries: v
                .damaged_entries
                .iter()
                .map(|d| StoredDamage {
                    entry: d.entry.clone(),
                    problem: d.problem.clone(),
                    crc: d.crc,
                })
                .collect(),
            whole_file: v
                .whole_file
                .iter()
                .map(|(a, d)| (a.name().to_owned(), to_hex(d)))
                .collect(),
            entries_checked: v.entries_checked,
        };
        let json = serde_json::to_vec(&stored).map_err(std::io::Error::other)?;
        std::fs::create_dir_all(&self.dir)?;
        let target = self.file(key);
        let tmp = self.dir.join(temp_name(&target));
        let result = (|| {
            let mut file = std::fs::File::create(&tmp)?;
            file.write_all(&json)?;
            file.sync_all()?;
            drop(file);
            std::fs::rename(&tmp, &target)
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        result
    }
}

/// `.<name>.<pid>.<random>.tmp`: unique per writer, in the entry's directory (a rename
/// is only atomic within one file system).
fn temp_name(path: &Path) -> String {
    let mut salt = [0u8; 8];
    if getrandom::fill(&mut salt).is_err() {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        salt = nanos.to_le_bytes();
    }
    format!(
        ".{}.{}.{}.tmp",
        path.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        std::process::id(),
        to_hex(&salt)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(size: u64) -> CacheKey {
        CacheKey::new(
            FileStat {
                dev: 1,
                ino: 2,
                size,
                mtime_ns: 3,
            },
            Some(vec!["d101ap".into()]),
            RestoreBehavior::Erase,
        )
    }

    fn verification() -> Verification {
        Verification {
            components: vec![ComponentFinding {
                name: "RestoreSEP".into(),
                board: None,
                path: Some("sep.im4p".into()),
                algorithm: Some(DigestAlgorithm::Sha384),
                status: ComponentStatus::Mismatch,
                expected: Some("aa".into()),
                actual: Some("bb".into()),
                reason: Some("IM4P retagged sepi→rsep".into()),
            }],
            damaged_entries: vec![EntryDamage {
                entry: "sep.im4p".into(),
                problem: "CRC-32 mismatch".into(),
                crc: true,
            }],
            whole_file: [(DigestAlgorithm::Sha1, vec![7; 20])].into_iter().collect(),
            hashed: true,
            entries_checked: 42,
            cancelled: false,
            covered_by: None,
        }
    }

    #[test]
    fn an_entry_round_trips_and_only_for_its_own_key() {
        let dir = tempfile::tempdir().unwrap();
        let cache = VerifiedCache::new(dir.path().join("verified"));
        let v = verification();
        cache.put(&key(10), Path::new("a.ipsw"), &v).unwrap();
        let back = cache.get(&key(10), &[DigestAlgorithm::Sha1]).unwrap();
        assert_eq!(back.components, v.components);
        assert_eq!(back.damaged_entries, v.damaged_entries);
        assert_eq!(back.whole_file, v.whole_file);
        assert_eq!(back.entries_checked, 42);
        assert!(back.hashed && !back.cancelled);
        assert!(cache.get(&key(11), &[]).is_none(), "another size");
        assert!(
            cache.get(&key(10), &[DigestAlgorithm::Sha256]).is_none(),
            "a whole-file digest it does not have"
        );
        // A damaged entry, or one renamed over another key's file, is a miss.
        std::fs::write(cache.file(&key(10)), b"{\"format\": 1").unwrap();
        assert!(cache.get(&key(10), &[]).is_none());
        std::fs::copy(
            {
                cache.put(&key(12), Path::new("b.ipsw"), &v).unwrap();
                cache.file(&key(12))
            },
            cache.file(&key(10)),
        )
        .unwrap();
        assert!(cache.get(&key(10), &[]).is_none());
        let leftovers: Vec<_> = std::fs::read_dir(cache.dir())
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .ends_with(".tmp")
            })
            .collect();
        assert!(leftovers.is_empty());
    }

    #[test]
    fn another_rules_version_is_a_miss() {
        let dir = tempfile::tempdir().unwrap();
        let cache = VerifiedCache::new(dir.path().join("verified"));
        let v = verification();
        // Verified under an older rules version: the same file (same stat, same options)
        // checked by this build must not be served the old answer.
        let old = CacheKey {
            rules_version: RULES_VERSION - 1,
            ..key(10)
        };
        cache.put(&old, Path::new("a.ipsw"), &v).unwrap();
        assert!(cache.get(&old, &[]).is_some(), "its own version hits");
        assert_eq!(key(10).rules_version, RULES_VERSION);
        assert_ne!(cache.file(&old), cache.file(&key(10)), "another entry file");
        assert!(
            cache.get(&key(10), &[]).is_none(),
            "a new rules version misses"
        );
        // Even an old entry found under the new key's name is a miss.
        std::fs::copy(cache.file(&old), cache.file(&key(10))).unwrap();
        assert!(cache.get(&key(10), &[]).is_none());
        // And an entry written before the rules version was part of the key (no
        // `rules_version` at all) is a miss, not an error.
        let mut legacy: serde_json::Value =
            serde_json::from_slice(&std::fs::read(cache.file(&old)).unwrap()).unwrap();
        legacy["key"]
            .as_object_mut()
            .unwrap()
            .remove("rules_version");
        std::fs::write(cache.file(&key(10)), serde_json::to_vec(&legacy).unwrap()).unwrap();
        assert!(cache.get(&key(10), &[]).is_none());
        // The new version's own entry hits again.
        cache.put(&key(10), Path::new("a.ipsw"), &v).unwrap();
        assert!(cache.get(&key(10), &[]).is_some());
    }
}
