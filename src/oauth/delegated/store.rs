//! Where an account's refresh token is kept: `state_dir/tokens/<account>.refresh`, readable by
//! the relay's user only, replaced atomically (Entra hands out a new one with every refresh),
//! and read again whenever the file changed, so a new `xoauth-relay login` reaches a running
//! relay without a restart.

use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::secret::Secret;

/// Entra's refresh tokens are one to two KiB; a file far larger is not one.
const MAX_TOKEN_FILE: u64 = 64 * 1024;

/// Names of temporary files made by this process, so two writers never share one.
static NEXT_TEMPORARY: AtomicU64 = AtomicU64::new(0);

/// The file of one account's refresh token and what was last read from it.
pub(crate) struct TokenStore {
    path: PathBuf,
    cached: Mutex<Option<(Stamp, Secret<String>)>>,
}

/// What tells a changed file apart: a rename gives a new inode, an edit a new size or mtime.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    inode: u64,
    len: u64,
    modified_ns: i128,
}

impl Stamp {
    fn of(meta: &fs::Metadata) -> Self {
        Self {
            inode: meta.ino(),
            len: meta.len(),
            modified_ns: i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec()),
        }
    }
}

impl TokenStore {
    /// The store of `account` under `state_dir`.
    pub(crate) fn new(state_dir: &Path, account: &str) -> Self {
        Self::at(path_for(state_dir, account))
    }

    pub(crate) fn at(path: PathBuf) -> Self {
        Self {
            path,
            cached: Mutex::new(None),
        }
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// The refresh token, read from the file when it changed since the last look; `None` when
    /// there is no file yet (nobody signed in).
    pub(crate) fn load(&self) -> io::Result<Option<Secret<String>>> {
        let meta = match fs::metadata(&self.path) {
            Ok(meta) => meta,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let stamp = Stamp::of(&meta);
        let mut cached = self.lock();
        if let Some((seen, token)) = cached.as_ref()
            && *seen == stamp
        {
            return Ok(Some(token.clone()));
        }
        let (stamp, token) = read_token(&self.path)?;
        *cached = Some((stamp, token.clone()));
        Ok(Some(token))
    }

    /// Replaces the stored token: a new file (0600) is written and flushed to disk, renamed
    /// over the old one, and the directory flushed, so a crash leaves the old token or the new
    /// one, never half of one.
    pub(crate) fn save(&self, token: &Secret<String>) -> io::Result<()> {
        let dir = self.path.parent().unwrap_or(Path::new("."));
        private_dir(dir)?;
        let owner = owner_for(dir);
        let name = self
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let n = NEXT_TEMPORARY.fetch_add(1, Ordering::Relaxed);
        let temporary = dir.join(format!(".{name}.{}.{n}.tmp", std::process::id()));
        let written = write_private(&temporary, token.expose(), owner);
        let renamed = written.and_then(|given| {
            if let Some((uid, gid)) = given {
                std::os::unix::fs::chown(dir, Some(uid), Some(gid))?;
            }
            fs::rename(&temporary, &self.path)
        });
        if let Err(e) = renamed {
            let _ = fs::remove_file(&temporary);
            return Err(e);
        }
        File::open(dir)?.sync_all()?;
        let meta = fs::metadata(&self.path)?;
        *self.lock() = Some((Stamp::of(&meta), token.clone()));
        Ok(())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<(Stamp, Secret<String>)>> {
        // A panic elsewhere cannot leave the cache half-written: it is replaced whole.
        self.cached.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// `state_dir/tokens/<account>.refresh`; account names are checked at load to be plain words.
pub(crate) fn path_for(state_dir: &Path, account: &str) -> PathBuf {
    state_dir.join("tokens").join(format!("{account}.refresh"))
}

/// Creates `dir` (0700) if needed, and takes group and other access away if it has any.
fn private_dir(dir: &Path) -> io::Result<()> {
    DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
    let mode = fs::metadata(dir)?.permissions().mode();
    if mode & 0o077 != 0 {
        fs::set_permissions(dir, fs::Permissions::from_mode(mode & 0o700))?;
    }
    Ok(())
}

/// The owner of the state directory when it is not root: root signing in for a relay that
/// runs as another user (the system unit's dynamic user owns its state directory) gives the
/// files to that user, who could not read root's `0600` file.
fn owner_for(dir: &Path) -> Option<(u32, u32)> {
    let state = fs::metadata(dir.parent()?).ok()?;
    (state.uid() != 0).then(|| (state.uid(), state.gid()))
}

/// Writes and flushes a new `0600` file; when root made it, it is given to `owner`, which is
/// then returned.
fn write_private(
    path: &Path,
    text: &str,
    owner: Option<(u32, u32)>,
) -> io::Result<Option<(u32, u32)>> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    let given = owner.filter(|_| file.metadata().is_ok_and(|m| m.uid() == 0));
    if let Some((uid, gid)) = given {
        std::os::unix::fs::fchown(&file, Some(uid), Some(gid))?;
    }
    file.write_all(text.as_bytes())?;
    file.write_all(b"\n")?;
    file.sync_all()?;
    Ok(given)
}

fn read_token(path: &Path) -> io::Result<(Stamp, Secret<String>)> {
    let mut file = File::open(path)?;
    // The stamp of the file actually read, so a rename in between is seen next time.
    let stamp = Stamp::of(&file.metadata()?);
    let mut text = String::new();
    Read::by_ref(&mut file)
        .take(MAX_TOKEN_FILE + 1)
        .read_to_string(&mut text)?;
    if text.len() as u64 > MAX_TOKEN_FILE {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "the file is larger than any refresh token",
        ));
    }
    let token = text.trim();
    if token.is_empty() || token.contains(char::is_whitespace) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "the file holds no refresh token",
        ));
    }
    Ok((stamp, Secret::new(token.to_owned())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(test: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("xoauth-relay-store-{test}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn saved_tokens_are_private_and_replace_the_old_one_whole() {
        let state = scratch("save");
        let store = TokenStore::new(&state, "home");
        assert_eq!(store.load().unwrap(), None, "nobody signed in yet");
        store.save(&Secret::new("first".into())).unwrap();
        let dir = state.join("tokens");
        assert_eq!(store.path(), dir.join("home.refresh"));
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(store.path()), 0o600);
        let inode = fs::metadata(store.path()).unwrap().ino();
        store.save(&Secret::new("second".into())).unwrap();
        assert_ne!(
            fs::metadata(store.path()).unwrap().ino(),
            inode,
            "renamed over, not rewritten"
        );
        assert_eq!(fs::read_to_string(store.path()).unwrap(), "second\n");
        let left: Vec<_> = fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(left, ["home.refresh"], "no temporary file left behind");
        assert_eq!(store.load().unwrap().unwrap().expose(), "second");
        let _ = fs::remove_dir_all(&state);
    }

    #[test]
    fn a_token_written_by_another_process_is_read_again() {
        let state = scratch("reread");
        let daemon = TokenStore::new(&state, "home");
        let login = TokenStore::new(&state, "home");
        daemon.save(&Secret::new("old".into())).unwrap();
        assert_eq!(daemon.load().unwrap().unwrap().expose(), "old");
        login.save(&Secret::new("new-sign-in".into())).unwrap();
        assert_eq!(daemon.load().unwrap().unwrap().expose(), "new-sign-in");
        let _ = fs::remove_dir_all(&state);
    }

    #[test]
    fn a_group_readable_directory_is_made_private() {
        let state = scratch("tighten");
        let dir = state.join("tokens");
        fs::create_dir_all(&dir).unwrap();
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
        TokenStore::new(&state, "a")
            .save(&Secret::new("t".into()))
            .unwrap();
        assert_eq!(
            fs::metadata(&dir).unwrap().permissions().mode() & 0o777,
            0o700
        );
        let _ = fs::remove_dir_all(&state);
    }

    #[test]
    fn the_files_belong_to_the_owner_of_the_state_directory() {
        let state = scratch("owner");
        fs::create_dir_all(&state).unwrap();
        // Works when the tests run as root (as root runs `login` for the system unit); as
        // anyone else the state directory is simply theirs.
        let _ = std::os::unix::fs::chown(&state, Some(4242), Some(4242));
        let want = fs::metadata(&state).unwrap();
        let store = TokenStore::new(&state, "a");
        store.save(&Secret::new("t".into())).unwrap();
        store.save(&Secret::new("t2".into())).unwrap();
        for path in [state.join("tokens"), store.path().to_path_buf()] {
            let meta = fs::metadata(&path).unwrap();
            assert_eq!(
                (meta.uid(), meta.gid()),
                (want.uid(), want.gid()),
                "{path:?}"
            );
        }
        assert_eq!(
            fs::metadata(store.path()).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let _ = fs::remove_dir_all(&state);
    }

    #[test]
    fn a_file_that_holds_no_token_is_an_error_not_a_token() {
        let state = scratch("bad");
        let store = TokenStore::new(&state, "a");
        fs::create_dir_all(state.join("tokens")).unwrap();
        for bad in ["", "  \n", "two words\n"] {
            fs::write(store.path(), bad).unwrap();
            assert!(store.load().is_err(), "{bad:?}");
        }
        let _ = fs::remove_dir_all(&state);
    }
}
