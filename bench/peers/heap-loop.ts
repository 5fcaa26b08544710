/**
 * A plain TypeScript event loop with a binary-heap timer queue: the peer
 * that shows what the Wasm core buys. Same API and the same iteration
 * contract as wasmloop (clock read once per iteration, expired timers
 * collected before callbacks run, a microtask checkpoint after each
 * callback, one host timer for the earliest deadline), written the way a
 * careful JavaScript implementation would be: asyncio's design, handles
 * that hold their callback, lazy cancellation with compaction.
 */

type Callback = (...args: any[]) => unknown;

const tick: () => void = (process as unknown as { _tickCallback: () => void })._tickCallback;

export class HeapHandle {
  constructor(
    public callback: Callback | null,
    public args: unknown[] | null,
    public loop: HeapLoop,
  ) {}
  cancel(): void {
    if (this.callback === null) return;
    this.callback = null;
    this.args = null;
    this.loop._cancelled(this);
  }
  cancelled(): boolean {
    return this.callback === null;
  }
}

export class HeapTimerHandle extends HeapHandle {
  constructor(
    callback: Callback,
    args: unknown[] | null,
    loop: HeapLoop,
    readonly deadline: number,
    readonly seq: number,
  ) {
    super(callback, args, loop);
  }
  when(): number {
    return this.deadline;
  }
}

function before(a: HeapTimerHandle, b: HeapTimerHandle): boolean {
  return a.deadline < b.deadline || (a.deadline === b.deadline && a.seq < b.seq);
}

export class HeapLoop {
  private heap: HeapTimerHandle[] = [];
  private ready: HeapHandle[] = [];
  private seq = 0;
  private now = performance.now();
  private inBatch = false;
  private cancelledTimers = 0;
  private running = false;
  private stopping = false;
  private hostTimer: ReturnType<typeof setTimeout> | null = null;
  private onStop: (() => void) | null = null;

  time(): number {
    if (!this.inBatch) this.now = performance.now();
    return this.now;
  }

  callSoon(callback: Callback, ...args: unknown[]): HeapHandle {
    const h = new HeapHandle(callback, args.length === 0 ? null : args, this);
    this.ready.push(h);
    this.wake();
    return h;
  }

  callLater(delay: number, callback: Callback, ...args: unknown[]): HeapTimerHandle {
    if (!this.inBatch) this.now = performance.now();
    // biome-ignore lint/complexity/useMathMinMax: a NaN delay counts as 0 here, where Math.max would give NaN.
    const wait = delay > 0 ? delay : 0;
    const h = new HeapTimerHandle(callback, args.length === 0 ? null : args, this, this.now + wait, this.seq++);
    this.push(h);
    this.wake();
    return h;
  }

  _cancelled(h: HeapHandle): void {
    if (h instanceof HeapTimerHandle) {
      this.cancelledTimers++;
      if (this.cancelledTimers > 100 && this.cancelledTimers * 2 > this.heap.length) this.compact();
    }
  }

  private push(h: HeapTimerHandle): void {
    const heap = this.heap;
    let i = heap.length;
    heap.push(h);
    while (i > 0) {
      const parent = (i - 1) >> 1;
      const p = heap[parent] as HeapTimerHandle;
      if (!before(h, p)) break;
      heap[i] = p;
      i = parent;
    }
    heap[i] = h;
  }

  private pop(): HeapTimerHandle {
    const heap = this.heap;
    const top = heap[0] as HeapTimerHandle;
    const last = heap.pop() as HeapTimerHandle;
    const n = heap.length;
    if (n > 0) {
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        if (l >= n) break;
        const r = l + 1;
        const c = r < n && before(heap[r] as HeapTimerHandle, heap[l] as HeapTimerHandle) ? r : l;
        const child = heap[c] as HeapTimerHandle;
        if (!before(child, last)) break;
        heap[i] = child;
        i = c;
      }
      heap[i] = last;
    }
    return top;
  }

  private compact(): void {
    const live = this.heap.filter((h) => h.callback !== null);
    this.heap = [];
    for (const h of live) this.push(h);
    this.cancelledTimers = 0;
  }

  runUntilComplete<T>(promise: Promise<T>): Promise<T> {
    let outcome: { ok: boolean; value: unknown } | null = null;
    promise.then(
      (value) => {
        outcome = { ok: true, value };
        this.stop();
      },
      (value) => {
        outcome = { ok: false, value };
        this.stop();
      },
    );
    return new Promise<void>((resolve) => {
      this.onStop = resolve;
      this.running = true;
      setImmediate(this.iterate);
    }).then(() => {
      const o = outcome as { ok: boolean; value: unknown } | null;
      if (o === null) throw new Error('stopped');
      if (!o.ok) throw o.value;
      return o.value as T;
    });
  }

  stop(): void {
    this.stopping = true;
    this.wake();
  }

  private sleeping = false;
  private wake(): void {
    if (!this.sleeping) return;
    this.sleeping = false;
    if (this.hostTimer !== null) clearTimeout(this.hostTimer);
    this.hostTimer = null;
    setImmediate(this.iterate);
  }

  private iterate = (): void => {
    this.sleeping = false;
    this.hostTimer = null;
    if (!this.running) return;
    const sliceEnd = performance.now() + 2;
    for (;;) {
      this.now = performance.now();
      const batch = this.ready;
      this.ready = [];
      while (this.heap.length > 0 && (this.heap[0] as HeapTimerHandle).deadline <= this.now) {
        const h = this.pop();
        if (h.callback === null) this.cancelledTimers--;
        else batch.push(h);
      }
      this.inBatch = true;
      for (let i = 0; i < batch.length; i++) {
        const h = batch[i] as HeapHandle;
        const cb = h.callback;
        if (cb === null) continue;
        h.callback = null;
        try {
          if (h.args === null) cb();
          else cb(...h.args);
        } catch (error) {
          console.error(error);
        }
        tick();
      }
      this.inBatch = false;
      if (this.stopping) {
        this.stopping = false;
        this.running = false;
        this.onStop?.();
        return;
      }
      if (this.ready.length > 0) {
        if (performance.now() < sliceEnd) continue;
        setImmediate(this.iterate);
        return;
      }
      while (this.heap.length > 0 && (this.heap[0] as HeapTimerHandle).callback === null) {
        this.pop();
        this.cancelledTimers--;
      }
      this.sleeping = true;
      if (this.heap.length > 0) {
        const wait = (this.heap[0] as HeapTimerHandle).deadline - performance.now();
        this.hostTimer = setTimeout(this.iterate, Math.max(0, Math.ceil(wait)));
      }
      return;
    }
  };
}
