//! `scan --shard K/N`: split one library over N machines (or N jobs) that agree, without
//! talking to each other, on who checks which file.
//!
//! A file belongs to shard `first 8 bytes of SHA-256(key), big-endian, mod N`, where the
//! key is its path relative to the folder it was found under, `/`-separated
//! (`iPhone/iPhone_4.7_15.7_19H12_Restore.ipsw` under `/mnt/mirror`); a file named on
//! the command line is keyed by its file name, and a URL (`--urls`) by the URL itself.
//! Relative, so machines that mount the shared mirror at different places still agree;
//! SHA-256, so the split is even and the same in every version and on every platform
//! (`printf %s KEY | sha256sum` reproduces it). K counts from 0, as Kubernetes'
//! `$JOB_COMPLETION_INDEX` does: the shards of N are `0/N` … `N-1/N`.

use std::path::{Component, Path, PathBuf};
use std::str::FromStr;

use crate::digest::DigestAlgorithm;

/// One shard of N.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub index: u64,
    pub count: u64,
}

/// The most shards a library is split into (a typo like `3/30000000` fails early).
pub const MAX_SHARDS: u64 = 1 << 20;

impl FromStr for Shard {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("--shard wants K/N with 0 <= K < N <= {MAX_SHARDS}, got \"{s}\"");
        let (k, n) = s.split_once('/').ok_or_else(bad)?;
        let index: u64 = k.trim().parse().map_err(|_| bad())?;
        let count: u64 = n.trim().parse().map_err(|_| bad())?;
        if count == 0 || count > MAX_SHARDS || index >= count {
            return Err(bad());
        }
        Ok(Shard { index, count })
    }
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl Shard {
    /// The shard of N that `key` belongs to.
    pub fn of(key: &str, count: u64) -> u64 {
        let digest = DigestAlgorithm::Sha256.digest(key.as_bytes());
        let mut first = [0u8; 8];
        first.copy_from_slice(&digest[..8]);
        u64::from_be_bytes(first) % count.max(1)
    }

    /// Whether `key` is this shard's.
    pub fn owns(&self, key: &str) -> bool {
        Shard::of(key, self.count) == self.index
    }

    /// The key of a file found at `path` by a scan of `roots` (see the module doc).
    pub fn key(path: &Path, roots: &[PathBuf]) -> String {
        let relative = roots
            .iter()
            .filter(|r| r.as_path() != path)
            .find_map(|r| path.strip_prefix(r).ok())
            .filter(|rel| !rel.as_os_str().is_empty());
        match relative {
            Some(rel) => slash_joined(rel),
            None => path
                .file_name()
                .map_or_else(|| slash_joined(path), |n| n.to_string_lossy().into_owned()),
        }
    }
}

fn slash_joined(path: &Path) -> String {
    path.components()
        .filter_map(|c| match c {
            Component::Normal(part) => Some(part.to_string_lossy().into_owned()),
            _ => None,
        })
        .collect::<Vec<_>>()
        .join("/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_k_of_n_and_refuses_the_rest() {
        assert_eq!("0/4".parse::<Shard>(), Ok(Shard { index: 0, count: 4 }));
        assert_eq!("3/4".parse::<Shard>(), Ok(Shard { index: 3, count: 4 }));
        for bad in ["4/4", "1/0", "x/2", "1", "-1/2", "1/2/3", ""] {
            assert!(bad.parse::<Shard>().is_err(), "{bad}");
        }
    }

    #[test]
    fn the_key_is_relative_to_the_root_so_mount_points_do_not_matter() {
        let a = Shard::key(
            Path::new("/mnt/a/mirror/iPhone/x.ipsw"),
            &[PathBuf::from("/mnt/a/mirror")],
        );
        let b = Shard::key(
            Path::new("/srv/mirror/iPhone/x.ipsw"),
            &[PathBuf::from("/srv/mirror/")],
        );
        assert_eq!(a, "iPhone/x.ipsw");
        assert_eq!(a, b);
        // A file named on the command line: its name.
        let c = Shard::key(Path::new("/tmp/x.ipsw"), &[PathBuf::from("/tmp/x.ipsw")]);
        assert_eq!(c, "x.ipsw");
    }

    #[test]
    fn the_assignment_is_fixed_and_every_key_has_exactly_one_shard() {
        // Pinned: machines running different builds must agree.
        // printf %s 'iPhone/x.ipsw' | sha256sum → the first 16 hex digits, mod N.
        let digest = DigestAlgorithm::Sha256.digest(b"iPhone/x.ipsw");
        let n = u64::from_be_bytes(digest[..8].try_into().unwrap());
        assert_eq!(Shard::of("iPhone/x.ipsw", 7), n % 7);
        for count in [1, 2, 3, 5, 16] {
            let mut sizes = vec![0usize; count as usize];
            for i in 0..2000 {
                let key = format!("lib/{i}.ipsw");
                let owners: Vec<u64> = (0..count)
                    .filter(|&k| Shard { index: k, count }.owns(&key))
                    .collect();
                assert_eq!(owners.len(), 1, "{key} of {count}");
                sizes[owners[0] as usize] += 1;
            }
            // Even enough: every shard gets at least half its fair share.
            let fair = 2000 / count as usize;
            assert!(sizes.iter().all(|&s| s >= fair / 2), "{sizes:?}");
        }
    }
}
