/**
 * A stream connection (connection.ts) as a `node:stream` Duplex, for
 * node:tls to wrap when `conn.startTls()` upgrades it (io/tls-upgrade.ts).
 * transport-duplex.ts does the same for a protocol's transport; this one
 * reads and writes through the connection's own methods, captured by
 * hand-over.ts, so what a framed read had buffered comes first (the
 * ClientHello a client sent right behind its STARTTLS command).
 *
 * Backpressure as the connection's: the stream reads only while node:tls
 * wants more (`_read()` until `push()` says it is full); a write completes
 * when the connection's write resolves (the kernel or host took it). The
 * peer's end of stream ends the readable side; `end()` half-closes the
 * connection; `destroy()` closes it.
 *
 * On virtual time each event that can start node:tls's host work holds the
 * loop's clock (`settle`, tls.ts's hostSettler), as heldProtocol does for
 * transports.
 *
 * Node-only (and Deno's and Bun's `node:stream`): import it dynamically.
 */
import { Duplex } from 'node:stream';
import type { RawStream } from './hand-over.js';

export class ConnectionDuplex extends Duplex {
  readonly #raw: RawStream;
  readonly #settle: () => void;
  /** A read of the connection is in flight (one at a time). */
  #reading = false;

  constructor(raw: RawStream, settle: (() => void) | null) {
    super({ allowHalfOpen: true });
    this.#raw = raw;
    this.#settle = settle ?? (() => {});
  }

  /** Plain TCP under the TLS layer. */
  readonly encrypted = false;

  override _read(): void {
    if (!this.#reading) void this.#pump();
  }

  /** Reads from the connection until the stream is full, ends or fails. */
  async #pump(): Promise<void> {
    this.#reading = true;
    try {
      for (;;) {
        const chunk = await this.#raw.read();
        if (this.destroyed) return;
        this.#settle();
        if (chunk === null) {
          this.push(null);
          return;
        }
        if (!this.push(Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength))) return;
      }
    } catch (error) {
      if (this.destroyed) return;
      this.#settle();
      this.destroy(error as Error);
    } finally {
      this.#reading = false;
    }
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this.#settle();
    this.#raw.write(chunk).then(
      () => {
        this.#settle();
        callback(null);
      },
      (error: Error) => {
        this.#settle();
        callback(error);
      },
    );
  }

  override _writev(chunks: Array<{ chunk: Buffer }>, callback: (error?: Error | null) => void): void {
    const one =
      chunks.length === 1 ? (chunks[0] as { chunk: Buffer }).chunk : Buffer.concat(chunks.map((c) => c.chunk));
    this._write(one, 'binary', callback);
  }

  override _final(callback: (error?: Error | null) => void): void {
    this.#settle();
    this.#raw.end().then(
      () => callback(null),
      // Already closed under us: nothing left to half-close.
      () => callback(null),
    );
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    this.#settle();
    this.#raw.close();
    callback(error);
  }
}
