/**
 * A protocol's transport on the completion model (asyncio's
 * `_ProactorSocketTransport`): the host reads and writes the socket; what
 * it delivered, and the writes it finished later, reach the protocol
 * through expected completions, so the core orders every protocol call as
 * on the readiness model. What all transports share is `BaseTransport`
 * (protocols.ts).
 */
import type { ConnectionLimits } from '../arguments.js';
import type { CompletionBackend, CompletionSocket, SocketAddress, TcpOptions } from '../backends/backend.js';
import { checkTcpSupport, utf8Length } from './io-common.js';
import { copyForHost, finished, returned } from './write-copies.js';
import { BaseTransport, type Protocol, type Transport } from './protocols.js';
import { type Accepted, type IoLoop, type IoToken, fromHostError, writeToHost } from './streams.js';

/** What the host delivered and the protocol has not seen yet. */
type Delivery = Uint8Array | 'eof' | Error;

class CompletionTransport extends BaseTransport {
  readonly #backend: CompletionBackend;
  readonly #socket: CompletionSocket;
  /** The host encodes strings itself (`writeText`). */
  readonly #writesText: boolean;
  /** What the host keeps of a write is its own copy (`copiesWrites`). */
  readonly #hostCopies: boolean;
  #inbox: Delivery[] = [];
  /** The expected completion that hands the inbox to the protocol. */
  #deliverToken: IoToken | null = null;
  /** Bytes of writes the host finished later (and their first error), waiting for the loop. */
  #writesDone = 0;
  #writeError: Error | null = null;
  #writesToken: IoToken | null = null;
  readonly localAddress: SocketAddress;
  readonly remoteAddress: SocketAddress;

  constructor(
    loop: IoLoop,
    backend: CompletionBackend,
    socket: CompletionSocket,
    protocol: Protocol,
    limits: ConnectionLimits,
  ) {
    super(loop, protocol);
    this.#backend = backend;
    this.#socket = socket;
    this.#writesText = typeof socket.writeText === 'function';
    this.#hostCopies = socket.copiesWrites === true;
    this.localAddress = socket.localAddress;
    this.remoteAddress = socket.remoteAddress;
    socket.start(
      (chunk) => this.#arrived(chunk === null ? 'eof' : chunk),
      (error) => this.#arrived(error),
    );
    if (limits.tcp !== null) socket.setTcpOptions?.(limits.tcp);
    this.begin(limits);
    if (!this.closing) socket.setFlowing(this.reading);
  }

  protected applyTcpOptions(operation: string, tcp: TcpOptions): void {
    checkTcpSupport(operation, this.#backend, tcp, true);
    this.#socket.setTcpOptions?.(tcp);
  }

  /** The host delivered something: have the loop hand it over. */
  #arrived(item: Delivery): void {
    if (this.finished) return;
    if (item instanceof Uint8Array) this.active();
    if (item instanceof Error && !this.reading) {
      // Paused, but the connection is gone: do not wait for resumeReading().
      this.teardown(fromHostError('read', item));
      return;
    }
    this.#inbox.push(item);
    if (this.reading && this.#deliverToken === null) {
      this.#deliverToken = this.loop._expect(this.#deliver);
      this.#backend.complete(this.#deliverToken.slot);
    }
  }

  readonly #deliver = (): void => {
    this.#deliverToken = null;
    const inbox = this.#inbox;
    while (inbox.length > 0 && this.reading && !this.closing) {
      const item = inbox.shift() as Delivery;
      if (item === 'eof') {
        this.reading = false;
        this.eofArrived();
      } else if (item instanceof Uint8Array) {
        this.received(item);
      } else {
        this.teardown(fromHostError('read', item));
      }
    }
  };

  pauseReading(): void {
    if (this.closing) return;
    this.reading = false;
    this.#socket.setFlowing(false);
  }

  resumeReading(): void {
    if (this.closing || this.reading) return;
    this.reading = true;
    this.#socket.setFlowing(true);
    if (this.#inbox.length > 0 && this.#deliverToken === null) {
      this.#deliverToken = this.loop._expect(this.#deliver);
      this.#backend.complete(this.#deliverToken.slot);
    }
  }

  write(data: Uint8Array | string): void {
    let out: Uint8Array | string;
    let copied = false;
    if (typeof data === 'string' && this.#writesText) {
      this.checkWritable();
      out = data;
    } else {
      out = this.checkWrite(data);
      // The protocol's array is its own again once this returns: a host
      // that would keep it gets a copy.
      if (typeof data !== 'string' && !this.#hostCopies && out.length > 0) {
        out = copyForHost(out);
        copied = true;
      }
    }
    if (out.length === 0) return;
    this.active();
    // Bytes of a write the host finishes later (counted only then).
    let size = 0;
    const inPlace = writeToHost(this.#socket, out, (error) => {
      if (copied) finished(out as Uint8Array);
      if (this.finished) return;
      // A write that finished later reaches the protocol through the loop.
      this.#writesDone += size;
      this.#writeError ??= error;
      if (this.#writesToken === null) {
        this.#writesToken = this.loop._expect(this.#onWritesDone);
        this.#backend.complete(this.#writesToken.slot);
      }
    });
    if (inPlace !== undefined) {
      if (copied) returned(out as Uint8Array);
      this.#writeFinished(0, inPlace);
      return;
    }
    size = typeof out === 'string' ? utf8Length(out) : out.length;
    this.buffered += size;
    this.flowControl();
  }

  readonly #onWritesDone = (): void => {
    this.#writesToken = null;
    const bytes = this.#writesDone;
    const error = this.#writeError;
    this.#writesDone = 0;
    this.#writeError = null;
    this.#writeFinished(bytes, error);
  };

  /** `bytes` more were taken by the host (one write, or several that finished later). */
  #writeFinished(bytes: number, error: Error | null): void {
    if (this.finished) return;
    if (error !== null) {
      this.teardown(fromHostError('write', error));
      return;
    }
    this.active();
    this.buffered -= bytes;
    this.flowControl();
    if (this.buffered === 0 && this.closing) this.teardown(null);
  }

  writeEof(): void {
    if (this.eofWritten || this.closing) return;
    this.eofWritten = true;
    // Both implementations end after the writes already given to them.
    this.#socket.end();
  }

  close(): void {
    if (this.closing) return;
    this.closing = true;
    this.#socket.setFlowing(false);
    if (this.buffered === 0) this.teardown(null);
  }

  abort(): void {
    this.teardown(null);
  }

  protected release(): void {
    this.#socket.destroy();
    if (this.#deliverToken !== null) this.loop._release(this.#deliverToken);
    if (this.#writesToken !== null) this.loop._release(this.#writesToken);
    this.#deliverToken = this.#writesToken = null;
    this.#inbox = [];
    this.buffered = 0;
  }
}

export function completionTransport(
  loop: IoLoop,
  backend: CompletionBackend,
  socket: CompletionSocket,
  protocol: Protocol,
  limits: ConnectionLimits,
) {
  return new CompletionTransport(loop, backend, socket, protocol, limits) as Transport & Accepted;
}
