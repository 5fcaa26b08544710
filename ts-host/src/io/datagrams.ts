/**
 * Datagram endpoints: asyncio's UDP API (`loop.create_datagram_endpoint`).
 * A protocol's `datagramReceived(data, addr)` runs for each datagram, inside
 * a loop callback the core ordered (the read watcher on the readiness model,
 * an expected completion on the completion model); `transport.sendto(data,
 * addr)` sends at once and queues what the system cannot take yet.
 * `connectionLost` is scheduled with `callSoon`, as asyncio does.
 */
import type { CompletionBackend, CompletionDatagram, ReadinessBackend, SocketAddress, SocketOps } from '../backends/backend.js';
import { READABLE, WRITABLE } from '../backends/backend.js';
import { checkFamily } from '../arguments.js';
import { DATAGRAMS_PER_READINESS, MAX_DATAGRAM_BYTES, datagramScratch } from '../net/datagram-buffer.js';
import { isIpLiteral, parseAddress } from '../net/address.js';
import { EAGAIN, errnoName } from '../errno.js';
import { ConnectionClosedError, LoopClosedError, describe } from '../errors.js';
import * as checked from './checked.js';
import { type IoLoop, type IoToken, fromHostError, ioError, toBytes } from './streams.js';

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

/** A readiness backend's socket operations, with the datagram ones it has (checked before use). */
type DatagramOps = SocketOps & Required<Pick<SocketOps, 'sendTo' | 'recvFrom' | 'recvAddress'>>;

interface QueuedDatagram {
  bytes: Uint8Array;
  host: string | null;
  port: number;
}

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
abstract class BaseDatagramTransport implements DatagramTransport {
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

/** A datagram endpoint on a readiness backend: a non-blocking UDP descriptor. */
class ReadinessDatagramTransport extends BaseDatagramTransport {
  readonly #backend: ReadinessBackend;
  readonly #ops: DatagramOps;
  readonly #fd: number;
  readonly #readToken: IoToken;
  #writeToken: IoToken | null = null;
  #queue: QueuedDatagram[] = [];
  #queuedBytes = 0;
  readonly localAddress: SocketAddress;
  readonly remoteAddress: SocketAddress | null;

  constructor(loop: IoLoop, backend: ReadinessBackend, fd: number, protocol: DatagramProtocol, connected: boolean) {
    super(loop, protocol);
    this.#backend = backend;
    this.#ops = backend.sockets as DatagramOps;
    this.#fd = fd;
    this.localAddress = parseAddress(backend.sockets.address(fd, false));
    this.remoteAddress = connected ? parseAddress(backend.sockets.address(fd, true)) : null;
    this.#readToken = loop._watch(this.#onReadable);
    try {
      checked.mustWatch(backend, fd, READABLE, this.#readToken.slot);
    } catch (error) {
      loop._release(this.#readToken);
      backend.sockets.close(fd);
      throw error;
    }
    this.begin();
  }

  writeBufferSize(): number {
    return this.#queuedBytes;
  }

  sendto(data: Uint8Array | string, addr?: { host: string; port: number }): void {
    if (this.closing) throw new ConnectionClosedError('sendto: the endpoint is closing or closed');
    const { bytes, host, port } = checkSend(data, addr, this.remoteAddress !== null);
    if (this.#queue.length > 0) {
      this.#enqueue({ bytes, host, port });
      return;
    }
    let n: number;
    try {
      n = checked.sendTo(this.#backend, this.#fd, bytes, bytes.length, host, port);
    } catch (error) {
      this.#failedBy(error);
      return;
    }
    if (n === -EAGAIN) this.#enqueue({ bytes, host, port });
    else if (n < 0) this.call('errorReceived', sendError(n, host, port));
  }

  close(): void {
    if (this.closing) return;
    this.closing = true;
    if (this.#queue.length === 0) this.teardown();
  }

  abort(): void {
    this.closing = true;
    this.#queue = [];
    this.#queuedBytes = 0;
    this.teardown();
  }

  #enqueue(datagram: QueuedDatagram): void {
    this.#queue.push(datagram);
    this.#queuedBytes += datagram.bytes.length;
    if (this.#writeToken !== null) return;
    this.#writeToken = this.loop._watch(this.#onWritable);
    try {
      checked.mustWatch(this.#backend, this.#fd, WRITABLE, this.#writeToken.slot);
    } catch (error) {
      this.#failedBy(error);
    }
  }

  readonly #onWritable = (): void => {
    const queue = this.#queue;
    while (queue.length > 0) {
      const d = queue[0] as QueuedDatagram;
      let n: number;
      try {
        n = checked.sendTo(this.#backend, this.#fd, d.bytes, d.bytes.length, d.host, d.port);
      } catch (error) {
        this.#failedBy(error);
        return;
      }
      if (n === -EAGAIN) return;
      queue.shift();
      this.#queuedBytes -= d.bytes.length;
      if (n < 0) this.call('errorReceived', sendError(n, d.host, d.port));
      if (this.finished) return;
    }
    this.#stopWriting();
    if (this.closing) this.teardown();
  };

  #stopWriting(): void {
    if (this.#writeToken === null) return;
    this.#backend.unwatch(this.#fd, WRITABLE);
    this.loop._release(this.#writeToken);
    this.#writeToken = null;
  }

  readonly #onReadable = (): void => {
    for (let i = 0; i < DATAGRAMS_PER_READINESS && !this.closing; i++) {
      let n: number;
      try {
        n = checked.recvFrom(this.#backend, this.#fd, datagramScratch, datagramScratch.length);
      } catch (error) {
        this.#failedBy(error);
        return;
      }
      if (n === -EAGAIN) return;
      if (n < 0) {
        this.call('errorReceived', ioError('recvfrom', errnoName(n)));
        continue;
      }
      const from = parseAddress(this.#ops.recvAddress());
      if (!this.received(datagramScratch.slice(0, Math.min(n, datagramScratch.length)), from)) return;
    }
  };

  /** A failed watch, or a misbehaving backend, fails the endpoint: errorReceived(error), then closed. */
  #failedBy(error: unknown): void {
    this.call('errorReceived', error);
    this.abort();
  }

  protected release(): void {
    this.#stopWriting();
    this.#backend.unwatch(this.#fd, READABLE);
    this.loop._release(this.#readToken);
    this.#backend.sockets.close(this.#fd);
  }
}

/** The error of a failed send, naming where it went. */
function sendError(negativeErrno: number, host: string | null, port: number): Error {
  return ioError('sendto', errnoName(negativeErrno), host === null ? undefined : `${host}:${port}`);
}

/**
 * A datagram endpoint on a completion backend: the host receives and sends;
 * what it received (and failed receives) reaches the protocol through one
 * expected completion per burst, so protocol calls are ordered by the core
 * as on the readiness model.
 */
class CompletionDatagramTransport extends BaseDatagramTransport {
  readonly #backend: CompletionBackend;
  #endpoint: CompletionDatagram | null = null;
  /** Arrived datagrams and errors, waiting for the loop. */
  #inbox: Array<{ data: Uint8Array; from: SocketAddress } | Error> = [];
  #deliverToken: IoToken | null = null;
  /** Bytes of sends the host has not finished. */
  #sending = 0;
  localAddress: SocketAddress = { host: '', port: 0, family: 'IPv4' };
  remoteAddress: SocketAddress | null = null;

  constructor(loop: IoLoop, backend: CompletionBackend, protocol: DatagramProtocol) {
    super(loop, protocol);
    this.#backend = backend;
  }

  /** The host's endpoint is open: start. */
  opened(endpoint: CompletionDatagram): void {
    this.#endpoint = endpoint;
    this.localAddress = endpoint.localAddress;
    this.remoteAddress = endpoint.remoteAddress;
    this.begin();
  }

  /** From the host: a datagram or a failed receive. */
  arrived(item: { data: Uint8Array; from: SocketAddress } | Error): void {
    if (this.finished) return;
    this.#inbox.push(item);
    if (this.#deliverToken === null) {
      this.#deliverToken = this.loop._expect(this.#deliver);
      this.#backend.complete(this.#deliverToken.slot);
    }
  }

  readonly #deliver = (): void => {
    this.#deliverToken = null;
    const inbox = this.#inbox;
    while (inbox.length > 0 && !this.closing) {
      const item = inbox.shift() as { data: Uint8Array; from: SocketAddress } | Error;
      if (item instanceof Error) this.call('errorReceived', item);
      else if (!this.received(item.data, item.from)) return;
    }
  };

  writeBufferSize(): number {
    return this.#sending;
  }

  sendto(data: Uint8Array | string, addr?: { host: string; port: number }): void {
    if (this.closing) throw new ConnectionClosedError('sendto: the endpoint is closing or closed');
    const { bytes, host, port } = checkSend(data, addr, this.remoteAddress !== null);
    this.#sending += bytes.length;
    (this.#endpoint as CompletionDatagram).send(bytes, host, port, (error) => {
      this.#sending -= bytes.length;
      if (error !== null) this.arrived(fromHostError('sendto', error, host === null ? undefined : `${host}:${port}`));
      if (this.closing && this.#sending === 0) this.teardown();
    });
  }

  close(): void {
    if (this.closing) return;
    this.closing = true;
    if (this.#sending === 0) this.teardown();
  }

  abort(): void {
    this.closing = true;
    this.teardown();
  }

  protected release(): void {
    this.#inbox = [];
    if (this.#deliverToken !== null) this.loop._release(this.#deliverToken);
    this.#deliverToken = null;
    this.#endpoint?.close();
  }
}

/** A `sendto`'s checked arguments: the bytes and where they go (null host: the connected peer). */
function checkSend(
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

/** Opens a datagram endpoint on a completion backend. */
export function completionDatagramEndpoint(
  loop: IoLoop,
  backend: CompletionBackend,
  target: DatagramTarget,
  protocol: DatagramProtocol,
): Promise<DatagramTransport> {
  const transport = new CompletionDatagramTransport(loop, backend, protocol);
  const where = `${target.local.host}:${target.local.port}`;
  return new Promise((resolve, reject) => {
    (backend.datagram as NonNullable<CompletionBackend['datagram']>)(
      target,
      (data, from) => transport.arrived({ data, from }),
      (error) => transport.arrived(fromHostError('recvfrom', error)),
      (error, endpoint) => {
        if (error !== null || endpoint === undefined) {
          reject(fromHostError('bind', error, where));
          return;
        }
        if (loop.isClosed()) {
          // The loop closed while the host was opening it: nobody will close it later.
          endpoint.close();
          reject(new LoopClosedError('createDatagramEndpoint'));
          return;
        }
        transport.opened(endpoint);
        resolve(transport);
      },
    );
  });
}

/** Where a datagram endpoint binds, and the peer it is connected to, if any. */
export interface DatagramTarget {
  local: { host: string; port: number };
  remote: { host: string; port: number } | null;
}

/** Opens a datagram endpoint on a readiness backend. */
export function readinessDatagramEndpoint(
  loop: IoLoop,
  backend: ReadinessBackend,
  target: DatagramTarget,
  protocol: DatagramProtocol,
): DatagramTransport {
  const ops = backend.sockets;
  const bind = ops.udpBind as (host: string, port: number) => number;
  const fd = bind.call(ops, target.local.host, target.local.port);
  if (fd < 0) throw ioError('bind', errnoName(fd), `${target.local.host}:${target.local.port}`);
  if (target.remote !== null) {
    const connect = ops.udpConnect as (fd: number, host: string, port: number) => number;
    const rc = connect.call(ops, fd, target.remote.host, target.remote.port);
    if (rc < 0) {
      ops.close(fd);
      throw ioError('connect', errnoName(rc), `${target.remote.host}:${target.remote.port}`);
    }
  }
  try {
    return new ReadinessDatagramTransport(loop, backend, fd, protocol, target.remote !== null);
  } catch (error) {
    ops.close(fd);
    throw error;
  }
}
