//! A real `redis-server` on a free loopback port, for the fleet tests: started from
//! the system's binary (`.ci/run` installs it when missing), never a mock.
//!
//! Outside CI a machine without `redis-server` skips those tests and says why; in CI
//! (`CI` set) a server that cannot be started fails them.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running `redis-server`, stopped when dropped.
pub struct RedisServer {
    child: Option<Child>,
    port: u16,
}

impl RedisServer {
    /// Starts one, or says why it cannot: `None` outside CI (the caller skips), a panic
    /// in CI.
    pub fn start(test: &str) -> Option<RedisServer> {
        match RedisServer::try_start() {
            Ok(server) => Some(server),
            Err(why) if std::env::var_os("CI").is_some() => {
                panic!("{test}: CI must run the Redis tests, but {why}")
            }
            Err(why) => {
                eprintln!(
                    "{test}: SKIPPED: {why} (install it, e.g. `apt-get install -y redis-server`; in CI this fails)"
                );
                None
            }
        }
    }

    fn try_start() -> Result<RedisServer, String> {
        let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .and_then(|l| l.local_addr())
            .map_err(|e| format!("no free port: {e}"))?
            .port();
        RedisServer::on_port(port)
    }

    /// Kills the server and starts an empty one on the same port (a Redis restart
    /// that lost its data).
    pub fn restart(&mut self) {
        self.stop();
        let fresh = RedisServer::on_port(self.port).expect("redis-server starts again");
        *self = fresh;
    }

    fn on_port(port: u16) -> Result<RedisServer, String> {
        let child = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--protected-mode",
                "yes",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("`redis-server` could not be started: {e}"))?;
        let mut server = RedisServer {
            child: Some(child),
            port,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if server.ping() {
                return Ok(server);
            }
            if let Some(child) = &mut server.child
                && let Ok(Some(status)) = child.try_wait()
            {
                return Err(format!("`redis-server` exited at start ({status})"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Err("`redis-server` did not answer PING within 10 s".to_owned())
    }

    /// Whether the server answers `PING`.
    pub fn ping(&self) -> bool {
        let Ok(mut tcp) = TcpStream::connect((Ipv4Addr::LOCALHOST, self.port)) else {
            return false;
        };
        let _ = tcp.set_read_timeout(Some(Duration::from_secs(1)));
        if tcp.write_all(b"*1\r\n$4\r\nPING\r\n").is_err() {
            return false;
        }
        let mut reply = [0u8; 7];
        tcp.read_exact(&mut reply).is_ok() && &reply == b"+PONG\r\n"
    }

    /// `redis://127.0.0.1:PORT/0`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// Kills the server (SIGKILL) and waits for it: connections are refused from now on.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}
