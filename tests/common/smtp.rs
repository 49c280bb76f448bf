//! An in-process SMTP server on 127.0.0.1 port 0 (plain SMTP, no STARTTLS, no TLS)
//! that keeps every message it accepts. Shared by the test suites.

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cp_recon::email::{EmailSettings, TlsMode};
use mailin_embedded::{Handler, Response, Server, SslConfig, response};

/// An SMTP server on 127.0.0.1 (no STARTTLS, no TLS) that keeps every message it
/// accepts. The server thread lives until the test process ends.
pub struct TestSmtp {
    pub addr: SocketAddr,
    pub messages: Arc<Mutex<Vec<Vec<u8>>>>,
}

#[derive(Clone)]
struct Collector {
    current: Vec<u8>,
    messages: Arc<Mutex<Vec<Vec<u8>>>>,
}

impl Handler for Collector {
    fn data_start(
        &mut self,
        _domain: &str,
        _from: &str,
        _is8bit: bool,
        _to: &[String],
    ) -> Response {
        self.current.clear();
        response::OK
    }

    fn data(&mut self, buf: &[u8]) -> std::io::Result<()> {
        self.current.extend_from_slice(buf);
        Ok(())
    }

    fn data_end(&mut self) -> Response {
        let message = std::mem::take(&mut self.current);
        self.messages.lock().unwrap().push(message);
        response::OK
    }
}

pub fn spawn_smtp() -> TestSmtp {
    // The listener is bound here and handed over, so the port cannot be taken by
    // another test between choosing and binding it.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let messages = Arc::new(Mutex::new(Vec::new()));
    let handler = Collector {
        current: Vec::new(),
        messages: Arc::clone(&messages),
    };
    let mut server = Server::new(handler);
    server
        .with_name("test.local")
        .with_ssl(SslConfig::None)
        .unwrap()
        .with_tcp_listener(listener);
    std::thread::spawn(move || {
        // The error type is not `Send`; report it from the server thread itself.
        if let Err(e) = server.serve() {
            eprintln!("test SMTP server stopped: {e}");
        }
    });
    wait_for_greeting(addr);
    TestSmtp { addr, messages }
}

/// Ready means answering: connect and read the 220 greeting.
fn wait_for_greeting(addr: SocketAddr) {
    let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut line = String::new();
    BufReader::new(stream).read_line(&mut line).unwrap();
    assert!(line.starts_with("220"), "unexpected greeting {line:?}");
}

impl TestSmtp {
    pub fn settings(&self, tls: TlsMode) -> EmailSettings {
        EmailSettings {
            smtp_host: "127.0.0.1".into(),
            smtp_port: self.addr.port(),
            tls,
            username: None,
            password_file: None,
            password: None,
            from: "cp-recon <recon@example.com>".into(),
            to: vec![
                "finance@example.com".into(),
                "Ana Pérez <ana@example.com>".into(),
            ],
            subject_prefix: "[cp-recon]".into(),
            digest: None,
            alert_after: chrono::Duration::hours(1),
            timeout_secs: 10,
        }
    }

    pub fn received(&self) -> Vec<Vec<u8>> {
        self.messages.lock().unwrap().clone()
    }
}
