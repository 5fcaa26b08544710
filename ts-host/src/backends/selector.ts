/**
 * The `selector` backend: the readiness model on Node.js, through a small
 * native addon (`ts-host/native/`) that watches descriptors and does
 * non-blocking socket calls on demand (`sockets.c`). Its poller, on Linux,
 * watches up to 16 descriptors with a libuv `uv_poll` each and more in an
 * epoll set of its own (`poller-epoll.c`: edge-triggered watches where the
 * watcher asks for them), which one `uv_poll` watches on Node's loop;
 * elsewhere it is a `uv_poll` per descriptor (`poller-uv.c`).
 * Nothing is read or written on the program's behalf.
 *
 * The addon hands ready tokens over once per libuv iteration (a `uv_check`
 * handle, `selector.c`), in a shared Uint32Array; the backend de-duplicates
 * them and wakes the loop.
 */
type NodeModule = { createRequire(url: string): (id: string) => unknown };
let nodeModule: NodeModule | null = null;
try {
  nodeModule = (await import('node:module')) as NodeModule;
} catch {
  // Not Node-compatible: the selector cannot load here.
}
import type { BackendSink, Direction, ReadinessBackend, SocketOps } from './backend.js';
import { TokenQueue } from './token-queue.js';
import { performanceClock } from './wall-clock.js';
import { requireAddon } from './addon.js';

/**
 * The addon's poller: watches (a uv_poll each, and on Linux past 16
 * descriptors an epoll set of its own under one uv_poll) whose tokens it
 * hands over once per libuv iteration.
 */
export interface Poller {
  /** `edge`: the watcher handles edge-triggered readiness (ReadinessBackend.watch). */
  watch(fd: number, direction: number, token: number, edge?: boolean): number;
  unwatch(fd: number, direction: number): number;
  close(): void;
}

interface Addon extends SocketOps {
  Poller: new (onReady: (count: number) => void, tokens: Uint32Array) => Poller;
  listenUnix(path: string, backlog: number): number;
  connectUnix(path: string): number;
  unlink(path: string): number;
  adoptListener(fd: number): number;
  /** What adoptListener would say of `fd` (0, or its -errno), changing nothing. */
  listenerFault(fd: number): number;
  udpBind(host: string, port: number): number;
  udpConnect(fd: number, host: string, port: number): number;
  sendTo(fd: number, bytes: Uint8Array, offset: number, length: number, host: string | null, port: number): number;
  recvFrom(fd: number, bytes: Uint8Array, offset: number, length: number): number;
  recvAddress(): string;
}

let addon: Addon | null = null;

/** Loads the native addon (once); throws if it cannot load here. */
export function loadSelectorAddon(): Addon {
  if (addon !== null) return addon;
  if (typeof process === 'undefined' || process.versions?.node === undefined) {
    throw new Error('the native selector needs Node.js');
  }
  if (process.platform === 'win32') throw new Error('the native selector needs a POSIX system');
  // The addon's poller is a libuv uv_poll (on the epoll set on Linux, one per
  // descriptor elsewhere) on Node's loop. Deno's and Bun's Node-API run addons
  // without libuv (Deno hands out a stand-in loop, Bun aborts on uv_poll_init),
  // and either way the process dies, so the addon is never loaded there.
  if ('Deno' in globalThis) throw new Error("the native selector needs libuv, which Deno's Node-API does not provide");
  if ('Bun' in globalThis) throw new Error("the native selector needs libuv, which Bun's Node-API does not provide");
  if (nodeModule === null) throw new Error('the native selector needs node:module');
  // workerd, for one, offers node:module but loads no files and no addons.
  if (typeof import.meta.url !== 'string' || !import.meta.url.startsWith('file:')) {
    throw new Error('the native selector loads a native addon from a file, and modules here are not files');
  }
  addon = copySmallWrites(requireAddon<Addon>(nodeModule.createRequire(import.meta.url)));
  return addon;
}

/**
 * Bytes V8 keeps on its own heap for a typed array of at most this many
 * (its `--typed-array-max-size-in-heap`, 64 by default).
 */
const ON_HEAP_MAX_BYTES = 64;

/**
 * The addon's `write` and `sendTo`, with writes of at most 64 bytes copied
 * into one off-heap scratch array first. V8 keeps a typed array that small
 * on its own heap, and a native call that asks for its data
 * (`napi_get_typedarray_info`) first moves it off the heap: a backing store
 * allocated and the array rewired, about 1,350 instructions (callgrind) per
 * small write, in a server that writes every chunk it reads (each read is
 * an array of its own, io/'s chunk ownership). The copy is a `set` of at
 * most 64 bytes. The scratch array is larger than the limit, so it lives
 * off the heap from the start.
 */
function copySmallWrites(native: Addon): Addon {
  const scratch = new Uint8Array(4 * ON_HEAP_MAX_BYTES);
  const staged = (bytes: Uint8Array, offset: number, length: number): Uint8Array => {
    if (offset === 0 && length === bytes.length) scratch.set(bytes);
    else for (let i = 0; i < length; i++) scratch[i] = bytes[offset + i] as number;
    return scratch;
  };
  const write = native.write;
  const sendTo = native.sendTo;
  // Anything else (a larger write, arguments the addon rejects) goes to the addon as it is.
  const small = (bytes: Uint8Array, offset: number, length: number): boolean =>
    length <= ON_HEAP_MAX_BYTES &&
    bytes instanceof Uint8Array &&
    (offset | 0) === offset &&
    (length | 0) === length &&
    offset >= 0 &&
    length >= 0 &&
    offset + length <= bytes.length;
  // The addon's own properties are read-only: the rest is inherited from it.
  return Object.create(native, {
    write: {
      value: (fd: number, bytes: Uint8Array, offset: number, length: number): number =>
        small(bytes, offset, length)
          ? write(fd, staged(bytes, offset, length), 0, length)
          : write(fd, bytes, offset, length),
    },
    sendTo: {
      value: (
        fd: number,
        bytes: Uint8Array,
        offset: number,
        length: number,
        host: string | null,
        port: number,
      ): number =>
        small(bytes, offset, length)
          ? sendTo(fd, staged(bytes, offset, length), 0, length, host, port)
          : sendTo(fd, bytes, offset, length, host, port),
    },
  }) as Addon;
}

/** Tokens handed over by the addon per libuv iteration, at most. */
const BATCH = 4096;

export function createSelectorBackend(): ReadinessBackend {
  const native = loadSelectorAddon();
  const now = performanceClock();
  const shared = new Uint32Array(BATCH);
  const queue = new TokenQueue();
  /** token by fd and direction, so unwatch can drop a queued token. */
  const tokens = new Map<number, number>();
  let sink: BackendSink | null = null;
  let poller: Poller | null = new native.Poller((count) => {
    for (let i = 0; i < count; i++) queue.push(shared[i] as number);
    // A libuv check callback: a macrotask.
    sink?.wake(true);
  }, shared);
  const key = (fd: number, direction: Direction) => fd * 4 + direction;
  return {
    name: 'selector',
    model: 'readiness',
    now,
    sockets: native,
    // The addon's setsockopt takes every option.
    checkTcpOptions: () => null,
    attach(s) {
      sink = s;
    },
    takeReady(max) {
      return queue.take(max);
    },
    watch(fd, direction, token, edge) {
      if (poller === null) return -9; // EBADF: closed
      const rc = poller.watch(fd, direction, token, edge === true);
      if (rc === 0) tokens.set(key(fd, direction), token);
      return rc;
    },
    unwatch(fd, direction) {
      if (poller === null) return;
      poller.unwatch(fd, direction);
      const token = tokens.get(key(fd, direction));
      if (token !== undefined) {
        tokens.delete(key(fd, direction));
        queue.drop(token);
      }
    },
    close() {
      poller?.close();
      poller = null;
      sink = null;
    },
  };
}
