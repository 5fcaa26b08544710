/**
 * A connection on Deno's own sockets (`Deno.Conn`) as the completion
 * contract's CompletionSocket: one read in flight while flowing, one write
 * at a time, and the copies a write keeps until Deno took it (the
 * completion-deno.ts backend's connections; its header says how each
 * operation completes). Also the parts of Deno's namespace the backend uses,
 * typed here: other hosts' type checks know no `Deno`.
 */
import type { CompletionSocket, SocketAddress, TcpOptions } from './backend.js';
import { unixAddress } from '../net/address.js';
import { CHUNK_BYTES } from '../net/slab.js';

/** The parts of Deno's namespace the backend uses. */
export interface DenoAddr {
  transport: string;
  hostname?: string;
  port?: number;
  path?: string | null;
}
export interface DenoConn {
  read(into: Uint8Array): Promise<number | null>;
  write(data: Uint8Array): Promise<number>;
  closeWrite(): Promise<void>;
  close(): void;
  readonly localAddr: DenoAddr;
  readonly remoteAddr: DenoAddr;
  setNoDelay?(noDelay?: boolean): void;
  setKeepAlive?(keepAlive?: boolean): void;
}
export interface DenoListener {
  accept(): Promise<DenoConn>;
  close(): void;
  readonly addr: DenoAddr;
}
export interface DenoNamespace {
  listen(
    options:
      | { hostname?: string; port?: number; tcpBacklog?: number; reusePort?: boolean; transport?: 'tcp' }
      | { transport: 'unix'; path: string },
  ): DenoListener;
  connect(
    options:
      | { hostname?: string; port?: number; signal?: AbortSignal; transport?: 'tcp' }
      | { transport: 'unix'; path: string },
  ): Promise<DenoConn>;
  removeSync(path: string): void;
  /** Present only under `--unstable-net`. */
  listenDatagram?: unknown;
}

/**
 * A write this small, when nothing else is being written, is copied and
 * reported done at once, as a kernel takes a write into its socket buffer:
 * Deno's write is an operation that settles a promise later, so without
 * this every write would cost the program a loop iteration of its own.
 * Later writes wait for it, so at most this much is held.
 */
const IN_PLACE_BYTES = 64 * 1024;

/**
 * The copy of a write reported done in place is the backend's alone (Deno
 * writes it; the program never sees it), so one of at most SLAB_COPY_BYTES
 * is carved out of a shared slab of SLAB_BYTES instead of getting an
 * ArrayBuffer of its own: Deno allocates every ArrayBuffer outside V8's
 * heap, at about 0.15 us of CPU per 64-byte echo round trip. A slab is
 * dropped, not reused, once full: the copies in flight keep it alive, and
 * the collector frees it after the last one went out (a connection whose
 * peer does not read holds at most one such copy, so at most one slab).
 */
const SLAB_COPY_BYTES = 1024;
const SLAB_BYTES = 16 * 1024;
let slab = new Uint8Array(0);
let slabUsed = 0;

/** A copy of `data` for Deno to write after the program was told it is done. */
function heldCopy(data: Uint8Array): Uint8Array {
  const n = data.length;
  if (n > SLAB_COPY_BYTES) return data.slice();
  if (slabUsed + n > slab.length) {
    slab = new Uint8Array(SLAB_BYTES);
    slabUsed = 0;
  }
  const copy = slab.subarray(slabUsed, slabUsed + n);
  copy.set(data);
  slabUsed += n;
  return copy;
}

/**
 * A connection's first read buffer; a read that fills it gets CHUNK_BYTES
 * next time. Each read is copied out of it to an ArrayBuffer of exactly
 * its size, the chunk's own (docs/design.md, "Who owns a chunk's bytes").
 */
const FIRST_READ_BYTES = 16 * 1024;

export function addressOf(addr: DenoAddr): SocketAddress {
  if (addr.transport === 'unix') return unixAddress(addr.path ?? '');
  const host = addr.hostname ?? '';
  return { host, port: addr.port ?? 0, family: host.includes(':') ? 'IPv6' : 'IPv4' };
}

/** Whether an operation failed because this side closed the resource (nothing to report). */
export function closedHere(error: unknown): boolean {
  const name = (error as { name?: string } | null)?.name;
  return name === 'BadResource' || name === 'Interrupted';
}

export interface QueuedWrite {
  bytes: Uint8Array;
  /** How much of it Deno took so far. */
  offset: number;
  /** Null for a write reported done already (IN_PLACE_BYTES). */
  done: ((error?: Error | null) => void) | null;
}

export class DenoSocket implements CompletionSocket {
  readonly #conn: DenoConn;
  readonly #onClose: (socket: DenoSocket) => void;
  #onData: ((chunk: Uint8Array | null) => void) | null = null;
  #onError: ((error: Error) => void) | null = null;
  #flowing = false;
  #reading = false;
  #eof = false;
  #failed = false;
  #destroyed = false;
  #connClosed = false;
  #buffer: Uint8Array | null = null;
  #writes: QueuedWrite[] = [];
  /** A `conn.write` of the first queued write is in flight. */
  #writing = false;
  #endRequested = false;
  readonly localAddress: SocketAddress;
  readonly remoteAddress: SocketAddress;

  constructor(conn: DenoConn, onClose: (socket: DenoSocket) => void, unixEnds?: { local: string; remote: string }) {
    this.#conn = conn;
    this.#onClose = onClose;
    if (unixEnds !== undefined) {
      this.localAddress = unixAddress(unixEnds.local);
      this.remoteAddress = unixAddress(unixEnds.remote);
    } else {
      conn.setNoDelay?.(true);
      this.localAddress = addressOf(conn.localAddr);
      this.remoteAddress = addressOf(conn.remoteAddr);
    }
  }

  start(onData: (chunk: Uint8Array | null) => void, onError: (error: Error) => void): void {
    this.#onData = onData;
    this.#onError = onError;
    this.#read();
  }

  setFlowing(flowing: boolean): void {
    this.#flowing = flowing;
    this.#read();
  }

  /** Starts the read loop unless it runs already, or has no reason to. */
  #read(): void {
    if (this.#reading || !this.#flowing || this.#eof || this.#destroyed || this.#onData === null) return;
    this.#reading = true;
    void this.#readLoop();
  }

  async #readLoop(): Promise<void> {
    try {
      while (this.#flowing && !this.#eof && !this.#destroyed) {
        const buffer = (this.#buffer ??= new Uint8Array(FIRST_READ_BYTES));
        const n = await this.#conn.read(buffer);
        if (this.#destroyed) return;
        if (n === null) {
          this.#eof = true;
          (this.#onData as (chunk: Uint8Array | null) => void)(null);
          return;
        }
        if (n === 0) continue;
        const chunk = buffer.slice(0, n);
        if (n === buffer.length && n < CHUNK_BYTES) this.#buffer = new Uint8Array(CHUNK_BYTES);
        (this.#onData as (chunk: Uint8Array | null) => void)(chunk);
      }
    } catch (error) {
      if (this.#destroyed || closedHere(error)) return;
      this.#fail(error as Error);
    } finally {
      this.#reading = false;
    }
  }

  /** The connection failed (a reset): reported once, and nothing more is read. */
  #fail(error: Error): void {
    if (this.#failed) return;
    this.#failed = true;
    this.#eof = true;
    this.#onError?.(error);
  }

  /** What this socket keeps of a write is a copy (`heldCopy`, `slice`). */
  readonly copiesWrites = true;

  write(data: Uint8Array, done: (error?: Error | null) => void): void {
    if (this.#destroyed) {
      done(Object.assign(new Error('write failed: EBADF'), { code: 'EBADF', syscall: 'write' }));
      return;
    }
    if (this.#writes.length === 0 && data.length <= IN_PLACE_BYTES) {
      this.#writes.push({ bytes: heldCopy(data), offset: 0, done: null });
      this.#writeNext();
      done(null);
      return;
    }
    // Kept past this call: a copy, so that a protocol's caller may reuse its array once write() returns.
    this.#writes.push({ bytes: data.slice(), offset: 0, done });
    if (!this.#writing) this.#writeNext();
  }

  /**
   * Hands the rest of the first queued write to Deno. A chain of `then`s
   * rather than an async loop: one promise per `conn.write`, not three.
   */
  #writeNext(): void {
    const w = this.#writes[0] as QueuedWrite;
    this.#writing = true;
    let written: Promise<number>;
    try {
      written = this.#conn.write(w.offset === 0 ? w.bytes : w.bytes.subarray(w.offset));
    } catch (error) {
      this.#writeFailed(error);
      return;
    }
    written.then(this.#wrote, this.#writeFailed);
  }

  readonly #wrote = (n: number): void => {
    const w = this.#writes[0];
    if (w === undefined) {
      // destroy() dropped it.
      this.#writing = false;
      return;
    }
    w.offset += n;
    if (w.offset < w.bytes.length) {
      // Destroyed meanwhile: a write not reported done yet goes with the connection.
      if (this.#destroyed && w.done !== null) this.#writing = false;
      else this.#writeNext();
      return;
    }
    this.#writes.shift();
    if (this.#destroyed) {
      // The write destroy() waited for (it was reported done) went out: now close.
      this.#writing = false;
      this.#closeConn();
      return;
    }
    w.done?.(null);
    if (this.#writes.length > 0 && !this.#destroyed) {
      this.#writeNext();
      return;
    }
    this.#writing = false;
    if (this.#endRequested && !this.#destroyed) this.#shutdown();
  };

  readonly #writeFailed = (error: unknown): void => {
    this.#writing = false;
    if (this.#destroyed) {
      this.#closeConn();
      return;
    }
    // The connection cannot take more: every queued write fails with it.
    const failed = this.#writes;
    this.#writes = [];
    for (const f of failed) f.done?.(error as Error);
    // A write reported done already has only the connection to fail.
    if (failed[0]?.done === null) this.#fail(error as Error);
  };

  end(): void {
    if (this.#endRequested || this.#destroyed) return;
    this.#endRequested = true;
    if (this.#writes.length === 0) this.#shutdown();
  }

  #shutdown(): void {
    // ENOTCONN: the peer is gone already; there is nothing left to end.
    this.#conn.closeWrite().catch(() => undefined);
  }

  /**
   * Closes now. A write reported done but still in flight goes out first,
   * as a kernel sends what it took before the close (`force`: not even that,
   * when the backend closes).
   */
  setTcpOptions({ noDelay, keepAliveMs }: TcpOptions): void {
    if (noDelay !== null) this.#conn.setNoDelay?.(noDelay);
    // On or off: Deno takes no idle time (checkTcpOptions refused one).
    if (keepAliveMs !== null) this.#conn.setKeepAlive?.(keepAliveMs >= 0);
  }

  destroy(force = false): void {
    if (this.#destroyed) {
      if (force) this.#closeConn();
      return;
    }
    this.#destroyed = true;
    this.#onData = null;
    const inFlight = this.#writes[0];
    if (inFlight !== undefined && inFlight.done === null && !force) this.#writes = [inFlight];
    else {
      this.#writes = [];
      this.#closeConn();
    }
  }

  #closeConn(): void {
    if (this.#connClosed) return;
    this.#connClosed = true;
    this.#writes = [];
    try {
      this.#conn.close();
    } catch {
      // Closed already (the runtime let go of it after an error).
    }
    this.#onClose(this);
  }
}
