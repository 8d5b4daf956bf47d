//! Private key files: the generated listener key is created without following links and
//! without replacing anything, is read only if it is a private regular file of ours (a mode
//! readable by others is fixed, with a warning), and a configured key readable by others is
//! reported.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::Path;

/// Mode bits that let the group or others read, write or run a file.
#[cfg(unix)]
const SHARED_BITS: u32 = 0o077;

/// Refuses a symbolic link at `path`: writing through it would put our key, or truncate a
/// file, wherever it points.
pub(crate) fn refuse_link(path: &Path) -> Result<(), String> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => Err(format!(
            "{} is a symbolic link; refusing to follow it. Remove it to have the relay \
             generate the file again",
            path.display()
        )),
        _ => Ok(()),
    }
}

/// Writes a new file with `mode` (unix). Fails if anything, a link included, is at `path`.
pub(crate) fn create_new(path: &Path, bytes: &[u8], mode: u32) -> Result<(), String> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(mode).custom_flags(libc::O_NOFOLLOW);
    }
    #[cfg(not(unix))]
    let _ = mode;
    let mut file = options
        .open(path)
        .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
    file.write_all(bytes)
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// Reads the generated key, first making sure only we can read it.
pub(crate) fn read_private(path: &Path) -> Result<Vec<u8>, String> {
    let mut options = OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::custom_flags(&mut options, libc::O_NOFOLLOW);
    let mut file = options
        .open(path)
        .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    make_private(&file, path)?;
    let mut pem = Vec::new();
    file.read_to_end(&mut pem)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    Ok(pem)
}

/// Checks the open file (not the path, which could be swapped meanwhile): a regular file we
/// own, mode 0600 after this.
#[cfg(unix)]
fn make_private(file: &File, path: &Path) -> Result<(), String> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let meta = file
        .metadata()
        .map_err(|e| format!("cannot inspect {}: {e}", path.display()))?;
    if !meta.is_file() {
        return Err(format!("{} is not a regular file", path.display()));
    }
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    if meta.uid() != me {
        return Err(format!(
            "{} belongs to user id {}, not to the relay's user ({me}); remove it to have the \
             relay generate a new one",
            path.display(),
            meta.uid()
        ));
    }
    let mode = meta.mode() & 0o777;
    if mode & SHARED_BITS == 0 {
        return Ok(());
    }
    file.set_permissions(std::fs::Permissions::from_mode(0o600))
        .map_err(|e| {
            format!(
                "{} is readable by other users (mode {mode:o}) and its mode cannot be \
                 changed: {e}",
                path.display()
            )
        })?;
    tracing::warn!(
        key = %path.display(),
        was = %format!("{mode:o}"),
        "the listener private key was readable by other users; its mode is now 600"
    );
    Ok(())
}

#[cfg(not(unix))]
fn make_private(_file: &File, _path: &Path) -> Result<(), String> {
    Ok(())
}

/// Warns when the configured `listen.tls_key` can be read by other users; it is the
/// operator's file, so it is left as it is.
#[cfg(unix)]
pub(crate) fn warn_if_shared(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let Ok(meta) = std::fs::metadata(path) else {
        return;
    };
    let mode = meta.permissions().mode() & 0o777;
    if mode & SHARED_BITS != 0 {
        tracing::warn!(
            key = %path.display(),
            mode = %format!("{mode:o}"),
            "listen.tls_key is readable by other users; make it readable by the relay's user \
             only (chmod 600)"
        );
    }
}

#[cfg(not(unix))]
pub(crate) fn warn_if_shared(_path: &Path) {}
