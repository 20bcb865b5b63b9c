//! Every command-line flag, defined in one place (clap derive). `main.rs` only turns
//! these into library calls and prints.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// What `--help` ends with: the three main jobs, then the exit codes.
const AFTER_HELP: &str = "\
Examples:
  Will this file restore my iPhone 7 (GSM)? Model, every component, Apple's signing:
    ipswcheck iPhone_4.7_P3_15.8_19H370_Restore.ipsw --device iPhone9,3
  Several files (or a shell glob): a verdict each, then a summary:
    ipswcheck *.ipsw --device iPhone9,3
  A whole firmware library: which files are intact, and which one restores my device:
    ipswcheck scan ~/Downloads/firmware --device iPhone9,3
  A file on a server: checked before downloading (range requests), then fetched and verified:
    ipswcheck https://updates.cdn-apple.com/…/iPhone_4.7_P3_15.8_19H370_Restore.ipsw -d iPhone9,3
    ipswcheck fetch https://updates.cdn-apple.com/…/iPhone_4.7_P3_15.8_19H370_Restore.ipsw

Exit codes:
  0 ready · 2 usage · 3 not a readable IPSW · 10 archive damaged
  11 component mismatch/missing · 12 checksum mismatch · 20 not for this device
  30 not signed · 31 signing unknown · 130 interrupted
  With several files, the first a restore would meet, in the order 3, 20, 10, 11, 12, 30, 31.";

/// ipswcheck: will this firmware file restore my iPhone/iPad? Checks an .ipsw before
/// you start a restore: model, integrity of every component, and Apple's signing.
#[derive(Debug, Parser)]
#[command(
    name = "ipswcheck",
    version = env!("IPSWCHECK_VERSION"),
    args_conflicts_with_subcommands = true,
    after_help = AFTER_HELP
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub check: CheckArgs,

    /// When to color the output: auto (a terminal, NO_COLOR unset, TERM not dumb),
    /// always or never.
    #[arg(
        long,
        value_enum,
        value_name = "WHEN",
        default_value_t = ColorChoice::Auto,
        global = true
    )]
    pub color: ColorChoice,
}

/// `--color`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ColorChoice {
    /// Color when stdout is a terminal, NO_COLOR is unset or empty and TERM is not dumb.
    Auto,
    /// Always color (even through a pipe, even with NO_COLOR).
    Always,
    /// Never color.
    Never,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// List known devices (product type, board, chip, name), optionally filtered.
    Devices {
        /// Part of a name, board, model number or product type, e.g. iphone 7, d10, A1778
        /// (several words are one query; case and spaces do not matter).
        query: Vec<String>,
    },
    /// List the builds ipsw.me reports as signed for a device (no file needed).
    Signed {
        /// Product type (iPhone9,3), board (d101ap), model number (A1778) or name
        /// ("iPhone 7 (GSM)").
        #[arg(long, short = 'd')]
        device: String,
        #[command(flatten)]
        ipswme: IpswMeArgs,
        #[command(flatten)]
        connect: ConnectArgs,
        #[command(flatten)]
        output: OutputArgs,
    },
    /// Diagnose the causes of restore error 3194 on this machine: hosts file, proxies,
    /// reachability of Apple's signing server. Exit 0 healthy, 30 when the hosts file
    /// redirects gs.apple.com (as a check would), 31 when the server cannot be reached
    /// or its certificate is not trusted.
    Doctor {
        /// Instead, look at the USB link of every connected iPhone/iPad (speed, hubs,
        /// mode): the causes of errors 4013/4014/4005 that can be seen. Exit 0 when the
        /// links look right, 1 when one looks wrong (full speed, a hub), 2 when no device
        /// is connected.
        #[arg(long)]
        usb: bool,
        #[command(flatten)]
        apple: AppleArgs,
        #[command(flatten)]
        connect: ConnectArgs,
    },
    /// Check a whole firmware library: every IPSW under the given folders (found by
    /// content, not by extension). Exit 0 when every file passed, 1 when any failed,
    /// 2 usage, 3 when a given path cannot be read, 130 interrupted.
    Scan(ScanArgs),
    /// Join the `--format ndjson` outputs of `scan --shard K/N` runs into the NDJSON one
    /// unsharded scan prints (rows sorted, counts, duplicates and the recommendation
    /// derived again over every row). Exit: the merged scan's (0, 1, 130); 3 when an
    /// input cannot be read or is not a complete scan output, or two inputs overlap.
    Merge {
        /// The shard outputs (`-` for standard input).
        #[arg(required = true, value_name = "NDJSON")]
        inputs: Vec<PathBuf>,
    },
    /// Download an IPSW, checking it first by range requests (device, signing), then
    /// verifying every component and the whole-file SHA-1 as the bytes arrive; the file
    /// is saved under FILE only when every check passed. Resumes FILE.part. From a server
    /// without range support it downloads the whole file and checks it in full at the end
    /// (no resume).
    Fetch(FetchArgs),
    /// Print a shell completion script, e.g. `ipswcheck completions bash >
    /// ~/.local/share/bash-completion/completions/ipswcheck`.
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff), e.g. `ipswcheck man > ~/.local/share/man/man1/ipswcheck.1`.
    Man,
}

/// `ipswcheck fetch URL -o FILE`.
#[derive(Debug, Args)]
pub struct FetchArgs {
    /// The http:// or https:// URL of the IPSW.
    #[arg(value_name = "URL")]
    pub url: String,

    /// Where to save it (default: the URL's file name in the current directory).
    /// Never replaced if it exists; the download goes to FILE.part until verified.
    #[arg(long = "output", short = 'o', value_name = "FILE")]
    pub out: Option<PathBuf>,

    #[command(flatten)]
    pub target: TargetArgs,

    #[command(flatten)]
    pub checksum: ChecksumArgs,

    /// Keep a download that fails a check, as FILE.failed (default: delete it).
    #[arg(long)]
    pub keep: bool,

    /// Reconnections, each resuming where the transfer broke, before giving up.
    #[arg(long, value_name = "N", default_value_t = 5)]
    pub retries: u32,

    /// Worker threads for hashing (default: one per core).
    #[arg(long, short = 'j', value_name = "N")]
    pub jobs: Option<usize>,

    #[command(flatten)]
    pub network: NetworkArgs,

    #[command(flatten)]
    pub output: OutputArgs,
}

/// `ipswcheck scan PATH…`.
#[derive(Debug, Args)]
pub struct ScanArgs {
    /// Folders (walked recursively, following links) and files to check.
    #[arg(required_unless_present = "urls", value_name = "PATH")]
    pub paths: Vec<PathBuf>,

    /// A text file of IPSW URLs, one per line (# starts a comment): each is checked
    /// remotely by range requests (device, signing, component presence), nothing is
    /// downloaded.
    #[arg(long, value_name = "FILE")]
    pub urls: Option<PathBuf>,

    /// With --device, the scan also says which file restores that device.
    #[command(flatten)]
    pub target: TargetArgs,

    /// Only the archive directories, manifests and devices: no hashing.
    #[arg(long)]
    pub quick: bool,

    /// Hash every file again, even those verified before and unchanged since.
    #[arg(long)]
    pub rehash: bool,

    /// Check only shard K of N (K from 0, like $JOB_COMPLETION_INDEX): each file goes to
    /// one shard by a hash of its path relative to the scanned folder, so N machines
    /// sharing a mirror split it without overlap. Join their `--format ndjson` outputs
    /// with `ipswcheck merge`.
    #[arg(long, value_name = "K/N")]
    pub shard: Option<ipswcheck::scan::shard::Shard>,

    /// Hashing threads (default: one per core).
    #[arg(long, short = 'j', value_name = "N")]
    pub jobs: Option<usize>,

    /// Output format (`human` is the table).
    #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
    pub format: OutputFormat,

    #[command(flatten)]
    pub network: NetworkArgs,
}

/// `--format`: every command prints through the same renderers (`src/render/`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    /// The verdict first, then what failed and what to do (a check's default).
    Human,
    /// One line per file and a summary (a scan's default).
    Table,
    /// One document (a report; `{"schema", "files": [...], "summary"}` for a scan).
    Json,
    /// One compact document per line (a scan: one per file, then `{"summary": ...}`).
    Ndjson,
    /// A header, then one row per file.
    Csv,
}

/// `ipswcheck FILE…`: check one IPSW, or several.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The .ipsw files to check, or http(s):// URLs: then only the end of the zip, its
    /// directory and manifests are read, with range requests (a quick check). With
    /// several, each gets its verdict, then a summary line (--json: an array of
    /// reports); the exit code is the first a restore would meet.
    #[arg(value_name = "FILE")]
    pub file: Vec<PathBuf>,

    #[command(flatten)]
    pub target: TargetArgs,

    /// Only the archive directory, manifest and device: no hashing (milliseconds).
    #[arg(long)]
    pub quick: bool,

    #[command(flatten)]
    pub checksum: ChecksumArgs,

    /// Worker threads for hashing (default: one per core).
    #[arg(long, short = 'j', value_name = "N")]
    pub jobs: Option<usize>,

    #[command(flatten)]
    pub network: NetworkArgs,

    #[command(flatten)]
    pub output: OutputArgs,
}

/// Which device, and which kind of restore: shared by the check, `scan` and `fetch`.
#[derive(Debug, Args, Clone)]
pub struct TargetArgs {
    /// Device to restore: a product type (iPhone9,3), hardware model (d101ap), model
    /// number from the back of the phone (A1778) or name ("iPhone 7 (GSM)"); `auto`: the
    /// one connected by USB (any mode), and the signing answer is for its ECID.
    #[arg(long, short = 'd')]
    pub device: Option<String>,

    /// The board, where a product type has two (iPhone8,1: n71ap or n71map).
    /// Without it every board of the product type must be served.
    #[arg(long, requires = "device")]
    pub board: Option<String>,

    /// Check the Update identity (keeps data) instead of the Erase identity (restore).
    #[arg(long)]
    pub update: bool,

    /// The device's ECID (hex 0x1A2B…, or decimal): with `--device auto`, which of several
    /// connected devices; with a named device, the signing request is made for it
    /// ("Apple will sign … for this iPhone (ECID …)").
    #[arg(long, value_name = "ECID")]
    pub ecid: Option<String>,

    /// The ApNonce to send Apple (hex), or `device` to read the connected device's own
    /// (Recovery/DFU; opens the device read-only). Random when not given: Apple's answer
    /// does not depend on it.
    #[arg(long, value_name = "HEX|device")]
    pub ap_nonce: Option<String>,
}

/// The whole-file checksum to expect.
#[derive(Debug, Args, Clone)]
pub struct ChecksumArgs {
    /// Expected SHA-1 of the whole file (as Apple and ipsw.me publish it).
    #[arg(long, value_name = "HEX", conflicts_with = "sha256")]
    pub sha1: Option<String>,

    /// Expected SHA-256 of the whole file.
    #[arg(long, value_name = "HEX")]
    pub sha256: Option<String>,
}

/// Where and whether to ask about signing: every network flag, for the commands that
/// ask both Apple and ipsw.me (the check, `scan`, `fetch`).
#[derive(Debug, Args, Clone)]
pub struct NetworkArgs {
    #[command(flatten)]
    pub apple: AppleArgs,

    #[command(flatten)]
    pub ipswme: IpswMeArgs,

    #[command(flatten)]
    pub connect: ConnectArgs,

    /// Save every TSS request sent to Apple and every answer in DIR (created if needed),
    /// to inspect or attach to a bug report.
    #[arg(long, value_name = "DIR")]
    pub tss_dump: Option<PathBuf>,
}

/// Apple's side: its signing server and what this machine does to reach it (the check,
/// `doctor`).
#[derive(Debug, Args, Clone)]
pub struct AppleArgs {
    /// Do not ask Apple or ipsw.me: signing is not checked, the verdict rests on local
    /// checks (`fetch` still downloads; checking a URL needs the network).
    #[arg(long)]
    pub offline: bool,

    /// Apple's TSS endpoint.
    #[arg(long, env = "IPSWCHECK_TSS_URL", value_name = "URL")]
    pub tss_url: Option<String>,

    /// The hosts file to inspect for gs.apple.com redirects.
    #[arg(long, value_name = "PATH")]
    pub hosts_file: Option<PathBuf>,
}

/// ipsw.me and the cache of signing answers (the check, `signed`).
#[derive(Debug, Args, Clone)]
pub struct IpswMeArgs {
    /// ipsw.me API base.
    #[arg(long, env = "IPSWCHECK_API_URL", value_name = "URL")]
    pub api_url: Option<String>,

    /// Where signing answers are cached (default: the user's cache directory).
    #[arg(long, env = "IPSWCHECK_CACHE_DIR", value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,

    /// Ignore cached signing answers (fresh answers are still cached).
    #[arg(long)]
    pub refresh: bool,
}

/// How to connect: every command that uses the network.
#[derive(Debug, Args, Clone)]
pub struct ConnectArgs {
    /// A PEM file of extra root certificates to trust for signing queries (e.g. a
    /// TLS-inspecting proxy's root), besides the system's and Apple's own roots.
    #[arg(long, env = "IPSWCHECK_CA_FILE", value_name = "PEM")]
    pub ca_file: Option<PathBuf>,

    /// Seconds for each signing query, retries included; with a URL, also for each
    /// request and for any stall of a download.
    #[arg(long, value_name = "SECS", default_value_t = 10.0)]
    pub timeout: f64,
}

/// How to print.
#[derive(Debug, Args, Clone)]
pub struct OutputArgs {
    /// Print one JSON document (schema in the README) instead of the human report; the
    /// same as --format json. Every failure, usage errors included, is a JSON document.
    #[arg(long)]
    pub json: bool,

    /// Output format.
    #[arg(long, value_enum, value_name = "FORMAT", conflicts_with = "json")]
    pub format: Option<OutputFormat>,

    /// Print nothing; the exit code is the answer.
    #[arg(long, short = 'q', conflicts_with = "verbose")]
    pub quiet: bool,

    /// List every check and every component.
    #[arg(long, short = 'v')]
    pub verbose: bool,
}
