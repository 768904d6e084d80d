//! The upload counter fed reads of any size, EOFs, and reads after the end: no panic;
//! for reads of at most `want()` bytes, `want()` is 0 exactly when the body is
//! complete, the count and the progress reports follow the reads, and a source that
//! ends before its declared length is an error.
#![no_main]

use std::sync::{Arc, Mutex};

use libfuzzer_sys::fuzz_target;
use smallest_core::call::{ProgressHook, UPLOAD_CHUNK, UploadCounter};

fuzz_target!(|data: &[u8]| {
    let (head, reads) = data.split_at(data.len().min(9));
    let total = match head.split_first() {
        Some((flag, rest)) if flag & 1 == 1 => {
            let mut b = [0u8; 8];
            b[..rest.len()].copy_from_slice(rest);
            // Mostly lengths a few reads reach; sometimes any.
            let n = u64::from_le_bytes(b);
            Some(if flag & 2 == 2 { n } else { n % 300_000 })
        }
        _ => None,
    };
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let hook: ProgressHook = Arc::new(move |p| log.lock().unwrap().push(p.sent));
    let mut c = UploadCounter::new(total, Some(hook));
    let mut sent = 0u64;
    let mut reported = Vec::new();
    // Only reads within the contract (at most `want()`, nothing after the end) are
    // checked against the model; the others must merely not panic.
    let mut within = true;
    for pair in reads.chunks(2) {
        let want = c.want();
        assert!(want <= UPLOAD_CHUNK);
        if within {
            assert_eq!(want == 0, c.is_done());
            if let Some(total) = total {
                assert!(sent <= total);
                if !c.is_done() {
                    assert_eq!(want as u64, (total - sent).min(UPLOAD_CHUNK as u64));
                }
            }
        }
        let op = pair[0];
        let arg = pair.get(1).copied().unwrap_or(0);
        let n = match op % 8 {
            0 => 0,
            1 => want,
            7 => {
                // Outside the contract: more than asked, or a read after the end.
                within = false;
                want + usize::from(arg) + 1
            }
            _ => want * usize::from(arg) / 255,
        };
        if c.is_done() && n > 0 {
            within = false;
        }
        let done_before = c.is_done();
        let result = c.handle_read(n);
        if !within {
            continue;
        }
        if n == 0 {
            assert!(c.is_done());
            if !done_before {
                assert_eq!(result.is_err(), total.is_some_and(|t| sent < t));
            }
        } else {
            assert!(result.is_ok());
            sent += n as u64;
            reported.push(sent);
        }
        assert_eq!(c.progress().sent, sent);
    }
    if within {
        assert_eq!(*seen.lock().unwrap(), reported);
    }
});
