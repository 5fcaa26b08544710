/**
 * The `virtual` backend: a virtual clock and an in-memory network, for
 * deterministic tests. Because the loop's clock is a host import, virtual
 * time is a real backend here, not a mock of the timer functions.
 *
 * The clock starts at 0 and moves only when told: while a loop on this
 * backend runs, it *jumps* to the next deadline whenever no callback is
 * ready (trio's autojump clock), so an hour of sleeping takes no wall time;
 * `loop.advance(ms)`, `runUntilIdle()` and `runAll()` drive it by hand.
 *
 * The network is the completion model over in-memory pipes: a write reaches
 * the peer after `latencyMs` of virtual time, delivered by a loop timer, so
 * network programs run in virtual time and in a reproducible order.
 */
import type {
  BackendSink,
  CompletionBackend,
  CompletionListener,
  CompletionSocket,
  SocketAddress,
} from './backend.js';
import { TokenQueue } from './backend.js';

export interface VirtualOptions {
  /** One-way latency of the in-memory network, in virtual ms. Default 0. */
  latencyMs?: number;
}

export interface VirtualBackend extends CompletionBackend {
  readonly virtual: true;
  /** Moves the clock forward by `ms` (rounded up to whole ns; never back). */
  advanceClock(ms: number): void;
  /** Sets the clock to `ns` if that is later than now. */
  advanceClockTo(ns: number): void;
}

/** An error with a system error code, as Node's net reports them. */
function systemError(code: string, message: string): Error {
  return Object.assign(new Error(`${message} (${code})`), { code });
}

const LOCALHOST = '127.0.0.1';
const FIRST_EPHEMERAL_PORT = 49152;

interface Schedule {
  (delayMs: number, fn: () => void): void;
}

/** One end of an in-memory connection. */
class MemorySocket implements CompletionSocket {
  peer: MemorySocket | null = null;
  #onData: ((chunk: Uint8Array | null) => void) | null = null;
  #flowing = false;
  #pending: Array<Uint8Array | null> = [];
  #destroyed = false;
  #ended = false;
  readonly #schedule: Schedule;
  readonly #latency: number;
  readonly localAddress: SocketAddress;
  readonly remoteAddress: SocketAddress;

  constructor(schedule: Schedule, latency: number, local: number, remote: number) {
    this.#schedule = schedule;
    this.#latency = latency;
    this.localAddress = { host: LOCALHOST, port: local, family: 'IPv4' };
    this.remoteAddress = { host: LOCALHOST, port: remote, family: 'IPv4' };
  }

  start(onData: (chunk: Uint8Array | null) => void): void {
    this.#onData = onData;
    this.#flush();
  }

  setFlowing(flowing: boolean): void {
    this.#flowing = flowing;
    this.#flush();
  }

  #flush(): void {
    while (this.#flowing && this.#onData !== null && this.#pending.length > 0) {
      this.#onData(this.#pending.shift() as Uint8Array | null);
    }
  }

  /** Data (or end of stream: null) arriving from the peer. */
  receive(chunk: Uint8Array | null): void {
    if (this.#destroyed) return;
    this.#pending.push(chunk);
    this.#flush();
  }

  write(data: Uint8Array, done: (error?: Error | null) => void): void {
    if (this.#destroyed || this.#ended) {
      done(systemError('EPIPE', 'write after the connection ended'));
      return;
    }
    const copy = data.slice();
    const peer = this.peer;
    this.#schedule(this.#latency, () => peer?.receive(copy));
    done(null);
  }

  end(): void {
    if (this.#ended || this.#destroyed) return;
    this.#ended = true;
    const peer = this.peer;
    this.#schedule(this.#latency, () => peer?.receive(null));
  }

  destroy(): void {
    if (this.#destroyed) return;
    const wasEnded = this.#ended;
    this.#destroyed = true;
    this.#pending = [];
    const peer = this.peer;
    if (!wasEnded) this.#schedule(this.#latency, () => peer?.receive(null));
  }
}

export function createVirtualBackend(options: VirtualOptions = {}): VirtualBackend {
  const latency = options.latencyMs ?? 0;
  if (typeof latency !== 'number' || !(latency >= 0) || !Number.isFinite(latency)) {
    throw new RangeError(`virtual backend: latencyMs must be a finite number >= 0, got ${String(latency)}`);
  }
  let nowNs = 0;
  let sink: BackendSink | null = null;
  const queue = new TokenQueue();
  const listeners = new Map<number, (socket: MemorySocket) => void>();
  let nextPort = FIRST_EPHEMERAL_PORT;
  const freePort = () => {
    while (listeners.has(nextPort)) nextPort++;
    return nextPort++;
  };
  const schedule: Schedule = (delayMs, fn) => {
    if (sink?.schedule === undefined) throw new Error('virtual backend: not attached to a loop');
    sink.schedule(delayMs, fn);
  };
  return {
    name: 'virtual',
    model: 'completion',
    virtual: true,
    now: () => nowNs,
    advanceClock(ms) {
      if (ms > 0) nowNs += Math.ceil(ms * 1e6);
    },
    advanceClockTo(ns) {
      if (ns > nowNs) nowNs = ns;
    },
    attach(s) {
      sink = s;
    },
    takeCompleted(max) {
      return queue.take(max);
    },
    complete(token) {
      queue.push(token);
      sink?.wake();
    },
    listen({ port }, onSocket, done) {
      const chosen = port === 0 ? freePort() : port;
      if (listeners.has(chosen)) {
        done(systemError('EADDRINUSE', `listen: port ${chosen} is in use on the virtual network`));
        return;
      }
      listeners.set(chosen, onSocket);
      const listener: CompletionListener = {
        address: () => ({ host: LOCALHOST, port: chosen, family: 'IPv4' }),
        close(closed) {
          listeners.delete(chosen);
          closed();
        },
      };
      done(null, listener);
    },
    connect({ port }, done) {
      const localPort = freePort();
      // The handshake takes one trip each way.
      schedule(latency, () => {
        const accept = listeners.get(port);
        if (accept === undefined) {
          schedule(latency, () => done(systemError('ECONNREFUSED', `connect: nothing listens on port ${port}`)));
          return;
        }
        const client = new MemorySocket(schedule, latency, localPort, port);
        const server = new MemorySocket(schedule, latency, port, localPort);
        client.peer = server;
        server.peer = client;
        accept(server);
        schedule(latency, () => done(null, client));
      });
    },
    close() {
      listeners.clear();
      sink = null;
    },
  };
}

/** True for a backend made by createVirtualBackend. */
export function isVirtual(backend: { readonly name: string }): backend is VirtualBackend {
  return (backend as Partial<VirtualBackend>).virtual === true;
}
