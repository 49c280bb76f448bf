//! A provider record as read, kept with its raw JSON for the audit trail, and one that
//! could not be read. The API client makes them; the store keeps both.

/// A record as read, with its raw JSON kept for the audit trail.
#[derive(Debug, Clone)]
pub struct Record<T> {
    pub value: T,
    pub raw: String,
}

/// An item the client could not turn into a domain record. Never dropped silently: the
/// caller stores it and marks the list incomplete.
#[derive(Debug, Clone)]
pub struct BadRecord {
    pub endpoint: String,
    pub id: Option<String>,
    pub raw: String,
    pub error: String,
}

impl std::fmt::Display for BadRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: record {}: {}",
            self.endpoint,
            self.id.as_deref().unwrap_or("<no id>"),
            self.error
        )
    }
}
