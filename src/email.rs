//! The report e-mail (SMTP via lettre) and its delivery outbox.
