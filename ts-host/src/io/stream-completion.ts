/**
 * Stream connections and servers on the completion model (`completion`, on
 * the addon or on `node:net`, or a custom completion backend): the host
 * reads into memory and delivers chunks (it stops at the high-water mark
 * until the program reads), and finishes writes; a read completes with the
 * next chunk the host received, a write when the host accepted all of it.
 * Every completion reaches the program as an expected completion the core
 * ordered. A connection whose end() is done and whose peer's end of stream
 * (or reset) arrived releases its socket at once; what it holds stays
 * readable.
 */
import type { ConnectionLimits } from '../arguments.js';
import type { CompletionBackend, CompletionListener, CompletionSocket, SocketAddress } from '../backends/backend.js';
import { ConnectionClosedError, LoopClosedError, NotSupportedError } from '../errors.js';
import { BaseConnection, type Connection, LINGER_MS, WRITTEN } from './connection.js';
import { type IoLoop, type IoToken, abortReason, fromHostError, toBytes } from './io-common.js';
import {
  type Accepted,
  BaseServer,
  type ConnectTarget,
  type ConnectionHandler,
  type ListenTarget,
  type Server,
  handling,
  listenError,
  pendingConnect,
  where,
} from './server.js';
import { CHUNK_BYTES } from '../net/slab.js';

/**
 * Hands `data` to a completion socket (a string only to one with
 * `writeText`). A write the host finished in place (IOCP's "skip completion
 * port on success") returns its outcome: null, or the error. Otherwise it
 * returns undefined and `later(outcome)` runs when the host finishes, from
 * a host callback. A host that calls back more than once is heard once.
 */
export function writeToHost(
  socket: CompletionSocket,
  data: Uint8Array | string,
  later: (error: Error | null) => void,
): Error | null | undefined {
  let inPlace = true;
  let called = false;
  let outcome: Error | null | undefined;
  const done = (error?: Error | null): void => {
    if (called) return;
    called = true;
    if (inPlace) outcome = error ?? null;
    else later(error ?? null);
  };
  if (typeof data === 'string') (socket.writeText as NonNullable<CompletionSocket['writeText']>)(data, done);
  else socket.write(data, done);
  inPlace = false;
  return outcome;
}

class CompletionConnection extends BaseConnection {
  readonly #loop: IoLoop;
  readonly #backend: CompletionBackend;
  readonly #socket: CompletionSocket;
  /** The host encodes strings itself (`writeText`). */
  readonly #writesText: boolean;
  #chunks: Uint8Array[] = [];
  #buffered = 0;
  #maxBuffered = 0;
  #flowing = true;
  #eof = false;
  #error: unknown = undefined;
  /** The socket's own error (a reset), which explains later write failures. */
  #hostError: Error | null = null;
  /** The expected completion that wakes the pending read. */
  #readToken: IoToken | null = null;
  /** Writes the host has not finished: each one's token, and how to reject it. */
  #writesInFlight = new Map<IoToken, (error: unknown) => void>();
  /** The lingering close's bound, once its writes are done. */
  #lingerTimer: { cancel(): void } | null = null;
  readonly localAddress: SocketAddress;
  readonly remoteAddress: SocketAddress;

  constructor(loop: IoLoop, backend: CompletionBackend, socket: CompletionSocket, limits: ConnectionLimits) {
    super();
    this.#loop = loop;
    this.#backend = backend;
    this.#socket = socket;
    this.#writesText = typeof socket.writeText === 'function';
    this.localAddress = socket.localAddress;
    this.remoteAddress = socket.remoteAddress;
    loop._track(this, true);
    this.startLimits(loop, limits);
    if (limits.tcp !== null) socket.setTcpOptions?.(limits.tcp);
    socket.start(
      (chunk) => {
        if (this.released) return;
        if (chunk === null) this.#eof = true;
        else this.active();
        // A lingering close reads on to the peer's end of stream, discarding.
        if (chunk !== null && !this.closing) {
          this.#chunks.push(chunk);
          this.#buffered += chunk.length;
          if (this.#buffered > this.#maxBuffered) this.#maxBuffered = this.#buffered;
          if (this.#buffered >= CHUNK_BYTES && this.#flowing) {
            this.#flowing = false;
            socket.setFlowing(false);
          }
        }
        this.#completeRead();
        if (chunk === null) this.#closeIfDone();
      },
      (error) => {
        if (this.released) return;
        this.#hostError = error;
        this.#error = fromHostError('read', error);
        this.#completeRead();
        this.#closeIfDone();
      },
    );
    socket.setFlowing(true);
  }

  override get maxBuffered(): number {
    return this.#maxBuffered;
  }

  /** The host finished a read: report the pending read's token. */
  #completeRead(): void {
    if (this.#readToken !== null) this.#backend.complete(this.#readToken.slot);
  }

  #take(): Uint8Array | null | undefined {
    const chunk = this.#chunks.shift();
    if (chunk !== undefined) {
      this.#buffered -= chunk.length;
      if (!this.#flowing && this.#buffered < CHUNK_BYTES && !this.released) {
        this.#flowing = true;
        this.#socket.setFlowing(true);
      }
      return chunk;
    }
    if (this.#error !== undefined) throw this.#error;
    if (this.#eof) return null;
    return undefined;
  }

  protected readChunk(options?: { signal?: AbortSignal }): Promise<Uint8Array | null> {
    const signal = options?.signal;
    const refused = this.refuseRead(signal);
    if (refused !== null) return refused;
    try {
      const chunk = this.#take();
      if (chunk !== undefined) return Promise.resolve(chunk);
    } catch (error) {
      return Promise.reject(error);
    }
    const waiting = this.startPendingRead(signal, this.#dropReadTokenNow);
    this.#readToken = this.#loop._expect(this.#onReadCompleted);
    return waiting;
  }

  readonly #onReadCompleted = (): void => {
    this.#readToken = null;
    let chunk: Uint8Array | null | undefined;
    try {
      chunk = this.#take();
    } catch (error) {
      this.settleRead(null, error);
      this.#closeIfDone();
      return;
    }
    if (chunk !== undefined) this.settleRead(chunk);
    else if (this.pendingRead !== null) this.#readToken = this.#loop._expect(this.#onReadCompleted);
    this.#closeIfDone();
  };

  /**
   * Both directions are done (the peer's end of stream or a reset arrived,
   * our end() given, no write in flight, no read waiting for its
   * completion): release the socket; what it holds stays readable. A
   * lingering close is over then.
   */
  #closeIfDone(): void {
    if (!this.#eof && this.#error === undefined) return;
    if (!this.ended || this.#writesInFlight.size > 0 || this.pendingRead !== null) return;
    if (this.closing) this.close();
    else this.#release();
  }

  /** What a cancelled read undoes (one function per connection, not one per read). */
  readonly #dropReadTokenNow = (): void => this.#dropReadToken();

  #dropReadToken(): void {
    if (this.#readToken !== null) this.#loop._release(this.#readToken);
    this.#readToken = null;
  }

  write(data: Uint8Array | string): Promise<void> {
    const refused = this.refuseWrite('write');
    if (refused !== null) return refused;
    let bytes: Uint8Array | string;
    if (typeof data === 'string' && data.length > 0 && this.#writesText) {
      // The host encodes it, keeping nothing of the caller's.
      bytes = data;
    } else {
      try {
        bytes = toBytes('write', data);
      } catch (error) {
        return Promise.reject(error);
      }
    }
    this.active();
    // A write the host completes in place (the kernel took all of it at
    // once) resolves at once, as on the readiness model; only a write that
    // has to wait is a completion the loop orders.
    let failure: Error | null = null;
    let token: IoToken | null = null;
    const inPlace = writeToHost(this.#socket, bytes, (error) => {
      failure = error;
      if (token !== null && this.#writesInFlight.has(token)) this.#backend.complete(token.slot);
    });
    if (inPlace !== undefined) {
      // A write the host abandoned because the socket failed reports why it failed.
      return inPlace !== null ? Promise.reject(fromHostError('write', this.#hostError ?? inPlace)) : WRITTEN;
    }
    return new Promise((resolve, reject) => {
      const expected: IoToken = this.#loop._expect(() => {
        this.#writesInFlight.delete(expected);
        this.active();
        if (failure) reject(fromHostError('write', this.#hostError ?? failure));
        else resolve();
        if (this.closing && this.#writesInFlight.size === 0) this.#linger();
        else this.#closeIfDone();
      });
      token = expected;
      this.#writesInFlight.set(expected, reject);
    });
  }

  end(): Promise<void> {
    const refused = this.refuseWrite('end');
    if (refused !== null) return refused;
    this.ended = true;
    this.#socket.end();
    this.#closeIfDone();
    return Promise.resolve();
  }

  closeGracefully(): void {
    if (this.isClosed || this.closing) return;
    this.closing = true;
    this.settleRead(null, new ConnectionClosedError('read: the connection was closed by its server'));
    this.#dropReadToken();
    this.#chunks = [];
    this.#buffered = 0;
    if (this.released) {
      this.close();
      return;
    }
    if (!this.#flowing) {
      this.#flowing = true;
      this.#socket.setFlowing(true);
    }
    if (this.#writesInFlight.size === 0) this.#linger();
  }

  /** The writes are done: half-close, and wait at most LINGER_MS for the peer's end of stream. */
  #linger(): void {
    if (!this.ended) {
      this.ended = true;
      this.#socket.end();
    }
    this.#closeIfDone();
    if (this.isClosed) return;
    this.#lingerTimer ??= this.#loop.callLater(LINGER_MS, () => {
      this.#lingerTimer = null;
      this.close();
    });
  }

  /** Lets go of the socket, once. */
  #release(): void {
    if (this.released) return;
    this.#socket.destroy();
    this.#loop._track(this, false);
    this.markReleased();
  }

  protected closeWith(closedError: Error): void {
    if (this.isClosed) return;
    this.#lingerTimer?.cancel();
    this.#lingerTimer = null;
    this.#release();
    this.isClosed = true;
    this.#dropReadToken();
    const writes = [...this.#writesInFlight];
    this.#writesInFlight.clear();
    for (const [token, reject] of writes) {
      this.#loop._release(token);
      reject(closedError);
    }
    this.settleRead(null, closedError);
    this.#chunks = [];
    this.#buffered = 0;
    this.markClosed();
  }
}

class CompletionServer extends BaseServer {
  readonly #backend: CompletionBackend;
  readonly #open: (socket: CompletionSocket) => Accepted;
  #listener: CompletionListener | null = null;
  #address: SocketAddress | null = null;
  #accepted: CompletionSocket[] = [];
  #acceptToken: IoToken | null = null;

  constructor(
    loop: IoLoop,
    backend: CompletionBackend,
    open: (socket: CompletionSocket) => Accepted,
    maxConnections: number,
  ) {
    super(loop, maxConnections);
    this.#backend = backend;
    this.#open = open;
  }

  listen(options: ListenTarget): Promise<Server> {
    return new Promise((resolve, reject) => {
      this.#backend.listen(
        options,
        (socket) => {
          if (this.isClosing) {
            socket.destroy();
            return;
          }
          // The host completed an accept: queue the socket, report once.
          this.accepted();
          this.#accepted.push(socket);
          if (this.#acceptToken === null) {
            this.#acceptToken = this.loop._expect(this.#onAccepted);
            this.#backend.complete(this.#acceptToken.slot);
          }
        },
        (error, listener) => {
          if (error !== null || listener === undefined) {
            const code = (error as { code?: unknown } | null)?.code;
            // A host that cannot adopt a descriptor says so itself.
            if (error instanceof NotSupportedError) reject(error);
            else if (options.fd !== undefined && typeof code === 'string') reject(listenError(code, options, error));
            else reject(fromHostError('listen', error, where(options)));
            return;
          }
          if (this.loop.isClosed()) {
            // The loop closed while the host was listening: nobody will close it later.
            listener.close(() => undefined);
            reject(new LoopClosedError('listen'));
            return;
          }
          this.#listener = listener;
          this.#address = listener.address();
          this.loop._track(this, true);
          resolve(this);
        },
        (error) => {
          if (!this.isClosing) this.acceptFailed(fromHostError('accept', error));
        },
      );
    });
  }

  readonly #onAccepted = (): void => {
    this.#acceptToken = null;
    const sockets = this.#accepted;
    this.#accepted = [];
    for (const socket of sockets) {
      if (this.full()) socket.destroy();
      else this.adopt(this.#open(socket));
    }
  };

  address(): SocketAddress {
    return { ...(this.#address as SocketAddress) };
  }

  protected stopListening(): Promise<void> | void {
    if (this.#acceptToken !== null) this.loop._release(this.#acceptToken);
    this.#acceptToken = null;
    for (const socket of this.#accepted) socket.destroy();
    this.#accepted = [];
    // Node's server.close() waits for connections itself; ours are counted
    // by the server, so stop listening and count.
    const listener = this.#listener;
    this.#listener = null;
    if (listener === null) return;
    // A host that lets go of the port later (Deno, once the accept in
    // flight has failed) calls back later: close() waits for it, so that
    // the port is free when it resolves. The callback reaches the program
    // through the loop, as every completion does; until it has run, the
    // loop tracks it, so that a loop closing first (its queued completion
    // then never runs) settles it.
    let released = false;
    let later: (() => void) | null = null;
    listener.close(() => {
      released = true;
      later?.();
    });
    if (released) return;
    return new Promise<void>((resolve) => {
      later = () => {
        if (this.loop.isClosed()) {
          resolve();
          return;
        }
        const pending = {
          close: () => {
            this.loop._track(pending, false);
            resolve();
          },
        };
        this.loop._track(pending, true);
        this.#backend.complete(this.loop._expect(pending.close).slot);
      };
    });
  }
}

/** Listens; `open(socket)` makes what each accepted connection becomes. */
export function listenCompletionWith(
  loop: IoLoop,
  backend: CompletionBackend,
  open: (socket: CompletionSocket) => Accepted,
  options: ListenTarget,
): Promise<Server> {
  return new CompletionServer(loop, backend, open, options.maxConnections).listen(options);
}

export function listenCompletion(
  loop: IoLoop,
  backend: CompletionBackend,
  onConnection: ConnectionHandler,
  options: ListenTarget,
): Promise<Server> {
  return listenCompletionWith(
    loop,
    backend,
    handling(
      loop,
      onConnection,
      (socket: CompletionSocket) => new CompletionConnection(loop, backend, socket, options.limits),
    ),
    options,
  );
}

export function connectCompletion(
  loop: IoLoop,
  backend: CompletionBackend,
  options: ConnectTarget,
): Promise<Connection> {
  return connectCompletionWith(
    loop,
    backend,
    options,
    (socket) => new CompletionConnection(loop, backend, socket, options.limits),
  );
}

/**
 * Connects; `open(socket)` makes what the connected socket becomes. If
 * `options.signal` aborts first, the attempt is abandoned: the backend's
 * cancel function runs if it returned one, a socket it still delivers is
 * destroyed, and the promise rejects with the signal's reason.
 */
export function connectCompletionWith<T>(
  loop: IoLoop,
  backend: CompletionBackend,
  options: ConnectTarget,
  open: (socket: CompletionSocket) => T,
): Promise<T> {
  const at = where(options);
  const signal = options.signal;
  if (signal?.aborted) return Promise.reject(abortReason(signal, 'connect'));
  return new Promise((resolve, reject) => {
    let outcome: { error: Error | null; socket?: CompletionSocket } | null = null;
    let abandoned = false;
    let cancel: void | (() => void);
    const attempt = pendingConnect(loop, signal, reject, () => {
      abandoned = true;
      loop._release(token);
      // Connected already, its completion not yet run: that socket is ours to close.
      if (outcome?.socket !== undefined) outcome.socket.destroy();
      else if (typeof cancel === 'function') cancel();
    });
    const token = loop._expect(() => {
      if (!attempt.settle()) return;
      const o = outcome as { error: Error | null; socket?: CompletionSocket };
      if (o.error !== null || o.socket === undefined) reject(fromHostError('connect', o.error, at));
      else {
        try {
          resolve(open(o.socket));
        } catch (error) {
          reject(error);
        }
      }
    });
    const target =
      options.path === undefined
        ? { host: options.host, port: options.port }
        : { host: '', port: options.port, path: options.path };
    cancel = backend.connect(target, (error, socket) => {
      if (abandoned) {
        socket?.destroy();
        return;
      }
      outcome = { error, socket };
      backend.complete(token.slot);
    });
  });
}
