/**
 * One client connection on the loop's protocol API: it writes a request
 * (head, then the body, chunked when its length is unknown), reads the
 * response through the client's connection machine (client-connection.ts),
 * and hands the application a `Response` whose body streams with
 * backpressure. One request at a time; the pool (client-pool.ts) hands the
 * connection to the next request once both directions of this one are done.
 *
 * Backpressure, both ways:
 * - request body: read one chunk at a time, not while the transport's write
 *   buffer is past its high-water mark (`pauseWriting` until `resumeWriting`);
 * - response body: chunks queue in the body stream up to
 *   `RESPONSE_HIGH_WATER_BYTES`; past it the transport stops reading, so a
 *   server sending to an application that does not read waits in TCP.
 *
 * Whatever ends an exchange early (the signal, a broken response, the
 * server going away, the loop closing) ends it through `#fail`: the
 * response promise rejects or the body stream errors, the request body is
 * cancelled, and the connection is aborted, never reused.
 */
import type { Protocol, Transport } from '../io/protocols.js';
import { BodyFraming, type ResponseHead } from './client-head.js';
import { ClientConnection } from './client-connection.js';
import { LAST_CHUNK, type OutgoingRequest, chunkOf, joined, knownLength, requestHead } from './client-request.js';
import { NativeResponse } from './light-response.js';
import type { HeadParser } from './parser.js';

/** Response body bytes queued unread before the connection stops reading. */
export const RESPONSE_HIGH_WATER_BYTES = 64 * 1024;

/** What a connection tells its pool. */
export interface ConnectionOwner {
  /** The exchange is over; `reusable`: the connection can carry another request. */
  released(connection: ClientProtocol, reusable: boolean): void;
  /** The connection is gone (closed, reset, aborted). */
  lost(connection: ClientProtocol): void;
}

/**
 * The connection went away before any byte of the response to a request on
 * a reused connection: the server most likely closed it as idle just as the
 * request went out. The client may send the request again on a new one.
 */
export class StaleConnectionError extends TypeError {}

interface Exchange {
  readonly request: OutgoingRequest;
  resolve: ((response: Response) => void) | null;
  reject: ((error: unknown) => void) | null;
  controller: ReadableStreamDefaultController<Uint8Array> | null;
  reader: ReadableStreamDefaultReader | null;
  requestDone: boolean;
  responseDone: boolean;
  persistent: boolean;
  finished: boolean;
  onAbort: (() => void) | null;
}

export class ClientProtocol implements Protocol {
  readonly #owner: ConnectionOwner;
  readonly #connection: ClientConnection;
  #transport: Transport | null = null;
  #exchange: Exchange | null = null;
  #drained: Promise<void> | null = null;
  #resolveDrained: (() => void) | null = null;
  #writePaused = false;
  #readPaused = false;
  #lost = false;
  /** Requests sent on this connection. */
  requests = 0;
  /** The pool's idle timer while the connection waits for a request. */
  idleTimer: { cancel(): void } | null = null;

  constructor(owner: ConnectionOwner, parser: HeadParser, maxHeaderBytes: number) {
    this.#owner = owner;
    this.#connection = new ClientConnection(parser, maxHeaderBytes, {
      head: (head) => this.#onHead(head),
      body: (chunk) => this.#onBody(chunk),
      end: () => this.#onEnd(),
      error: (reason) => this.#onError(reason),
    });
  }

  /** The connection was lost (`connectionLost` ran). */
  get gone(): boolean {
    return this.#lost;
  }

  /** The connection is open and no request is on it. */
  get available(): boolean {
    return !this.#lost && this.#exchange === null && this.#transport !== null && !this.#transport.isClosing();
  }

  // ------------------------------------------------------ transport events

  connectionMade(transport: Transport): void {
    this.#transport = transport;
  }

  dataReceived(data: Uint8Array): void {
    this.#connection.receive(data);
  }

  eofReceived(): boolean {
    const exchange = this.#exchange;
    if (exchange !== null && exchange.resolve !== null && !this.#connection.answered()) {
      this.#fail(exchange, this.#closedEarly(null));
    } else {
      this.#connection.eof();
    }
    return false;
  }

  connectionLost(error: Error | null): void {
    this.#lost = true;
    const exchange = this.#exchange;
    if (exchange !== null) this.#fail(exchange, this.#closedEarly(error));
    this.#connection.close();
    this.#resolveDrained?.();
    this.#owner.lost(this);
  }

  /** The error of a connection that ended in the middle of an exchange. */
  #closedEarly(cause: Error | null): TypeError {
    const exchange = this.#exchange;
    const unanswered = exchange !== null && exchange.resolve !== null && !this.#connection.answered();
    const options = cause === null ? undefined : { cause };
    if (!unanswered) return new TypeError('fetch: the connection closed before the response was complete', options);
    const message = 'fetch: the server closed the connection without a response';
    // Used before: most likely closed as idle just as this request went out.
    return this.requests > 1 ? new StaleConnectionError(message, options) : new TypeError(message, options);
  }

  pauseWriting(): void {
    this.#writePaused = true;
  }

  resumeWriting(): void {
    this.#writePaused = false;
    const resolve = this.#resolveDrained;
    this.#drained = this.#resolveDrained = null;
    resolve?.();
  }

  /** Closes the connection now; an exchange on it fails with `error`. */
  abort(error: unknown): void {
    const exchange = this.#exchange;
    if (exchange !== null) this.#fail(exchange, error);
    this.#transport?.abort();
  }

  /** Closes an idle connection. */
  close(): void {
    this.#transport?.close();
  }

  // ------------------------------------------------------------- requests

  /** Sends `request`; resolves with the response once its head arrived. */
  send(request: OutgoingRequest): Promise<Response> {
    const transport = this.#transport;
    if (transport === null || !this.available)
      return Promise.reject(new StaleConnectionError('fetch: the connection closed'));
    return new Promise<Response>((resolve, reject) => {
      const exchange: Exchange = {
        request,
        resolve,
        reject,
        controller: null,
        reader: null,
        requestDone: false,
        responseDone: false,
        persistent: false,
        finished: false,
        onAbort: null,
      };
      this.#exchange = exchange;
      this.requests++;
      const signal = request.signal;
      if (signal !== null) {
        exchange.onAbort = () => this.#fail(exchange, signal.reason);
        signal.addEventListener('abort', exchange.onAbort, { once: true });
      }
      this.#connection.expect(request.method === 'HEAD');
      const body = request.body;
      const head = requestHead(request, knownLength(body));
      if (body.kind === 'stream') {
        transport.write(joined(head, null));
        void this.#pump(exchange, body.stream, body.length);
      } else {
        transport.write(body.kind === 'bytes' ? joined(head, body.bytes) : joined(head, null));
        exchange.requestDone = true;
      }
    });
  }

  /** Writes a stream body, one chunk at a time, while the transport takes it. */
  async #pump(exchange: Exchange, stream: ReadableStream, length: number): Promise<void> {
    let reader: ReadableStreamDefaultReader;
    try {
      reader = stream.getReader();
    } catch (error) {
      this.#fail(exchange, new TypeError('fetch: the request body stream cannot be read', { cause: error }));
      return;
    }
    exchange.reader = reader;
    let written = 0;
    try {
      for (;;) {
        if (this.#writePaused && !this.#lost) {
          this.#drained ??= new Promise((resolve) => (this.#resolveDrained = resolve));
          await this.#drained;
        }
        if (exchange.finished || exchange.requestDone) return;
        const next = await reader.read();
        if (exchange.finished || exchange.requestDone) return;
        if (next.done) break;
        const chunk = bytesOf(next.value);
        if (chunk.length === 0) continue;
        written += chunk.length;
        if (length >= 0 && written > length)
          throw new TypeError(`the body is longer than its content-length (${length})`);
        this.#write(length >= 0 ? chunk : chunkOf(chunk));
      }
      if (length >= 0 && written !== length)
        throw new TypeError(`the body had ${written} bytes, its content-length said ${length}`);
      if (length < 0) this.#write(LAST_CHUNK);
    } catch (error) {
      this.#fail(exchange, new TypeError('fetch: the request body failed', { cause: error }));
      return;
    }
    exchange.requestDone = true;
    this.#maybeDone(exchange);
  }

  #write(data: Uint8Array | string): void {
    const transport = this.#transport;
    if (transport !== null && !transport.isClosing()) transport.write(data);
  }

  // ------------------------------------------------------------ responses

  #onHead(head: ResponseHead): void {
    const exchange = this.#exchange;
    if (exchange === null) return;
    if (head.status > 599) {
      this.#fail(
        exchange,
        new TypeError(`fetch: the server answered with status ${head.status}, which a Response cannot carry`),
      );
      this.#transport?.abort();
      return;
    }
    exchange.persistent = head.persistent;
    let body: ReadableStream<Uint8Array> | null = null;
    if (head.framing !== BodyFraming.None && head.status !== 204 && head.status !== 205 && head.status !== 304) {
      body = new ReadableStream<Uint8Array>(
        {
          start: (controller) => {
            exchange.controller = controller;
          },
          pull: () => this.#resumeReading(),
          cancel: () => {
            // The application does not want the rest: the connection cannot be reused.
            exchange.controller = null;
            if (!exchange.responseDone) this.abort(null);
          },
        },
        new ByteLengthQueuingStrategy({ highWaterMark: RESPONSE_HIGH_WATER_BYTES }),
      );
    }
    let response: Response;
    try {
      response = new NativeResponse(body, { status: head.status, statusText: head.statusText, headers: head.fields });
    } catch (error) {
      this.#fail(exchange, new TypeError('fetch: the response could not be represented', { cause: error }));
      this.#transport?.abort();
      return;
    }
    const resolve = exchange.resolve;
    exchange.resolve = exchange.reject = null;
    resolve?.(response);
  }

  #onBody(chunk: Uint8Array): void {
    const controller = this.#exchange?.controller;
    if (controller === null || controller === undefined) return;
    controller.enqueue(chunk);
    if ((controller.desiredSize ?? 0) <= 0 && !this.#readPaused) {
      this.#readPaused = true;
      this.#transport?.pauseReading();
    }
  }

  #onEnd(): void {
    const exchange = this.#exchange;
    if (exchange === null) return;
    exchange.responseDone = true;
    const controller = exchange.controller;
    exchange.controller = null;
    controller?.close();
    if (!exchange.requestDone && !exchange.persistent) {
      // The server answered before taking the whole body and closes (a 413,
      // say): stop sending it, as RFC 9112 advises clients.
      exchange.requestDone = true;
      exchange.reader?.cancel().catch(() => undefined);
    }
    this.#maybeDone(exchange);
  }

  #onError(reason: string): void {
    const exchange = this.#exchange;
    if (exchange !== null) this.#fail(exchange, new TypeError(`fetch: a bad response: ${reason}`));
    this.#transport?.abort();
  }

  #resumeReading(): void {
    if (!this.#readPaused) return;
    this.#readPaused = false;
    if (!this.#lost) this.#transport?.resumeReading();
  }

  // ------------------------------------------------------------- endings

  /** Both directions are done: the connection goes back to the pool. */
  #maybeDone(exchange: Exchange): void {
    if (!exchange.requestDone || !exchange.responseDone || exchange.finished) return;
    this.#finish(exchange);
    this.#resumeReading();
    this.#owner.released(this, exchange.persistent && !this.#lost && this.#connection.idle());
  }

  /** Ends an exchange early: its promise or body stream fails with `error`. */
  #fail(exchange: Exchange, error: unknown): void {
    if (exchange.finished) return;
    this.#finish(exchange);
    const reject = exchange.reject;
    exchange.resolve = exchange.reject = null;
    reject?.(error);
    const controller = exchange.controller;
    exchange.controller = null;
    try {
      controller?.error(error);
    } catch {
      // Already closed or cancelled.
    }
    exchange.reader?.cancel(error).catch(() => undefined);
    if (!this.#lost) this.#transport?.abort();
  }

  #finish(exchange: Exchange): void {
    exchange.finished = true;
    if (this.#exchange === exchange) this.#exchange = null;
    const signal = exchange.request.signal;
    if (exchange.onAbort !== null) signal?.removeEventListener('abort', exchange.onAbort);
    exchange.onAbort = null;
  }
}

function bytesOf(value: unknown): Uint8Array {
  if (value instanceof Uint8Array) return value;
  if (ArrayBuffer.isView(value)) return new Uint8Array(value.buffer, value.byteOffset, value.byteLength);
  if (value instanceof ArrayBuffer) return new Uint8Array(value);
  throw new TypeError(`a request body chunk must be a Uint8Array, got ${typeof value}`);
}
