//! The binary's terminal: stdout that survives a closed pipe or a full disk, and the
//! style (`--color`, NO_COLOR, the window's width) the human formats are drawn with.

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;

use ipswcheck::render::Style;

use crate::cli::ColorChoice;

/// Set once stdout cannot be written (the reader closed the pipe, the disk is full):
/// nothing more is tried, and the command still ends with its own exit code.
pub(crate) static STDOUT_GONE: AtomicBool = AtomicBool::new(false);

/// Write `text` to stdout. A closed pipe (EPIPE) ends the output quietly — the command
/// still exits with its own code, as ripgrep does; any other failure (ENOSPC) is one line
/// on stderr. Never panics.
pub(crate) fn emit(text: &str) {
    emit_bytes(text.as_bytes());
}

pub(crate) fn emit_bytes(bytes: &[u8]) {
    if STDOUT_GONE.load(Ordering::Relaxed) {
        return;
    }
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_all(bytes).and_then(|()| out.flush()) {
        STDOUT_GONE.store(true, Ordering::Relaxed);
        if e.kind() != std::io::ErrorKind::BrokenPipe {
            emit_err(&format!("ipswcheck: cannot write the output: {e}\n"));
        }
    }
}

/// Write `text` to stderr, ignoring failures (a closed stderr must not panic either).
pub(crate) fn emit_err(text: &str) {
    let _ = std::io::stderr().lock().write_all(text.as_bytes());
}

/// Make sure descriptors 0, 1 and 2 are open (on `/dev/null` when they were closed:
/// `ipswcheck … 2>&-`). Otherwise the first file the tool opens gets one of those
/// numbers, and a message meant for stderr lands in it — in `fetch`, inside the
/// download itself. What OpenSSH (`sanitise_stdfd`) and coreutils do.
pub(crate) fn sanitize_std_fds() {
    #[cfg(unix)]
    for fd in 0..=2 {
        // SAFETY: fcntl(F_GETFD) only asks whether `fd` is open; open/dup2/close act on
        // descriptors this process owns, before any other thread exists.
        unsafe {
            if libc::fcntl(fd, libc::F_GETFD) == -1 {
                let flags = if fd == 0 {
                    libc::O_RDONLY
                } else {
                    libc::O_WRONLY
                };
                let null = libc::open(c"/dev/null".as_ptr(), flags);
                if null >= 0 && null != fd {
                    libc::dup2(null, fd);
                    libc::close(null);
                }
            }
        }
    }
}

/// How the human formats are drawn (`--color`, the terminal's width), set once in `main`.
pub(crate) static STYLE: OnceLock<Style> = OnceLock::new();

pub(crate) fn style() -> Style {
    STYLE.get().copied().unwrap_or_default()
}

/// `--color` and NO_COLOR (https://no-color.org: any non-empty value disables color,
/// unless `--color always` says otherwise) and TERM=dumb; the width of the terminal when
/// stdout is one.
pub(crate) fn resolve_style(choice: ColorChoice) -> Style {
    let terminal = std::io::stdout().is_terminal();
    Style {
        color: color_enabled(
            choice,
            terminal,
            std::env::var_os("NO_COLOR").as_deref(),
            std::env::var_os("TERM").as_deref(),
        ),
        width: if terminal { terminal_width() } else { None },
    }
}

fn color_enabled(
    choice: ColorChoice,
    terminal: bool,
    no_color: Option<&std::ffi::OsStr>,
    term: Option<&std::ffi::OsStr>,
) -> bool {
    match choice {
        ColorChoice::Always => true,
        ColorChoice::Never => false,
        ColorChoice::Auto => {
            terminal && no_color.is_none_or(|v| v.is_empty()) && term.is_none_or(|t| t != "dumb")
        }
    }
}

/// The terminal's width: `COLUMNS` when set to a number, else the window size of stdout.
fn terminal_width() -> Option<usize> {
    let columns = std::env::var("COLUMNS")
        .ok()
        .and_then(|c| c.trim().parse::<usize>().ok())
        .filter(|&c| c > 0);
    columns.or_else(window_columns)
}

#[cfg(unix)]
fn window_columns() -> Option<usize> {
    // SAFETY: `winsize` is plain data (all zeros is a valid value); TIOCGWINSZ writes one
    // into the pointer, which lives for the whole call, and touches nothing else.
    let mut size: libc::winsize = unsafe { std::mem::zeroed() };
    let status = unsafe { libc::ioctl(libc::STDOUT_FILENO, libc::TIOCGWINSZ, &mut size) };
    (status == 0 && size.ws_col > 0).then_some(usize::from(size.ws_col))
}

#[cfg(not(unix))]
fn window_columns() -> Option<usize> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsStr;

    #[test]
    fn color_follows_the_flag_then_no_color_then_the_terminal() {
        let on = Some(OsStr::new("1"));
        let empty = Some(OsStr::new(""));
        let dumb = Some(OsStr::new("dumb"));
        let xterm = Some(OsStr::new("xterm-256color"));
        assert!(color_enabled(ColorChoice::Always, false, on, dumb));
        assert!(!color_enabled(ColorChoice::Never, true, None, xterm));
        assert!(color_enabled(ColorChoice::Auto, true, None, xterm));
        assert!(color_enabled(ColorChoice::Auto, true, empty, None));
        assert!(!color_enabled(ColorChoice::Auto, true, on, xterm));
        assert!(!color_enabled(ColorChoice::Auto, true, None, dumb));
        assert!(!color_enabled(ColorChoice::Auto, false, None, xterm));
    }
}
