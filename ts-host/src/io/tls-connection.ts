/**
 * A stream Connection (connection.ts) over a node:tls TLSSocket: what
 * `createConnection({ tls })`, a TLS server's handler and `startTls`
 * hand the program. The socket below is a TransportDuplex over a loop
 * transport (tls.ts has the layers), so the TLSSocket's events arrive in
 * the turn of the loop callback that delivered the bytes.
 *
 * Reads as the completion model's: chunks the TLS layer decrypted are
 * buffered up to CHUNK_BYTES, then the socket is paused (node:tls then
 * stops reading the stream below, which stops the transport: backpressure
 * down to the kernel). A write resolves when node:tls has encrypted it and
 * the transport below accepted the records, so a writer that awaits
 * holds at most the transport's high-water mark. `end()` sends
 * close_notify, then half-closes; the peer's close_notify (or end of
 * stream) is the end of the stream here.
 */
import type { TLSSocket } from 'node:tls';
import type { ConnectionLimits } from '../arguments.js';
import type { SocketAddress } from '../backends/backend.js';
import { ConnectionClosedError } from '../errors.js';
import { BaseConnection, CHUNK_BYTES, LINGER_MS } from './connection.js';
import { toBytes } from './io-common.js';
import type { HandledConnection } from './server.js';
import { type TlsLoop, tlsErrorOf } from './tls.js';
import type { TlsInfo } from './tls-info.js';

/** `chunk` as an array of its own (node:tls may hand out views of a shared buffer). */
export function ownBytes(chunk: Uint8Array): Uint8Array {
  if (chunk.byteOffset === 0 && chunk.byteLength === chunk.buffer.byteLength) {
    return new Uint8Array(chunk.buffer, 0, chunk.byteLength);
  }
  return new Uint8Array(chunk);
}

export class TlsConnection extends BaseConnection implements HandledConnection {
  readonly #loop: TlsLoop;
  readonly #socket: TLSSocket;
  readonly #info: TlsInfo;
  #chunks: Uint8Array[] = [];
  #buffered = 0;
  #maxBuffered = 0;
  #paused = false;
  #eof = false;
  #error: unknown = undefined;
  #lingerTimer: { cancel(): void } | null = null;
  /** Why the connection was closed when it was not close() (its idle timeout): what pending writes reject with. */
  #closedBy: Error | null = null;
  readonly localAddress: SocketAddress;
  readonly remoteAddress: SocketAddress;

  constructor(
    loop: TlsLoop,
    socket: TLSSocket,
    info: TlsInfo,
    addresses: { localAddress: SocketAddress; remoteAddress: SocketAddress },
    limits: ConnectionLimits,
  ) {
    super();
    this.#loop = loop;
    this.#socket = socket;
    this.#info = info;
    this.localAddress = addresses.localAddress;
    this.remoteAddress = addresses.remoteAddress;
    loop._track(this, true);
    socket.on('data', this.#onData);
    socket.on('end', this.#onEnd);
    socket.on('error', this.#onError);
    socket.on('close', this.#onClose);
    // The limits count decrypted bytes, after the handshake (which handshakeTimeoutMs bounds).
    this.startLimits(loop, limits);
  }

  override get tls(): TlsInfo {
    return this.#info;
  }

  override get maxBuffered(): number {
    return this.#maxBuffered;
  }

  readonly #onData = (chunk: Uint8Array): void => {
    if (this.released || this.closing) return; // a lingering close discards
    this.active();
    const bytes = ownBytes(chunk);
    if (this.pendingRead !== null) {
      this.settleRead(bytes);
      return;
    }
    this.#chunks.push(bytes);
    this.#buffered += bytes.length;
    if (this.#buffered > this.#maxBuffered) this.#maxBuffered = this.#buffered;
    if (this.#buffered >= CHUNK_BYTES && !this.#paused) {
      this.#paused = true;
      this.#socket.pause();
    }
  };

  readonly #onEnd = (): void => {
    this.#eof = true;
    this.settleRead(null);
    this.#closeIfDone();
  };

  readonly #onError = (error: unknown): void => {
    this.#error ??= tlsErrorOf('read', error, true);
  };

  readonly #onClose = (): void => {
    if (this.#error === undefined && !this.#eof && !this.isClosed)
      this.#error = new ConnectionClosedError('read: the connection was closed');
    if (this.pendingRead !== null) {
      if (this.#error !== undefined) this.settleRead(null, this.#error);
      else this.settleRead(null);
    }
    this.#release();
  };

  #take(): Uint8Array | null | undefined {
    const chunk = this.#chunks.shift();
    if (chunk !== undefined) {
      this.#buffered -= chunk.length;
      if (this.#paused && this.#buffered < CHUNK_BYTES && !this.released) {
        this.#paused = false;
        this.#socket.resume();
      }
      return chunk;
    }
    if (this.#eof) return null;
    if (this.#error !== undefined) throw this.#error;
    return undefined;
  }

  protected readChunk(options?: { signal?: AbortSignal }): Promise<Uint8Array | null> {
    const signal = options?.signal;
    const refused = this.refuseRead(signal);
    if (refused !== null) return refused;
    try {
      const chunk = this.#take();
      if (chunk !== undefined) return Promise.resolve(chunk);
    } catch (error) {
      return Promise.reject(error);
    }
    return this.startPendingRead(signal, () => undefined);
  }

  write(data: Uint8Array | string): Promise<void> {
    const refused = this.refuseWrite('write');
    if (refused !== null) return refused;
    let bytes: Uint8Array;
    try {
      bytes = toBytes('write', data);
    } catch (error) {
      return Promise.reject(error);
    }
    if (bytes.length === 0) return Promise.resolve();
    this.active();
    return new Promise((resolve, reject) => {
      // node:tls copies what it encrypts; the caller may reuse its array.
      this.#socket.write(bytes, (error?: Error | null) => {
        if (error === undefined || error === null) resolve();
        else if (this.isClosed) reject(this.#closedBy ?? new ConnectionClosedError('write: the connection was closed'));
        else reject(this.#error ?? tlsErrorOf('write', error, true));
      });
    });
  }

  end(): Promise<void> {
    const refused = this.refuseWrite('end');
    if (refused !== null) return refused;
    this.ended = true;
    return new Promise((resolve, reject) => {
      const socket = this.#socket;
      const finished = () => {
        socket.off('close', closed);
        resolve();
        this.#closeIfDone();
      };
      const closed = () => {
        socket.off('finish', finished);
        if (socket.writableFinished) resolve();
        else
          reject(
            (this.isClosed ? this.#closedBy : this.#error) ??
              new ConnectionClosedError('end: the connection was closed'),
          );
      };
      socket.once('finish', finished);
      socket.once('close', closed);
      // close_notify, then the half-close of the transport below.
      socket.end();
    });
  }

  /** Both directions are done: let go of the socket (what was read stays readable). */
  #closeIfDone(): void {
    if (!this.#eof || !this.ended || !this.#socket.writableFinished) return;
    if (this.closing) this.close();
    else this.#release();
  }

  closeGracefully(): void {
    if (this.isClosed || this.closing) return;
    this.closing = true;
    this.settleRead(null, new ConnectionClosedError('read: the connection was closed by its server'));
    this.#chunks = [];
    this.#buffered = 0;
    if (this.released) {
      this.close();
      return;
    }
    if (this.#paused) {
      this.#paused = false;
      this.#socket.resume();
    }
    if (!this.ended) {
      this.ended = true;
      this.#socket.end();
      this.#socket.once('finish', () => this.#closeIfDone());
    }
    this.#closeIfDone();
    if (this.isClosed) return;
    this.#lingerTimer ??= this.#loop.callLater(LINGER_MS, () => {
      this.#lingerTimer = null;
      this.close();
    });
  }

  #release(): void {
    if (this.released) return;
    this.#lingerTimer?.cancel();
    this.#lingerTimer = null;
    this.#socket.destroy();
    this.#loop._track(this, false);
    this.markReleased();
  }

  protected closeWith(error: Error): void {
    if (this.isClosed) return;
    this.isClosed = true;
    this.#closedBy = error instanceof ConnectionClosedError ? null : error;
    this.settleRead(null, this.#closedBy ?? new ConnectionClosedError('read: the connection was closed'));
    this.#chunks = [];
    this.#buffered = 0;
    this.#release();
    this.markClosed();
  }
}
