/**
 * A protocol's Transport (protocols.ts) over a node:tls TLSSocket: what a
 * TLS protocol server's and `createProtocolConnection({ tls })`'s
 * protocols write to. `connectionMade` runs once the handshake is done
 * (asyncio's `ssl=`); `dataReceived` gets the decrypted bytes, in the turn
 * of the loop callback that delivered the records.
 *
 * Flow control as a plain transport's: the buffer is what node:tls holds
 * unencrypted or unwritten (`writableLength`), with the same marks; the
 * TLSSocket stops taking data from the transport below while reading is
 * paused. `writeEof()` sends close_notify, then half-closes; `close()`
 * does the same after the buffered writes and closes once they went out.
 */
import type { TLSSocket } from 'node:tls';
import type { ConnectionLimits } from '../arguments.js';
import type { SocketAddress, TcpOptions } from '../backends/backend.js';
import { BaseTransport, type Protocol, type Transport } from './protocols.js';
import { type TlsLoop, tlsErrorOf } from './tls.js';
import { ownBytes } from './tls-connection.js';
import type { TlsInfo } from './tls-info.js';

export class TlsTransport extends BaseTransport {
  readonly #socket: TLSSocket;
  readonly #info: TlsInfo;
  readonly #limits: ConnectionLimits;
  /** The plain transport the records travel on: its addresses and its socket's TCP options are this one's. */
  readonly #below: Transport;
  #error: Error | null = null;
  readonly localAddress: SocketAddress;
  readonly remoteAddress: SocketAddress;

  constructor(
    loop: TlsLoop,
    socket: TLSSocket,
    info: TlsInfo,
    protocol: Protocol,
    below: Transport,
    limits: ConnectionLimits,
  ) {
    super(loop, protocol);
    this.#socket = socket;
    this.#info = info;
    this.#limits = limits;
    this.#below = below;
    this.localAddress = below.localAddress;
    this.remoteAddress = below.remoteAddress;
  }

  /** The socket's options: set on the transport below (which checks its backend). */
  protected applyTcpOptions(_operation: string, tcp: TcpOptions): void {
    const keepAlive =
      tcp.keepAliveMs === null
        ? undefined
        : tcp.keepAliveMs < 0
          ? false
          : tcp.keepAliveMs === 0
            ? true
            : tcp.keepAliveMs;
    this.#below.setTcpOptions({
      ...(tcp.noDelay === null ? {} : { noDelay: tcp.noDelay }),
      ...(keepAlive === undefined ? {} : { keepAlive }),
    });
  }

  /** What TLS negotiated (docs/tls.md). */
  get tls(): TlsInfo {
    return this.#info;
  }

  /**
   * Tracked by the loop, `connectionMade`, then data flows. After startTls
   * (`upgraded`) the protocol already had its connectionMade, as asyncio's
   * start_tls: none now, and data flows from the next loop callback, once
   * the program holds this transport (startTls's promise resolved).
   */
  start(upgraded = false): void {
    const socket = this.#socket;
    socket.on('error', (error: unknown) => {
      this.#error ??= tlsErrorOf('read', error, true);
    });
    socket.on('close', () => this.teardown(this.#error));
    socket.on('drain', () => {
      this.buffered = socket.writableLength;
      this.flowControl();
    });
    this.begin(this.#limits, !upgraded);
    if (this.closing) return;
    socket.on('data', (chunk: Uint8Array) => {
      if (this.closing) return;
      this.active();
      this.received(ownBytes(chunk));
    });
    socket.on('end', () => {
      if (!this.closing) this.eofArrived();
    });
    if (!this.reading || upgraded) socket.pause();
    if (upgraded) {
      this.loop.callSoon(() => {
        if (this.reading && !this.closing) socket.resume();
      });
    }
  }

  write(data: Uint8Array | string): void {
    const bytes = this.checkWrite(data);
    if (bytes.length === 0) return;
    this.active();
    this.#socket.write(bytes);
    this.buffered = this.#socket.writableLength;
    this.flowControl();
  }

  writeEof(): void {
    if (this.eofWritten || this.closing) return;
    this.eofWritten = true;
    this.#socket.end();
  }

  pauseReading(): void {
    if (this.closing) return;
    this.reading = false;
    this.#socket.pause();
  }

  resumeReading(): void {
    if (this.closing || this.reading) return;
    this.reading = true;
    this.#socket.resume();
  }

  close(): void {
    if (this.closing) return;
    this.closing = true;
    const socket = this.#socket;
    // close_notify after the buffered writes; closed once they went out.
    if (!socket.writableEnded) socket.end();
    if (socket.writableFinished) socket.destroy();
    else socket.once('finish', () => socket.destroy());
  }

  abort(): void {
    this.teardown(null);
  }

  protected release(): void {
    this.buffered = 0;
    this.#socket.destroy();
  }
}
