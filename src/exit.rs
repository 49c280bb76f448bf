//! The process's exit codes, the one place they are defined (the README's table).

/// The run completed (whatever was left unmatched).
pub const EXIT_OK: u8 = 0;
/// The run failed or was incomplete.
pub const EXIT_FAILED: u8 = 1;
/// A usage or configuration error.
pub const EXIT_USAGE: u8 = 2;
/// Another run holds the database (`EX_TEMPFAIL`; systemd counts it as success).
pub const EXIT_LOCKED: u8 = 75;
/// The run was stopped by SIGTERM (`systemctl stop`): 128 + 15, as a shell reports a
/// process that SIGTERM ended. Not a failure: the next run goes on from there; the
/// timer's unit counts it as success (`SuccessExitStatus=`), so a stop does not leave
/// the unit failed.
pub const EXIT_STOPPED: u8 = 143;
/// The run was stopped by SIGINT (Ctrl-C): 128 + 2, as a shell reports it.
pub const EXIT_INTERRUPTED: u8 = 130;
