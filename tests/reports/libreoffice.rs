//! LibreOffice headless as a spreadsheet user in Spain would have it: a fresh profile
//! whose locale is es-ES (decimal comma, thousands dot). Tests that need it skip with a
//! message when `soffice` is not installed, unless `CP_RECON_REQUIRE_LIBREOFFICE` is set
//! (CI sets it, so a missing install fails there instead of passing silently).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The locale every conversion runs in.
const LOCALE: &str = "es-ES";

pub struct LibreOffice {
    profile: tempfile::TempDir,
}

impl LibreOffice {
    /// LibreOffice with a profile of its own (so tests can run side by side), or `None`
    /// with a message saying what is skipped.
    pub fn find(what: &str) -> Option<Self> {
        let installed = Command::new("soffice")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success());
        if !installed {
            if std::env::var_os("CP_RECON_REQUIRE_LIBREOFFICE").is_some() {
                panic!("{what}: soffice not found and CP_RECON_REQUIRE_LIBREOFFICE is set");
            }
            eprintln!(
                "SKIPPED {what}: LibreOffice is not installed (`soffice` not on PATH); \
                 install the Debian package libreoffice-calc-nogui to run it"
            );
            return None;
        }
        let profile = tempfile::tempdir().unwrap();
        let user = profile.path().join("user");
        std::fs::create_dir_all(&user).unwrap();
        std::fs::write(
            user.join("registrymodifications.xcu"),
            format!(
                r#"<?xml version="1.0" encoding="UTF-8"?>
<oor:items xmlns:oor="http://openoffice.org/2001/registry" xmlns:xs="http://www.w3.org/2001/XMLSchema" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
<item oor:path="/org.openoffice.Setup/L10N"><prop oor:name="ooSetupSystemLocale" oor:op="fuse"><value>{LOCALE}</value></prop></item>
</oor:items>
"#
            ),
        )
        .unwrap();
        Some(Self { profile })
    }

    fn convert(&self, input: &Path, to: &str, infilter: Option<&str>, outdir: &Path) {
        let mut cmd = Command::new("soffice");
        cmd.arg(format!(
            "-env:UserInstallation=file://{}",
            self.profile.path().display()
        ))
        .args(["--headless", "--norestore"]);
        if let Some(f) = infilter {
            cmd.arg(format!("--infilter={f}"));
        }
        let out = cmd
            .args(["--convert-to", to, "--outdir"])
            .arg(outdir)
            .arg(input)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "soffice failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Every sheet of a workbook as its own CSV file in `outdir` (`;`-separated, UTF-8,
    /// every text cell quoted, cells as shown in the locale): `<stem>-<sheet>.csv`.
    pub fn workbook_to_csvs(&self, xlsx: &Path, outdir: &Path) -> PathBuf {
        self.convert(
            xlsx,
            "csv:Text - txt - csv (StarCalc):59,34,76,1,,0,true,,true,false,,-1",
            None,
            outdir,
        );
        outdir.to_path_buf()
    }

    /// Opens a workbook and saves it again as `.xlsx` in `outdir`, under the same name,
    /// as a person who edited it there would.
    #[allow(dead_code)] // used by the CLI suite (apply), not by this one
    pub fn resave_workbook(&self, xlsx: &Path, outdir: &Path) -> PathBuf {
        self.convert(xlsx, "xlsx:Calc MS Excel 2007 XML", None, outdir);
        outdir.join(xlsx.file_name().unwrap())
    }

    /// The workbook printed to PDF as LibreOffice prints it (every sheet, each with its
    /// print area and page setup); returns the number of pages.
    pub fn printed_pages(&self, xlsx: &Path, outdir: &Path) -> usize {
        self.convert(xlsx, "pdf", None, outdir);
        let stem = xlsx.file_stem().unwrap().to_string_lossy().into_owned();
        let pdf = std::fs::read(outdir.join(format!("{stem}.pdf"))).unwrap();
        // Each page object says `/Type /Page` (the page tree says `/Pages`).
        let text = String::from_utf8_lossy(&pdf);
        text.match_indices("/Type")
            .filter(|(i, _)| {
                let rest = text[i + 5..].trim_start();
                rest.starts_with("/Page") && !rest.starts_with("/Pages")
            })
            .count()
    }

    /// Opens a CSV file as a user whose import dialog keeps its defaults for the locale
    /// (the given delimiter, UTF-8, no column forced to a type) and saves it as xlsx.
    pub fn csv_to_workbook(&self, csv: &Path, delimiter: char, outdir: &Path) -> PathBuf {
        let filter = format!(
            "Text - txt - csv (StarCalc):{},34,76,1",
            u32::from(delimiter)
        );
        self.convert(csv, "xlsx", Some(&filter), outdir);
        let stem = csv.file_stem().unwrap().to_string_lossy().into_owned();
        outdir.join(format!("{stem}.xlsx"))
    }
}

/// A CSV LibreOffice wrote, keeping whether each field was quoted (text) or not
/// (a number or a date).
pub struct Exported {
    header: Vec<String>,
    rows: Vec<Vec<(String, bool)>>,
}

pub struct ExportedRow<'a> {
    columns: HashMap<&'a str, &'a (String, bool)>,
}

impl ExportedRow<'_> {
    /// The field's text and whether it was quoted.
    pub fn field(&self, name: &str) -> (&str, bool) {
        let (s, q) = self.columns[name];
        (s.as_str(), *q)
    }
}

impl Exported {
    pub fn row(&self, id: &str) -> ExportedRow<'_> {
        let row = self
            .rows
            .iter()
            .find(|r| r[0].0 == id)
            .unwrap_or_else(|| panic!("no row {id:?}"));
        ExportedRow {
            columns: self
                .header
                .iter()
                .map(String::as_str)
                .zip(row.iter())
                .collect(),
        }
    }
}

/// Reads `<dir>/report-<sheet>.csv`, as written by [`LibreOffice::workbook_to_csvs`].
pub fn read_exported(dir: &Path, sheet: &str) -> Exported {
    let text = std::fs::read_to_string(dir.join(format!("report-{sheet}.csv"))).unwrap();
    let mut records = parse_fields(&text, ';').into_iter();
    let header = records
        .next()
        .unwrap()
        .into_iter()
        .map(|(s, _)| s)
        .collect();
    Exported {
        header,
        rows: records.collect(),
    }
}

/// RFC 4180 fields with their quoting: `"a";1` → `[("a", true), ("1", false)]`.
fn parse_fields(text: &str, sep: char) -> Vec<Vec<(String, bool)>> {
    let mut records = Vec::new();
    let mut record = Vec::new();
    let mut chars = text.chars().peekable();
    loop {
        let mut field = String::new();
        let quoted = chars.peek() == Some(&'"');
        if quoted {
            chars.next();
            while let Some(c) = chars.next() {
                if c == '"' {
                    if chars.peek() == Some(&'"') {
                        chars.next();
                        field.push('"');
                    } else {
                        break;
                    }
                } else {
                    field.push(c);
                }
            }
        }
        while let Some(&c) = chars.peek() {
            if c == sep || c == '\n' || c == '\r' {
                break;
            }
            field.push(c);
            chars.next();
        }
        record.push((field, quoted));
        match chars.next() {
            Some(c) if c == sep => {}
            Some('\r') => {
                chars.next_if_eq(&'\n');
                records.push(std::mem::take(&mut record));
            }
            Some('\n') => records.push(std::mem::take(&mut record)),
            _ => {
                records.push(record);
                break;
            }
        }
        if chars.peek().is_none() {
            if !record.is_empty() {
                records.push(record);
            }
            break;
        }
    }
    records
}
