/**
 * A loop connection as a `node:stream` Duplex, for code written against
 * Node's sockets: `node:http`'s server (fed with `server.emit('connection',
 * duplex)`, how `wasmloop serve --interface node` runs a `(req, res)`
 * listener) and, in the same way, `node:tls` (a TLSSocket wraps a Duplex).
 *
 *     loop.createProtocolServer(() => duplexProtocol(loop, (duplex) => server.emit('connection', duplex)), listen)
 *
 * It is a protocol (protocols.ts) whose transport it drives, with
 * backpressure both ways: a chunk the stream's reader is not ready for
 * (`push()` returned false) pauses the transport's reading until `_read()`;
 * a write completes at once while the transport's buffer is below its
 * high-water mark, and otherwise when the transport calls `resumeWriting()`,
 * so a writer honouring `write()`'s return value buffers at most the
 * transport's high-water mark plus the stream's own.
 *
 * Endings, as `net.Socket`'s: the peer's end of stream ends the readable
 * side (the transport stays open for writing); `end()` half-closes
 * (`writeEof`); `destroy()` closes the transport, flushing what it holds if
 * everything written was taken (`close()`), at once otherwise or on an
 * error (`abort()`); the transport's loss destroys the stream (with its
 * error, if any). `setTimeout` runs on the loop's clock (virtual time
 * too), as `net.Socket`'s idle timeout: reads and writes restart it.
 * `setNoDelay` and `setKeepAlive` set the TCP options of the socket below
 * (`transport.setTcpOptions`), as `net.Socket`'s.
 *
 * Node-only (and Deno's and Bun's `node:stream`): import it dynamically.
 */
import { Duplex } from 'node:stream';
import type { SocketAddress } from '../backends/backend.js';
import { describe } from '../errors.js';
import type { Protocol, Transport } from './protocols.js';

/** The longest keep-alive idle time a socket takes (TCP_KEEPIDLE: 32,767 s), in ms, as the transport's keepAlive. */
const MAX_KEEPALIVE_MS = 32_767_000;

/** What the stream needs of its loop: its clock and timers. */
export interface DuplexLoop {
  time(): number;
  callLater(delayMs: number, callback: () => void): { cancel(): void };
}

/** The transport's addresses, as `net.Socket` names them. */
function hostOf(address: SocketAddress | undefined): string | undefined {
  if (address === undefined) return undefined;
  return address.family === 'unix' ? address.path : address.host;
}

export class TransportDuplex extends Duplex {
  readonly transport: Transport;
  readonly #loop: DuplexLoop;
  /** The transport's reading is paused because the stream's buffer is full. */
  #readPaused = false;
  /** The transport's buffer passed its high-water mark: writes wait for resumeWriting. */
  #writePaused = false;
  /** The callback of the write waiting for resumeWriting. */
  #pendingWrite: ((error?: Error | null) => void) | null = null;
  #timeoutMs = 0;
  #activeAt = 0;
  #timer: { cancel(): void } | null = null;
  /** The transport is gone (connectionLost ran). */
  #lost = false;

  constructor(loop: DuplexLoop, transport: Transport, options?: { allowHalfOpen?: boolean }) {
    super({ allowHalfOpen: options?.allowHalfOpen ?? true, decodeStrings: true });
    this.#loop = loop;
    this.transport = transport;
  }

  // net.Socket's addresses (req.socket.remoteAddress in node:http and Express).
  get remoteAddress(): string | undefined {
    return hostOf(this.transport.remoteAddress);
  }
  get remotePort(): number | undefined {
    const a = this.transport.remoteAddress;
    return a.family === 'unix' ? undefined : a.port;
  }
  get remoteFamily(): string | undefined {
    const a = this.transport.remoteAddress;
    return a.family === 'unix' ? undefined : a.family;
  }
  get localAddress(): string | undefined {
    return hostOf(this.transport.localAddress);
  }
  get localPort(): number | undefined {
    const a = this.transport.localAddress;
    return a.family === 'unix' ? undefined : a.port;
  }
  address(): { address: string; family: string; port: number } | Record<string, never> {
    const a = this.transport.localAddress;
    return a.family === 'unix' ? {} : { address: a.host, family: a.family, port: a.port };
  }
  /** TLS below (a TLS server's transport): node:http's `req.socket.encrypted`, Express's `req.protocol`. */
  get encrypted(): boolean {
    return (this.transport as { tls?: unknown }).tls !== undefined;
  }

  /**
   * Emits 'timeout' after `ms` without a read or a write (0: never), as
   * net.Socket does; the stream stays open: the listener decides.
   */
  setTimeout(ms: number, callback?: () => void): this {
    if (callback !== undefined) this.once('timeout', callback);
    this.#timeoutMs = ms;
    this.#activeAt = this.#loop.time();
    if (ms === 0) {
      this.#timer?.cancel();
      this.#timer = null;
    } else if (this.#timer === null && !this.#lost) {
      this.#timer = this.#loop.callLater(ms, this.#onTimer);
    }
    return this;
  }

  /**
   * TCP_NODELAY on the socket (`true`, the default argument, sends each
   * write at once; the loop's connections start with it on), as
   * net.Socket's: through `transport.setTcpOptions`, so a backend that
   * cannot take it says so (NotSupportedError). A Unix socket has no
   * Nagle's algorithm, and a destroyed stream no socket: nothing to do
   * there, as for net.Socket.
   */
  setNoDelay(noDelay: boolean = true): this {
    if (typeof noDelay !== 'boolean')
      throw new TypeError(`setNoDelay: noDelay must be a boolean, got ${describe(noDelay)}`);
    if (this.#hasTcpSocket()) this.transport.setTcpOptions({ noDelay });
    return this;
  }

  /**
   * TCP keep-alive on the socket, as net.Socket's: `enable` (default
   * false), probing after `initialDelay` ms without traffic (rounded up to
   * whole seconds), or after the system's idle time when it is 0.
   */
  setKeepAlive(enable: boolean = false, initialDelay: number = 0): this {
    if (typeof enable !== 'boolean')
      throw new TypeError(`setKeepAlive: enable must be a boolean, got ${describe(enable)}`);
    if (typeof initialDelay !== 'number' || !(initialDelay >= 0 && initialDelay <= MAX_KEEPALIVE_MS)) {
      throw new RangeError(
        `setKeepAlive: initialDelay must be a number of ms from 0 to ${MAX_KEEPALIVE_MS}, got ${describe(initialDelay)}`,
      );
    }
    if (this.#hasTcpSocket())
      this.transport.setTcpOptions({ keepAlive: !enable ? false : initialDelay > 0 ? initialDelay : true });
    return this;
  }

  /** A TCP socket is there to set options on. */
  #hasTcpSocket(): boolean {
    return (
      !this.#lost && !this.destroyed && !this.transport.isClosing() && this.transport.localAddress.family !== 'unix'
    );
  }

  ref(): this {
    return this;
  }
  unref(): this {
    return this;
  }

  /** Ends the writable side, then closes once it finished (net.Socket's). */
  destroySoon(): void {
    if (this.writable) this.end();
    if (this.writableFinished) this.destroy();
    else this.once('finish', () => this.destroy());
  }

  readonly #onTimer = (): void => {
    this.#timer = null;
    if (this.#timeoutMs === 0 || this.#lost || this.destroyed) return;
    const idle = this.#loop.time() - this.#activeAt;
    if (idle < this.#timeoutMs) {
      this.#timer = this.#loop.callLater(this.#timeoutMs - idle, this.#onTimer);
      return;
    }
    this.#activeAt = this.#loop.time();
    this.#timer = this.#loop.callLater(this.#timeoutMs, this.#onTimer);
    this.emit('timeout');
  };

  // ------------------------------------------------ the transport's side

  /** @internal Bytes from the transport. */
  _received(data: Uint8Array): void {
    if (this.destroyed) return;
    if (this.#timeoutMs !== 0) this.#activeAt = this.#loop.time();
    const chunk = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
    if (!this.push(chunk) && !this.#readPaused && !this.#lost) {
      this.#readPaused = true;
      this.transport.pauseReading();
    }
  }

  /** @internal The peer ended its side. */
  _ended(): void {
    if (!this.destroyed) this.push(null);
  }

  /** @internal The transport is gone. */
  _lost(error: Error | null): void {
    this.#lost = true;
    this.#timer?.cancel();
    this.#timer = null;
    // As net.Socket's handle closing: whatever was unread or unwritten is gone.
    this.destroy(error ?? undefined);
  }

  /** @internal The transport's buffer crossed its high-water mark, or drained below its low one. */
  _writePaused(paused: boolean): void {
    this.#writePaused = paused;
    if (!paused) this.#settleWrite(null);
  }

  #settleWrite(error: Error | null): void {
    const callback = this.#pendingWrite;
    this.#pendingWrite = null;
    callback?.(error);
  }

  // -------------------------------------------------- the stream's side

  override _read(): void {
    if (this.#readPaused && !this.#lost) {
      this.#readPaused = false;
      this.transport.resumeReading();
    }
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this.#send(chunk, callback);
  }

  override _writev(chunks: Array<{ chunk: Buffer }>, callback: (error?: Error | null) => void): void {
    // One transport write for the lot (node:http corks a head and its body together).
    this.#send(
      chunks.length === 1 ? (chunks[0] as { chunk: Buffer }).chunk : Buffer.concat(chunks.map((c) => c.chunk)),
      callback,
    );
  }

  #send(bytes: Uint8Array, callback: (error?: Error | null) => void): void {
    if (this.#timeoutMs !== 0) this.#activeAt = this.#loop.time();
    try {
      this.transport.write(bytes);
    } catch (error) {
      callback(error as Error);
      return;
    }
    if (this.#writePaused) this.#pendingWrite = callback;
    else callback(null);
  }

  override _final(callback: (error?: Error | null) => void): void {
    if (!this.transport.isClosing()) this.transport.writeEof();
    callback(null);
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    this.#timer?.cancel();
    this.#timer = null;
    if (!this.#lost && !this.transport.isClosing()) {
      // Everything written was taken: the transport flushes it, then closes.
      if (error === null && (this.writableFinished || this.writableLength === 0) && this.#pendingWrite === null)
        this.transport.close();
      else this.transport.abort();
    }
    this.#settleWrite(error ?? new Error('the stream was destroyed'));
    callback(error);
  }
}

/**
 * A protocol whose connection becomes a TransportDuplex: `onDuplex(duplex)`
 * runs once the connection is open (in `connectionMade`).
 */
export function duplexProtocol(
  loop: DuplexLoop,
  onDuplex: (duplex: TransportDuplex) => void,
  options?: { allowHalfOpen?: boolean },
): Protocol {
  let duplex: TransportDuplex | null = null;
  return {
    connectionMade(transport) {
      duplex = new TransportDuplex(loop, transport, options);
      onDuplex(duplex);
    },
    dataReceived: (data) => duplex?._received(data),
    eofReceived: () => {
      duplex?._ended();
      // Open for writing: the stream's end() (or, without allowHalfOpen, Duplex itself) closes it.
      return true;
    },
    connectionLost: (error) => duplex?._lost(error),
    pauseWriting: () => duplex?._writePaused(true),
    resumeWriting: () => duplex?._writePaused(false),
  };
}
