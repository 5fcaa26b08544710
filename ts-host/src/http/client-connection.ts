/**
 * The client side of an HTTP/1.1 connection, reading: response bytes in,
 * events out. No I/O, no timers (the shape of connection.ts, the server's
 * machine, turned around): the client's protocol feeds it what the
 * transport received and says when a request went out.
 *
 * It owns the response side's framing, as the parser reports it (RFC 9112
 * section 6.3: no body for HEAD, 1xx, 204 and 304; chunked; Content-Length;
 * until the server closes), the limit on a head's size, and skipping
 * interim (1xx) responses.
 *
 * ```text
 *  Idle --expect()--> Head --final head--> Body | Chunk* | UntilClose --end()--> Idle
 *                      ^  1xx: skipped      (none: end() at once)
 * ```
 *
 * Bytes that arrive while no request is outstanding break the protocol
 * (a server may not answer what was not asked): `error`, and the
 * connection is not used again.
 */
import { ReceiveBuffer } from './buffer.js';
import { BodyFraming, ResponseHead } from './client-head.js';
import { MAX_CHUNK_LINE_BYTES } from './connection.js';
import { type HeadParser, RESPONSE_ERRORS } from './parser.js';

export interface ResponseEvents {
  /** The final response's head (interim 1xx responses are skipped). */
  head(head: ResponseHead): void;
  /** Bytes of its body; the array is the receiver's to keep. */
  body(chunk: Uint8Array): void;
  /** The body is complete (at once, for a response without one). */
  end(): void;
  /** The response broke a rule: the connection is unusable. */
  error(reason: string): void;
}

const enum In {
  Idle,
  Head,
  Body,
  ChunkLine,
  ChunkData,
  ChunkDataEnd,
  Trailers,
  UntilClose,
  Closed,
}

export class ClientConnection {
  readonly #parser: HeadParser;
  readonly #maxHeaderBytes: number;
  readonly #events: ResponseEvents;
  readonly #rx = new ReceiveBuffer();
  #in = In.Idle;
  #toHead = false;
  /** Body bytes still to come (Content-Length), or of the current chunk. */
  #remaining = 0;
  /** A byte of the current response has arrived. */
  #answered = false;

  constructor(parser: HeadParser, maxHeaderBytes: number, events: ResponseEvents) {
    this.#parser = parser;
    this.#maxHeaderBytes = maxHeaderBytes;
    this.#events = events;
  }

  /** No request is outstanding. */
  idle(): boolean {
    return this.#in === In.Idle;
  }

  /** Any byte of the outstanding request's response has arrived. */
  answered(): boolean {
    return this.#answered;
  }

  /** A request went out; its response is next. `toHead`: it was HEAD. */
  expect(toHead: boolean): void {
    if (this.#in !== In.Idle) throw new Error('ClientConnection: a response is already outstanding');
    this.#in = In.Head;
    this.#toHead = toHead;
    this.#answered = false;
  }

  receive(data: Uint8Array): void {
    if (this.#in === In.Closed || data.length === 0) return;
    if (this.#in === In.Idle) {
      this.#fail('the server sent bytes with no request outstanding');
      return;
    }
    this.#answered = true;
    this.#rx.append(data);
    this.#step();
  }

  /** The server ended its side: the end of a close-delimited body, or an error. */
  eof(): void {
    switch (this.#in) {
      case In.UntilClose:
        this.#in = In.Closed;
        this.#events.end();
        return;
      case In.Idle:
      case In.Closed:
        this.#in = In.Closed;
        return;
      case In.Head:
        this.#fail(
          this.#answered
            ? 'the server closed the connection in the middle of a response head'
            : 'the server closed the connection without a response',
        );
        return;
      default:
        this.#fail('the server closed the connection in the middle of a response body');
    }
  }

  /** Nothing more is read. */
  close(): void {
    this.#in = In.Closed;
    this.#rx.release();
  }

  #step(): void {
    const rx = this.#rx;
    for (;;) {
      const held = rx.end - rx.start;
      switch (this.#in) {
        case In.Head:
          if (!this.#readHead()) return;
          break;
        case In.Body: {
          const n = Math.min(held, this.#remaining);
          if (n === 0) return;
          this.#emit(n);
          if ((this.#remaining -= n) === 0) this.#done();
          break;
        }
        case In.UntilClose:
          if (held === 0) return;
          this.#emit(held);
          return;
        case In.ChunkLine:
          if (!this.#readChunkLine()) return;
          break;
        case In.ChunkData: {
          const n = Math.min(held, this.#remaining);
          if (n === 0) return;
          this.#emit(n);
          if ((this.#remaining -= n) === 0) this.#in = In.ChunkDataEnd;
          break;
        }
        case In.ChunkDataEnd:
          if (held < 2) return;
          if (rx.buf[rx.start] !== 13 || rx.buf[rx.start + 1] !== 10) {
            this.#fail('chunk data not followed by CRLF');
            return;
          }
          rx.start += 2;
          this.#in = In.ChunkLine;
          break;
        case In.Trailers:
          if (!this.#readTrailers()) return;
          break;
        case In.Idle:
          if (held > 0) this.#fail('the server sent more than the response');
          return;
        default:
          return;
      }
    }
  }

  #readHead(): boolean {
    const rx = this.#rx;
    const start = rx.start;
    if (start === rx.end) return false;
    const max = this.#maxHeaderBytes;
    const headEnd = rx.findHeadEnd();
    if (headEnd === -1 || headEnd - start > max) {
      if (rx.end - start > max) this.#fail(`a response head over maxHeaderBytes (${max})`);
      return false;
    }
    const parser = this.#parser;
    const status = parser.parseResponse(rx.buf, start, headEnd, parser.maxHeaders, this.#toHead);
    if (status === 0) {
      // Only empty lines so far (allowed before a status line): look further.
      rx.scan = headEnd;
      return true;
    }
    if (status < 0) {
      this.#fail(RESPONSE_ERRORS[status] ?? 'a bad response head');
      return false;
    }
    const head = new ResponseHead(rx.buf, start, parser.out);
    rx.start = rx.scan = start + status;
    if (head.informational) {
      if (head.status === 101) {
        this.#fail('101 Switching Protocols, to a request that asked for no upgrade');
        return false;
      }
      return true; // 100 Continue, 103 Early Hints: the final response follows
    }
    switch (head.framing) {
      case BodyFraming.Length:
        this.#in = head.contentLength > 0 ? In.Body : In.Idle;
        this.#remaining = head.contentLength;
        break;
      case BodyFraming.Chunked:
        this.#in = In.ChunkLine;
        break;
      case BodyFraming.UntilClose:
        this.#in = In.UntilClose;
        break;
      default:
        this.#in = In.Idle;
    }
    if (rx.start === rx.end) rx.release();
    this.#events.head(head);
    if (this.#in === In.Idle) this.#events.end();
    return (this.#in as In) !== In.Closed;
  }

  #readChunkLine(): boolean {
    const rx = this.#rx;
    const start = rx.start;
    const lf = rx.buf.indexOf(10, start);
    if (lf === -1 || lf >= rx.end) {
      if (rx.end - start > MAX_CHUNK_LINE_BYTES) this.#fail(`a chunk-size line over ${MAX_CHUNK_LINE_BYTES} bytes`);
      return false;
    }
    const parser = this.#parser;
    const length = lf + 1 - start > MAX_CHUNK_LINE_BYTES ? -1 : parser.parseChunkSize(rx.buf, start, lf + 1);
    if (length <= 0) {
      this.#fail('a bad chunk-size line');
      return false;
    }
    const size = (parser.out[2] as number) * 2 ** 32 + (parser.out[1] as number);
    rx.start += length;
    if (size === 0) {
      this.#in = In.Trailers;
      rx.scan = rx.start;
    } else {
      this.#remaining = size;
      this.#in = In.ChunkData;
    }
    return true;
  }

  /** The trailer section: checked and dropped (a `Response` has no trailers). */
  #readTrailers(): boolean {
    const rx = this.#rx;
    const start = rx.start;
    const max = this.#maxHeaderBytes;
    let end: number;
    if (rx.buf[start] === 13 && rx.end - start >= 2 && rx.buf[start + 1] === 10) end = start + 2;
    else if (rx.buf[start] === 10 && rx.end > start) end = start + 1;
    else {
      rx.scan = Math.max(rx.scan, start);
      end = rx.findHeadEnd();
    }
    if (end === -1 || end - start > max) {
      if (rx.end - start > max) this.#fail(`a trailer section over maxHeaderBytes (${max})`);
      return false;
    }
    const status = this.#parser.parseTrailers(rx.buf, start, end, this.#parser.maxHeaders);
    if (status <= 0) {
      this.#fail(RESPONSE_ERRORS[status] ?? 'a bad trailer section');
      return false;
    }
    rx.start += status;
    this.#done();
    return true;
  }

  #emit(n: number): void {
    const rx = this.#rx;
    const chunk = rx.buf.subarray(rx.start, rx.start + n);
    rx.start += n;
    if (rx.start === rx.end) rx.release();
    this.#events.body(chunk);
  }

  #done(): void {
    this.#in = In.Idle;
    if (this.#rx.start === this.#rx.end) this.#rx.release();
    this.#events.end();
  }

  #fail(reason: string): void {
    this.#in = In.Closed;
    this.#rx.release();
    this.#events.error(reason);
  }
}
