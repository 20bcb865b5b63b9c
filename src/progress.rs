//! The progress line of a check on stderr (only when stderr is a terminal).

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use ipswcheck::check::Progress;
use ipswcheck::render;

/// How long a check may run before its progress line appears: a small file is done
/// before that, and draws nothing.
const PROGRESS_DELAY: Duration = Duration::from_millis(200);

/// A byte-and-ETA progress bar on stderr, redrawn from the shared counters. Nothing is
/// drawn before [`PROGRESS_DELAY`] nor while the total is unknown (no "0 B/0 B" flash);
/// once hashing is done and Apple's answer is still awaited (`asks_apple`), the line
/// says so instead of a bar frozen at 100 %.
pub(crate) fn draw_progress(
    progress: &Progress,
    finished: &AtomicBool,
    file: &Path,
    asks_apple: bool,
) {
    let name = file
        .file_name()
        .map(|n| render::escape(&n.to_string_lossy()))
        .unwrap_or_default();
    let started = Instant::now();
    let mut bar: Option<ProgressBar> = None;
    let mut waiting = false;
    while !finished.load(Ordering::Relaxed) {
        if started.elapsed() >= PROGRESS_DELAY {
            let total = progress.total.load(Ordering::Relaxed);
            if asks_apple && !waiting && progress.phase.load(Ordering::Relaxed) != 0 {
                let spinner = bar.get_or_insert_with(ProgressBar::new_spinner);
                spinner.set_style(
                    ProgressStyle::with_template("{msg} {spinner}").expect("static template"),
                );
                spinner.set_message(format!("{name}: asking Apple's signing server…"));
                spinner.enable_steady_tick(Duration::from_millis(120));
                waiting = true;
            } else if !waiting && total > 0 {
                let bar = bar.get_or_insert_with(|| new_bar(&name));
                bar.set_length(total);
                bar.set_position(progress.done.load(Ordering::Relaxed));
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
}

fn new_bar(name: &str) -> ProgressBar {
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template(
            "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} ETA {eta}",
        )
        .expect("static template")
        .progress_chars("=> "),
    );
    bar.set_message(name.to_owned());
    bar
}
