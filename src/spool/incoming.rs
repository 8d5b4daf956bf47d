//! A message being received, written to `tmp/ID.msg` as DATA arrives so that memory per
//! message stays fixed whatever its size; its octets count against `spool.max_size`.

use std::io;
use std::path::PathBuf;
use std::sync::Arc;

use tokio::io::AsyncWriteExt;

use super::{Spool, new_id, private_file};
use crate::message::{BodyFile, MAX_HEADER_SCAN};

/// Why a received message cannot be kept: the client gets `452 4.3.1` for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Unkept {
    /// The spool holds `max_size` already.
    Full,
    /// Writing failed (disk full, I/O error); the text says how.
    Io(String),
}

impl Unkept {
    /// The client's reply.
    pub(crate) fn reply(&self) -> crate::reply::Reply {
        match self {
            Unkept::Full => crate::reply::SPOOL_FULL,
            Unkept::Io(_) => crate::reply::SPOOL_FAILED,
        }
    }
}

impl std::fmt::Display for Unkept {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unkept::Full => f.write_str("the spool is full (spool.max_size)"),
            Unkept::Io(e) => f.write_str(e),
        }
    }
}

/// Writes a message held in memory to a new file of `tmp/`, for a commit.
pub(crate) async fn write_out(spool: Arc<Spool>, content: &[u8]) -> Result<BodyFile, Unkept> {
    let mut incoming = Incoming::create(spool).await;
    incoming.write(content).await;
    incoming.finish().await
}

/// Octets counted against the spool's size until dropped.
#[derive(Debug)]
pub(crate) struct Reserved {
    spool: Arc<Spool>,
    octets: u64,
}

impl Drop for Reserved {
    fn drop(&mut self) {
        self.spool.release(self.octets);
    }
}

/// The file being written; after a failure, nothing more is written and the file is gone.
pub(crate) struct Incoming {
    pub(crate) id: String,
    path: PathBuf,
    file: Option<tokio::fs::File>,
    head: Vec<u8>,
    reserved: Reserved,
    failed: Option<Unkept>,
}

impl Incoming {
    /// A new, empty `tmp/ID.msg` (mode 0600, never an existing file).
    pub(crate) async fn create(spool: Arc<Spool>) -> Incoming {
        let id = new_id();
        let path = spool.tmp_dir().join(format!("{id}.msg"));
        let mut options = private_file();
        options.truncate(false).create_new(true);
        let opened = {
            let path = path.clone();
            tokio::task::spawn_blocking(move || options.open(path))
                .await
                .unwrap_or_else(|e| Err(io::Error::other(e)))
        };
        let (file, failed) = match opened {
            Ok(f) => (Some(tokio::fs::File::from_std(f)), None),
            Err(e) => (None, Some(Unkept::Io(e.to_string()))),
        };
        Incoming {
            id,
            path,
            file,
            head: Vec::new(),
            reserved: Reserved { spool, octets: 0 },
            failed,
        }
    }

    /// Appends `chunk`; the first failure is kept and later chunks are dropped.
    pub(crate) async fn write(&mut self, chunk: &[u8]) {
        if self.failed.is_some() || chunk.is_empty() {
            return;
        }
        let n = chunk.len() as u64;
        if !self.reserved.spool.reserve(n) {
            return self.fail(Unkept::Full).await;
        }
        self.reserved.octets += n;
        let room = MAX_HEADER_SCAN.saturating_sub(self.head.len());
        self.head.extend_from_slice(&chunk[..chunk.len().min(room)]);
        let Some(file) = self.file.as_mut() else {
            return;
        };
        if let Err(e) = file.write_all(chunk).await {
            self.fail(Unkept::Io(e.to_string())).await;
        }
    }

    /// The received file, complete and flushed to the OS (not yet fsynced: only a commit does
    /// that), or why it could not be kept.
    pub(crate) async fn finish(mut self) -> Result<BodyFile, Unkept> {
        if let Some(why) = self.failed.take() {
            self.discard().await;
            return Err(why);
        }
        if let Some(mut file) = self.file.take()
            && let Err(e) = file.flush().await
        {
            self.discard().await;
            return Err(Unkept::Io(e.to_string()));
        }
        let size = self.reserved.octets;
        let path = std::mem::take(&mut self.path);
        let head = std::mem::take(&mut self.head);
        let reserved = Reserved {
            spool: self.reserved.spool.clone(),
            octets: std::mem::take(&mut self.reserved.octets),
        };
        Ok(BodyFile::received(path, size, head, Box::new(reserved)))
    }

    async fn fail(&mut self, why: Unkept) {
        self.failed = Some(why);
        self.discard().await;
    }

    /// Removes the file and gives its octets back.
    pub(crate) async fn discard(&mut self) {
        self.file = None;
        if !self.path.as_os_str().is_empty() {
            let _ = tokio::fs::remove_file(&self.path).await;
        }
        self.head = Vec::new();
        self.reserved
            .spool
            .release(std::mem::take(&mut self.reserved.octets));
    }
}

impl Drop for Incoming {
    /// A connection that ended mid-DATA leaves no file behind. The unlink blocks, briefly, as
    /// in `BodyFile`'s drop: `Drop` cannot await.
    fn drop(&mut self) {
        if self.file.is_some() && !self.path.as_os_str().is_empty() {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}
