//! Writing and removing the one service file: parent directories created, an existing file
//! that differs kept unless forced, the new content put in place by rename so the service
//! manager never reads half a file.

use std::fmt;
use std::io::ErrorKind;
use std::path::Path;

use super::ServiceError;

/// What [`write`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Written {
    Created,
    Replaced,
    Unchanged,
}

impl fmt::Display for Written {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Written::Created => "Wrote",
            Written::Replaced => "Replaced",
            Written::Unchanged => "Already up to date:",
        })
    }
}

/// Writes `content` to `path` (mode 0644: launchd refuses a daemon plist that others can
/// write, and a unit holds nothing secret).
pub fn write(path: &Path, content: &str, force: bool) -> Result<Written, ServiceError> {
    let outcome = match std::fs::read_to_string(path) {
        Ok(existing) if existing == content => return Ok(Written::Unchanged),
        Ok(_) if !force => return Err(ServiceError::Differs(path.to_path_buf())),
        Ok(_) => Written::Replaced,
        Err(e) if e.kind() == ErrorKind::NotFound => Written::Created,
        // Unreadable or not text: only --force may replace what we cannot compare.
        Err(_) if force => Written::Replaced,
        Err(_) => return Err(ServiceError::Differs(path.to_path_buf())),
    };
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| io_error("create", parent, e))?;
    }
    let temporary = temporary_name(path);
    std::fs::write(&temporary, content).map_err(|e| io_error("write", &temporary, e))?;
    set_mode_644(&temporary).map_err(|e| io_error("set the mode of", &temporary, e))?;
    std::fs::rename(&temporary, path).map_err(|e| {
        let _ = std::fs::remove_file(&temporary);
        io_error("write", path, e)
    })?;
    Ok(outcome)
}

/// A hidden name beside `path`, in the same directory so that the rename is atomic, with an
/// extension neither systemd nor launchd loads.
fn temporary_name(path: &Path) -> std::path::PathBuf {
    let name = path
        .file_name()
        .map_or_else(Default::default, |n| n.to_string_lossy());
    path.with_file_name(format!(".{name}.tmp"))
}

/// Removes `path`; `false` when it was not there.
pub fn remove(path: &Path) -> Result<bool, ServiceError> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(false),
        Err(e) => Err(io_error("remove", path, e)),
    }
}

#[cfg(unix)]
fn set_mode_644(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644))
}

#[cfg(not(unix))]
fn set_mode_644(_path: &Path) -> std::io::Result<()> {
    Ok(())
}

fn io_error(action: &'static str, path: &Path, source: std::io::Error) -> ServiceError {
    let hint = if source.kind() == ErrorKind::PermissionDenied {
        " (a system-wide service needs root: run it with sudo, or use --user)".to_owned()
    } else {
        String::new()
    };
    ServiceError::Io {
        action,
        path: path.to_path_buf(),
        source,
        hint,
    }
}
