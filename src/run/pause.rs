//! Pause points for tests that kill the process at a precise step of a run.
//!
//! A debug build whose environment sets `CP_RECON_TEST_PAUSE_AT` to a point's name logs
//! `test pause point reached` with the point's name when it gets there, then waits
//! forever, so that a test can kill it at exactly that step and check what the next
//! run makes of it. A release build has no pause points: the variable is never read.
//! For tests only; nothing else sets it.
//!
//! The points, in a run's report step: `report-recorded` (the report is recorded, its
//! folder not begun), `report-staged` (its files are in the staging folder) and
//! `report-on-disk` (the folder is under its name, not yet recorded as written).

/// The environment variable naming the point to pause at.
pub const ENV: &str = "CP_RECON_TEST_PAUSE_AT";

/// Waits forever here if this is a debug build asked to pause at `point`.
pub(crate) fn at(point: &str) {
    if !cfg!(debug_assertions) || std::env::var(ENV).as_deref() != Ok(point) {
        return;
    }
    tracing::warn!(point, "test pause point reached; waiting to be killed");
    loop {
        std::thread::park();
    }
}
