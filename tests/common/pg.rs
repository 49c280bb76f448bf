//! A throwaway PostgreSQL cluster for one test: Debian's server programs (not on PATH:
//! `/usr/lib/postgresql/<version>/bin`), `initdb` in a temporary folder, started on
//! 127.0.0.1 at a free port with its socket in that folder, TLS on with a self-signed
//! certificate for `127.0.0.1` made here. The server refuses to run as root, so as root
//! every program runs as the `postgres` user (`runuser`) and the folder is that user's.
//!
//! Authentication (`pg_hba.conf`): the `postgres` superuser is trusted (over the socket
//! and 127.0.0.1); every other role logs in with a password (`scram-sha-256`).
//!
//! When the server is not installed a test says `SKIPPED: ...` and returns, unless
//! `CP_RECON_REQUIRE_POSTGRES` is set (CI sets it), which makes that a failure.
//! Readiness is `pg_ctl -w` (it polls the server until it accepts connections), never a
//! sleep. Dropping the cluster stops it at once (`-m immediate`) and removes the folder.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub struct TestPg {
    bin: PathBuf,
    /// The folder: `data/` (the cluster), the socket, `server.crt` and `server.key`.
    dir: tempfile::TempDir,
    pub port: u16,
    /// The server certificate's PEM (self-signed, for the name `127.0.0.1` only): the
    /// root a `verify-full` connection to `127.0.0.1` trusts.
    pub root_cert: PathBuf,
    as_postgres: bool,
}

/// The newest `/usr/lib/postgresql/<version>/bin` holding `initdb` and `pg_ctl`.
fn server_bin() -> Option<PathBuf> {
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            (bin.join("initdb").exists() && bin.join("pg_ctl").exists()).then_some((version, bin))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, bin)| bin)
}

fn uid_of(user: &str) -> Option<(u32, u32)> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.first() == Some(&user))
            .then(|| Some((f.get(2)?.parse().ok()?, f.get(3)?.parse().ok()?)))?
    })
}

impl TestPg {
    /// A running cluster, or `None` (having said `SKIPPED`) when the server is not
    /// installed and `CP_RECON_REQUIRE_POSTGRES` is not set.
    pub fn start(what: &str) -> Option<Self> {
        let Some(bin) = server_bin() else {
            if std::env::var_os("CP_RECON_REQUIRE_POSTGRES").is_some() {
                panic!(
                    "{what}: no PostgreSQL server under /usr/lib/postgresql/*/bin and CP_RECON_REQUIRE_POSTGRES is set"
                );
            }
            eprintln!(
                "SKIPPED: {what}: PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/initdb); \
                 install the Debian package postgresql to run it"
            );
            return None;
        };
        // SAFETY: geteuid has no preconditions.
        let as_postgres = unsafe { libc::geteuid() } == 0;
        let dir = tempfile::Builder::new()
            .prefix("cp-recon-pg-")
            .tempdir()
            .unwrap();
        if as_postgres {
            let (uid, gid) = uid_of("postgres").expect("no postgres user in /etc/passwd");
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid)).unwrap();
        }

        // The certificate: the server reads it as the postgres user; the key must be
        // private to it.
        let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).unwrap();
        let root_cert = dir.path().join("server.crt");
        let key = dir.path().join("server.key");
        std::fs::write(&root_cert, cert.cert.pem()).unwrap();
        std::fs::write(&key, cert.signing_key.serialize_pem()).unwrap();
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
            std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        if as_postgres {
            let (uid, gid) = uid_of("postgres").unwrap();
            for f in [&root_cert, &key] {
                std::os::unix::fs::chown(f, Some(uid), Some(gid)).unwrap();
            }
        }

        let mut pg = Self {
            bin,
            dir,
            port: 0,
            root_cert,
            as_postgres,
        };
        let data = pg.data();
        let out = pg.program(
            "initdb",
            &[
                "-D",
                data.to_str().unwrap(),
                "-A",
                "trust",
                "-U",
                "postgres",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ],
        );
        assert!(out.status.success(), "initdb failed: {}", said(&out));
        std::fs::write(
            data.join("pg_hba.conf"),
            "local all postgres trust\n\
             host all postgres 127.0.0.1/32 trust\n\
             host all all 127.0.0.1/32 scram-sha-256\n",
        )
        .unwrap();

        // A free port: another process may take it between here and the server's
        // bind, so a start that could not bind is tried again on another.
        for _ in 0..5 {
            pg.port = std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let options = format!(
                "-p {port} -k {dir} -c listen_addresses=127.0.0.1 -c ssl=on \
                 -c ssl_cert_file={dir}/server.crt -c ssl_key_file={dir}/server.key \
                 -c fsync=off -c shared_buffers=16MB -c max_connections=40",
                port = pg.port,
                dir = pg.dir.path().display(),
            );
            let log = pg.dir.path().join("server.log");
            let out = pg.program(
                "pg_ctl",
                &[
                    "-D",
                    data.to_str().unwrap(),
                    "-l",
                    log.to_str().unwrap(),
                    "-o",
                    &options,
                    "-w",
                    "-t",
                    "120",
                    "start",
                ],
            );
            if out.status.success() {
                return Some(pg);
            }
            let log = std::fs::read_to_string(&log).unwrap_or_default();
            if !log.contains("could not bind") && !log.contains("already in use") {
                panic!("pg_ctl start failed: {}\n{log}", said(&out));
            }
        }
        panic!("pg_ctl start: no free port after 5 tries");
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Runs a server program, as the postgres user when this process is root.
    fn program(&self, name: &str, args: &[&str]) -> Output {
        let exe = self.bin.join(name);
        let mut cmd = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&exe);
            c
        } else {
            Command::new(&exe)
        };
        cmd.args(args).current_dir(self.dir.path());
        cmd.output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", exe.display()))
    }

    /// Runs SQL as the superuser in `db` over the socket (`psql`, stopping at the
    /// first error) and returns what it printed, unaligned, without headers.
    pub fn sql(&self, db: &str, sql: &str) -> String {
        let out = self.psql(db, sql);
        assert!(out.status.success(), "psql {sql:?} failed: {}", said(&out));
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    }

    /// As [`TestPg::sql`], handing back psql's output whatever its exit.
    pub fn psql(&self, db: &str, sql: &str) -> Output {
        let port = self.port.to_string();
        self.program(
            "psql",
            &[
                "-X",
                "-q",
                "-A",
                "-t",
                "-v",
                "ON_ERROR_STOP=1",
                "-h",
                self.dir.path().to_str().unwrap(),
                "-p",
                &port,
                "-U",
                "postgres",
                "-d",
                db,
                "-c",
                sql,
            ],
        )
    }

    /// A database of its own, owned by the superuser.
    pub fn create_db(&self, name: &str) {
        self.sql("postgres", &format!("CREATE DATABASE \"{name}\""));
    }

    /// A login role with a password (it authenticates with scram-sha-256), owning a
    /// new database of the same name.
    pub fn create_user(&self, name: &str, password: &str) {
        self.sql(
            "postgres",
            &format!("CREATE ROLE \"{name}\" LOGIN PASSWORD '{password}'"),
        );
        self.sql(
            "postgres",
            &format!("CREATE DATABASE \"{name}\" OWNER \"{name}\""),
        );
    }

    /// `postgresql://USER@127.0.0.1:PORT/DB?QUERY`.
    pub fn url(&self, user: &str, db: &str, query: &str) -> String {
        format!("postgresql://{user}@127.0.0.1:{}/{db}?{query}", self.port)
    }

    /// Stops the server (`-m fast`: every session is ended) and starts it again with
    /// the same options, waiting until it accepts connections.
    pub fn restart(&self) {
        let data = self.data();
        // The log file again: without one the server would write to this process's
        // pipe, which `output()` would wait on forever.
        let log = self.dir.path().join("server.log");
        let out = self.program(
            "pg_ctl",
            &[
                "-D",
                data.to_str().unwrap(),
                "-l",
                log.to_str().unwrap(),
                "-m",
                "fast",
                "-w",
                "-t",
                "120",
                "restart",
            ],
        );
        assert!(
            out.status.success(),
            "pg_ctl restart failed: {}",
            said(&out)
        );
    }
}

impl Drop for TestPg {
    fn drop(&mut self) {
        let data = self.data();
        let _ = self.program(
            "pg_ctl",
            &[
                "-D",
                data.to_str().unwrap(),
                "-m",
                "immediate",
                "-w",
                "stop",
            ],
        );
    }
}

fn said(out: &Output) -> String {
    format!(
        "{}{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}
