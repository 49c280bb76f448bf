//! Long output read at a terminal goes through a pager, as git does: `$PAGER`, else
//! `less -FRX` (which prints a text that fits one screen and exits, keeps it on the
//! screen after quitting, and passes colours). [`choose`] is the pure decision; [`show`]
//! starts the pager, or prints when there is none or it cannot start.

use std::io::Write as _;
use std::process::{Command, Stdio};

/// The pager when `$PAGER` is not set.
pub const DEFAULT: &str = "less -FRX";

/// The pager command to run (a shell command line, as `$PAGER` is), or `None` to print:
/// stdout is not a terminal (a pipe, a file, a script), `--no-pager` was given, or
/// `$PAGER` is set empty or to `cat`.
pub fn choose(stdout_is_terminal: bool, no_pager: bool, pager_env: Option<&str>) -> Option<String> {
    if !stdout_is_terminal || no_pager {
        return None;
    }
    match pager_env.map(str::trim) {
        None => Some(DEFAULT.to_owned()),
        Some("" | "cat") => None,
        Some(p) => Some(p.to_owned()),
    }
}

/// The decision for this process: whether stdout is a terminal, and `$PAGER`.
pub fn for_stdout(no_pager: bool) -> Option<String> {
    use std::io::IsTerminal as _;
    let env = std::env::var_os("PAGER").map(|p| p.to_string_lossy().into_owned());
    choose(std::io::stdout().is_terminal(), no_pager, env.as_deref())
}

/// Shows `text` (a final newline added) through `pager`, run by `sh -c` as git runs
/// `$PAGER` (with `LESS=FRX` when `LESS` is not set); prints it on stdout when `pager` is
/// `None`, or when the pager cannot start (the shell cannot be run, or answers 126 or 127:
/// the command is not found or not executable). A reader who quits early is not an error.
pub fn show(text: &str, pager: Option<&str>) {
    let text = format!("{}\n", text.trim_end());
    if let Some(command) = pager
        && paged(&text, command)
    {
        return;
    }
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
}

/// Whether the pager ran; `false` if it could not start.
fn paged(text: &str, command: &str) -> bool {
    let mut cmd = Command::new("sh");
    cmd.arg("-c").arg(command).stdin(Stdio::piped());
    if std::env::var_os("LESS").is_none() {
        cmd.env("LESS", "FRX");
    }
    let Ok(mut child) = cmd.spawn() else {
        return false;
    };
    if let Some(mut stdin) = child.stdin.take() {
        // A broken pipe: the reader quit before the end, or the pager never started
        // (told apart by its exit status below).
        let _ = stdin.write_all(text.as_bytes());
    }
    match child.wait() {
        Ok(status) => !matches!(status.code(), Some(126 | 127)),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pager_runs_only_for_a_terminal() {
        assert_eq!(choose(false, false, None), None);
        assert_eq!(choose(false, false, Some("less")), None);
        assert_eq!(choose(true, false, None).as_deref(), Some("less -FRX"));
    }

    #[test]
    fn pager_chooses_the_program_and_no_pager_or_an_empty_or_cat_pager_prints() {
        assert_eq!(
            choose(true, false, Some("most -s")).as_deref(),
            Some("most -s")
        );
        assert_eq!(choose(true, true, None), None);
        assert_eq!(choose(true, true, Some("less")), None);
        assert_eq!(choose(true, false, Some("")), None);
        assert_eq!(choose(true, false, Some("  ")), None);
        assert_eq!(choose(true, false, Some("cat")), None);
    }

    #[test]
    fn a_pager_that_cannot_start_is_told_apart_from_one_that_ran() {
        assert!(!paged("x\n", "/nonexistent/pager-of-nobody"));
        assert!(paged("x\n", "cat >/dev/null"));
        // Quitting before reading everything is a pager that ran.
        let long = "line\n".repeat(100_000);
        assert!(paged(&long, "head -n 1 >/dev/null"));
    }
}
