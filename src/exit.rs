//! The process's exit codes, the one place they are defined (the README's table).

/// The run completed (whatever was left unmatched).
pub const EXIT_OK: u8 = 0;
/// The run failed, was incomplete, or was stopped (SIGTERM, SIGINT).
pub const EXIT_FAILED: u8 = 1;
/// A usage or configuration error.
pub const EXIT_USAGE: u8 = 2;
/// Another run holds the database (`EX_TEMPFAIL`; systemd counts it as success).
pub const EXIT_LOCKED: u8 = 75;
