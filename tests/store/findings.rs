//! The store's findings on both backends (`store/findings.rs`).
