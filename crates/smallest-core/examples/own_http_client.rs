//! `smallest-core` driven by an HTTP client of your own: a minimal HTTP/1.1 client over
//! `std::net::TcpStream` (plain `http://`, e.g. the emulator; put TLS under it for
//! `https://`), and the core's call machine around it for retries, the TTS slot and the
//! time limits. No async runtime anywhere.
//!
//! ```sh
//! SMALLEST_API_KEY=sk_test SMALLEST_BASE_URL=http://127.0.0.1:PORT \
//!     cargo run -p smallest-core --example own_http_client
//! ```

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Instant, SystemTime};

use bytes::Bytes;
use smallest_core::call::{Call, Next};
use smallest_core::options::ClientOptions;
use smallest_core::{
    Config, Endpoint, Error, OutputFormat, SttLanguage, TranscribeRequest, TtsRequest,
};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let config = Config::from_env()?;
    let options = ClientOptions::default();
    let tts = TtsRequest::new("My own HTTP client.", "magnus")
        .sample_rate(16000)
        .output_format(OutputFormat::Wav);
    let audio = run(&tts, &config, &options)?;
    println!("synthesized {} bytes of WAV", audio.bytes().len());
    let stt = TranscribeRequest::from_bytes(audio.bytes().to_vec(), SttLanguage::En);
    let transcript = run(&stt, &config, &options)?;
    println!("transcribed: {}", transcript.transcription);
    Ok(())
}

/// The core's call machine over [`exchange`]: the loop every transport runs.
fn run<E: Endpoint + ?Sized>(
    endpoint: &E,
    config: &Config,
    options: &ClientOptions,
) -> Result<E::Output, Error> {
    let seed = u64::from(std::process::id())
        ^ SystemTime::now()
            .elapsed()
            .map_or(0, |d| d.subsec_nanos().into());
    let mut call = Call::new(endpoint, config, options, seed);
    loop {
        match call.poll(Instant::now(), SystemTime::now()) {
            Next::TakeSlot(wait) => {
                let slot = block_on(wait);
                call.slot_taken(slot);
            }
            Next::Send(request) => {
                let result = exchange(request);
                call.handle_response(result, Instant::now(), SystemTime::now());
            }
            Next::Sleep(delay) => std::thread::sleep(delay),
            Next::Done(output) => return Ok(output),
            Next::Fail(error) => return Err(error),
        }
    }
}

/// One HTTP/1.1 exchange. What a raw writer must add to the core's request: `Host`,
/// `Content-Length`, and the origin-form target (path and query) on the request line;
/// `Connection: close` keeps the reading simple (the body ends at EOF).
fn exchange(request: http::Request<Bytes>) -> Result<http::Response<Bytes>, Error> {
    let uri = request.uri().clone();
    let host = uri.host().unwrap_or("127.0.0.1");
    let port = uri.port_u16().unwrap_or(80);
    let never_sent = |e: std::io::Error| Error::transport(false, e);
    let mut tcp = TcpStream::connect((host, port)).map_err(never_sent)?;
    let target = uri.path_and_query().map_or("/", |p| p.as_str());
    let mut head = format!("{} {target} HTTP/1.1\r\n", request.method());
    head.push_str(&format!(
        "Host: {}\r\n",
        uri.authority().map_or(host, |a| a.as_str())
    ));
    for (name, value) in request.headers() {
        // Values are visible ASCII in every request the core builds.
        head.push_str(&format!(
            "{name}: {}\r\n",
            value.to_str().unwrap_or_default()
        ));
    }
    head.push_str(&format!(
        "Content-Length: {}\r\nConnection: close\r\n\r\n",
        request.body().len()
    ));
    let sent = |e: std::io::Error| Error::transport(true, e);
    tcp.write_all(head.as_bytes()).map_err(sent)?;
    tcp.write_all(request.body()).map_err(sent)?;
    let mut raw = Vec::new();
    tcp.read_to_end(&mut raw).map_err(sent)?;
    parse_response(&raw)
}

/// Status line, headers, and a body that is either as is or chunked.
fn parse_response(raw: &[u8]) -> Result<http::Response<Bytes>, Error> {
    let bad = |what: &str| Error::transport(true, format!("malformed response: {what}"));
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| bad("no end of head"))?;
    let head = std::str::from_utf8(&raw[..end]).map_err(|_| bad("head is not UTF-8"))?;
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad("status line"))?;
    let mut response = http::Response::builder().status(status);
    let mut chunked = false;
    for line in lines {
        let (name, value) = line.split_once(':').ok_or_else(|| bad("header"))?;
        chunked |= name.eq_ignore_ascii_case("transfer-encoding") && value.contains("chunked");
        response = response.header(name.trim(), value.trim());
    }
    let mut body = &raw[end + 4..];
    let body = if chunked {
        let mut out = Vec::new();
        loop {
            let line_end = body
                .windows(2)
                .position(|w| w == b"\r\n")
                .ok_or_else(|| bad("chunk size"))?;
            let size = std::str::from_utf8(&body[..line_end])
                .ok()
                .and_then(|s| usize::from_str_radix(s.split(';').next()?.trim(), 16).ok())
                .ok_or_else(|| bad("chunk size"))?;
            body = &body[line_end + 2..];
            if size == 0 {
                break;
            }
            out.extend_from_slice(body.get(..size).ok_or_else(|| bad("short chunk"))?);
            body = body.get(size + 2..).ok_or_else(|| bad("short chunk"))?;
        }
        Bytes::from(out)
    } else {
        Bytes::copy_from_slice(body)
    };
    response.body(body).map_err(|e| bad(&e.to_string()))
}

/// Runs a future on this thread (the TTS slot's wait), parking between wake-ups.
fn block_on<F: std::future::Future>(future: F) -> F::Output {
    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut future = std::pin::pin!(future);
    loop {
        match future.as_mut().poll(&mut cx) {
            Poll::Ready(output) => return output,
            Poll::Pending => std::thread::park(),
        }
    }
}
