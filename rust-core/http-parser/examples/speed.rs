//! Native timing of one request head through the wrapper (compare with the
//! Wasm figures of bench/http/parser-candidates.mjs).
use std::time::Instant;
fn main() {
    let head = std::fs::read(std::env::args().nth(1).expect("a file with a request head")).unwrap();
    let mut out = vec![0u32; wasmloop_http_parser::OUTPUT_WORDS];
    let mut input = head.clone();
    let n = 1_000_000;
    let t = Instant::now();
    for _ in 0..n {
        input.copy_from_slice(&head);
        std::hint::black_box(wasmloop_http_parser::parse_request_head(
            &mut input, 100, &mut out,
        ));
    }
    println!(
        "{:.0} ns per head; httparse alone {:.0} ns",
        t.elapsed().as_nanos() as f64 / n as f64,
        httparse_alone(&head)
    );
}

#[allow(dead_code)]
fn httparse_alone(head: &[u8]) -> f64 {
    let n = 1_000_000;
    let t = Instant::now();
    for _ in 0..n {
        let mut headers = [httparse::EMPTY_HEADER; 100];
        let mut req = httparse::Request::new(&mut headers);
        std::hint::black_box(req.parse(std::hint::black_box(head)).unwrap());
    }
    t.elapsed().as_nanos() as f64 / n as f64
}
