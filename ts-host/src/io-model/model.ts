/**
 * The I/O model: how a loop does I/O, picked once when the loop is made
 * from its backend's `model` (`ioModelFor`), as asyncio picks a selector or
 * a proactor event loop class. The loop (loop.ts) checks arguments and
 * calls the model; it never asks which model it has.
 *
 *     IoModel (this file)     what every model shares: host resolution,
 *       |                     protocol factories, the datagram endpoint's
 *       |                     steps; and what each must supply (abstract)
 *       +-- ReadinessModel    readiness.ts: the selector model; fd watches
 *       +-- CompletionModel   completion.ts: the proactor model
 *       +-- NoIoModel         none.ts: a clock-only backend; NotSupportedError
 *
 * Each model also supplies its WIT import (`takeReady` or `takeCompleted`,
 * wit/): the tokens its backend queued, handed to the core in phase 3.
 *
 * The model objects call the io/ functions of their model: each model's
 * files of io/ (`stream-`, `transport-` and `datagram-readiness.ts` or
 * `-completion.ts`) are theirs.
 */
import type { Backend, Direction } from '../backends/backend.js';
import { isVirtual } from '../backends/virtual.js';
import type { BackendFaults } from '../backend-faults.js';
import { isIpLiteral } from '../net/address.js';
import { removeStaleSocket } from '../net/stale-socket.js';
import type { CallbackTable } from '../callbacks.js';
import { type CheckedAddress, type ConnectionLimits, NO_LIMITS, checkProtocol } from '../arguments.js';
import { IoError, LoopClosedError, NotSupportedError, describe } from '../errors.js';
import type { DatagramProtocol, DatagramProtocolFactory, DatagramTarget, DatagramTransport } from '../io/datagrams.js';
import type { Protocol, ProtocolFactory, Transport } from '../io/protocols.js';
import {
  type Accepted,
  type Connection,
  type ConnectionHandler,
  type ConnectTarget,
  type IoLoop,
  type ListenTarget,
  type Server,
  abortable,
} from '../io/streams.js';
import { checkTcpSupport } from '../io/io-common.js';
import type { TlsLoop } from '../io/tls.js';
import type { TakeCompleted } from '../wit/completion-import.js';
import type { TakeReady } from '../wit/readiness-import.js';
import type { Callback } from '../reporting.js';

/** What a model needs of the loop's parts, once they exist. */
export interface IoModelParts {
  callbacks: CallbackTable;
  /** The core took a full batch of tokens: iterate again soon. */
  ioBacklog(): void;
}

const NO_TOKENS = new Uint32Array(0);

export abstract class IoModel {
  /** `take-ready`: none, unless the model is readiness. */
  readonly takeReady: TakeReady = () => NO_TOKENS;
  /** `take-completed`: none, unless the model is completion. */
  readonly takeCompleted: TakeCompleted = () => NO_TOKENS;
  protected parts: IoModelParts | null = null;

  constructor(
    protected readonly backend: Backend,
    protected readonly faults: BackendFaults,
  ) {}

  /** Called once by the loop, before any iteration. */
  attach(parts: IoModelParts): void {
    this.parts = parts;
  }

  /**
   * The tokens `take` gives (the backend's `member`): a full batch means
   * more may wait. A take that throws or returns something else gives no
   * tokens, and the run fails with a BackendError (backend-faults.ts).
   */
  protected taken(member: string, take: (max: number) => Uint32Array, max: number): Uint32Array {
    let tokens: unknown;
    try {
      tokens = take(max);
    } catch (error) {
      this.faults.fail(member, 'threw', error);
      return NO_TOKENS;
    }
    if (!(tokens instanceof Uint32Array) || tokens.length > max) {
      this.faults.fail(member, `returned ${describe(tokens)}, not a Uint32Array of at most ${max} tokens`);
      return NO_TOKENS;
    }
    if (tokens.length === max) this.parts?.ioBacklog();
    return tokens;
  }

  // ---------------------------------------------------------- what differs

  /** Unix domain sockets: whether this backend has them. */
  protected abstract hasUnixSockets(): boolean;
  /** TCP options (noDelay, keepAlive): whether this backend's sockets take any (which ones: its `checkTcpOptions`). */
  protected abstract setsTcpOptions(): boolean;
  /**
   * Adopting a listening socket (`fd`): whether this backend can. A
   * completion backend is asked in its `listen` (the host decides there).
   */
  protected abstract adoptsListeners(): boolean;
  /** UDP: whether this backend has datagram endpoints. */
  protected abstract hasDatagrams(): boolean;
  protected abstract listen(loop: IoLoop, onConnection: ConnectionHandler, at: ListenTarget): Server | Promise<Server>;
  protected abstract listenWith(
    loop: IoLoop,
    operation: string,
    factory: ProtocolFactory,
    at: ListenTarget,
  ): Server | Promise<Server>;
  protected abstract connect(loop: IoLoop, at: ConnectTarget): Promise<Connection>;
  protected abstract connectWith<P extends Protocol>(
    loop: IoLoop,
    operation: string,
    factory: ProtocolFactory<P>,
    at: ConnectTarget,
  ): Promise<{ transport: Transport; protocol: P }>;
  protected abstract openDatagram(
    loop: IoLoop,
    target: DatagramTarget,
    protocol: DatagramProtocol,
  ): DatagramTransport | Promise<DatagramTransport>;

  /** addReader/addWriter: readiness only. */
  addFdWatch(operation: string, _fd: number, _direction: Direction, _callback: Callback, _args: unknown[]): void {
    throw this.#noReadiness(operation);
  }

  removeFdWatch(operation: string, _fd: number, _direction: Direction): boolean {
    throw this.#noReadiness(operation);
  }

  #noReadiness(operation: string): NotSupportedError {
    return new NotSupportedError(
      `${operation}: the '${this.backend.name}' backend has no readiness I/O (use the 'selector' backend; ` +
        `on a completion backend use createServer/createConnection, as with asyncio's Proactor loop)`,
    );
  }

  /** The loop closes (or crashed): release what the model registered itself. */
  close(): void {}

  // ------------------------------------------------------ what is shared

  async createServer(
    loop: IoLoop,
    operation: string,
    onConnection: ConnectionHandler,
    address: CheckedAddress,
  ): Promise<Server> {
    if (address.tls?.side === 'server') {
      const { listenTls } = await import('../io/tls-server.js');
      return listenTls(
        loop as TlsLoop,
        operation,
        address.tls,
        (f) => this.createProtocolServer(loop, operation, f, plain(address)),
        {
          handler: onConnection,
          limits: address.limits,
        },
      );
    }
    const at = await this.#listenTarget(operation, address);
    return this.#tcpOnly(operation, at, await this.listen(loop, onConnection, at));
  }

  async createProtocolServer(
    loop: IoLoop,
    operation: string,
    factory: ProtocolFactory,
    address: CheckedAddress,
  ): Promise<Server> {
    if (address.tls?.side === 'server') {
      const { listenTls } = await import('../io/tls-server.js');
      return listenTls(
        loop as TlsLoop,
        operation,
        address.tls,
        (f) => this.createProtocolServer(loop, operation, f, plain(address)),
        {
          factory,
          operation,
          limits: address.limits,
        },
      );
    }
    const at = await this.#listenTarget(operation, address);
    return this.#tcpOnly(operation, at, await this.listenWith(loop, operation, factory, at));
  }

  async createConnection(
    loop: IoLoop,
    operation: string,
    address: CheckedAddress,
    signal: AbortSignal | undefined,
  ): Promise<Connection> {
    if (address.tls?.side === 'client') {
      const { connectTlsStream } = await import('../io/tls-server.js');
      return connectTlsStream(loop as TlsLoop, operation, address.tls, address.host, signal, address.limits, (p) =>
        this.createProtocolConnection(loop, operation, () => p, plain(address), signal),
      );
    }
    return this.connect(loop, await this.#connectTarget(operation, address, signal));
  }

  async createProtocolConnection<P extends Protocol>(
    loop: IoLoop,
    operation: string,
    factory: ProtocolFactory<P>,
    address: CheckedAddress,
    signal: AbortSignal | undefined,
  ): Promise<{ transport: Transport; protocol: P }> {
    if (address.tls?.side === 'client') {
      const { connectTlsProtocol } = await import('../io/tls-server.js');
      return connectTlsProtocol(
        loop as TlsLoop,
        operation,
        address.tls,
        address.host,
        signal,
        address.limits,
        factory,
        (p) => this.createProtocolConnection(loop, operation, () => p, plain(address), signal),
      );
    }
    return this.connectWith(loop, operation, factory, await this.#connectTarget(operation, address, signal));
  }

  /** A UDP endpoint: hosts resolved, the protocol made, then the model's endpoint. */
  async createDatagramEndpoint<P extends DatagramProtocol>(
    loop: IoLoop,
    operation: string,
    factory: DatagramProtocolFactory<P>,
    local: { host?: string; port: number } | null,
    remote: { host: string; port: number } | null,
  ): Promise<{ transport: DatagramTransport; protocol: P }> {
    this.requireIo(operation);
    if (!this.hasDatagrams())
      throw new NotSupportedError(`${operation}: the '${this.backend.name}' backend has no datagram endpoints`);
    const remoteHost = remote === null ? null : await resolveHost(operation, remote.host);
    // Without a localAddress, any address of the remote's family (to reach it
    // from whichever interface routes there); a localAddress without a host
    // means loopback, as createServer's default.
    const wildcard = remoteHost?.includes(':') ? '::' : '0.0.0.0';
    const localHost = local === null ? wildcard : await resolveHost(operation, local.host ?? '127.0.0.1');
    if (loop.isClosed()) throw new LoopClosedError(operation);
    const protocol = factory();
    if (typeof protocol !== 'object' || protocol === null) {
      throw new TypeError(`${operation}: the protocol factory must return an object, got ${describe(protocol)}`);
    }
    const target = {
      local: { host: localHost, port: local?.port ?? 0 },
      remote: remote === null ? null : { host: remoteHost as string, port: remote.port },
    };
    return { transport: await this.openDatagram(loop, target, protocol), protocol };
  }

  /** NotSupportedError for a backend with no I/O (the `none` model overrides it). */
  protected requireIo(_operation: string): void {}

  async #listenTarget(operation: string, address: CheckedAddress): Promise<ListenTarget> {
    this.requireIo(operation);
    const { backlog, reusePort, path, fd, maxConnections, limits } = address;
    this.#tcpOptions(operation, limits);
    if (fd !== undefined) {
      if (!this.adoptsListeners()) {
        const why = isVirtual(this.backend) ? ': its network is in memory, with no descriptors of the system' : '';
        throw new NotSupportedError(
          `${operation}: the '${this.backend.name}' backend cannot adopt a listening socket (fd)${why}`,
        );
      }
      return { host: '', port: address.port, backlog, reusePort, fd, maxConnections, limits };
    }
    if (path !== undefined) {
      this.#unixSockets(operation);
      if (!isVirtual(this.backend)) await removeStaleSocket(path);
      return { host: '', port: address.port, backlog, reusePort, path, maxConnections, limits };
    }
    return {
      host: await resolveHost(operation, address.host),
      port: address.port,
      backlog,
      reusePort,
      maxConnections,
      limits,
    };
  }

  async #connectTarget(
    operation: string,
    address: CheckedAddress,
    signal: AbortSignal | undefined,
  ): Promise<ConnectTarget> {
    this.requireIo(operation);
    const { path, limits } = address;
    this.#tcpOptions(operation, limits);
    if (path !== undefined) {
      this.#unixSockets(operation);
      return { host: '', port: address.port, signal, path, limits };
    }
    return { host: await abortable(resolveHost(operation, address.host), signal), port: address.port, signal, limits };
  }

  /** The TCP options asked for, if any, are ones this backend can set; NotSupportedError saying why not otherwise. */
  #tcpOptions(operation: string, limits: ConnectionLimits): void {
    if (limits.tcp !== null) checkTcpSupport(operation, this.backend, limits.tcp, this.setsTcpOptions());
  }

  /**
   * An adopted socket turned out to be a Unix one, whose connections take
   * no TCP options: refused rather than ignored. The server is closed (and
   * with it the descriptor, the server's since it was adopted).
   */
  async #tcpOnly(operation: string, at: ListenTarget, server: Server): Promise<Server> {
    if (at.fd === undefined || at.limits.tcp === null || server.address().family !== 'unix') return server;
    await server.close();
    throw new TypeError(`${operation}: noDelay and keepAlive are TCP options, and fd ${at.fd} is a Unix domain socket`);
  }

  #unixSockets(operation: string): void {
    if (!this.hasUnixSockets())
      throw new NotSupportedError(`${operation}: the '${this.backend.name}' backend has no Unix domain sockets`);
  }
}

/** `address` without its `tls`: the plain connection TLS runs over. */
function plain(address: CheckedAddress): CheckedAddress {
  // maxConnections refuses below, before a handshake, and the TCP options are the socket's; the timeouts are the TLS layer's.
  const tcp = address.limits.tcp;
  return { ...address, tls: null, limits: tcp === null ? NO_LIMITS : { ...NO_LIMITS, tcp } };
}

/**
 * A server's accepted connection with a fresh protocol (`open` makes its
 * transport), or, if the factory fails, reported and closed (`closeRaw`).
 */
export function withProtocol(
  loop: IoLoop,
  operation: string,
  factory: ProtocolFactory,
  open: (protocol: Protocol) => Accepted,
  closeRaw: () => void,
): Accepted {
  let protocol: Protocol;
  try {
    protocol = checkProtocol(operation, factory());
  } catch (error) {
    loop._report(`${operation}: the protocol factory failed; the connection was closed`, error);
    closeRaw();
    return { whenClosed: (fn) => fn() };
  }
  return open(protocol);
}

/** A connected socket's protocol and transport; if the factory fails, the socket is closed and the error thrown. */
export function connectedProtocol<P extends Protocol>(
  operation: string,
  factory: ProtocolFactory<P>,
  open: (protocol: P) => Transport,
  closeRaw: () => void,
): { transport: Transport; protocol: P } {
  let protocol: P;
  try {
    protocol = checkProtocol(operation, factory());
  } catch (error) {
    closeRaw();
    throw error;
  }
  return { transport: open(protocol), protocol };
}

/** A numeric address for `host` (IPv4 preferred for names, as most servers listen there). */
async function resolveHost(operation: string, host: string): Promise<string> {
  if (isIpLiteral(host)) return host;
  const { lookup } = await import('node:dns/promises');
  try {
    const { address } = await lookup(host, { order: 'ipv4first' } as never);
    return address;
  } catch (error) {
    throw new IoError(operation, (error as { code?: string }).code ?? 'ENOTFOUND', `cannot resolve ${host}`, {
      cause: error,
    });
  }
}
