//! Where a report goes on disk: its directory and files, written whole or not at all, and
//! the check that the reports directory can be written before any call is made.

use std::fs::{self, File};
use std::io::{BufWriter, Write as _};
use std::path::{Path, PathBuf};

use super::{Report, ReportError, ReportKind, ReportSettings, WORKBOOK_FILE};

/// Checks that a report can be written under `base`, creating it if needed: a file is
/// created there, flushed and removed. The run checks this before any reconcile call,
/// so that it never ties a pair no report could list.
pub fn check_writable(base: &Path) -> Result<(), ReportError> {
    let io_err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| ReportError::Io { path, source }
    };
    fs::create_dir_all(base).map_err(io_err(base))?;
    let probe = base.join(format!(".write-check.{}", std::process::id()));
    let written = File::create(&probe).and_then(|f| f.sync_all());
    // Best effort: a probe that could not be written may not exist.
    let removed = fs::remove_file(&probe);
    written.map_err(io_err(&probe))?;
    removed.map_err(io_err(&probe))
}

/// Where [`Report::write_dir`] put the files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportFiles {
    pub dir: PathBuf,
    pub unmatched_payments: PathBuf,
    pub unmatched_bank_transactions: PathBuf,
    pub reconciled: PathBuf,
    pub unmatched_payouts: PathBuf,
    /// `report.xlsx`: every file as a sheet, plus a summary, for people.
    pub workbook: PathBuf,
}

impl ReportFiles {
    /// The expected paths for a run under `base` (whether written yet or not).
    pub fn in_dir(base: &Path, run_id: i64) -> Self {
        Self::at(base.join(run_id.to_string()))
    }

    /// Where a run's report is written before it is complete: a hidden sibling of its
    /// directory, renamed to it once every file is on disk.
    fn staging(base: &Path, run_id: i64) -> Self {
        Self::at(base.join(format!(".{run_id}.partial")))
    }

    fn at(dir: PathBuf) -> Self {
        Self {
            unmatched_payments: dir.join(ReportKind::UnmatchedPayments.file_name()),
            unmatched_bank_transactions: dir
                .join(ReportKind::UnmatchedBankTransactions.file_name()),
            reconciled: dir.join(ReportKind::Reconciled.file_name()),
            unmatched_payouts: dir.join(ReportKind::UnmatchedPayouts.file_name()),
            workbook: dir.join(WORKBOOK_FILE),
            dir,
        }
    }

    pub fn path(&self, kind: ReportKind) -> &Path {
        match kind {
            ReportKind::UnmatchedPayments => &self.unmatched_payments,
            ReportKind::UnmatchedBankTransactions => &self.unmatched_bank_transactions,
            ReportKind::Reconciled => &self.reconciled,
            ReportKind::UnmatchedPayouts => &self.unmatched_payouts,
        }
    }

    /// The four files in a fixed order.
    pub fn iter(&self) -> impl Iterator<Item = (ReportKind, &Path)> {
        ReportKind::ALL.into_iter().map(|k| (k, self.path(k)))
    }
}

impl Report {
    /// Writes the four CSV files and the workbook to `base/<run-id>/`. They are written
    /// and flushed to disk in a hidden staging directory, `base/.<run-id>.partial/`,
    /// which is then renamed: a reader (or the e-mail) never sees a half-written report,
    /// and a run killed while writing leaves no directory that looks finished.
    pub fn write_dir(
        &self,
        base: &Path,
        settings: &ReportSettings,
    ) -> Result<ReportFiles, ReportError> {
        settings.validate()?;
        let files = ReportFiles::in_dir(base, self.run.run_id);
        let staging = ReportFiles::staging(base, self.run.run_id);
        let io_err = |path: &Path| {
            let path = path.to_path_buf();
            move |source| ReportError::Io { path, source }
        };
        // A staging directory left by a run killed while writing, or an earlier write of
        // this run's report: both are replaced whole.
        for dir in [&staging.dir, &files.dir] {
            if dir.exists() {
                fs::remove_dir_all(dir).map_err(io_err(dir))?;
            }
        }
        fs::create_dir_all(&staging.dir).map_err(io_err(&staging.dir))?;
        for (kind, path) in staging.iter() {
            write_synced(path, |w| self.write_csv(kind, w, settings))?;
        }
        let workbook = self.workbook_bytes(settings)?;
        write_synced(&staging.workbook, |w| {
            w.write_all(&workbook).map_err(|source| ReportError::Io {
                path: staging.workbook.clone(),
                source,
            })
        })?;
        // Every file is on disk: the directory appears under its name in one rename, so
        // a report directory is either complete or absent. The directory fsyncs make the
        // files and the rename durable (Unix only).
        #[cfg(unix)]
        File::open(&staging.dir)
            .and_then(|d| d.sync_all())
            .map_err(io_err(&staging.dir))?;
        fs::rename(&staging.dir, &files.dir).map_err(io_err(&files.dir))?;
        #[cfg(unix)]
        File::open(base)
            .and_then(|d| d.sync_all())
            .map_err(io_err(base))?;
        Ok(files)
    }
}

/// Writes one file and flushes it to disk.
fn write_synced(
    path: &Path,
    write: impl FnOnce(&mut BufWriter<File>) -> Result<(), ReportError>,
) -> Result<(), ReportError> {
    let io_err = |source| ReportError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut w = BufWriter::new(File::create(path).map_err(io_err)?);
    write(&mut w)?;
    let file = w.into_inner().map_err(|e| io_err(e.into_error()))?;
    file.sync_all().map_err(io_err)
}
