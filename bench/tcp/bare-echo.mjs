// The floor under every Node.js server of the TCP echo: the selector's
// addon with no loop on top. Its poller hands each libuv iteration's ready
// descriptors straight to this script, which reads and echoes with the
// addon's own calls (a copy of each read, as every server's reads are).
// What a wasmloop server spends per round trip above this one is the loop's;
// what this one spends is Node's (libuv's iteration, the addon's call into
// JavaScript) and the addon's.
//   node bare-echo.mjs PORT
import { loadSelectorAddon } from '../../ts-host/dist/backends/selector.js';

const [port] = process.argv.slice(2);
const addon = loadSelectorAddon();
const READABLE = 1;
const WRITABLE = 2;
/** What the kernel did not take yet, by descriptor: the bytes and how far they went. */
const pending = new Map();
const buffer = new Uint8Array(64 * 1024);
const tokens = new Uint32Array(4096);
const listener = addon.listen('127.0.0.1', Number(port), 1024);
if (listener < 0) throw new Error(`listen: ${listener}`);
// Token 0: the listener; token 2 * fd + 2: a connection readable, + 1: writable.
function flush(fd) {
  const queued = pending.get(fd);
  while (queued.offset < queued.bytes.length) {
    const w = addon.write(fd, queued.bytes, queued.offset, queued.bytes.length - queued.offset);
    if (w < 0) return false;
    queued.offset += w;
  }
  pending.delete(fd);
  poller.unwatch(fd, WRITABLE);
  // Reading stopped while the kernel was full, and no new edge may come: go on.
  serve(fd);
  return true;
}
function close(fd) {
  poller.unwatch(fd, READABLE);
  poller.unwatch(fd, WRITABLE);
  pending.delete(fd);
  addon.close(fd);
}
/** Reads and echoes until the socket is empty or the kernel takes no more. */
function serve(fd) {
  while (!pending.has(fd)) {
    const n = addon.read(fd, buffer, 0, buffer.length);
    if (n <= 0) {
      if (n === 0 || n !== -addon.errno.EAGAIN) close(fd);
      return;
    }
    const chunk = buffer.slice(0, n);
    let off = 0;
    while (off < n) {
      const w = addon.write(fd, chunk, off, n - off);
      if (w === -addon.errno.EAGAIN) {
        pending.set(fd, { bytes: chunk, offset: off });
        poller.watch(fd, WRITABLE, 2 * fd + 3, true);
        return;
      }
      if (w < 0) {
        close(fd);
        return;
      }
      off += w;
    }
    if (n < buffer.length) return;
  }
}

const poller = new addon.Poller((count) => {
  for (let i = 0; i < count; i++) {
    const token = tokens[i];
    if (token === 0) {
      for (;;) {
        const fd = addon.accept(listener);
        if (fd < 0) break;
        poller.watch(fd, READABLE, 2 * fd + 2, true);
      }
      continue;
    }
    const fd = (token >> 1) - 1;
    if (token & 1) {
      if (pending.has(fd)) flush(fd);
      continue;
    }
    serve(fd);
  }
}, tokens);
poller.watch(listener, READABLE, 0, false);
console.log(`ready ${port}`);
