/**
 * STARTTLS: a plain connection upgraded in place (docs/tls.md), on either
 * side, for both APIs:
 *
 *     conn.startTls(options)                     -> a TLS Connection
 *     loop.startTls(transport, protocol, options) -> a TLS Transport
 *
 * hand-over.ts has already taken the plain object over (its reads and
 * writes refused, its closing passed on, its events held); this file runs
 * the handshake over it (as a Duplex: connection-duplex.ts, or
 * transport-duplex.ts for a transport), then makes the TLS object the
 * program uses from now on, which becomes the heir closing the old object
 * goes to. Until the handshake is done, closing the old object fails the
 * handshake with ConnectionClosedError. A failed handshake closes the
 * connection, so nothing waits on it.
 *
 * Loaded dynamically by startTls, with the TLS layer (tls.ts).
 */
import type { Duplex } from 'node:stream';
import type { ConnectionLimits } from '../arguments.js';
import type { TlsConfig } from '../tls-options.js';
import { NO_LIMITS } from '../arguments.js';
import type { SocketAddress } from '../backends/backend.js';
import { ConnectionClosedError } from '../errors.js';
import type { Connection } from './connection.js';
import type { RawStream, Succession } from './hand-over.js';
import type { Protocol, Transport } from './protocols.js';
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

const OPERATION = 'startTls';

type Addresses = { localAddress: SocketAddress; remoteAddress: SocketAddress };

/** The name a client checks the certificate against when `servername` is not given: the peer's address. */
function peerName(addresses: Addresses): string {
  const remote = addresses.remoteAddress;
  return remote.family === 'unix' ? 'localhost' : remote.host;
}

/**
 * The handshake over `below` on the side `config` says; closing the old
 * object meanwhile fails it with ConnectionClosedError.
 */
async function shakeHands(
  loop: TlsLoop,
  host: TlsHost,
  below: Duplex,
  config: TlsConfig,
  addresses: Addresses,
  succession: Succession,
): Promise<Secured> {
  const stop = new AbortController();
  const closed = () =>
    stop.abort(new ConnectionClosedError(`${OPERATION}: the connection was closed during the handshake`));
  // A close asked for while the TLS layer loaded is this one's first.
  succession.passTo({ close: closed, closeGracefully: closed });
  if (config.side === 'server') {
    const context = serverContext(host, config, OPERATION);
    return acceptTls(loop, host, below, config, context, OPERATION, stop.signal).secured;
  }
  return connectTls(loop, host, below, config, peerName(addresses), OPERATION, stop.signal);
}

/** Upgrades a stream connection whose raw side is `raw`; resolves to its TLS Connection. */
export async function upgradeConnection(
  loop: TlsLoop,
  raw: RawStream,
  succession: Succession,
  config: TlsConfig,
  limits: ConnectionLimits,
  addresses: Addresses,
): Promise<Connection> {
  let duplex: Duplex | null = null;
  try {
    const host = await loadTlsHost(OPERATION);
    duplex = new host.ConnectionDuplex(raw, hostSettler(loop, host));
    const secured = await shakeHands(loop, host, duplex, config, addresses, succession);
    const connection = new TlsConnection(loop, secured.socket, secured.info, addresses, limits);
    succession.passTo(connection);
    return connection;
  } catch (error) {
    succession.passTo(null);
    if (duplex === null) raw.close();
    else duplex.destroy();
    throw error;
  }
}

/**
 * Upgrades a protocol connection: `attach` hands the raw transport's
 * events to the TLS layer; resolves to the TLS transport, whose events go
 * to `protocol` (no second connectionMade, as asyncio's start_tls).
 */
export async function upgradeTransport(
  loop: TlsLoop,
  raw: Transport,
  succession: Succession,
  attach: (protocol: Protocol) => void,
  protocol: Protocol,
  config: TlsConfig,
): Promise<Transport> {
  const addresses = { localAddress: raw.localAddress, remoteAddress: raw.remoteAddress };
  let duplex: Duplex | null = null;
  try {
    const host = await loadTlsHost(OPERATION);
    const below = heldProtocol(
      hostSettler(loop, host),
      host.duplexProtocol(loop, (d) => {
        duplex = d;
      }),
    );
    below.connectionMade?.(raw);
    attach(below);
    const secured = await shakeHands(loop, host, duplex as unknown as Duplex, config, addresses, succession);
    // The idle timeout stays the raw transport's: it sees every record.
    const transport = new TlsTransport(loop, secured.socket, secured.info, protocol, raw, NO_LIMITS);
    succession.passTo(transport);
    transport.start(true);
    return transport;
  } catch (error) {
    succession.passTo(null);
    if (duplex === null) raw.abort();
    else (duplex as Duplex).destroy();
    throw error;
  }
}
