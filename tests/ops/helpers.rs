//! Shared test helpers: a simulated wall clock, a log capture, a ping receiver.

use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::http::Uri;
use axum::routing::get;
use chrono::{DateTime, TimeDelta, Utc};
use cp_recon::schedule::Clock;

pub fn utc(s: &str) -> DateTime<Utc> {
    s.parse().expect("test timestamp")
}

/// A simulated wall clock: sleeping moves it forward at once, so a scheduler crosses
/// days (and daylight-saving changes) in no real time. Only for jobs that do not
/// themselves wait on it.
#[derive(Clone)]
pub struct VirtualClock(Arc<Mutex<DateTime<Utc>>>);

impl VirtualClock {
    pub fn starting_at(start: &str) -> Self {
        Self(Arc::new(Mutex::new(utc(start))))
    }
}

impl Clock for VirtualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().expect("not poisoned")
    }
    fn sleep(&self, d: Duration) -> impl Future<Output = ()> + Send {
        let step = TimeDelta::from_std(d).expect("sleep fits");
        *self.0.lock().expect("not poisoned") += step;
        // Let other tasks (the test collecting runs) see the new time.
        tokio::task::yield_now()
    }
}

/// A writer that keeps everything written to it, shared with the test.
#[derive(Clone, Default)]
pub struct Captured(Arc<Mutex<Vec<u8>>>);

impl io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0
            .lock()
            .map_err(|_| io::Error::other("poisoned"))?
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Captured {
    pub fn text(&self) -> String {
        String::from_utf8(self.0.lock().expect("not poisoned").clone()).expect("utf-8")
    }
}

/// An HTTP server on 127.0.0.1:0 that records the path and query of every request and
/// answers 200. The server stops when the test's runtime ends.
pub struct PingReceiver {
    pub addr: SocketAddr,
    hits: Arc<Mutex<Vec<String>>>,
}

impl PingReceiver {
    pub async fn spawn() -> Self {
        let hits: Arc<Mutex<Vec<String>>> = Arc::default();
        let recorded = hits.clone();
        let app = Router::new().fallback(get(move |uri: Uri| {
            let recorded = recorded.clone();
            async move {
                recorded.lock().expect("not poisoned").push(uri.to_string());
                "OK"
            }
        }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("local addr");
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { addr, hits }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn hits(&self) -> Vec<String> {
        self.hits.lock().expect("not poisoned").clone()
    }
}
