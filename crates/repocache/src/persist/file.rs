//! The file system side of a warm start: a private directory, whole-file writes by
//! temp + fsync + atomic rename, reads, and moving a bad file aside.
//!
//! A reader never sees a partial file: the new content is written to a temporary file in the
//! same directory, flushed to disk (`fsync`), and renamed over the old one (atomic on POSIX
//! file systems); the directory is then flushed so that the rename survives a power loss. A
//! process killed mid-write leaves the old file intact (and a temporary file, which a later write
//! of the same file removes once it is ten minutes old: no live writer still uses it). Two processes writing the same file end with one whole file:
//! each renames its own temporary file, and the last rename wins.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The mode of the cache directory: owner only.
pub const DIR_MODE: u32 = 0o700;
/// The mode of every file written: owner read/write only.
pub const FILE_MODE: u32 = 0o600;

/// Temporary files start with this (`.<name>.tmp-<pid>-<n>`).
const TMP_MARK: &str = ".tmp-";

/// Temporary files older than this are a crashed writer's, and removed.
const STALE_TMP: Duration = Duration::from_secs(600);

/// Creates `dir` (and its parents) if needed, and makes it `0700`.
pub fn ensure_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
        fs::DirBuilder::new()
            .recursive(true)
            .mode(DIR_MODE)
            .create(dir)?;
        let mode = fs::metadata(dir)?.permissions().mode() & 0o777;
        if mode != DIR_MODE {
            fs::set_permissions(dir, fs::Permissions::from_mode(DIR_MODE))?;
        }
        Ok(())
    }
    #[cfg(not(unix))]
    {
        fs::create_dir_all(dir)
    }
}

/// Writes `bytes` to `dir/name` whole: temp + fsync + rename + fsync of the directory.
pub fn write_atomic(dir: &Path, name: &str, bytes: &[u8]) -> io::Result<()> {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    ensure_dir(dir)?;
    let tmp = dir.join(format!(
        ".{name}{TMP_MARK}{}-{}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    ));
    let result = (|| {
        let mut file = open_new(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        drop(file);
        fs::rename(&tmp, dir.join(name))?;
        sync_dir(dir)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    remove_stale_tmp(dir, name);
    result
}

fn open_new(path: &Path) -> io::Result<fs::File> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(FILE_MODE);
    }
    options.open(path)
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        fs::File::open(dir)?.sync_all()
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        Ok(())
    }
}

/// Removes temporary files of `name` that a crashed writer left behind (old enough that no
/// live writer can still be using them).
fn remove_stale_tmp(dir: &Path, name: &str) {
    let prefix = format!(".{name}{TMP_MARK}");
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let stale = entry
            .file_name()
            .to_str()
            .is_some_and(|n| n.starts_with(&prefix))
            && entry
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|m| m.elapsed().ok())
                .is_some_and(|age| age > STALE_TMP);
        if stale {
            let _ = fs::remove_file(entry.path());
        }
    }
}

/// Reads a whole file; `None` when it does not exist.
pub fn read(path: &Path) -> io::Result<Option<Vec<u8>>> {
    match fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Moves a bad file aside (`<name>.bad-<unix ms>`), so that it is not read again and can be
/// looked at; returns where it went.
pub fn move_aside(path: &Path) -> io::Result<PathBuf> {
    let mut aside = path.as_os_str().to_owned();
    aside.push(format!(".bad-{}", unix_ms(SystemTime::now())));
    let aside = PathBuf::from(aside);
    fs::rename(path, &aside)?;
    Ok(aside)
}

/// Milliseconds since the Unix epoch (0 before it).
pub fn unix_ms(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// A write removes the temporary files a crashed writer left for the same file once they
    /// are older than [`STALE_TMP`], and nothing else: a young one (a live writer's, perhaps)
    /// and an old one of another file stay.
    #[test]
    fn a_write_removes_a_crashed_writers_old_temporary_file_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let old = dir.path().join(".crash.snap.tmp-999-0");
        let young = dir.path().join(".crash.snap.tmp-998-0");
        let other = dir.path().join(".other.snap.tmp-997-0");
        let past = SystemTime::now() - STALE_TMP - Duration::from_secs(60);
        for path in [&old, &young, &other] {
            fs::write(path, b"partial").unwrap();
        }
        for path in [&old, &other] {
            fs::File::options()
                .write(true)
                .open(path)
                .unwrap()
                .set_modified(past)
                .unwrap();
        }
        write_atomic(dir.path(), "crash.snap", b"whole").unwrap();
        assert!(
            !old.exists(),
            "the crashed writer's old temporary file stayed"
        );
        assert!(young.exists(), "a young temporary file was removed");
        assert!(other.exists(), "another file's temporary file was removed");
        assert_eq!(fs::read(dir.path().join("crash.snap")).unwrap(), b"whole");
    }

    /// Reading a file that is not there is `None`, not an error, but a file that is there and
    /// cannot be read is an error (reported, not taken for an absent file); a file moved aside
    /// is gone from its name and whole under `<name>.bad-<unix ms>`.
    #[test]
    fn absent_files_read_as_none_and_bad_ones_move_aside_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.snap");
        assert!(read(&path).unwrap().is_none());
        assert!(
            read(dir.path()).is_err(),
            "a directory read as an absent file"
        );
        fs::write(&path, b"bad").unwrap();
        assert_eq!(read(&path).unwrap().as_deref(), Some(&b"bad"[..]));
        let before = unix_ms(SystemTime::now());
        let aside = move_aside(&path).unwrap();
        assert!(read(&path).unwrap().is_none());
        assert_eq!(fs::read(&aside).unwrap(), b"bad");
        let name = aside.file_name().unwrap().to_str().unwrap().to_owned();
        let ms: u64 = name.strip_prefix("x.snap.bad-").unwrap().parse().unwrap();
        assert!(ms >= before && ms <= unix_ms(SystemTime::now()), "{name}");
        assert_eq!(unix_ms(UNIX_EPOCH - Duration::from_secs(1)), 0);
    }
}
