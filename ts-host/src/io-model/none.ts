/**
 * No I/O: a backend that supplies only a clock (the `clock` backend, or a
 * custom one with `model: 'none'`). Timers and callbacks work; every I/O
 * operation is NotSupportedError, after its arguments were checked.
 */
import { NotSupportedError } from '../errors.js';
import { IoModel } from './model.js';

export class NoIoModel extends IoModel {
  protected override requireIo(operation: string): void {
    throw new NotSupportedError(`${operation}: the '${this.backend.name}' backend has no I/O`);
  }

  protected hasUnixSockets(): boolean {
    return false;
  }

  protected adoptsListeners(): boolean {
    return false;
  }

  protected hasDatagrams(): boolean {
    return false;
  }

  protected setsTcpOptions(): boolean {
    return false;
  }

  protected listen(): never {
    throw new NotSupportedError('listen: no I/O');
  }

  protected listenWith(): never {
    throw new NotSupportedError('listen: no I/O');
  }

  protected connect(): never {
    throw new NotSupportedError('connect: no I/O');
  }

  protected connectWith(): never {
    throw new NotSupportedError('connect: no I/O');
  }

  protected openDatagram(): never {
    throw new NotSupportedError('createDatagramEndpoint: no I/O');
  }
}
