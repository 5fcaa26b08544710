/**
 * TLS as a layer over any of the loop's transports, with the host's own
 * TLS (OpenSSL through node:tls on Node, Deno and Bun; never one of ours):
 *
 *     the program     TlsConnection (tls-connection.ts: streams)
 *                     TlsTransport (tls-transport.ts: protocols)
 *     node:tls        TLSSocket: the handshake, records, close_notify
 *     node:stream     TransportDuplex (transport-duplex.ts): a Duplex
 *     the loop        a protocol's transport (protocols.ts), on any backend
 *                     with a network, the virtual one included
 *
 * This file owns what both APIs share: loading node:tls where TLS is
 * asked for (hosts without it refuse with NotSupportedError), secure
 * contexts, the handshake on either side (bounded by handshakeTimeoutMs of
 * loop time; certificates and host names verified by default), the
 * errors (TlsError names what failed), and the clock holds that keep a
 * virtual loop from running ahead of the host's TLS work.
 *
 * It is imported dynamically, only when a `tls` option or startTls asks.
 */
import type { ConnectionOptions, SecureContext, TLSSocket } from 'node:tls';
import type { Duplex } from 'node:stream';
import type { TlsConfig } from '../tls-options.js';
import {
  ConnectionClosedError,
  ConnectionResetError,
  LoopClosedError,
  NotSupportedError,
  TimeoutError,
  TlsError,
} from '../errors.js';
import { isIpLiteral } from '../net/address.js';
import type { IoLoop } from './io-common.js';
import type { Protocol, Transport } from './protocols.js';
import { type TlsInfo, tlsInfoOf } from './tls-info.js';

type NodeTls = typeof import('node:tls');
type DuplexProtocol = typeof import('./transport-duplex.js').duplexProtocol;
type ConnectionDuplexClass = typeof import('./connection-duplex.js').ConnectionDuplex;

/** What the layer takes from the host, loaded once. */
export interface TlsHost {
  readonly tls: NodeTls;
  readonly duplexProtocol: DuplexProtocol;
  /** A stream connection as a Duplex (startTls on a Connection). */
  readonly ConnectionDuplex: ConnectionDuplexClass;
  readonly setImmediate: (fn: () => void) => void;
  readonly Duplex: typeof Duplex;
}

/** The loop as the TLS layer uses it. */
export interface TlsLoop extends IoLoop {
  time(): number;
  /** Virtual time: hold the clock while host work is in flight (loop.ts); null on wall time. */
  _holdClock?(): (() => void) | null;
}

let loading: Promise<TlsHost> | null = null;

/** node:tls and what goes with it, or NotSupportedError naming why this host has none. */
export async function loadTlsHost(operation: string): Promise<TlsHost> {
  const g = globalThis as { navigator?: { userAgent?: string } };
  if (g.navigator?.userAgent === 'Cloudflare-Workers') {
    throw new NotSupportedError(
      `${operation}: TLS needs node:tls's TLSSocket over a stream, which workerd does not have`,
    );
  }
  loading ??= (async () => {
    const tls = (await import('node:tls')) as NodeTls & { default?: NodeTls };
    const timers = await import('node:timers');
    const stream = await import('node:stream');
    const { duplexProtocol } = await import('./transport-duplex.js');
    const { ConnectionDuplex } = await import('./connection-duplex.js');
    const api = (typeof tls.TLSSocket === 'function' ? tls : tls.default) as NodeTls;
    if (typeof api?.TLSSocket !== 'function' || typeof api.connect !== 'function')
      throw new Error('node:tls has no TLSSocket');
    const setImmediate = (fn: () => void) => void timers.setImmediate(fn);
    return { tls: api, duplexProtocol, ConnectionDuplex, setImmediate, Duplex: stream.Duplex };
  })();
  try {
    return await loading;
  } catch (cause) {
    loading = null;
    throw new NotSupportedError(`${operation}: TLS needs node:tls (Node.js, Deno or Bun), which this host lacks`, {
      cause,
    });
  }
}

// ------------------------------------------------------------- clock holds

/**
 * Marks host work in flight: node:tls finishes each write to the stream
 * below it in a host macrotask (`setImmediate`), and closes in one. On
 * virtual time the loop must wait for that work before its next iteration
 * or clock jump (a pending handshake timeout would fire at once), so each
 * event that can start it holds the clock until two host turns have
 * passed: the turn node:tls queued its work in, and the one that work may
 * queue more in (which holds again). On wall time, nothing to do.
 */
export function hostSettler(loop: TlsLoop, host: TlsHost): (() => void) | null {
  const probe = loop._holdClock?.() ?? null;
  if (probe === null) return null;
  probe();
  return () => {
    const release = (loop._holdClock as () => (() => void) | null)();
    if (release !== null) host.setImmediate(() => host.setImmediate(release));
  };
}

/**
 * `inner` (a TransportDuplex's protocol), holding the clock around every
 * event that can start node:tls's host work (virtual time only).
 */
export function heldProtocol(settle: (() => void) | null, inner: Protocol): Protocol {
  if (settle === null) return inner;
  return {
    connectionMade: (transport) => inner.connectionMade?.(heldTransport(settle, transport)),
    dataReceived: (data) => {
      settle();
      inner.dataReceived?.(data);
    },
    eofReceived: () => {
      settle();
      return inner.eofReceived?.();
    },
    connectionLost: (error) => {
      settle();
      inner.connectionLost?.(error);
    },
    pauseWriting: () => inner.pauseWriting?.(),
    resumeWriting: () => {
      settle();
      inner.resumeWriting?.();
    },
  };
}

function heldTransport(settle: () => void, t: Transport): Transport {
  return {
    write: (data) => {
      settle();
      t.write(data);
    },
    writeEof: () => {
      settle();
      t.writeEof();
    },
    close: () => {
      settle();
      t.close();
    },
    abort: () => {
      settle();
      t.abort();
    },
    isClosing: () => t.isClosing(),
    pauseReading: () => t.pauseReading(),
    resumeReading: () => t.resumeReading(),
    isReading: () => t.isReading(),
    writeBufferSize: () => t.writeBufferSize(),
    setWriteBufferLimits: (high, low) => t.setWriteBufferLimits(high, low),
    setTcpOptions: (options) => t.setTcpOptions(options),
    get localAddress() {
      return t.localAddress;
    },
    get remoteAddress() {
      return t.remoteAddress;
    },
  };
}

// ------------------------------------------------------------ the handshake

/** A server's secure context, made once per server from its `tls` option. */
export function serverContext(
  host: TlsHost,
  config: Extract<TlsConfig, { side: 'server' }>,
  operation: string,
): SecureContext {
  try {
    return host.tls.createSecureContext({
      key: config.key as never,
      cert: config.cert as never,
      ca: config.ca as never,
    });
  } catch (cause) {
    throw new TlsError(
      `${operation}: tls: the key or certificate was refused: ${(cause as Error).message}`,
      codeOf(cause, 'ERR_TLS_CONFIG'),
      { cause },
    );
  }
}

/** A handshake's outcome: the socket, and what was negotiated. */
export interface Secured {
  socket: TLSSocket;
  info: TlsInfo;
}

/**
 * The server side over `duplex`: its TLSSocket, and the handshake, which
 * resolves once done and the client's certificate (if asked) verified.
 */
export function acceptTls(
  loop: TlsLoop,
  host: TlsHost,
  duplex: Duplex,
  config: Extract<TlsConfig, { side: 'server' }>,
  context: SecureContext,
  operation = 'accept',
  signal?: AbortSignal,
): { socket: TLSSocket; secured: Promise<Secured> } {
  const socket = new host.tls.TLSSocket(duplex, {
    isServer: true,
    secureContext: context,
    requestCert: config.requestCert,
    rejectUnauthorized: config.requestCert && config.rejectUnauthorized,
    ...(config.alpnProtocols === undefined ? {} : { ALPNProtocols: config.alpnProtocols }),
  });
  const secured = handshake(
    loop,
    socket,
    duplex,
    'secure',
    operation,
    config.handshakeTimeoutMs,
    signal ?? null,
    () => {
      if (!config.requestCert) return { info: tlsInfoOf(socket, false, null) };
      // node:tls's server checks this in tls.Server; a bare TLSSocket leaves it to its owner.
      const verifyError = verifyErrorOf(socket);
      const hasCert = Object.keys(socket.getPeerCertificate() ?? {}).length > 0;
      const authorized = verifyError === null && hasCert;
      const why =
        verifyError === null ? (hasCert ? null : 'NO_PEER_CERTIFICATE') : codeOf(verifyError, 'UNABLE_TO_VERIFY');
      if (!authorized && config.rejectUnauthorized) {
        const what =
          verifyError === null
            ? 'the client sent no certificate'
            : `the client's certificate failed verification: ${verifyError.message}`;
        return { error: new TlsError(`${operation}: ${what}`, why as string, { cause: verifyError ?? undefined }) };
      }
      return { info: tlsInfoOf(socket, authorized, why) };
    },
  );
  return { socket, secured };
}

/**
 * The client certificate's verification result on a server-side TLSSocket:
 * null if it verified (or none was sent), else an error whose `code` is
 * OpenSSL's. Node's handle returns null or such an Error; Deno's returns
 * the code as a string, '' for none.
 */
function verifyErrorOf(socket: TLSSocket): Error | null {
  const result = (socket as unknown as { _handle?: { verifyError?(): unknown } })._handle?.verifyError?.() ?? null;
  if (result === null || result === '') return null;
  if (result instanceof Error) return result;
  const code = String(result);
  return Object.assign(new Error(code.toLowerCase().replaceAll('_', ' ')), { code });
}

/** The client side over `duplex`, checking the certificate against `hostName` (or tls.servername). */
export function connectTls(
  loop: TlsLoop,
  host: TlsHost,
  duplex: Duplex,
  config: Extract<TlsConfig, { side: 'client' }>,
  hostName: string,
  operation: string,
  signal?: AbortSignal,
): Promise<Secured> {
  const name = config.servername ?? hostName;
  const options: ConnectionOptions = {
    socket: duplex,
    host: name,
    rejectUnauthorized: config.rejectUnauthorized,
  };
  // SNI carries names only (RFC 6066); an IP address is checked against the IP SANs.
  if (!isIpLiteral(name)) options.servername = name;
  if (config.ca !== undefined) options.ca = config.ca as never;
  if (config.cert !== undefined) options.cert = config.cert as never;
  if (config.key !== undefined) options.key = config.key as never;
  if (config.alpnProtocols !== undefined) options.ALPNProtocols = config.alpnProtocols as string[];
  const socket = host.tls.connect(options);
  // Bun's node:tls sends the ClientHello in a later host turn: the clock waits for it.
  hostSettler(loop, host)?.();
  return handshake(loop, socket, duplex, 'secureConnect', operation, config.handshakeTimeoutMs, signal ?? null, () => ({
    info: tlsInfoOf(
      socket,
      socket.authorized,
      socket.authorized ? null : String(socket.authorizationError ?? 'UNAUTHORIZED'),
    ),
  }));
}

/**
 * Waits for `event` (the handshake done), then `verdict`; fails with a
 * TlsError on an error, the peer closing, or the time running out, and
 * with LoopClosedError when the loop closes first. The socket is destroyed
 * on failure.
 */
function handshake(
  loop: TlsLoop,
  socket: TLSSocket,
  below: Duplex,
  event: 'secure' | 'secureConnect',
  operation: string,
  timeoutMs: number,
  signal: AbortSignal | null,
  verdict: () => { info: TlsInfo } | { error: Error },
): Promise<Secured> {
  return new Promise<Secured>((resolve, reject) => {
    let done = false;
    const finish = (outcome: { info: TlsInfo } | { error: unknown }): void => {
      if (done) return;
      done = true;
      timer?.cancel();
      loop._track(resource, false);
      signal?.removeEventListener('abort', onAbort);
      socket.off('close', onClose);
      below.off('end', onBelowGone);
      below.off('close', onBelowGone);
      if ('info' in outcome) {
        resolve({ socket, info: outcome.info });
      } else {
        socket.destroy();
        reject(outcome.error);
      }
    };
    const timer = Number.isFinite(timeoutMs)
      ? loop.callLater(timeoutMs, () =>
          finish({ error: new TlsError(`${operation}: handshake: timed out after ${timeoutMs} ms`, 'ETIMEDOUT') }),
        )
      : null;
    const resource = { close: () => finish({ error: new LoopClosedError(operation) }) };
    const onAbort = () =>
      finish({ error: signal?.reason ?? new DOMException(`The ${operation} was aborted`, 'AbortError') });
    const onClose = () =>
      finish({ error: new TlsError(`${operation}: handshake: peer closed the connection`, 'ECONNRESET') });
    const onBelowGone = () => {
      if (!socket.destroyed) socket.destroy();
    };
    loop._track(resource, true);
    signal?.addEventListener('abort', onAbort, { once: true });
    socket.once(event, () => finish(verdict()));
    // Stays attached: an 'error' with no listener would crash the process.
    socket.on('error', (error: Error) => finish({ error: tlsErrorOf(operation, error) }));
    socket.once('close', onClose);
    // The TLSSocket reports the end of the stream below only once read,
    // and nothing reads it yet: destroying it ends the handshake (its own
    // error, if it has one, comes before its 'close').
    below.once('end', onBelowGone);
    below.once('close', onBelowGone);
    if (signal?.aborted) onAbort();
  });
}

// ------------------------------------------------------------------ errors

function codeOf(error: unknown, fallback: string): string {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' && code !== '' ? code : fallback;
}

/** Codes of a connection the peer dropped. */
const PEER_GONE = new Set(['ECONNRESET', 'EPIPE', 'ERR_STREAM_PREMATURE_CLOSE', 'ECANCELED']);

/**
 * A host TLS error as the loop reports it: a TlsError naming what failed,
 * the host's error as its cause. Errors of the connection below (a reset)
 * keep their own class once the handshake is done.
 */
export function tlsErrorOf(operation: string, error: unknown, established = false): Error {
  // Ours already (an idle timeout of the connection below is its own TimeoutError).
  if (
    error instanceof TlsError ||
    error instanceof ConnectionClosedError ||
    error instanceof LoopClosedError ||
    error instanceof TimeoutError
  ) {
    return error;
  }
  const e = error as Error & {
    code?: string;
    reason?: string;
    host?: string;
    cert?: { subjectaltname?: string; subject?: { CN?: string } };
  };
  const code = codeOf(e, 'ERR_TLS');
  const message = typeof e?.message === 'string' ? e.message : String(error);
  if (established && (PEER_GONE.has(code) || error instanceof ConnectionResetError)) {
    return error instanceof ConnectionResetError
      ? error
      : new ConnectionResetError('read', 'ECONNRESET', message, { cause: error });
  }
  if (code === 'ERR_TLS_CERT_ALTNAME_INVALID') {
    const names = e.cert?.subjectaltname || (e.cert?.subject?.CN ? `CN=${e.cert.subject.CN}` : 'no name');
    return new TlsError(`${operation}: hostname mismatch: cert is for ${names}, connected to ${e.host ?? '?'}`, code, {
      cause: error,
    });
  }
  if (PEER_GONE.has(code) || /disconnected before secure TLS|socket hang up/.test(message)) {
    return new TlsError(`${operation}: handshake: peer closed the connection`, 'ECONNRESET', { cause: error });
  }
  if (!code.startsWith('ERR_') && /^[A-Z_]+$/.test(code)) {
    // OpenSSL's verification result (CERT_HAS_EXPIRED, DEPTH_ZERO_SELF_SIGNED_CERT, ...).
    return new TlsError(`${operation}: the peer's certificate failed verification: ${message}`, code, { cause: error });
  }
  const reason = typeof e.reason === 'string' && e.reason !== '' ? e.reason : message;
  const alert = /alert (.+)$/i.exec(reason);
  const what = alert !== null ? `the peer sent the alert "${alert[1]?.toLowerCase()}"` : reason;
  return new TlsError(`${operation}: ${established ? '' : 'handshake: '}${what}`, code, { cause: error });
}
