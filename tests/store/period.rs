//! The store's period on both backends (`store/period.rs`).
