/**
 * Datagram endpoints on the readiness model (asyncio's selector): the
 * endpoint, which reads and sends on its UDP descriptor itself when the
 * backend reports it readable or writable, queueing what the system
 * cannot take yet; and opening it with the backend's socket operations
 * (bind, then connect for a remote address). What all endpoints share is
 * `BaseDatagramTransport` (datagrams.ts).
 */
import type { ReadinessBackend, SocketAddress, SocketOps } from '../backends/backend.js';
import { READABLE, WRITABLE } from '../backends/backend.js';
import { DATAGRAMS_PER_READINESS, datagramScratch } from '../net/datagram-buffer.js';
import { parseAddress } from '../net/address.js';
import { EAGAIN, errnoName } from '../errno.js';
import { ConnectionClosedError } from '../errors.js';
import * as checked from './checked.js';
import {
  BaseDatagramTransport,
  type DatagramProtocol,
  type DatagramTarget,
  type DatagramTransport,
  checkSend,
} from './datagrams.js';
import { type IoLoop, type IoToken, ioError } from './streams.js';

/** A readiness backend's socket operations, with the datagram ones it has (checked before use). */
type DatagramOps = SocketOps & Required<Pick<SocketOps, 'sendTo' | 'recvFrom' | 'recvAddress'>>;

/** A datagram the system could not take yet, and where it goes (null host: the connected peer). */
interface QueuedDatagram {
  bytes: Uint8Array;
  host: string | null;
  port: number;
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
    // What waits in the queue is a copy: the caller's array is its own
    // again once this returns (an encoded string is the endpoint's already).
    const fromCaller = typeof data !== 'string';
    if (this.#queue.length > 0) {
      this.#enqueue(bytes, fromCaller, host, port);
      return;
    }
    let n: number;
    try {
      n = checked.sendTo(this.#backend, this.#fd, bytes, bytes.length, host, port);
    } catch (error) {
      this.#failedBy(error);
      return;
    }
    if (n === -EAGAIN) this.#enqueue(bytes, fromCaller, host, port);
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

  /** Queues a datagram; `fromCaller`: `bytes` is the caller's array, so a copy waits. */
  #enqueue(bytes: Uint8Array, fromCaller: boolean, host: string | null, port: number): void {
    this.#queue.push({ bytes: fromCaller ? bytes.slice() : bytes, host, port });
    this.#queuedBytes += bytes.length;
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
