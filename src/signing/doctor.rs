//! `ipswcheck doctor`: the machine-side causes of a failed signing step.
//!
//! A restore can fail with 3194 for a signed build when `gs.apple.com` is redirected in
//! the hosts file, and with 3004/3014/17/1004/1013 when Apple's server cannot be reached
//! (FIRMWARE.md §5) — often because of a proxy. This report looks at those three things
//! without guessing: the hosts file, one request to the TSS URL, and the proxy variables
//! the HTTP stack will honour.
//!
//! A certificate that is not trusted is not a network problem: the server was reached and
//! refused (FIRMWARE.md §4). It is reported as such, with the hint that matters on a
//! network whose proxy inspects TLS: `--ca-file` with the proxy's root.

use std::fmt;
use std::path::PathBuf;

use serde::Serialize;

use super::hosts::{hosts_redirects, HostsRedirect, TSS_HOST};
use super::http::Http;
use super::{SigningError, SigningOptions};

/// What `doctor` found.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DoctorReport {
    pub hosts_file: PathBuf,
    /// Lines redirecting `gs.apple.com`.
    pub hosts_redirects: Vec<HostsRedirect>,
    /// Why the hosts file could not be read, when it could not (a missing file is fine).
    pub hosts_error: Option<String>,
    pub tss_url: String,
    pub tss: Reachability,
    /// Proxy variables set in the environment, as `(name, value)`, passwords masked.
    pub proxies: Vec<(String, String)>,
}

/// Whether the TSS server answered.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Reachability {
    /// Some HTTP answer came back (any status: the server is there).
    Reachable { http_status: u16, latency_ms: u64 },
    /// No HTTP answer: connection, TLS or timeout failure.
    Unreachable { error: String },
    /// The server was reached, but its certificate was refused: `error` is
    /// "<host>'s certificate was not trusted: <reason>".
    Untrusted { host: String, error: String },
    /// Offline mode: not tried.
    Skipped,
}

impl DoctorReport {
    /// Whether nothing here would stop a restore's signing step.
    pub fn healthy(&self) -> bool {
        self.hosts_redirects.is_empty() && matches!(self.tss, Reachability::Reachable { .. })
    }
}

/// The proxy variables reqwest (and most tools) honour, in both spellings.
const PROXY_VARS: [&str; 4] = ["HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY", "NO_PROXY"];

/// Inspect the hosts file, try the TSS URL once (unless offline), list proxy variables.
pub fn doctor(opts: &SigningOptions) -> DoctorReport {
    let (hosts_redirects, hosts_error) = match hosts_redirects(&opts.hosts_file) {
        Ok(found) => (found, None),
        Err(e) => (Vec::new(), Some(e.to_string())),
    };
    let tss = if opts.offline {
        Reachability::Skipped
    } else {
        reach(opts)
    };
    DoctorReport {
        hosts_file: opts.hosts_file.clone(),
        hosts_redirects,
        hosts_error,
        tss_url: opts.tss_url.clone(),
        tss,
        proxies: proxy_vars(|name| std::env::var(name).ok()),
    }
}

fn reach(opts: &SigningOptions) -> Reachability {
    let direct = super::http::is_loopback_url(&opts.tss_url);
    let http = match Http::new(direct, opts.ca_file.as_deref()) {
        Ok(http) => http,
        Err(e) => {
            return Reachability::Unreachable {
                error: e.to_string(),
            }
        }
    };
    match http.get(
        &opts.tss_url,
        &[("User-Agent", "InetURL/1.0")],
        opts.timeout,
    ) {
        Ok(reply) => Reachability::Reachable {
            http_status: reply.status,
            latency_ms: u64::try_from(reply.elapsed.as_millis()).unwrap_or(u64::MAX),
        },
        Err(SigningError::Untrusted { host, reason }) => Reachability::Untrusted {
            error: SigningError::Untrusted {
                host: host.clone(),
                reason,
            }
            .to_string(),
            host,
        },
        Err(e) => Reachability::Unreachable {
            error: e.to_string(),
        },
    }
}

fn proxy_vars(get: impl Fn(&str) -> Option<String>) -> Vec<(String, String)> {
    let mut found = Vec::new();
    for upper in PROXY_VARS {
        for name in [upper.to_owned(), upper.to_ascii_lowercase()] {
            if let Some(value) = get(&name).filter(|v| !v.is_empty()) {
                found.push((name, mask_password(&value)));
            }
        }
    }
    found
}

/// `http://user:secret@proxy:3128` → `http://user:***@proxy:3128`: the report may be
/// pasted into an issue.
fn mask_password(value: &str) -> String {
    let Some((scheme_end, rest)) = value.find("://").map(|i| (i + 3, &value[i + 3..])) else {
        return value.to_owned();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let Some(at) = rest[..authority_end].rfind('@') else {
        return value.to_owned();
    };
    match rest[..at].find(':') {
        Some(colon) => format!(
            "{}{}:***{}",
            &value[..scheme_end],
            &rest[..colon],
            &rest[at..]
        ),
        None => value.to_owned(),
    }
}

impl fmt::Display for DoctorReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Paths, hosts-file lines, URLs, server errors and proxy values are the world's
        // words: escaped, so none can print a line of its own or repaint the terminal.
        use crate::render::escape;
        let hosts = escape(&self.hosts_file.display().to_string());
        match (&self.hosts_error, self.hosts_redirects.as_slice()) {
            (Some(e), _) => writeln!(f, "hosts file  could not read {hosts}: {}", escape(e))?,
            (None, []) => writeln!(f, "hosts file  ok: {hosts} does not redirect {TSS_HOST}")?,
            (None, found) => {
                writeln!(
                    f,
                    "hosts file  PROBLEM: {hosts} redirects {TSS_HOST}; every restore will fail with error 3194 until you remove:"
                )?;
                for r in found {
                    writeln!(f, "              line {}: {}", r.line, escape(&r.entry))?;
                }
            }
        }
        match &self.tss {
            Reachability::Reachable {
                http_status,
                latency_ms,
            } => writeln!(
                f,
                "TSS server  ok: {} answered HTTP {http_status} in {latency_ms} ms",
                escape(&self.tss_url)
            )?,
            Reachability::Unreachable { error } => writeln!(
                f,
                "TSS server  PROBLEM: {}\n              a restore would fail with 3004/3014/17/1004/1013 until Apple's server is reachable",
                escape(error)
            )?,
            Reachability::Untrusted { host, error } => writeln!(
                f,
                "TSS server  PROBLEM: {}\n              \
                 this is not a network failure: {host} answered, but its certificate did not pass \
                 verification (ipswcheck trusts the system's roots and Apple's own, and never \
                 turns verification off)\n              \
                 if a proxy or security software on this network inspects TLS, give its root \
                 certificate with --ca-file PEM (or IPSWCHECK_CA_FILE)",
                escape(error),
                host = escape(host)
            )?,
            Reachability::Skipped => writeln!(f, "TSS server  not tried (offline)")?,
        }
        if self.proxies.is_empty() {
            writeln!(f, "proxies     none set")?;
        } else {
            writeln!(f, "proxies     set (requests to Apple go through them):")?;
            for (name, value) in &self.proxies {
                writeln!(f, "              {name}={}", escape(value))?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::DEFAULT_TSS_URL;
    use super::*;

    #[test]
    fn proxy_variables_in_both_spellings_with_passwords_masked() {
        let env = |name: &str| match name {
            "HTTPS_PROXY" => Some("http://bob:hunter2@proxy:3128".to_owned()),
            "no_proxy" => Some("localhost,127.0.0.1".to_owned()),
            "ALL_PROXY" => Some(String::new()),
            _ => None,
        };
        assert_eq!(
            proxy_vars(env),
            vec![
                (
                    "HTTPS_PROXY".to_owned(),
                    "http://bob:***@proxy:3128".to_owned()
                ),
                ("no_proxy".to_owned(), "localhost,127.0.0.1".to_owned()),
            ]
        );
        assert_eq!(mask_password("proxy:3128"), "proxy:3128");
        assert_eq!(mask_password("http://bob@proxy/"), "http://bob@proxy/");
    }

    #[test]
    fn an_untrusted_certificate_is_not_blamed_on_the_network() {
        let report = DoctorReport {
            hosts_file: PathBuf::from("/etc/hosts"),
            hosts_redirects: Vec::new(),
            hosts_error: None,
            tss_url: DEFAULT_TSS_URL.to_owned(),
            tss: Reachability::Untrusted {
                host: "gs.apple.com".into(),
                error: "gs.apple.com's certificate was not trusted: invalid peer certificate: \
                        UnknownIssuer"
                    .into(),
            },
            proxies: Vec::new(),
        };
        assert!(!report.healthy());
        let text = report.to_string();
        assert!(
            text.contains("PROBLEM: gs.apple.com's certificate was not trusted"),
            "{text}"
        );
        assert!(text.contains("not a network failure"), "{text}");
        assert!(text.contains("--ca-file"), "{text}");
        assert!(!text.contains("3004"), "{text}");
    }

    #[test]
    fn offline_report_renders() {
        let dir = tempfile::tempdir().unwrap();
        let hosts = dir.path().join("hosts");
        std::fs::write(&hosts, "127.0.0.1 localhost\n74.208.105.171 gs.apple.com\n").unwrap();
        let opts = SigningOptions {
            offline: true,
            hosts_file: hosts,
            cache_dir: None,
            ..SigningOptions::default()
        };
        let report = doctor(&opts);
        assert_eq!(report.tss, Reachability::Skipped);
        assert_eq!(report.hosts_redirects.len(), 1);
        assert!(!report.healthy());
        let text = report.to_string();
        assert!(
            text.contains("line 2: 74.208.105.171 gs.apple.com"),
            "{text}"
        );
        assert!(text.contains("3194"), "{text}");
    }
}
