//! The `ipswcheck` binary: parse flags, call the library, print, exit with the code.

mod cli;

use std::io::{IsTerminal, Write};
use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::Duration;

use clap::Parser;
use indicatif::{ProgressBar, ProgressStyle};

use cli::{Cli, Command, NetworkArgs, OutputArgs, OutputFormat};
use ipswcheck::check::{self, CheckOptions, ExpectedChecksum, Progress};
use ipswcheck::device;
use ipswcheck::digest::{from_hex, DigestAlgorithm};
use ipswcheck::exit::ExitCode;
use ipswcheck::manifest::RestoreBehavior;
use ipswcheck::remote;
use ipswcheck::render::{self, Format, SignedList};
use ipswcheck::scan;
use ipswcheck::signing::{self, SigningOptions};

/// Set when the command line asks for JSON: then every failure, usage errors included,
/// is also a JSON document on stdout (README "JSON report").
static JSON_ERRORS: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

fn main() -> std::process::ExitCode {
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
    let code = match cli.command {
        Some(Command::Devices { query }) => devices(query.as_deref().unwrap_or("")),
        Some(Command::Signed {
            device,
            network,
            output,
        }) => signed(&device, &network, &output),
        Some(Command::Doctor { network }) => doctor(&network),
        Some(Command::Scan(args)) => scan(args),
        Some(Command::Fetch(args)) => fetch(args),
        None => check_one(cli.check),
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
    eprintln!("ipswcheck: {message}");
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

fn signing_options(net: &NetworkArgs) -> Result<SigningOptions, ExitCode> {
    let mut opts = SigningOptions::from_env();
    opts.offline = net.offline;
    if let Some(url) = &net.tss_url {
        opts.tss_url = url.clone();
    }
    if let Some(url) = &net.api_url {
        opts.api_url = url.clone();
    }
    if net.ca_file.is_some() {
        opts.ca_file = net.ca_file.clone();
    }
    // A root file that cannot be used is a bad flag, said before anything is checked.
    if let Some(path) = &opts.ca_file {
        if let Err(e) = signing::tls::load_ca_file(path) {
            return Err(usage(e));
        }
    }
    // A day is far beyond any useful timeout; beyond it (1e300) the deadline
    // arithmetic would overflow.
    if !(net.timeout.is_finite() && net.timeout > 0.0 && net.timeout <= 86_400.0) {
        return Err(usage(
            "--timeout must be a positive number of seconds, at most 86400",
        ));
    }
    opts.timeout = Duration::from_secs_f64(net.timeout);
    if net.cache_dir.is_some() {
        opts.cache_dir = net.cache_dir.clone();
    }
    opts.refresh = net.refresh;
    if let Some(hosts) = &net.hosts_file {
        opts.hosts_file = hosts.clone();
    }
    opts.tss_dump = net.tss_dump.clone();
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

/// The boards and the restore behaviour a command was asked about.
fn target(
    args: &cli::TargetArgs,
) -> Result<(Option<Vec<&'static device::Device>>, RestoreBehavior), ExitCode> {
    let boards = match &args.device {
        Some(query) => Some(device::resolve(query, args.board.as_deref()).map_err(usage)?),
        None => None,
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
    Ok(CheckOptions {
        device,
        behavior,
        quick,
        expected,
        signing: signing_options(network)?,
    })
}

fn check_one(args: cli::CheckArgs) -> ExitCode {
    let Some(file) = args.file.clone() else {
        return usage("no file given; usage: ipswcheck FILE.ipsw --device iPhone9,3 (see --help)");
    };
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
    let url = file
        .to_str()
        .filter(|f| remote::is_url(f))
        .map(str::to_owned);
    if url.is_some() && options.signing.offline {
        return usage(
            "--offline cannot check a URL: reading it needs the network (drop --offline, or download the file and check it)",
        );
    }
    if let Err(code) = hashing_threads(args.jobs) {
        return code;
    }
    let progress = Progress::default();
    let show_progress =
        !args.output.quiet && !args.quick && url.is_none() && std::io::stderr().is_terminal();
    let finished = std::sync::atomic::AtomicBool::new(false);
    let report = std::thread::scope(|s| {
        if show_progress {
            s.spawn(|| draw_progress(&progress, &finished, &file));
        }
        let report = match &url {
            Some(url) => remote::check_url(url, &options, None),
            None => check::check_file(&file, &options, &progress),
        };
        finished.store(true, Ordering::Relaxed);
        report
    });
    print_report(&report, &args.output);
    report.exit()
}

/// A byte-and-ETA progress bar on stderr, redrawn from the shared counters.
fn draw_progress(progress: &Progress, finished: &std::sync::atomic::AtomicBool, file: &Path) {
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template(
            "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} ETA {eta}",
        )
        .expect("static template")
        .progress_chars("=> "),
    );
    bar.set_message(
        file.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
    );
    while !finished.load(Ordering::Relaxed) {
        bar.set_length(progress.total.load(Ordering::Relaxed));
        bar.set_position(progress.done.load(Ordering::Relaxed));
        std::thread::sleep(Duration::from_millis(100));
    }
    bar.finish_and_clear();
}

fn print_report(report: &ipswcheck::report::Report, output: &OutputArgs) {
    if output.quiet {
        return;
    }
    let text = render::renderer(format_of(output), output.verbose).report(report);
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
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
    let cancel = scan::interrupt_flag();
    let progress = scan::ScanProgress::default();
    let finished = std::sync::atomic::AtomicBool::new(false);
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
    let text = render::renderer(convert(args.format), false).scan(&result);
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
    result.exit()
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
    let finished = std::sync::atomic::AtomicBool::new(false);
    let interrupted = scan::interrupt_flag();
    let outcome = std::thread::scope(|s| {
        if show_progress {
            s.spawn(|| draw_progress(&progress, &finished, &dest));
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
    let outcome = match outcome {
        Ok(o) => o,
        Err(e) => return usage(e),
    };
    print_report(&outcome.report, &args.output);
    if !args.output.quiet {
        let note = if let Some(saved) = &outcome.saved {
            format!("saved: {} (verified)", saved.display())
        } else if let Some(failed) = &outcome.kept_failed {
            format!("kept as {} (it failed a check; --keep)", failed.display())
        } else if let Some(part) = &outcome.partial {
            format!(
                "partial download kept in {}: run the same command again to resume",
                part.display()
            )
        } else if outcome.downloaded {
            format!(
                "nothing saved: the download failed a check ({} was not created)",
                dest.display()
            )
        } else {
            format!("nothing downloaded: {} was not created", dest.display())
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

fn signed(query: &str, network: &NetworkArgs, output: &OutputArgs) -> ExitCode {
    let boards = match device::resolve(query, None) {
        Ok(b) => b,
        Err(e) => return usage(e),
    };
    let opts = match signing_options(network) {
        Ok(o) => o,
        Err(code) => return code,
    };
    if opts.offline {
        return usage("`signed` asks ipsw.me and cannot run with --offline");
    }
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
    if let Some(e) = &list.error {
        eprintln!("ipswcheck: could not ask ipsw.me: {e}");
    }
    if !output.quiet {
        let format = format_of(output);
        // The error is on stderr already; a human list would only repeat it.
        if !(format == Format::Human && list.error.is_some()) {
            let text = render::renderer(format, false).signed(&list);
            let _ = std::io::stdout().lock().write_all(text.as_bytes());
        }
    }
    code
}

fn doctor(network: &NetworkArgs) -> ExitCode {
    let opts = match signing_options(network) {
        Ok(o) => o,
        Err(code) => return code,
    };
    let report = signing::doctor(&opts);
    print!("{report}");
    if report.healthy() {
        ExitCode::Ready
    } else {
        ExitCode::SigningUnknown
    }
}
