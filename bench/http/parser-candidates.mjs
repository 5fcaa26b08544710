// The request-head parsers wasmloop's HTTP server could use, measured the
// way the server uses them: the request bytes copied into the parser, the
// method, target and every header name and value out as JS strings.
//
//   node bench/http/parser-candidates.mjs [path to undici's package]
//
// Candidates: httparse in Wasm (with and without simd128), llhttp in Wasm
// (undici's build, with and without simd128), and as a reference Node's own
// native llhttp binding (what node:http uses; not portable).
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

const here = (p) => fileURLToPath(new URL(p, import.meta.url));
const REALISTIC =
  'GET /api/v1/items?page=2&sort=name HTTP/1.1\r\n' +
  'Host: example.test:8080\r\n' +
  'User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36\r\n' +
  'Accept: text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8\r\n' +
  'Accept-Language: en-US,en;q=0.9\r\n' +
  'Accept-Encoding: gzip, deflate, br\r\n' +
  'Connection: keep-alive\r\n' +
  'Referer: http://example.test:8080/index.html\r\n' +
  'Cookie: session=4f2a9c1e7b3d4e5f; theme=dark\r\n' +
  'Upgrade-Insecure-Requests: 1\r\n' +
  'Sec-Fetch-Mode: navigate\r\n' +
  'Cache-Control: max-age=0\r\n\r\n';
const TINY = 'GET / HTTP/1.1\r\nHost: x\r\n\r\n';

const latin1Decoder = new TextDecoder('latin1');
/** Bytes to a string, one char per byte (ASCII here). */
function latin1(bytes, start, end) {
  if (end - start < 24) {
    let s = '';
    for (let i = start; i < end; i++) s += String.fromCharCode(bytes[i]);
    return s;
  }
  return latin1Decoder.decode(bytes.subarray(start, end));
}

// ------------------------------------------------------------ httparse
function httparse(file) {
  const module = new WebAssembly.Module(readFileSync(file));
  const { exports } = new WebAssembly.Instance(module, {});
  const memory = exports.memory;
  const input = new Uint8Array(memory.buffer, exports.input_area(), exports.input_capacity());
  const out = new Uint32Array(memory.buffer, exports.output_area(), 12 + 4 * 256);
  const parse = exports.parse_request;
  return {
    /** Strings decoded field by field from the caller's bytes. */
    fields(bytes) {
      input.set(bytes);
      const status = parse(bytes.length, 100);
      if (status <= 0) throw new Error(`httparse: ${status}`);
      const head = input; // names were lowercased in the module's copy
      const method = latin1(head, out[2], out[2] + out[3]);
      const url = latin1(head, out[4], out[4] + out[5]);
      const count = out[11];
      const headers = new Array(count * 2);
      for (let i = 0, w = 12; i < count; i++, w += 4) {
        headers[2 * i] = latin1(head, out[w], out[w] + out[w + 1]);
        headers[2 * i + 1] = latin1(head, out[w + 2], out[w + 2] + out[w + 3]);
      }
      return { method, url, headers };
    },
    /** One string for the whole head, then slices of it. */
    slices(bytes) {
      input.set(bytes);
      const status = parse(bytes.length, 100);
      if (status <= 0) throw new Error(`httparse: ${status}`);
      const text = latin1Decoder.decode(input.subarray(0, status));
      const method = text.slice(out[2], out[2] + out[3]);
      const url = text.slice(out[4], out[4] + out[5]);
      const count = out[11];
      const headers = new Array(count * 2);
      for (let i = 0, w = 12; i < count; i++, w += 4) {
        headers[2 * i] = text.slice(out[w], out[w] + out[w + 1]);
        headers[2 * i + 1] = text.slice(out[w + 2], out[w + 2] + out[w + 3]);
      }
      return { method, url, headers };
    },
    /** Node's Buffer latin1Slice per field (Node and Bun only). */
    native(bytes) {
      input.set(bytes);
      const status = parse(bytes.length, 100);
      if (status <= 0) throw new Error(`httparse: ${status}`);
      const slice = Buffer.prototype.latin1Slice;
      const method = slice.call(input, out[2], out[2] + out[3]);
      const url = slice.call(input, out[4], out[4] + out[5]);
      const count = out[11];
      const headers = new Array(count * 2);
      for (let i = 0, w = 12; i < count; i++, w += 4) {
        headers[2 * i] = slice.call(input, out[w], out[w] + out[w + 1]);
        headers[2 * i + 1] = slice.call(input, out[w + 2], out[w + 2] + out[w + 3]);
      }
      return { method, url, headers };
    },
    /** Only the parse: no strings at all (the framing facts are numbers). */
    parseOnly(bytes) {
      input.set(bytes);
      return parse(bytes.length, 100);
    },
  };
}

// -------------------------------------------------------------- llhttp
function llhttp(file) {
  const require = createRequire(import.meta.url);
  const bytes = require(file);
  let current = null;
  let buf = null;
  let base = 0;
  const env = {
    wasm_on_url: (_p, at, len) => {
      current.url = latin1(buf, at - base, at - base + len);
      return 0;
    },
    wasm_on_status: () => 0,
    wasm_on_message_begin: () => 0,
    wasm_on_header_field: (_p, at, len) => {
      current.headers.push(latin1(buf, at - base, at - base + len).toLowerCase());
      return 0;
    },
    wasm_on_header_value: (_p, at, len) => {
      current.headers.push(latin1(buf, at - base, at - base + len));
      return 0;
    },
    wasm_on_headers_complete: () => {
      return 0;
    },
    wasm_on_body: () => 0,
    wasm_on_message_complete: () => 0,
  };
  const { exports } = new WebAssembly.Instance(new WebAssembly.Module(bytes), { env });
  const ptr = exports.llhttp_alloc(0 /* REQUEST */);
  const size = 64 * 1024;
  const at = exports.malloc(size);
  base = at;
  const methods = ['DELETE', 'GET', 'HEAD', 'POST', 'PUT'];
  return {
    fields(bytes) {
      const mem = new Uint8Array(exports.memory.buffer, at, size);
      mem.set(bytes);
      buf = mem;
      current = { method: '', url: '', headers: [] };
      const rc = exports.llhttp_execute(ptr, at, bytes.length);
      if (rc !== 0) throw new Error(`llhttp: ${rc}`);
      current.method = methods[exports.llhttp_get_method(ptr)] ?? 'OTHER';
      return current;
    },
  };
}

// --------------------------------------------------- Node's native llhttp
function nodeNative() {
  const { HTTPParser } = process.binding('http_parser');
  const parser = new HTTPParser();
  let result = null;
  parser[HTTPParser.kOnHeadersComplete] = (_versionMajor, _versionMinor, headers, method, url) => {
    result = { method, url, headers };
  };
  parser[HTTPParser.kOnMessageComplete] = () => {};
  parser[HTTPParser.kOnBody] = () => {};
  parser[HTTPParser.kOnExecute] = () => {};
  parser.initialize(HTTPParser.REQUEST, {});
  return {
    fields(bytes) {
      parser.execute(bytes);
      return result;
    },
  };
}

function bench(name, fn, bytes) {
  const buffer = Buffer.from(bytes);
  for (let i = 0; i < 20000; i++) fn(buffer);
  const rounds = [];
  for (let r = 0; r < 5; r++) {
    const n = 200000;
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < n; i++) fn(buffer);
    rounds.push(Number(process.hrtime.bigint() - t0) / n);
  }
  rounds.sort((a, b) => a - b);
  return { name, ns: rounds[2] };
}

const undici = process.argv[2] ?? '/tmp/httpbench/package';
const target = (v) =>
  here(`../../rust-core/http-parser/target/${v}/wasm32-unknown-unknown/release/wasmloop_http_parser.wasm`);
const candidates = [];
for (const v of ['plain', 'simd']) {
  const p = httparse(target(v));
  candidates.push([`httparse ${v}: parse only, no strings`, p.parseOnly]);
  candidates.push([`httparse ${v}: strings per field`, p.fields]);
  candidates.push([`httparse ${v}: one head string, sliced`, p.slices]);
  candidates.push([`httparse ${v}: Buffer latin1Slice per field`, p.native]);
}
candidates.push(['llhttp wasm (undici)', llhttp(`${undici}/lib/llhttp/llhttp-wasm.js`).fields]);
candidates.push(['llhttp wasm simd (undici)', llhttp(`${undici}/lib/llhttp/llhttp_simd-wasm.js`).fields]);
candidates.push(["Node's native llhttp (reference)", nodeNative().fields]);

// Check each gives the same answer before timing it.
for (const [name, fn] of candidates) {
  const r = fn(Buffer.from(REALISTIC));
  if (typeof r === 'number') continue;
  const flat = r.headers.length === 22 && r.url === '/api/v1/items?page=2&sort=name';
  if (!flat) throw new Error(`${name}: wrong result ${JSON.stringify(r)}`);
}
for (const [label, head] of [
  [`browser-like GET (${REALISTIC.length} bytes, 11 fields)`, REALISTIC],
  [`tiny GET (${TINY.length} bytes)`, TINY],
]) {
  console.log(`\n${label}: ns per head (median of 5 x 200k)`);
  for (const [name, fn] of candidates) {
    const { ns } = bench(name, fn, head);
    console.log(`  ${ns.toFixed(0).padStart(6)}  ${name}`);
  }
}
