//! A request to stop a run (SIGTERM, SIGINT), shared by the signal handler that makes
//! it, the run that ends at its next safe point, and the API client, which sends no
//! write once it is made.

use std::sync::{Arc, OnceLock};

/// Clones share one request; the first reason given is kept.
#[derive(Debug, Clone, Default)]
pub struct Stop(Arc<OnceLock<String>>);

impl Stop {
    /// Asks the run to stop; `why` says what asked.
    pub fn request(&self, why: &str) {
        let _ = self.0.set(why.to_owned());
    }

    /// What asked the run to stop, once something has.
    pub fn requested(&self) -> Option<&str> {
        self.0.get().map(String::as_str)
    }
}
