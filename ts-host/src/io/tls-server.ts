/**
 * TLS servers and clients, for both APIs: a TLS server is a plain
 * protocol server (any backend) whose connections are TransportDuplexes,
 * each wrapped in a server-side TLSSocket; once its handshake is done it
 * becomes a TlsConnection handed to the handler (streams) or a
 * TlsTransport whose protocol hears `connectionMade` (protocols, as
 * asyncio's `ssl=`). A connection whose handshake fails is closed; the
 * server goes on. A client connects plainly, then shakes hands before the
 * connect resolves.
 *
 * `TlsServer` answers for the TLS connections as BaseServer does for
 * plain ones: `close()` stops accepting (the plain server's close) and
 * resolves once every connection, TLS layer and descriptor, is gone;
 * `closeClients()` ends each TLS session (close_notify, then the lingering
 * close) and `abortClients()` drops them, handshakes in progress included.
 */
import type { Duplex } from 'node:stream';
import type { TLSSocket } from 'node:tls';
import type { SocketAddress } from '../backends/backend.js';
import type { ConnectionLimits } from '../arguments.js';
import type { TlsConfig } from '../tls-options.js';
import { checkProtocol } from '../arguments.js';
import type { Connection } from './connection.js';
import type { Protocol, ProtocolFactory, Transport } from './protocols.js';
import { type ConnectionHandler, type Server, runHandler } from './server.js';
import {
  type Secured,
  type TlsHost,
  type TlsLoop,
  acceptTls,
  connectTls,
  heldProtocol,
  hostSettler,
  loadTlsHost,
  serverContext,
} from './tls.js';
import { TlsConnection } from './tls-connection.js';
import { TlsTransport } from './tls-transport.js';

type ServerTls = Extract<TlsConfig, { side: 'server' }>;
type ClientTls = Extract<TlsConfig, { side: 'client' }>;

/** What a TLS server does with a connection once its handshake is done, and the limits it has then. */
export type OnSecured = ({ handler: ConnectionHandler } | { factory: ProtocolFactory; operation: string }) & {
  limits: ConnectionLimits;
};

/** What the server counts: a TLS connection or transport, or a handshake in progress. */
interface Open {
  whenClosed(fn: () => void): void;
  closeGracefully(): void;
  abort(): void;
}

/** The raw transport a TransportDuplex runs on: a TLS transport's own is over it. */
function transportOf(duplex: Duplex): Transport {
  return (duplex as Duplex & { transport: Transport }).transport;
}

/** The raw transport's addresses, for the TLS object above it. */
function addressesOf(duplex: Duplex): { localAddress: SocketAddress; remoteAddress: SocketAddress } {
  const transport = transportOf(duplex);
  return { localAddress: transport.localAddress, remoteAddress: transport.remoteAddress };
}

class TlsServer implements Server {
  readonly #raw: Server;
  readonly #open = new Set<Open>();

  constructor(raw: Server) {
    this.#raw = raw;
  }

  address(): SocketAddress {
    return this.#raw.address();
  }

  get connections(): number {
    return this.#open.size;
  }

  /** Counts `item` until it closes. */
  adopt(item: Open): void {
    this.#open.add(item);
    item.whenClosed(() => this.#open.delete(item));
  }

  close(): Promise<void> {
    // The plain server waits for every descriptor; each TLS layer closes with its own.
    return this.#raw.close();
  }

  closeClients(): void {
    for (const item of [...this.#open]) item.closeGracefully();
  }

  abortClients(): void {
    for (const item of [...this.#open]) item.abort();
    this.#raw.abortClients();
  }
}

/** A handshake in progress on a server, as the server counts it. */
function handshaking(socket: TLSSocket): Open & { done(): void } {
  let closed = false;
  let waiting: Array<() => void> = [];
  const done = () => {
    if (closed) return;
    closed = true;
    const fns = waiting;
    waiting = [];
    for (const fn of fns) fn();
  };
  return {
    whenClosed: (fn) => (closed ? fn() : waiting.push(fn)),
    closeGracefully: () => socket.destroy(),
    abort: () => socket.destroy(),
    done,
  };
}

/**
 * Listens with TLS: `listenPlain(factory)` is the loop's plain protocol
 * server at the same address.
 */
export async function listenTls(
  loop: TlsLoop,
  operation: string,
  config: ServerTls,
  listenPlain: (factory: ProtocolFactory) => Promise<Server>,
  onSecured: OnSecured,
): Promise<Server> {
  const host = await loadTlsHost(operation);
  const context = serverContext(host, config, operation);
  const settle = hostSettler(loop, host);
  let server: TlsServer | null = null;
  const accepted = (duplex: Duplex): void => {
    const addresses = addressesOf(duplex);
    const { socket, secured } = acceptTls(loop, host, duplex, config, context);
    // The server counts the handshake until it is done.
    const pending = handshaking(socket);
    server?.adopt(pending);
    secured.then(
      ({ info }: Secured) => {
        pending.done();
        if ('handler' in onSecured) {
          const connection = new TlsConnection(loop, socket, info, addresses, onSecured.limits);
          server?.adopt(connection);
          runHandler(loop, onSecured.handler, connection);
        } else {
          let protocol: Protocol;
          try {
            protocol = checkProtocol(onSecured.operation, onSecured.factory());
          } catch (error) {
            loop._report(`${onSecured.operation}: the protocol factory failed; the connection was closed`, error);
            socket.destroy();
            return;
          }
          const transport = new TlsTransport(loop, socket, info, protocol, transportOf(duplex), onSecured.limits);
          server?.adopt(transport);
          transport.start();
        }
      },
      () => pending.done(),
    );
  };
  const raw = await listenPlain(() => heldProtocol(settle, host.duplexProtocol(loop, accepted)));
  server = new TlsServer(raw);
  return server;
}

/** Connects with TLS: `connectPlain(protocol)` is the loop's plain protocol connection. */
export async function connectTlsStream(
  loop: TlsLoop,
  operation: string,
  config: ClientTls,
  hostName: string,
  signal: AbortSignal | undefined,
  limits: ConnectionLimits,
  connectPlain: (protocol: Protocol) => Promise<unknown>,
): Promise<Connection> {
  const { duplex, secured } = await secureClient(loop, operation, config, hostName, signal, connectPlain);
  return new TlsConnection(loop, secured.socket, secured.info, addressesOf(duplex), limits);
}

/** Connects with TLS for a protocol: `connectionMade` runs once the handshake is done. */
export async function connectTlsProtocol<P extends Protocol>(
  loop: TlsLoop,
  operation: string,
  config: ClientTls,
  hostName: string,
  signal: AbortSignal | undefined,
  limits: ConnectionLimits,
  factory: ProtocolFactory<P>,
  connectPlain: (protocol: Protocol) => Promise<unknown>,
): Promise<{ transport: Transport; protocol: P }> {
  const { duplex, secured } = await secureClient(loop, operation, config, hostName, signal, connectPlain);
  let protocol: P;
  try {
    protocol = checkProtocol(operation, factory());
  } catch (error) {
    secured.socket.destroy();
    throw error;
  }
  const transport = new TlsTransport(loop, secured.socket, secured.info, protocol, transportOf(duplex), limits);
  transport.start();
  return { transport, protocol };
}

async function secureClient(
  loop: TlsLoop,
  operation: string,
  config: ClientTls,
  hostName: string,
  signal: AbortSignal | undefined,
  connectPlain: (protocol: Protocol) => Promise<unknown>,
): Promise<{ duplex: Duplex; secured: Secured }> {
  const host: TlsHost = await loadTlsHost(operation);
  let duplex: Duplex | null = null;
  await connectPlain(
    heldProtocol(
      hostSettler(loop, host),
      host.duplexProtocol(loop, (d) => (duplex = d)),
    ),
  );
  const stream = duplex as unknown as Duplex;
  const secured = await connectTls(loop, host, stream, config, hostName, operation, signal);
  return { duplex: stream, secured };
}
