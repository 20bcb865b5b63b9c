//! The `ipswcheck` binary: parse flags, call the library, print, exit with the code.
//!
//! Everything printed goes through [`emit`] (stdout) and [`emit_err`] (stderr): a reader
//! that went away (`ipswcheck devices | head -1`) ends the output quietly, and a full disk
//! (`> /dev/full`) is one line on stderr, never a panic. The macros below shadow std's in
//! this file so that no `print!` can bypass them.

/// `print!` through [`emit`].
macro_rules! print {
    ($($arg:tt)*) => {
        $crate::emit(&format!($($arg)*))
    };
}

/// `println!` through [`emit`].
macro_rules! println {
    ($($arg:tt)*) => {
        $crate::emit(&format!("{}\n", format_args!($($arg)*)))
    };
}

/// `eprintln!` through [`emit_err`].
macro_rules! eprintln {
    ($($arg:tt)*) => {
        $crate::emit_err(&format!("{}\n", format_args!($($arg)*)))
    };
}

mod cli;
mod progress;
mod terminal;

use progress::draw_progress;
use terminal::{emit, emit_bytes, emit_err, resolve_style, style, STYLE};

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use clap::{CommandFactory, Parser};

use cli::{
    AppleArgs, Cli, Command, ConnectArgs, IpswMeArgs, NetworkArgs, OutputArgs, OutputFormat,
};
use ipswcheck::check::{self, CheckOptions, ExpectedChecksum, Progress};
use ipswcheck::device;
use ipswcheck::digest::{from_hex, DigestAlgorithm};
use ipswcheck::exit::ExitCode;
use ipswcheck::manifest::RestoreBehavior;
use ipswcheck::remote;
use ipswcheck::render::{self, Format, SignedList};
use ipswcheck::report::{Report, Verdict};
use ipswcheck::scan;
use ipswcheck::signing::{self, Reachability, SigningOptions};
use ipswcheck::usb;

/// Set when the command line asks for JSON: then every failure, usage errors included,
/// is also a JSON document on stdout (README "JSON report").
static JSON_ERRORS: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

fn main() -> std::process::ExitCode {
    terminal::sanitize_std_fds();
    ipswcheck::budget::tune_allocator();
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let json = args
        .windows(2)
        .any(|w| w[0] == "--format" && (w[1] == "json" || w[1] == "ndjson"))
        || args
            .iter()
            .any(|a| a == "--json" || a == "--format=json" || a == "--format=ndjson");
    JSON_ERRORS.store(json, Ordering::Relaxed);
    let cli = match Cli::try_parse_from(&args) {
        Ok(cli) => cli,
        Err(e) => {
            use clap::error::ErrorKind;
            let usage_error = !matches!(
                e.kind(),
                ErrorKind::DisplayHelp
                    | ErrorKind::DisplayVersion
                    | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
            );
            if usage_error && json {
                let text = e.to_string();
                let first = text
                    .lines()
                    .next()
                    .unwrap_or("")
                    .trim_start_matches("error: ");
                return usage(first).into();
            }
            e.exit()
        }
    };
    let _ = STYLE.set(resolve_style(cli.color));
    let code = match cli.command {
        Some(Command::Devices { query }) => devices(&query.join(" ")),
        Some(Command::Signed {
            device,
            ipswme,
            connect,
            output,
        }) => signed(&device, &ipswme, &connect, &output),
        Some(Command::Doctor { usb: true, .. }) => doctor_usb(),
        Some(Command::Doctor { apple, connect, .. }) => doctor(&apple, &connect),
        Some(Command::Scan(args)) => scan(args),
        Some(Command::Merge { inputs }) => merge(&inputs),
        Some(Command::Fetch(args)) => fetch(args),
        Some(Command::Completions { shell }) => {
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "ipswcheck", &mut script);
            emit_bytes(&script);
            ExitCode::Ready
        }
        Some(Command::Man) => {
            let mut page = Vec::new();
            match clap_mangen::Man::new(Cli::command()).render(&mut page) {
                Ok(()) => {
                    emit_bytes(&page);
                    ExitCode::Ready
                }
                Err(e) => fail(
                    ExitCode::Usage,
                    "man",
                    &format!("cannot render the man page: {e}"),
                ),
            }
        }
        None => check_files(cli.check),
    };
    code.into()
}

/// Most worker threads `--jobs` may ask for: far more than any machine has cores, and
/// few enough to create (`--jobs 100000` would spend minutes creating threads, then hang
/// on the system's thread limit).
const MAX_JOBS: usize = 256;
const JOBS_RANGE: &str = "--jobs must be between 1 and 256";

/// A usage error: one line on stderr, exit 2 (and a JSON document on stdout when the
/// command line asked for JSON).
fn usage(message: impl std::fmt::Display) -> ExitCode {
    fail(ExitCode::Usage, "usage", &message.to_string())
}

/// A failure before any report exists: one line on stderr, and with `--json` a JSON
/// document `{"schema", "error": {"kind", "message"}, "exit_code"}` on stdout.
fn fail(code: ExitCode, kind: &str, message: &str) -> ExitCode {
    // Messages quote paths, URLs and names the user or a server gave: escaped, so none
    // can print a line of its own or repaint the terminal (JSON keeps them exact).
    eprintln!("ipswcheck: {}", render::escape(message));
    if JSON_ERRORS.load(Ordering::Relaxed) {
        let doc = serde_json::json!({
            "schema": ipswcheck::report::SCHEMA,
            "error": { "kind": kind, "message": message },
            "exit_code": code.code(),
        });
        println!(
            "{}",
            serde_json::to_string_pretty(&doc).expect("serializable")
        );
    }
    code
}

/// The format `--json`/`--format` ask for (`human` by default).
fn format_of(output: &OutputArgs) -> Format {
    if output.json {
        return Format::Json;
    }
    convert(output.format.unwrap_or(OutputFormat::Human))
}

fn convert(format: OutputFormat) -> Format {
    match format {
        OutputFormat::Human => Format::Human,
        OutputFormat::Table => Format::Table,
        OutputFormat::Json => Format::Json,
        OutputFormat::Ndjson => Format::Ndjson,
        OutputFormat::Csv => Format::Csv,
    }
}

/// Signing options for the commands that use every network flag (check, scan, fetch).
fn signing_options(net: &NetworkArgs) -> Result<SigningOptions, ExitCode> {
    signing_options_from(
        Some(&net.apple),
        Some(&net.ipswme),
        &net.connect,
        net.tss_dump.as_ref(),
    )
}

/// Signing options from the flag groups a command offers (`signed` has no Apple flags,
/// `doctor` no ipsw.me flags); what a command does not offer keeps its default.
fn signing_options_from(
    apple: Option<&AppleArgs>,
    ipswme: Option<&IpswMeArgs>,
    connect: &ConnectArgs,
    tss_dump: Option<&PathBuf>,
) -> Result<SigningOptions, ExitCode> {
    let mut opts = SigningOptions::from_env();
    if let Some(apple) = apple {
        opts.offline = apple.offline;
        if let Some(url) = &apple.tss_url {
            opts.tss_url = url.clone();
        }
        if let Some(hosts) = &apple.hosts_file {
            opts.hosts_file = hosts.clone();
        }
    }
    if let Some(ipswme) = ipswme {
        if let Some(url) = &ipswme.api_url {
            opts.api_url = url.clone();
        }
        if ipswme.cache_dir.is_some() {
            opts.cache_dir = ipswme.cache_dir.clone();
        }
        opts.refresh = ipswme.refresh;
    }
    if connect.ca_file.is_some() {
        opts.ca_file = connect.ca_file.clone();
    }
    // A root file that cannot be used is a bad flag, said before anything is checked.
    if let Some(path) = &opts.ca_file {
        if let Err(e) = signing::tls::load_ca_file(path) {
            return Err(usage(e));
        }
    }
    // A day is far beyond any useful timeout; beyond it (1e300) the deadline
    // arithmetic would overflow.
    if !(connect.timeout.is_finite() && connect.timeout > 0.0 && connect.timeout <= 86_400.0) {
        return Err(usage(
            "--timeout must be a positive number of seconds, at most 86400",
        ));
    }
    opts.timeout = Duration::from_secs_f64(connect.timeout);
    opts.tss_dump = tss_dump.cloned();
    Ok(opts)
}

fn expected_from(
    sha1: &Option<String>,
    sha256: &Option<String>,
) -> Result<Option<ExpectedChecksum>, ExitCode> {
    let (algorithm, text, flag) = match (sha1, sha256) {
        (Some(h), _) => (DigestAlgorithm::Sha1, h, "--sha1"),
        (None, Some(h)) => (DigestAlgorithm::Sha256, h, "--sha256"),
        (None, None) => return Ok(None),
    };
    match from_hex(text) {
        Some(digest) if digest.len() == algorithm.output_len() => {
            Ok(Some(ExpectedChecksum { algorithm, digest }))
        }
        _ => Err(usage(format!(
            "{flag} takes {} hex digits, got \"{text}\"",
            algorithm.output_len() * 2
        ))),
    }
}

/// The device on the cable (`--device auto`), found once per run.
static CONNECTED: std::sync::OnceLock<Result<usb::AttachedDevice, String>> =
    std::sync::OnceLock::new();

/// `--device auto`: the one connected device (`--ecid` picks among several); `None`
/// without `auto`. Not found is a usage error (exit 2) naming what was seen.
fn connected(args: &cli::TargetArgs) -> Result<Option<&'static usb::AttachedDevice>, ExitCode> {
    if !args
        .device
        .as_deref()
        .is_some_and(|d| d.eq_ignore_ascii_case("auto"))
    {
        return Ok(None);
    }
    if args.board.is_some() {
        return Err(usage(
            "--board cannot be given with --device auto: the device names its own board",
        ));
    }
    let ecid = match &args.ecid {
        Some(text) => Some(usb::parse_ecid(text).map_err(usage)?),
        None => None,
    };
    let found = CONNECTED.get_or_init(|| {
        usb::detect(usb::default_source().as_ref(), ecid).map_err(|e| e.to_string())
    });
    match found {
        Ok(device) => Ok(Some(device)),
        Err(e) => Err(usage(e)),
    }
}

/// The device the signing request is personalized for: the connected one, or `--ecid`
/// with a named device; its nonce from `--ap-nonce` (hex, or `device`).
fn personal(
    args: &cli::TargetArgs,
    boards: Option<&[&'static device::Device]>,
) -> Result<Option<signing::tss::PersonalDevice>, ExitCode> {
    let attached = connected(args)?;
    let ecid = match (attached, &args.ecid) {
        (Some(d), _) => d.ecid(),
        (None, Some(text)) => Some(usb::parse_ecid(text).map_err(usage)?),
        (None, None) => None,
    };
    let Some(ecid) = ecid else {
        return match &args.ap_nonce {
            Some(_) => Err(usage(
                "--ap-nonce needs the device's ECID: use --device auto or give --ecid",
            )),
            None => Ok(None),
        };
    };
    let (ap_nonce, sep_nonce) = match (args.ap_nonce.as_deref(), attached) {
        (None, _) => (None, None),
        (Some("device"), Some(d)) if d.mode != usb::Mode::Normal => {
            let text = usb::default_source()
                .nonce_string(&d.usb)
                .map_err(|e| fail(ExitCode::Usage, "usb", &format!("--ap-nonce device: {e}")))?;
            let info = usb::serial::parse(text.as_deref().unwrap_or(""));
            if info.ap_nonce.is_none() {
                return Err(usage("--ap-nonce device: the device did not give its ApNonce (NONC)"));
            }
            (info.ap_nonce, info.sep_nonce)
        }
        (Some("device"), _) => {
            return Err(usage(
                "--ap-nonce device reads the nonce of a device in Recovery or DFU mode found by --device auto",
            ))
        }
        (Some(hex), _) => match from_hex(hex) {
            Some(bytes) if !bytes.is_empty() => (Some(bytes), None),
            _ => {
                return Err(usage(format!(
                    "--ap-nonce takes hex digits or `device`, got \"{}\"",
                    render::escape(hex)
                )))
            }
        },
    };
    let kind = boards
        .and_then(|b| b.first())
        .map_or("device", |d| usb::kind_of(d.product_type));
    Ok(Some(signing::tss::PersonalDevice {
        ecid,
        ap_nonce,
        sep_nonce,
        kind: kind.to_owned(),
    }))
}

/// Add what the connected device says to a check's report (its mode and link; a
/// downgrade or the same version) and judge again.
fn add_device_findings(report: &mut Report, args: &cli::TargetArgs) {
    let Ok(Some(device)) = connected(args) else {
        return;
    };
    let version = report.firmware.as_ref().map(|f| f.product_version.clone());
    for finding in usb::device_findings(device, version.as_deref(), args.update) {
        report.add(finding);
    }
    report.conclude();
}

/// The boards and the restore behaviour a command was asked about.
fn target(
    args: &cli::TargetArgs,
) -> Result<(Option<Vec<&'static device::Device>>, RestoreBehavior), ExitCode> {
    let boards = match (connected(args)?, &args.device) {
        (Some(attached), _) => attached.boards(),
        (None, Some(query)) => Some(device::resolve(query, args.board.as_deref()).map_err(usage)?),
        (None, None) => None,
    };
    let behavior = if args.update {
        RestoreBehavior::Update
    } else {
        RestoreBehavior::Erase
    };
    Ok((boards, behavior))
}

/// Validate `--jobs` and size the hashing pool with it.
fn hashing_threads(jobs: Option<usize>) -> Result<(), ExitCode> {
    if let Some(jobs) = jobs {
        if !(1..=MAX_JOBS).contains(&jobs) {
            return Err(usage(JOBS_RANGE));
        }
        let _ = rayon::ThreadPoolBuilder::new()
            .num_threads(jobs)
            .build_global();
    }
    Ok(())
}

/// What the check, `scan` and `fetch` share: device, checksum, signing.
fn check_options(
    target_args: &cli::TargetArgs,
    checksum: Option<&cli::ChecksumArgs>,
    network: &NetworkArgs,
    quick: bool,
) -> Result<CheckOptions, ExitCode> {
    let (device, behavior) = target(target_args)?;
    let expected = match checksum {
        Some(c) => expected_from(&c.sha1, &c.sha256)?,
        None => None,
    };
    let mut signing = signing_options(network)?;
    signing.personal = personal(target_args, device.as_deref())?;
    Ok(CheckOptions {
        device,
        behavior,
        quick,
        expected,
        signing,
    })
}

/// `ipswcheck FILE…`: each file in turn; with several, a summary line and the exit code
/// a restore would meet first.
fn check_files(args: cli::CheckArgs) -> ExitCode {
    if args.file.is_empty() {
        return usage("no file given; usage: ipswcheck FILE.ipsw --device iPhone9,3 (see --help)");
    }
    let options = match check_options(
        &args.target,
        Some(&args.checksum),
        &args.network,
        args.quick,
    ) {
        Ok(o) => o,
        Err(code) => return code,
    };
    // An http(s) URL is checked remotely, by range requests (quick mode).
    let is_url = |file: &Path| file.to_str().is_some_and(remote::is_url);
    if options.signing.offline && args.file.iter().any(|f| is_url(f)) {
        return usage(
            "--offline cannot check a URL: reading it needs the network (drop --offline, or download the file and check it)",
        );
    }
    if let Err(code) = hashing_threads(args.jobs) {
        return code;
    }
    if args.file.len() == 1 {
        let mut report = check_path(&args.file[0], &options, &args);
        add_device_findings(&mut report, &args.target);
        print_report(&report, &args.output);
        return report.exit();
    }
    let format = format_of(&args.output);
    let mut reports = Vec::new();
    for (i, file) in args.file.iter().enumerate() {
        let mut report = check_path(file, &options, &args);
        add_device_findings(&mut report, &args.target);
        if !args.output.quiet {
            let text = render::renderer_with(format, args.output.verbose, style()).report(&report);
            match format {
                // One array, printed at the end.
                Format::Json => {}
                // One header for all the rows.
                Format::Csv | Format::Table if i > 0 => {
                    emit(text.split_once('\n').map_or("", |(_, rows)| rows));
                }
                _ => emit(&text),
            }
        }
        let interrupted = report.exit() == ExitCode::Interrupted;
        reports.push(report);
        if interrupted {
            break;
        }
    }
    if !args.output.quiet {
        match format {
            Format::Json => {
                // The documents `--json` prints for one file, in one array.
                emit(&(serde_json::to_string_pretty(&reports).expect("serializable") + "\n"));
            }
            Format::Human | Format::Table => {
                emit(&(summary_line(&reports, args.file.len()) + "\n"));
            }
            Format::Ndjson | Format::Csv => {}
        }
    }
    ExitCode::first_in_restore_order(reports.iter().map(Report::exit))
}

/// "2 files: 1 ready, 1 not ready" (and how many were not checked after a Ctrl-C).
fn summary_line(reports: &[Report], asked: usize) -> String {
    let mut parts = Vec::new();
    for (verdict, name) in [
        (Verdict::Ready, "ready"),
        (Verdict::StructureOk, "structure OK"),
        (Verdict::NotReady, "not ready"),
        (Verdict::Unknown, "unknown"),
    ] {
        let n = reports.iter().filter(|r| r.verdict == verdict).count();
        if n > 0 {
            parts.push(format!("{n} {name}"));
        }
    }
    if reports.len() < asked {
        parts.push(format!("{} not checked", asked - reports.len()));
    }
    format!("{asked} files: {}", parts.join(", "))
}

/// Check one file or URL, with the progress line when stderr is a terminal.
fn check_path(file: &Path, options: &CheckOptions, args: &cli::CheckArgs) -> Report {
    let url = file
        .to_str()
        .filter(|f| remote::is_url(f))
        .map(str::to_owned);
    let progress = Progress::default();
    let show_progress =
        !args.output.quiet && !args.quick && url.is_none() && std::io::stderr().is_terminal();
    let finished = AtomicBool::new(false);
    let asks_apple = !options.signing.offline;
    std::thread::scope(|s| {
        if show_progress {
            s.spawn(|| draw_progress(&progress, &finished, file, asks_apple));
        }
        let mut report = match &url {
            Some(url) => remote::check_url(url, options, None),
            None => check::check_file(file, options, &progress),
        };
        finished.store(true, Ordering::Relaxed);
        // A folder is not an IPSW (exit 3), but the user probably meant a library.
        if url.is_none() && file.is_dir() {
            for problem in report
                .problems
                .iter_mut()
                .filter(|p| p.kind == "not_an_ipsw")
            {
                problem.hint = Some(format!(
                    "to check every IPSW in this folder, run `ipswcheck scan {}`",
                    file.display()
                ));
            }
        }
        report
    })
}

fn print_report(report: &ipswcheck::report::Report, output: &OutputArgs) {
    if output.quiet {
        return;
    }
    let text = render::renderer_with(format_of(output), output.verbose, style()).report(report);
    emit(&text);
}

fn scan(args: cli::ScanArgs) -> ExitCode {
    let check = match check_options(&args.target, None, &args.network, args.quick) {
        Ok(o) => o,
        Err(code) => return code,
    };
    if args.jobs.is_some_and(|j| !(1..=MAX_JOBS).contains(&j)) {
        return usage(JOBS_RANGE);
    }
    let mut options = scan::ScanOptions::new(args.paths.clone(), check);
    if let Some(list) = &args.urls {
        if options.check.signing.offline {
            return usage("--offline cannot check URLs: reading them needs the network");
        }
        match remote::read_url_list(list) {
            Ok(urls) => options.urls = urls,
            Err(e) => return usage(format!("--urls {}: {e}", list.display())),
        }
    }
    if let Some(jobs) = args.jobs {
        options.jobs = jobs;
        options.window = scan::default_window(jobs);
    }
    options.rehash = args.rehash;
    options.shard = args.shard;
    let cancel = scan::interrupt_flag();
    let progress = scan::ScanProgress::default();
    let finished = AtomicBool::new(false);
    let result = std::thread::scope(|s| {
        if std::io::stderr().is_terminal() {
            s.spawn(|| scan::draw_progress(&progress, &finished));
        }
        let result = scan::scan(&options, &progress, cancel);
        finished.store(true, Ordering::Relaxed);
        result
    });
    let result = match result {
        Ok(r) => r,
        Err(e) => return fail(ExitCode::NotAnIpsw, "path", &e.to_string()),
    };
    let text = render::renderer_with(convert(args.format), false, style()).scan(&result);
    emit(&text);
    result.exit()
}

/// `ipswcheck merge`: shard outputs in, one scan output out (`scan::merge`).
fn merge(inputs: &[std::path::PathBuf]) -> ExitCode {
    /// Larger than any scan output of a real library; a bound on what is read.
    const MAX_INPUT: u64 = 1 << 30;
    let mut texts = Vec::new();
    for path in inputs {
        let name = path.display().to_string();
        let mut bytes = Vec::new();
        let read = if name == "-" {
            std::io::Read::read_to_end(
                &mut std::io::Read::take(std::io::stdin().lock(), MAX_INPUT + 1),
                &mut bytes,
            )
        } else {
            std::fs::File::open(path).and_then(|f| {
                std::io::Read::read_to_end(&mut std::io::Read::take(f, MAX_INPUT + 1), &mut bytes)
            })
        };
        let problem = match read {
            Err(e) => Some(format!("cannot be read: {e}")),
            Ok(_) if bytes.len() as u64 > MAX_INPUT => Some("is larger than 1 GiB".into()),
            Ok(_) => None,
        };
        if let Some(problem) = problem {
            let name = render::escape(&name);
            return fail(ExitCode::NotAnIpsw, "path", &format!("{name}: {problem}"));
        }
        match String::from_utf8(bytes) {
            Ok(text) => texts.push((name, text)),
            Err(_) => {
                let name = render::escape(&name);
                return fail(
                    ExitCode::NotAnIpsw,
                    "path",
                    &format!("{name}: is not UTF-8 text"),
                );
            }
        }
    }
    match scan::merge::merge(&texts) {
        Ok(out) => {
            emit(&out);
            let code = out
                .lines()
                .last()
                .and_then(|l| serde_json::from_str::<serde_json::Value>(l).ok())
                .and_then(|v| v.pointer("/summary/exit_code").and_then(|c| c.as_i64()))
                .unwrap_or(1);
            ExitCode::from_code(code as i32).unwrap_or(ExitCode::ScanFailures)
        }
        Err(e) => fail(
            ExitCode::NotAnIpsw,
            "merge",
            &render::escape(&e.to_string()),
        ),
    }
}

fn fetch(args: cli::FetchArgs) -> ExitCode {
    if !remote::is_url(&args.url) {
        return usage(format!(
            "fetch needs an http:// or https:// URL, got \"{}\"",
            args.url
        ));
    }
    let dest = match &args.out {
        Some(path) => path.clone(),
        None => match remote::fetch::default_file_name(&args.url) {
            Some(name) => name.into(),
            None => return usage("the URL names no file: give one with -o FILE"),
        },
    };
    let check = match check_options(&args.target, Some(&args.checksum), &args.network, false) {
        Ok(o) => o,
        Err(code) => return code,
    };
    if let Err(code) = hashing_threads(args.jobs) {
        return code;
    }
    let options = remote::FetchOptions {
        check,
        keep: args.keep,
        retries: args.retries,
    };
    let progress = Progress::default();
    let show_progress = !args.output.quiet && std::io::stderr().is_terminal();
    let finished = AtomicBool::new(false);
    let interrupted = scan::interrupt_flag();
    let outcome = std::thread::scope(|s| {
        if show_progress {
            s.spawn(|| draw_progress(&progress, &finished, &dest, false));
        }
        // Ctrl-C stops the download and keeps FILE.part for a resume.
        s.spawn(|| {
            while !finished.load(Ordering::Relaxed) {
                if interrupted.load(Ordering::Relaxed) {
                    progress.cancel.store(true, Ordering::Relaxed);
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        });
        let outcome = remote::fetch(&args.url, &dest, &options, None, &progress);
        finished.store(true, Ordering::Relaxed);
        outcome
    });
    let mut outcome = match outcome {
        Ok(o) => o,
        Err(e) => return usage(e),
    };
    add_device_findings(&mut outcome.report, &args.target);
    print_report(&outcome.report, &args.output);
    if !args.output.quiet {
        let shown = |p: &Path| render::escape(&p.display().to_string());
        let note = if let Some(saved) = &outcome.saved {
            format!("saved: {} (verified)", shown(saved))
        } else if let Some(failed) = &outcome.kept_failed {
            format!("kept as {} (it failed a check; --keep)", shown(failed))
        } else if let Some(part) = &outcome.partial {
            format!(
                "partial download kept in {}: run the same command again to resume",
                shown(part)
            )
        } else if let Some(why) = &outcome.stopped {
            format!("nothing saved: {why} ({} was not created)", shown(&dest))
        } else if outcome.downloaded {
            format!(
                "nothing saved: the download failed a check ({} was not created)",
                shown(&dest)
            )
        } else {
            format!("nothing downloaded: {} was not created", shown(&dest))
        };
        if args.output.json {
            eprintln!("ipswcheck: {note}");
        } else {
            println!("{note}");
        }
    }
    outcome.report.exit()
}

fn devices(query: &str) -> ExitCode {
    let rows = device::search(query);
    if rows.is_empty() {
        let hints = device::suggest(query);
        return usage(format!(
            "no device matches \"{query}\"{}",
            if hints.is_empty() {
                String::new()
            } else {
                format!("; did you mean: {}?", hints.join(", "))
            }
        ));
    }
    print!("{}", device::format_table(&rows));
    ExitCode::Ready
}

fn signed(
    query: &str,
    ipswme: &IpswMeArgs,
    connect: &ConnectArgs,
    output: &OutputArgs,
) -> ExitCode {
    let boards = match device::resolve(query, None) {
        Ok(b) => b,
        Err(e) => return usage(e),
    };
    let opts = match signing_options_from(None, Some(ipswme), connect, None) {
        Ok(o) => o,
        Err(code) => return code,
    };
    let product_type = boards[0].product_type;
    let (builds, error) = match signing::signed_builds(product_type, &opts) {
        Ok(builds) => (builds, None),
        Err(e) => (Vec::new(), Some(e.to_string())),
    };
    let code = if error.is_some() {
        ExitCode::SigningUnknown
    } else {
        ExitCode::Ready
    };
    let list = SignedList {
        product_type: product_type.to_owned(),
        device: device::display_name(product_type),
        source: "ipsw.me",
        builds,
        error,
    };
    // -q: nothing anywhere, the exit code is the answer.
    if output.quiet {
        return code;
    }
    if let Some(e) = &list.error {
        eprintln!("ipswcheck: could not ask ipsw.me: {e}");
    }
    let format = format_of(output);
    // The error is on stderr already; a human list would only repeat it.
    if !(format == Format::Human && list.error.is_some()) {
        emit(&render::renderer_with(format, false, style()).signed(&list));
    }
    code
}

/// `doctor`: exit 30 when the hosts file redirects gs.apple.com (the code a check gives
/// for it), 31 when Apple's server cannot be reached or is not trusted, 0 otherwise.
fn doctor(apple: &AppleArgs, connect: &ConnectArgs) -> ExitCode {
    let opts = match signing_options_from(Some(apple), None, connect, None) {
        Ok(o) => o,
        Err(code) => return code,
    };
    let report = signing::doctor(&opts);
    print!("{report}");
    doctor_code(&report)
}

/// `doctor --usb`: the mode and USB link of every connected Apple device. Exit 0 when
/// every link looks right, 1 when one does not, 2 when none is connected.
fn doctor_usb() -> ExitCode {
    let source = usb::default_source();
    match usb::list_attached(source.as_ref()) {
        Ok((devices, looked)) => {
            let (text, suspect) = usb::link::doctor_text(&devices, &looked);
            print!("{text}");
            if devices.is_empty() {
                ExitCode::Usage
            } else if suspect {
                // 1, as `scan` says "something failed".
                ExitCode::ScanFailures
            } else {
                ExitCode::Ready
            }
        }
        Err(e) => fail(ExitCode::Usage, "usb", &e.to_string()),
    }
}

fn doctor_code(report: &signing::DoctorReport) -> ExitCode {
    if !report.hosts_redirects.is_empty() {
        ExitCode::NotSigned
    } else if matches!(
        report.tss,
        Reachability::Reachable { .. } | Reachability::Skipped
    ) {
        ExitCode::Ready
    } else {
        ExitCode::SigningUnknown
    }
}
