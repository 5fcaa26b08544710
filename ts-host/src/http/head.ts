/**
 * A parsed request head: the bytes it came in, the parser's offsets into
 * them, and the framing facts as numbers. Strings are decoded only when
 * asked for, once each: a handler that reads nothing pays for nothing.
 */
import {
  FLAG_CHUNKED,
  FLAG_CLOSE,
  FLAG_CONTENT_LENGTH,
  FLAG_CONTINUE,
  FLAG_HIGH_BYTES,
  FLAG_KEEP_ALIVE,
  METHODS,
  W,
} from './parser.js';

const latin1Decoder = new TextDecoder('latin1');

/**
 * `bytes[start, end)` as a string of one char per byte. TextDecoder's
 * 'latin1' is windows-1252, which differs from Latin-1 in 0x80-0x9f, so it
 * serves only bytes below 0x80 (`ascii`).
 */
export function latin1(bytes: Uint8Array, start: number, end: number, ascii: boolean): string {
  const length = end - start;
  if (length < 24) {
    let s = '';
    for (let i = start; i < end; i++) s += String.fromCharCode(bytes[i] as number);
    return s;
  }
  if (ascii) return latin1Decoder.decode(bytes.subarray(start, end));
  let s = '';
  for (let at = start; at < end; at += 8192) {
    s += String.fromCharCode.apply(null, bytes.subarray(at, Math.min(end, at + 8192)) as unknown as number[]);
  }
  return s;
}

/** The last Host value `host()` decoded (if it was short), as bytes and as the string. */
const LAST_HOST_BYTES = new Uint8Array(64);
let lastHostLength = -1;
let lastHost = '';

export class RequestHead {
  /** The buffer the head is in, from `base`; the offsets in `words` are relative to `base`. */
  readonly bytes: Uint8Array;
  readonly base: number;
  /** The parser's output words for this head (a copy). */
  readonly words: readonly number[];
  /** The head's length in bytes. */
  readonly length: number;
  readonly methodCode: number;
  /** 0 for HTTP/1.0, 1 for HTTP/1.1. */
  readonly minor: number;
  readonly flags: number;
  #method: string | null = null;
  #target: string | null = null;

  constructor(bytes: Uint8Array, base: number, words: readonly number[], length: number) {
    this.bytes = bytes;
    this.base = base;
    this.words = words;
    this.length = length;
    this.methodCode = words[W.METHOD] as number;
    this.minor = words[W.VERSION] as number;
    this.flags = words[W.FLAGS] as number;
  }

  get chunked(): boolean {
    return (this.flags & FLAG_CHUNKED) !== 0;
  }

  get hasContentLength(): boolean {
    return (this.flags & FLAG_CONTENT_LENGTH) !== 0;
  }

  /** Content-Length (0 without one; at most 2^53). */
  get contentLength(): number {
    return (this.words[W.LENGTH_HI] as number) * 2 ** 32 + (this.words[W.LENGTH_LO] as number);
  }

  get expectContinue(): boolean {
    return (this.flags & FLAG_CONTINUE) !== 0;
  }

  /** What the request asks of the connection: HTTP/1.1 persists unless `close`; 1.0 only with `keep-alive`. */
  get keepAlive(): boolean {
    if ((this.flags & FLAG_CLOSE) !== 0) return false;
    return this.minor === 1 || (this.flags & FLAG_KEEP_ALIVE) !== 0;
  }

  get #ascii(): boolean {
    return (this.flags & FLAG_HIGH_BYTES) === 0;
  }

  method(): string {
    if (this.#method === null) {
      const code = this.methodCode;
      this.#method = code === 0 ? this.#decode(W.METHOD_AT) : (METHODS[code] as string);
    }
    return this.#method;
  }

  target(): string {
    this.#target ??= this.#decode(W.TARGET_AT);
    return this.#target;
  }

  get fieldCount(): number {
    return this.words[W.COUNT] as number;
  }

  /** Field `i`'s name, lowercased. */
  name(i: number): string {
    return this.#decode(W.HEADERS_AT + 4 * i).toLowerCase();
  }

  value(i: number): string {
    return this.#decode(W.HEADERS_AT + 4 * i + 2);
  }

  /** The Host field's value, or '' without one. */
  host(): string {
    const index = this.words[W.HOST] as number;
    if (index === 0) return '';
    const word = W.HEADERS_AT + 4 * (index - 1) + 2;
    const at = this.base + (this.words[word] as number);
    const length = this.words[word + 1] as number;
    const bytes = this.bytes;
    // A connection's requests name the same host: its bytes are compared
    // with the last host's rather than made into a new string each time.
    if (length === lastHostLength && length <= LAST_HOST_BYTES.length) {
      let i = 0;
      while (i < length && bytes[at + i] === LAST_HOST_BYTES[i]) i++;
      if (i === length) return lastHost;
    }
    const host = latin1(bytes, at, at + length, this.#ascii);
    if (length <= LAST_HOST_BYTES.length) {
      LAST_HOST_BYTES.set(bytes.subarray(at, at + length));
      lastHostLength = length;
      lastHost = host;
    }
    return host;
  }

  /** Every field as [name, value] pairs, in order. */
  fields(): [string, string][] {
    const count = this.fieldCount;
    const pairs = new Array<[string, string]>(count);
    for (let i = 0; i < count; i++) pairs[i] = [this.name(i), this.value(i)];
    return pairs;
  }

  /** The string at the (offset, length) pair at `word`. */
  #decode(word: number): string {
    const at = this.base + (this.words[word] as number);
    return latin1(this.bytes, at, at + (this.words[word + 1] as number), this.#ascii);
  }
}
