/**
 * Datagram endpoints on the completion model (asyncio's proactor): the
 * endpoint, and opening it through the host's `datagram`, which binds
 * (and connects) asynchronously. What all endpoints share is
 * `BaseDatagramTransport` (datagrams.ts).
 */
import type { CompletionBackend, CompletionDatagram, SocketAddress } from '../backends/backend.js';
import { ConnectionClosedError, LoopClosedError } from '../errors.js';
import {
  BaseDatagramTransport,
  type DatagramProtocol,
  type DatagramTarget,
  type DatagramTransport,
  checkSend,
} from './datagrams.js';
import { type IoLoop, type IoToken, fromHostError } from './streams.js';
import { copyForHost, finished } from './write-copies.js';

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
    const { bytes: checkedBytes, host, port } = checkSend(data, addr, this.remoteAddress !== null);
    const endpoint = this.#endpoint as CompletionDatagram;
    // The caller's array is its own again once this returns: a host that
    // would keep it gets a copy (`io/write-copies.ts`), given back when sent.
    const copied = typeof data !== 'string' && endpoint.copiesSends !== true;
    const bytes = copied ? copyForHost(checkedBytes) : checkedBytes;
    this.#sending += bytes.length;
    let called = false;
    endpoint.send(bytes, host, port, (error) => {
      // A host that calls back twice is heard once.
      if (called) return;
      called = true;
      if (copied) finished(bytes);
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
