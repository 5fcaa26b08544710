/**
 * The `completion` backend on Deno's own sockets: `Deno.listen` and
 * `Deno.connect` (TCP, and Unix domain sockets with `transport: 'unix'`),
 * which `completion` picks on Deno (implementation 'deno'). Deno's
 * `node:net` is a compatibility layer over the same operations; going to
 * them directly saves its streams and event emitters on every read and
 * write (bench/RESULTS.md, "Deno and Bun").
 *
 * Deno's I/O is promise-shaped: a read or write is an operation whose
 * promise settles when the runtime finished it, which is the completion
 * model already. How an operation completes:
 * - read: while a socket is flowing one read is in flight; each one that
 *   returns bytes hands them over (`onData`) and starts the next, until the
 *   connection pauses it (`setFlowing(false)`) or the stream ends. A read in
 *   flight when it pauses still delivers (the chunk in flight of the
 *   high-water mark).
 * - write: one `conn.write` at a time, repeated until the runtime took all
 *   of a buffer; then `done`, and the next queued one.
 * - accept: one `listener.accept()` in flight while listening.
 * - connect: `Deno.connect`, abandoned through its AbortSignal.
 * - a listening socket another process handed over (`fd`): refused,
 *   NotSupportedError; `Deno.listen` takes no descriptor (Deno's `node:net`
 *   does: `createNetCompletionBackend`).
 *
 * Every completion settles a promise, so it arrives in a microtask: the
 * backend wakes the loop with `wake(false)` (a host turn, then one iteration
 * for everything that completed meanwhile). UDP is `node:dgram`'s
 * (net/node-dgram.ts): Deno's own `Deno.listenDatagram` is unstable.
 */
import {
  acceptRetryDelay,
  refuseFixedBacklog,
  type BackendSink,
  type CompletionBackend,
  type CompletionListener,
  type CompletionSocket,
  type SocketAddress,
  type TcpOptions,
  acceptErrorIsTransient,
} from './backend.js';
import { TokenQueue } from './token-queue.js';
import { performanceClock } from './wall-clock.js';
import { unixAddress } from '../net/address.js';
import { nodeDatagram } from '../net/node-dgram.js';
import { CHUNK_BYTES } from '../net/slab.js';
import { NotSupportedError } from '../errors.js';

/** The parts of Deno's namespace this backend uses (typed here: other hosts' type checks know no `Deno`). */
interface DenoAddr {
  transport: string;
  hostname?: string;
  port?: number;
  path?: string | null;
}
interface DenoConn {
  read(into: Uint8Array): Promise<number | null>;
  write(data: Uint8Array): Promise<number>;
  closeWrite(): Promise<void>;
  close(): void;
  readonly localAddr: DenoAddr;
  readonly remoteAddr: DenoAddr;
  setNoDelay?(noDelay?: boolean): void;
  setKeepAlive?(keepAlive?: boolean): void;
}
interface DenoListener {
  accept(): Promise<DenoConn>;
  close(): void;
  readonly addr: DenoAddr;
}
interface DenoNamespace {
  listen(
    options: { hostname?: string; port?: number; tcpBacklog?: number; reusePort?: boolean; transport?: 'tcp' } | { transport: 'unix'; path: string },
  ): DenoListener;
  connect(options: { hostname?: string; port?: number; signal?: AbortSignal; transport?: 'tcp' } | { transport: 'unix'; path: string }): Promise<DenoConn>;
  removeSync(path: string): void;
  /** Present only under `--unstable-net`. */
  listenDatagram?: unknown;
}

/** The queue length Deno asks listen(2) for on a Unix socket: its `tcpBacklog` is for TCP only (Deno 2.9). */
const DENO_UNIX_BACKLOG = 1024;
const BACKEND = "the 'completion' backend on Deno";

/**
 * Whether `Deno.listen` may be given `reusePort: true`: only under
 * `--unstable-net` (or the `net` feature in deno.json), and without it
 * Deno ends the process rather than throw. The same flag is what exposes
 * `Deno.listenDatagram`, so its presence says whether the flag is on.
 */
function reusePortAllowed(deno: DenoNamespace): boolean {
  return typeof deno.listenDatagram === 'function';
}

/** Deno's namespace, or null on any other host. */
export function denoNamespace(): DenoNamespace | null {
  const deno = (globalThis as { Deno?: Partial<DenoNamespace> }).Deno;
  return typeof deno?.listen === 'function' && typeof deno.connect === 'function' ? (deno as DenoNamespace) : null;
}

/**
 * A write this small, when nothing else is being written, is copied and
 * reported done at once, as a kernel takes a write into its socket buffer:
 * Deno's write is an operation that settles a promise later, so without
 * this every write would cost the program a loop iteration of its own.
 * Later writes wait for it, so at most this much is held.
 */
const IN_PLACE_BYTES = 64 * 1024;

/**
 * The copy of a write reported done in place is the backend's alone (Deno
 * writes it; the program never sees it), so one of at most SLAB_COPY_BYTES
 * is carved out of a shared slab of SLAB_BYTES instead of getting an
 * ArrayBuffer of its own: Deno allocates every ArrayBuffer outside V8's
 * heap, at about 0.15 us of CPU per 64-byte echo round trip. A slab is
 * dropped, not reused, once full: the copies in flight keep it alive, and
 * the collector frees it after the last one went out (a connection whose
 * peer does not read holds at most one such copy, so at most one slab).
 */
const SLAB_COPY_BYTES = 1024;
const SLAB_BYTES = 16 * 1024;
let slab = new Uint8Array(0);
let slabUsed = 0;

/** A copy of `data` for Deno to write after the program was told it is done. */
function heldCopy(data: Uint8Array): Uint8Array {
  const n = data.length;
  if (n > SLAB_COPY_BYTES) return data.slice();
  if (slabUsed + n > slab.length) {
    slab = new Uint8Array(SLAB_BYTES);
    slabUsed = 0;
  }
  const copy = slab.subarray(slabUsed, slabUsed + n);
  copy.set(data);
  slabUsed += n;
  return copy;
}

/**
 * A connection's first read buffer; a read that fills it gets CHUNK_BYTES
 * next time. Each read is copied out of it to an ArrayBuffer of exactly
 * its size, the chunk's own (docs/design.md, "Who owns a chunk's bytes").
 */
const FIRST_READ_BYTES = 16 * 1024;

function addressOf(addr: DenoAddr): SocketAddress {
  if (addr.transport === 'unix') return unixAddress(addr.path ?? '');
  const host = addr.hostname ?? '';
  return { host, port: addr.port ?? 0, family: host.includes(':') ? 'IPv6' : 'IPv4' };
}

/** Whether an operation failed because this side closed the resource (nothing to report). */
function closedHere(error: unknown): boolean {
  const name = (error as { name?: string } | null)?.name;
  return name === 'BadResource' || name === 'Interrupted';
}

interface QueuedWrite {
  bytes: Uint8Array;
  /** How much of it Deno took so far. */
  offset: number;
  /** Null for a write reported done already (IN_PLACE_BYTES). */
  done: ((error?: Error | null) => void) | null;
}

class DenoSocket implements CompletionSocket {
  readonly #conn: DenoConn;
  readonly #onClose: (socket: DenoSocket) => void;
  #onData: ((chunk: Uint8Array | null) => void) | null = null;
  #onError: ((error: Error) => void) | null = null;
  #flowing = false;
  #reading = false;
  #eof = false;
  #failed = false;
  #destroyed = false;
  #connClosed = false;
  #buffer: Uint8Array | null = null;
  #writes: QueuedWrite[] = [];
  /** A `conn.write` of the first queued write is in flight. */
  #writing = false;
  #endRequested = false;
  readonly localAddress: SocketAddress;
  readonly remoteAddress: SocketAddress;

  constructor(conn: DenoConn, onClose: (socket: DenoSocket) => void, unixEnds?: { local: string; remote: string }) {
    this.#conn = conn;
    this.#onClose = onClose;
    if (unixEnds !== undefined) {
      this.localAddress = unixAddress(unixEnds.local);
      this.remoteAddress = unixAddress(unixEnds.remote);
    } else {
      conn.setNoDelay?.(true);
      this.localAddress = addressOf(conn.localAddr);
      this.remoteAddress = addressOf(conn.remoteAddr);
    }
  }

  start(onData: (chunk: Uint8Array | null) => void, onError: (error: Error) => void): void {
    this.#onData = onData;
    this.#onError = onError;
    this.#read();
  }

  setFlowing(flowing: boolean): void {
    this.#flowing = flowing;
    this.#read();
  }

  /** Starts the read loop unless it runs already, or has no reason to. */
  #read(): void {
    if (this.#reading || !this.#flowing || this.#eof || this.#destroyed || this.#onData === null) return;
    this.#reading = true;
    void this.#readLoop();
  }

  async #readLoop(): Promise<void> {
    try {
      while (this.#flowing && !this.#eof && !this.#destroyed) {
        const buffer = (this.#buffer ??= new Uint8Array(FIRST_READ_BYTES));
        const n = await this.#conn.read(buffer);
        if (this.#destroyed) return;
        if (n === null) {
          this.#eof = true;
          (this.#onData as (chunk: Uint8Array | null) => void)(null);
          return;
        }
        if (n === 0) continue;
        const chunk = buffer.slice(0, n);
        if (n === buffer.length && n < CHUNK_BYTES) this.#buffer = new Uint8Array(CHUNK_BYTES);
        (this.#onData as (chunk: Uint8Array | null) => void)(chunk);
      }
    } catch (error) {
      if (this.#destroyed || closedHere(error)) return;
      this.#fail(error as Error);
    } finally {
      this.#reading = false;
    }
  }

  /** The connection failed (a reset): reported once, and nothing more is read. */
  #fail(error: Error): void {
    if (this.#failed) return;
    this.#failed = true;
    this.#eof = true;
    this.#onError?.(error);
  }

  write(data: Uint8Array, done: (error?: Error | null) => void): void {
    if (this.#destroyed) {
      done(Object.assign(new Error('write failed: EBADF'), { code: 'EBADF', syscall: 'write' }));
      return;
    }
    if (this.#writes.length === 0 && data.length <= IN_PLACE_BYTES) {
      this.#writes.push({ bytes: heldCopy(data), offset: 0, done: null });
      this.#writeNext();
      done(null);
      return;
    }
    // Kept past this call: a copy, so that a protocol's caller may reuse its array once write() returns.
    this.#writes.push({ bytes: data.slice(), offset: 0, done });
    if (!this.#writing) this.#writeNext();
  }

  /**
   * Hands the rest of the first queued write to Deno. A chain of `then`s
   * rather than an async loop: one promise per `conn.write`, not three.
   */
  #writeNext(): void {
    const w = this.#writes[0] as QueuedWrite;
    this.#writing = true;
    let written: Promise<number>;
    try {
      written = this.#conn.write(w.offset === 0 ? w.bytes : w.bytes.subarray(w.offset));
    } catch (error) {
      this.#writeFailed(error);
      return;
    }
    written.then(this.#wrote, this.#writeFailed);
  }

  readonly #wrote = (n: number): void => {
    const w = this.#writes[0];
    if (w === undefined) {
      // destroy() dropped it.
      this.#writing = false;
      return;
    }
    w.offset += n;
    if (w.offset < w.bytes.length) {
      // Destroyed meanwhile: a write not reported done yet goes with the connection.
      if (this.#destroyed && w.done !== null) this.#writing = false;
      else this.#writeNext();
      return;
    }
    this.#writes.shift();
    if (this.#destroyed) {
      // The write destroy() waited for (it was reported done) went out: now close.
      this.#writing = false;
      this.#closeConn();
      return;
    }
    w.done?.(null);
    if (this.#writes.length > 0 && !this.#destroyed) {
      this.#writeNext();
      return;
    }
    this.#writing = false;
    if (this.#endRequested && !this.#destroyed) this.#shutdown();
  };

  readonly #writeFailed = (error: unknown): void => {
    this.#writing = false;
    if (this.#destroyed) {
      this.#closeConn();
      return;
    }
    // The connection cannot take more: every queued write fails with it.
    const failed = this.#writes;
    this.#writes = [];
    for (const f of failed) f.done?.(error as Error);
    // A write reported done already has only the connection to fail.
    if (failed[0]?.done === null) this.#fail(error as Error);
  };

  end(): void {
    if (this.#endRequested || this.#destroyed) return;
    this.#endRequested = true;
    if (this.#writes.length === 0) this.#shutdown();
  }

  #shutdown(): void {
    // ENOTCONN: the peer is gone already; there is nothing left to end.
    this.#conn.closeWrite().catch(() => undefined);
  }

  /**
   * Closes now. A write reported done but still in flight goes out first,
   * as a kernel sends what it took before the close (`force`: not even that,
   * when the backend closes).
   */
  setTcpOptions({ noDelay, keepAliveMs }: TcpOptions): void {
    if (noDelay !== null) this.#conn.setNoDelay?.(noDelay);
    // On or off: Deno takes no idle time (checkTcpOptions refused one).
    if (keepAliveMs !== null) this.#conn.setKeepAlive?.(keepAliveMs >= 0);
  }

  destroy(force = false): void {
    if (this.#destroyed) {
      if (force) this.#closeConn();
      return;
    }
    this.#destroyed = true;
    this.#onData = null;
    const inFlight = this.#writes[0];
    if (inFlight !== undefined && inFlight.done === null && !force) this.#writes = [inFlight];
    else {
      this.#writes = [];
      this.#closeConn();
    }
  }

  #closeConn(): void {
    if (this.#connClosed) return;
    this.#connClosed = true;
    this.#writes = [];
    try {
      this.#conn.close();
    } catch {
      // Closed already (the runtime let go of it after an error).
    }
    this.#onClose(this);
  }
}

/** A listener: one accept in flight while listening; paused (acceptRetryDelay) after a failure that would repeat. */
class DenoAcceptor implements CompletionListener {
  readonly #listener: DenoListener;
  readonly #deno: DenoNamespace;
  readonly #path: string | undefined;
  readonly #accepted: (conn: DenoConn) => void;
  readonly #failed: (error: Error) => void;
  readonly #later: (delayMs: number, fn: () => void) => void;
  readonly #address: SocketAddress;
  /** The accept in flight: Deno lets go of the port once it has failed. */
  #inFlight: Promise<DenoConn> | null = null;
  #closed = false;
  /** Accepts in a row that failed for lack of resources: the back-off's count. */
  #failures = 0;

  constructor(
    deno: DenoNamespace,
    listener: DenoListener,
    path: string | undefined,
    accepted: (conn: DenoConn) => void,
    failed: (error: Error) => void,
    later: (delayMs: number, fn: () => void) => void,
  ) {
    this.#deno = deno;
    this.#listener = listener;
    this.#path = path;
    this.#accepted = accepted;
    this.#failed = failed;
    this.#later = later;
    this.#address = path === undefined ? addressOf(listener.addr) : unixAddress(path);
  }

  async accept(): Promise<void> {
    while (!this.#closed) {
      let conn: DenoConn;
      try {
        this.#inFlight = this.#listener.accept();
        conn = await this.#inFlight;
        this.#inFlight = null;
      } catch (error) {
        this.#inFlight = null;
        if (this.#closed || closedHere(error)) return;
        const code = (error as { code?: unknown }).code;
        if (typeof code === 'string' && acceptErrorIsTransient(code)) continue;
        // Out of descriptors, say: accepting on at once would fail again.
        this.#failed(error as Error);
        this.#later(acceptRetryDelay(++this.#failures), () => void this.accept());
        return;
      }
      this.#failures = 0;
      if (this.#closed) {
        conn.close();
        return;
      }
      this.#accepted(conn);
    }
  }

  address(): SocketAddress {
    return { ...this.#address };
  }

  /** `done` once the port is free: Deno closes a listener's socket only after the accept in flight failed. */
  close(done: () => void): void {
    if (this.#closed) {
      done();
      return;
    }
    this.#closed = true;
    try {
      this.#listener.close();
    } catch {
      // Closed already.
    }
    // Deno leaves a Unix listener's socket file behind; the other backends remove it.
    if (this.#path !== undefined) {
      try {
        this.#deno.removeSync(this.#path);
      } catch {
        // Gone already.
      }
    }
    const inFlight = this.#inFlight;
    if (inFlight === null) done();
    else inFlight.then(done, done);
  }
}

/** The `completion` backend on `Deno.listen`/`Deno.connect`. Throws on any host but Deno. */
export function createDenoCompletionBackend(): CompletionBackend {
  const deno = denoNamespace();
  if (deno === null) throw new Error('the Deno completion backend needs Deno.listen and Deno.connect (Deno only)');
  const now = performanceClock();
  const queue = new TokenQueue();
  let sink: BackendSink | null = null;
  let closed = false;
  const sockets = new Set<DenoSocket>();
  const acceptors = new Set<DenoAcceptor>();
  const connecting = new Set<() => void>();
  const forget = (socket: DenoSocket) => sockets.delete(socket);
  const adopt = (conn: DenoConn, unixEnds?: { local: string; remote: string }): DenoSocket => {
    const socket = new DenoSocket(conn, forget, unixEnds);
    sockets.add(socket);
    return socket;
  };
  const refused = (syscall: string) => Object.assign(new Error(`${syscall} failed: EBADF`), { code: 'EBADF', syscall });
  const datagram = nodeDatagram();

  return {
    name: 'completion',
    model: 'completion',
    implementation: 'deno',
    now,
    checkTcpOptions: ({ keepAliveMs }) =>
      keepAliveMs !== null && keepAliveMs > 0
        ? "Deno's sockets take keep-alive on or off (keepAlive: true), not its idle time"
        : null,
    attach(s) {
      sink = s;
    },
    takeCompleted(max) {
      return queue.take(max);
    },
    complete(token) {
      queue.push(token);
      // From a promise's continuation (a microtask) or a loop callback: never at once.
      sink?.wake(false);
    },
    listen({ host, port, backlog, path, reusePort, fd }, onSocket, done, onAcceptError) {
      if (path !== undefined) refuseFixedBacklog(backlog, DENO_UNIX_BACKLOG, `${BACKEND} (a Unix socket)`, 'Deno.listen');
      if (reusePort === true && !reusePortAllowed(deno)) {
        throw new NotSupportedError(`listen: reusePort is not supported by ${BACKEND} without --unstable-net (Deno.listen shares a port only under that flag)`);
      }
      if (closed) {
        done(refused('listen'));
        return;
      }
      if (fd !== undefined) {
        done(
          new NotSupportedError(
            `${BACKEND} cannot adopt a listening socket (fd): Deno.listen takes none; ` +
              "Deno's node:net can (backend: 'wasmloop:createNetCompletionBackend')",
          ),
        );
        return;
      }
      let listener: DenoListener;
      try {
        listener =
          path === undefined
            ? deno.listen({ hostname: host, port, tcpBacklog: backlog, ...(reusePort === true ? { reusePort: true } : {}), transport: 'tcp' })
            : deno.listen({ transport: 'unix', path });
      } catch (error) {
        done(error as Error);
        return;
      }
      const ends = path === undefined ? undefined : { local: path, remote: '' };
      const acceptor = new DenoAcceptor(
        deno,
        listener,
        path,
        (conn) => onSocket(adopt(conn, ends)),
        (error) => onAcceptError?.(error),
        (delayMs, fn) => sink?.schedule(delayMs, fn),
      );
      acceptors.add(acceptor);
      void acceptor.accept();
      done(null, {
        address: () => acceptor.address(),
        close(closedDone) {
          acceptors.delete(acceptor);
          acceptor.close(closedDone);
        },
      });
    },
    connect({ host, port, path }, done) {
      if (closed) {
        done(refused('connect'));
        return;
      }
      const controller = new AbortController();
      let abandoned = false;
      const cancel = () => {
        if (!connecting.delete(cancel)) return;
        abandoned = true;
        controller.abort();
      };
      connecting.add(cancel);
      const attempt =
        path === undefined ? deno.connect({ hostname: host, port, signal: controller.signal, transport: 'tcp' }) : deno.connect({ transport: 'unix', path });
      attempt.then(
        (conn) => {
          if (abandoned) {
            // A Unix connect has no signal: it may still arrive.
            conn.close();
            return;
          }
          connecting.delete(cancel);
          done(null, adopt(conn, path === undefined ? undefined : { local: '', remote: path }));
        },
        (error: Error) => {
          if (abandoned) return;
          connecting.delete(cancel);
          done(error);
        },
      );
      return cancel;
    },
    ...(datagram === null ? {} : { datagram }),
    close() {
      closed = true;
      for (const cancel of [...connecting]) cancel();
      for (const socket of [...sockets]) socket.destroy(true);
      for (const acceptor of [...acceptors]) acceptor.close(() => undefined);
      acceptors.clear();
      sink = null;
    },
  };
}
