//! The durable spool: each queued message is a data file and a small JSON metadata file, made
//! durable before the client hears `250` (file fsynced, renamed into `queue/`, directory
//! fsynced), in the layout Postfix and maildir use, so an operator can see it with `ls`.
//!
//! ```text
//! <spool>/tmp/     messages being received (ID.msg) and metadata being written; emptied at start
//! <spool>/queue/   committed: ID.msg + ID.meta (the meta is renamed last: it marks a commit)
//! <spool>/failed/  bounced, expired or deleted by hand: kept for the operator
//! ```

pub(crate) mod bounce;
pub(crate) mod control;
mod id;
mod incoming;
mod meta;

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

pub(crate) use id::{is_id, new_id};
pub(crate) use incoming::{Incoming, write_out};
pub use meta::{Hold, Meta};

const TMP: &str = "tmp";
const QUEUE: &str = "queue";
const FAILED: &str = "failed";

/// The spool's directories and the bytes it holds.
#[derive(Debug)]
pub(crate) struct Spool {
    root: PathBuf,
    max_size: u64,
    /// Octets in `tmp/` and `queue/` (not `failed/`): what `max_size` bounds.
    used: AtomicU64,
}

/// What start-up found in the spool.
#[derive(Debug, Default)]
pub(crate) struct Recovered {
    /// Committed messages, to be delivered.
    pub(crate) queued: Vec<Meta>,
    /// Files of messages that never got a `250`, removed.
    pub(crate) discarded: usize,
    /// Metadata that could not be read or whose data file is missing, moved to `failed/`.
    pub(crate) corrupt: Vec<String>,
}

impl Spool {
    /// Opens (creating, mode 0700) the spool at `root`, empties `tmp/` (the clients of those
    /// messages never got a `250`, so they still own them: RFC 5321 §4.2.5), and reads the queue.
    pub(crate) fn open(root: &Path, max_size: u64) -> io::Result<(Spool, Recovered)> {
        for dir in [TMP, QUEUE, FAILED] {
            create_private_dir(&root.join(dir))?;
        }
        let spool = Spool {
            root: root.to_path_buf(),
            max_size,
            used: AtomicU64::new(0),
        };
        let mut found = Recovered {
            discarded: spool.empty_tmp()?,
            ..Default::default()
        };
        spool.recover_queue(&mut found)?;
        Ok((spool, found))
    }

    pub(crate) fn root(&self) -> &Path {
        &self.root
    }

    /// Octets held in `tmp/` and `queue/`.
    pub(crate) fn used(&self) -> u64 {
        self.used.load(Ordering::Relaxed)
    }

    pub(crate) fn max_size(&self) -> u64 {
        self.max_size
    }

    /// Reserves `n` more octets, or says the spool is full.
    pub(crate) fn reserve(&self, n: u64) -> bool {
        let mut current = self.used.load(Ordering::Relaxed);
        loop {
            let next = current.saturating_add(n);
            if next > self.max_size {
                return false;
            }
            match self.used.compare_exchange_weak(
                current,
                next,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return true,
                Err(actual) => current = actual,
            }
        }
    }

    pub(crate) fn release(&self, n: u64) {
        let _ = self
            .used
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |u| {
                Some(u.saturating_sub(n))
            });
    }

    pub(crate) fn tmp_dir(&self) -> PathBuf {
        self.root.join(TMP)
    }

    /// The data file of a queued message.
    pub(crate) fn data_path(&self, id: &str) -> PathBuf {
        self.root.join(QUEUE).join(format!("{id}.msg"))
    }

    /// The data file of a message in `failed/`.
    pub(crate) fn failed_data(&self, id: &str) -> PathBuf {
        self.root.join(FAILED).join(format!("{id}.msg"))
    }

    fn meta_path(&self, dir: &str, id: &str) -> PathBuf {
        self.root.join(dir).join(format!("{id}.meta"))
    }

    /// Makes a received message durable in the queue: data fsynced, metadata written and
    /// fsynced, data then metadata renamed into `queue/`, `queue/` fsynced. A failed fsync is
    /// not retried (the kernel may have dropped the pages it could not write); the caller
    /// removes what was written and answers `452`.
    pub(crate) fn commit(&self, data: &Path, meta: &Meta) -> io::Result<()> {
        fs::File::open(data)?.sync_all()?;
        let staged = self.stage_meta(meta)?;
        let queued = self.data_path(&meta.id);
        fs::rename(data, &queued)?;
        if let Err(e) = fs::rename(&staged, self.meta_path(QUEUE, &meta.id)) {
            let _ = fs::rename(&queued, data);
            let _ = fs::remove_file(&staged);
            return Err(e);
        }
        if let Err(e) = sync_dir(&self.root.join(QUEUE)) {
            // The client hears 452 and keeps the message: it must not be sent from here too.
            let _ = fs::remove_file(self.meta_path(QUEUE, &meta.id));
            let _ = fs::remove_file(&queued);
            return Err(e);
        }
        self.used.fetch_add(meta.size, Ordering::Relaxed);
        Ok(())
    }

    /// Replaces a queued message's metadata (after an attempt, a hold, a release).
    pub(crate) fn update(&self, meta: &Meta) -> io::Result<()> {
        let staged = self.stage_meta(meta)?;
        fs::rename(&staged, self.meta_path(QUEUE, &meta.id))?;
        sync_dir(&self.root.join(QUEUE))
    }

    /// Forgets a delivered message: metadata first (so a crash leaves only a data file, which
    /// start-up removes, and never a message sent twice from a stale record), then data.
    pub(crate) fn remove(&self, meta: &Meta) -> io::Result<()> {
        fs::remove_file(self.meta_path(QUEUE, &meta.id))?;
        let _ = fs::remove_file(self.data_path(&meta.id));
        self.release(meta.size);
        sync_dir(&self.root.join(QUEUE))
    }

    /// Moves a message to `failed/` with its metadata (which says why), for the operator.
    pub(crate) fn fail(&self, meta: &Meta) -> io::Result<()> {
        let failed = self.root.join(FAILED);
        let data = failed.join(format!("{}.msg", meta.id));
        let _ = fs::rename(self.data_path(&meta.id), &data);
        write_synced(&self.meta_path(FAILED, &meta.id), &meta.to_json())?;
        sync_dir(&failed)?;
        let _ = fs::remove_file(self.meta_path(QUEUE, &meta.id));
        self.release(meta.size);
        sync_dir(&self.root.join(QUEUE))
    }

    /// Messages in `failed/`.
    pub(crate) fn failed(&self) -> Vec<Meta> {
        read_failed(&self.root)
    }

    /// A new metadata file in `tmp/`, under a name of its own (two writers of one message
    /// never share a staging file).
    fn stage_meta(&self, meta: &Meta) -> io::Result<PathBuf> {
        static STAGED: AtomicU64 = AtomicU64::new(0);
        let n = STAGED.fetch_add(1, Ordering::Relaxed);
        let staged = self.root.join(TMP).join(format!("{}.{n}.meta", meta.id));
        write_synced(&staged, &meta.to_json())?;
        Ok(staged)
    }

    fn empty_tmp(&self) -> io::Result<usize> {
        let mut n = 0;
        for entry in fs::read_dir(self.root.join(TMP))? {
            let path = entry?.path();
            if fs::remove_file(&path).is_ok() && path.extension().is_some_and(|e| e == "msg") {
                n += 1;
            }
        }
        Ok(n)
    }

    fn recover_queue(&self, found: &mut Recovered) -> io::Result<()> {
        let queue = self.root.join(QUEUE);
        for entry in fs::read_dir(&queue)? {
            let path = entry?.path();
            let Some(id) = file_id(&path, "meta") else {
                if let Some(id) = file_id(&path, "msg")
                    && !self.meta_path(QUEUE, &id).exists()
                {
                    // A data file without metadata was never committed, or its message was
                    // delivered and the crash came between the two unlinks.
                    if fs::remove_file(&path).is_ok() {
                        found.discarded += 1;
                    }
                }
                continue;
            };
            match Meta::read(&path) {
                Ok(meta) if meta.id == id && self.data_path(&id).exists() => {
                    self.used.fetch_add(meta.size, Ordering::Relaxed);
                    found.queued.push(meta);
                }
                _ => {
                    let failed = self.root.join(FAILED);
                    let _ = fs::rename(&path, failed.join(format!("{id}.meta")));
                    let _ = fs::rename(self.data_path(&id), failed.join(format!("{id}.msg")));
                    found.corrupt.push(id);
                }
            }
        }
        found.queued.sort_by(|a, b| a.id.cmp(&b.id));
        sync_dir(&queue)
    }
}

/// The metadata of every message in a spool's `queue/` (for `queue list` without a daemon).
pub(crate) fn read_queue(root: &Path) -> Vec<Meta> {
    read_metas(&root.join(QUEUE))
}

/// The metadata of every message in a spool's `failed/`.
pub(crate) fn read_failed(root: &Path) -> Vec<Meta> {
    read_metas(&root.join(FAILED))
}

fn read_metas(dir: &Path) -> Vec<Meta> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut metas: Vec<Meta> = entries
        .filter_map(|e| e.ok())
        .filter(|e| file_id(&e.path(), "meta").is_some())
        .filter_map(|e| Meta::read(&e.path()).ok())
        .collect();
    metas.sort_by(|a, b| a.id.cmp(&b.id));
    metas
}

/// The ID in `dir/ID.ext`, if the name is one of ours.
fn file_id(path: &Path, ext: &str) -> Option<String> {
    if path.extension()? != ext {
        return None;
    }
    let stem = path.file_stem()?.to_str()?;
    id::is_id(stem).then(|| stem.to_string())
}

/// Writes `bytes` to a new file (mode 0600) and fsyncs it.
fn write_synced(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut file = private_file().open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

/// Options for a file only the relay's user may read: mail in the queue is private.
pub(crate) fn private_file() -> fs::OpenOptions {
    let mut options = fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options
}

/// Creates `dir` (and its parents) with mode 0700 where it does not exist yet.
pub(crate) fn create_private_dir(dir: &Path) -> io::Result<()> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir)
}

/// A rename is atomic but not durable until its directory is fsynced (fsync(2)).
fn sync_dir(dir: &Path) -> io::Result<()> {
    fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests;
