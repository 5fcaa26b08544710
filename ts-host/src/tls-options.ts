/**
 * The `tls` options of servers, connections and startTls: their types, and
 * the checks that turn them into a TlsConfig (docs/tls.md). Every failure is
 * a TypeError or RangeError naming the option, thrown before anything is
 * opened, so a program that asked for TLS never gets plaintext.
 */
import { describe } from './errors.js';
import { checkOptions } from './options.js';

/** A server's `tls` (node:tls's names, camel-cased as the rest of the API). */
export const TLS_SERVER_OPTIONS = [
  'key',
  'cert',
  'ca',
  'requestCert',
  'rejectUnauthorized',
  'alpnProtocols',
  'handshakeTimeoutMs',
] as const;
/** A client's `tls`. */
export const TLS_CLIENT_OPTIONS = [
  'ca',
  'servername',
  'alpnProtocols',
  'rejectUnauthorized',
  'cert',
  'key',
  'handshakeTimeoutMs',
] as const;

/** PEM text or bytes, or a list of them (a chain, several CAs). */
export type Pem = string | Uint8Array | ReadonlyArray<string | Uint8Array>;

/** What `createServer({ tls })` takes (docs/tls.md). */
export interface TlsServerOptions {
  /** The private key, PEM. */
  key: Pem;
  /** The certificate chain, PEM. */
  cert: Pem;
  /** CAs that client certificates must chain to (with `requestCert`). */
  ca?: Pem;
  /** Ask clients for a certificate. Default false. */
  requestCert?: boolean;
  /** With `requestCert`: refuse a client whose certificate does not verify (or is missing). Default true. */
  rejectUnauthorized?: boolean;
  /** Protocols to offer for ALPN, most preferred first (`['h2', 'http/1.1']`). */
  alpnProtocols?: readonly string[];
  /** A handshake not done within this many ms of loop time fails with TlsError. Default 60,000. */
  handshakeTimeoutMs?: number;
}

/** What `createConnection({ tls })` takes; `tls: true` is `{}`. */
export interface TlsClientOptions {
  /** CAs to trust instead of the host's default roots, PEM. */
  ca?: Pem;
  /** The name to send (SNI) and to check the certificate against. Default: the host connected to. */
  servername?: string;
  alpnProtocols?: readonly string[];
  /**
   * False accepts any certificate for any name: UNSAFE, anyone on the path
   * can read and change the traffic. Default true.
   */
  rejectUnauthorized?: boolean;
  /** A client certificate and its key, for servers that ask (`requestCert`). */
  cert?: Pem;
  key?: Pem;
  handshakeTimeoutMs?: number;
}

/** A checked `tls` option: which side, and its settings with defaults filled in. */
export type TlsConfig =
  | ({ side: 'server' } & Required<
      Pick<TlsServerOptions, 'requestCert' | 'rejectUnauthorized' | 'handshakeTimeoutMs'>
    > &
      Pick<TlsServerOptions, 'key' | 'cert' | 'ca' | 'alpnProtocols'>)
  | ({ side: 'client' } & Required<Pick<TlsClientOptions, 'rejectUnauthorized' | 'handshakeTimeoutMs'>> &
      Pick<TlsClientOptions, 'ca' | 'servername' | 'alpnProtocols' | 'cert' | 'key'>);

/**
 * What `conn.startTls()` and `loop.startTls()` take: the server's `tls`
 * options with `serverSide: true` (asyncio's `server_side`), else the
 * client's (none: verify against the host's roots).
 */
export type StartTlsOptions = ({ serverSide: true } & TlsServerOptions) | ({ serverSide?: false } & TlsClientOptions);

/** asyncio's ssl_handshake_timeout. */
export const DEFAULT_HANDSHAKE_TIMEOUT_MS = 60_000;

function checkPem(operation: string, name: string, value: unknown): Pem {
  const one = (v: unknown) => (typeof v === 'string' && v !== '') || (v instanceof Uint8Array && v.length > 0);
  if (one(value) || (Array.isArray(value) && value.length > 0 && value.every(one))) return value as Pem;
  throw new TypeError(
    `${operation}: tls.${name} must be PEM text or bytes (or a list of them), got ${describe(value)}`,
  );
}

function checkBoolean(operation: string, name: string, value: unknown, fallback: boolean): boolean {
  if (value === undefined) return fallback;
  if (typeof value !== 'boolean')
    throw new TypeError(`${operation}: tls.${name} must be a boolean, got ${describe(value)}`);
  return value;
}

/** startTls's options, checked: which side, and its `tls` settings. */
export function checkStartTls(operation: string, options: unknown): TlsConfig {
  if (options === undefined) return checkTls(operation, true, false) as TlsConfig;
  if (typeof options !== 'object' || options === null || Array.isArray(options)) {
    throw new TypeError(
      `${operation}: options must be an object ({ serverSide: true, key, cert } or { servername, ca, ... }), got ${describe(options)}`,
    );
  }
  const { serverSide = false, ...tls } = options as Record<string, unknown>;
  if (typeof serverSide !== 'boolean')
    throw new TypeError(`${operation}: serverSide must be a boolean, got ${describe(serverSide)}`);
  return checkTls(operation, tls, serverSide) as TlsConfig;
}

/**
 * The `tls` option of a listen (`listening`) or a connect, checked: null
 * for none (`undefined` or `false`), else its settings. Every failure is
 * thrown here, before anything is opened, so a program that asked for TLS
 * never gets plaintext.
 */
export function checkTls(operation: string, tls: unknown, listening: boolean): TlsConfig | null {
  if (tls === undefined || tls === false) return null;
  if (tls === true && !listening)
    return { side: 'client', rejectUnauthorized: true, handshakeTimeoutMs: DEFAULT_HANDSHAKE_TIMEOUT_MS };
  if (typeof tls !== 'object' || tls === null || Array.isArray(tls)) {
    throw new TypeError(
      `${operation}: tls must be ${listening ? 'an object { key, cert, ... }' : 'true or an object { ca, servername, ... }'} or false, got ${describe(tls)}`,
    );
  }
  const o = checkOptions(
    `${operation}: tls`,
    tls as Record<string, unknown>,
    listening ? TLS_SERVER_OPTIONS : TLS_CLIENT_OPTIONS,
  );
  const timeout = o.handshakeTimeoutMs ?? DEFAULT_HANDSHAKE_TIMEOUT_MS;
  if (typeof timeout !== 'number' || !(timeout > 0)) {
    throw new RangeError(
      `${operation}: tls.handshakeTimeoutMs must be a number of ms > 0 (Infinity: none), got ${describe(timeout)}`,
    );
  }
  let alpnProtocols: string[] | undefined;
  if (o.alpnProtocols !== undefined) {
    const list = o.alpnProtocols;
    const ok = (p: unknown) => typeof p === 'string' && p.length > 0 && p.length < 256;
    if (!Array.isArray(list) || list.length === 0 || !list.every(ok)) {
      throw new TypeError(
        `${operation}: tls.alpnProtocols must be a non-empty list of protocol names ('h2', 'http/1.1'), got ${describe(list)}`,
      );
    }
    alpnProtocols = [...(list as string[])];
  }
  const rejectUnauthorized = checkBoolean(operation, 'rejectUnauthorized', o.rejectUnauthorized, true);
  const ca = o.ca === undefined ? undefined : checkPem(operation, 'ca', o.ca);
  if (listening) {
    if (o.key === undefined || o.cert === undefined)
      throw new TypeError(`${operation}: tls needs a key and a cert to serve TLS`);
    return {
      side: 'server',
      key: checkPem(operation, 'key', o.key),
      cert: checkPem(operation, 'cert', o.cert),
      ca,
      requestCert: checkBoolean(operation, 'requestCert', o.requestCert, false),
      rejectUnauthorized,
      alpnProtocols,
      handshakeTimeoutMs: timeout,
    };
  }
  if ((o.key === undefined) !== (o.cert === undefined))
    throw new TypeError(`${operation}: a client certificate needs both tls.cert and tls.key`);
  const servername = o.servername;
  if (servername !== undefined && (typeof servername !== 'string' || servername === '')) {
    throw new TypeError(`${operation}: tls.servername must be a non-empty string, got ${describe(servername)}`);
  }
  return {
    side: 'client',
    ca,
    servername: servername as string | undefined,
    alpnProtocols,
    rejectUnauthorized,
    cert: o.cert === undefined ? undefined : checkPem(operation, 'cert', o.cert),
    key: o.key === undefined ? undefined : checkPem(operation, 'key', o.key),
    handshakeTimeoutMs: timeout,
  };
}
