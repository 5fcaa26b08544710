/**
 * The completion model (asyncio's proactor event loop): the backend
 * performs each operation and reports the ones that finished. io/'s
 * completion classes ask for the operations; this object picks them.
 *
 * Its WIT import is `take-completed` (wit/completion-import.ts): the
 * backend's queued tokens.
 */
import type { CompletionBackend } from '../backends/backend.js';
import type { BackendFaults } from '../backend-faults.js';
import type { DatagramProtocol, DatagramTarget } from '../io/datagrams.js';
import { completionDatagramEndpoint } from '../io/datagram-completion.js';
import type { Protocol, ProtocolFactory } from '../io/protocols.js';
import { completionTransport } from '../io/transport-completion.js';
import {
  type ConnectionHandler,
  type ConnectTarget,
  type IoLoop,
  type ListenTarget,
  connectCompletion,
  connectCompletionWith,
  listenCompletion,
  listenCompletionWith,
} from '../io/streams.js';
import { IoModel, connectedProtocol, withProtocol } from './model.js';

export class CompletionModel extends IoModel {
  declare protected readonly backend: CompletionBackend;

  override readonly takeCompleted: (max: number) => Uint32Array;

  constructor(backend: CompletionBackend, faults: BackendFaults) {
    super(backend, faults);
    const take = (max: number) => backend.takeCompleted(max);
    this.takeCompleted = (max) => this.taken('takeCompleted()', take, max);
  }

  // The contract's listen and connect take a path.
  protected hasUnixSockets(): boolean {
    return true;
  }

  // The contract's listen takes an fd; a host that cannot adopt one refuses it there.
  protected adoptsListeners(): boolean {
    return true;
  }

  protected hasDatagrams(): boolean {
    return typeof this.backend.datagram === 'function';
  }

  // Its sockets set them; checkTcpOptions says which.
  protected setsTcpOptions(): boolean {
    return true;
  }

  protected listen(loop: IoLoop, onConnection: ConnectionHandler, at: ListenTarget) {
    return listenCompletion(loop, this.backend, onConnection, at);
  }

  protected listenWith(loop: IoLoop, operation: string, factory: ProtocolFactory, at: ListenTarget) {
    const backend = this.backend;
    return listenCompletionWith(
      loop,
      backend,
      (socket) =>
        withProtocol(
          loop,
          operation,
          factory,
          (p) => completionTransport(loop, backend, socket, p, at.limits),
          () => socket.destroy(),
        ),
      at,
    );
  }

  protected connect(loop: IoLoop, at: ConnectTarget) {
    return connectCompletion(loop, this.backend, at);
  }

  protected connectWith<P extends Protocol>(
    loop: IoLoop,
    operation: string,
    factory: ProtocolFactory<P>,
    at: ConnectTarget,
  ) {
    const backend = this.backend;
    return connectCompletionWith(loop, backend, at, (socket) =>
      connectedProtocol(
        operation,
        factory,
        (p) => completionTransport(loop, backend, socket, p, at.limits),
        () => socket.destroy(),
      ),
    );
  }

  protected openDatagram(loop: IoLoop, target: DatagramTarget, protocol: DatagramProtocol) {
    return completionDatagramEndpoint(loop, this.backend, target, protocol);
  }
}
