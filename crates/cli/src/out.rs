//! Everything the CLI prints goes through here: [`outln!`] / [`out!`] (the CLI's `println!` /
//! `print!`) and [`clean`] for stderr.
//!
//! - **Closed pipes.** `reelvec similar … | head -1` closes stdout early. `println!` would
//!   panic (exit 101); here a write that fails with `BrokenPipe` ends the process quietly with
//!   exit code 0, like a Unix filter killed by SIGPIPE but without the signal. Every command saves
//!   its files before it prints, so nothing is lost. Any other stdout error (a full disk behind
//!   `> file`) is one line on stderr and exit code 1.
//! - **Terminal escapes.** Titles and tokens come from data files; a title holding ESC sequences
//!   could drive the terminal. Control characters (C0 but newline and tab, DEL, C1) and the
//!   bidirectional overrides are shown as `U+FFFD` (`�`).

use std::borrow::Cow;
use std::io::Write as _;

/// `println!` for the CLI: [`clean`]ed, a closed pipe is a quiet exit (module docs).
macro_rules! outln {
    () => {
        $crate::out::write_text(format_args!("\n"))
    };
    ($($arg:tt)*) => {
        $crate::out::write_text(format_args!("{}\n", format_args!($($arg)*)))
    };
}

/// `print!` for the CLI: [`clean`]ed, a closed pipe is a quiet exit (module docs).
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::out::write_text(format_args!($($arg)*))
    };
}

/// True for characters that must not reach a terminal raw.
fn is_unsafe(c: char) -> bool {
    (c.is_control() && c != '\n' && c != '\t')
        || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// `text` with control characters (C0 except newline and tab, DEL, C1, ESC) and bidirectional
/// overrides replaced by `�`; borrowed when there is none.
pub fn clean(text: &str) -> Cow<'_, str> {
    if text.chars().any(is_unsafe) {
        Cow::Owned(text.chars().map(|c| if is_unsafe(c) { '\u{fffd}' } else { c }).collect())
    } else {
        Cow::Borrowed(text)
    }
}

/// Writes formatted text to stdout, [`clean`]ed; exits quietly (code 0) on a closed pipe.
pub fn write_text(args: std::fmt::Arguments<'_>) {
    let text = match args.as_str() {
        Some(s) => Cow::Borrowed(s),
        None => Cow::Owned(args.to_string()),
    };
    let mut stdout = std::io::stdout().lock();
    if let Err(e) = stdout.write_all(clean(&text).as_bytes()) {
        exit_on_write_error(&e);
    }
}

fn exit_on_write_error(e: &std::io::Error) -> ! {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        std::process::exit(0);
    }
    eprintln!("error: cannot write to stdout: {e}");
    std::process::exit(1);
}

/// Flushes stdout (at the end of `main`) with the same closed-pipe rule.
pub fn flush() {
    if let Err(e) = std::io::stdout().lock().flush() {
        exit_on_write_error(&e);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn clean_replaces_escapes_and_keeps_text() {
        assert!(matches!(clean("Heat (1995)\tok\n"), Cow::Borrowed(_)));
        assert_eq!(
            clean("A\u{1b}[2J\u{7}B\u{9b}C\u{7f}\u{202e}"),
            "A\u{fffd}[2J\u{fffd}B\u{fffd}C\u{fffd}\u{fffd}"
        );
        assert_eq!(clean("Amélie (2001)"), "Amélie (2001)");
    }
}
