//! The parser's contract, rule by rule.
use super::*;

fn parse(head: &str) -> (i32, Vec<u32>, Vec<u8>) {
    let mut input = head.as_bytes().to_vec();
    let mut out = vec![0u32; OUTPUT_WORDS];
    let status = parse_request_head(&mut input, MAX_HEADERS, &mut out);
    (status, out, input)
}

fn error(head: &str) -> i32 {
    parse(head).0
}

fn field(out: &[u32], input: &[u8], i: usize) -> (String, String) {
    let at = HEADERS_AT + 4 * i;
    let slice =
        |a: u32, l: u32| String::from_utf8_lossy(&input[a as usize..(a + l) as usize]).into_owned();
    (slice(out[at], out[at + 1]), slice(out[at + 2], out[at + 3]))
}

#[test]
fn a_simple_get_reports_offsets_and_lowercased_names() {
    let head = "GET /a?b HTTP/1.1\r\nHost: x\r\nX-Thing: V a l\r\n\r\nbody";
    let (status, out, input) = parse(head);
    assert_eq!(status as usize, head.len() - 4);
    assert_eq!(out[METHOD], 1);
    assert_eq!(
        &input[out[TARGET_AT] as usize..][..out[TARGET_LEN] as usize],
        b"/a?b"
    );
    assert_eq!(out[VERSION], 1);
    assert_eq!(out[COUNT], 2);
    assert_eq!(out[HOST], 1);
    assert_eq!(field(&out, &input, 1), ("x-thing".into(), "V a l".into()));
    assert_eq!(out[FLAGS], 0);
}

#[test]
fn an_incomplete_head_is_zero() {
    assert_eq!(error("GET / HTTP/1.1\r\nHost: x\r\n"), 0);
    assert_eq!(error("GE"), 0);
    assert_eq!(error(""), 0);
}

#[test]
fn leading_empty_lines_are_skipped() {
    let (status, out, _) = parse("\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(status > 0);
    assert_eq!(out[METHOD_AT], 4);
}

#[test]
fn content_length_and_its_lists() {
    let (_, out, _) = parse("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 12\r\n\r\n");
    assert_eq!(out[FLAGS] & FLAG_CONTENT_LENGTH, FLAG_CONTENT_LENGTH);
    assert_eq!(out[LENGTH_LO], 12);
    let (status, out, _) =
        parse("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5, 5\r\ncontent-length: 5\r\n\r\n");
    assert!(status > 0);
    assert_eq!(out[LENGTH_LO], 5);
    assert_eq!(
        error("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n"),
        Error::ContentLength as i32
    );
    assert_eq!(
        error("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: +5\r\n\r\n"),
        Error::ContentLength as i32
    );
    assert_eq!(
        error("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: \r\n\r\n"),
        Error::ContentLength as i32
    );
    assert_eq!(
        error("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0x10\r\n\r\n"),
        Error::ContentLength as i32
    );
    let (_, out, _) =
        parse("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999999\r\n\r\n");
    assert_eq!(
        (out[LENGTH_HI] as u64) << 32 | out[LENGTH_LO] as u64,
        LENGTH_SATURATED
    );
}

#[test]
fn transfer_encoding_rules() {
    let (_, out, _) = parse("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: Chunked\r\n\r\n");
    assert_eq!(out[FLAGS] & FLAG_CHUNKED, FLAG_CHUNKED);
    let te = |v: &str| {
        error(&format!(
            "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: {v}\r\n\r\n"
        ))
    };
    assert_eq!(te("gzip, chunked"), Error::UnknownEncoding as i32);
    assert_eq!(te("chunked, gzip"), Error::BadEncoding as i32);
    assert_eq!(te("gzip"), Error::BadEncoding as i32);
    assert_eq!(te("chunked, chunked"), Error::BadEncoding as i32);
    assert_eq!(te(""), Error::BadEncoding as i32);
    assert_eq!(te("chunked;a=b"), Error::BadEncoding as i32);
    assert_eq!(
        error(
            "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n"
        ),
        Error::LengthAndEncoding as i32
    );
    assert_eq!(
        error("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n"),
        Error::BadEncoding as i32
    );
    // Across two fields, in order.
    assert_eq!(
        error("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n\r\n"),
        Error::BadEncoding as i32
    );
}

#[test]
fn syntax_errors_from_httparse() {
    assert_eq!(
        error("GET / HTTP/1.1\r\nHost : x\r\n\r\n"),
        Error::HeaderName as i32
    );
    assert_eq!(
        error("GET / HTTP/1.1\r\nHost: x\r\nA: b\r\n  folded\r\n\r\n"),
        Error::HeaderName as i32
    );
    assert_eq!(
        error("GET / HTTP/1.1\r\nHost: x\rY: z\r\n\r\n"),
        Error::HeaderValue as i32
    );
    assert_eq!(
        error("GET / HTTP/1.1\r\nHost: x\r\nA: b\x01\r\n\r\n"),
        Error::HeaderValue as i32
    );
    assert_eq!(
        error("G(T / HTTP/1.1\r\nHost: x\r\n\r\n"),
        Error::RequestLine as i32
    );
    assert_eq!(
        error("GET  / HTTP/1.1\r\nHost: x\r\n\r\n"),
        Error::RequestLine as i32
    );
    assert_eq!(
        error("GET / HTTP/2.0\r\nHost: x\r\n\r\n"),
        Error::VersionNotSupported as i32
    );
    assert_eq!(
        error("GET / HTTQ/1.1\r\nHost: x\r\n\r\n"),
        Error::Version as i32
    );
    assert_eq!(
        error("GET /a b HTTP/1.1\r\nHost: x\r\n\r\n"),
        Error::Version as i32
    );
    assert_eq!(
        error("GET x HTTP/1.1\r\nHost: x\r\n\r\n"),
        Error::Target as i32
    );
    assert!(error("OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n") > 0);
    assert!(error("GET http://a/b HTTP/1.1\r\nHost: a\r\n\r\n") > 0);
    assert_eq!(
        error("CONNECT a:443 HTTP/1.1\r\nHost: a\r\n\r\n"),
        Error::Connect as i32
    );
}

#[test]
fn host_rules() {
    assert_eq!(error("GET / HTTP/1.1\r\n\r\n"), Error::Host as i32);
    assert_eq!(
        error("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"),
        Error::Host as i32
    );
    assert_eq!(
        error("GET / HTTP/1.1\r\nHost: a/b\r\n\r\n"),
        Error::Host as i32
    );
    assert!(error("GET / HTTP/1.0\r\n\r\n") > 0);
    assert!(error("GET / HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n") > 0);
}

#[test]
fn connection_and_expect() {
    let (_, out, _) = parse("GET / HTTP/1.1\r\nHost: x\r\nConnection: Keep-Alive, CLOSE\r\nExpect: 100-Continue\r\n\r\n");
    assert_eq!(out[FLAGS], FLAG_CLOSE | FLAG_KEEP_ALIVE | FLAG_CONTINUE);
    let (_, out, _) = parse("GET / HTTP/1.0\r\nExpect: 100-continue\r\n\r\n");
    assert_eq!(out[FLAGS], 0);
    assert_eq!(
        error("GET / HTTP/1.1\r\nHost: x\r\nExpect: tea\r\n\r\n"),
        Error::Expectation as i32
    );
}

#[test]
fn too_many_headers() {
    let mut out = vec![0u32; OUTPUT_WORDS];
    let mut input = b"GET / HTTP/1.1\r\nHost: x\r\nA: 1\r\nB: 2\r\n\r\n".to_vec();
    assert_eq!(
        parse_request_head(&mut input, 2, &mut out),
        Error::TooManyHeaders as i32
    );
    assert!(parse_request_head(&mut input, 3, &mut out) > 0);
}

#[test]
fn high_bytes_are_flagged() {
    let mut input = b"GET / HTTP/1.1\r\nHost: x\r\nA: \xe9t\xe9\r\n\r\n".to_vec();
    let mut out = vec![0u32; OUTPUT_WORDS];
    assert!(parse_request_head(&mut input, MAX_HEADERS, &mut out) > 0);
    assert_eq!(out[FLAGS] & FLAG_HIGH_BYTES, FLAG_HIGH_BYTES);
}

#[test]
fn chunk_lines() {
    let mut out = [0u32; 3];
    assert_eq!(parse_chunk_line(b"1a\r\nxyz", &mut out), 4);
    assert_eq!(out[1], 26);
    assert_eq!(parse_chunk_line(b"5;name=value\r\n", &mut out), 14);
    assert_eq!(out[1], 5);
    assert_eq!(parse_chunk_line(b"5", &mut out), 0);
    assert_eq!(parse_chunk_line(b"\r\n", &mut out), Error::ChunkLine as i32);
    assert_eq!(
        parse_chunk_line(b"5;a\nb\r\n", &mut out),
        Error::ChunkLine as i32
    );
    assert_eq!(
        parse_chunk_line(b"z\r\n", &mut out),
        Error::ChunkLine as i32
    );
    assert_eq!(
        parse_chunk_line(b"fffffffffffffffff\r\n", &mut out),
        Error::ChunkLine as i32
    );
    assert_eq!(parse_chunk_line(b"ffffffffff\r\n", &mut out), 12);
    assert_eq!((out[2], out[1]), (0xff, 0xffffffff));
}

#[test]
fn trailer_sections() {
    let mut out = vec![0u32; OUTPUT_WORDS];
    assert_eq!(parse_trailer_section(b"\r\n", 8, &mut out), 2);
    assert_eq!(parse_trailer_section(b"A: b\r\n\r\nnext", 8, &mut out), 8);
    assert_eq!(out[COUNT], 1);
    assert_eq!(parse_trailer_section(b"A: b\r\n", 8, &mut out), 0);
    assert_eq!(
        parse_trailer_section(b"A : b\r\n\r\n", 8, &mut out),
        Error::HeaderName as i32
    );
}
