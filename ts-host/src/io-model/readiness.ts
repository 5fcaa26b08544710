/**
 * The readiness model (asyncio's selector event loop): the backend reports
 * that a descriptor can be read or written, and the program does the
 * reading and writing itself, with the backend's non-blocking socket
 * operations. io/'s readiness classes do that work; this object picks them.
 *
 * Its WIT import is `take-ready` (wit/readiness-import.ts): the backend's
 * queued tokens, or, when a recording is replayed, the watchers the
 * recording ran in the next iteration.
 */
import type { Direction, ReadinessBackend } from '../backends/backend.js';
import type { BackendFaults } from '../backend-faults.js';
import { FdWatches } from '../fd-watches.js';
import type { DatagramProtocol, DatagramTarget } from '../io/datagrams.js';
import { readinessDatagramEndpoint } from '../io/datagram-readiness.js';
import type { Protocol, ProtocolFactory } from '../io/protocols.js';
import { readinessTransport } from '../io/transport-readiness.js';
import {
  type ConnectionHandler,
  type ConnectTarget,
  type IoLoop,
  type ListenTarget,
  connectReadiness,
  connectReadinessWith,
  listenReadiness,
  listenReadinessWith,
} from '../io/streams.js';
import type { Callback } from '../reporting.js';
import type { Tracer } from '../trace.js';
import { IoModel, type IoModelParts, connectedProtocol, withProtocol } from './model.js';

export class ReadinessModel extends IoModel {
  declare protected readonly backend: ReadinessBackend;
  #fdWatches: FdWatches | null = null;

  override readonly takeReady: (max: number) => Uint32Array;

  constructor(backend: ReadinessBackend, faults: BackendFaults, tracer: Tracer | null) {
    super(backend, faults);
    const take = (max: number) => backend.takeReady(max);
    this.takeReady = tracer?.replaying
      ? (max) => this.taken('takeReady()', tracer.nextTime() !== null ? () => tracer.recordedReady() : take, max)
      : (max) => this.taken('takeReady()', take, max);
  }

  override attach(parts: IoModelParts): void {
    super.attach(parts);
    this.#fdWatches = new FdWatches(this.backend, parts.callbacks);
  }

  protected hasUnixSockets(): boolean {
    return typeof this.backend.sockets.listenUnix === 'function';
  }

  protected adoptsListeners(): boolean {
    return typeof this.backend.sockets.adoptListener === 'function';
  }

  protected hasDatagrams(): boolean {
    return typeof this.backend.sockets.udpBind === 'function';
  }

  // The transports and connections set them through the socket operations.
  protected setsTcpOptions(): boolean {
    return typeof this.backend.sockets.setTcpOptions === 'function';
  }

  protected listen(loop: IoLoop, onConnection: ConnectionHandler, at: ListenTarget) {
    return listenReadiness(loop, this.backend, onConnection, at);
  }

  protected listenWith(loop: IoLoop, operation: string, factory: ProtocolFactory, at: ListenTarget) {
    const backend = this.backend;
    return listenReadinessWith(
      loop,
      backend,
      (fd) =>
        withProtocol(
          loop,
          operation,
          factory,
          (p) => readinessTransport(loop, backend, fd, p, at.limits),
          () => backend.sockets.close(fd),
        ),
      at,
    );
  }

  protected connect(loop: IoLoop, at: ConnectTarget) {
    return connectReadiness(loop, this.backend, at);
  }

  protected connectWith<P extends Protocol>(
    loop: IoLoop,
    operation: string,
    factory: ProtocolFactory<P>,
    at: ConnectTarget,
  ) {
    const backend = this.backend;
    return connectReadinessWith(loop, backend, at, (fd) =>
      connectedProtocol(
        operation,
        factory,
        (p) => readinessTransport(loop, backend, fd, p, at.limits),
        () => backend.sockets.close(fd),
      ),
    );
  }

  protected openDatagram(loop: IoLoop, target: DatagramTarget, protocol: DatagramProtocol) {
    return readinessDatagramEndpoint(loop, this.backend, target, protocol);
  }

  override addFdWatch(operation: string, fd: number, direction: Direction, callback: Callback, args: unknown[]): void {
    (this.#fdWatches as FdWatches).add(operation, fd, direction, callback, args);
  }

  override removeFdWatch(_operation: string, fd: number, direction: Direction): boolean {
    return (this.#fdWatches as FdWatches).remove(fd, direction);
  }

  override close(): void {
    this.#fdWatches?.clear();
  }
}
