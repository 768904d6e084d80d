//! Checks a TLS server's certificate with each transport's default roots (no extra
//! root added): `roots_probe BASE_URL` prints `hyper: ok` / `blocking: ok` or the
//! error of each, and exits 0 only when both succeeded. `tests/native_roots.rs` runs it
//! with `SSL_CERT_FILE` set, which the `native-roots` feature reads.

use std::process::ExitCode;

use smallest_core::{ApiKey, Config};

fn main() -> ExitCode {
    let Some(base_url) = std::env::args().nth(1) else {
        eprintln!("usage: roots_probe BASE_URL");
        return ExitCode::from(2);
    };
    let config = match ApiKey::new("sk_roots_probe")
        .and_then(|key| Config::new(key).with_base_url(&base_url))
    {
        Ok(config) => config,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let hyper = smallest_hyper::Client::builder(config.clone())
        .without_proxy()
        .build()
        .and_then(|client| {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| smallest_core::Error::Config(e.to_string().into()))?;
            runtime.block_on(client.health())
        });
    let blocking = smallest_blocking::Client::builder(config)
        .without_proxy()
        .build()
        .and_then(|client| client.health());
    let mut ok = true;
    for (name, result) in [
        ("hyper", hyper.map(|_| ())),
        ("blocking", blocking.map(|_| ())),
    ] {
        match result {
            Ok(()) => println!("{name}: ok"),
            Err(e) => {
                ok = false;
                let mut text = e.to_string();
                let mut source = std::error::Error::source(&e);
                while let Some(s) = source {
                    text.push_str(&format!(": {s}"));
                    source = s.source();
                }
                println!("{name}: {text}");
            }
        }
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
