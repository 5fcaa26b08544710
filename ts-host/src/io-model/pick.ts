/**
 * The one place a loop looks at `backend.model`: when it is made, to pick
 * its I/O model object. Everything after that asks the model object.
 */
import type { Backend } from '../backends/backend.js';
import type { BackendFaults } from '../backend-faults.js';
import type { Tracer } from '../trace.js';
import { CompletionModel } from './completion.js';
import type { IoModel } from './model.js';
import { NoIoModel } from './none.js';
import { ReadinessModel } from './readiness.js';

export function ioModelFor(backend: Backend, faults: BackendFaults, tracer: Tracer | null): IoModel {
  switch (backend.model) {
    case 'readiness':
      return new ReadinessModel(backend, faults, tracer);
    case 'completion':
      return new CompletionModel(backend, faults);
    default:
      return new NoIoModel(backend, faults);
  }
}
