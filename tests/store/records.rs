//! The store's records on both backends (`store/records.rs`).
