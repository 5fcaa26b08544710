/**
 * The backend contract: what a backend gives the loop. A backend supplies
 * the loop's clock (and, with the I/O backends, readiness or completion
 * events). The loop core, the callback table and the driver are the same for
 * every backend.
 */
export interface Backend {
  /** The name `loop.backend` reports. */
  readonly name: string;
  /**
   * Monotonic time in nanoseconds since a point the backend fixes, as a
   * number. Must never decrease. Read at most once per loop iteration.
   */
  now(): number;
  /** Releases what the backend holds; called once, by `loop.close()`. */
  close(): void;
}
