//! A `multipart/form-data` parser (RFC 7578 over RFC 2046) for the voice-cloning upload.
//!
//! It works on a body already read into memory under a size limit (the caller bounds it), never
//! copies part contents (each part is a slice of the body), and refuses what it cannot frame
//! unambiguously: line breaks are CRLF as the RFCs require, every delimiter starts a line, the body
//! ends with the close delimiter, and the header section of a part and the number of parts are
//! bounded.

use bytes::Bytes;

/// Most parts accepted in one body.
const MAX_PARTS: usize = 64;
/// Longest header section of one part.
const MAX_HEADER_BYTES: usize = 8 * 1024;

/// One part of the body.
#[derive(Debug, Clone)]
pub(crate) struct Part {
    /// The `name` of its `Content-Disposition: form-data`.
    pub(crate) name: String,
    /// The `filename`, for file parts.
    pub(crate) filename: Option<String>,
    /// Its `Content-Type`, if it had one (as sent, trimmed).
    pub(crate) content_type: Option<String>,
    /// The content.
    pub(crate) data: Bytes,
}

impl Part {
    /// The content as text (invalid UTF-8 replaced).
    pub(crate) fn text(&self) -> String {
        String::from_utf8_lossy(&self.data).into_owned()
    }
}

/// Why a body is not valid `multipart/form-data`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Error {
    /// No delimiter line `--boundary` starts the first part.
    NoDelimiter,
    /// A part or the body ended before its delimiter.
    Unterminated,
    /// A part's header section is malformed or too long.
    BadHeaders,
    /// A part lacks `Content-Disposition: form-data; name="…"`.
    NoName,
    /// More than [`MAX_PARTS`] parts.
    TooManyParts,
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Error::NoDelimiter => "the boundary delimiter was not found",
            Error::Unterminated => "unexpected end of form",
            Error::BadHeaders => "malformed part headers",
            Error::NoName => "a part has no form-data name",
            Error::TooManyParts => "too many parts",
        })
    }
}

/// The `boundary` parameter of a `multipart/form-data` content type (quoted or not), when the media
/// type is `multipart/form-data` and the boundary is 1–70 characters not ending with a space.
pub(crate) fn boundary(content_type: &str) -> Option<String> {
    let (media, params) = content_type.split_once(';').unwrap_or((content_type, ""));
    if !media.trim().eq_ignore_ascii_case("multipart/form-data") {
        return None;
    }
    let b = parameters(params)
        .into_iter()
        .find(|(name, _)| name.eq_ignore_ascii_case("boundary"))?
        .1;
    (!b.is_empty() && b.len() <= 70 && !b.ends_with(' ')).then_some(b)
}

/// Parses `; a=b; c="d \"e\""` into name/value pairs (names lowercased). Stops at the first
/// unparsable piece.
fn parameters(s: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = s.trim_start();
    loop {
        rest = rest.trim_start_matches([';', ' ', '\t']);
        if rest.is_empty() {
            return out;
        }
        let Some(eq) = rest.find('=') else {
            return out;
        };
        let name = rest[..eq].trim().to_ascii_lowercase();
        if name.is_empty() || name.contains([';', ' ', '"']) {
            return out;
        }
        rest = rest[eq + 1..].trim_start();
        let value;
        if let Some(quoted) = rest.strip_prefix('"') {
            let mut v = String::new();
            let mut chars = quoted.char_indices();
            let mut end = None;
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => {
                        if let Some((_, escaped)) = chars.next() {
                            v.push(escaped);
                        }
                    }
                    '"' => {
                        end = Some(i + 1);
                        break;
                    }
                    c => v.push(c),
                }
            }
            let Some(end) = end else {
                return out;
            };
            value = v;
            rest = &quoted[end..];
        } else {
            let end = rest.find(';').unwrap_or(rest.len());
            value = rest[..end].trim().to_owned();
            rest = &rest[end..];
        }
        out.push((name, value));
    }
}

fn find(hay: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    if needle.is_empty() || from > hay.len() {
        return None;
    }
    let first = needle[0];
    let mut i = from;
    while i + needle.len() <= hay.len() {
        match hay[i..=hay.len() - needle.len()]
            .iter()
            .position(|&b| b == first)
        {
            None => return None,
            Some(p) => {
                let at = i + p;
                if &hay[at..at + needle.len()] == needle {
                    return Some(at);
                }
                i = at + 1;
            }
        }
    }
    None
}

/// After a delimiter ending at `pos`: `Some(None)` for the close delimiter, `Some(Some(next))` with
/// the start of the next part, `None` when the line goes on (so it was no delimiter). Linear white
/// space before the CRLF is transport padding (RFC 2046 §5.1.1).
fn after_delimiter(body: &[u8], mut pos: usize) -> Option<Option<usize>> {
    if body[pos..].starts_with(b"--") {
        return Some(None);
    }
    while matches!(body.get(pos), Some(b' ' | b'\t')) {
        pos += 1;
    }
    body[pos..].starts_with(b"\r\n").then_some(Some(pos + 2))
}

/// The next delimiter line at or after `from`: where the content before it ends, and what follows
/// (see [`after_delimiter`]). A line that merely starts like a delimiter is content.
fn next_delimiter(
    body: &[u8],
    delimiter: &[u8],
    from: usize,
) -> Result<(usize, Option<usize>), Error> {
    let mut from = from;
    loop {
        let at = find(body, delimiter, from).ok_or(Error::Unterminated)?;
        if let Some(next) = after_delimiter(body, at + delimiter.len()) {
            return Ok((at, next));
        }
        from = at + 1;
    }
}

/// Splits `body` into its parts.
pub(crate) fn parse(body: &Bytes, boundary: &str) -> Result<Vec<Part>, Error> {
    let dash = format!("--{boundary}");
    let dash = dash.as_bytes();
    let delimiter = [b"\r\n".as_slice(), dash].concat();
    // The first delimiter starts the body or a line after the preamble.
    let first = if body.starts_with(dash) {
        after_delimiter(body, dash.len())
    } else {
        None
    };
    let mut next = match first {
        Some(next) => next,
        None => match next_delimiter(body, &delimiter, 0) {
            Ok((_, next)) => next,
            Err(_) => return Err(Error::NoDelimiter),
        },
    };
    let mut parts = Vec::new();
    while let Some(start) = next {
        if parts.len() == MAX_PARTS {
            return Err(Error::TooManyParts);
        }
        let (headers, content_start) = if body[start..].starts_with(b"\r\n") {
            ("", start + 2)
        } else {
            let end = find(body, b"\r\n\r\n", start).ok_or(Error::Unterminated)?;
            if end - start > MAX_HEADER_BYTES {
                return Err(Error::BadHeaders);
            }
            let headers = std::str::from_utf8(&body[start..end]).map_err(|_| Error::BadHeaders)?;
            (headers, end + 4)
        };
        let (content_end, after) = next_delimiter(body, &delimiter, content_start)?;
        parts.push(part(headers, body.slice(content_start..content_end))?);
        next = after;
    }
    Ok(parts)
}

fn part(headers: &str, data: Bytes) -> Result<Part, Error> {
    let mut disposition = None;
    let mut content_type = None;
    for line in headers.split("\r\n") {
        let (name, value) = line.split_once(':').ok_or(Error::BadHeaders)?;
        let name = name.trim();
        if name.is_empty() || name.contains([' ', '\t']) {
            return Err(Error::BadHeaders);
        }
        if name.eq_ignore_ascii_case("content-disposition") {
            disposition.get_or_insert(value.trim());
        } else if name.eq_ignore_ascii_case("content-type") {
            content_type.get_or_insert(value.trim().to_owned());
        }
    }
    let disposition = disposition.ok_or(Error::NoName)?;
    let (kind, params) = disposition.split_once(';').unwrap_or((disposition, ""));
    if !kind.trim().eq_ignore_ascii_case("form-data") {
        return Err(Error::NoName);
    }
    let params = parameters(params);
    let get = |key: &str| {
        params
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
    };
    let name = get("name").ok_or(Error::NoName)?;
    // RFC 7578 §4.2 discourages `filename*`, but some clients send it (RFC 5987 `UTF-8''…`).
    let filename = get("filename*")
        .and_then(|v| {
            let (charset, rest) = v.split_once('\'')?;
            let (_, encoded) = rest.split_once('\'')?;
            charset.eq_ignore_ascii_case("utf-8").then(|| {
                percent_encoding::percent_decode_str(encoded)
                    .decode_utf8_lossy()
                    .into_owned()
            })
        })
        .or_else(|| get("filename"));
    Ok(Part {
        name,
        filename,
        content_type,
        data,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(parts: &[&str]) -> Bytes {
        Bytes::from(parts.concat())
    }

    #[test]
    fn boundaries() {
        assert_eq!(
            boundary("multipart/form-data; boundary=abc").as_deref(),
            Some("abc")
        );
        assert_eq!(
            boundary("Multipart/Form-Data;charset=utf-8; BOUNDARY=\"a b;c\"").as_deref(),
            Some("a b;c")
        );
        assert_eq!(boundary("multipart/form-data"), None);
        assert_eq!(boundary("multipart/mixed; boundary=abc"), None);
        assert_eq!(boundary("multipart/form-data; boundary=\"\""), None);
        assert_eq!(
            boundary(&format!("multipart/form-data; boundary={}", "x".repeat(71))),
            None
        );
    }

    #[test]
    fn parts_with_preamble_padding_and_epilogue() {
        let b = body(&[
            "preamble\r\n--XyZ  \r\n",
            "Content-Disposition: form-data; name=\"displayName\"\r\n\r\n",
            "My voice\r\n--XyZ\r\n",
            "content-disposition: form-data; name=\"file\"; filename=\"a \\\"b\\\".wav\"\r\n",
            "Content-Type: audio/wav\r\n\r\n",
            "RIFF\r\n--XyZx\r\n\r\nend\r\n--XyZ--\r\nepilogue",
        ]);
        let parts = parse(&b, "XyZ").unwrap_or_default();
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0].name, "displayName");
        assert_eq!(parts[0].text(), "My voice");
        assert_eq!(parts[0].filename, None);
        assert_eq!(parts[1].name, "file");
        assert_eq!(parts[1].filename.as_deref(), Some("a \"b\".wav"));
        assert_eq!(parts[1].content_type.as_deref(), Some("audio/wav"));
        // A boundary-like line that is not the boundary stays content.
        assert_eq!(&parts[1].data[..], b"RIFF\r\n--XyZx\r\n\r\nend");
    }

    #[test]
    fn empty_content_and_filename_star() {
        let b = body(&[
            "--b\r\nContent-Disposition: form-data; name=\"x\"\r\n\r\n\r\n--b\r\n",
            "Content-Disposition: form-data; name=\"f\"; filename*=UTF-8''%C3%A9.wav\r\n\r\n",
            "z\r\n--b--",
        ]);
        let parts = parse(&b, "b").unwrap_or_default();
        assert_eq!(parts.len(), 2);
        assert!(parts[0].data.is_empty());
        assert_eq!(parts[1].filename.as_deref(), Some("é.wav"));
        assert!(parse(&body(&["--b--\r\n"]), "b").is_ok_and(|p| p.is_empty()));
    }

    #[test]
    fn malformed_bodies() {
        let ok_part = "Content-Disposition: form-data; name=\"x\"\r\n\r\nv";
        assert_eq!(
            parse(&body(&["nothing here"]), "b").err(),
            Some(Error::NoDelimiter)
        );
        assert_eq!(
            parse(&body(&["--b\r\n", ok_part]), "b").err(),
            Some(Error::Unterminated)
        );
        assert_eq!(
            parse(&body(&["--b\r\n", ok_part, "\r\n--b"]), "b").err(),
            Some(Error::Unterminated)
        );
        // A line that only starts like the delimiter is preamble.
        assert!(parse(&body(&["--bx\r\n", ok_part, "\r\n--b--"]), "b").is_ok_and(|p| p.is_empty()));
        assert_eq!(
            parse(&body(&["--b\r\nNo colon\r\n\r\nv\r\n--b--"]), "b").err(),
            Some(Error::BadHeaders)
        );
        assert_eq!(
            parse(
                &body(&["--b\r\nContent-Disposition: attachment\r\n\r\nv\r\n--b--"]),
                "b"
            )
            .err(),
            Some(Error::NoName)
        );
        // Bare LF line breaks are not CRLF: no delimiter line is found.
        assert_eq!(
            parse(
                &body(&["--b\nContent-Disposition: form-data; name=\"x\"\n\nv\n--b--"]),
                "b"
            )
            .err(),
            Some(Error::NoDelimiter)
        );
        let many: String = (0..=MAX_PARTS)
            .map(|i| format!("--b\r\nContent-Disposition: form-data; name=\"p{i}\"\r\n\r\nv\r\n"))
            .collect();
        assert_eq!(
            parse(&Bytes::from(format!("{many}--b--")), "b").err(),
            Some(Error::TooManyParts)
        );
    }

    #[test]
    fn split_search() {
        assert_eq!(find(b"aaab", b"ab", 0), Some(2));
        assert_eq!(find(b"ab", b"ab", 1), None);
        assert_eq!(find(b"", b"a", 0), None);
        assert_eq!(find(b"abc", b"c", 5), None);
    }
}
