/**
 * Socket addresses as the loop reports them: numeric addresses need no name
 * lookup (`isIpLiteral`), and a readiness backend's `address()` text becomes
 * a SocketAddress (`parseAddress`). Shared by io/ and the backends; depends
 * on the backend contract only.
 */
import type { SocketAddress } from '../backends/backend.js';

const IP_LITERAL = /^(\d{1,3}(\.\d{1,3}){3}|[0-9a-fA-F:]*:[0-9a-fA-F:.]*)$/;

/** True for a numeric IPv4 or IPv6 address (no name lookup needed). */
export function isIpLiteral(host: string): boolean {
  return IP_LITERAL.test(host);
}

/** A `SocketOps.address()` result as a SocketAddress (an errno gives an empty one). */
export function parseAddress(text: string | number): SocketAddress {
  if (typeof text === 'number') return { host: '', port: 0, family: 'IPv4' };
  if (text.startsWith('unix ')) return unixAddress(text.slice(5));
  const [family, host, port] = text.split(' ');
  return { host: host ?? '', port: Number(port), family: family === '6' ? 'IPv6' : 'IPv4' };
}

/** The SocketAddress of a Unix domain socket. */
export function unixAddress(path: string): SocketAddress {
  return { host: '', port: 0, family: 'unix', path };
}
