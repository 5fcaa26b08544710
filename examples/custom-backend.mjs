// A user-supplied backend, loaded with
//   createLoop({ backend: './examples/custom-backend.mjs:createBackend' })
// It keeps the built-in completion backend's I/O and replaces the clock: time
// runs `speed` times as fast as real time (handy to shorten long timeouts in
// a staging environment). docs/backends.md describes the contract.
import { createCompletionBackend } from 'wasmloop';

export function createBackend({ speed = 2 } = {}) {
  const io = createCompletionBackend();
  const start = performance.now();
  return {
    ...io,
    name: `accelerated-${speed}x`,
    model: io.model,
    // Nanoseconds, never decreasing.
    now: () => (performance.now() - start) * speed * 1e6,
    // The loop waits in wall time: `speed` times shorter.
    hostDelay: (loopMs) => loopMs / speed,
    attach: (sink) => io.attach(sink),
    takeCompleted: (max) => io.takeCompleted(max),
    complete: (token) => io.complete(token),
    listen: (...args) => io.listen(...args),
    connect: (...args) => io.connect(...args),
    close: () => io.close(),
  };
}
