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
  type SocketAddress,
  acceptErrorIsTransient,
} from './backend.js';
import {
  addressOf,
  closedHere,
  DenoSocket,
  type DenoConn,
  type DenoListener,
  type DenoNamespace,
} from './deno-socket.js';
import { TokenQueue } from './token-queue.js';
import { performanceClock } from './wall-clock.js';
import { unixAddress } from '../net/address.js';
import { nodeDatagram } from '../net/node-dgram.js';
import { NotSupportedError } from '../errors.js';

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
      if (path !== undefined)
        refuseFixedBacklog(backlog, DENO_UNIX_BACKLOG, `${BACKEND} (a Unix socket)`, 'Deno.listen');
      if (reusePort === true && !reusePortAllowed(deno)) {
        throw new NotSupportedError(
          `listen: reusePort is not supported by ${BACKEND} without --unstable-net (Deno.listen shares a port only under that flag)`,
        );
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
            ? deno.listen({
                hostname: host,
                port,
                tcpBacklog: backlog,
                ...(reusePort === true ? { reusePort: true } : {}),
                transport: 'tcp',
              })
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
        path === undefined
          ? deno.connect({ hostname: host, port, signal: controller.signal, transport: 'tcp' })
          : deno.connect({ transport: 'unix', path });
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
