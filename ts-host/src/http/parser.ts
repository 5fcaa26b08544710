/**
 * The HTTP head parser: httparse with RFC 9112's framing rules, a Wasm
 * module of its own (rust-core/http-parser), loaded the first time a server
 * starts or a client fetches, and shared by every server and client of the
 * process. Request heads for the server, response heads for the client.
 *
 * The boundary is built for one call per head:
 *
 * ```text
 * head bytes --copy once--> module input area
 *                           parse_request(len, maxHeaders)   (one call; parse_response for a response)
 * offsets   <--read------  module output area (u32 words)
 * ```
 *
 * No string is built in Wasm: the connection keeps its own copy of the head
 * and decodes only the fields the application reads. The module has no
 * imports, no allocator and never grows its memory, so the views below stay
 * valid for the life of the process.
 */
import { describe } from '../errors.js';

/** The output words (rust-core/http-parser/src/lib.rs has the same table). */
export const W = {
  STATUS: 0,
  METHOD: 1,
  METHOD_AT: 2,
  METHOD_LEN: 3,
  TARGET_AT: 4,
  TARGET_LEN: 5,
  VERSION: 6,
  FLAGS: 7,
  LENGTH_LO: 8,
  LENGTH_HI: 9,
  HOST: 10,
  COUNT: 11,
  HEADERS_AT: 12,
} as const;

export const FLAG_CONTENT_LENGTH = 1;
export const FLAG_CHUNKED = 2;
export const FLAG_CLOSE = 4;
export const FLAG_KEEP_ALIVE = 8;
export const FLAG_CONTINUE = 16;
export const FLAG_HIGH_BYTES = 32;
/** A response without a body: to HEAD; 1xx, 204, 304. */
export const FLAG_NO_BODY = 64;
/** A response body that ends when the connection does. */
export const FLAG_UNTIL_CLOSE = 128;

/** A response's words where a request has its method and target (rust-core/http-parser/src/response.rs). */
export const R = {
  CODE: 1,
  REASON_AT: 2,
  REASON_LEN: 3,
} as const;

/** Method codes in `W.METHOD` (0: another method, read from the bytes). */
export const METHODS = ['', 'GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'OPTIONS', 'PATCH', 'TRACE'] as const;
export const METHOD_HEAD = 2;

/** The parser's negative codes, with the response status each gets and why. */
export const PARSE_ERRORS: Readonly<Record<number, readonly [status: number, reason: string]>> = {
  [-1]: [400, 'bad request line'],
  [-2]: [400, 'bad HTTP version'],
  [-3]: [505, 'HTTP version not supported'],
  [-4]: [400, 'bad header field name (or whitespace before the colon, or an obsolete line folding)'],
  [-5]: [400, 'bad header field value'],
  [-6]: [400, 'a CR not followed by LF'],
  [-7]: [431, 'too many header fields'],
  [-8]: [400, 'bad Content-Length'],
  [-9]: [400, 'both Content-Length and Transfer-Encoding'],
  [-10]: [501, 'a transfer coding other than chunked'],
  [-11]: [400, 'bad Transfer-Encoding (chunked must be last, once, and not on HTTP/1.0)'],
  [-12]: [400, 'missing, repeated or bad Host'],
  [-13]: [417, 'an expectation other than 100-continue'],
  [-14]: [400, 'bad request target'],
  [-15]: [501, 'CONNECT is not supported'],
  [-16]: [400, 'bad chunk-size line'],
};

/** What the parser's negative codes mean in a response (the client refuses the response). */
export const RESPONSE_ERRORS: Readonly<Record<number, string>> = {
  [-2]: 'a version other than HTTP/1.0 and HTTP/1.1',
  [-4]: 'a bad header field name (or whitespace before the colon, or an obsolete line folding)',
  [-5]: 'a bad header field value',
  [-6]: 'a CR not followed by LF',
  [-7]: 'too many header fields',
  [-8]: 'a bad Content-Length',
  [-9]: 'both Content-Length and Transfer-Encoding',
  [-10]: 'a transfer coding other than chunked',
  [-11]: 'a bad Transfer-Encoding (chunked once, and not on HTTP/1.0)',
  [-16]: 'a bad chunk-size line',
  [-17]: 'a bad status line',
};

export interface HeadParser {
  /** The module's output words, read after each call. */
  readonly out: Uint32Array;
  /** The most header fields a call reports. */
  readonly maxHeaders: number;
  /** The largest input a call takes (bytes). */
  readonly capacity: number;
  /** Parses `bytes[start, end)` as a request head: `W.STATUS`'s value. */
  parseRequest(bytes: Uint8Array, start: number, end: number, maxHeaders: number): number;
  /** Parses `bytes[start, end)` as a response head (`toHead`: the request was HEAD): `W.STATUS`'s value. */
  parseResponse(bytes: Uint8Array, start: number, end: number, maxHeaders: number, toHead: boolean): number;
  /** Parses the chunk-size line at `bytes[start]`: its length, 0 if incomplete, or < 0. Size in `out[1]` + `out[2]` * 2^32. */
  parseChunkSize(bytes: Uint8Array, start: number, end: number): number;
  /** Parses a trailer section at `bytes[start]`: its length, 0 if incomplete, or < 0. */
  parseTrailers(bytes: Uint8Array, start: number, end: number, maxHeaders: number): number;
}

interface ParserExports {
  memory: WebAssembly.Memory;
  input_area(): number;
  input_capacity(): number;
  output_area(): number;
  max_headers(): number;
  parse_request(len: number, maxHeaders: number): number;
  parse_response(len: number, maxHeaders: number, toHead: number): number;
  parse_chunk_size(len: number): number;
  parse_trailers(len: number, maxHeaders: number): number;
}

/** The module's file, beside this one in dist/http/. */
export const PARSER_FILE = 'http-parser.wasm';

let loading: Promise<HeadParser> | null = null;

/**
 * The module's URL: beside this file in dist/http/, or under http/ from a
 * single-file bundle in dist/ (wasmloop.browser.js), where this code's
 * `import.meta.url` is the bundle's.
 */
function parserUrl(): URL {
  const here = import.meta.url;
  return new URL(/\/http\/parser\.js(\?.*)?$/.test(here) ? `./${PARSER_FILE}` : `./http/${PARSER_FILE}`, here);
}

async function readParserBytes(): Promise<BufferSource> {
  const url = parserUrl();
  if (url.protocol === 'file:') {
    const { readFile } = await import('node:fs/promises');
    return new Uint8Array(await readFile(url));
  }
  const response = await fetch(url);
  if (!response.ok) throw new Error(`fetching ${url}: HTTP ${response.status}`);
  return response.arrayBuffer();
}

/**
 * The parser, compiled and instantiated once per process; `module` is one
 * the host compiled (workerd cannot compile bytes at run time).
 */
export function loadParser(module?: WebAssembly.Module): Promise<HeadParser> {
  if (module !== undefined) {
    if (!(module instanceof WebAssembly.Module)) {
      throw new TypeError(`serve: parserModule must be a WebAssembly.Module, got ${describe(module)}`);
    }
    loading ??= WebAssembly.instantiate(module, {}).then((instance) =>
      wrap(instance.exports as unknown as ParserExports),
    );
    return loading;
  }
  loading ??= (async () => {
    const compiled = await WebAssembly.compile(await readParserBytes());
    const instance = await WebAssembly.instantiate(compiled, {});
    return wrap(instance.exports as unknown as ParserExports);
  })();
  // A failed load is not cached: the next server tries again.
  loading.catch(() => {
    loading = null;
  });
  return loading;
}

function wrap(exports: ParserExports): HeadParser {
  const buffer = exports.memory.buffer;
  const capacity = exports.input_capacity();
  const maxHeaders = exports.max_headers();
  const input = new Uint8Array(buffer, exports.input_area(), capacity);
  const out = new Uint32Array(buffer, exports.output_area(), W.HEADERS_AT + 4 * maxHeaders);
  /** Copies `bytes[start, end)` into the input area; returns the length. */
  const copyIn = (bytes: Uint8Array, start: number, end: number): number => {
    const length = Math.min(end - start, capacity);
    if (length < 64) {
      for (let i = 0; i < length; i++) input[i] = bytes[start + i] as number;
    } else {
      input.set(bytes.subarray(start, start + length));
    }
    return length;
  };
  return {
    out,
    maxHeaders,
    capacity,
    parseRequest: (bytes, start, end, max) => exports.parse_request(copyIn(bytes, start, end), max),
    parseResponse: (bytes, start, end, max, toHead) =>
      exports.parse_response(copyIn(bytes, start, end), max, toHead ? 1 : 0),
    parseChunkSize: (bytes, start, end) => exports.parse_chunk_size(copyIn(bytes, start, end)),
    parseTrailers: (bytes, start, end, max) => exports.parse_trailers(copyIn(bytes, start, end), max),
  };
}
