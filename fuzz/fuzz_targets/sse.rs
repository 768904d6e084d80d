//! The SSE and TTS stream decoders on arbitrary bytes cut at arbitrary places: no
//! panic, and the events do not depend on where the input was cut.
#![no_main]

use libfuzzer_sys::fuzz_target;
use smallest_core::sse::SseDecoder;
use smallest_core::tts::OutputFormat;
use smallest_core::tts_stream::TtsStreamDecoder;

fn events(pieces: &[&[u8]]) -> Vec<Result<(Option<String>, String), String>> {
    let mut d = SseDecoder::with_max_event_bytes(4096);
    let mut out = Vec::new();
    for p in pieces {
        d.feed(p);
        while let Some(e) = d.next_event() {
            out.push(e.map(|e| (e.event, e.data)).map_err(|e| e.to_string()));
        }
    }
    loop {
        match d.finish() {
            Ok(Some(e)) => out.push(Ok((e.event, e.data))),
            Ok(None) => break,
            Err(e) => {
                out.push(Err(e.to_string()));
                break;
            }
        }
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let cut = data.first().map_or(0, |b| usize::from(*b)) % (data.len() + 1);
    let (a, b) = data.split_at(cut);
    let whole = events(&[data]);
    let split = events(&[a, b]);
    // An error may surface at a different event, but the successful prefix is the same.
    let ok = |v: &[Result<(Option<String>, String), String>]| v.iter().take_while(|e| e.is_ok()).count();
    assert_eq!(&whole[..ok(&whole).min(ok(&split))], &split[..ok(&whole).min(ok(&split))]);

    for format in [OutputFormat::Pcm, OutputFormat::Mp3] {
        let mut d = TtsStreamDecoder::new(format, 24000);
        d.feed(a);
        while d.next_chunk().is_some() {}
        d.feed(b);
        while d.next_chunk().is_some() {}
        while let Ok(Some(_)) = d.finish() {}
    }
});
