//! Hosts-file lines that redirect `gs.apple.com`.
//!
//! Old jailbreak-era tools (TinyUmbrella, Cydia's "SHSH" server, iFaith guides) told users
//! to point `gs.apple.com` at another server in `/etc/hosts`. The line outlives the tool:
//! every later restore then asks the wrong server and fails with error 3194, even for a
//! build Apple signs. Finder gives no hint, so we look for the line and name it.

use std::path::Path;

use serde::Serialize;

/// The host a restore asks for its ticket.
pub const TSS_HOST: &str = "gs.apple.com";

/// One hosts-file line that maps `gs.apple.com` somewhere.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HostsRedirect {
    /// 1-based line number.
    pub line: usize,
    /// The address it maps the host to.
    pub address: String,
    /// The line as written (trimmed).
    pub entry: String,
}

/// The lines of `text` that map `host` (exactly, ignoring case) to an address. Comments
/// (`#` to the end of the line) are ignored, so `# 127.0.0.1 gs.apple.com` is not one.
pub fn find_hosts_redirects(text: &str, host: &str) -> Vec<HostsRedirect> {
    text.lines()
        .enumerate()
        .filter_map(|(i, raw)| {
            let live = raw.split('#').next().unwrap_or("");
            let mut tokens = live.split_whitespace();
            let address = tokens.next()?;
            tokens
                .any(|name| name.eq_ignore_ascii_case(host))
                .then(|| HostsRedirect {
                    line: i + 1,
                    address: address.to_owned(),
                    entry: raw.trim().to_owned(),
                })
        })
        .collect()
}

/// The largest hosts file read: ad-blocking lists run to a few MB (StevenBlack's unified
/// list is about 4 MB); anything far larger is not a hosts file.
pub const MAX_HOSTS_FILE: u64 = 64 << 20;

/// The `gs.apple.com` redirects in the hosts file at `path`. A missing file has none. A
/// FIFO, a device, a directory or a file over [`MAX_HOSTS_FILE`] is an error, found
/// without blocking on it or reading it whole ([`crate::input`]).
pub fn hosts_redirects(path: &Path) -> std::io::Result<Vec<HostsRedirect>> {
    match crate::input::read_bounded(path, MAX_HOSTS_FILE) {
        Ok(bytes) => Ok(find_hosts_redirects(
            &String::from_utf8_lossy(&bytes),
            TSS_HOST,
        )),
        Err(crate::input::InputError::NotFound) => Ok(Vec::new()),
        Err(e) => Err(e.into_io()),
    }
}

/// The sentence a report adds when there are redirects.
pub(crate) fn describe_redirects(path: &Path, redirects: &[HostsRedirect]) -> Option<String> {
    if redirects.is_empty() {
        return None;
    }
    let lines: Vec<String> = redirects
        .iter()
        .map(|r| format!("line {} → {}", r.line, r.address))
        .collect();
    Some(format!(
        "{} redirects {TSS_HOST} ({}): a restore would fail with error 3194 until {} removed.",
        path.display(),
        lines.join(", "),
        if redirects.len() == 1 {
            "that line is"
        } else {
            "those lines are"
        }
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_live_lines_only() {
        let text = "127.0.0.1 localhost\n\
                    # 74.208.105.171 gs.apple.com\n\
                    \t74.208.105.171\tGS.Apple.com   # TinyUmbrella\n\
                    10.0.0.1 notgs.apple.com gs.apple.com.evil\n\
                    ::1 localhost gs.apple.com\n\
                    10.0.0.2 #gs.apple.com\n";
        let found = find_hosts_redirects(text, TSS_HOST);
        assert_eq!(
            found.iter().map(|r| r.line).collect::<Vec<_>>(),
            vec![3, 5],
            "{found:?}"
        );
        assert_eq!(found[0].address, "74.208.105.171");
        assert_eq!(found[1].address, "::1");
        assert!(found[0].entry.contains("TinyUmbrella"));
    }

    #[test]
    fn windows_line_endings_and_missing_files() {
        let found = find_hosts_redirects("a b\r\n1.2.3.4 gs.apple.com\r\n", TSS_HOST);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].line, 2);
        assert_eq!(
            hosts_redirects(Path::new("/nonexistent/ipswcheck/hosts")).unwrap(),
            vec![]
        );
    }

    #[test]
    fn description_names_file_and_lines() {
        let r = find_hosts_redirects("1.2.3.4 gs.apple.com", TSS_HOST);
        let text = describe_redirects(Path::new("/etc/hosts"), &r).unwrap();
        assert!(text.contains("/etc/hosts") && text.contains("line 1") && text.contains("3194"));
        assert_eq!(describe_redirects(Path::new("/etc/hosts"), &[]), None);
    }
}
