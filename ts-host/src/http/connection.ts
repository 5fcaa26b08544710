/**
 * The HTTP/1.1 connection state machine: bytes in, events out. No I/O, no
 * timers, no clock: the server feeds it what the transport received and
 * writes what it returns (h11's shape, and hyper's `proto::h1` minus I/O).
 *
 * It owns the request side's framing (heads, bodies by Content-Length or
 * chunked with trailers, the limits on both) and the response side's
 * (Content-Length when the length is known, chunked otherwise, none for
 * HEAD, 204 and 304), and decides whether the connection persists.
 *
 * ```text
 *  request side                         response side
 *  Head --head()--> Body/Chunk* --bodyEnd()--> Done
 *   ^                                            |  the response ends
 *   +--------------- both done, keep-alive <-----+  (then buffered
 *                                                    pipelined bytes
 *                                                    are parsed)
 * ```
 *
 * One request at a time: bytes of a pipelined request wait in the buffer
 * until the response before it ends, so responses go out in request order
 * and buffering is bounded (`buffered()`; the server pauses reading).
 */
import { ReceiveBuffer } from './buffer.js';
import { RequestHead } from './head.js';
import { type HeadParser, PARSE_ERRORS, METHOD_HEAD, W } from './parser.js';

export interface ConnectionEvents {
  /**
   * A request head arrived. Its body, if it has one (chunked, or a
   * Content-Length above 0), follows as `body` calls and one `bodyEnd`.
   */
  head(head: RequestHead): void;
  /** Bytes of the current request's body; the array is the receiver's to keep. */
  body(chunk: Uint8Array): void;
  /** The current request's body is complete. */
  bodyEnd(): void;
  /**
   * A request broke a rule: answer `status` (if no response started) and
   * close. `head` is the request's, if its head was read.
   */
  error(status: number, reason: string, head: RequestHead | null): void;
}

export interface ConnectionLimits {
  /** Bytes of a request head (request line and fields), and of a trailer section. */
  maxHeaderBytes: number;
  /** Header fields in a head. */
  maxHeaders: number;
  /** Bytes of a request body. */
  maxBodyBytes: number;
}

/** The longest chunk-size line (size and extensions) accepted; longer is a 400. */
export const MAX_CHUNK_LINE_BYTES = 4096;
/**
 * The most unread request body the connection reads and drops after its
 * response to keep the connection; with more left, it closes instead.
 */
export const MAX_DRAIN_BYTES = 64 * 1024;

const enum In {
  Head,
  Body,
  ChunkLine,
  ChunkData,
  ChunkDataEnd,
  Trailers,
  /** The request is complete; what arrives waits for its response to end. */
  Done,
  Closed,
}

/** How the response body is framed. */
export const enum Out {
  /** No response in progress. */
  Idle,
  /** No body: HEAD, 204, 304. */
  Empty,
  Length,
  Chunked,
  /** HTTP/1.0 without a length: the body ends when the connection does. */
  UntilClose,
}

/**
 * The last response head made, with everything it was made of. A server
 * answering alike (the same status, fields and length, within the same
 * second's Date) gets the same string back rather than a new one to join
 * and flatten per response.
 */
let lastHead = {
  status: -1,
  minor: -1,
  bodyLength: -1,
  persist: false,
  isHead: false,
  date: '',
  reason: '',
  fields: '',
  text: '',
};

export class Http1Connection {
  readonly #parser: HeadParser;
  readonly #limits: ConnectionLimits;
  readonly #events: ConnectionEvents;
  /** What was received and not yet consumed. */
  readonly #rx = new ReceiveBuffer();
  #in = In.Head;
  #out = Out.Idle;
  #head: RequestHead | null = null;
  /** Body bytes still to come (Content-Length) or of the current chunk. */
  #remaining = 0;
  #bodyBytes = 0;
  #continueSent = false;
  /** The response said the connection closes after it. */
  #closeAfter = false;
  #responseEnded = true;
  /** Inside #run: a response that ends from an event leaves the parsing to it. */
  #running = false;

  constructor(parser: HeadParser, limits: ConnectionLimits, events: ConnectionEvents) {
    this.#parser = parser;
    this.#limits = limits;
    this.#events = events;
  }

  /** Received bytes not yet consumed (a pipelined request's, or a partial head). */
  buffered(): number {
    return this.#rx.end - this.#rx.start;
  }

  /** True between a request's first byte and its head's end. */
  readingHead(): boolean {
    return this.#in === In.Head && this.#rx.end > this.#rx.start;
  }

  /** True once the current request's body has been received whole. */
  requestComplete(): boolean {
    return this.#in === In.Done;
  }

  /** The connection is finished: nothing more is read or answered. */
  isClosed(): boolean {
    return this.#in === In.Closed;
  }

  /** Feeds received bytes; events follow synchronously. */
  receive(data: Uint8Array): void {
    if (this.#in === In.Closed || data.length === 0) return;
    this.#rx.append(data);
    this.#run();
  }

  #run(): void {
    this.#running = true;
    try {
      this.#step();
    } finally {
      this.#running = false;
    }
  }

  #step(): void {
    for (;;) {
      switch (this.#in) {
        case In.Head:
          if (!this.#readHead()) return;
          break;
        case In.Body: {
          const n = Math.min(this.#rx.end - this.#rx.start, this.#remaining);
          if (n === 0) return;
          this.#emitBody(n);
          if ((this.#remaining -= n) === 0) this.#bodyDone();
          break;
        }
        case In.ChunkLine:
          if (!this.#readChunkLine()) return;
          break;
        case In.ChunkData: {
          const n = Math.min(this.#rx.end - this.#rx.start, this.#remaining);
          if (n === 0) return;
          this.#emitBody(n);
          if ((this.#remaining -= n) === 0) this.#in = In.ChunkDataEnd;
          break;
        }
        case In.ChunkDataEnd: {
          if (this.#rx.end - this.#rx.start < 2) return;
          if (this.#rx.buf[this.#rx.start] !== 13 || this.#rx.buf[this.#rx.start + 1] !== 10) {
            this.#fail(400, 'chunk data not followed by CRLF');
            return;
          }
          this.#rx.start += 2;
          this.#in = In.ChunkLine;
          break;
        }
        case In.Trailers:
          if (!this.#readTrailers()) return;
          break;
        default:
          return;
      }
    }
  }

  #readHead(): boolean {
    const start = this.#rx.start;
    if (start === this.#rx.end) return false;
    const max = this.#limits.maxHeaderBytes;
    const headEnd = this.#rx.findHeadEnd();
    if (headEnd === -1) {
      if (this.#rx.end - start > max) this.#fail(431, `request head over maxHeaderBytes (${max})`);
      return false;
    }
    if (headEnd - start > max) {
      this.#fail(431, `request head over maxHeaderBytes (${max})`);
      return false;
    }
    const parser = this.#parser;
    const status = parser.parseRequest(this.#rx.buf, start, headEnd, this.#limits.maxHeaders);
    if (status === 0) {
      // Only empty lines so far (allowed before a request): look further.
      this.#rx.scan = headEnd;
      return true;
    }
    if (status < 0) {
      const [code, reason] = PARSE_ERRORS[status] ?? [400, 'bad request'];
      this.#fail(code, reason);
      return false;
    }
    // The head keeps the buffer and its offsets (a typed-array view or copy
    // per request would cost more than the parse).
    const out = parser.out;
    const n = W.HEADERS_AT + 4 * (out[W.COUNT] as number);
    const words = new Array<number>(n);
    for (let i = 0; i < n; i++) words[i] = out[i] as number;
    const head = new RequestHead(this.#rx.buf, start, words, status);
    this.#rx.start = this.#rx.scan = start + status;
    if (head.contentLength > this.#limits.maxBodyBytes) {
      this.#fail(413, `Content-Length over maxBodyBytes (${this.#limits.maxBodyBytes})`, head);
      return false;
    }
    this.#head = head;
    this.#bodyBytes = 0;
    this.#continueSent = false;
    this.#closeAfter = false;
    this.#responseEnded = false;
    this.#out = Out.Idle;
    // The body's framing is set before the handler runs: it may answer at once.
    if (head.chunked) {
      this.#in = In.ChunkLine;
    } else if (head.contentLength > 0) {
      this.#in = In.Body;
      this.#remaining = head.contentLength;
    } else {
      this.#in = In.Done;
    }
    if (this.#rx.start === this.#rx.end) this.#rx.release();
    this.#events.head(head);
    // Answered already (a body-less request): on to the next one.
    if ((this.#in as In) === In.Done && this.#responseEnded) this.#next();
    return (this.#in as In) !== In.Closed;
  }

  #readChunkLine(): boolean {
    const buf = this.#rx.buf;
    const start = this.#rx.start;
    const lf = buf.indexOf(10, start);
    if (lf === -1 || lf >= this.#rx.end) {
      if (this.#rx.end - start > MAX_CHUNK_LINE_BYTES)
        this.#fail(400, `chunk-size line over ${MAX_CHUNK_LINE_BYTES} bytes`);
      return false;
    }
    if (lf + 1 - start > MAX_CHUNK_LINE_BYTES) {
      this.#fail(400, `chunk-size line over ${MAX_CHUNK_LINE_BYTES} bytes`);
      return false;
    }
    const parser = this.#parser;
    const length = parser.parseChunkSize(buf, start, lf + 1);
    if (length <= 0) {
      this.#fail(400, 'bad chunk-size line');
      return false;
    }
    const size = (parser.out[2] as number) * 2 ** 32 + (parser.out[1] as number);
    this.#rx.start += length;
    if (size === 0) {
      this.#in = In.Trailers;
      this.#rx.scan = this.#rx.start;
      return true;
    }
    if (this.#bodyBytes + size > this.#limits.maxBodyBytes) {
      this.#fail(413, `chunked body over maxBodyBytes (${this.#limits.maxBodyBytes})`);
      return false;
    }
    this.#remaining = size;
    this.#in = In.ChunkData;
    return true;
  }

  #readTrailers(): boolean {
    const start = this.#rx.start;
    const max = this.#limits.maxHeaderBytes;
    let end: number;
    // No trailer fields: the empty line alone.
    if (this.#rx.buf[start] === 13 && this.#rx.end - start >= 2 && this.#rx.buf[start + 1] === 10) end = start + 2;
    else if (this.#rx.buf[start] === 10 && this.#rx.end > start) end = start + 1;
    else {
      this.#rx.scan = Math.max(this.#rx.scan, start);
      end = this.#rx.findHeadEnd();
    }
    if (end === -1) {
      if (this.#rx.end - start > max) this.#fail(431, `trailer section over maxHeaderBytes (${max})`);
      return false;
    }
    if (end - start > max) {
      this.#fail(431, `trailer section over maxHeaderBytes (${max})`);
      return false;
    }
    const status = this.#parser.parseTrailers(this.#rx.buf, start, end, this.#limits.maxHeaders);
    if (status <= 0) {
      const [code, reason] = PARSE_ERRORS[status] ?? [400, 'bad trailer section'];
      this.#fail(code, reason);
      return false;
    }
    this.#rx.start += status;
    this.#bodyDone();
    return true;
  }

  #emitBody(n: number): void {
    const chunk = this.#rx.buf.subarray(this.#rx.start, this.#rx.start + n);
    this.#rx.start += n;
    this.#bodyBytes += n;
    if (this.#rx.start === this.#rx.end) this.#rx.release();
    this.#events.body(chunk);
  }

  #bodyDone(): void {
    this.#in = In.Done;
    if (this.#rx.start === this.#rx.end) this.#rx.release();
    this.#events.bodyEnd();
    if (this.#responseEnded && this.#in === In.Done) this.#next();
  }

  /** Both sides of the exchange are done: on to the next request, or closed. */
  #next(): void {
    this.#head = null;
    if (this.#closeAfter) {
      this.#in = In.Closed;
      return;
    }
    this.#in = In.Head;
    this.#rx.scan = this.#rx.start;
  }

  /** `head`: the request the failure concerns (the current one's, if any). */
  #fail(status: number, reason: string, head: RequestHead | null = this.#head): void {
    this.#in = In.Closed;
    this.#rx.release();
    this.#events.error(status, reason, head);
  }

  /** Stops reading requests (the server closes); nothing more is parsed. */
  close(): void {
    this.#in = In.Closed;
    this.#rx.release();
  }

  // ----------------------------------------------------------- responses

  /**
   * The `100 Continue` interim response, the first time the application
   * reads a body the client is waiting to send; '' otherwise.
   */
  continueLine(): string {
    const head = this.#head;
    if (head === null || !head.expectContinue || this.#continueSent || this.#out !== Out.Idle || this.#in === In.Done)
      return '';
    this.#continueSent = true;
    return 'HTTP/1.1 100 Continue\r\n\r\n';
  }

  /**
   * The response head for the current request: the status line, `fields`
   * (serialized `name: value\r\n` lines, without framing fields), then the
   * framing this machine chose and `Date`. `bodyLength` is the body's length
   * in bytes, or -1 if unknown. `closing` asks for the connection to close
   * after this response.
   */
  responseHead(
    status: number,
    reason: string,
    fields: string,
    bodyLength: number,
    date: string,
    closing: boolean,
  ): string {
    const head = this.#head;
    const minor = head === null ? 1 : head.minor;
    const isHead = head !== null && head.methodCode === METHOD_HEAD;
    if (isHead || status === 204 || status === 304) this.#out = Out.Empty;
    else if (bodyLength >= 0) this.#out = Out.Length;
    else if (minor === 1) this.#out = Out.Chunked;
    else this.#out = Out.UntilClose;
    const persist = !closing && head !== null && head.keepAlive && this.#out !== Out.UntilClose && this.#canReuse();
    this.#closeAfter = !persist;
    const last = lastHead;
    if (
      last.status === status &&
      last.minor === minor &&
      last.bodyLength === bodyLength &&
      last.persist === persist &&
      last.isHead === isHead &&
      last.date === date &&
      last.reason === reason &&
      last.fields === fields
    ) {
      return last.text;
    }
    let framing: string;
    if (isHead)
      framing = bodyLength >= 0 && status !== 204 && status !== 304 ? `content-length: ${bodyLength}\r\n` : '';
    else if (status === 204 || status === 304) framing = '';
    else if (bodyLength >= 0) framing = `content-length: ${bodyLength}\r\n`;
    else if (minor === 1) framing = 'transfer-encoding: chunked\r\n';
    else framing = '';
    const connection = !persist ? 'connection: close\r\n' : minor === 0 ? 'connection: keep-alive\r\n' : '';
    const text = `HTTP/1.${minor} ${status} ${reason}\r\n${fields}${framing}${connection}date: ${date}\r\n\r\n`;
    lastHead = { status, minor, bodyLength, persist, isHead, date, reason, fields, text };
    return text;
  }

  /**
   * Whether the connection can serve another request once this response
   * ends: only if what is left of the request body is small enough to read
   * and drop, and a client waiting for `100 Continue` is not left waiting.
   */
  #canReuse(): boolean {
    if (this.#in === In.Done) return true;
    const head = this.#head as RequestHead;
    if (head.expectContinue && !this.#continueSent) return false;
    return this.#in === In.Body && this.#remaining <= MAX_DRAIN_BYTES;
  }

  /** How the current response's body is framed. */
  get framing(): Out {
    return this.#out;
  }

  /**
   * The response has been written whole (for chunked, its last chunk too). Returns true if the connection stays open; the
   * next pipelined request, if buffered, is parsed now.
   */
  responseEnd(): boolean {
    this.#responseEnded = true;
    this.#out = Out.Idle;
    if (this.#in === In.Closed) return false;
    if (this.#closeAfter) {
      this.#in = In.Closed;
      this.#rx.release();
      return false;
    }
    if (this.#in === In.Done) {
      this.#next();
      if (!this.#running) this.#run();
    }
    return (this.#in as In) !== In.Closed;
  }
}
