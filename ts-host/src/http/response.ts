/**
 * Writing a handler's `Response`: its status and fields, then its body,
 * framed by the connection state machine (Content-Length when the length
 * is known, chunked otherwise, nothing for HEAD, 204 and 304).
 *
 * Two paths:
 * - a body whose bytes are known without reading it (a string or bytes
 *   given to `new Response()`, found in the runtime's own state when it
 *   has the layout checked below) goes out with its head in one write;
 * - any other body is read from its stream, chunk by chunk, waiting for
 *   the transport to drain when it passes its high-water mark, so a slow
 *   client never makes the server buffer without bound. A body of one
 *   chunk still gets a Content-Length: the stream is read one chunk ahead.
 *
 * Reading a small Response's stream costs Node 20 more than building the
 * Response did (bench/http/fetch-objects.mjs); the first path skips that.
 */
import { type Http1Connection, Out } from './connection.js';
import { type LightArgs, NativeResponse, lightArgsOf, realOf } from './light-response.js';
import { STATUS_TEXT } from './status.js';

/** What writing a response needs from its connection. */
export interface ResponseSink {
  readonly connection: Http1Connection;
  /** Writes bytes (or an ASCII/UTF-8 string) to the transport. */
  write(data: Uint8Array | string): void;
  /** A promise that resolves once the transport drained, or null if it is not paused. */
  writable(): Promise<void> | null;
  /** True once the connection is gone: stop writing. */
  gone(): boolean;
  /** The cached `Date` value. */
  date(): string;
  /** The server asks this connection to close after the response. */
  closing(): boolean;
  /** The response is written whole (`complete`), or was abandoned. */
  ended(complete: boolean): void;
  /** Reports an error to the loop's exception handler. */
  report(message: string, error: unknown): void;
}

const encoder = new TextEncoder();
// biome-ignore lint/suspicious/noControlCharactersInRegex: the range is all of ASCII, control characters included on purpose.
const NON_ASCII = /[^\x00-\x7f]/;

/** Serialized fields of a response, and its Content-Length field if the application set one. */
interface Fields {
  lines: string;
  contentLength: number;
  hasDate: boolean;
}

/**
 * The response's fields as `name: value\r\n` lines, less those the
 * connection decides (Connection, Transfer-Encoding, Keep-Alive,
 * Content-Length).
 */
function fieldsOf(entries: Iterable<[string, string]>): Fields {
  let lines = '';
  let contentLength = -1;
  let hasDate = false;
  for (const [name, value] of entries) {
    switch (name) {
      case 'connection':
      case 'transfer-encoding':
      case 'keep-alive':
        continue;
      case 'content-length':
        contentLength = Number(value);
        continue;
      case 'date':
        hasDate = true;
        break;
    }
    lines += `${name}: ${value}\r\n`;
  }
  return { lines, contentLength, hasDate };
}

/**
 * Bodies (and chunks) up to this many bytes are joined with their head (or
 * chunk line) into one buffer, one write; larger ones are written apart.
 * Joining copies the body into a buffer of its own per response: for a
 * 64 KiB response that fresh memory cost more than the copy (the
 * allocator hands out pages it returned to the kernel, faulted in again on
 * each response): 26-28 us of kernel and 9-10 us of user CPU a response
 * at 50 connections on the selector, against 14-18 and 5-7 written apart,
 * where the extra write is one more system call. A transport copies only
 * what the socket did not take (and only then), so the body stays the
 * program's as before.
 */
const JOIN_LIMIT = 16 * 1024;

/** `head` as bytes: Latin-1, as field values are. */
function headBytes(head: string): Uint8Array {
  return joined(head, null);
}

/** `head` (Latin-1, as field values are) followed by `body`, in one buffer. */
function joined(head: string, body: Uint8Array | null): Uint8Array {
  const bodyLength = body === null ? 0 : body.length;
  const out = new Uint8Array(head.length + bodyLength);
  if (NON_ASCII.test(head)) {
    for (let i = 0; i < head.length; i++) out[i] = head.charCodeAt(i);
  } else {
    encoder.encodeInto(head, out);
  }
  if (body !== null) out.set(body, head.length);
  return out;
}

// ---------------------------------------------------- the runtime's state

/**
 * Node's Response (undici) keeps its status, fields and the source of its
 * body under a `Symbol(state)`. Checked once against a probe Response; on a
 * runtime without that layout every body takes the stream path.
 */
interface UndiciState {
  status: number;
  statusText: string;
  headersList: Iterable<[string, string]>;
  body: { source: unknown; length: number | null; stream: ReadableStream } | null;
}

const STATE: symbol | null = (() => {
  try {
    const probe = new NativeResponse('probe', { status: 201, headers: { 'x-probe': '1' } });
    const symbol = Object.getOwnPropertySymbols(probe).find((s) => s.description === 'state');
    if (symbol === undefined) return null;
    const state = (probe as unknown as Record<symbol, UndiciState>)[symbol] as UndiciState;
    const fields = [...state.headersList];
    const ok =
      state.status === 201 &&
      state.body?.source === 'probe' &&
      state.body.length === 5 &&
      fields.some(([n, v]) => n === 'x-probe' && v === '1');
    return ok ? symbol : null;
  } catch {
    return null;
  }
})();

/** The body's bytes (or string) if the runtime holds them and nothing has read the stream. */
function knownBody(response: Response, state: UndiciState): Uint8Array | string | null | undefined {
  const body = state.body;
  if (body === null) return null;
  const source = body.source;
  if (typeof source !== 'string' && !(source instanceof Uint8Array)) return undefined;
  if (response.bodyUsed || body.stream.locked) return undefined;
  return source;
}

// ---------------------------------------------------------------- writing

/**
 * Writes `response` for the current request; returns a promise if the body
 * takes more than one write (or null when it was written at once).
 */
export function writeResponse(sink: ResponseSink, response: Response): Promise<void> | null {
  const light = lightArgsOf(response);
  if (light !== undefined) {
    writeKnown(sink, light.status, light.statusText, lightFields(light), light.body);
    return null;
  }
  const native = realOf(response);
  const state = STATE === null ? undefined : (native as unknown as Record<symbol, UndiciState>)[STATE];
  if (state !== undefined) {
    const body = knownBody(native, state);
    if (body !== undefined) {
      writeKnown(sink, state.status, state.statusText, fieldsOf(state.headersList), body);
      return null;
    }
  }
  return writeStreamed(sink, native, fieldsOf(native.headers));
}

const TEXT_FIELDS: Fields = Object.freeze({
  lines: 'content-type: text/plain;charset=UTF-8\r\n',
  contentLength: -1,
  hasDate: false,
});
const NO_FIELDS: Fields = Object.freeze({ lines: '', contentLength: -1, hasDate: false });

/** The fields of a light response, with the content-type a string body gets by default. */
function lightFields(args: LightArgs): Fields {
  const given = args.headers;
  if (given === undefined) return typeof args.body === 'string' ? TEXT_FIELDS : NO_FIELDS;
  const pairs: Iterable<[string, string]> =
    given === undefined
      ? []
      : Array.isArray(given)
        ? given.map(([n, v]) => [n.toLowerCase(), v])
        : Object.keys(given).map((n) => [n.toLowerCase(), given[n] as string]);
  const fields = fieldsOf(pairs);
  if (typeof args.body === 'string' && !/(^|\n)content-type:/.test(fields.lines)) {
    fields.lines = `content-type: text/plain;charset=UTF-8\r\n${fields.lines}`;
  }
  return fields;
}

function headFor(sink: ResponseSink, status: number, statusText: string, fields: Fields, length: number): string {
  const reason = statusText || STATUS_TEXT[status] || '';
  return sink.connection.responseHead(
    status,
    reason,
    fields.lines,
    length,
    fields.hasDate ? '' : sink.date(),
    sink.closing(),
  );
}

/**
 * Whether the head `headFor` makes of these is ASCII: only the reason and
 * the application's fields can be otherwise (the status text table, the
 * framing, Connection and Date are ASCII), so the whole head is not searched.
 */
function asciiHead(statusText: string, fields: Fields): boolean {
  if (statusText !== '' && NON_ASCII.test(statusText)) return false;
  return fields === TEXT_FIELDS || fields === NO_FIELDS || !NON_ASCII.test(fields.lines);
}

/** The last head and text body `headAndText` joined, and the join. */
const JOIN_MEMO_CHARS = 1024;
let joinedHead = '';
let joinedText = '';
let joinedBoth = '';

/**
 * `head + text`, the same string as last time when both are (the head
 * comes back the same from the connection's cache while nothing in it
 * changed): the join, once flattened by the transport's encoding, is not
 * made and flattened again.
 */
function headAndText(head: string, text: string): string {
  // A large body is not kept alive for the next response.
  if (text.length > JOIN_MEMO_CHARS) return head + text;
  if (head !== joinedHead || text !== joinedText) {
    joinedHead = head;
    joinedText = text;
    joinedBoth = head + text;
  }
  return joinedBoth;
}

function writeKnown(
  sink: ResponseSink,
  status: number,
  statusText: string,
  fields: Fields,
  body: Uint8Array | string | null,
): void {
  let bytes: Uint8Array | null = null;
  let text: string | null = null;
  if (typeof body === 'string') {
    if (NON_ASCII.test(body)) bytes = encoder.encode(body);
    else text = body;
  } else {
    bytes = body;
  }
  const length = text !== null ? text.length : bytes === null ? 0 : bytes.length;
  const head = headFor(sink, status, statusText, fields, length);
  const framing = sink.connection.framing;
  const withBody = framing === Out.Length || framing === Out.UntilClose;
  if (text !== null && asciiHead(statusText, fields)) sink.write(withBody ? headAndText(head, text) : head);
  else if (withBody && bytes !== null && bytes.length > JOIN_LIMIT) {
    sink.write(headBytes(head));
    sink.write(bytes);
  } else sink.write(joined(head, withBody ? (bytes ?? encoder.encode(text ?? '')) : null));
  sink.ended(true);
}

async function writeStreamed(sink: ResponseSink, response: Response, fields: Fields): Promise<void> {
  const status = response.status;
  const stream = response.body;
  if (stream === null) {
    writeKnown(sink, status, response.statusText, fields, null);
    return;
  }
  const reader = stream.getReader();
  let headWritten = false;
  let complete = false;
  try {
    // One chunk ahead: a body that fits in one chunk is sent with its length.
    const first = await reader.read();
    const second = first.done ? first : await reader.read();
    if (sink.gone()) return;
    if (second.done && fields.contentLength < 0) {
      headWritten = true;
      writeKnown(sink, status, response.statusText, fields, first.done ? null : toBytes(first.value));
      complete = true;
      return;
    }
    const declared = fields.contentLength;
    const head = headFor(sink, status, response.statusText, fields, declared);
    const framing = sink.connection.framing;
    sink.write(headBytes(head));
    headWritten = true;
    if (framing === Out.Empty) {
      // HEAD, 204, 304: the rest of the body is not read, only released.
      reader.cancel().catch(() => undefined);
      complete = true;
      sink.ended(true);
      return;
    }
    let written = 0;
    const send = (chunk: Uint8Array): void => {
      if (chunk.length === 0) return;
      written += chunk.length;
      if (framing === Out.Chunked && chunk.length > JOIN_LIMIT) {
        sink.write(chunkLine(chunk.length));
        sink.write(chunk);
        sink.write(CRLF);
      } else if (framing === Out.Chunked) sink.write(framed(chunk));
      else if (framing === Out.Length || framing === Out.UntilClose) sink.write(chunk);
    };
    if (!first.done) send(toBytes(first.value));
    if (!second.done) send(toBytes(second.value));
    for (;;) {
      const waiting = sink.writable();
      if (waiting !== null) await waiting;
      if (sink.gone()) return;
      const next = await reader.read();
      if (next.done) break;
      if (sink.gone()) return;
      send(toBytes(next.value));
    }
    if (framing === Out.Length && written !== declared) {
      throw new Error(`the response body had ${written} bytes, its Content-Length said ${declared}`);
    }
    if (framing === Out.Chunked) sink.write(LAST_CHUNK);
    complete = true;
    sink.ended(true);
  } catch (error) {
    // Before the head, the server answers 500; after it, only closing tells the client.
    if (!headWritten) throw error;
    if (!sink.gone()) sink.report('the response body failed; the connection was closed', error);
    sink.ended(false);
  } finally {
    if (!complete) reader.cancel().catch(() => undefined);
  }
}

const LAST_CHUNK = '0\r\n\r\n';
const CRLF = '\r\n';

function chunkLine(length: number): string {
  return `${length.toString(16)}\r\n`;
}

/** A chunk of a chunked body: size line, bytes, CRLF, in one buffer. */
function framed(chunk: Uint8Array): Uint8Array {
  const line = chunkLine(chunk.length);
  const out = new Uint8Array(line.length + chunk.length + 2);
  encoder.encodeInto(line, out);
  out.set(chunk, line.length);
  out[out.length - 2] = 13;
  out[out.length - 1] = 10;
  return out;
}

function toBytes(value: unknown): Uint8Array {
  if (value instanceof Uint8Array) return value;
  if (ArrayBuffer.isView(value)) return new Uint8Array(value.buffer, value.byteOffset, value.byteLength);
  if (value instanceof ArrayBuffer) return new Uint8Array(value);
  throw new TypeError('a response body chunk must be a Uint8Array (or another ArrayBuffer view)');
}
