//! The HTTP/1.1 head parser of wasmloop's server and client: httparse (the
//! parser under hyper) for the syntax, and RFC 9112's framing rules on top.
//!
//! It owns one pure function per kind of input, each a function of bytes
//! alone (no state kept between calls, no allocation, no I/O):
//!
//! - [`parse_request_head`]: a request line and its header section, the
//!   framing facts the connection needs (body length or chunked, keep-alive,
//!   `Expect: 100-continue`, where the Host is) and a verdict on every rule
//!   RFC 9112 puts on framing;
//! - [`parse_response_head`] (response.rs): a status line and its header
//!   section, and how long the body is (RFC 9112 section 6.3), for the client;
//! - [`parse_chunk_line`]: one chunk-size line of a chunked body;
//! - [`parse_trailer_section`]: the trailer section after the last chunk.
//!
//! Results go into a caller's `[u32]` as offsets into the input, never as
//! strings: the host decodes only the fields it needs. The layout of that
//! array is the contract with `ts-host/src/http/parser.ts`:
//!
//! ```text
//! word  0  STATUS        head length in bytes (> 0), 0 = incomplete, < 0 = an Error code
//! word  1  METHOD        a Method code (0 = another method: read its bytes)
//! word  2  METHOD_AT     offset of the method     word 3  METHOD_LEN
//! word  4  TARGET_AT     offset of the target     word 5  TARGET_LEN
//! word  6  VERSION       minor version: 0 (HTTP/1.0) or 1 (HTTP/1.1)
//! word  7  FLAGS         the Flag bits
//! word  8  LENGTH_LO     Content-Length, low 32 bits (when FLAG_CONTENT_LENGTH)
//! word  9  LENGTH_HI     its high bits; the value saturates at 2^53
//! word 10  HOST          index of the Host field + 1 (0: none)
//! word 11  COUNT         number of header fields
//! word 12  HEADERS_AT    per field: name offset, name length, value offset, value length
//! ```
//!
//! Header names are lowercased in place (the input is the caller's copy):
//! a host that builds `Headers` needs them lowercased anyway, and doing it
//! here costs a pass over bytes that are already in cache.
#![cfg_attr(target_arch = "wasm32", no_std)]

use core::mem::MaybeUninit;

mod response;
#[cfg(target_arch = "wasm32")]
mod wasm;

pub use response::{
    parse_response_head, CODE, FLAG_NO_BODY, FLAG_UNTIL_CLOSE, REASON_AT, REASON_LEN,
};

pub const STATUS: usize = 0;
pub const METHOD: usize = 1;
pub const METHOD_AT: usize = 2;
pub const METHOD_LEN: usize = 3;
pub const TARGET_AT: usize = 4;
pub const TARGET_LEN: usize = 5;
pub const VERSION: usize = 6;
pub const FLAGS: usize = 7;
pub const LENGTH_LO: usize = 8;
pub const LENGTH_HI: usize = 9;
pub const HOST: usize = 10;
pub const COUNT: usize = 11;
pub const HEADERS_AT: usize = 12;

/// The most header fields one call can report; a request with more gets
/// `Error::TooManyHeaders` (431).
pub const MAX_HEADERS: usize = 256;
/// Words the output needs for `MAX_HEADERS` fields.
pub const OUTPUT_WORDS: usize = HEADERS_AT + 4 * MAX_HEADERS;

/// `Content-Length` was present (and valid): `LENGTH_LO`/`LENGTH_HI` hold it.
pub const FLAG_CONTENT_LENGTH: u32 = 1;
/// `Transfer-Encoding: chunked` (the only coding accepted).
pub const FLAG_CHUNKED: u32 = 2;
/// `Connection: close`.
pub const FLAG_CLOSE: u32 = 4;
/// `Connection: keep-alive` (what keeps an HTTP/1.0 connection open).
pub const FLAG_KEEP_ALIVE: u32 = 8;
/// `Expect: 100-continue` on an HTTP/1.1 request (ignored on 1.0, as RFC 9110 says).
pub const FLAG_CONTINUE: u32 = 16;
/// A byte >= 0x80 somewhere in the head: decode it byte by byte as Latin-1.
pub const FLAG_HIGH_BYTES: u32 = 32;

/// A Content-Length above this (2^53, beyond any body limit) is reported as it.
pub const LENGTH_SATURATED: u64 = 1 << 53;

/// Why a head is refused; the value is the negative code in `STATUS`. Each
/// maps to the response status in the comment (the host owns that table).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(i32)]
pub enum Error {
    /// A bad method token, target or separator in the request line (400).
    RequestLine = -1,
    /// Not `HTTP/1.0` or `HTTP/1.1`, and not shaped like any version (400).
    Version = -2,
    /// `HTTP/<digit>.<digit>` other than 1.0 and 1.1 (505).
    VersionNotSupported = -3,
    /// A bad byte in a field name, whitespace before the colon, or an
    /// obsolete line folding (400).
    HeaderName = -4,
    /// A control character in a field value (400).
    HeaderValue = -5,
    /// A CR not followed by LF (400).
    NewLine = -6,
    /// More fields than the caller allowed (431).
    TooManyHeaders = -7,
    /// A Content-Length that is not digits, or two that differ (400).
    ContentLength = -8,
    /// Both Content-Length and Transfer-Encoding (400).
    LengthAndEncoding = -9,
    /// A transfer coding other than chunked (501).
    UnknownEncoding = -10,
    /// chunked not last, chunked twice, an empty or malformed coding list,
    /// or Transfer-Encoding on HTTP/1.0 (400).
    BadEncoding = -11,
    /// An HTTP/1.1 request without exactly one Host, or a Host with bytes
    /// no authority has (400).
    Host = -12,
    /// An expectation other than 100-continue (417).
    Expectation = -13,
    /// A target in none of the forms a server accepts (400).
    Target = -14,
    /// CONNECT: this server is not a proxy (501).
    Connect = -15,
    /// A chunk-size line that is not hex digits, optional extensions and CRLF (400).
    ChunkLine = -16,
    /// A response's status line: not a three-digit code from 100, or a bad
    /// separator (the client refuses the response).
    StatusLine = -17,
}

/// Method codes in `METHOD`.
pub const METHODS: [&[u8]; 9] = [
    b"", b"GET", b"HEAD", b"POST", b"PUT", b"DELETE", b"OPTIONS", b"PATCH", b"TRACE",
];

const fn byte_class(allowed: &[u8]) -> [bool; 256] {
    let mut map = [false; 256];
    let mut i = 0;
    while i < allowed.len() {
        map[allowed[i] as usize] = true;
        i += 1;
    }
    map
}

/// Bytes a Host field may hold: reg-name, IP literals and a port (RFC 3986).
static HOST_BYTES: [bool; 256] = byte_class(
    b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~!$&'()*+,;=:[]%",
);

/// Parses a request head from `input`, lowercasing field names in place,
/// and writes the result into `out` (at least `HEADERS_AT + 4 * max_headers`
/// words). Returns what it wrote to `out[STATUS]`.
pub fn parse_request_head(input: &mut [u8], max_headers: usize, out: &mut [u32]) -> i32 {
    let max_headers = max_headers
        .min(MAX_HEADERS)
        .min((out.len().saturating_sub(HEADERS_AT)) / 4);
    let status = match parse_into(input, max_headers, out) {
        Ok(0) => 0,
        Ok(len) => {
            lowercase_names(input, out);
            len as i32
        }
        Err(error) => error as i32,
    };
    out[STATUS] = status as u32;
    status
}

fn parse_into(input: &[u8], max_headers: usize, out: &mut [u32]) -> Result<usize, Error> {
    let base = input.as_ptr() as usize;
    let offset = |s: &[u8]| (s.as_ptr() as usize - base) as u32;
    let mut storage = [const { MaybeUninit::<httparse::Header>::uninit() }; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut []);
    let len = match request.parse_with_uninit_headers(input, &mut storage[..max_headers]) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(0),
        Err(error) => return Err(syntax_error(error, input)),
    };
    let method = request.method.unwrap_or("").as_bytes();
    let target = request.path.unwrap_or("").as_bytes();
    let minor = request.version.unwrap_or(1);
    let code = METHODS.iter().position(|m| *m == method).unwrap_or(0);
    out[METHOD] = code as u32;
    out[METHOD_AT] = offset(method);
    out[METHOD_LEN] = method.len() as u32;
    out[TARGET_AT] = offset(target);
    out[TARGET_LEN] = target.len() as u32;
    out[VERSION] = minor as u32;
    check_target(method, target)?;

    let mut framing = Framing::default();
    let headers = &*request.headers;
    for (i, field) in headers.iter().enumerate() {
        let at = HEADERS_AT + 4 * i;
        out[at] = offset(field.name.as_bytes());
        out[at + 1] = field.name.len() as u32;
        out[at + 2] = offset(field.value);
        out[at + 3] = field.value.len() as u32;
        framing.field(i, field.name.as_bytes(), field.value)?;
    }
    out[COUNT] = headers.len() as u32;
    let mut flags = framing.verdict(minor)?;
    if input[..len].iter().fold(0, |any, &b| any | b) >= 0x80 {
        flags |= FLAG_HIGH_BYTES;
    }
    out[FLAGS] = flags;
    out[LENGTH_LO] = framing.length as u32;
    out[LENGTH_HI] = (framing.length >> 32) as u32;
    out[HOST] = framing.host;
    Ok(len)
}

/// httparse's error, refined where RFC 9112 asks for a finer status.
fn syntax_error(error: httparse::Error, input: &[u8]) -> Error {
    match error {
        httparse::Error::HeaderName => Error::HeaderName,
        httparse::Error::HeaderValue => Error::HeaderValue,
        httparse::Error::NewLine => Error::NewLine,
        httparse::Error::TooManyHeaders => Error::TooManyHeaders,
        httparse::Error::Version if names_other_version(input) => Error::VersionNotSupported,
        httparse::Error::Version => Error::Version,
        _ => Error::RequestLine,
    }
}

/// True if the request line is three parts whose last is `HTTP/<digit>.<digit>`
/// (a version, just not ours).
fn names_other_version(input: &[u8]) -> bool {
    let start = input
        .iter()
        .position(|&b| b != b'\r' && b != b'\n')
        .unwrap_or(input.len());
    let line = &input[start..];
    let line = &line[..line.iter().position(|&b| b == b'\n').unwrap_or(line.len())];
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let mut parts = line.split(|&b| b == b' ');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(_), Some(_), Some(v), None) => {
            v.len() == 8
                && &v[..5] == b"HTTP/"
                && v[5].is_ascii_digit()
                && v[6] == b'.'
                && v[7].is_ascii_digit()
        }
        _ => false,
    }
}

/// RFC 9112 section 3.2: origin-form, absolute-form (http and https),
/// asterisk-form for OPTIONS; authority-form is CONNECT's, which a server
/// that is not a proxy does not implement.
fn check_target(method: &[u8], target: &[u8]) -> Result<(), Error> {
    if method == b"CONNECT" {
        return Err(Error::Connect);
    }
    match target.first() {
        Some(b'/') => Ok(()),
        Some(b'*') if target.len() == 1 && method == b"OPTIONS" => Ok(()),
        _ if starts_with_ignore_case(target, b"http://")
            || starts_with_ignore_case(target, b"https://") =>
        {
            Ok(())
        }
        _ => Err(Error::Target),
    }
}

fn starts_with_ignore_case(bytes: &[u8], prefix: &[u8]) -> bool {
    bytes.len() >= prefix.len() && bytes[..prefix.len()].eq_ignore_ascii_case(prefix)
}

/// What the header section says about framing, gathered field by field.
#[derive(Default)]
struct Framing {
    /// Content-Length, once one was seen.
    length: u64,
    has_length: bool,
    /// A Content-Length that broke the rules (responses decide later whether it matters).
    bad_length: bool,
    /// Transfer-Encoding fields seen, and what their codings were.
    has_encoding: bool,
    chunked_count: u32,
    last_coding_chunked: bool,
    unknown_coding: bool,
    empty_encoding: bool,
    close: bool,
    keep_alive: bool,
    expect_continue: bool,
    other_expectation: bool,
    /// Host field index + 1, and how many there were.
    host: u32,
    hosts: u32,
    bad_host: bool,
}

impl Framing {
    fn field(&mut self, index: usize, name: &[u8], value: &[u8]) -> Result<(), Error> {
        // Dispatch on length first: most fields are none of these.
        match name.len() {
            4 if name.eq_ignore_ascii_case(b"host") => {
                self.hosts += 1;
                self.host = index as u32 + 1;
                self.bad_host |= !value.iter().all(|&b| HOST_BYTES[b as usize]);
            }
            6 if name.eq_ignore_ascii_case(b"expect") => {
                let value = trim(value);
                if value.eq_ignore_ascii_case(b"100-continue") {
                    self.expect_continue = true;
                } else if !value.is_empty() {
                    self.other_expectation = true;
                }
            }
            10 if name.eq_ignore_ascii_case(b"connection") => {
                for token in value.split(|&b| b == b',').map(trim) {
                    if token.eq_ignore_ascii_case(b"close") {
                        self.close = true;
                    } else if token.eq_ignore_ascii_case(b"keep-alive") {
                        self.keep_alive = true;
                    }
                }
            }
            14 if name.eq_ignore_ascii_case(b"content-length") => self.content_length(value)?,
            17 if name.eq_ignore_ascii_case(b"transfer-encoding") => self.transfer_encoding(value),
            _ => {}
        }
        Ok(())
    }

    /// RFC 9110 section 8.6: digits; a list of identical values (or the same
    /// value in several fields) is that value; anything else is an error.
    fn content_length(&mut self, value: &[u8]) -> Result<(), Error> {
        for element in value.split(|&b| b == b',').map(trim) {
            if element.is_empty() || !element.iter().all(u8::is_ascii_digit) {
                return Err(Error::ContentLength);
            }
            let mut n: u64 = 0;
            for &digit in element {
                n = (n * 10 + (digit - b'0') as u64).min(LENGTH_SATURATED);
            }
            if self.has_length && n != self.length {
                return Err(Error::ContentLength);
            }
            self.has_length = true;
            self.length = n;
        }
        Ok(())
    }

    /// RFC 9112 section 6.1: the codings in order, across fields; chunked
    /// must be last and only once; this server decodes no other coding.
    fn transfer_encoding(&mut self, value: &[u8]) {
        self.has_encoding = true;
        let mut any = false;
        for element in value.split(|&b| b == b',').map(trim) {
            if element.is_empty() {
                continue; // the list syntax allows empty elements
            }
            any = true;
            if element.eq_ignore_ascii_case(b"chunked") {
                self.chunked_count += 1;
                self.last_coding_chunked = true;
            } else {
                // A parameter on chunked makes it an unknown coding too.
                self.unknown_coding = true;
                self.last_coding_chunked = false;
            }
        }
        self.empty_encoding |= !any;
    }

    /// The framing of the request, or the rule it breaks.
    fn verdict(&self, minor: u8) -> Result<u32, Error> {
        let mut flags = 0;
        if self.has_encoding {
            if self.has_length {
                return Err(Error::LengthAndEncoding);
            }
            // RFC 9112 section 6.1: Transfer-Encoding on HTTP/1.0 is faulty framing.
            if minor == 0
                || self.empty_encoding
                || self.chunked_count > 1
                || !self.last_coding_chunked && self.chunked_count == 1
            {
                return Err(Error::BadEncoding);
            }
            if self.unknown_coding {
                return Err(if self.last_coding_chunked {
                    Error::UnknownEncoding
                } else {
                    Error::BadEncoding
                });
            }
            flags |= FLAG_CHUNKED;
        } else if self.has_length {
            flags |= FLAG_CONTENT_LENGTH;
        }
        // RFC 9112 section 3.2: exactly one Host on HTTP/1.1.
        if self.bad_host || self.hosts > 1 || (minor == 1 && self.hosts == 0) {
            return Err(Error::Host);
        }
        if self.other_expectation {
            return Err(Error::Expectation);
        }
        if self.expect_continue && minor == 1 {
            flags |= FLAG_CONTINUE;
        }
        if self.close {
            flags |= FLAG_CLOSE;
        }
        if self.keep_alive {
            flags |= FLAG_KEEP_ALIVE;
        }
        Ok(flags)
    }
}

/// Trims optional whitespace (SP and HTAB) from both ends.
fn trim(mut bytes: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = bytes {
        bytes = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = bytes {
        bytes = rest;
    }
    bytes
}

fn lowercase_names(input: &mut [u8], out: &[u32]) {
    let count = out[COUNT] as usize;
    for i in 0..count {
        let at = out[HEADERS_AT + 4 * i] as usize;
        let len = out[HEADERS_AT + 4 * i + 1] as usize;
        input[at..at + len].make_ascii_lowercase();
    }
}

/// Parses one chunk-size line at the start of `input`: writes the line's
/// length (CRLF included) to `out[0]` and the chunk size to `out[1]` (low
/// 32 bits) and `out[2]`; returns the line length, 0 if the line is not
/// complete, or `Error::ChunkLine`.
///
/// On top of httparse: at least one hex digit, and no control character
/// (a bare LF above all) in the extensions, which httparse skips unread.
pub fn parse_chunk_line(input: &[u8], out: &mut [u32]) -> i32 {
    let status = match httparse::parse_chunk_size(input) {
        Ok(httparse::Status::Complete((len, size))) => {
            let line = &input[..len - 2];
            let digits = line.first().is_some_and(u8::is_ascii_hexdigit);
            if !digits || line.iter().any(|&b| b < 0x20 && b != b'\t' || b == 0x7f) {
                Error::ChunkLine as i32
            } else {
                out[1] = size as u32;
                out[2] = (size >> 32) as u32;
                len as i32
            }
        }
        Ok(httparse::Status::Partial) => 0,
        Err(httparse::InvalidChunkSize) => Error::ChunkLine as i32,
    };
    out[0] = status as u32;
    status
}

/// Parses the trailer section after the last chunk (fields, then an empty
/// line): returns its length, 0 if incomplete, or an error. The fields are
/// checked and dropped (a `Request` has no trailers); `out[COUNT]` says how
/// many there were.
pub fn parse_trailer_section(input: &[u8], max_headers: usize, out: &mut [u32]) -> i32 {
    let mut storage = [const { MaybeUninit::<httparse::Header>::uninit() }; MAX_HEADERS];
    // parse_headers wants initialized storage; trailers are rare, filling it is cheap.
    let storage = initialized(&mut storage[..max_headers.min(MAX_HEADERS)]);
    let status = match httparse::parse_headers(input, storage) {
        Ok(httparse::Status::Complete((len, fields))) => {
            out[COUNT] = fields.len() as u32;
            len as i32
        }
        Ok(httparse::Status::Partial) => 0,
        Err(error) => syntax_error(error, b"") as i32,
    };
    out[STATUS] = status as u32;
    status
}

/// Fills header storage with empty fields (what `parse_headers` expects).
fn initialized<'a, 'b>(
    storage: &'a mut [MaybeUninit<httparse::Header<'b>>],
) -> &'a mut [httparse::Header<'b>] {
    for slot in storage.iter_mut() {
        slot.write(httparse::EMPTY_HEADER);
    }
    // SAFETY: every element was written just above.
    unsafe {
        &mut *(storage as *mut [MaybeUninit<httparse::Header<'b>>] as *mut [httparse::Header<'b>])
    }
}

#[cfg(test)]
mod tests;
