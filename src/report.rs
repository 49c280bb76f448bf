//! CSV reports for the finance team.
