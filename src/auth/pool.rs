//! A fixed number of argon2 evaluations at a time, each in a reused memory buffer, with a bounded
//! queue in front: failed logins from many addresses cost the relay a known amount of memory
//! (workers × the largest `m`), never one fresh buffer per attempt.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use argon2::password_hash::PasswordHash;
use argon2::{Algorithm, Argon2, Block, Params, Version};
use subtle::ConstantTimeEq;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::secret::Secret;

/// Most evaluations at once, whatever the machine: each holds up to `m` KiB.
pub(crate) const MAX_WORKERS: usize = 4;
/// Checks that may wait for a worker; the next one is told to try again later (454).
pub(crate) const QUEUE: usize = 256;

/// Argon2 workers shared by every connection; built once, kept across reloads.
pub(crate) struct Argon2Pool {
    workers: Arc<Semaphore>,
    /// Buffers not in use; there are never more than `workers` of them. They are kept for the
    /// life of the process (freed, glibc would keep such chunks in per-thread arenas anyway, and
    /// different blocking threads would each end up holding one), but their pages go back to
    /// the system whenever the pool falls idle.
    idle: Mutex<Vec<Vec<Block>>>,
    /// Checks admitted and not yet finished (waiting or running).
    admitted: AtomicUsize,
    max_admitted: usize,
    running: AtomicUsize,
    peak_running: AtomicUsize,
    evaluations: AtomicU64,
}

/// The queue is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Busy;

/// A place in the queue; release it by dropping.
pub(crate) struct Ticket {
    pool: Arc<Argon2Pool>,
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.pool.admitted.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Argon2Pool {
    /// `workers` evaluations at once, and at most `queue` more waiting.
    pub(crate) fn new(workers: usize, queue: usize) -> Arc<Self> {
        let workers = workers.max(1);
        Arc::new(Self {
            workers: Arc::new(Semaphore::new(workers)),
            idle: Mutex::new(Vec::new()),
            admitted: AtomicUsize::new(0),
            max_admitted: workers + queue,
            running: AtomicUsize::new(0),
            peak_running: AtomicUsize::new(0),
            evaluations: AtomicU64::new(0),
        })
    }

    /// One worker per core, at most [`MAX_WORKERS`].
    pub(crate) fn for_this_machine() -> Arc<Self> {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        Self::new(cores.min(MAX_WORKERS), QUEUE)
    }

    /// A place in the queue, or `Busy` when it is full. Synchronous, so the bound holds however
    /// many connections ask at once.
    pub(crate) fn admit(self: &Arc<Self>) -> Result<Ticket, Busy> {
        let taken = self.admitted.fetch_add(1, Ordering::AcqRel);
        let ticket = Ticket { pool: self.clone() };
        if taken >= self.max_admitted {
            return Err(Busy);
        }
        Ok(ticket)
    }

    /// Argon2 evaluations finished so far.
    #[cfg(test)]
    pub(crate) fn evaluations(&self) -> u64 {
        self.evaluations.load(Ordering::Acquire)
    }

    /// The most evaluations that ever ran at the same time.
    #[cfg(test)]
    pub(crate) fn peak_running(&self) -> usize {
        self.peak_running.load(Ordering::Acquire)
    }

    fn take_buffer(&self) -> Vec<Block> {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        idle.pop().unwrap_or_default()
    }

    fn put_back(&self, buffer: Vec<Block>) {
        self.idle
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(buffer);
    }

    /// Runs on a blocking thread while holding a worker permit.
    fn evaluate(&self, phc: &str, password: &[u8], _permit: OwnedSemaphorePermit) -> bool {
        let now = self.running.fetch_add(1, Ordering::AcqRel) + 1;
        self.peak_running.fetch_max(now, Ordering::AcqRel);
        let mut buffer = self.take_buffer();
        let ok = matches(phc, password, &mut buffer);
        self.put_back(buffer);
        if self.admitted.load(Ordering::Acquire) <= 1 {
            // Nobody else is waiting or running: after a burst of failed logins the relay
            // returns to its idle size, and the next check faults the pages in again (a few
            // milliseconds).
            let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
            idle.iter_mut().for_each(|b| release_pages(b));
        }
        self.evaluations.fetch_add(1, Ordering::AcqRel);
        self.running.fetch_sub(1, Ordering::AcqRel);
        ok
    }
}

impl Ticket {
    /// True when `password` matches the PHC string `phc`. Waits for a worker first.
    pub(crate) async fn verify(self, phc: Arc<str>, password: Secret<String>) -> bool {
        let pool = self.pool.clone();
        // The semaphore is never closed, so acquiring only fails if that invariant broke; then
        // the check fails closed.
        let Ok(permit) = pool.workers.clone().acquire_owned().await else {
            return false;
        };
        // The permit moves into the blocking task, so a connection dropped mid-check does not
        // free its worker before the evaluation really ends.
        let work = move || pool.evaluate(&phc, password.expose().as_bytes(), permit);
        let ok = tokio::task::spawn_blocking(work).await.unwrap_or(false);
        drop(self);
        ok
    }
}

/// Gives the pages of `buffer` back to the system but keeps the allocation. Argon2 writes every
/// block before it reads it, so whatever the pages hold afterwards (zeros on Linux, zeros or
/// the old bytes with macOS's `MADV_FREE`) does not matter.
#[cfg(unix)]
fn release_pages(buffer: &mut [Block]) {
    #[cfg(target_os = "linux")]
    const ADVICE: libc::c_int = libc::MADV_DONTNEED;
    #[cfg(not(target_os = "linux"))]
    const ADVICE: libc::c_int = libc::MADV_FREE;
    // SAFETY: sysconf has no preconditions.
    let page = usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap_or(4096);
    let start = buffer.as_mut_ptr() as usize;
    let first = start.next_multiple_of(page);
    let end = (start + std::mem::size_of_val(buffer)) / page * page;
    if end > first {
        // SAFETY: [first, end) is whole pages inside `buffer`'s allocation, which stays mapped
        // and is borrowed mutably here; the advice only drops the pages' contents.
        unsafe { libc::madvise(first as *mut libc::c_void, end - first, ADVICE) };
    }
}

#[cfg(not(unix))]
fn release_pages(_buffer: &mut [Block]) {}

/// Recomputes the hash of `password` with the parameters and salt of `phc` in `memory` (grown to
/// the size `phc` needs and kept for the next check) and compares in constant time.
fn matches(phc: &str, password: &[u8], memory: &mut Vec<Block>) -> bool {
    let Ok(hash) = PasswordHash::new(phc) else {
        return false;
    };
    let Ok(params) = Params::try_from(&hash) else {
        return false;
    };
    let (Some(expected), Some(salt)) = (hash.hash, hash.salt) else {
        return false;
    };
    let Ok(algorithm) = Algorithm::try_from(hash.algorithm) else {
        return false;
    };
    let version = hash
        .version
        .map_or(Ok(Version::default()), Version::try_from);
    let Ok(version) = version else {
        return false;
    };
    let mut salt_bytes = [0u8; 64];
    let Ok(salt) = salt.decode_b64(&mut salt_bytes) else {
        return false;
    };
    let blocks = params.block_count();
    if memory.len() < blocks {
        memory.resize(blocks, Block::new());
    }
    let mut out = vec![0u8; expected.len()];
    let argon2 = Argon2::new(algorithm, version, params);
    let computed =
        argon2.hash_password_into_with_memory(password, salt, &mut out, &mut memory[..blocks]);
    computed.is_ok() && bool::from(out.ct_eq(expected.as_bytes()))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::auth::hash_password;

    /// Small parameters so the tests stay fast; the pool does not care about the cost.
    pub(crate) fn cheap_hash(password: &str) -> Arc<str> {
        hash_with(64, 1, password)
    }

    fn hash_with(m: u32, t: u32, password: &str) -> Arc<str> {
        use argon2::PasswordHasher;
        use argon2::password_hash::SaltString;
        let salt = SaltString::encode_b64(b"0123456789abcdef").unwrap();
        let params = Params::new(m, t, 1, None).unwrap();
        let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
        let phc = argon2.hash_password(password.as_bytes(), &salt).unwrap();
        phc.to_string().into()
    }

    #[test]
    fn recomputes_what_the_argon2_crate_made() {
        let mut memory = Vec::new();
        let phc = hash_password("correct horse").unwrap();
        assert!(matches(&phc, b"correct horse", &mut memory));
        assert!(!matches(&phc, b"correct horsf", &mut memory));
        assert_eq!(memory.len(), 19456, "the buffer is the size m asks for");
        assert!(matches(&cheap_hash("x"), b"x", &mut memory));
        assert_eq!(memory.len(), 19456, "a smaller hash reuses the buffer");
        assert!(!matches("not a hash", b"x", &mut memory));
        release_pages(&mut memory);
        assert!(
            matches(&phc, b"correct horse", &mut memory),
            "released pages are reusable"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn no_more_than_the_workers_run_at_once() {
        let pool = Argon2Pool::new(2, 100);
        // Long enough for twelve spawned checks to overlap if nothing held them back.
        let phc = hash_with(1024, 8, "pw");
        let checks: Vec<_> = (0..12)
            .map(|_| {
                let ticket = pool.admit().unwrap();
                let phc = phc.clone();
                tokio::spawn(ticket.verify(phc, Secret::new("wrong".into())))
            })
            .collect();
        for c in checks {
            assert!(!c.await.unwrap());
        }
        assert_eq!(pool.evaluations(), 12);
        assert!(pool.peak_running() <= 2, "{}", pool.peak_running());
        assert!(
            pool.idle.lock().unwrap().len() <= 2,
            "one buffer per worker"
        );
    }

    #[tokio::test]
    async fn a_full_queue_says_busy_and_frees_up() {
        let pool = Argon2Pool::new(1, 2);
        let held: Vec<Ticket> = (0..3).map(|_| pool.admit().unwrap()).collect();
        assert_eq!(pool.admit().err(), Some(Busy));
        drop(held);
        let ticket = pool.admit().unwrap();
        assert!(
            ticket
                .verify(cheap_hash("y"), Secret::new("y".into()))
                .await
        );
    }
}
