/**
 * The backend contract: what a backend gives the loop. docs/backends.md
 * explains it for people writing their own (`createLoop({ backend:
 * './file.js:factory' })`).
 *
 * Every backend supplies the loop's clock. A backend may also supply I/O in
 * one of two models:
 *
 * - `readiness` (the selector model): the backend watches descriptors and
 *   reports tokens whose descriptor became readable or writable; the program
 *   then reads or writes itself, with the backend's non-blocking socket
 *   operations.
 * - `completion` (the proactor model): the backend performs operations and
 *   reports the tokens of those that finished.
 *
 * Tokens are the loop's: slots of callbacks in the loop core. The backend
 * queues them and hands them over when the core asks (once per iteration);
 * it calls `wake()` so that a loop sleeping on a timer notices.
 */
import { NotSupportedError } from '../errors.js';
import { DEFAULT_BACKLOG } from '../limits.js';

/** What the loop gives its backend. */
export interface BackendSink {
  /**
   * Tokens were queued: run an iteration soon. Pass `fromHostCallback: true`
   * only from a host macrotask (an I/O callback), never from a microtask: the
   * loop then runs the iteration at once, inside that callback, saving a host
   * turn; otherwise it schedules one.
   */
  wake(fromHostCallback?: boolean): void;
  /**
   * Runs `fn` as a loop callback `delayMs` of loop time from now (a timer).
   * For backends that simulate I/O in loop time, as the virtual one does.
   */
  schedule(delayMs: number, fn: () => void): void;
}

export interface BackendBase {
  /** The name `loop.backend` reports. */
  readonly name: string;
  /** `'none'`: the backend supplies only a clock (timers and callbacks work, I/O does not). */
  readonly model: 'readiness' | 'completion' | 'none';
  /**
   * Optional, informational: how this backend does its I/O when a model has
   * more than one implementation (the built-in `completion` backend reports
   * `'native'` or `'node:net'`).
   */
  readonly implementation?: string;
  /**
   * Monotonic time in nanoseconds since a point the backend fixes, as a
   * number. Must never decrease. Read at most once per loop iteration.
   */
  now(): number;
  /** Called once, when the loop is created. */
  attach(sink: BackendSink): void;
  /**
   * Optional: the host-timer delay (wall ms) to wait for `loopMs` ms of this
   * backend's clock. Without it the loop assumes its clock runs at wall
   * speed. Waking early is harmless (nothing fires before its deadline).
   */
  hostDelay?(loopMs: number): number;
  /**
   * Optional: whether this backend's TCP connections can take `options`
   * (createServer's and createConnection's `noDelay` and `keepAlive`):
   * null if they can, else why not (the loop refuses the call with
   * NotSupportedError saying so). Without it, a connection takes none. The
   * options are then set on each connection: by `sockets.setTcpOptions`
   * (readiness) or the socket's `setTcpOptions` (completion).
   */
  checkTcpOptions?(options: TcpOptions): string | null;
  /** Releases what the backend holds; called once, by `loop.close()`. */
  close(): void;
}

/**
 * TCP options a connection asks for; null leaves one as the backend makes
 * it (the built-in backends: noDelay on, keep-alive off).
 */
export interface TcpOptions {
  /** TCP_NODELAY: true sends each write at once; false lets Nagle's algorithm coalesce small ones. */
  noDelay: boolean | null;
  /**
   * SO_KEEPALIVE: -1 off; 0 on, after the system's idle time (Linux: 2 h);
   * > 0 on, probing after that many ms without traffic (whole seconds: TCP_KEEPIDLE).
   */
  keepAliveMs: number | null;
}

/** Readiness: 1 = readable, 2 = writable. */
export type Direction = 1 | 2;
export const READABLE: Direction = 1;
export const WRITABLE: Direction = 2;

/**
 * Non-blocking socket operations of a readiness backend. Each returns a
 * non-negative result or a negative errno (`-EAGAIN` when it would block).
 * Addresses are numeric IPv4 or IPv6 strings.
 */
export interface SocketOps {
  listen(host: string, port: number, backlog: number, reusePort?: boolean): number;
  accept(fd: number): number;
  connect(host: string, port: number): number;
  /** After a connect became writable: 0, or the negative errno it failed with. */
  connectError(fd: number): number;
  read(fd: number, bytes: Uint8Array, offset: number, length: number): number;
  write(fd: number, bytes: Uint8Array, offset: number, length: number): number;
  shutdownWrite(fd: number): number;
  close(fd: number): number;
  /** "family ip port" of the local or remote end, or a negative errno. */
  address(fd: number, peer: boolean): string | number;
  /** A non-blocking pipe: [readFd, writeFd], or a negative errno. */
  pipe(): number[] | number;
  /**
   * Unix domain sockets (optional: without them `path` is NotSupportedError).
   * `listenUnix` fails with -EADDRINUSE if `path` exists; `unlink` removes a
   * closed listener's socket file; `address` gives "unix PATH".
   */
  listenUnix?(path: string, backlog: number): number;
  connectUnix?(path: string): number;
  unlink?(path: string): number;
  /**
   * A listening socket another process handed over (optional: without it
   * `fd` is NotSupportedError): the same descriptor back once it is a
   * listening TCP or Unix stream socket, made non-blocking; else -EBADF
   * (not open), -ENOTSOCK (not a socket), -EAFNOSUPPORT (neither TCP nor
   * Unix), -EPROTOTYPE (not a stream socket) or -EINVAL (not listening).
   * It is then the server's: closed with it, its socket file left alone.
   */
  adoptListener?(fd: number): number;
  /**
   * UDP (optional: without them a datagram endpoint is NotSupportedError).
   * `sendTo` with a null host sends to the connected destination; `recvFrom`
   * returns one datagram's length (-EAGAIN when none waits) and
   * `recvAddress` its sender, as `address` formats addresses.
   */
  udpBind?(host: string, port: number): number;
  udpConnect?(fd: number, host: string, port: number): number;
  sendTo?(fd: number, bytes: Uint8Array, offset: number, length: number, host: string | null, port: number): number;
  recvFrom?(fd: number, bytes: Uint8Array, offset: number, length: number): number;
  recvAddress?(): string;
  /**
   * TCP options (with `checkTcpOptions`): sets those not null on a
   * connected TCP socket, 0 or -errno; `tcpOptions` reads them back as
   * [noDelay 0|1, keepAlive 0|1, keep-alive idle seconds].
   */
  setTcpOptions?(fd: number, noDelay: boolean | null, keepAliveMs: number | null): number;
  tcpOptions?(fd: number): number[] | number;
}

export interface ReadinessBackend extends BackendBase {
  readonly model: 'readiness';
  /** Tokens that became ready since the last call, each once, oldest first, at most `max`. */
  takeReady(max: number): Uint32Array;
  /**
   * Reports `token` whenever `fd` is ready in `direction`; 0 or a negative
   * errno. `edge`, a hint: the watcher handles edge-triggered readiness (it
   * reads or writes until the kernel would block, or until a short read or
   * write, before it waits for `token` again, and it tolerates a report
   * that finds nothing to do), so the backend may report `fd` only when
   * something new happens to it. Level-triggered reports are always correct.
   */
  watch(fd: number, direction: Direction, token: number, edge?: boolean): number;
  /** Stops reporting `fd` in `direction`; drops its queued token. */
  unwatch(fd: number, direction: Direction): void;
  readonly sockets: SocketOps;
}

/** A connected socket of a completion backend: the host performs each operation. */
export interface CompletionSocket {
  /** Starts delivering received data: `onData(chunk)`, then `onData(null)` at end of stream. */
  start(onData: (chunk: Uint8Array | null) => void, onError: (error: Error) => void): void;
  /** Stops (false) or resumes (true) receiving: the host reads no further while paused. */
  setFlowing(flowing: boolean): void;
  /**
   * Writes `data`; `done(error?)` when the host has accepted all of it: in
   * place, before `write` returns, when the system took all of it at once
   * (IOCP's skip on success), else later, from a host callback. Unless
   * `copiesWrites`, the host may keep `data` itself until `done`.
   */
  write(data: Uint8Array, done: (error?: Error | null) => void): void;
  /**
   * True if whatever the host keeps of a write past the `write` call is a
   * copy of its own, so the caller may change `data` once `write` returns
   * (a transport's promise to its protocol). Without it, a transport hands
   * the host a copy of the protocol's array.
   */
  readonly copiesWrites?: boolean;
  /**
   * Writes `text` as UTF-8 (the bytes TextEncoder makes of it), keeping
   * nothing of the caller's; `done` as for `write`. Optional: without it a
   * transport encodes the text and calls `write`. A host that encodes
   * strings itself (node:net) or into a buffer it reuses saves the array.
   */
  writeText?(text: string, done: (error?: Error | null) => void): void;
  /** Half-closes after pending writes. */
  end(): void;
  /** Closes now. */
  destroy(): void;
  /** TCP options the backend's `checkTcpOptions` accepted, set on this (TCP) socket. */
  setTcpOptions?(options: TcpOptions): void;
  readonly localAddress: SocketAddress;
  readonly remoteAddress: SocketAddress;
}

/** A UDP endpoint the host runs for a completion backend. */
export interface CompletionDatagram {
  /**
   * Sends one datagram (`host` null: to the connected peer); `done` once the
   * host took it, at once if it could.
   */
  send(data: Uint8Array, host: string | null, port: number, done: (error: Error | null) => void): void;
  /**
   * True if what the host keeps of `data` past the `send` call is a copy of
   * its own (as `CompletionSocket.copiesWrites`); without it the transport
   * sends a copy of the caller's array.
   */
  readonly copiesSends?: boolean;
  /** Stops receiving and releases the endpoint; no callback follows. */
  close(): void;
  readonly localAddress: SocketAddress;
  readonly remoteAddress: SocketAddress | null;
}

export interface CompletionListener {
  address(): SocketAddress;
  close(done: () => void): void;
}

export interface CompletionBackend extends BackendBase {
  readonly model: 'completion';
  /** Tokens of operations that finished since the last call, oldest first, at most `max`. */
  takeCompleted(max: number): Uint32Array;
  /** Queues `token` as finished (the backend's own operations call this). */
  complete(token: number): void;
  /**
   * Listens; `onSocket` for each accepted connection. When an accept fails
   * for any reason but a transient one (`acceptErrorIsTransient`), the
   * backend tells `onAcceptError` and stops accepting for a while, then
   * tries again: `acceptRetryDelay(n)` ms after the n-th failure in a row
   * (a listener must never spin on a failing accept).
   */
  /**
   * With `path`, a Unix domain socket at that path (host and port unused).
   * `reusePort`: share the port with other processes' listeners (SO_REUSEPORT).
   * An option the host cannot honour is refused: `listen` throws a
   * NotSupportedError naming it and the backend, which the caller gets.
   * With `fd`, a listening socket another process handed over (host and
   * port unused, port -1): adopt it, or fail with an error whose `code` says
   * why not (SocketOps.adoptListener's), or NotSupportedError if the host
   * cannot adopt a descriptor. Closing the listener closes it and leaves
   * its socket file, if it has one, to whoever bound it.
   */
  listen(
    options: { host: string; port: number; backlog: number; path?: string; reusePort?: boolean; fd?: number },
    onSocket: (socket: CompletionSocket) => void,
    done: (error: Error | null, listener?: CompletionListener) => void,
    onAcceptError?: (error: Error) => void,
  ): void;
  /**
   * Connects; `done` once the connection is made or failed. May return a
   * function that abandons the attempt (close what it opened; `done` is then
   * never called); the loop calls it when the caller's AbortSignal aborts.
   * Without one, a socket delivered after the caller gave up is destroyed.
   */
  connect(
    options: { host: string; port: number; path?: string },
    done: (error: Error | null, socket?: CompletionSocket) => void,
  ): void | (() => void);
  /**
   * A UDP endpoint (optional: without it, datagram endpoints are
   * NotSupportedError): bound to `local`, connected to `remote` if given.
   * `onDatagram` for each datagram that arrives and `onError` for failed
   * receives, from host callbacks; `done` once it is open or failed.
   */
  datagram?(
    options: { local: { host: string; port: number }; remote: { host: string; port: number } | null },
    onDatagram: (data: Uint8Array, from: SocketAddress) => void,
    onError: (error: Error) => void,
    done: (error: Error | null, endpoint?: CompletionDatagram) => void,
  ): void;
}

/**
 * How long a server stops accepting after an accept failed for lack of
 * resources (EMFILE: out of descriptors, ENFILE, ENOBUFS, ENOMEM), in ms of
 * loop time: ACCEPT_RETRY_FIRST_MS after the first failure, doubled after
 * each retry that fails again, up to ACCEPT_RETRY_MS (asyncio waits that
 * long every time). Connections wait in the kernel's backlog meanwhile, and
 * the ones already open are served as ever. Short at first, because a
 * descriptor is often freed soon (a connection closing); long at most, so
 * that a process out of descriptors for minutes does not spin on accept.
 */
export const ACCEPT_RETRY_FIRST_MS = 25;
export const ACCEPT_RETRY_MS = 1000;

/** The pause after the `failures`-th accept in a row that failed for lack of resources (1, 2, ...), in ms. */
export function acceptRetryDelay(failures: number): number {
  return Math.min(ACCEPT_RETRY_FIRST_MS * 2 ** Math.max(0, failures - 1), ACCEPT_RETRY_MS);
}

/**
 * For a host that fixes a listener's queue length at `fixed` whatever it is
 * asked: throws NotSupportedError, naming the backlog and `backend`, for a
 * `backlog` it cannot honour. listen(2) lets the system cap a backlog, so
 * one at or above `fixed` is honoured, capped there; the default
 * (DEFAULT_BACKLOG, which the backend cannot tell from the same number
 * given) takes the host's own; a shorter queue than `fixed` the host cannot
 * give.
 */
export function refuseFixedBacklog(backlog: number, fixed: number, backend: string, api: string): void {
  if (backlog >= fixed || backlog === DEFAULT_BACKLOG) return;
  throw new NotSupportedError(
    `listen: backlog ${backlog} is not supported by ${backend}: ${api} queues ${fixed} connections whatever it is asked; give ${fixed} or more (capped there) or leave the default`,
  );
}

/**
 * True for accept failures that concern one connection only (it was
 * aborted before it was accepted): skip it and accept the next.
 */
export function acceptErrorIsTransient(code: string): boolean {
  return code === 'ECONNABORTED' || code === 'EINTR' || code === 'EPROTO' || code === 'EPERM';
}

export interface ClockBackend extends BackendBase {
  readonly model: 'none';
}

export type Backend = ReadinessBackend | CompletionBackend | ClockBackend;

/**
 * One end of a connection or a listener. A Unix domain socket has family
 * 'unix', its `path` (empty for an unnamed end, as a connecting client's),
 * an empty host and port 0.
 */
export interface SocketAddress {
  host: string;
  port: number;
  family: 'IPv4' | 'IPv6' | 'unix';
  path?: string;
}

/** The members of `SocketOps` every readiness backend has (the rest are optional). */
export const REQUIRED_SOCKET_OPS: ReadonlyArray<keyof SocketOps> = [
  'listen',
  'accept',
  'connect',
  'connectError',
  'read',
  'write',
  'shutdownWrite',
  'close',
  'address',
  'pipe',
];

/**
 * Why `value` does not implement the backend contract, or null if it does:
 * every required member has its type, and every optional one present has
 * its type too (a readiness backend's `sockets.read` included).
 */
export function contractViolation(value: unknown): string | null {
  if (typeof value !== 'object' || value === null)
    return `it returned ${value === null ? 'null' : typeof value}, not an object`;
  // SocketOps' optional members: the Unix socket and UDP ones, and TCP options.
  const optionalSocketOps: ReadonlyArray<keyof SocketOps> = [
    ...([
      'listenUnix',
      'connectUnix',
      'unlink',
      'adoptListener',
      'udpBind',
      'udpConnect',
      'sendTo',
      'recvFrom',
      'recvAddress',
    ] as const),
    ...(['setTcpOptions', 'tcpOptions'] as const),
  ];
  const b = value as Record<string, unknown>;
  const wrong: string[] = [];
  const check = (
    object: Record<string, unknown>,
    prefix: string,
    kind: string,
    required: readonly string[],
    optional: readonly string[] = [],
  ) => {
    for (const n of required) if (typeof object[n] !== kind) wrong.push(prefix + n);
    for (const n of optional) if (object[n] !== undefined && typeof object[n] !== kind) wrong.push(prefix + n);
  };
  check(b, '', 'string', ['name'], ['implementation']);
  if (!['readiness', 'completion', 'none'].includes(b.model as string)) wrong.push('model');
  check(b, '', 'function', ['now', 'attach', 'close'], ['hostDelay', 'checkTcpOptions']);
  if (b.model === 'readiness') {
    check(b, '', 'function', ['takeReady', 'watch', 'unwatch']);
    const sockets = b.sockets;
    if (typeof sockets !== 'object' || sockets === null) wrong.push('sockets');
    else check(sockets as Record<string, unknown>, 'sockets.', 'function', REQUIRED_SOCKET_OPS, optionalSocketOps);
  }
  if (b.model === 'completion')
    check(b, '', 'function', ['takeCompleted', 'complete', 'listen', 'connect'], ['datagram']);
  if (wrong.length > 0) return `the object it returned lacks or mistypes: ${wrong.join(', ')}`;
  return null;
}
