//! Arbitrary bytes through each of the parser's entry points, checking what
//! the host relies on: no panic, offsets inside the input, a head length no
//! longer than the input, one framing per response, a chunk line that ends
//! in LF.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wasmloop_http_parser::*;

fuzz_target!(|data: &[u8]| {
    let mut out = vec![0u32; OUTPUT_WORDS];
    let max_headers = data
        .first()
        .map_or(MAX_HEADERS, |&b| b as usize % (MAX_HEADERS + 1));
    let mut input = data.to_vec();
    let status = parse_request_head(&mut input, max_headers, &mut out);
    if status > 0 {
        let len = status as usize;
        assert!(len <= data.len());
        let within = |at: u32, n: u32| (at as usize) + (n as usize) <= len;
        assert!(within(out[METHOD_AT], out[METHOD_LEN]) && within(out[TARGET_AT], out[TARGET_LEN]));
        let count = out[COUNT] as usize;
        assert!(count <= max_headers);
        for i in 0..count {
            let w = HEADERS_AT + 4 * i;
            assert!(within(out[w], out[w + 1]) && within(out[w + 2], out[w + 3]));
            let name = &input[out[w] as usize..][..out[w + 1] as usize];
            assert!(
                !name.iter().any(u8::is_ascii_uppercase),
                "names are lowercased"
            );
        }
        assert!(out[HOST] as usize <= count);
        assert!(out[VERSION] <= 1);
        let flags = out[FLAGS];
        assert!(flags & FLAG_CHUNKED == 0 || flags & FLAG_CONTENT_LENGTH == 0);
    } else {
        assert!(status >= Error::ChunkLine as i32);
    }
    let mut input = data.to_vec();
    let to_head = data.last().is_some_and(|&b| b & 1 == 1);
    let status = parse_response_head(&mut input, max_headers, to_head, &mut out);
    if status > 0 {
        let len = status as usize;
        assert!(len <= data.len());
        let within = |at: u32, n: u32| (at as usize) + (n as usize) <= len;
        assert!(within(out[REASON_AT], out[REASON_LEN]));
        assert!((100..1000).contains(&out[CODE]));
        let count = out[COUNT] as usize;
        assert!(count <= max_headers);
        for i in 0..count {
            let w = HEADERS_AT + 4 * i;
            assert!(within(out[w], out[w + 1]) && within(out[w + 2], out[w + 3]));
        }
        // Exactly one way to frame the body.
        let framing =
            out[FLAGS] & (FLAG_NO_BODY | FLAG_UNTIL_CLOSE | FLAG_CHUNKED | FLAG_CONTENT_LENGTH);
        assert!(framing.count_ones() == 1);
        assert!(!to_head || framing == FLAG_NO_BODY);
    } else {
        assert!(status >= Error::StatusLine as i32);
    }
    let line = parse_chunk_line(data, &mut out);
    if line > 0 {
        assert!(line as usize <= data.len() && data[line as usize - 1] == b'\n');
    }
    let trailers = parse_trailer_section(data, max_headers, &mut out);
    assert!(trailers as isize <= data.len() as isize);
});
