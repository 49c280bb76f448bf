//! Operations tests: the cron scheduler, the Prometheus textfile and ping, log
//! formats through the public API, and the systemd units.

mod helpers;
mod metrics;
mod schedule;
mod systemd;
