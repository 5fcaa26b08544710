/**
 * Argument checks for the loop's public API: each returns the checked value
 * or throws a TypeError or RangeError that names the operation and the
 * argument. The loop (loop.ts) checks everything here before it touches the
 * core or a backend, so a bad argument never leaves anything half done.
 */
import type { TcpOptions } from './backends/backend.js';
import { describe } from './errors.js';
import { DEFAULT_BACKLOG, INT32_MAX } from './limits.js';
import { checkOptions } from './options.js';
import { checkTls, type TlsClientOptions, type TlsConfig, type TlsServerOptions } from './tls-options.js';

/**
 * The keys each options object may have; anything else is a TypeError
 * naming it (options.ts), so `ssl` and friends point to `tls`.
 */
export const SERVER_OPTIONS = [
  'host',
  'port',
  'path',
  'fd',
  'backlog',
  'reusePort',
  'tls',
  'maxConnections',
  'idleTimeoutMs',
  'readTimeoutMs',
  'noDelay',
  'keepAlive',
] as const;
export const DATAGRAM_OPTIONS = ['localAddress', 'remoteAddress'] as const;
/**
 * A datagram address may be a SocketAddress the loop reported
 * (`transport.localAddress`): its `family` must agree with its host
 * (`checkFamily`).
 */
export const DATAGRAM_ADDRESS_OPTIONS = ['host', 'port', 'family'] as const;
/**
 * As datagram addresses, a connect may be given a reported SocketAddress
 * (`server.address()`), its `family` checked against its host or path.
 */
export const CONNECT_OPTIONS = [
  ...(['host', 'port', 'path', 'signal', 'tls', 'family'] as const),
  ...(['idleTimeoutMs', 'readTimeoutMs', 'noDelay', 'keepAlive'] as const),
];
export const RUN_OPTIONS = ['limit'] as const;
/** A transport's `setTcpOptions` (ConnectOptions' TCP options, after the connection is made). */
export const TCP_OPTIONS = ['noDelay', 'keepAlive'] as const;
export interface ServerOptions {
  /** Numeric IPv4/IPv6 address or host name to listen on. Default '127.0.0.1'. */
  host?: string;
  /** Port; 0 picks a free one (see `server.address()`). Not with `path`. */
  port?: number;
  /**
   * Listen on a Unix domain socket at this file path instead of TCP
   * (asyncio's `create_unix_server`). The path must not exist yet
   * (AddressInUseError); closing the server removes it.
   */
  path?: string;
  /**
   * Serve on a listening socket this process inherited (systemd's socket
   * activation, a supervisor, `wasmloop --fd`) instead of binding one: a
   * TCP or Unix stream socket, bound and listening. Not with host, port,
   * path, backlog or reusePort (its binder chose those). The server owns it
   * from then on: closing the server closes the descriptor (the process
   * that handed it over keeps its own copy) and leaves a Unix socket's file
   * to whoever bound it. Not on the `virtual` backend, nor Deno's own sockets.
   */
  fd?: number;
  /**
   * Pending-connection queue length. Default 511. A host that fixes the
   * length takes one at or above its own as capped there, and refuses a
   * shorter one with NotSupportedError (docs/backends.md).
   */
  backlog?: number;
  /**
   * Let other processes listen on the same port, the kernel balancing
   * connections between them (SO_REUSEPORT; `wasmloop run --workers`).
   * The selector, and `completion` on Node's addon and on Bun; on Deno
   * only under `--unstable-net` (NotSupportedError otherwise); on
   * `node:net` through `node:cluster` (docs/backends.md).
   */
  reusePort?: boolean;
  /** Serve TLS (docs/tls.md); `false` or absent: plaintext. */
  tls?: TlsServerOptions | false;
  /**
   * The most connections open at once. One accepted beyond it is closed at
   * once (its client reads the end of the stream rather than waiting in the
   * backlog) and counted in `loop.stats().connectionsRefused`. Default: no limit.
   */
  maxConnections?: number;
  /** Each accepted connection's idleTimeoutMs (ConnectOptions). */
  idleTimeoutMs?: number;
  /** Each accepted stream connection's readTimeoutMs (ConnectOptions); not for protocol servers. */
  readTimeoutMs?: number;
  /** Each accepted connection's noDelay (ConnectOptions). */
  noDelay?: boolean;
  /** Each accepted connection's keepAlive (ConnectOptions). */
  keepAlive?: boolean | number;
}

export interface ConnectOptions {
  /** Numeric address or host name. Default '127.0.0.1'. */
  host?: string;
  /** Not with `path`. */
  port?: number;
  /** Connect to the Unix domain socket at this path instead of TCP. */
  path?: string;
  /**
   * As an address the loop reported carries it (`server.address()`): must
   * agree with the numeric host ('IPv4', 'IPv6') or the path ('unix').
   */
  family?: 'IPv4' | 'IPv6' | 'unix';
  /**
   * Abandons the attempt when it aborts (`loop.timeoutSignal(ms)` for a
   * connect timeout on the loop's clock): whatever was opened is closed and
   * the promise rejects with the signal's reason. It covers the connect
   * only; aborting it later does nothing to the connection.
   */
  signal?: AbortSignal;
  /** Connect with TLS (docs/tls.md): `true` for the defaults (verify against the host's CAs). */
  tls?: TlsClientOptions | boolean;
  /**
   * Closes the connection once it has read and written nothing for this
   * long (ms of loop time): pending reads and writes reject with
   * TimeoutError, a protocol's `connectionLost` gets it. Default: never.
   */
  idleTimeoutMs?: number;
  /**
   * A `read()` (or each wait of a framed read) that gets no data for this
   * long rejects with TimeoutError; the connection stays open and loses
   * nothing (asyncio's `wait_for` around a read). Streams only. Default: never.
   */
  readTimeoutMs?: number;
  /**
   * TCP_NODELAY: true (the default, as asyncio and Node's HTTP server set
   * it) sends each write at once; false lets Nagle's algorithm coalesce
   * small writes. TCP only.
   */
  noDelay?: boolean;
  /**
   * TCP keep-alive probes on an idle connection, to notice a peer that
   * vanished without closing: true (after the system's idle time, 2 h on
   * Linux), or the idle time in ms (rounded up to whole seconds, at most
   * 32,767 s). Default false. TCP only.
   */
  keepAlive?: boolean | number;
}

export interface DatagramEndpointOptions {
  /** Where to bind: host default '127.0.0.1', port default 0 (a free one); `family` as ConnectOptions'. */
  localAddress?: { host?: string; port?: number; family?: 'IPv4' | 'IPv6' };
  /** The peer to connect to: sendto() without an address goes there, and only its datagrams arrive. */
  remoteAddress?: { host?: string; port: number; family?: 'IPv4' | 'IPv6' };
}

/** A connection's time limits, in ms of loop time (Infinity: none), and the TCP options it asks for. */
export interface ConnectionLimits {
  idleTimeoutMs: number;
  readTimeoutMs: number;
  /** null: none asked for (the backend's defaults: noDelay on, keep-alive off). */
  tcp: TcpOptions | null;
}

/** No limits: what a connection has unless its options set some. */
export const NO_LIMITS: ConnectionLimits = Object.freeze({
  idleTimeoutMs: Infinity,
  readTimeoutMs: Infinity,
  tcp: null,
});

/** The longest keep-alive idle time a socket takes (Linux's TCP_KEEPIDLE: 32,767 s), in ms. */
const MAX_KEEPALIVE_MS = 32_767_000;

/** `noDelay` and `keepAlive`, checked: null when neither is given. */
function checkTcp(
  operation: string,
  options: { noDelay?: unknown; keepAlive?: unknown; path?: unknown },
): TcpOptions | null {
  const { noDelay, keepAlive } = options;
  if (noDelay === undefined && keepAlive === undefined) return null;
  if (options.path !== undefined)
    throw new TypeError(`${operation}: noDelay and keepAlive are TCP options, not for a Unix socket's path`);
  if (noDelay !== undefined && typeof noDelay !== 'boolean') {
    throw new TypeError(`${operation}: noDelay must be a boolean, got ${describe(noDelay)}`);
  }
  let keepAliveMs: number | null = null;
  if (typeof keepAlive === 'boolean') keepAliveMs = keepAlive ? 0 : -1;
  else if (typeof keepAlive === 'number') {
    if (!(keepAlive > 0 && keepAlive <= MAX_KEEPALIVE_MS)) {
      throw new RangeError(
        `${operation}: keepAlive must be true, false or an idle time in ms from 1 to ${MAX_KEEPALIVE_MS}, got ${describe(keepAlive)}`,
      );
    }
    keepAliveMs = keepAlive;
  } else if (keepAlive !== undefined) {
    throw new TypeError(`${operation}: keepAlive must be a boolean or an idle time in ms, got ${describe(keepAlive)}`);
  }
  return { noDelay: noDelay ?? null, keepAliveMs };
}

const IPV4_LITERAL = /^\d{1,3}(\.\d{1,3}){3}$/;
const IPV6_LITERAL = /^[0-9a-fA-F:]*:[0-9a-fA-F:.]*$/;

/**
 * The `family` of an address passed back as the loop reported it (a
 * SocketAddress: `server.address()`, `transport.localAddress`, a datagram's
 * sender): 'IPv4', 'IPv6' or 'unix', agreeing with the numeric host or the
 * path given with it. It is a check only: the host or path says where to go.
 */
export function checkFamily(
  operation: string,
  name: string,
  family: unknown,
  where: { host: string } | { path: string },
): void {
  if (family === undefined) return;
  if (family !== 'IPv4' && family !== 'IPv6' && family !== 'unix') {
    throw new TypeError(`${operation}: ${name} must be 'IPv4', 'IPv6' or 'unix', got ${describe(family)}`);
  }
  let actual: string | null;
  let given: string;
  if ('path' in where) {
    actual = 'unix';
    given = `path '${where.path}'`;
  } else {
    const { host } = where;
    actual = IPV4_LITERAL.test(host) ? 'IPv4' : IPV6_LITERAL.test(host) ? 'IPv6' : null;
    given = `host '${host}'${actual === null ? ' (a name: a family goes with a numeric address, as the loop reports them)' : ''}`;
  }
  if (actual !== family) throw new TypeError(`${operation}: ${name} '${family}' does not agree with ${given}`);
}

/**
 * `transport.setTcpOptions(options)`'s options, checked as createConnection's
 * (an unknown key is a TypeError naming it); null when neither is given.
 */
export function checkTcpOptions(operation: string, options: unknown): TcpOptions | null {
  if (typeof options !== 'object' || options === null) {
    throw new TypeError(`${operation}: options must be an object { noDelay?, keepAlive? }, got ${describe(options)}`);
  }
  return checkTcp(
    operation,
    checkOptions(operation, options as { noDelay?: unknown; keepAlive?: unknown }, TCP_OPTIONS),
  );
}

/** A listen or connect address, checked: TCP (`host`, `port`) or a Unix socket (`path`), with its limits. */
export interface CheckedAddress {
  host: string;
  port: number;
  backlog: number;
  reusePort: boolean;
  path?: string;
  /** A listening socket to adopt (ServerOptions.fd); host '' and port UNIX_PORT then. */
  fd?: number;
  /** The `tls` option, checked; null for plaintext. */
  tls?: TlsConfig | null;
  /** A server's most open connections (Infinity: no limit). */
  maxConnections: number;
  limits: ConnectionLimits;
}

/**
 * The port passed to a backend with `path`: not a port, so a backend that
 * knows nothing of Unix domain sockets fails instead of listening on TCP.
 */
export const UNIX_PORT = -1;

/** Longest Unix domain socket path, in bytes (sun_path holds 108 with the NUL). */
const MAX_UNIX_PATH_BYTES = 107;

/** The default of runAll/runUntilIdle/advance's `limit`. */
const DEFAULT_CALLBACK_LIMIT = 100_000;

export function notAFunction(operation: string, value: unknown, argument = 'callback'): TypeError {
  return new TypeError(`${operation}: ${argument} must be a function, got ${describe(value)}`);
}

/** A time or delay in ms: any number but NaN (Infinity means never). */
export function checkTime(operation: string, argument: string, value: unknown): number {
  if (typeof value !== 'number' || value !== value) {
    throw new TypeError(`${operation}: ${argument} must be a number of milliseconds, got ${describe(value)}`);
  }
  return value;
}

/** `{ limit }` of the virtual-time runs: a positive integer, 100,000 by default. */
export function checkLimit(operation: string, options: unknown): number {
  if (typeof options !== 'object' || options === null) {
    throw new TypeError(`${operation}: options must be an object, got ${describe(options)}`);
  }
  const { limit = DEFAULT_CALLBACK_LIMIT } = checkOptions(operation, options as { limit?: unknown }, RUN_OPTIONS);
  if (typeof limit !== 'number' || !Number.isInteger(limit) || limit < 1) {
    throw new RangeError(`${operation}: limit must be a positive integer, got ${describe(limit)}`);
  }
  return limit;
}

/** A file descriptor: an integer from 0 to 2^31 - 1. */
export function checkFd(operation: string, fd: unknown): number {
  if (typeof fd !== 'number' || !Number.isInteger(fd) || fd < 0 || fd > INT32_MAX) {
    throw new TypeError(`${operation}: fd must be a non-negative integer file descriptor, got ${describe(fd)}`);
  }
  return fd;
}

/** What a protocol factory returned, if it is an object. */
export function checkProtocol<P>(operation: string, value: P): P {
  if (typeof value !== 'object' || value === null) {
    throw new TypeError(`${operation}: protocolFactory must return a protocol object, got ${describe(value)}`);
  }
  return value;
}

/**
 * A timeout option: a number of ms > 0, or Infinity; undefined is Infinity
 * (none). 0 is refused rather than read as "none" (Node's setTimeout(0)
 * convention) or "at once".
 */
function checkTimeout(operation: string, name: string, value: unknown): number {
  if (value === undefined) return Infinity;
  if (typeof value !== 'number' || value !== value) {
    throw new TypeError(`${operation}: ${name} must be a number of milliseconds, got ${describe(value)}`);
  }
  if (!(value > 0)) {
    throw new RangeError(
      `${operation}: ${name} must be > 0 (leave it out, or Infinity, for none), got ${describe(value)}`,
    );
  }
  return value;
}

/** `maxConnections`: an integer from 1 to 2^31 - 1, or Infinity; undefined is Infinity (no limit). */
function checkMaxConnections(operation: string, value: unknown): number {
  if (value === undefined || value === Infinity) return Infinity;
  if (typeof value !== 'number')
    throw new TypeError(`${operation}: maxConnections must be a number, got ${describe(value)}`);
  if (!Number.isInteger(value) || value < 1 || value > INT32_MAX) {
    throw new RangeError(
      `${operation}: maxConnections must be an integer from 1 to ${INT32_MAX} (or Infinity), got ${describe(value)}`,
    );
  }
  return value;
}

/** A connection's limits from its (or its server's) options; `streams`: readTimeoutMs applies. */
function checkLimits(
  operation: string,
  options: { idleTimeoutMs?: unknown; readTimeoutMs?: unknown; noDelay?: unknown; keepAlive?: unknown; path?: unknown },
  streams: boolean,
): ConnectionLimits {
  const idleTimeoutMs = checkTimeout(operation, 'idleTimeoutMs', options.idleTimeoutMs);
  if (!streams && options.readTimeoutMs !== undefined) {
    throw new TypeError(
      `${operation}: readTimeoutMs bounds a stream's read(), and a protocol has none ` +
        `(idleTimeoutMs closes a connection that goes quiet)`,
    );
  }
  const readTimeoutMs = checkTimeout(operation, 'readTimeoutMs', options.readTimeoutMs);
  const tcp = checkTcp(operation, options);
  if (idleTimeoutMs === Infinity && readTimeoutMs === Infinity && tcp === null) return NO_LIMITS;
  return { idleTimeoutMs, readTimeoutMs, tcp };
}

/**
 * Where to listen or connect: `{ host, port }` or `{ path }`, with `backlog`,
 * `reusePort` and `maxConnections` when listening, and the connections'
 * limits (`streams`: stream connections, which have reads to time out).
 */
export function checkAddress(operation: string, options: unknown, listening: boolean, streams = true): CheckedAddress {
  if (typeof options !== 'object' || options === null) {
    throw new TypeError(`${operation}: options must be an object with a port or a path, got ${describe(options)}`);
  }
  const known = listening ? SERVER_OPTIONS : CONNECT_OPTIONS;
  const checked = checkOptions(
    operation,
    options as {
      host?: unknown;
      port?: unknown;
      backlog?: unknown;
      path?: unknown;
      fd?: unknown;
      reusePort?: unknown;
      tls?: unknown;
      maxConnections?: unknown;
      idleTimeoutMs?: unknown;
      readTimeoutMs?: unknown;
      noDelay?: unknown;
      keepAlive?: unknown;
      family?: unknown;
    },
    known,
  );
  const { host = '127.0.0.1', port, backlog = DEFAULT_BACKLOG, path, reusePort = false, tls } = checked;
  const tlsConfig = checkTls(operation, tls, listening);
  const maxConnections = checkMaxConnections(operation, checked.maxConnections);
  const limits = checkLimits(operation, checked, streams);
  if (listening && checked.fd !== undefined) {
    const fd = checkInheritedFd(operation, checked);
    return {
      host: '',
      port: UNIX_PORT,
      backlog: DEFAULT_BACKLOG,
      reusePort: false,
      fd,
      tls: tlsConfig,
      maxConnections,
      limits,
    };
  }
  if (path !== undefined) {
    if (typeof path !== 'string' || path === '') {
      throw new TypeError(`${operation}: path must be a non-empty string, got ${describe(path)}`);
    }
    if (path.includes('\0')) throw new TypeError(`${operation}: path must not contain NUL characters`);
    const bytes = new TextEncoder().encode(path).length;
    if (bytes > MAX_UNIX_PATH_BYTES) {
      throw new RangeError(
        `${operation}: path must be at most ${MAX_UNIX_PATH_BYTES} bytes (a Unix socket's limit), got ${bytes}`,
      );
    }
    // A Unix socket's address as the loop reports it has an empty host and port 0 beside its path.
    const reported = checked.family === 'unix' && checked.host === '' && port === 0;
    if (!reported && (port !== undefined || checked.host !== undefined)) {
      throw new TypeError(`${operation}: give a path or a host and port, not both`);
    }
    checkFamily(operation, 'family', checked.family, { path });
  } else {
    if (typeof host !== 'string' || host === '') {
      throw new TypeError(`${operation}: host must be a non-empty string, got ${describe(host)}`);
    }
    if (typeof port !== 'number' || !Number.isInteger(port) || port < 0 || port > 65535 || (!listening && port === 0)) {
      throw new RangeError(
        `${operation}: port must be an integer from ${listening ? 0 : 1} to 65535, got ${describe(port)}`,
      );
    }
    checkFamily(operation, 'family', checked.family, { host });
  }
  // listen(2) takes an int; the kernel clamps what exceeds its own maximum (somaxconn).
  if (typeof backlog !== 'number' || !Number.isInteger(backlog) || backlog < 1 || backlog > INT32_MAX) {
    throw new RangeError(`${operation}: backlog must be an integer from 1 to ${INT32_MAX}, got ${describe(backlog)}`);
  }
  if (listening) {
    if (typeof reusePort !== 'boolean') {
      throw new TypeError(`${operation}: reusePort must be a boolean, got ${describe(reusePort)}`);
    }
    if (path !== undefined && reusePort) throw new TypeError(`${operation}: reusePort is for TCP ports, not a path`);
  }
  if (path !== undefined)
    return { host: '', port: UNIX_PORT, backlog, reusePort: false, path, tls: tlsConfig, maxConnections, limits };
  return {
    host: host as string,
    port: port as number,
    backlog,
    reusePort: reusePort === true,
    tls: tlsConfig,
    maxConnections,
    limits,
  };
}

/** `fd` of a listen: a descriptor number, with none of the options its binder chose. */
function checkInheritedFd(operation: string, options: Record<string, unknown>): number {
  const { fd } = options;
  if (typeof fd !== 'number' || !Number.isInteger(fd) || fd < 0 || fd > INT32_MAX) {
    throw new TypeError(`${operation}: fd must be a non-negative integer file descriptor, got ${describe(fd)}`);
  }
  const chosen = ['host', 'port', 'path'].filter((name) => options[name] !== undefined);
  if (chosen.length > 0) {
    throw new TypeError(`${operation}: give fd, or a host and port, or a path; not fd with ${chosen.join(' and ')}`);
  }
  for (const name of ['backlog', 'reusePort']) {
    if (options[name] !== undefined) {
      throw new TypeError(`${operation}: ${name} is set where the socket of fd was made to listen, not with fd`);
    }
  }
  return fd;
}

/** The local and remote addresses of a datagram endpoint, checked. */
export function checkDatagramOptions(
  operation: string,
  options: unknown,
): { local: { host?: string; port: number } | null; remote: { host: string; port: number } | null } {
  if (typeof options !== 'object' || options === null) {
    throw new TypeError(
      `${operation}: options must be an object with localAddress and/or remoteAddress, got ${describe(options)}`,
    );
  }
  const { localAddress, remoteAddress } = checkOptions(
    operation,
    options as { localAddress?: unknown; remoteAddress?: unknown },
    DATAGRAM_OPTIONS,
  );
  if (localAddress === undefined && remoteAddress === undefined) {
    throw new TypeError(`${operation}: give localAddress, remoteAddress or both`);
  }
  const address = (name: string, value: unknown, portRequired: boolean): { host?: string; port: number } => {
    if (typeof value !== 'object' || value === null) {
      throw new TypeError(`${operation}: ${name} must be an object { host, port }, got ${describe(value)}`);
    }
    const {
      host,
      port = portRequired ? undefined : 0,
      family,
    } = checkOptions(
      `${operation}: ${name}`,
      value as { host?: unknown; port?: unknown; family?: unknown },
      DATAGRAM_ADDRESS_OPTIONS,
    );
    if (host !== undefined && (typeof host !== 'string' || host === '')) {
      throw new TypeError(`${operation}: ${name}.host must be a non-empty string, got ${describe(host)}`);
    }
    const min = portRequired ? 1 : 0;
    if (typeof port !== 'number' || !Number.isInteger(port) || port < min || port > 65535) {
      throw new RangeError(`${operation}: ${name}.port must be an integer from ${min} to 65535, got ${describe(port)}`);
    }
    checkFamily(operation, `${name}.family`, family, { host: host ?? '127.0.0.1' });
    return host === undefined ? { port } : { host, port };
  };
  const local = localAddress === undefined ? null : address('localAddress', localAddress, false);
  const remote = remoteAddress === undefined ? null : address('remoteAddress', remoteAddress, true);
  return { local, remote: remote === null ? null : { host: remote.host ?? '127.0.0.1', port: remote.port } };
}

/** Signal names a process can receive, as Node names them. */
const SIGNAL_NAMES = new Set([
  'SIGABRT',
  'SIGALRM',
  'SIGBREAK',
  'SIGBUS',
  'SIGCHLD',
  'SIGCONT',
  'SIGFPE',
  'SIGHUP',
  'SIGILL',
  'SIGINFO',
  'SIGINT',
  'SIGIO',
  'SIGIOT',
  'SIGKILL',
  'SIGLOST',
  'SIGPIPE',
  'SIGPOLL',
  'SIGPROF',
  'SIGPWR',
  'SIGQUIT',
  'SIGSEGV',
  'SIGSTKFLT',
  'SIGSTOP',
  'SIGSYS',
  'SIGTERM',
  'SIGTRAP',
  'SIGTSTP',
  'SIGTTIN',
  'SIGTTOU',
  'SIGUNUSED',
  'SIGURG',
  'SIGUSR1',
  'SIGUSR2',
  'SIGVTALRM',
  'SIGWINCH',
  'SIGXCPU',
  'SIGXFSZ',
]);

/**
 * Signals a handler cannot take: SIGKILL and SIGSTOP never reach a
 * process; the faults (SIGSEGV, SIGBUS, SIGFPE, SIGILL) are raised again
 * when their handler returns.
 */
const UNCATCHABLE_SIGNALS = new Set(['SIGKILL', 'SIGSTOP', 'SIGSEGV', 'SIGBUS', 'SIGFPE', 'SIGILL']);

export function checkSignalName(operation: string, signal: unknown): string {
  if (typeof signal !== 'string') {
    throw new TypeError(`${operation}: signal must be a signal name such as 'SIGINT', got ${describe(signal)}`);
  }
  if (!SIGNAL_NAMES.has(signal))
    throw new RangeError(`${operation}: signal ${JSON.stringify(signal)} is not a signal name`);
  if (UNCATCHABLE_SIGNALS.has(signal)) throw new RangeError(`${operation}: ${signal} cannot be handled`);
  return signal;
}
