//! `Swap<T>`: a value that can be replaced while others hold the old one, for the parts of the
//! configuration a SIGHUP reloads (users, accounts). Readers clone an `Arc` and keep using it;
//! a connection that started with the old users finishes with them.

use std::sync::{Arc, RwLock};

pub(crate) struct Swap<T: ?Sized>(RwLock<Arc<T>>);

impl<T: ?Sized> Swap<T> {
    pub(crate) fn new(value: Arc<T>) -> Self {
        Self(RwLock::new(value))
    }

    /// The current value. The lock is held only to clone the `Arc`.
    pub(crate) fn load(&self) -> Arc<T> {
        self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub(crate) fn store(&self, value: Arc<T>) {
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = value;
    }
}
