//! Where a report goes on disk: its folder, named for its run alone, and files, written
//! whole or not at all, never over another folder; and the check that the reports
//! directory can be written before any call is made.

use std::fs::{self, File};
use std::io::{BufWriter, Write as _};
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};

use super::{Report, ReportError, ReportKind, ReportSettings, RunInfo, WORKBOOK_FILE};

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

/// The name of a run's report folder: when the run started (UTC, to the second), its id
/// and its token, e.g. `2026-12-06T053912Z-run42-7f3a9c`.
///
/// Why this name: folders sort by time in any listing; the run id is the one logs,
/// `status` and `history` show; and the token, drawn at random when the run starts,
/// makes the name the run's own. A run id alone is not: a database put back from a
/// backup (or another installation's) hands out ids already used, and a later run with
/// the same id must never take an earlier run's folder for its own. No `:` in the name,
/// so that it copies as it is to any filesystem and through `scp` or a zip file.
pub fn folder_name(run_id: i64, started_at: DateTime<Utc>, token: &str) -> String {
    format!(
        "{}-run{run_id}-{token}",
        started_at.format("%Y-%m-%dT%H%M%SZ")
    )
}

/// Whether `name` is a report folder's name as [`folder_name`] makes them (or its
/// staging folder's, `.<name>.partial`).
pub fn is_folder_name(name: &str) -> bool {
    let name = name
        .strip_prefix('.')
        .and_then(|n| n.strip_suffix(".partial"))
        .unwrap_or(name);
    let Some((time, rest)) = name.split_once("-run") else {
        return false;
    };
    let Some((id, token)) = rest.split_once('-') else {
        return false;
    };
    chrono::NaiveDateTime::parse_from_str(time, "%Y-%m-%dT%H%M%SZ").is_ok()
        && !id.is_empty()
        && id.bytes().all(|b| b.is_ascii_digit())
        && token.len() == 6
        && token.bytes().all(|b| b.is_ascii_hexdigit())
}

/// A run's token: 6 random hex digits, drawn from the operating system when the run
/// starts (see [`folder_name`]). With the run's id and its start to the second, two runs
/// would need the same id in the same second to have even a 1 in 16 million chance of
/// the same folder name, and a run refuses to write into a folder that exists anyway.
pub fn new_token() -> Result<String, ReportError> {
    let mut bytes = [0u8; 3];
    getrandom::fill(&mut bytes).map_err(|e| ReportError::Token(e.to_string()))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Where [`Report::write_dir`] put the files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportFiles {
    pub dir: PathBuf,
    pub unmatched_payments: PathBuf,
    pub unmatched_bank_transactions: PathBuf,
    pub reconciled: PathBuf,
    pub unmatched_payouts: PathBuf,
    /// `report.xlsx`: every file as a sheet, plus a summary, for people. Written only
    /// when asked ([`WorkbookPolicy`](super::WorkbookPolicy)).
    pub workbook: PathBuf,
}

impl ReportFiles {
    /// The paths of a run's report under `base` (whether written yet or not), in the
    /// folder [`folder_name`] names.
    pub fn of_run(base: &Path, run: &RunInfo) -> Self {
        Self::at(base.join(folder_name(run.run_id, run.started_at, &run.token)))
    }

    /// The paths of a report whose folder is `dir`.
    pub fn at(dir: PathBuf) -> Self {
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

    /// Where the report is written before it is complete: a hidden sibling of its
    /// folder, `.<name>.partial`, renamed to it once every file is on disk.
    pub fn staging(&self) -> Self {
        let name = self
            .dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        Self::at(self.dir.with_file_name(format!(".{name}.partial")))
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

/// A report's files written in its staging folder, not yet under its name.
#[derive(Debug)]
pub struct Staged {
    /// Where the report will be.
    target: ReportFiles,
    /// Where it is now.
    staging: ReportFiles,
}

impl Staged {
    /// The staged files under the name of the folder they will be in: what an e-mail
    /// built before [`Staged::publish`] attaches (it reads these paths) and names as
    /// the report's folder (`dir`).
    pub fn files(&self) -> ReportFiles {
        ReportFiles {
            dir: self.target.dir.clone(),
            ..self.staging.clone()
        }
    }

    /// Adds a file to the report (the e-mail, say), written and flushed to disk.
    pub fn put(&self, name: &str, bytes: &[u8]) -> Result<(), ReportError> {
        let path = self.staging.dir.join(name);
        write_synced(&path, |w| {
            w.write_all(bytes).map_err(|source| ReportError::Io {
                path: path.clone(),
                source,
            })
        })
    }

    /// Every file is on disk: the folder appears under its name in one rename, so a
    /// report folder is either complete or absent. The directory fsyncs make the files
    /// and the rename durable (Unix only). A folder of that name that exists anyway is
    /// left as it is, and the report is not published.
    pub fn publish(self) -> Result<ReportFiles, ReportError> {
        let io_err = |path: &Path| {
            let path = path.to_path_buf();
            move |source| ReportError::Io { path, source }
        };
        refuse_existing(&self.target.dir)?;
        #[cfg(unix)]
        File::open(&self.staging.dir)
            .and_then(|d| d.sync_all())
            .map_err(io_err(&self.staging.dir))?;
        fs::rename(&self.staging.dir, &self.target.dir).map_err(io_err(&self.target.dir))?;
        #[cfg(unix)]
        if let Some(base) = self.target.dir.parent() {
            File::open(base)
                .and_then(|d| d.sync_all())
                .map_err(io_err(base))?;
        }
        Ok(self.target)
    }
}

/// What is on disk of a report its run recorded but did not see written (it was killed,
/// or failed, while writing it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unwritten {
    /// The folder is there, and complete: it appears only whole, in one rename. It is
    /// the run's report.
    Complete,
    /// No folder: the report was never written. Its staging folder, if any, is removed.
    Absent,
}

impl ReportFiles {
    /// Looks for the report whose folder this is, as [`Unwritten`] says. The only
    /// folder this may remove is the report's own staging folder.
    pub fn settle_unwritten(&self) -> Result<Unwritten, ReportError> {
        if fs::symlink_metadata(&self.dir).is_ok() {
            return Ok(Unwritten::Complete);
        }
        self.remove_staging()?;
        Ok(Unwritten::Absent)
    }

    /// Removes the report's own staging folder, if it is there.
    pub fn remove_staging(&self) -> Result<(), ReportError> {
        let staging = self.staging();
        match fs::remove_dir_all(&staging.dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(ReportError::Io {
                path: staging.dir,
                source,
            }),
        }
    }
}

/// A report folder is never written over: one that exists was written by another run.
fn refuse_existing(dir: &Path) -> Result<(), ReportError> {
    match fs::symlink_metadata(dir) {
        Ok(_) => Err(ReportError::FolderExists {
            path: dir.to_path_buf(),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(ReportError::Io {
            path: dir.to_path_buf(),
            source,
        }),
    }
}

impl Report {
    /// Writes the four CSV files and the workbook to the run's folder under `base`
    /// ([`folder_name`]), through [`Report::stage`] and [`Staged::publish`].
    pub fn write_dir(
        &self,
        base: &Path,
        settings: &ReportSettings,
    ) -> Result<ReportFiles, ReportError> {
        self.stage(&ReportFiles::of_run(base, &self.run), settings, true)?
            .publish()
    }

    /// Writes the four CSV files and, with `workbook`, the workbook (see
    /// [`WorkbookPolicy`](super::WorkbookPolicy)), each flushed to disk, in the hidden
    /// staging folder of `files` ([`ReportFiles::staging`]); [`Staged::publish`] then
    /// renames it to its name: a reader (or the e-mail) never sees a half-written
    /// report, and a run killed while writing leaves no folder that looks finished.
    ///
    /// A report folder that already exists is never touched: this run did not write it
    /// (its name is the run's own), so the report is refused with an error naming it.
    /// The only folder removed is this run's own staging folder, if it is there.
    pub fn stage(
        &self,
        files: &ReportFiles,
        settings: &ReportSettings,
        workbook: bool,
    ) -> Result<Staged, ReportError> {
        settings.validate()?;
        let io_err = |path: &Path| {
            let path = path.to_path_buf();
            move |source| ReportError::Io { path, source }
        };
        refuse_existing(&files.dir)?;
        let staging = files.staging();
        if staging.dir.exists() {
            fs::remove_dir_all(&staging.dir).map_err(io_err(&staging.dir))?;
        }
        fs::create_dir_all(&staging.dir).map_err(io_err(&staging.dir))?;
        for (kind, path) in staging.iter() {
            write_synced(path, |w| self.write_csv(kind, w, settings))?;
        }
        if workbook {
            let bytes = self.workbook_bytes(settings)?;
            write_synced(&staging.workbook, |w| {
                w.write_all(&bytes).map_err(|source| ReportError::Io {
                    path: staging.workbook.clone(),
                    source,
                })
            })?;
        }
        Ok(Staged {
            target: files.clone(),
            staging,
        })
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_folder_name_sorts_by_start_and_shows_the_run_id_and_token() {
        let at = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().to_utc();
        let a = folder_name(42, at("2026-12-06T05:39:12.9Z"), "7f3a9c");
        assert_eq!(a, "2026-12-06T053912Z-run42-7f3a9c");
        let b = folder_name(7, at("2026-12-06T05:40:00Z"), "000000");
        assert!(a < b, "a later run's folder sorts after");
        assert!(is_folder_name(&a) && is_folder_name(&format!(".{a}.partial")));
        for other in [
            "42",
            ".42.partial",
            "notes",
            "2026-12-06T053912Z-run42-7f3a9",
            "2026-12-06T053912Z-run-7f3a9c",
        ] {
            assert!(!is_folder_name(other), "{other}");
        }
        let t = new_token().unwrap();
        assert!(
            t.len() == 6 && t.bytes().all(|b| b.is_ascii_hexdigit()),
            "{t}"
        );
    }
}
