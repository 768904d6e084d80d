//! A real HTTP `CONNECT` proxy on loopback, for the proxy scenarios: it records every
//! tunnel asked of it (target and `Proxy-Authorization`), can demand credentials or
//! refuse with a status, and relays bytes both ways between the client and the target
//! — which must be on 127.0.0.1 (anything else is refused with 403).

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

/// What the proxy does with a `CONNECT`.
#[derive(Clone, Debug)]
pub enum Behaviour {
    /// Opens every tunnel.
    Open,
    /// Opens tunnels whose `Proxy-Authorization` is this value (e.g. `Basic dTpw`),
    /// answers 407 otherwise.
    RequireAuth(String),
    /// Answers every `CONNECT` with this status and reason.
    Refuse(u16, &'static str),
}

/// One `CONNECT` the proxy received.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Connect {
    /// The request target, `host:port`.
    pub target: String,
    /// The `Proxy-Authorization` header, if sent.
    pub authorization: Option<String>,
}

/// A running proxy; stops when dropped.
pub struct ConnectProxy {
    port: u16,
    log: Arc<Mutex<Vec<Connect>>>,
    stop: Arc<AtomicBool>,
    accept: Option<JoinHandle<()>>,
}

impl ConnectProxy {
    /// Starts a proxy on an ephemeral port of 127.0.0.1.
    pub fn start(behaviour: Behaviour) -> ConnectProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the proxy");
        let port = listener.local_addr().expect("proxy address").port();
        let log = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let accept = {
            let (log, stop) = (log.clone(), stop.clone());
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(stream) = stream else { continue };
                    let (log, behaviour) = (log.clone(), behaviour.clone());
                    std::thread::spawn(move || {
                        let _ = serve(stream, &behaviour, &log);
                    });
                }
            })
        };
        ConnectProxy {
            port,
            log,
            stop,
            accept: Some(accept),
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The proxy's port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Every `CONNECT` received so far, in order.
    pub fn connects(&self) -> Vec<Connect> {
        self.log
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl Drop for ConnectProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(accept) = self.accept.take() {
            let _ = accept.join();
        }
    }
}

/// One client connection: the `CONNECT` head (at most 16 KiB, within 10 s), the answer,
/// then the relay until either side closes.
fn serve(
    mut client: TcpStream,
    behaviour: &Behaviour,
    log: &Mutex<Vec<Connect>>,
) -> io::Result<()> {
    client.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if head.len() > 16 * 1024 || client.read(&mut byte)? == 0 {
            return Ok(());
        }
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    let mut lines = head.split("\r\n");
    let request_line = lines.next().unwrap_or_default();
    let mut words = request_line.split(' ');
    let (method, target) = (
        words.next().unwrap_or_default(),
        words.next().unwrap_or_default(),
    );
    let authorization = lines
        .filter_map(|l| l.split_once(':'))
        .find(|(name, _)| name.eq_ignore_ascii_case("proxy-authorization"))
        .map(|(_, v)| v.trim().to_owned());
    if method != "CONNECT" {
        return client.write_all(b"HTTP/1.1 405 Method Not Allowed\r\n\r\n");
    }
    log.lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push(Connect {
            target: target.to_owned(),
            authorization: authorization.clone(),
        });
    match behaviour {
        Behaviour::Open => {}
        Behaviour::RequireAuth(wanted) if authorization.as_deref() == Some(wanted.as_str()) => {}
        Behaviour::RequireAuth(_) => {
            return client.write_all(
                b"HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm=\"test\"\r\n\r\n",
            );
        }
        Behaviour::Refuse(status, reason) => {
            return client.write_all(format!("HTTP/1.1 {status} {reason}\r\n\r\n").as_bytes());
        }
    }
    if !target.starts_with("127.0.0.1:") {
        return client.write_all(b"HTTP/1.1 403 Forbidden\r\n\r\n");
    }
    let Ok(upstream) = TcpStream::connect(target) else {
        return client.write_all(b"HTTP/1.1 502 Bad Gateway\r\n\r\n");
    };
    client.write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")?;
    client.set_read_timeout(None)?;
    let (mut c_read, mut u_write) = (client.try_clone()?, upstream.try_clone()?);
    let up = std::thread::spawn(move || {
        let _ = io::copy(&mut c_read, &mut u_write);
        let _ = u_write.shutdown(Shutdown::Write);
    });
    let (mut u_read, mut c_write) = (upstream, client);
    let _ = io::copy(&mut u_read, &mut c_write);
    let _ = c_write.shutdown(Shutdown::Write);
    let _ = up.join();
    Ok(())
}
