//! File access (the core crate never touches the file system): configs by name or path,
//! reading with the path in the error, atomic writes.

use std::path::Path;

use anyhow::Context;
use bitdance::model::ModelConfig;

/// A built-in config by name (`B-4x`, ...) or a JSON file of official constructor arguments.
pub fn load_config(name: &str) -> anyhow::Result<ModelConfig> {
    if name.ends_with(".json") || Path::new(name).is_file() {
        let text = read_text(name)?;
        return Ok(ModelConfig::from_json(name, &text)?);
    }
    Ok(ModelConfig::builtin(name)?)
}

/// The bytes of `path`, or an error naming it.
pub fn read_bytes(path: impl AsRef<Path>) -> anyhow::Result<Vec<u8>> {
    let path = path.as_ref();
    std::fs::read(path).with_context(|| format!("reading {}", path.display()))
}

/// The text of `path`, or an error naming it.
pub fn read_text(path: impl AsRef<Path>) -> anyhow::Result<String> {
    let path = path.as_ref();
    std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
}

/// Writes `bytes` to `path` through a temporary file in the same directory and a rename, so
/// a crash or a full disk never leaves a truncated file where the old one was.
pub fn write_atomic(path: impl AsRef<Path>, bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    write_atomic_with(path.as_ref(), |f| f.write_all(bytes))
}

/// `write_atomic` with the file's contents written by `write` (tests inject failures here).
fn write_atomic_with(
    path: &Path,
    write: impl FnOnce(&mut std::fs::File) -> std::io::Result<()>,
) -> anyhow::Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .with_context(|| format!("{} is not a file path", path.display()))?;
    // A new, randomly named file created exclusively beside the target (never opened through an
    // existing name or symlink), renamed over the target once complete; dropped (deleted) on
    // any error, so the previous file stays whole.
    let context = || format!("writing {}", path.display());
    let name = name.to_string_lossy();
    remove_stale_temporaries(dir, &name);
    let mut tmp = tempfile::Builder::new()
        .prefix(&format!(".{name}.{}.", std::process::id()))
        .suffix(".tmp")
        .tempfile_in(dir)
        .with_context(context)?;
    write(tmp.as_file_mut())
        .and_then(|()| tmp.as_file().sync_all())
        .with_context(context)?;
    tmp.persist(path)
        .map_err(|e| e.error)
        .with_context(context)?;
    Ok(())
}

/// Deletes the temporaries of `name` in `dir` that a writer killed mid-write left behind:
/// `.NAME.PID.<random>.tmp` (and the older `.NAME.tmpPID`) whose process no longer runs.
/// Failures are ignored: a leftover file costs space, never correctness.
fn remove_stale_temporaries(dir: &Path, name: &str) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let prefix = format!(".{name}.");
    for entry in entries.flatten() {
        let file = entry.file_name();
        let Some(rest) = file.to_str().and_then(|f| f.strip_prefix(&prefix)) else {
            continue;
        };
        let pid = match rest.strip_prefix("tmp") {
            Some(old) => old.parse::<u32>().ok(),
            None if rest.ends_with(".tmp") => rest.split('.').next().and_then(|p| p.parse().ok()),
            None => None,
        };
        if pid.is_some_and(|pid| pid != std::process::id() && !process_runs(pid)) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// Whether process `pid` exists (a temporary of a live writer is never touched).
#[cfg(unix)]
fn process_runs(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return true;
    };
    // Signal 0 checks existence only; EPERM means it exists under another user.
    // SAFETY: kill with signal 0 sends nothing and has no memory effects.
    let alive = unsafe { libc::kill(pid, 0) } == 0;
    alive || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// Without a way to ask, every writer is taken to be alive (nothing is deleted).
#[cfg(not(unix))]
fn process_runs(_pid: u32) -> bool {
    true
}

/// Checks that files can be created in `path`'s folder (before a long run that ends by writing
/// `path`), by creating and deleting an unnamed temporary file there.
pub fn check_writable(path: &Path) -> anyhow::Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    tempfile::tempfile_in(dir).map(drop).with_context(|| {
        format!(
            "cannot write {}: its folder {} is not writable",
            path.display(),
            dir.display()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces_and_leaves_no_temporary() {
        let dir = std::env::temp_dir().join(format!("bitdance-files-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("out.bin");
        write_atomic(&path, b"one").unwrap();
        write_atomic(&path, b"two").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
        let err = write_atomic(dir.join("missing/out.bin"), b"x").unwrap_err();
        assert!(format!("{err:#}").contains("missing/out.bin"), "{err:#}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[cfg(unix)]
    #[test]
    fn a_planted_symlink_is_never_written_through() {
        let dir = std::env::temp_dir().join(format!("bitdance-link-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let victim = dir.join("victim.txt");
        std::fs::write(&victim, b"precious").unwrap();
        // The temporary name the writer used to predict, and the target itself, as symlinks.
        let planted = dir.join(format!(".out.bin.tmp{}", std::process::id()));
        std::os::unix::fs::symlink(&victim, &planted).unwrap();
        let target = dir.join("out.bin");
        std::os::unix::fs::symlink(&victim, &target).unwrap();
        write_atomic(&target, b"new").unwrap();
        assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
        assert!(!std::fs::symlink_metadata(&target).unwrap().is_symlink());
        assert_eq!(std::fs::read(&target).unwrap(), b"new");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn temporaries_of_killed_writers_are_removed_and_live_ones_kept() {
        let dir = std::env::temp_dir().join(format!("bitdance-stale-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        // A PID far above any pid_max (4194304) stands for a writer that was killed.
        let dead = 999_999_999u32;
        let stale = [
            format!(".checkpoint.safetensors.{dead}.aB3xYz.tmp"),
            format!(".checkpoint.safetensors.tmp{dead}"),
        ];
        let kept = [
            // A live writer (this test's own parent, PID 1) and another file's temporary.
            ".checkpoint.safetensors.1.aB3xYz.tmp".to_string(),
            format!(".model.safetensors.{dead}.aB3xYz.tmp"),
            "notes.txt".to_string(),
        ];
        for f in stale.iter().chain(&kept) {
            std::fs::write(dir.join(f), b"x").unwrap();
        }
        write_atomic(dir.join("checkpoint.safetensors"), b"new").unwrap();
        for f in &stale {
            assert!(!dir.join(f).exists(), "{f} was left");
        }
        for f in &kept {
            assert!(dir.join(f).exists(), "{f} was removed");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_full_disk_keeps_the_previous_file_and_names_the_cause() {
        use std::io::Write;
        let dir = std::env::temp_dir().join(format!("bitdance-full-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("checkpoint.safetensors");
        write_atomic(&path, b"last good checkpoint").unwrap();
        // Half the bytes land, then the device is full, as on a real full disk.
        let err = write_atomic_with(&path, |f| {
            f.write_all(b"half of the new one")?;
            Err(std::io::ErrorKind::StorageFull.into())
        })
        .unwrap_err();
        let msg = format!("{err:#}");
        assert!(msg.contains("checkpoint.safetensors"), "{msg}");
        let cause = err.root_cause().downcast_ref::<std::io::Error>();
        assert_eq!(
            cause.map(|e| e.kind()),
            Some(std::io::ErrorKind::StorageFull)
        );
        assert_eq!(std::fs::read(&path).unwrap(), b"last good checkpoint");
        assert_eq!(
            std::fs::read_dir(&dir).unwrap().count(),
            1,
            "no temporary left"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
