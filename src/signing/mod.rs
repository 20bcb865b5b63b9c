//! Is Apple still signing this build? — predicting restore error 3194 before a restore.
//!
//! Why this file is long (~870 lines): the session (memo, cache, one deadline, two queries
//! at a time) and the combination of per-board answers with ipsw.me's word into one
//! verdict are one piece of policy; the request, HTTP, TLS, cache, hosts and doctor parts
//! are in their own files.
//!
//! A restore only works while Apple's TSS server (`gs.apple.com`) hands out a ticket for
//! the build: Finder/iTunes asks it for every restore and stops with error 3194 ("This
//! device isn't eligible for the requested build") when it refuses. So we ask the same
//! server the same question, with a fake ECID and nonce (FIRMWARE.md §4): the answer
//! depends on the build and the board, not on the device.
//!
//! The rules this module keeps, and the peer mistakes they avoid:
//! - **TSS is the authority; we never guess.** [`SigningStatus::Signed`] needs a ticket in a
//!   `STATUS=0` answer, [`SigningStatus::NotSigned`] needs `STATUS=94`. `STATUS=69` is
//!   Apple refusing a request it finds incomplete (every documented case was a signed
//!   build), so it is Unknown, as is everything else — other codes, HTTP errors, garbage,
//!   timeouts, TLS failures — with the reason. tsschecker reports "not signed" when it
//!   merely failed to ask, which sends users chasing a non-problem; blacktop/ipsw exits 0
//!   when a build is unsigned, so scripts restore anyway. The caller maps our answers to
//!   different exit codes.
//! - **The request is libtatsu's, key for key** ([`tss::build_tss_request_for`]): a request
//!   missing a key Apple expects is answered with a refusal for a signed build.
//! - **ipsw.me is a second opinion only.** Its `signed` flag lags Apple by hours: when
//!   Apple issued a ticket, Apple wins; when Apple refused (94) and ipsw.me says signed,
//!   the answer is [`SigningStatus::Disputed`] (exit 31, never cached), because Apple also
//!   refuses requests that are wrong for a device. Its `sha1sum` is advice: the caller
//!   compares it with the file but never calls a file corrupt on ipsw.me's word alone
//!   (ipsw.me has published wrong hashes: Legacy-iOS-Kit #302, idevicerestore #462).
//! - **TLS verification is always on.** Peers turn it off "to make it work"; that makes a
//!   hosts-file redirect or a proxy able to forge a "signed" answer. We have no switch for it.
//! - **A hosts-file line redirecting `gs.apple.com`** (left over from old jailbreak tools)
//!   makes every restore fail with 3194 even for signed builds: we look for it ([`hosts`]).
//! - **Bounded in time and memory**: `timeout` bounds a whole query including retries;
//!   answers larger than 8 MiB are refused (see `http.rs`).
//!
//! Answers are cached per (UniqueBuildID, chip, board) for an hour ([`cache`]); a
//! [`SigningSession`] additionally asks at most once per key for its whole life, so a
//! library scan sharing one session does one TSS query per distinct identity.

pub mod cache;
pub mod doctor;
pub mod hosts;
pub(crate) mod http;
pub mod ipswme;
pub mod tls;
pub mod tss;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::manifest::{BuildIdentity, BuildManifest};

pub use cache::SigningCache;
pub use doctor::{doctor, DoctorReport, Reachability};
pub use hosts::{find_hosts_redirects, hosts_redirects, HostsRedirect, TSS_HOST};
pub use ipswme::{ipswme_firmware, signed_builds, IpswMeFirmware};
pub use tss::{build_tss_request, parse_tss_response, TssAnswer};

use http::Http;

/// Apple's TSS endpoint, the one Finder and idevicerestore ask.
pub const DEFAULT_TSS_URL: &str = "https://gs.apple.com/TSS/controller?action=2";
/// ipsw.me's v4 API.
pub const DEFAULT_API_URL: &str = "https://api.ipsw.me/v4";
/// How long one query may take, retries included.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a cached Signed/NotSigned answer is trusted. Apple stops signing a build
/// without notice, usually a week or two after the next release; an hour is short enough
/// that a stale "signed" is unlikely and long enough that a scan of a library asks once.
pub const CACHE_TTL: Duration = Duration::from_secs(3600);

/// What Apple's signing server says about a build for a board.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SigningStatus {
    /// TSS answered `STATUS=0` with a ticket: a restore would get past the signing step.
    Signed,
    /// TSS answered `STATUS=94` (or 69): a restore would fail with error 3194.
    NotSigned,
    /// We could not find out. Never read this as "not signed".
    Unknown,
    /// Apple refused (STATUS=94) but ipsw.me lists the build as signed. Apple also answers
    /// 94 to requests that are wrong for the device (FIRMWARE.md §4), so neither source
    /// decides: exit 31 like Unknown, both named, never cached.
    Disputed,
    /// Not asked (offline, or the caller chose not to).
    Skipped,
}

impl SigningStatus {
    /// Combine the answers for several boards of one product type: a check must hold
    /// for every board, so any refusal wins, then any dispute, then any doubt.
    pub fn combine(statuses: impl IntoIterator<Item = SigningStatus>) -> SigningStatus {
        statuses
            .into_iter()
            .max_by_key(|s| match s {
                SigningStatus::Signed => 0,
                SigningStatus::Skipped => 1,
                SigningStatus::Unknown => 2,
                SigningStatus::Disputed => 3,
                SigningStatus::NotSigned => 4,
            })
            .unwrap_or(SigningStatus::Unknown)
    }
}

/// The signing part of a check. Goes into the JSON report as `checks.signing`: the field
/// names are a contract.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SigningCheck {
    pub status: SigningStatus,
    /// Where the verdict came from: `"tss"` (asked now) or `"cache"`; `None` when nobody
    /// was asked.
    pub source: Option<String>,
    /// The `STATUS=` code of the answer that decided, when there was one.
    pub tss_status: Option<i64>,
    /// One human sentence or three: the verdict, why, and what it means for a restore.
    pub message: String,
    /// ipsw.me's `signed` flag for this build, when ipsw.me answered and knows the build.
    pub ipswme_signed: Option<bool>,
    /// When the deciding answer was obtained (RFC 3339, UTC). For a cached answer this is
    /// when it was first fetched, not now.
    pub checked_at: Option<String>,
    /// Whether every answer came from the cache.
    pub cached: bool,
    /// Hosts-file lines that redirect `gs.apple.com` (a restore would fail with 3194).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub hosts_redirects: Vec<HostsRedirect>,
    /// ipsw.me's `sha1sum` for the build (Apple's whole-file SHA-1): the expected SHA-1
    /// when the user gave none.
    #[serde(skip)]
    pub ipswme_sha1: Option<Vec<u8>>,
}

impl SigningCheck {
    /// A check that was not run, with the reason.
    pub fn skipped(reason: &str) -> Self {
        SigningCheck {
            status: SigningStatus::Skipped,
            source: None,
            tss_status: None,
            message: reason.to_owned(),
            ipswme_signed: None,
            checked_at: None,
            cached: false,
            hosts_redirects: Vec::new(),
            ipswme_sha1: None,
        }
    }
}

/// Where and how to ask. The CLI builds this from [`SigningOptions::from_env`] and layers
/// its flags over it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SigningOptions {
    /// Do not touch the network: [`check_signing`] returns `Skipped`.
    pub offline: bool,
    /// Apple's TSS endpoint ([`DEFAULT_TSS_URL`]).
    pub tss_url: String,
    /// ipsw.me's v4 API base ([`DEFAULT_API_URL`]).
    pub api_url: String,
    /// Bound on one whole query, retries included.
    pub timeout: Duration,
    /// Where answers are cached; `None` disables the cache.
    pub cache_dir: Option<PathBuf>,
    /// Ignore cached answers (fresh ones are still written).
    pub refresh: bool,
    /// The hosts file to inspect for `gs.apple.com` redirects.
    pub hosts_file: PathBuf,
    /// A PEM file of extra root certificates to trust (`--ca-file`, for TLS-inspecting
    /// proxies), besides the platform's and Apple's roots ([`tls`]).
    pub ca_file: Option<PathBuf>,
    /// `--tss-dump DIR`: save every TSS request and answer there.
    pub tss_dump: Option<PathBuf>,
    /// A real device (`--device auto`, `--ecid`): requests carry its ECID, answers are
    /// neither read from nor written to the cache (they are about this device), and the
    /// verdict names it ("Apple will sign 15.8 for this iPhone (ECID …)").
    pub personal: Option<tss::PersonalDevice>,
}

impl Default for SigningOptions {
    fn default() -> Self {
        SigningOptions {
            offline: false,
            tss_url: DEFAULT_TSS_URL.to_owned(),
            api_url: DEFAULT_API_URL.to_owned(),
            timeout: DEFAULT_TIMEOUT,
            cache_dir: default_cache_dir(),
            refresh: false,
            hosts_file: default_hosts_file(),
            ca_file: None,
            tss_dump: None,
            personal: None,
        }
    }
}

impl SigningOptions {
    /// The defaults, overridden by `IPSWCHECK_TSS_URL`, `IPSWCHECK_API_URL`,
    /// `IPSWCHECK_CACHE_DIR` and `IPSWCHECK_CA_FILE` when they are set and not empty.
    pub fn from_env() -> Self {
        let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
        let mut opts = SigningOptions::default();
        if let Some(url) = var("IPSWCHECK_TSS_URL") {
            opts.tss_url = url.to_string_lossy().into_owned();
        }
        if let Some(url) = var("IPSWCHECK_API_URL") {
            opts.api_url = url.to_string_lossy().into_owned();
        }
        if let Some(dir) = var("IPSWCHECK_CACHE_DIR") {
            opts.cache_dir = Some(PathBuf::from(dir));
        }
        if let Some(file) = var("IPSWCHECK_CA_FILE") {
            opts.ca_file = Some(PathBuf::from(file));
        }
        opts
    }
}

/// `$XDG_CACHE_HOME/ipswcheck`, else `~/.cache/ipswcheck` (`~/Library/Caches/ipswcheck` on
/// macOS, `%LOCALAPPDATA%\ipswcheck` on Windows); `None` when no home is known.
pub fn default_cache_dir() -> Option<PathBuf> {
    let abs = |name: &str| {
        std::env::var_os(name)
            .map(PathBuf::from)
            .filter(|p| p.is_absolute())
    };
    if cfg!(windows) {
        return abs("LOCALAPPDATA").map(|d| d.join("ipswcheck"));
    }
    if cfg!(target_os = "macos") {
        return abs("HOME").map(|h| h.join("Library/Caches/ipswcheck"));
    }
    abs("XDG_CACHE_HOME")
        .map(|d| d.join("ipswcheck"))
        .or_else(|| abs("HOME").map(|h| h.join(".cache/ipswcheck")))
}

/// `/etc/hosts`; on Windows `%SystemRoot%\System32\drivers\etc\hosts`.
pub fn default_hosts_file() -> PathBuf {
    if cfg!(windows) {
        let root = std::env::var_os("SystemRoot").unwrap_or_else(|| r"C:\Windows".into());
        PathBuf::from(root).join(r"System32\drivers\etc\hosts")
    } else {
        PathBuf::from("/etc/hosts")
    }
}

/// Why a signing look-up could not be done.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SigningError {
    #[error("offline: {0} needs the network")]
    Offline(&'static str),
    #[error("{0:?} is not a product type (expected something like iPhone9,3)")]
    InvalidProductType(String),
    #[error("could not set up HTTPS: {0}")]
    Client(String),
    #[error("could not reach {url}: {reason}")]
    Network { url: String, reason: String },
    /// The server's certificate was refused (not a network failure).
    #[error("{host}'s certificate was not trusted: {reason}")]
    Untrusted { host: String, reason: String },
    /// A redirect was refused (https to http, or too many); `reason` names the URLs.
    #[error("{reason}")]
    Redirect { url: String, reason: String },
    #[error("{url} answered HTTP {status}")]
    HttpStatus { url: String, status: u16 },
    #[error("{url} sent more than {limit} bytes; refusing to read it")]
    TooLarge { url: String, limit: u64 },
    #[error("{url} answered something that is not ipsw.me's JSON: {reason}")]
    BadJson { url: String, reason: String },
}

/// Asks Apple (and ipsw.me) whether a build is signed, once per distinct question.
///
/// One session holds one HTTP client (built on first use), the cache, and an in-memory
/// answer per (UniqueBuildID, chip, board) and per ipsw.me product type. Concurrent callers
/// asking the same question wait for the one query in flight, so a parallel library scan
/// sharing a session sends one TSS request per distinct identity — even with no cache
/// directory, and even for Unknown answers (which are never written to disk).
pub struct SigningSession {
    opts: SigningOptions,
    http: OnceLock<Result<Http, SigningError>>,
    cache: Option<SigningCache>,
    tss_memo: Mutex<HashMap<TssKey, Arc<OnceLock<IdentityAnswer>>>>,
    ipswme_memo: Mutex<HashMap<String, Arc<OnceLock<IpswMeList>>>>,
}

type IpswMeList = Result<Vec<IpswMeFirmware>, SigningError>;

/// What names one TSS question: the same build identity for the same board.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TssKey {
    pub unique_build_id: Vec<u8>,
    pub chip_id: u32,
    pub board_id: u32,
}

impl TssKey {
    /// The key for an identity, when it has everything a TSS request needs.
    pub fn for_identity(identity: &BuildIdentity) -> Option<TssKey> {
        Some(TssKey {
            unique_build_id: identity.unique_build_id.clone()?,
            chip_id: identity.chip_id?,
            board_id: identity.board_id?,
        })
    }
}

/// Apple's answer for one identity.
#[derive(Debug, Clone, PartialEq)]
pub struct IdentityAnswer {
    pub status: SigningStatus,
    /// The `STATUS=` code, when the server gave one.
    pub tss_status: Option<i64>,
    /// What the server said, or why we could not ask.
    pub detail: String,
    /// When the answer was obtained.
    pub obtained_at: SystemTime,
    /// `"tss"` (asked now), `"cache"` (read from the cache), `None` (nobody was asked,
    /// e.g. the identity lacks a UniqueBuildID).
    pub source: Option<&'static str>,
}

impl SigningSession {
    pub fn new(opts: SigningOptions) -> Self {
        let cache = opts.cache_dir.clone().map(SigningCache::new);
        SigningSession {
            opts,
            http: OnceLock::new(),
            cache,
            tss_memo: Mutex::new(HashMap::new()),
            ipswme_memo: Mutex::new(HashMap::new()),
        }
    }

    pub fn options(&self) -> &SigningOptions {
        &self.opts
    }

    fn http(&self) -> Result<&Http, SigningError> {
        self.http
            .get_or_init(|| {
                // A proxy can never reach this machine's loopback: when every endpoint
                // is local (tests, a local mirror) go direct.
                let direct = http::is_loopback_url(&self.opts.tss_url)
                    && http::is_loopback_url(&self.opts.api_url);
                Http::new(direct, self.opts.ca_file.as_deref())
            })
            .as_ref()
            .map_err(Clone::clone)
    }

    /// The full signing check for the chosen identities of one build: see
    /// [`check_signing`].
    pub fn check(
        &self,
        manifest: &BuildManifest,
        identities: &[&BuildIdentity],
        product_type: Option<&str>,
    ) -> SigningCheck {
        // Local and cheap, and the classic cause of 3194: always look.
        let hosts = hosts_redirects(&self.opts.hosts_file).unwrap_or_default();
        let hosts_note = hosts::describe_redirects(&self.opts.hosts_file, &hosts);
        if self.opts.offline {
            let mut check =
                SigningCheck::skipped("offline: did not ask Apple whether this build is signed");
            if let Some(note) = hosts_note {
                check.message = format!("{} {note}", check.message);
            }
            check.hosts_redirects = hosts;
            return check;
        }
        let product_type = product_type
            .map(str::to_owned)
            .or_else(|| manifest.supported_product_types.first().cloned());

        // Ask Apple for every board and ipsw.me at the same time: the wall time of a
        // check is one timeout, not one per question. A crafted manifest may list
        // thousands of identities: at most MAX_PARALLEL_QUERIES threads ask, about at
        // most MAX_IDENTITIES_ASKED distinct identities, all within one deadline.
        let deadline = Instant::now() + self.opts.timeout;
        let asked = identities_to_ask(identities);
        let slots: Vec<OnceLock<IdentityAnswer>> =
            identities.iter().map(|_| OnceLock::new()).collect();
        let next = AtomicUsize::new(0);
        let work = || loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            let Some(identity) = identities.get(i) else {
                break;
            };
            let answer = if !asked[i] {
                unknown_now(&format!(
                    "not asked: the manifest lists more than {MAX_IDENTITIES_ASKED} build \
                     identities to ask Apple about (name the device with --device)"
                ))
            } else {
                self.identity_status_within(identity, deadline)
            };
            let _ = slots[i].set(answer);
        };
        let ipswme = std::thread::scope(|s| {
            let ipswme = product_type.as_deref().and_then(|pt| {
                std::thread::Builder::new()
                    .spawn_scoped(s, move || self.ipswme_firmware(pt, &manifest.build))
                    .ok()
            });
            let helpers = identities.len().min(MAX_PARALLEL_QUERIES).saturating_sub(1);
            for _ in 0..helpers {
                // A thread that cannot be created (a tight memory limit) only means
                // fewer queries at once: this thread works through the list too.
                if std::thread::Builder::new().spawn_scoped(s, work).is_err() {
                    break;
                }
            }
            work();
            ipswme
                .and_then(|h| h.join().ok())
                .and_then(Result::ok)
                .flatten()
        });
        let answers: Vec<IdentityAnswer> = slots
            .into_iter()
            .map(|slot| {
                slot.into_inner()
                    .unwrap_or_else(|| unknown_now("the TSS query failed internally"))
            })
            .collect();

        let mut check = summarize(&manifest.build, identities, &answers);
        if let Some(personal) = &self.opts.personal {
            personalize(&mut check, &manifest.product_version, personal);
        }
        if let Some(fw) = ipswme {
            check.ipswme_signed = Some(fw.signed);
            check.ipswme_sha1 = fw.sha1();
            if check.status == SigningStatus::NotSigned && fw.signed {
                self.dispute(&mut check, identities, &answers, &manifest.build);
            } else if let Some(note) = ipswme_note(check.status, fw.signed, &manifest.build) {
                check.message.push(' ');
                check.message.push_str(&note);
            }
        }
        if let Some(note) = hosts_note {
            check.message.push(' ');
            check.message.push_str(&note);
        }
        check.hosts_redirects = hosts;
        check
    }

    /// Apple refused but ipsw.me says signed: neither decides. The refusals are dropped
    /// from the disk cache so that the next check asks Apple again.
    fn dispute(
        &self,
        check: &mut SigningCheck,
        identities: &[&BuildIdentity],
        answers: &[IdentityAnswer],
        build: &str,
    ) {
        let refused: Vec<&BuildIdentity> = identities
            .iter()
            .zip(answers)
            .filter(|(_, a)| a.status == SigningStatus::NotSigned)
            .map(|(id, _)| *id)
            .collect();
        if let Some(cache) = &self.cache {
            for key in refused.iter().filter_map(|id| TssKey::for_identity(id)) {
                let _ = cache.remove_tss(&key);
            }
        }
        let (labels, more) = first_distinct(refused.iter().map(|id| board_label(id)).collect());
        let mut labels = labels;
        if more > 0 {
            labels.push(format!("{more} more"));
        }
        check.status = SigningStatus::Disputed;
        check.cached = false;
        check.message = format!(
            "Apple's signing server refused {build} for {} ({}), but ipsw.me lists {build} as \
             signed. Apple also refuses requests that are wrong for a device, and ipsw.me's \
             flag can lag Apple, so ipswcheck cannot tell which is right: a restore may fail \
             with error 3194. Ask again later (--refresh), or try the restore.",
            join_labels(&labels),
            answers
                .iter()
                .find(|a| a.status == SigningStatus::NotSigned)
                .map_or_else(String::new, |a| a.detail.clone()),
        );
    }

    /// Apple's answer for one identity: from this session's memory, else the disk cache
    /// (unless `refresh`), else one TSS query.
    pub fn identity_status(&self, identity: &BuildIdentity) -> IdentityAnswer {
        self.identity_status_within(identity, Instant::now() + self.opts.timeout)
    }

    /// [`SigningSession::identity_status`], with a query that must end by `deadline`
    /// (several queries sharing one timeout).
    fn identity_status_within(
        &self,
        identity: &BuildIdentity,
        deadline: Instant,
    ) -> IdentityAnswer {
        if self.opts.offline {
            return IdentityAnswer {
                status: SigningStatus::Skipped,
                tss_status: None,
                detail: "offline".into(),
                obtained_at: SystemTime::now(),
                source: None,
            };
        }
        let Some(key) = TssKey::for_identity(identity) else {
            return unknown_now(&tss::missing_fields(identity));
        };
        let cell = {
            let mut memo = self.tss_memo.lock().unwrap_or_else(|e| e.into_inner());
            Arc::clone(memo.entry(key.clone()).or_default())
        };
        cell.get_or_init(|| self.ask_tss(&key, identity, deadline))
            .clone()
    }

    fn ask_tss(&self, key: &TssKey, identity: &BuildIdentity, deadline: Instant) -> IdentityAnswer {
        let now = SystemTime::now();
        // A personal answer is about this device: no board-level answer stands in for it.
        let cache = self.cache.as_ref().filter(|_| self.opts.personal.is_none());
        if let (Some(cache), false) = (cache, self.opts.refresh) {
            if let Some(hit) = cache.get_tss(key, &self.opts.tss_url, now) {
                return hit;
            }
        }
        let answer = match self.http() {
            // What is left once the client exists (building it loads the root
            // certificates): the deadline holds however long that took.
            Ok(http) => match deadline.saturating_duration_since(Instant::now()) {
                left if left < Duration::from_millis(20) => unknown_now(&format!(
                    "not asked: the {:.1} s timeout ran out first",
                    self.opts.timeout.as_secs_f64()
                )),
                left => tss::query(http, identity, &self.opts, left.min(self.opts.timeout)),
            },
            Err(e) => unknown_now(&e.to_string()),
        };
        if let Some(cache) = cache {
            // Best effort: a cache we cannot write only costs a query next time.
            let _ = cache.put_tss(key, &self.opts.tss_url, &answer);
        }
        answer
    }

    /// ipsw.me's firmware list for a product type (memoized, cached for [`CACHE_TTL`]).
    pub fn ipswme_firmwares(
        &self,
        product_type: &str,
    ) -> Result<Vec<IpswMeFirmware>, SigningError> {
        if self.opts.offline {
            return Err(SigningError::Offline("asking ipsw.me"));
        }
        ipswme::validate_product_type(product_type)?;
        let cell = {
            let mut memo = self.ipswme_memo.lock().unwrap_or_else(|e| e.into_inner());
            Arc::clone(memo.entry(product_type.to_owned()).or_default())
        };
        cell.get_or_init(|| self.fetch_ipswme(product_type)).clone()
    }

    fn fetch_ipswme(&self, product_type: &str) -> IpswMeList {
        let now = SystemTime::now();
        if let (Some(cache), false) = (&self.cache, self.opts.refresh) {
            if let Some(list) = cache.get_ipswme(product_type, &self.opts.api_url, now) {
                return Ok(list);
            }
        }
        let list = ipswme::fetch_device(self.http()?, product_type, &self.opts)?;
        if let Some(cache) = &self.cache {
            let _ = cache.put_ipswme(product_type, &self.opts.api_url, &list, now);
        }
        Ok(list)
    }

    /// ipsw.me's entry for one build of a product type; `Ok(None)` when it has none.
    pub fn ipswme_firmware(
        &self,
        product_type: &str,
        build: &str,
    ) -> Result<Option<IpswMeFirmware>, SigningError> {
        Ok(self
            .ipswme_firmwares(product_type)?
            .into_iter()
            .find(|fw| fw.buildid == build))
    }
}

/// Ask Apple's TSS server whether `identities` (the boards the user's device may have) can
/// be restored with this build, with ipsw.me as a second opinion.
///
/// One TSS query per identity (answers cached per UniqueBuildID, chip and board); all must
/// be signed for `Signed`, any refusal gives `NotSigned`, otherwise any doubt gives
/// `Unknown`. ipsw.me is asked for `product_type` (or the manifest's first supported
/// product type) and only ever adds a remark and `ipswme_signed`/`ipswme_sha1`. With
/// `opts.offline` nothing touches the network and the answer is `Skipped`; the hosts file
/// is inspected in every case.
pub fn check_signing(
    manifest: &BuildManifest,
    identities: &[&BuildIdentity],
    product_type: Option<&str>,
    opts: &SigningOptions,
) -> SigningCheck {
    SigningSession::new(opts.clone()).check(manifest, identities, product_type)
}

/// Most TSS queries one check runs at once. Apple's server is one shared service; like
/// idevicerestore and tsschecker (one request at a time) we ask politely: two at a time
/// keeps a two-board product type (iPhone8,1: n71ap + n71map) at one round trip.
const MAX_PARALLEL_QUERIES: usize = 2;
/// Most distinct identities (UniqueBuildID, chip, board) one check asks Apple about. A
/// real IPSW checked without `--device` has a few dozen Erase identities at most (a
/// universal Mac file about 50); a crafted one may list thousands, and asking Apple
/// thousands of questions for one file is not a check.
const MAX_IDENTITIES_ASKED: usize = 64;

/// Which of `identities` to ask about: those of the first [`MAX_IDENTITIES_ASKED`]
/// distinct TSS keys (identities without a key cost no query and are "asked").
fn identities_to_ask(identities: &[&BuildIdentity]) -> Vec<bool> {
    let mut keys = std::collections::HashSet::new();
    identities
        .iter()
        .map(|id| match TssKey::for_identity(id) {
            None => true,
            Some(key) => {
                keys.contains(&key) || (keys.len() < MAX_IDENTITIES_ASKED && keys.insert(key))
            }
        })
        .collect()
}

/// At most this many items of a list go into a message.
const LISTED: usize = 8;

/// `items` without repeats, at most [`LISTED`] of them, and how many more there were.
fn first_distinct(items: Vec<String>) -> (Vec<String>, usize) {
    let mut out: Vec<String> = Vec::new();
    let mut more = 0;
    for item in items {
        if out.contains(&item) {
            continue;
        }
        if out.len() < LISTED {
            out.push(item);
        } else {
            more += 1;
        }
    }
    (out, more)
}

fn unknown_now(detail: &str) -> IdentityAnswer {
    IdentityAnswer {
        status: SigningStatus::Unknown,
        tss_status: None,
        detail: detail.to_owned(),
        obtained_at: SystemTime::now(),
        source: None,
    }
}

/// A board label for messages: `d101ap`, else the chip and board ids.
fn board_label(identity: &BuildIdentity) -> String {
    match (
        &identity.info.device_class,
        identity.chip_id,
        identity.board_id,
    ) {
        (Some(class), _, _) => class.clone(),
        (None, Some(chip), Some(board)) => format!("chip {chip:#06x} board {board:#04x}"),
        _ => format!("identity #{}", identity.index),
    }
}

fn join_labels(labels: &[String]) -> String {
    match labels {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

/// Turn per-identity answers into the one verdict and message of the check.
fn summarize(
    build: &str,
    identities: &[&BuildIdentity],
    answers: &[IdentityAnswer],
) -> SigningCheck {
    if answers.is_empty() {
        return SigningCheck {
            status: SigningStatus::Unknown,
            message: format!(
                "signing status of {build} unknown: no build identity matches the device, \
                 so there is nothing to ask Apple"
            ),
            ..SigningCheck::skipped("")
        };
    }
    let status = SigningStatus::combine(answers.iter().map(|a| a.status));
    let labels_with = |wanted: SigningStatus| -> Vec<String> {
        let (mut labels, more) = first_distinct(
            identities
                .iter()
                .zip(answers)
                .filter(|(_, a)| a.status == wanted)
                .map(|(id, _)| board_label(id))
                .collect(),
        );
        if more > 0 {
            labels.push(format!("{more} more"));
        }
        labels
    };
    let deciding = answers
        .iter()
        .find(|a| a.status == status)
        .unwrap_or(&answers[0]);
    let cached = answers.iter().all(|a| a.source == Some("cache"));
    let source = if cached {
        Some("cache")
    } else {
        answers.iter().find_map(|a| a.source).map(|_| "tss")
    };
    let oldest = answers.iter().map(|a| a.obtained_at).min();

    let mut message = match status {
        SigningStatus::Signed => format!(
            "Apple is signing {build} for {}: TSS issued a ticket.",
            join_labels(&labels_with(SigningStatus::Signed))
        ),
        SigningStatus::NotSigned => format!(
            "Apple is no longer signing {build} for {} ({}): a restore would fail with error 3194.",
            join_labels(&labels_with(SigningStatus::NotSigned)),
            deciding.detail
        ),
        _ => {
            let (mut reasons, more) = first_distinct(
                identities
                    .iter()
                    .zip(answers)
                    .filter(|(_, a)| a.status == SigningStatus::Unknown)
                    .map(|(id, a)| format!("{}: {}", board_label(id), a.detail))
                    .collect(),
            );
            if more > 0 {
                reasons.push(format!("and {more} more"));
            }
            format!(
                "could not find out whether Apple signs {build} ({}). This is not evidence \
                 that the build is unsigned; try again later or run `ipswcheck doctor`.",
                reasons.join("; ")
            )
        }
    };
    if cached {
        if let Some(t) = oldest {
            message.push_str(&format!(" (cached answer from {})", rfc3339(t)));
        }
    }
    SigningCheck {
        status,
        source: source.map(str::to_owned),
        tss_status: deciding.tss_status,
        message,
        ipswme_signed: None,
        checked_at: oldest.map(rfc3339),
        cached,
        hosts_redirects: Vec::new(),
        ipswme_sha1: None,
    }
}

/// Say the verdict for the device itself: "Apple will sign 15.8 for this iPhone (ECID
/// 0x…)" — Finder's question, asked with the device's ECID.
fn personalize(check: &mut SigningCheck, version: &str, personal: &tss::PersonalDevice) {
    let who = format!(
        "this {} (ECID {})",
        personal.kind,
        crate::usb::format_ecid(personal.ecid)
    );
    let version = crate::render::escape(version);
    match check.status {
        SigningStatus::Signed => {
            check.message =
                format!("Apple will sign {version} for {who}: TSS issued a ticket for its ECID.");
        }
        SigningStatus::NotSigned => {
            let detail = check
                .message
                .split_once(" (")
                .and_then(|(_, rest)| rest.rsplit_once("): "))
                .map_or(String::new(), |(d, _)| format!(" ({d})"));
            check.message = format!(
                "Apple will not sign {version} for {who}{detail}: a restore would fail with \
                 error 3194."
            );
        }
        _ => check.message.push_str(&format!(" (asked for {who})")),
    }
}

/// What to add about ipsw.me's flag: agreement is worth a word, disagreement must be
/// said, and with no TSS verdict it is only a hint.
fn ipswme_note(status: SigningStatus, ipswme_signed: bool, build: &str) -> Option<String> {
    let flag = if ipswme_signed {
        "signed"
    } else {
        "not signed"
    };
    match (status, ipswme_signed) {
        (SigningStatus::Signed, true) | (SigningStatus::NotSigned, false) => {
            Some("ipsw.me agrees.".into())
        }
        (SigningStatus::Signed | SigningStatus::NotSigned, _) => Some(format!(
            "ipsw.me disagrees (it lists {build} as {flag}); Apple's TSS answer wins, \
             ipsw.me's flag lags Apple."
        )),
        (SigningStatus::Unknown, _) => Some(format!(
            "ipsw.me lists {build} as {flag}, but only Apple's answer counts."
        )),
        (SigningStatus::Skipped | SigningStatus::Disputed, _) => None,
    }
}

/// `2024-05-01T12:34:56Z`: RFC 3339 in UTC, seconds precision.
pub(crate) fn rfc3339(t: SystemTime) -> String {
    let secs = t
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (y, m, d) = civil_from_days((secs / 86_400) as i64);
    let rem = secs % 86_400;
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 → (year, month, day), proleptic Gregorian (H. Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_formats_utc() {
        let at = |s: u64| rfc3339(UNIX_EPOCH + Duration::from_secs(s));
        assert_eq!(at(0), "1970-01-01T00:00:00Z");
        assert_eq!(at(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(at(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(at(4_107_542_399), "2100-02-28T23:59:59Z");
    }

    #[test]
    fn combine_is_strict() {
        use SigningStatus::*;
        assert_eq!(SigningStatus::combine([Signed, Signed]), Signed);
        assert_eq!(SigningStatus::combine([Signed, Unknown]), Unknown);
        assert_eq!(
            SigningStatus::combine([Unknown, NotSigned, Signed]),
            NotSigned
        );
        assert_eq!(SigningStatus::combine([]), Unknown);
    }

    #[test]
    fn skipped_serializes_the_contract_fields() {
        let json = serde_json::to_value(SigningCheck::skipped("offline")).unwrap();
        assert_eq!(json["status"], "skipped");
        assert_eq!(json["message"], "offline");
        assert_eq!(json["cached"], false);
        for key in ["source", "tss_status", "ipswme_signed", "checked_at"] {
            assert!(json[key].is_null(), "{key}");
        }
        assert!(json.get("hosts_redirects").is_none());
        assert!(json.get("ipswme_sha1").is_none());
    }

    #[test]
    fn session_is_shareable_across_threads() {
        fn assert_sync<T: Send + Sync>() {}
        assert_sync::<SigningSession>();
    }
}
