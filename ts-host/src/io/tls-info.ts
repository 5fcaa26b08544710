/**
 * What a TLS connection negotiated, as the program sees it (`conn.tls`,
 * `transport.tls`): a small, documented surface over node:tls's
 * TLSSocket, so programs do not depend on the host's socket object.
 * Portable (no node: import): only the shape and the copy.
 */

/** A certificate, as node:tls's `getPeerCertificate()` describes it, trimmed to what is stable across hosts. */
export interface TlsCertificate {
  /** Distinguished name parts (`{ CN: 'example.com', O: ... }`). */
  readonly subject: Readonly<Record<string, string | string[]>>;
  readonly issuer: Readonly<Record<string, string | string[]>>;
  /** `'DNS:example.com, IP Address:127.0.0.1'`, or '' without the extension. */
  readonly subjectAltName: string;
  readonly validFrom: string;
  readonly validTo: string;
  /** SHA-256 fingerprint, `AA:BB:...`. */
  readonly fingerprint256: string;
  readonly serialNumber: string;
  /** The certificate, DER. */
  readonly raw: Uint8Array;
}

/** What was negotiated: `conn.tls` (null on a plaintext connection). */
export interface TlsInfo {
  /** `'TLSv1.3'`, `'TLSv1.2'`. */
  readonly version: string;
  /** The cipher suite's standard name (`'TLS_AES_256_GCM_SHA384'`). */
  readonly cipher: string;
  /** The protocol ALPN chose, or null when none was negotiated. */
  readonly alpnProtocol: string | null;
  /** The peer's certificate; null when it sent none (a client a server did not ask). */
  readonly peerCertificate: TlsCertificate | null;
  /** The peer's certificate verified (chain and, on a client, host name). */
  readonly authorized: boolean;
  /** Why it did not (`'DEPTH_ZERO_SELF_SIGNED_CERT'`, ...), when it did not. */
  readonly authorizationError: string | null;
  /** The name sent in SNI (client) or received (server), if any. */
  readonly servername: string | null;
}

/** The parts of a node:tls TLSSocket this file reads. */
export interface TlsSocketLike {
  getProtocol(): string | null;
  getCipher(): { standardName?: string; name: string } | null;
  getPeerCertificate(detailed?: boolean): object | null;
  alpnProtocol?: string | false | null;
  authorized: boolean;
  authorizationError?: unknown;
  servername?: string | false | null;
}

function certificateOf(certificate: object | null): TlsCertificate | null {
  const cert = certificate as Record<string, unknown> | null;
  if (cert === null || typeof cert !== 'object' || Object.keys(cert).length === 0) return null;
  const raw = cert.raw as Uint8Array | undefined;
  return {
    subject: { ...((cert.subject as Record<string, string>) ?? {}) },
    issuer: { ...((cert.issuer as Record<string, string>) ?? {}) },
    subjectAltName: (cert.subjectaltname as string | undefined) ?? '',
    validFrom: String(cert.valid_from ?? ''),
    validTo: String(cert.valid_to ?? ''),
    fingerprint256: String(cert.fingerprint256 ?? ''),
    serialNumber: String(cert.serialNumber ?? ''),
    raw: raw === undefined ? new Uint8Array(0) : new Uint8Array(raw),
  };
}

/** A frozen copy of what `socket` negotiated, taken once the handshake is done. */
export function tlsInfoOf(socket: TlsSocketLike, authorized: boolean, authorizationError: string | null): TlsInfo {
  const cipher = socket.getCipher();
  return Object.freeze({
    version: socket.getProtocol() ?? '',
    cipher: cipher?.standardName ?? cipher?.name ?? '',
    alpnProtocol: typeof socket.alpnProtocol === 'string' ? socket.alpnProtocol : null,
    peerCertificate: certificateOf(socket.getPeerCertificate(false)),
    authorized,
    authorizationError,
    servername: typeof socket.servername === 'string' ? socket.servername : null,
  });
}
