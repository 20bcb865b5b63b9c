//! The progress display of a scan (stderr, only when it is a terminal): one bar for
//! the whole library (bytes, rate, ETA) and one line per file being hashed; files that
//! are open but still waiting for the queue are only counted.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::ScanProgress;

fn short(name: &str, width: usize) -> String {
    if name.chars().count() <= width {
        format!("{name:width$}")
    } else {
        let tail: String = name
            .chars()
            .rev()
            .take(width - 1)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        format!("…{tail}")
    }
}

/// Redraw from `progress` every 100 ms until `finished` is set, then clear.
pub fn draw_progress(progress: &ScanProgress, finished: &AtomicBool) {
    let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
    let main = multi.add(ProgressBar::new(0));
    main.set_style(
        ProgressStyle::with_template(
            "{prefix} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} ETA {eta}",
        )
        .expect("static template")
        .progress_chars("=> "),
    );
    let line = ProgressStyle::with_template("  {msg} [{bar:20}] {bytes}/{total_bytes}")
        .expect("static template")
        .progress_chars("=> ");
    let mut lines: HashMap<u64, ProgressBar> = HashMap::new();
    while !finished.load(Ordering::Relaxed) {
        let snap = progress.snapshot();
        main.set_length(snap.total);
        main.set_position(snap.done);
        // A line per file being read; files opened and waiting in the queue are counted.
        let reading: Vec<_> = snap.in_flight.iter().filter(|f| f.2 > 0).collect();
        let queued = snap.in_flight.len() - reading.len();
        main.set_prefix(format!(
            "{}/{} files{}",
            snap.files_done,
            snap.files_total,
            if queued > 0 {
                format!(" ({queued} queued)")
            } else {
                String::new()
            }
        ));
        let live: HashSet<u64> = reading.iter().map(|f| f.0).collect();
        for (id, name, done, total) in reading {
            let bar = lines.entry(*id).or_insert_with(|| {
                let bar = multi.add(ProgressBar::new(*total));
                bar.set_style(line.clone());
                // A file name is the world's words: escaped, as in every human output.
                bar.set_message(short(&crate::render::escape(name), 40));
                bar
            });
            bar.set_position(*done);
        }
        lines.retain(|id, bar| {
            let keep = live.contains(id);
            if !keep {
                bar.finish_and_clear();
                multi.remove(bar);
            }
            keep
        });
        std::thread::sleep(Duration::from_millis(100));
    }
    for bar in lines.values() {
        bar.finish_and_clear();
    }
    main.finish_and_clear();
    let _ = multi.clear();
}
