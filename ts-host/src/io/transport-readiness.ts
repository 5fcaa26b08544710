/**
 * A protocol's transport on the readiness model (asyncio's
 * `_SelectorSocketTransport`): it reads and writes a non-blocking
 * descriptor itself, when the backend reports the descriptor readable or
 * writable. Every protocol call runs inside its read or write watcher, a
 * callback the core ordered. What all transports share is `BaseTransport`
 * (protocols.ts).
 */
import type { ConnectionLimits } from '../arguments.js';
import type { ReadinessBackend, SocketAddress, SocketOps, TcpOptions } from '../backends/backend.js';
import { READABLE, WRITABLE } from '../backends/backend.js';
import { parseAddress } from '../net/address.js';
import { EAGAIN, errnoName } from '../errno.js';
import * as checked from './checked.js';
import { CHUNK_BYTES, READ_BUFFER, TEXT_SCRATCH, TEXT_SCRATCH_CHARS, encodeToScratch, takeRead } from '../net/slab.js';
import { checkTcpSupport } from './io-common.js';
import { BaseTransport, type Protocol, type Transport } from './protocols.js';
import { type Accepted, type IoLoop, type IoToken, ioError } from './streams.js';

class ReadinessTransport extends BaseTransport {
  readonly #backend: ReadinessBackend;
  readonly #ops: SocketOps;
  readonly #fd: number;
  readonly #readToken: IoToken;
  #writeToken: IoToken | null = null;
  #readWatched = false;
  #writeWatched = false;
  /** Unwritten data: each chunk with how much of it was written. */
  #pending: Array<{ bytes: Uint8Array; offset: number }> = [];
  readonly localAddress: SocketAddress;
  readonly remoteAddress: SocketAddress;

  constructor(loop: IoLoop, backend: ReadinessBackend, fd: number, protocol: Protocol, limits: ConnectionLimits) {
    super(loop, protocol);
    this.#backend = backend;
    this.#ops = backend.sockets;
    this.#fd = fd;
    this.localAddress = parseAddress(this.#ops.address(fd, false));
    this.remoteAddress = parseAddress(this.#ops.address(fd, true));
    this.#readToken = loop._watch(this.#onReadable);
    if (limits.tcp !== null) this.#ops.setTcpOptions?.(fd, limits.tcp.noDelay, limits.tcp.keepAliveMs);
    this.begin(limits);
    if (!this.closing) this.#updateReadWatch();
  }

  protected applyTcpOptions(operation: string, tcp: TcpOptions): void {
    const set = this.#ops.setTcpOptions;
    checkTcpSupport(operation, this.#backend, tcp, typeof set === 'function');
    const rc = (set as NonNullable<SocketOps['setTcpOptions']>).call(this.#ops, this.#fd, tcp.noDelay, tcp.keepAliveMs);
    if (rc < 0) throw ioError(operation, errnoName(rc));
  }

  readonly #onReadable = (): void => {
    while (this.reading && !this.closing) {
      const room = CHUNK_BYTES;
      let n: number;
      try {
        n = checked.read(this.#backend, this.#fd, READ_BUFFER, room);
      } catch (error) {
        this.teardown(error as Error);
        return;
      }
      if (n === -EAGAIN) return;
      if (n < 0) {
        this.teardown(ioError('read', errnoName(n)));
        return;
      }
      if (n === 0) {
        this.reading = false;
        this.#updateReadWatch();
        this.eofArrived();
        return;
      }
      this.active();
      this.received(takeRead(n));
      if (n < room) return;
    }
  };

  #updateReadWatch(): void {
    const want = this.reading && !this.closing;
    if (want === this.#readWatched) return;
    if (want) {
      // Edge-triggered will do: #onReadable reads until EAGAIN or a short
      // read, and pausing unwatches (watching again reports what waits).
      try {
        checked.mustWatch(this.#backend, this.#fd, READABLE, this.#readToken.slot, true);
      } catch (error) {
        this.teardown(error as Error);
        return;
      }
    } else {
      this.#backend.unwatch(this.#fd, READABLE);
    }
    this.#readWatched = want;
  }

  pauseReading(): void {
    if (this.closing) return;
    this.reading = false;
    this.#updateReadWatch();
  }

  resumeReading(): void {
    if (this.closing) return;
    this.reading = true;
    this.#updateReadWatch();
  }

  write(data: Uint8Array | string): void {
    let bytes: Uint8Array;
    let length: number;
    if (typeof data === 'string' && data.length <= TEXT_SCRATCH_CHARS && this.#pending.length === 0) {
      // Encoded into the shared scratch buffer: written at once below, and
      // what the socket does not take copied (no view made of it).
      this.checkWritable();
      bytes = TEXT_SCRATCH;
      length = encodeToScratch(data);
    } else {
      bytes = this.checkWrite(data);
      length = bytes.length;
    }
    if (length === 0) return;
    this.active();
    let offset = 0;
    if (this.#pending.length === 0) {
      let n: number;
      try {
        n = checked.write(this.#backend, this.#fd, bytes, 0, length);
      } catch (error) {
        this.teardown(error as Error);
        return;
      }
      if (n === length) return;
      if (n < 0 && n !== -EAGAIN) {
        this.teardown(ioError('write', errnoName(n)));
        return;
      }
      offset = Math.max(n, 0);
    }
    // The caller may reuse its array once write() returns: keep a copy.
    this.#pending.push({ bytes: bytes.slice(offset, length), offset: 0 });
    this.buffered += length - offset;
    this.#watchWritable(true);
    this.flowControl();
  }

  readonly #onWritable = (): void => {
    const pending = this.#pending;
    while (pending.length > 0) {
      const w = pending[0] as { bytes: Uint8Array; offset: number };
      let n: number;
      try {
        n = checked.write(this.#backend, this.#fd, w.bytes, w.offset, w.bytes.length - w.offset);
      } catch (error) {
        this.teardown(error as Error);
        return;
      }
      if (n === -EAGAIN) break;
      if (n < 0) {
        this.teardown(ioError('write', errnoName(n)));
        return;
      }
      if (n > 0) this.active();
      w.offset += n;
      this.buffered -= n;
      if (w.offset < w.bytes.length) break;
      pending.shift();
    }
    this.flowControl();
    if (pending.length > 0 || this.finished) return;
    this.#watchWritable(false);
    if (this.eofWritten) this.#ops.shutdownWrite(this.#fd);
    if (this.closing) this.teardown(null);
  };

  #watchWritable(want: boolean): void {
    if (want === this.#writeWatched) return;
    if (want) {
      this.#writeToken ??= this.loop._watch(this.#onWritable);
      // Edge-triggered will do: #onWritable writes until EAGAIN or a short write.
      try {
        checked.mustWatch(this.#backend, this.#fd, WRITABLE, this.#writeToken.slot, true);
      } catch (error) {
        this.teardown(error as Error);
        return;
      }
    } else {
      this.#backend.unwatch(this.#fd, WRITABLE);
    }
    this.#writeWatched = want;
  }

  writeEof(): void {
    if (this.eofWritten || this.closing) return;
    this.eofWritten = true;
    if (this.#pending.length === 0) this.#ops.shutdownWrite(this.#fd);
  }

  close(): void {
    if (this.closing) return;
    this.closing = true;
    this.#updateReadWatch();
    if (this.#pending.length === 0) this.teardown(null);
  }

  abort(): void {
    this.teardown(null);
  }

  protected release(): void {
    if (this.#readWatched) this.#backend.unwatch(this.#fd, READABLE);
    if (this.#writeWatched) this.#backend.unwatch(this.#fd, WRITABLE);
    this.#readWatched = this.#writeWatched = false;
    this.loop._release(this.#readToken);
    if (this.#writeToken !== null) this.loop._release(this.#writeToken);
    this.#pending = [];
    this.buffered = 0;
    this.#ops.close(this.#fd);
  }
}

export function readinessTransport(
  loop: IoLoop,
  backend: ReadinessBackend,
  fd: number,
  protocol: Protocol,
  limits: ConnectionLimits,
) {
  return new ReadinessTransport(loop, backend, fd, protocol, limits) as Transport & Accepted;
}
