//! A cut database file, caught at open by comparing the file's length with the pages
//! the database needs.
//!
//! SQLite itself does not notice a file that lost less than a page: it counts the pages
//! of a file rounding up, and reads the missing tail of the last page as zeros, so the
//! rows on it silently disappear. What is certain damage, and what is not:
//!
//! - SQLite writes a database file in whole pages only. A length that is not a whole
//!   number of pages means something other than SQLite cut or extended the file.
//! - The header records the database's size in pages (bytes 28–31), valid when the
//!   change counter (bytes 24–27) equals the version-valid-for number (bytes 92–95). A
//!   file shorter than that lacks pages the database uses.
//! - In WAL mode the database is the main file *with the WAL's committed frames laid
//!   over it*, and the size is the one the last committed frame records. The main file
//!   can lag behind: a transaction that grew the database lives in the WAL until a
//!   checkpoint copies it; and a checkpoint copies page 1 (the new header) first and the
//!   new pages after it, so during a checkpoint, or after a process killed in the middle
//!   of one, the main file is shorter than its own header says — and healthy, because
//!   the WAL still holds those pages (it is not reused until a checkpoint finishes). A
//!   file longer than the database is not damage either: a checkpoint that shrinks a
//!   database truncates the file last.
//!
//! So a page is *missing* when the database needs it (it is within the size recorded by
//! the WAL's last commit, else by a valid header), the main file does not hold all of its
//! bytes, and no committed WAL frame holds it. Only a missing page is damage. WAL frames
//! are taken as SQLite's recovery takes them, up to the first frame whose salts differ
//! from the WAL header's (a frame of an older generation) and up to the last commit
//! frame, without verifying checksums: that can only count more frames than SQLite does,
//! so it can miss damage after an operating-system crash, never report healthy pages as
//! missing.
//!
//! The caller holds a read transaction while this reads the files, so no checkpoint can
//! reuse the WAL between reading the main file's length and reading the WAL.

use std::collections::HashSet;
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::Path;

/// The first 100 bytes of the database file.
const HEADER: usize = 100;
const WAL_HEADER: u64 = 32;
const FRAME_HEADER: u64 = 24;

/// The committed frames of a WAL, as SQLite's recovery would read them.
#[derive(Debug, Default, PartialEq, Eq)]
struct WalFrames {
    /// Pages that a committed frame holds.
    pages: HashSet<u32>,
    /// The database's size in pages recorded by the last commit frame.
    db_pages: Option<u32>,
}

/// Why the database file at `path` lacks pages, or `None` when it does not (or when it
/// is not a database file yet, or cannot be read: opening it says why).
pub(super) fn missing_pages(path: &Path) -> Option<String> {
    let mut file = std::fs::File::open(path).ok()?;
    let len = file.metadata().ok()?.len();
    let mut header = [0u8; HEADER];
    file.read_exact(&mut header).ok()?;
    let page_size = page_size(&header)?;
    // A file of whole pages that holds every page its header counts lacks nothing: pages
    // the WAL's commits added beyond it were never checkpointed (a checkpoint writes the
    // new header first), so the WAL holds them. Only a file that looks short has its WAL
    // read (some 0.1 s for a WAL of 130 MB).
    shortfall(len, &header, &WalFrames::default())?;
    let wal = read_wal(&wal_path(path), page_size).unwrap_or_default();
    shortfall(len, &header, &wal)
}

/// `<path>-wal`, where SQLite keeps the WAL of the database at `path`.
fn wal_path(path: &Path) -> std::path::PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push("-wal");
    name.into()
}

/// The page size a database header records, if it is a database header.
fn page_size(header: &[u8; HEADER]) -> Option<u32> {
    if &header[..16] != b"SQLite format 3\0" {
        return None;
    }
    let size = match u16::from_be_bytes([header[16], header[17]]) {
        1 => 65_536,
        n => u32::from(n),
    };
    (size.is_power_of_two() && (512..=65_536).contains(&size)).then_some(size)
}

fn be32(bytes: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
}

/// The committed frames of the WAL at `path` for a database of `page_size` pages. A
/// missing or empty WAL, or one for another page size (SQLite ignores it), has none.
fn read_wal(path: &Path, page_size: u32) -> std::io::Result<WalFrames> {
    let mut frames = WalFrames::default();
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(frames),
        Err(e) => return Err(e),
    };
    let len = file.metadata()?.len();
    if len < WAL_HEADER {
        return Ok(frames);
    }
    let mut header = [0u8; WAL_HEADER as usize];
    file.read_exact_at(&mut header, 0)?;
    let magic = be32(&header, 0);
    if magic & !1 != 0x377f_0682 || be32(&header, 8) != page_size {
        return Ok(frames);
    }
    let salts = &header[16..24];
    let frame_len = FRAME_HEADER + u64::from(page_size);
    let mut uncommitted = Vec::new();
    let mut at = WAL_HEADER;
    let mut frame = [0u8; FRAME_HEADER as usize];
    while at + frame_len <= len {
        file.read_exact_at(&mut frame, at)?;
        if &frame[8..16] != salts {
            break;
        }
        uncommitted.push(be32(&frame, 0));
        let commit = be32(&frame, 4);
        if commit != 0 {
            frames.pages.extend(uncommitted.drain(..));
            frames.db_pages = Some(commit);
        }
        at += frame_len;
    }
    Ok(frames)
}

/// What the database lacks, given its file's length, its header and its WAL's committed
/// frames: a partial last page, or pages the database needs that neither the file nor
/// the WAL holds.
fn shortfall(len: u64, header: &[u8; HEADER], wal: &WalFrames) -> Option<String> {
    let page_size = u64::from(page_size(header)?);
    let header_pages = be32(header, 28);
    let header_valid = header_pages != 0 && header[24..28] == header[92..96];
    let needed = wal
        .db_pages
        .or(header_valid.then_some(header_pages))
        .map_or(0, u64::from);
    let whole = len / page_size;
    let in_wal = |page: u64| u32::try_from(page).is_ok_and(|p| wal.pages.contains(&p));
    if !len.is_multiple_of(page_size) && !in_wal(whole + 1) {
        return Some(format!(
            "the file is {len} bytes, not a whole number of {page_size}-byte pages: it was cut short or changed by something other than SQLite"
        ));
    }
    let lacking = (whole + 1..=needed).filter(|&p| !in_wal(p)).count();
    (lacking > 0).then(|| {
        format!(
            "the file is {len} bytes but the database needs {needed} pages of {page_size} bytes ({} bytes); {lacking} of them are neither in the file nor in its WAL: it was cut short",
            needed * page_size
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header_with_page_size(size: u16) -> [u8; HEADER] {
        let mut h = [0u8; HEADER];
        h[..16].copy_from_slice(b"SQLite format 3\0");
        h[16..18].copy_from_slice(&size.to_be_bytes());
        h
    }

    #[test]
    fn a_page_size_is_read_only_when_it_is_a_power_of_two_sqlite_allows() {
        assert_eq!(page_size(&header_with_page_size(4096)), Some(4096));
        assert_eq!(page_size(&header_with_page_size(1)), Some(65_536));
        // In range but not a power of two; a power of two below the smallest page.
        assert_eq!(page_size(&header_with_page_size(1000)), None);
        assert_eq!(page_size(&header_with_page_size(256)), None);
    }
}
