//! The store's status on both backends (`store/status.rs`).
