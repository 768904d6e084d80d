//! HTTPS calls and WSS live sessions through a real `CONNECT` proxy on loopback, on
//! both transports: what goes through it, what connects directly, credentials, and a
//! proxy that refuses.

use std::time::Duration;

use smallest_core::proxy::Proxy;
use smallest_core::retry::RetryPolicy;
use smallest_core::{
    Error, SttLanguage, SttLiveConfig, SttLiveEvent, TranscribeRequest, TtsLiveConfig,
    TtsLiveEvent, TtsRequest,
};
use smallest_emulator::RunningEmulator;
use smallest_tests::live::{LiveApi, live_clients_from, within};
use smallest_tests::proxy::{Behaviour, Connect, ConnectProxy};
use smallest_tests::{Api, Builders, KEY, Limits, builders, clients_from, config_for, emulator};

const TEXT: &str = "Through the proxy.";
const LIMIT: Duration = Duration::from_secs(60);

fn tls_emulator() -> RunningEmulator {
    emulator().tls(true).spawn().expect("emulator starts")
}

/// The one-shot clients and the live ones, hyper first.
type Clients = (Vec<Box<dyn Api>>, Vec<Box<dyn LiveApi>>);

/// Both clients (one-shot and live) for `emulator`, through `proxy` (`None`: direct),
/// retrying as `retry` says.
fn clients(emulator: &RunningEmulator, proxy: Option<Proxy>, retry: RetryPolicy) -> Clients {
    let make = || {
        let b = builders(
            config_for(emulator, KEY),
            emulator.ca_certificate_der(),
            Limits {
                connect: Some(Duration::from_secs(10)),
                response: Some(Duration::from_secs(20)),
                ..Limits::default()
            },
        );
        let (hyper, blocking, smol) = (
            b.hyper.retry_policy(retry),
            b.blocking.retry_policy(retry),
            b.smol.retry_policy(retry),
        );
        match &proxy {
            Some(p) => Builders {
                hyper: hyper.proxy(p.clone()),
                blocking: blocking.proxy(p.clone()),
                smol: smol.proxy(p.clone()),
            },
            None => Builders {
                hyper: hyper.without_proxy(),
                blocking: blocking.without_proxy(),
                smol: smol.without_proxy(),
            },
        }
    };
    (clients_from(make()), live_clients_from(make()))
}

/// One of each kind of traffic: a synthesis, a transcription, a listing, a live TTS
/// request and a live STT stream.
fn every_kind_of_call(api: &dyn Api, live: &dyn LiveApi) {
    let name = api.name();
    let audio = api
        .synthesize(&TtsRequest::new(TEXT, "magnus"))
        .unwrap_or_else(|e| panic!("{name}: synthesize: {e}"));
    let transcript = api
        .transcribe(&TranscribeRequest::from_bytes(
            audio.bytes().clone(),
            SttLanguage::En,
        ))
        .unwrap_or_else(|e| panic!("{name}: transcribe: {e}"));
    assert_eq!(transcript.transcription.trim(), TEXT, "{name}");
    assert!(
        !api.voices()
            .unwrap_or_else(|e| panic!("{name}: voices: {e}"))
            .is_empty()
    );

    let (tx, mut rx) = live
        .tts_live(TtsLiveConfig::new("magnus"))
        .unwrap_or_else(|e| panic!("{name}: tts_live: {e}"));
    let index = tx.speak(TEXT).unwrap();
    let mut bytes = 0;
    loop {
        match rx.recv() {
            Some(Ok(TtsLiveEvent::Audio { data, .. })) => bytes += data.len(),
            Some(Ok(TtsLiveEvent::Complete { request_index, .. })) if request_index == index => {
                break;
            }
            Some(Ok(_)) => {}
            other => panic!("{name}: live TTS ended early: {other:?}"),
        }
    }
    assert!(bytes > 0, "{name}: no live audio");
    tx.close().unwrap();

    let (tx, mut rx) = live
        .stt_live(SttLiveConfig::new(SttLanguage::En))
        .unwrap_or_else(|e| panic!("{name}: stt_live: {e}"));
    let pcm: Vec<u8> = smallest_emulator::speech::synthesize_pcm(TEXT, 16000, 1.0)
        .iter()
        .flat_map(|s| s.to_le_bytes())
        .collect();
    for frame in pcm.chunks(8192) {
        tx.send_audio(frame).unwrap();
    }
    tx.close_stream().unwrap();
    let mut finals = Vec::new();
    while let Some(event) = rx.recv() {
        match event.unwrap_or_else(|e| panic!("{name}: live STT: {e}")) {
            SttLiveEvent::Transcript(t) if t.is_final && !t.text.trim().is_empty() => {
                finals.push(t.text.trim().to_owned());
            }
            _ => {}
        }
    }
    assert_eq!(finals.join(" "), TEXT, "{name}");
}

#[test]
fn https_calls_and_wss_sessions_go_through_the_proxy() {
    within(LIMIT, || {
        let emulator = tls_emulator();
        let proxy = ConnectProxy::start(Behaviour::Open);
        let (apis, lives) = clients(
            &emulator,
            Some(Proxy::new(&proxy.url()).unwrap()),
            RetryPolicy::none(),
        );
        let target = format!("127.0.0.1:{}", emulator.addr().port());
        for (api, live) in apis.iter().zip(&lives) {
            let before = proxy.connects().len();
            every_kind_of_call(api.as_ref(), live.as_ref());
            let connects = proxy.connects();
            // At least the pooled HTTPS connection and the two WebSockets.
            assert!(connects.len() - before >= 3, "{}: {connects:?}", api.name());
            for c in &connects {
                assert_eq!(
                    c,
                    &Connect {
                        target: target.clone(),
                        authorization: None
                    }
                );
            }
        }
    });
}

#[test]
fn plain_http_and_no_proxy_hosts_connect_directly() {
    within(LIMIT, || {
        let proxy = ConnectProxy::start(Behaviour::Open);
        // Plain http:// never goes through a proxy.
        let plain = emulator().spawn().expect("emulator starts");
        let (apis, lives) = clients(
            &plain,
            Some(Proxy::new(&proxy.url()).unwrap()),
            RetryPolicy::none(),
        );
        for (api, live) in apis.iter().zip(&lives) {
            every_kind_of_call(api.as_ref(), live.as_ref());
        }
        // Nor does a host of the NO_PROXY list.
        let tls = tls_emulator();
        let bypass = Proxy::new(&proxy.url())
            .unwrap()
            .no_proxy("localhost, 127.0.0.1");
        let (apis, lives) = clients(&tls, Some(bypass), RetryPolicy::none());
        for (api, live) in apis.iter().zip(&lives) {
            every_kind_of_call(api.as_ref(), live.as_ref());
        }
        assert_eq!(proxy.connects(), Vec::new());
    });
}

#[test]
fn credentials_from_the_proxy_url_are_sent_and_never_shown() {
    within(LIMIT, || {
        let emulator = tls_emulator();
        // base64("user:p@ss word")
        let wanted = "Basic dXNlcjpwQHNzIHdvcmQ=";
        let proxy = ConnectProxy::start(Behaviour::RequireAuth(wanted.to_owned()));

        // Without credentials: 407, said once (retrying cannot help), with the fix.
        let (apis, lives) = clients(
            &emulator,
            Some(Proxy::new(&proxy.url()).unwrap()),
            RetryPolicy::default().with_max_retries(3),
        );
        for (api, live) in apis.iter().zip(&lives) {
            let before = proxy.connects().len();
            let e = api
                .synthesize(&TtsRequest::new(TEXT, "magnus"))
                .unwrap_err();
            assert!(
                matches!(
                    e,
                    Error::Transport {
                        request_sent: false,
                        ..
                    }
                ),
                "{}: {e:?}",
                api.name()
            );
            let text = chain(&e);
            assert!(text.contains("407"), "{}: {text}", api.name());
            assert!(text.contains("http://user:password@host:port"), "{text}");
            assert_eq!(
                proxy.connects().len() - before,
                1,
                "{}: retried a 407",
                api.name()
            );
            let Err(e) = live.tts_live(TtsLiveConfig::new("magnus")) else {
                panic!("{}: a live session without credentials", live.name());
            };
            assert!(chain(&e).contains("407"), "{}: {e}", live.name());
        }

        // With them (percent-encoded in the URL): every call works, nothing shows them.
        let url = format!("http://user:p%40ss%20word@127.0.0.1:{}", proxy.port());
        let (apis, lives) = clients(
            &emulator,
            Some(Proxy::new(&url).unwrap()),
            RetryPolicy::none(),
        );
        for (api, live) in apis.iter().zip(&lives) {
            every_kind_of_call(api.as_ref(), live.as_ref());
            let debug = api.client_debug();
            for secret in ["p@ss", "p%40ss", "dXNlcjpwQHNz"] {
                assert!(!debug.contains(secret), "{}: {debug}", api.name());
            }
        }
        let sent: Vec<_> = proxy
            .connects()
            .into_iter()
            .filter_map(|c| c.authorization)
            .collect();
        assert!(sent.iter().any(|a| a == wanted), "{sent:?}");
    });
}

#[test]
fn a_failing_gateway_is_retried_then_reported() {
    within(LIMIT, || {
        let emulator = tls_emulator();
        let proxy = ConnectProxy::start(Behaviour::Refuse(502, "Bad Gateway"));
        let (apis, lives) = clients(
            &emulator,
            Some(Proxy::new(&proxy.url()).unwrap()),
            RetryPolicy::default().with_max_retries(2),
        );
        for (api, live) in apis.iter().zip(&lives) {
            let before = proxy.connects().len();
            let e = api.health().unwrap_err();
            let text = chain(&e);
            assert!(text.contains("502 Bad Gateway"), "{}: {text}", api.name());
            assert!(
                text.contains(&format!("127.0.0.1:{}", proxy.port())),
                "{text}"
            );
            assert_eq!(
                proxy.connects().len() - before,
                3,
                "{}: one try + 2 retries",
                api.name()
            );
            let Err(e) = live.stt_live(SttLiveConfig::new(SttLanguage::En)) else {
                panic!("{}: a live session through a failing gateway", live.name());
            };
            assert!(chain(&e).contains("502"), "{}: {e}", live.name());
        }
    });
}

/// An error and its sources, as one line.
fn chain(e: &Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
