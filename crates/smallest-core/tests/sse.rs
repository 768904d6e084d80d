//! The generic event-stream decoder: WHATWG line and field rules on byte fixtures, the
//! same events for every split of the same bytes, a naive reference decoder under
//! proptest, bounded memory, and no panic on arbitrary bytes.

use proptest::prelude::*;
use smallest_core::Error;
use smallest_core::sse::{DEFAULT_MAX_EVENT_BYTES, SseDecoder, SseEvent};

fn ev(event: Option<&str>, data: &str, id: Option<&str>, retry: Option<u64>) -> SseEvent {
    SseEvent {
        event: event.map(str::to_owned),
        data: data.to_owned(),
        id: id.map(str::to_owned),
        retry,
    }
}

fn data(d: &str) -> SseEvent {
    ev(None, d, None, None)
}

/// What a decoder makes of `pieces` fed in order: the events, then the error if any.
fn decode_with(mut decoder: SseDecoder, pieces: &[&[u8]]) -> (Vec<SseEvent>, Option<String>) {
    let mut events = Vec::new();
    for piece in pieces {
        decoder.feed(piece);
        while let Some(item) = decoder.next_event() {
            match item {
                Ok(e) => events.push(e),
                Err(e) => return (events, Some(e.to_string())),
            }
        }
    }
    loop {
        match decoder.finish() {
            Ok(Some(e)) => events.push(e),
            Ok(None) => return (events, None),
            Err(e) => return (events, Some(e.to_string())),
        }
    }
}

fn decode(pieces: &[&[u8]]) -> (Vec<SseEvent>, Option<String>) {
    decode_with(SseDecoder::new(), pieces)
}

/// Every fixture with the events it must give.
fn fixtures() -> Vec<(&'static str, &'static [u8], Vec<SseEvent>)> {
    vec![
        (
            "API.md §3.4 exchange",
            b"event: audio\ndata: {\"audio\": \"AAEC\", \"done\": false, \"status\": \"206\"}\n\n\
              event: audio\ndata: {\"audio\": \"AwQF\", \"done\": false, \"status\": \"206\"}\n\n\
              data: {\"status\": \"200\", \"done\": true}\n\n",
            vec![
                ev(
                    Some("audio"),
                    r#"{"audio": "AAEC", "done": false, "status": "206"}"#,
                    None,
                    None,
                ),
                ev(
                    Some("audio"),
                    r#"{"audio": "AwQF", "done": false, "status": "206"}"#,
                    None,
                    None,
                ),
                data(r#"{"status": "200", "done": true}"#),
            ],
        ),
        (
            "CRLF line ends",
            b"event: a\r\ndata: x\r\n\r\ndata: y\r\n\r\n",
            vec![ev(Some("a"), "x", None, None), data("y")],
        ),
        (
            "bare CR line ends",
            b"event: a\rdata: x\r\rdata: y\r\r",
            vec![ev(Some("a"), "x", None, None), data("y")],
        ),
        (
            "mixed line ends",
            b"data: a\r\n\rdata: b\n\r\ndata: c\r\n\n",
            vec![data("a"), data("b"), data("c")],
        ),
        (
            "CRLF inside one event is one line end, not a blank line",
            b"data: a\r\ndata: b\r\n\r\n",
            vec![data("a\nb")],
        ),
        (
            "leading BOM stripped once",
            b"\xEF\xBB\xBFdata: bom\n\n",
            vec![data("bom")],
        ),
        (
            "a second BOM is part of the field name",
            b"\xEF\xBB\xBF\xEF\xBB\xBFdata: x\n\ndata: y\n\n",
            vec![data("y")],
        ),
        (
            "comments",
            b": hello\ndata: a\n: in the middle\ndata: b\n\n:\n\n: only a comment\n\n",
            vec![data("a\nb")],
        ),
        (
            "multi-line data and the optional space",
            b"data: one\ndata:two\ndata:  three\ndata\n\n",
            vec![data("one\ntwo\n three\n")],
        ),
        (
            "id persists, retry per event, NUL id ignored, empty id clears",
            b"id: 1\nretry: 3000\ndata: a\n\ndata: b\n\nid: bad\0id\nretry: 12x\ndata: c\n\n\
              id\nretry:\ndata: d\n\nretry: 7\n\ndata: e\n\n",
            vec![
                ev(None, "a", Some("1"), Some(3000)),
                ev(None, "b", Some("1"), None),
                ev(None, "c", Some("1"), None),
                ev(None, "d", None, None),
                ev(None, "e", None, None),
            ],
        ),
        (
            "final event without its blank line",
            b"data: a\n\nevent: end\ndata: last",
            vec![data("a"), ev(Some("end"), "last", None, None)],
        ),
        (
            "final event ended by one line end only",
            b"data: {\"done\":true}\r\n",
            vec![data(r#"{"done":true}"#)],
        ),
        (
            "empty data lines",
            b"data\n\ndata:\ndata:\n\nevent: x\n\nevent: y\nid: 5\n\ndata: z\n\n",
            vec![data(""), data("\n"), ev(None, "z", Some("5"), None)],
        ),
        (
            "empty event name is message; unknown fields ignored",
            b"event:\nfoo: bar\ndata:x\n\nevent: message\ndata: y\n\n",
            vec![data("x"), ev(Some("message"), "y", None, None)],
        ),
        (
            "invalid UTF-8 becomes replacement characters",
            b"data: \xFF\xFEok\xE2\x9C\n\nevent: \xC3\ndata: h\xC3\xA9llo \xE2\x9C\x93\n\n",
            vec![
                data("\u{FFFD}\u{FFFD}ok\u{FFFD}"),
                ev(Some("\u{FFFD}"), "h\u{e9}llo \u{2713}", None, None),
            ],
        ),
        (
            "blank lines only, and an event that is never completed",
            b"\n\n\r\n\revent: audio\nid: 9\n",
            vec![],
        ),
        (
            "a line split across a CR|LF boundary and many blank lines",
            b"data: a\r\n\r\n\r\n\r\ndata: b\r\r\n\n",
            vec![data("a"), data("b")],
        ),
    ]
}

#[test]
fn every_fixture_decodes_to_its_events() {
    for (name, bytes, expected) in fixtures() {
        let (events, error) = decode(&[bytes]);
        assert_eq!(error, None, "{name}");
        assert_eq!(events, expected, "{name}");
    }
}

#[test]
fn every_fixture_split_anywhere_gives_the_same_events() {
    for (name, bytes, expected) in fixtures() {
        for i in 0..=bytes.len() {
            let (events, error) = decode(&[&bytes[..i], &bytes[i..]]);
            assert_eq!(error, None, "{name} split at {i}");
            assert_eq!(events, expected, "{name} split at {i}");
        }
        let one_by_one: Vec<&[u8]> = bytes.chunks(1).collect();
        assert_eq!(
            decode(&one_by_one),
            (expected.clone(), None),
            "{name} byte by byte"
        );
        // Empty pieces in between change nothing.
        let with_empties: Vec<&[u8]> = bytes.chunks(3).flat_map(|c| [&b""[..], c]).collect();
        assert_eq!(
            decode(&with_empties),
            (expected, None),
            "{name} with empty pieces"
        );
    }
}

#[test]
fn events_are_available_as_soon_as_their_blank_line_arrives() {
    let mut decoder = SseDecoder::new();
    decoder.feed(b"data: a\n");
    assert!(decoder.next_event().is_none());
    decoder.feed(b"\n");
    assert_eq!(decoder.next_event().unwrap().unwrap(), data("a"));
    // A CR at the end of a piece ends the line at once; the LF that follows is skipped.
    decoder.feed(b"data: b\r\r");
    assert_eq!(decoder.next_event().unwrap().unwrap(), data("b"));
    decoder.feed(b"\ndata: c\n\n");
    assert_eq!(decoder.next_event().unwrap().unwrap(), data("c"));
    assert!(decoder.next_event().is_none());
    assert_eq!(decoder.finish().unwrap(), None);
    assert_eq!(decoder.finish().unwrap(), None);
}

#[test]
fn a_cr_then_lf_in_the_next_piece_is_one_line_end() {
    // Treating the LF as a blank line would dispatch "a" alone.
    let (events, _) = decode(&[b"data: a\r", b"\ndata: b\n\n"]);
    assert_eq!(events, vec![data("a\nb")]);
    // ...but a CR then CR is a blank line.
    let (events, _) = decode(&[b"data: a\r", b"\rdata: b\n\n"]);
    assert_eq!(events, vec![data("a"), data("b")]);
}

#[test]
fn a_partial_bom_is_waited_for() {
    let (events, _) = decode(&[b"\xEF", b"\xBB", b"\xBFdata: x\n\n"]);
    assert_eq!(events, vec![data("x")]);
    // A body that is only part of a BOM is not one.
    let (events, error) = decode(&[b"\xEF\xBB"]);
    assert_eq!((events, error), (vec![], None));
}

#[test]
fn finish_dispatches_everything_left_even_when_not_pulled() {
    let mut decoder = SseDecoder::new();
    decoder.feed(b"data: a\n\ndata: b\n\ndata: c");
    assert_eq!(decoder.finish().unwrap(), Some(data("a")));
    assert_eq!(decoder.finish().unwrap(), Some(data("b")));
    assert_eq!(decoder.finish().unwrap(), Some(data("c")));
    assert_eq!(decoder.finish().unwrap(), None);
    // Bytes after the end are ignored.
    decoder.feed(b"data: d\n\n");
    assert!(decoder.next_event().is_none());
}

#[test]
fn last_event_id_and_retry_are_kept_by_the_decoder() {
    let mut decoder = SseDecoder::new();
    decoder.feed(b"id: 41\nretry: 2500\n\nid: 42\n\n");
    assert!(decoder.next_event().is_none());
    assert_eq!(decoder.last_event_id(), Some("42"));
    assert_eq!(decoder.retry(), Some(2500));
    decoder.feed(b"retry: 99999999999999999999999\ndata: x\n\n");
    let event = decoder.next_event().unwrap().unwrap();
    assert_eq!(event.id.as_deref(), Some("42"));
    assert_eq!(event.retry, Some(u64::MAX));
    assert_eq!(event.event_type(), "message");
}

fn assert_decode_error(result: Option<Result<SseEvent, Error>>) -> String {
    match result {
        Some(Err(e @ Error::Decode { .. })) => e.to_string(),
        other => panic!("expected a decode error, got {other:?}"),
    }
}

#[test]
fn a_line_longer_than_the_limit_is_an_error() {
    let mut decoder = SseDecoder::with_max_event_bytes(16);
    decoder.feed(b"data: 0123456789\n\ndata: 0123456789ab\n\n");
    // "data: 0123456789" is exactly 16 bytes: allowed.
    assert_eq!(decoder.next_event().unwrap().unwrap(), data("0123456789"));
    let message = assert_decode_error(decoder.next_event());
    assert!(message.contains("16 bytes"), "{message}");
    assert!(decoder.is_failed());
    assert!(decoder.next_event().is_none());
    assert!(
        decoder.finish().is_err(),
        "an error is never followed by a quiet end"
    );
}

#[test]
fn an_endless_line_fails_before_it_ends_so_memory_stays_bounded() {
    let mut decoder = SseDecoder::with_max_event_bytes(1024);
    decoder.feed(b"data: ok\n\n");
    assert_eq!(decoder.next_event().unwrap().unwrap(), data("ok"));
    let mut fed = 0;
    let error = loop {
        decoder.feed(&[b'x'; 100]);
        fed += 100;
        assert!(fed <= 1200, "no error after {fed} bytes without a line end");
        if let Some(item) = decoder.next_event() {
            break item;
        }
    };
    assert!(error.is_err());
}

#[test]
fn an_event_whose_data_outgrows_the_limit_is_an_error() {
    let mut decoder = SseDecoder::with_max_event_bytes(20);
    // Each line fits; together (joined with \n) they make 23 bytes.
    decoder.feed(b"data: 0123456789a\ndata: 0123456789a\n\n");
    assert_decode_error(decoder.next_event());
    // The default limit is 16 MiB.
    assert_eq!(SseDecoder::new().max_event_bytes(), DEFAULT_MAX_EVENT_BYTES);
    assert_eq!(DEFAULT_MAX_EVENT_BYTES, 16 * 1024 * 1024);
}

#[test]
fn a_large_event_in_many_pieces_decodes() {
    let payload = "A".repeat(300_000);
    let body = format!("event: audio\ndata: {payload}\n\n");
    let pieces: Vec<&[u8]> = body.as_bytes().chunks(777).collect();
    let (events, error) = decode(&pieces);
    assert_eq!(error, None);
    assert_eq!(events, vec![ev(Some("audio"), &payload, None, None)]);
}

// ---------------------------------------------------------------------------
// A naive reference decoder, written from the spec's wording: decode the whole body,
// strip one BOM, split lines, append `value + LF` per data line, strip one final LF.
// ---------------------------------------------------------------------------

fn reference(bytes: &[u8]) -> Vec<SseEvent> {
    let text = String::from_utf8_lossy(bytes);
    let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
    let mut lines = Vec::new();
    let mut current = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\r' => {
                if chars.peek() == Some(&'\n') {
                    chars.next();
                }
                lines.push(std::mem::take(&mut current));
            }
            '\n' => lines.push(std::mem::take(&mut current)),
            c => current.push(c),
        }
    }
    if !current.is_empty() {
        lines.push(current);
    }
    lines.push(String::new()); // the end of the body dispatches (our documented choice)

    let mut events = Vec::new();
    let (mut data_buf, mut event_buf, mut last_id, mut retry) =
        (String::new(), String::new(), String::new(), None);
    for line in lines {
        if line.is_empty() {
            let r = retry.take();
            if data_buf.is_empty() {
                event_buf.clear();
                continue;
            }
            if data_buf.ends_with('\n') {
                data_buf.pop();
            }
            events.push(SseEvent {
                event: (!event_buf.is_empty()).then(|| event_buf.clone()),
                data: std::mem::take(&mut data_buf),
                id: (!last_id.is_empty()).then(|| last_id.clone()),
                retry: r,
            });
            event_buf.clear();
            continue;
        }
        if line.starts_with(':') {
            continue;
        }
        let (field, value) = match line.find(':') {
            Some(i) => {
                let v = &line[i + 1..];
                (&line[..i], v.strip_prefix(' ').unwrap_or(v))
            }
            None => (line.as_str(), ""),
        };
        match field {
            "event" => event_buf = value.to_owned(),
            "data" => {
                data_buf.push_str(value);
                data_buf.push('\n');
            }
            "id" if !value.contains('\0') => last_id = value.to_owned(),
            "retry" if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) => {
                retry = Some(value.parse::<u64>().unwrap_or(u64::MAX));
            }
            _ => {}
        }
    }
    events
}

#[test]
fn the_reference_agrees_on_every_fixture() {
    for (name, bytes, expected) in fixtures() {
        assert_eq!(reference(bytes), expected, "{name}");
    }
}

/// Byte strings rich in what matters to an event stream.
fn sse_like() -> impl Strategy<Value = Vec<u8>> {
    let token = prop_oneof![
        Just(&b"data"[..]),
        Just(&b"data: "[..]),
        Just(&b"event: "[..]),
        Just(&b"id: "[..]),
        Just(&b"retry: "[..]),
        Just(&b":"[..]),
        Just(&b" "[..]),
        Just(&b"\r"[..]),
        Just(&b"\n"[..]),
        Just(&b"\r\n"[..]),
        Just(&b"\xEF\xBB\xBF"[..]),
        Just(&b"\xE2\x9C\x93"[..]),
        Just(&b"\xFF"[..]),
        Just(&b"\0"[..]),
        Just(&b"12"[..]),
        Just(&b"x"[..]),
        Just(&b"{\"audio\": \"AAEC\"}"[..]),
    ];
    prop::collection::vec(token, 0..60).prop_map(|tokens| tokens.concat())
}

/// Cuts `bytes` into pieces whose sizes follow `sizes`, cycled; a 0 adds an empty piece
/// before a 1-byte one.
fn cut<'a>(bytes: &'a [u8], sizes: &[usize]) -> Vec<&'a [u8]> {
    let mut pieces = Vec::new();
    let mut rest = bytes;
    for &size in sizes.iter().cycle() {
        if rest.is_empty() {
            break;
        }
        if size == 0 {
            pieces.push(&rest[..0]);
        }
        let (piece, tail) = rest.split_at(size.clamp(1, rest.len()));
        pieces.push(piece);
        rest = tail;
    }
    pieces
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn random_chunking_of_the_fixtures_changes_nothing(
        which in 0usize..17,
        sizes in prop::collection::vec(0usize..12, 1..20),
    ) {
        let all = fixtures();
        let (name, bytes, expected) = &all[which % all.len()];
        let pieces = cut(bytes, &sizes);
        prop_assert_eq!(decode(&pieces), (expected.clone(), None), "{}", name);
    }

    #[test]
    fn random_event_streams_match_the_reference_whatever_the_chunking(
        bytes in sse_like(),
        sizes in prop::collection::vec(0usize..9, 1..10),
    ) {
        let whole = decode(&[&bytes]);
        prop_assert_eq!(&whole, &(reference(&bytes), None));
        prop_assert_eq!(decode(&cut(&bytes, &sizes)), whole);
    }

    #[test]
    fn a_small_limit_fails_the_same_way_whatever_the_chunking(
        bytes in sse_like(),
        sizes in prop::collection::vec(0usize..9, 1..10),
        max in 0usize..40,
    ) {
        let whole = decode_with(SseDecoder::with_max_event_bytes(max), &[&bytes]);
        let pieces = cut(&bytes, &sizes);
        prop_assert_eq!(decode_with(SseDecoder::with_max_event_bytes(max), &pieces), whole);
    }

    #[test]
    fn arbitrary_bytes_never_panic(
        bytes in prop::collection::vec(any::<u8>(), 0..4096),
        sizes in prop::collection::vec(0usize..300, 1..10),
        max in prop_oneof![Just(DEFAULT_MAX_EVENT_BYTES), 0usize..64],
    ) {
        let mut decoder = SseDecoder::with_max_event_bytes(max);
        for piece in cut(&bytes, &sizes) {
            decoder.feed(piece);
            while let Some(item) = decoder.next_event() {
                let _ = item;
            }
        }
        for _ in 0..10_000 {
            match decoder.finish() {
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => break,
            }
        }
        prop_assert!(decoder.next_event().is_none());
    }
}
