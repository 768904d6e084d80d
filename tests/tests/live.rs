//! Live WebSocket sessions (TTS and STT) on both transports, over `ws://` and `wss://`,
//! against the emulator. The sending half runs on its own thread while the receiving
//! half reads, as an application would use them.

use std::time::Duration;

use smallest_core::stt_live::CloseOutcome;
use smallest_core::tts_live::CloseReason;
use smallest_core::{
    Error, OutputFormat, SttLanguage, SttLiveConfig, SttLiveEvent, SttModel, TtsLiveConfig,
    TtsLiveEvent, TtsModel, TtsRequest,
};
use smallest_tests::live::{
    LiveSetup, SttRx, TtsRx, live_clients, on_every_live_transport, within,
};
use smallest_tests::{FORBIDDEN_KEY, emulator};

const VOICE: &str = "meher";
const RATE: u32 = 24000;
const PIECES: [&str; 4] = ["Hello from ", "Smallest AI, ", "spoken in ", "pieces."];
const SECOND: &str = "And a second request.";
const LIMIT: Duration = Duration::from_secs(90);

fn tts_config() -> TtsLiveConfig {
    TtsLiveConfig::new(VOICE)
        .model(TtsModel::LightningV31Pro)
        .sample_rate(RATE)
}

/// The one-shot PCM of `text` with the same voice, model and rate.
fn one_shot(s: &LiveSetup<'_>, text: &str) -> Vec<u8> {
    let request = TtsRequest::new(text, VOICE)
        .model(TtsModel::LightningV31Pro)
        .sample_rate(RATE)
        .output_format(OutputFormat::Pcm);
    s.api.synthesize(&request).unwrap().bytes().to_vec()
}

/// The audio of request `index`, up to its `Complete`.
fn audio_of(s: &LiveSetup<'_>, rx: &mut dyn TtsRx, index: u64) -> Vec<u8> {
    let mut pcm = Vec::new();
    loop {
        match rx.recv() {
            Some(Ok(TtsLiveEvent::Audio {
                request_index,
                data,
                sample_rate,
                ..
            })) => {
                assert_eq!((request_index, sample_rate), (index, RATE), "{s}");
                pcm.extend_from_slice(&data);
            }
            Some(Ok(TtsLiveEvent::Complete { request_index, .. })) => {
                assert_eq!(request_index, index, "{s}");
                return pcm;
            }
            Some(Ok(TtsLiveEvent::WordTimestamp { .. })) => {}
            other => panic!("{s}: expected audio of request {index}, got {other:?}"),
        }
    }
}

/// The events left on a TTS receiver, which must end after `Closed`.
fn rest_tts(s: &LiveSetup<'_>, rx: &mut dyn TtsRx) -> Vec<TtsLiveEvent> {
    let mut events = Vec::new();
    while let Some(event) = rx.recv() {
        events.push(event.unwrap_or_else(|e| panic!("{s}: {e}")));
    }
    assert!(
        matches!(events.last(), Some(TtsLiveEvent::Closed { .. })),
        "{s}: the last event is not Closed: {events:?}"
    );
    assert!(rx.recv().is_none(), "{s}: events after the end");
    events
}

#[test]
fn text_sent_in_pieces_gives_the_audio_of_the_whole_text() {
    on_every_live_transport(emulator(), LIMIT, |s| {
        let whole: String = PIECES.concat();
        let expected = one_shot(s, &whole);
        assert!(expected.len() > 4800, "{s}: {} bytes", expected.len());
        // Before connecting: the connection will hold the client's only TTS slot, so a
        // one-shot call made meanwhile would wait for it.
        let second = one_shot(s, SECOND);

        assert_eq!(s.api.tts_slots_available(), 1, "{s}");
        let (tx, mut rx) = s.api.tts_live(tts_config()).unwrap();
        // The connection holds the account's TTS slot.
        assert_eq!(s.api.tts_slots_available(), 0, "{s}");

        // The receiver is already waiting when the text is written from another thread.
        let writer = std::thread::spawn(move || {
            for piece in PIECES {
                assert_eq!(tx.send_text(piece).unwrap(), 0);
                std::thread::sleep(Duration::from_millis(30));
            }
            assert_eq!(tx.finish().unwrap(), 0);
            tx
        });
        let pcm = audio_of(s, rx.as_mut(), 0);
        let tx = writer.join().unwrap();
        assert_eq!(pcm.len(), expected.len(), "{s}");
        assert!(pcm == expected, "{s}: live PCM differs from one-shot PCM");

        // A second request on the same connection, in one message.
        assert_eq!(tx.speak(SECOND).unwrap(), 1, "{s}");
        let pcm = audio_of(s, rx.as_mut(), 1);
        assert!(pcm == second, "{s}: second request differs");

        tx.close().unwrap();
        let rest = rest_tts(s, rx.as_mut());
        assert!(
            matches!(
                rest.last(),
                Some(TtsLiveEvent::Closed {
                    code: Some(1000),
                    why: CloseReason::Normal,
                    ..
                })
            ),
            "{s}: {rest:?}"
        );
        // The slot is free again once the connection closed.
        assert_eq!(s.api.tts_slots_available(), 1, "{s}");
        // The session refuses text after the close.
        assert!(matches!(tx.speak("late"), Err(Error::Stream { .. })), "{s}");
    });
}

#[test]
fn keepalive_pings_do_not_disturb_a_tts_session() {
    on_every_live_transport(emulator(), LIMIT, |s| {
        let expected = one_shot(s, SECOND);
        let (tx, mut rx) = s.api.tts_live(tts_config()).unwrap();
        tx.set_keepalive(Some(Duration::from_millis(40)));
        // Pings go out while the receiver waits; the text comes later.
        let writer = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(300));
            tx.speak(SECOND).unwrap();
            tx
        });
        let pcm = audio_of(s, rx.as_mut(), 0);
        assert!(pcm == expected, "{s}");
        let tx = writer.join().unwrap();
        tx.close().unwrap();
        rest_tts(s, rx.as_mut());
    });
}

#[test]
fn an_idle_tts_connection_is_closed_by_the_server() {
    on_every_live_transport(emulator(), LIMIT, |s| {
        let (_tx, mut rx) = s.api.tts_live(tts_config().timeout_secs(1)).unwrap();
        let events = rest_tts(s, rx.as_mut());
        assert!(
            events.iter().any(|e| matches!(
                e,
                TtsLiveEvent::Error { request_index: None, message, .. }
                    if message.contains("inactivity")
            )),
            "{s}: {events:?}"
        );
        assert!(
            matches!(
                events.last(),
                Some(TtsLiveEvent::Closed {
                    why: CloseReason::IdleTimeout,
                    ..
                })
            ),
            "{s}: {events:?}"
        );
        assert_eq!(s.api.tts_slots_available(), 1, "{s}");
    });
}

/// The emulator's speech for `text` as s16le bytes at 16 kHz.
fn speech(text: &str) -> Vec<u8> {
    smallest_emulator::speech::synthesize_pcm(text, 16000, 1.0)
        .iter()
        .flat_map(|sample| sample.to_le_bytes())
        .collect()
}

/// Every event left on an STT receiver, which must end after `Closed`.
fn rest_stt(s: &LiveSetup<'_>, rx: &mut dyn SttRx) -> Vec<SttLiveEvent> {
    let mut events = Vec::new();
    while let Some(event) = rx.recv() {
        events.push(event.unwrap_or_else(|e| panic!("{s}: {e}")));
    }
    assert!(
        matches!(events.last(), Some(SttLiveEvent::Closed { .. })),
        "{s}: the last event is not Closed: {events:?}"
    );
    assert!(rx.recv().is_none(), "{s}: events after the end");
    events
}

#[test]
fn live_stt_transcribes_the_emulators_speech() {
    const TEXT: &str = "Live transcription over a WebSocket works.";
    on_every_live_transport(emulator(), LIMIT, |s| {
        let audio = speech(TEXT);
        let (tx, mut rx) = s.api.stt_live(SttLiveConfig::new(SttLanguage::En)).unwrap();
        let total = audio.len() as u64;
        let writer = std::thread::spawn(move || {
            // Chunks of known, uneven sizes (the last one shorter): each call returns the
            // stream position, the bytes sent so far including that chunk.
            let mut sent = 0u64;
            let mut positions = Vec::new();
            for frame in audio.chunks(3000) {
                sent += frame.len() as u64;
                positions.push((tx.send_audio(frame).unwrap(), sent));
            }
            // Empty audio sends nothing and leaves the position where it was.
            positions.push((tx.send_audio(&[]).unwrap(), sent));
            tx.close_stream().unwrap();
            (tx, positions)
        });
        let events = rest_stt(s, rx.as_mut());
        let (tx, positions) = writer.join().unwrap();
        for (got, expected) in &positions {
            assert_eq!(got, expected, "{s}: the stream position after a chunk");
        }
        assert_eq!(
            positions.last().map(|p| p.0),
            Some(total),
            "{s}: the last position is the total of the audio sent"
        );
        let finals: Vec<&str> = events
            .iter()
            .filter_map(|e| match e {
                SttLiveEvent::Transcript(t) if t.is_final => Some(t.text.trim()),
                _ => None,
            })
            .filter(|t| !t.is_empty())
            .collect();
        assert_eq!(finals.join(" "), TEXT, "{s}: {events:?}");
        assert!(
            events
                .iter()
                .any(|e| matches!(e, SttLiveEvent::Transcript(t) if t.is_last)),
            "{s}: no is_last transcript"
        );
        assert!(
            matches!(
                events.last(),
                Some(SttLiveEvent::Closed {
                    code: Some(1000),
                    outcome: CloseOutcome::Normal,
                    after_last: true,
                    ..
                })
            ),
            "{s}: {events:?}"
        );
        assert!(tx.send_audio(&[0, 0]).is_err(), "{s}: audio after the end");
    });
}

#[test]
fn refused_upgrades_are_api_errors() {
    on_every_live_transport(emulator(), LIMIT, |s| {
        // An unknown model the core lets through is refused by the server before the
        // upgrade, with its message.
        let refused = s
            .api
            .stt_live(SttLiveConfig::new(SttLanguage::En).model(SttModel::Other("pulse-x".into())));
        match refused {
            Err(Error::Api(e)) => assert_eq!(e.status().as_u16(), 400, "{s}: {e:?}"),
            Err(other) => panic!("{s}: expected a 400, got {other:?}"),
            Ok(_) => panic!("{s}: the upgrade was accepted"),
        }
        // Pulse Pro has no streaming transport: refused locally.
        let local = s
            .api
            .stt_live(SttLiveConfig::new(SttLanguage::En).model(SttModel::PulsePro));
        assert!(matches!(local, Err(Error::Validation(_))), "{s}");
        // A bad TTS setting is refused locally too, and holds no slot.
        let local = s.api.tts_live(tts_config().max_buffer_flush_ms(5000));
        assert!(matches!(local, Err(Error::Validation(_))), "{s}");
        assert_eq!(s.api.tts_slots_available(), 1, "{s}");
    });
}

#[test]
fn bad_and_forbidden_keys_are_refused_before_the_upgrade() {
    for tls in [false, true] {
        let emulator = emulator().tls(tls).spawn().unwrap();
        let emulator = std::sync::Arc::new(emulator);
        for (key, status) in [("sk_test_not_a_known_key_0123", 401), (FORBIDDEN_KEY, 403)] {
            for index in 0..2 {
                let emulator = emulator.clone();
                within(LIMIT, move || {
                    let apis = live_clients(&emulator, key);
                    let api = apis[index].as_ref();
                    let s = LiveSetup {
                        api,
                        emulator: &emulator,
                        tls,
                    };
                    for result in [
                        api.tts_live(tts_config()).map(|_| ()),
                        api.stt_live(SttLiveConfig::new(SttLanguage::En))
                            .map(|_| ()),
                    ] {
                        let err = result.expect_err("a refused key");
                        assert!(err.is_auth(), "{s}: {err:?}");
                        assert_eq!(err.api().unwrap().status().as_u16(), status, "{s}");
                    }
                    // The refused TTS connection gave its slot back.
                    assert_eq!(api.tts_slots_available(), 1, "{s}");
                });
            }
        }
    }
}

#[test]
fn finalize_asks_for_a_final_of_what_was_heard() {
    const TEXT: &str = "Finalize me.";
    on_every_live_transport(emulator(), LIMIT, |s| {
        let audio = speech(TEXT);
        let (tx, mut rx) = s
            .api
            .stt_live(SttLiveConfig::new(SttLanguage::En).endpointing(false))
            .unwrap();
        // Written from this thread, then read: the halves need no second thread.
        tx.send_audio(&audio).unwrap();
        tx.finalize().unwrap();
        let finalized = loop {
            match rx.recv() {
                Some(Ok(SttLiveEvent::Transcript(t))) if t.from_finalize => break t,
                Some(Ok(_)) => {}
                other => panic!("{s}: {other:?}"),
            }
        };
        assert!(finalized.is_final, "{s}: {finalized:?}");
        assert_eq!(finalized.text.trim(), TEXT, "{s}");
        tx.close().unwrap();
        let events = rest_stt(s, rx.as_mut());
        assert!(
            matches!(
                events.last(),
                Some(SttLiveEvent::Closed {
                    outcome: CloseOutcome::Normal,
                    after_last: false,
                    ..
                })
            ),
            "{s}: {events:?}"
        );
    });
}

#[test]
fn over_the_stt_session_limit_the_server_closes_with_1008() {
    on_every_live_transport(emulator().stt_ws_limit(1), LIMIT, |s| {
        let (first_tx, mut first_rx) = s.api.stt_live(SttLiveConfig::new(SttLanguage::En)).unwrap();
        // The session over the limit is accepted, then closed by policy.
        let (_tx, mut rx) = s.api.stt_live(SttLiveConfig::new(SttLanguage::En)).unwrap();
        let events = rest_stt(s, rx.as_mut());
        match events.last() {
            Some(SttLiveEvent::Closed {
                code: Some(1008),
                outcome: CloseOutcome::PolicyViolation,
                reason,
                after_last: false,
            }) => assert!(!reason.is_empty(), "{s}"),
            other => panic!("{s}: {other:?}"),
        }
        // The first session is untouched.
        first_tx.close_stream().unwrap();
        let events = rest_stt(s, first_rx.as_mut());
        assert!(
            matches!(
                events.last(),
                Some(SttLiveEvent::Closed {
                    outcome: CloseOutcome::Normal,
                    after_last: true,
                    ..
                })
            ),
            "{s}: {events:?}"
        );
    });
}

#[test]
fn upgrade_faults_are_api_errors_and_time_limits() {
    use smallest_emulator::{Fault, FaultRule};
    use smallest_tests::live::live_clients_with;
    for tls in [false, true] {
        let emulator = std::sync::Arc::new(emulator().tls(tls).spawn().unwrap());
        for index in 0..2 {
            let emulator = emulator.clone();
            within(LIMIT, move || {
                let apis =
                    live_clients_with(&emulator, smallest_tests::KEY, Duration::from_secs(1));
                let api = apis[index].as_ref();
                let s = LiveSetup {
                    api,
                    emulator: &emulator,
                    tls,
                };
                emulator.inject(
                    FaultRule::new(
                        "/waves/v1/tts/live",
                        Fault::Status {
                            status: 503,
                            retry_after: Some("1".into()),
                            body: None,
                        },
                    )
                    .times(1),
                );
                match api.tts_live(tts_config()) {
                    Err(Error::Api(e)) => assert_eq!(e.status().as_u16(), 503, "{s}"),
                    Err(other) => panic!("{s}: {other:?}"),
                    Ok(_) => panic!("{s}: accepted"),
                }
                assert_eq!(api.tts_slots_available(), 1, "{s}");

                emulator.inject(
                    FaultRule::new(
                        "/waves/v1/stt/live",
                        Fault::StallHead(Duration::from_secs(3)),
                    )
                    .times(1),
                );
                match api.stt_live(SttLiveConfig::new(SttLanguage::En)) {
                    Err(Error::Timeout { phase, limit }) => {
                        assert_eq!(phase, smallest_core::TimeoutPhase::ResponseHead, "{s}");
                        assert_eq!(limit, Duration::from_secs(1), "{s}");
                    }
                    Err(other) => panic!("{s}: {other:?}"),
                    Ok(_) => panic!("{s}: accepted"),
                }
                emulator.clear_faults();
            });
        }
    }
}

#[test]
fn an_emulator_going_away_closes_the_session_with_its_code() {
    for tls in [false, true] {
        for index in 0..2 {
            within(LIMIT, move || {
                let emulator = emulator().tls(tls).spawn().unwrap();
                let apis = live_clients(&emulator, smallest_tests::KEY);
                let api = apis[index].as_ref();
                let name = format!("{} over {}", api.name(), if tls { "wss" } else { "ws" });
                let (_tx, mut rx) = api.stt_live(SttLiveConfig::new(SttLanguage::En)).unwrap();
                let reader = std::thread::spawn(move || {
                    let mut events = Vec::new();
                    while let Some(event) = rx.recv() {
                        events.push(event);
                    }
                    events
                });
                emulator.shutdown();
                let events = reader.join().unwrap();
                match events.last() {
                    Some(Ok(SttLiveEvent::Closed {
                        code: Some(1001),
                        outcome: CloseOutcome::Other(1001),
                        ..
                    })) => {}
                    other => panic!("{name}: {other:?} in {events:?}"),
                }
            });
        }
    }
}

/// A one-connection WebSocket server on loopback that accepts the upgrade, writes
/// `frames` (raw server frames) and then drops the TCP connection without a close frame:
/// a failure the emulator has no fault for.
fn dropping_server(frames: Vec<u8>) -> (u16, std::thread::JoinHandle<()>) {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = std::thread::spawn(move || {
        let (mut tcp, _) = listener.accept().unwrap();
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            tcp.read_exact(&mut byte).unwrap();
            head.push(byte[0]);
        }
        let head = String::from_utf8(head).unwrap();
        let key = head
            .lines()
            .find_map(|l| {
                let (name, value) = l.split_once(':')?;
                name.eq_ignore_ascii_case("sec-websocket-key")
                    .then(|| value.trim().to_owned())
            })
            .unwrap();
        let accept = smallest_core::ws::accept_key(&key);
        write!(
            tcp,
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Accept: {accept}\r\n\r\n"
        )
        .unwrap();
        tcp.write_all(&frames).unwrap();
        tcp.flush().unwrap();
        std::thread::sleep(Duration::from_millis(100));
    });
    (port, server)
}

fn clients_for_port(port: u16) -> Vec<Box<dyn smallest_tests::live::LiveApi>> {
    use smallest_tests::live::live_clients_for_config;
    let config =
        smallest_core::Config::new(smallest_core::ApiKey::new(smallest_tests::KEY).unwrap())
            .with_base_url(&format!("http://127.0.0.1:{port}"))
            .unwrap();
    live_clients_for_config(config, None, Duration::from_secs(10))
}

#[test]
fn a_connection_dropped_without_a_close_frame_is_a_closed_event_without_status() {
    // One transcript frame (FIN + text, unmasked, short length), then the TCP
    // connection ends.
    const TEXT: &str = r#"{"type":"transcription","transcript":"Hi","is_final":true}"#;
    let mut frame = vec![0x81, u8::try_from(TEXT.len()).unwrap()];
    frame.extend_from_slice(TEXT.as_bytes());
    for index in 0..2 {
        let frame = frame.clone();
        within(LIMIT, move || {
            let (port, server) = dropping_server(frame);
            let apis = clients_for_port(port);
            let api = apis[index].as_ref();
            let (_tx, mut rx) = api.stt_live(SttLiveConfig::new(SttLanguage::En)).unwrap();
            let mut events = Vec::new();
            while let Some(event) = rx.recv() {
                events.push(event.unwrap_or_else(|e| panic!("{}: {e:?}", api.name())));
            }
            server.join().unwrap();
            assert!(
                matches!(&events[..], [
                    SttLiveEvent::Transcript(t),
                    SttLiveEvent::Closed { code: None, outcome: CloseOutcome::NoStatus, after_last: false, .. },
                ] if t.text == "Hi"),
                "{}: {events:?}",
                api.name()
            );
        });
    }
}

#[test]
fn a_broken_frame_is_a_transport_error_then_the_closed_event() {
    // A frame with a reserved opcode: a WebSocket protocol violation.
    for index in 0..2 {
        within(LIMIT, move || {
            let (port, server) = dropping_server(vec![0x83, 0x00]);
            let apis = clients_for_port(port);
            let api = apis[index].as_ref();
            let (_tx, mut rx) = api.stt_live(SttLiveConfig::new(SttLanguage::En)).unwrap();
            let mut events = Vec::new();
            while let Some(event) = rx.recv() {
                events.push(event);
            }
            server.join().unwrap();
            assert!(
                matches!(
                    &events[..],
                    [
                        Err(Error::Transport {
                            request_sent: true,
                            ..
                        }),
                        Ok(SttLiveEvent::Closed {
                            code: None,
                            outcome: CloseOutcome::NoStatus,
                            ..
                        }),
                    ]
                ),
                "{}: {events:?}",
                api.name()
            );
        });
    }
}
