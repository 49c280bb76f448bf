//! The mail log part of the store on PostgreSQL (`store/mail_log.rs`).

#![allow(unused_imports, unused_variables)]

use crate::store::*;
use crate::store::{RunId, StoreError};
use chrono::{DateTime, Utc};

use super::PgStore;

impl MailLogStore for PgStore {
    fn last_digest_at(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        todo!("PostgreSQL last_digest_at")
    }

    fn already_alerted(&self, keys: &[AlertKey]) -> Result<Vec<AlertKey>, StoreError> {
        todo!("PostgreSQL already_alerted")
    }

    fn record_mail(
        &mut self,
        run: RunId,
        mail: MailSent,
        named: &[AlertKey],
    ) -> Result<(), StoreError> {
        todo!("PostgreSQL record_mail")
    }

    fn failing_since(&self, run: RunId) -> Result<Option<Failing>, StoreError> {
        todo!("PostgreSQL failing_since")
    }
}
