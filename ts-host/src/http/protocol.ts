/**
 * One HTTP connection on the loop's protocol API: the transport's events
 * go into the connection state machine, its events become requests for the
 * application's `fetch` handler, and the handler's responses go back out.
 *
 * Time: one loop deadline per connection (`loop.deadline`, deadline.ts),
 * for whichever wait applies (the request head's, the body's, the idle
 * keep-alive's, the lingering close's): each sets its period and refreshes
 * it, and body bytes refresh it, a field write that never touches the core
 * timer behind it. A wait that ends (a request head complete, say) only
 * forgets its kind: the deadline runs once more and finds nothing to do.
 *
 * Closing after an error response is a lingering close: write the
 * response, shut down the write side, read and drop what the client still
 * sends until it closes or LINGER_MS pass. Closing with unread bytes would
 * make the kernel send a reset, which can destroy the response before the
 * client reads it.
 */
import type { Deadline as LoopDeadline } from '../deadline.js';
import type { EventLoop } from '../loop.js';
import type { Protocol, Transport } from '../io/protocols.js';
import type { TlsInfo } from '../io/tls-info.js';
import { Http1Connection } from './connection.js';
import { Exchange, type ExchangeOwner } from './exchange.js';
import type { RequestHead } from './head.js';
import type { HeadParser } from './parser.js';
import { lightArgsOf, realOf } from './light-response.js';
import { type ResponseSink, writeResponse } from './response.js';
import { STATUS_TEXT } from './status.js';

/** How long a closing connection reads and drops what the client still sends (ms). */
export const LINGER_MS = 2000;

/** What every connection of one server shares. */
export interface ServerContext {
  readonly loop: EventLoop;
  readonly parser: HeadParser;
  readonly fetch: (request: Request, info: ConnectionInfo) => Response | PromiseLike<Response>;
  readonly maxHeaderBytes: number;
  readonly maxHeaders: number;
  readonly maxBodyBytes: number;
  readonly requestTimeoutMs: number;
  readonly bodyTimeoutMs: number;
  readonly keepAliveTimeoutMs: number;
  readonly maxConnections: number;
  readonly connections: Set<HttpProtocol>;
  /** The server is closing: finish what is in flight, take nothing new. */
  closing: boolean;
  /** The authority for requests without a Host. */
  defaultHost: string;
  /** The server serves TLS: request URLs are https:. */
  readonly secure: boolean;
  /** Called when the last connection is lost (while closing). */
  onEmpty: (() => void) | null;
  /** serve()'s `onRefused`: told of each error response the server makes itself. */
  readonly onRefused: ((status: number, request: RequestLine | null, info: ConnectionInfo) => void) | null;
}

/** A request's line, as an access log writes it: `target` as the client sent it, `version` '1.0' or '1.1'. */
export interface RequestLine {
  readonly method: string;
  readonly target: string;
  readonly version: string;
}

/** The second argument of `fetch`: where the request came from, and over what. */
export interface ConnectionInfo {
  readonly remoteAddress: Transport['remoteAddress'];
  readonly localAddress: Transport['localAddress'];
  /** The connection is TLS (`serve({ tls })`). */
  readonly secure: boolean;
  /** What TLS negotiated (docs/tls.md); null on plaintext. */
  readonly tls: TlsInfo | null;
}

const enum Deadline {
  None,
  /** The request head must arrive: 408 if part of it did, a quiet close if nothing did. */
  Head,
  /** Idle between requests: a quiet close. */
  Idle,
  /** The request body must go on arriving (while the handler reads it): 408 or a close. */
  Body,
  /** Lingering close: close now. */
  Linger,
}

const PAUSED_FOR_BODY = 1;
const PAUSED_FOR_PIPELINE = 2;

let dateSecond = -1;
let dateValue = '';

/** The `Date` field's value, made once per second. */
function httpDate(): string {
  const now = Date.now();
  const second = Math.floor(now / 1000);
  if (second !== dateSecond) {
    dateSecond = second;
    dateValue = new Date(now).toUTCString();
  }
  return dateValue;
}

export class HttpProtocol implements Protocol, ExchangeOwner, ResponseSink {
  readonly #server: ServerContext;
  readonly connection: Http1Connection;
  #transport: Transport | null = null;
  #info: ConnectionInfo | null = null;
  #exchange: Exchange | null = null;
  #deadlineKind = Deadline.None;
  /** The connection's deadline, made by the first wait. */
  #timer: LoopDeadline | null = null;
  #paused = 0;
  #writePaused = false;
  #drained: Promise<void> | null = null;
  #resolveDrained: (() => void) | null = null;
  #lingering = false;
  #lost = false;

  constructor(server: ServerContext) {
    this.#server = server;
    this.connection = new Http1Connection(
      server.parser,
      { maxHeaderBytes: server.maxHeaderBytes, maxHeaders: server.maxHeaders, maxBodyBytes: server.maxBodyBytes },
      {
        head: (head) => this.#onHead(head),
        body: (chunk) => {
          // Body bytes move the body's deadline (a field write: the core timer is not touched).
          if (this.#deadlineKind === Deadline.Body) this.#timer?.refresh();
          this.#exchange?.push(chunk);
        },
        bodyEnd: () => {
          if (this.#deadlineKind === Deadline.Body) this.#deadlineKind = Deadline.None;
          this.#exchange?.end();
        },
        error: (status, reason, head) => this.#onError(status, reason, head),
      },
    );
  }

  // ------------------------------------------------------ transport events

  connectionMade(transport: Transport): void {
    const server = this.#server;
    this.#transport = transport;
    const tls = (transport as { tls?: TlsInfo }).tls ?? null;
    this.#info = {
      remoteAddress: transport.remoteAddress,
      localAddress: transport.localAddress,
      secure: tls !== null,
      tls,
    };
    server.connections.add(this);
    if (server.connections.size > server.maxConnections || server.closing) {
      this.connection.close();
      this.#respondError(
        503,
        server.closing ? 'the server is shutting down' : `over maxConnections (${server.maxConnections})`,
        null,
      );
      return;
    }
    this.#setDeadline(Deadline.Head, server.requestTimeoutMs);
  }

  dataReceived(data: Uint8Array): void {
    if (this.#lingering) return;
    const connection = this.connection;
    connection.receive(data);
    if (this.#deadlineKind === Deadline.Idle && connection.readingHead()) {
      this.#setDeadline(Deadline.Head, this.#server.requestTimeoutMs);
    }
    // A pipelined request waits for the response before it: bounded.
    if (this.#exchange !== null && connection.buffered() > this.#server.maxHeaderBytes)
      this.#pause(PAUSED_FOR_PIPELINE, true);
  }

  /**
   * The client ended its side. With a request in flight that means it went
   * away (hyper's default too: half-closed clients are not waited for); the
   * transport closes, and the request's signal aborts.
   */
  eofReceived(): boolean {
    this.#exchange?.abort(new Error('the client closed the connection before the response'));
    return false;
  }

  connectionLost(error: Error | null): void {
    this.#lost = true;
    this.#timer?.cancel();
    this.#timer = null;
    this.#server.connections.delete(this);
    if (this.#server.connections.size === 0) this.#server.onEmpty?.();
    this.connection.close();
    const exchange = this.#exchange;
    this.#exchange = null;
    exchange?.abort(error ?? new Error('the client closed the connection'));
    this.#resolveDrained?.();
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

  // ------------------------------------------------------------- requests

  #onHead(head: RequestHead): void {
    const server = this.#server;
    const hasBody = head.chunked || head.contentLength > 0;
    if (hasBody) this.#setDeadline(Deadline.Body, server.bodyTimeoutMs);
    else this.#deadlineKind = Deadline.None;
    const exchange = new Exchange(head, server.defaultHost, server.secure, hasBody, this);
    this.#exchange = exchange;
    let result: Response | PromiseLike<Response>;
    try {
      result = server.fetch(exchange.request, this.#info as ConnectionInfo);
    } catch (error) {
      this.#handlerFailed(exchange, 'the fetch handler threw', error);
      return;
    }
    if (result instanceof Response) this.#respond(exchange, result);
    else if (result !== null && typeof (result as PromiseLike<Response>)?.then === 'function') {
      (result as PromiseLike<Response>).then(
        (response) => this.#respond(exchange, response),
        (error) => this.#handlerFailed(exchange, 'the fetch handler rejected', error),
      );
    } else {
      this.#handlerFailed(
        exchange,
        'the fetch handler returned something other than a Response',
        new TypeError(`not a Response: ${String(result)}`),
      );
    }
  }

  #respond(exchange: Exchange, response: unknown): void {
    if (this.#exchange !== exchange || this.#lost) {
      // Nobody will read it: release what its body holds.
      if (response instanceof Response && lightArgsOf(response) === undefined)
        realOf(response)
          .body?.cancel()
          .catch(() => undefined);
      return;
    }
    if (!(response instanceof Response)) {
      this.#handlerFailed(
        exchange,
        'the fetch handler resolved to something other than a Response',
        new TypeError(`not a Response: ${String(response)}`),
      );
      return;
    }
    exchange.responseStarted = true;
    let writing: Promise<void> | null;
    try {
      writing = writeResponse(this, response);
    } catch (error) {
      this.#handlerFailed(exchange, 'the response could not be written', error);
      return;
    }
    writing?.catch((error: unknown) =>
      this.#handlerFailed(exchange, 'the response body failed before its head was written', error),
    );
  }

  /** A 500 for this request only (or a closed connection if its response had begun). */
  #handlerFailed(exchange: Exchange, message: string, error: unknown): void {
    if (this.#exchange !== exchange || this.#lost) return;
    this.report(`${message}; the client got a 500`, error);
    this.#writeError(500, 'Internal Server Error', false);
  }

  #onError(status: number, reason: string, head: RequestHead | null): void {
    const exchange = this.#exchange;
    exchange?.fail(new Error(`bad request: ${reason}`));
    if (exchange?.responseStarted) {
      // Too late for a status: closing is all that is left.
      this.#lingerClose();
      return;
    }
    this.#respondError(status, reason, head);
  }

  /**
   * An error response to a request that broke a rule, took too long, or
   * came past a limit (`head`: its head, if one was read); the connection
   * closes after it. `onRefused` hears of it once it is written.
   */
  #respondError(status: number, reason: string, head: RequestHead | null): void {
    if (!this.#writeError(status, reason, true)) return;
    const onRefused = this.#server.onRefused;
    if (onRefused === null) return;
    const line =
      head === null
        ? null
        : { method: head.method(), target: head.target(), version: head.minor === 0 ? '1.0' : '1.1' };
    try {
      onRefused(status, line, this.#info as ConnectionInfo);
    } catch (error) {
      this.report('onRefused threw', error);
    }
  }

  /** Writes an error response; false if the transport was closing and nothing went out. */
  #writeError(status: number, reason: string, close: boolean): boolean {
    const body = `${reason}\n`;
    const fields = 'content-type: text/plain; charset=utf-8\r\n';
    const head = this.connection.responseHead(
      status,
      STATUS_TEXT[status] ?? '',
      fields,
      body.length,
      httpDate(),
      close || this.#server.closing,
    );
    const transport = this.#transport;
    if (transport === null || transport.isClosing()) return false;
    transport.write(head + body);
    this.ended(true);
    return true;
  }

  // ------------------------------------------------------- ResponseSink

  write(data: Uint8Array | string): void {
    const transport = this.#transport;
    if (transport !== null && !transport.isClosing()) transport.write(data);
  }

  writable(): Promise<void> | null {
    if (!this.#writePaused || this.#lost) return null;
    this.#drained ??= new Promise((resolve) => (this.#resolveDrained = resolve));
    return this.#drained;
  }

  gone(): boolean {
    return this.#lost;
  }

  date(): string {
    return httpDate();
  }

  closing(): boolean {
    return this.#server.closing;
  }

  ended(complete: boolean): void {
    const exchange = this.#exchange;
    if (this.#lost) return;
    if (!complete) {
      this.#transport?.abort();
      return;
    }
    this.#exchange = null;
    exchange?.finish();
    this.#pause(PAUSED_FOR_BODY | PAUSED_FOR_PIPELINE, false);
    // May parse a pipelined request at once (and start its exchange).
    const open = this.connection.responseEnd();
    if (!open) {
      this.#lingerClose();
      return;
    }
    if (this.#exchange === null) {
      if (this.#server.closing) this.#transport?.close();
      else if (this.connection.readingHead()) this.#setDeadline(Deadline.Head, this.#server.requestTimeoutMs);
      else this.#setDeadline(Deadline.Idle, this.#server.keepAliveTimeoutMs);
    }
  }

  report(message: string, error: unknown): void {
    this.#server.loop.callExceptionHandler({ message: `serve: ${message}`, error: error as Error });
  }

  // ------------------------------------------------------- ExchangeOwner

  pauseForBody(paused: boolean): void {
    this.#pause(PAUSED_FOR_BODY, paused);
    // While the handler does not read, a slow body is not the client's doing.
    if (paused && this.#deadlineKind === Deadline.Body) this.#deadlineKind = Deadline.None;
    else if (
      !paused &&
      this.#deadlineKind === Deadline.None &&
      this.#exchange !== null &&
      !this.connection.requestComplete()
    ) {
      this.#setDeadline(Deadline.Body, this.#server.bodyTimeoutMs);
    }
  }

  bodyWanted(): void {
    const line = this.connection.continueLine();
    if (line !== '') this.write(line);
  }

  // ------------------------------------------------------------ closing

  /** The server closes: an idle connection closes now, a busy one after its response. */
  shutdown(): void {
    if (this.#exchange === null && !this.connection.readingHead() && !this.#lingering) this.#transport?.close();
  }

  /** The server's close timeout passed: the connection goes now, whatever it was doing. */
  abort(): void {
    const exchange = this.#exchange;
    exchange?.abort(new Error('the server closed before the response was complete'));
    this.#transport?.abort();
  }

  #pause(reason: number, paused: boolean): void {
    const transport = this.#transport;
    if (transport === null || this.#lingering) return;
    const before = this.#paused;
    this.#paused = paused ? before | reason : before & ~reason;
    if (before === 0 && this.#paused !== 0) transport.pauseReading();
    else if (before !== 0 && this.#paused === 0) transport.resumeReading();
  }

  #lingerClose(): void {
    const transport = this.#transport;
    if (this.#lingering || transport === null || this.#lost) return;
    this.#lingering = true;
    this.connection.close();
    if (this.#paused !== 0) {
      this.#paused = 0;
      transport.resumeReading();
    }
    transport.writeEof();
    this.#setDeadline(Deadline.Linger, LINGER_MS);
  }

  // ------------------------------------------------------------- timers

  /** `kind` applies from now: due `ms` from now (a shorter period re-arms the core timer; deadline.ts). */
  #setDeadline(kind: Deadline, ms: number): void {
    this.#deadlineKind = kind;
    if (this.#lost) return;
    if (this.#timer === null) this.#timer = this.#server.loop.deadline(ms, this.#onTimer);
    else this.#timer.refresh(ms);
  }

  readonly #onTimer = (): void => {
    if (this.#lost || this.#deadlineKind === Deadline.None) return;
    const kind = this.#deadlineKind;
    this.#deadlineKind = Deadline.None;
    const transport = this.#transport;
    if (transport === null) return;
    if (kind === Deadline.Head && this.connection.readingHead()) {
      this.connection.close();
      this.#respondError(
        408,
        `the request head did not arrive within requestTimeoutMs (${this.#server.requestTimeoutMs})`,
        null,
      );
    } else if (kind === Deadline.Body && this.#exchange !== null) {
      this.connection.close();
      this.#onError(
        408,
        `no request body bytes arrived for bodyTimeoutMs (${this.#server.bodyTimeoutMs})`,
        this.#exchange.head,
      );
    } else if (kind === Deadline.Linger) {
      transport.close();
    } else {
      transport.close();
    }
  };
}
