/**
 * Datagram endpoints: asyncio's UDP API (`loop.create_datagram_endpoint`).
 * A protocol's `datagramReceived(data, addr)` runs for each datagram, inside
 * a loop callback the core ordered; `transport.sendto(data, addr)` sends at
 * once and queues what the system cannot take yet. `connectionLost` is
 * scheduled with `callSoon`, as asyncio does.
 *
 * This file holds the public DatagramProtocol and DatagramTransport types,
 * what every endpoint shares (`BaseDatagramTransport`) and the checks of a
 * `sendto`. Each I/O model's endpoint has a file of its own:
 * `datagram-readiness.ts` and `datagram-completion.ts`.
 */
import type { SocketAddress } from '../backends/backend.js';
import { checkFamily } from '../arguments.js';
import { MAX_DATAGRAM_BYTES } from '../net/datagram-buffer.js';
import { isIpLiteral } from '../net/address.js';
import { describe } from '../errors.js';
import { type IoLoop, toBytes } from './streams.js';

/** What a datagram protocol may implement; every method is optional. */
export interface DatagramProtocol {
  /** The endpoint is open; `transport` sends from it. */
  connectionMade?(transport: DatagramTransport): void;
  /** A datagram arrived from `addr`. The array is the protocol's to keep. */
  datagramReceived?(data: Uint8Array, addr: SocketAddress): void;
  /**
   * A send or receive failed (an ICMP "port unreachable" for a connected
   * endpoint arrives as ECONNREFUSED); the endpoint stays open.
   */
  errorReceived?(error: Error): void;
  /** The endpoint is closed: `null` after `close()`/`abort()`. */
  connectionLost?(error: Error | null): void;
}

/** A UDP endpoint as a protocol sees it. */
export interface DatagramTransport {
  /**
   * Sends `data` as one datagram to `addr` (a numeric address), or to the
   * remote address of a connected endpoint; never blocks.
   */
  sendto(data: Uint8Array | string, addr?: { host: string; port: number }): void;
  /** Closes once queued datagrams are sent; `connectionLost(null)` follows. Idempotent. */
  close(): void;
  /** Closes now, dropping queued datagrams; `connectionLost(null)` follows. Idempotent. */
  abort(): void;
  /** True once `close()` or `abort()` was called. */
  isClosing(): boolean;
  /** Bytes of datagrams queued and not yet sent. */
  writeBufferSize(): number;
  readonly localAddress: SocketAddress;
  /** The connected peer, or null for an endpoint that sends anywhere. */
  readonly remoteAddress: SocketAddress | null;
}

export type DatagramProtocolFactory<P extends DatagramProtocol = DatagramProtocol> = () => P;

/** `addr` of a `sendto`: a numeric host and a port 1..65535 (and a `family` that agrees with the host). */
function checkDestination(addr: unknown): { host: string; port: number } {
  if (typeof addr !== 'object' || addr === null) {
    throw new TypeError(`sendto: addr must be an object { host, port }, got ${describe(addr)}`);
  }
  const { host, port, family } = addr as { host?: unknown; port?: unknown; family?: unknown };
  if (typeof host !== 'string' || !isIpLiteral(host)) {
    throw new TypeError(`sendto: addr.host must be a numeric IP address, got ${describe(host)}`);
  }
  if (typeof port !== 'number' || !Number.isInteger(port) || port < 1 || port > 65535) {
    throw new RangeError(`sendto: addr.port must be an integer from 1 to 65535, got ${describe(port)}`);
  }
  // A sender's address as datagramReceived reported it.
  if (family !== undefined) checkFamily('sendto', 'addr.family', family, { host });
  return { host, port };
}

/**
 * What both models share: the protocol calls (one that throws aborts the
 * endpoint and is reported), the closing state, and the teardown that
 * schedules `connectionLost(null)` once.
 */
export abstract class BaseDatagramTransport implements DatagramTransport {
  protected readonly loop: IoLoop;
  protected readonly protocol: DatagramProtocol;
  /** close() or abort() was called: no new sends, no more deliveries. */
  protected closing = false;
  /** Released, and connectionLost scheduled. */
  protected finished = false;
  /** What the loop closes when it closes: the endpoint, at once. */
  readonly #tracked = {
    close: () => {
      this.#loopClosing = true;
      this.abort();
    },
  };
  /** The loop is closing: connectionLost runs at once, as no later callback will. */
  #loopClosing = false;
  abstract readonly localAddress: SocketAddress;
  abstract readonly remoteAddress: SocketAddress | null;

  constructor(loop: IoLoop, protocol: DatagramProtocol) {
    this.loop = loop;
    this.protocol = protocol;
  }

  abstract sendto(data: Uint8Array | string, addr?: { host: string; port: number }): void;
  abstract close(): void;
  abstract abort(): void;
  abstract writeBufferSize(): number;

  isClosing(): boolean {
    return this.closing;
  }

  /** Open: tracked by the loop, `connectionMade` called. */
  protected begin(): void {
    this.loop._track(this.#tracked, true);
    this.call('connectionMade', this);
  }

  /** Hands a datagram to the protocol; false if the protocol threw (the endpoint is then aborted). */
  protected received(data: Uint8Array, from: SocketAddress): boolean {
    const protocol = this.protocol;
    if (protocol.datagramReceived === undefined) return true;
    try {
      protocol.datagramReceived(data, from);
      return true;
    } catch (error) {
      this.#failed('datagramReceived', error);
      return false;
    }
  }

  /** Calls a protocol method; one that throws has its endpoint aborted and the error reported. */
  protected call(method: 'connectionMade' | 'errorReceived', arg: unknown): void {
    const fn = this.protocol[method] as ((arg: unknown) => unknown) | undefined;
    if (typeof fn !== 'function') return;
    try {
      fn.call(this.protocol, arg);
    } catch (error) {
      this.#failed(method, error);
    }
  }

  #failed(method: string, error: unknown): void {
    this.loop._report(`protocol.${method}() failed; its endpoint was aborted`, error);
    this.abort();
  }

  /** Releases the model's resources and schedules `connectionLost(null)`, once. */
  protected teardown(): void {
    this.closing = true;
    if (this.finished) return;
    this.finished = true;
    this.release();
    this.loop._track(this.#tracked, false);
    const protocol = this.protocol;
    if (typeof protocol.connectionLost !== 'function' || this.loop.isClosed()) return;
    const lost = () => {
      try {
        protocol.connectionLost?.(null);
      } catch (thrown) {
        this.loop._report('protocol.connectionLost() failed', thrown);
      }
    };
    // The loop is closing: no later callback runs, so now.
    if (this.#loopClosing) lost();
    else this.loop.callSoon(lost);
  }

  /** Frees the model's resources (descriptor, watches, tokens, host endpoint). */
  protected abstract release(): void;
}

/** A `sendto`'s checked arguments: the bytes and where they go (null host: the connected peer). */
export function checkSend(
  data: Uint8Array | string,
  addr: { host: string; port: number } | undefined,
  connected: boolean,
): { bytes: Uint8Array; host: string | null; port: number } {
  const bytes = toBytes('sendto', data);
  if (bytes.length > MAX_DATAGRAM_BYTES) {
    throw new RangeError(`sendto: a datagram holds at most ${MAX_DATAGRAM_BYTES} bytes, got ${bytes.length}`);
  }
  if (addr === undefined) {
    if (!connected) throw new TypeError('sendto: addr is required: this endpoint has no remote address');
    return { bytes, host: null, port: 0 };
  }
  const { host, port } = checkDestination(addr);
  if (connected) throw new TypeError('sendto: this endpoint is connected; send without addr (to its remote address)');
  return { bytes, host, port };
}

/** Where a datagram endpoint binds, and the peer it is connected to, if any. */
export interface DatagramTarget {
  local: { host: string; port: number };
  remote: { host: string; port: number } | null;
}
