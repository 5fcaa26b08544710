//! The response side, for wasmloop's HTTP/1.1 client: httparse's
//! `Response` for the syntax, and RFC 9112 section 6.3's rules for how
//! long the body is, which a client must get right or read the next
//! response out of this one's body.
//!
//! [`parse_response_head`] writes the same output layout as the request
//! side (the table in lib.rs), with the status line in the request line's
//! words:
//!
//! ```text
//! word  1  CODE          the status code (100 to 999)
//! word  2  REASON_AT     offset of the reason phrase   word 3  REASON_LEN
//! word  6  VERSION       minor version: 0 (HTTP/1.0) or 1 (HTTP/1.1)
//! word  7  FLAGS         the Flag bits, with FLAG_NO_BODY or FLAG_UNTIL_CLOSE
//! words 8, 9             Content-Length (when FLAG_CONTENT_LENGTH)
//! word 11  COUNT, word 12 HEADERS_AT: as for requests
//! ```
//!
//! The body's framing, in RFC 9112 section 6.3's order:
//!
//! 1. a response to HEAD, and every 1xx, 204 and 304, has no body
//!    (`FLAG_NO_BODY`), whatever its fields say;
//! 2. Transfer-Encoding: chunked, last and once (`FLAG_CHUNKED`). Any other
//!    coding is refused (this client decodes none), as are Transfer-Encoding
//!    beside Content-Length (the section says "ought to be handled as an
//!    error": it is how responses are split) and Transfer-Encoding on
//!    HTTP/1.0 (faulty framing, section 6.1);
//! 3. a valid Content-Length (`FLAG_CONTENT_LENGTH`); an invalid one is an
//!    unrecoverable error, as the section requires of a user agent;
//! 4. otherwise the body ends when the server closes (`FLAG_UNTIL_CLOSE`),
//!    and the connection cannot be used again.
use core::mem::MaybeUninit;

use crate::{
    Error, Framing, COUNT, FLAGS, FLAG_CHUNKED, FLAG_CLOSE, FLAG_CONTENT_LENGTH, FLAG_HIGH_BYTES,
    FLAG_KEEP_ALIVE, HEADERS_AT, LENGTH_HI, LENGTH_LO, MAX_HEADERS, STATUS, VERSION,
};

/// Word 1 of a response: the status code.
pub const CODE: usize = 1;
/// Words 2 and 3 of a response: where the reason phrase is, and its length.
pub const REASON_AT: usize = 2;
pub const REASON_LEN: usize = 3;

/// The response has no body (a response to HEAD; 1xx, 204, 304).
pub const FLAG_NO_BODY: u32 = 64;
/// The body ends when the connection does: nothing else says its length.
pub const FLAG_UNTIL_CLOSE: u32 = 128;

/// Parses a response head from `input`, lowercasing field names in place,
/// and writes the result into `out`. `to_head` says the request was HEAD
/// (the response then has no body). Returns what it wrote to `out[STATUS]`:
/// the head's length, 0 if incomplete, or a negative `Error` code.
pub fn parse_response_head(
    input: &mut [u8],
    max_headers: usize,
    to_head: bool,
    out: &mut [u32],
) -> i32 {
    let max_headers = max_headers
        .min(MAX_HEADERS)
        .min((out.len().saturating_sub(HEADERS_AT)) / 4);
    for word in out.iter_mut().take(HEADERS_AT) {
        *word = 0;
    }
    let status = match parse_into(input, max_headers, to_head, out) {
        Ok(0) => 0,
        Ok(len) => {
            crate::lowercase_names(input, out);
            len as i32
        }
        Err(error) => error as i32,
    };
    out[STATUS] = status as u32;
    status
}

fn parse_into(
    input: &[u8],
    max_headers: usize,
    to_head: bool,
    out: &mut [u32],
) -> Result<usize, Error> {
    let base = input.as_ptr() as usize;
    let offset = |s: &[u8]| (s.as_ptr() as usize - base) as u32;
    let mut storage = [const { MaybeUninit::<httparse::Header>::uninit() }; MAX_HEADERS];
    let mut response = httparse::Response::new(&mut []);
    let config = httparse::ParserConfig::default();
    let len = match config.parse_response_with_uninit_headers(
        &mut response,
        input,
        &mut storage[..max_headers],
    ) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(0),
        Err(httparse::Error::Status) => return Err(Error::StatusLine),
        Err(error) => return Err(crate::syntax_error(error, b"")),
    };
    let code = response.code.unwrap_or(0);
    if code < 100 {
        return Err(Error::StatusLine);
    }
    let minor = response.version.unwrap_or(1);
    out[CODE] = code as u32;
    // httparse reports a missing (or undecodable) reason as a static "".
    let reason = response.reason.unwrap_or("").as_bytes();
    if !reason.is_empty() {
        out[REASON_AT] = offset(reason);
        out[REASON_LEN] = reason.len() as u32;
    }
    out[VERSION] = minor as u32;

    let mut framing = Framing::default();
    let headers = &*response.headers;
    for (i, field) in headers.iter().enumerate() {
        let at = HEADERS_AT + 4 * i;
        out[at] = offset(field.name.as_bytes());
        out[at + 1] = field.name.len() as u32;
        out[at + 2] = offset(field.value);
        out[at + 3] = field.value.len() as u32;
        framing.response_field(i, field.name.as_bytes(), field.value)?;
    }
    out[COUNT] = headers.len() as u32;
    let no_body = to_head || code < 200 || code == 204 || code == 304;
    let mut flags = framing.response_verdict(minor, no_body)?;
    if input[..len].iter().fold(0, |any, &b| any | b) >= 0x80 {
        flags |= FLAG_HIGH_BYTES;
    }
    out[FLAGS] = flags;
    if flags & FLAG_CONTENT_LENGTH != 0 {
        out[LENGTH_LO] = framing.length as u32;
        out[LENGTH_HI] = (framing.length >> 32) as u32;
    }
    Ok(len)
}

impl Framing {
    /// A response field: the framing and connection fields, nothing else
    /// (a response's Host or Expect means nothing). A bad Content-Length is
    /// remembered, not refused at once: a response without a body ignores it.
    fn response_field(&mut self, index: usize, name: &[u8], value: &[u8]) -> Result<(), Error> {
        match name.len() {
            4 | 6 => Ok(()),
            14 if name.eq_ignore_ascii_case(b"content-length") => {
                if self.content_length(value).is_err() {
                    self.bad_length = true;
                }
                Ok(())
            }
            _ => self.field(index, name, value),
        }
    }

    /// The framing of a response's body (section 6.3), or the rule it breaks.
    fn response_verdict(&self, minor: u8, no_body: bool) -> Result<u32, Error> {
        let mut flags = 0;
        if self.close {
            flags |= FLAG_CLOSE;
        }
        if self.keep_alive {
            flags |= FLAG_KEEP_ALIVE;
        }
        if no_body {
            // A HEAD response's Content-Length is the GET's: kept, not used.
            return Ok(flags | FLAG_NO_BODY);
        }
        if self.has_encoding {
            if self.has_length || self.bad_length {
                return Err(Error::LengthAndEncoding);
            }
            if minor == 0 || self.empty_encoding || self.chunked_count > 1 {
                return Err(Error::BadEncoding);
            }
            if self.unknown_coding || !self.last_coding_chunked {
                return Err(Error::UnknownEncoding);
            }
            return Ok(flags | FLAG_CHUNKED);
        }
        if self.bad_length {
            return Err(Error::ContentLength);
        }
        if self.has_length {
            return Ok(flags | FLAG_CONTENT_LENGTH);
        }
        Ok(flags | FLAG_UNTIL_CLOSE)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_as(head: &str, to_head: bool) -> (i32, Vec<u32>, Vec<u8>) {
        let mut input = head.as_bytes().to_vec();
        let mut out = vec![0u32; crate::OUTPUT_WORDS];
        let status = parse_response_head(&mut input, MAX_HEADERS, to_head, &mut out);
        (status, out, input)
    }

    fn parse(head: &str) -> (i32, Vec<u32>, Vec<u8>) {
        parse_as(head, false)
    }

    fn error(head: &str) -> i32 {
        parse(head).0
    }

    fn flags(head: &str) -> u32 {
        let (status, out, _) = parse(head);
        assert!(status > 0, "{head:?} gave {status}");
        out[FLAGS]
    }

    #[test]
    fn a_simple_response_reports_code_reason_and_fields() {
        let head = "HTTP/1.1 404 Not Found\r\nContent-Length: 3\r\nX-Thing: a b\r\n\r\nabc";
        let (status, out, input) = parse(head);
        assert_eq!(status as usize, head.len() - 3);
        assert_eq!(out[CODE], 404);
        assert_eq!(
            &input[out[REASON_AT] as usize..][..out[REASON_LEN] as usize],
            b"Not Found"
        );
        assert_eq!(out[VERSION], 1);
        assert_eq!(out[COUNT], 2);
        assert_eq!(out[FLAGS], FLAG_CONTENT_LENGTH);
        assert_eq!(out[LENGTH_LO], 3);
        let at = HEADERS_AT + 4;
        assert_eq!(
            &input[out[at] as usize..][..out[at + 1] as usize],
            b"x-thing"
        );
    }

    #[test]
    fn incomplete_is_zero_and_a_missing_reason_is_empty() {
        assert_eq!(error("HTTP/1.1 200 OK\r\nContent-Length: 3\r\n"), 0);
        assert_eq!(error("HTTP/1.1 20"), 0);
        let (status, out, _) = parse("HTTP/1.1 204\r\n\r\n");
        assert!(status > 0);
        assert_eq!((out[CODE], out[REASON_AT], out[REASON_LEN]), (204, 0, 0));
    }

    #[test]
    fn bad_status_lines_are_refused() {
        assert_eq!(error("HTTP/1.1 2000 OK\r\n\r\n"), Error::StatusLine as i32);
        assert_eq!(error("HTTP/1.1 abc OK\r\n\r\n"), Error::StatusLine as i32);
        assert_eq!(error("HTTP/1.1 099 Low\r\n\r\n"), Error::StatusLine as i32);
        assert_eq!(error("HTTP/2.0 200 OK\r\n\r\n"), Error::Version as i32);
        assert_eq!(
            error("HTTP/1.1 200 OK\r\nBad Name: x\r\n\r\n"),
            Error::HeaderName as i32
        );
        assert_eq!(
            error("HTTP/1.1 200 OK\r\nX: a\rb\r\n\r\n"),
            Error::HeaderValue as i32
        );
    }

    #[test]
    fn no_body_for_head_1xx_204_and_304_whatever_the_fields_say() {
        for head in [
            "HTTP/1.1 100 Continue\r\n\r\n",
            "HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n",
            "HTTP/1.1 204 No Content\r\nContent-Length: 10\r\n\r\n",
            "HTTP/1.1 304 Not Modified\r\nTransfer-Encoding: chunked\r\n\r\n",
        ] {
            assert_eq!(flags(head) & FLAG_NO_BODY, FLAG_NO_BODY, "{head:?}");
        }
        let (status, out, _) = parse_as("HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n", true);
        assert!(status > 0);
        assert_eq!(out[FLAGS], FLAG_NO_BODY);
        // Without HEAD the same head has a 99-byte body.
        assert_eq!(
            flags("HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n"),
            FLAG_CONTENT_LENGTH
        );
    }

    #[test]
    fn chunked_must_be_the_only_coding_once_and_alone() {
        assert_eq!(
            flags("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"),
            FLAG_CHUNKED
        );
        assert_eq!(
            flags("HTTP/1.1 200 OK\r\nTransfer-Encoding: ,chunked\r\n\r\n"),
            FLAG_CHUNKED
        );
        let both = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n";
        assert_eq!(error(both), Error::LengthAndEncoding as i32);
        let twice =
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert_eq!(error(twice), Error::BadEncoding as i32);
        let gzip = "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n";
        assert_eq!(error(gzip), Error::UnknownEncoding as i32);
        let not_last = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n";
        assert_eq!(error(not_last), Error::UnknownEncoding as i32);
        let on_10 = "HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert_eq!(error(on_10), Error::BadEncoding as i32);
        let empty = "HTTP/1.1 200 OK\r\nTransfer-Encoding: \r\n\r\n";
        assert_eq!(error(empty), Error::BadEncoding as i32);
    }

    #[test]
    fn content_length_rules_and_the_close_delimited_rest() {
        let (_, out, _) = parse("HTTP/1.1 200 OK\r\nContent-Length: 7, 7\r\n\r\n");
        assert_eq!((out[FLAGS], out[LENGTH_LO]), (FLAG_CONTENT_LENGTH, 7));
        assert_eq!(
            error("HTTP/1.1 200 OK\r\nContent-Length: 7\r\nContent-Length: 8\r\n\r\n"),
            Error::ContentLength as i32
        );
        assert_eq!(
            error("HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n"),
            Error::ContentLength as i32
        );
        // A bad length on a response without a body reads nothing, so it does not matter.
        assert!(parse("HTTP/1.1 304 Not Modified\r\nContent-Length: x\r\n\r\n").0 > 0);
        assert_eq!(flags("HTTP/1.1 200 OK\r\n\r\n"), FLAG_UNTIL_CLOSE);
        assert_eq!(
            flags("HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n"),
            FLAG_CONTENT_LENGTH | FLAG_KEEP_ALIVE
        );
        assert_eq!(
            flags("HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n"),
            FLAG_UNTIL_CLOSE | FLAG_CLOSE
        );
    }

    #[test]
    fn names_are_lowercased_and_high_bytes_flagged() {
        let (status, out, input) =
            parse("HTTP/1.1 200 OK\r\nX-Caf\u{e9}: ok\r\nContent-Length: 0\r\n\r\n");
        assert_eq!(
            status,
            Error::HeaderName as i32,
            "non-token name: {out:?} {input:?}"
        );
        let (status, out, input) =
            parse("HTTP/1.1 200 OK\r\nX-A: caf\u{e9}\r\nContent-Length: 0\r\n\r\n");
        assert!(status > 0);
        assert_eq!(out[FLAGS] & FLAG_HIGH_BYTES, FLAG_HIGH_BYTES);
        let at = HEADERS_AT;
        assert_eq!(&input[out[at] as usize..][..out[at + 1] as usize], b"x-a");
    }
}
