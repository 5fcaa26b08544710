/**
 * Copies of a protocol's writes (and datagrams) for a completion host that
 * keeps the array it is given until the write finishes (`node:net`,
 * `node:dgram`, or a custom backend without `copiesWrites` or
 * `copiesSends`). A transport promises its protocol that the array is the
 * protocol's again once `write()` or `sendto()` returns; asyncio's
 * proactor transport copies each write for the same reason. (`node:dgram`
 * always calls back later, so a datagram's slab room is never given back;
 * the slab is dropped once full, as below.)
 *
 *     slab (64 KiB):  [ kept | kept | copy | free ................ ]
 *                                   ^ carved   ^ used
 *     spares:         [ 64 KiB ] [ 200 KiB ]      (at most MAX_SPARES)
 *
 * - A copy of up to SLAB_COPY_BYTES is carved from a shared slab at `used`.
 *   The host holds a copy only while its write is in flight: a write it
 *   finished in place (before `write` returned, the common case) gives its
 *   room back (`returned`), so `used` moves only for copies the host kept.
 *   A full slab is dropped, not reused: the copies still in flight keep it
 *   alive, and the collector frees it after the last went out.
 * - A larger copy goes to a spare buffer of at least its size and at most
 *   twice it (so a kept write pins at most twice its bytes), or a new one.
 *   A write finished in place gives its spare back at once; one the host
 *   kept gives it back when the host is done with it (`finished`). A server
 *   writing large bodies to slow readers thus copies into the same few
 *   buffers instead of faulting in fresh memory for each.
 *
 * Every copy costs a memcpy and a view; allocations are left to the first
 * writes of a size and to more kept writes than there are spares.
 */

const SLAB_BYTES = 64 * 1024;
const SLAB_COPY_BYTES = 16 * 1024;
const MAX_SPARES = 4;

let slab = new Uint8Array(SLAB_BYTES);
let used = 0;
const spares: ArrayBuffer[] = [];

/** A copy of `data` to hand to the host: then `returned` (finished in place) or, later, `finished`. */
export function copyForHost(data: Uint8Array): Uint8Array {
  const n = data.length;
  let copy: Uint8Array;
  if (n <= SLAB_COPY_BYTES) {
    if (used + n > slab.length) {
      slab = new Uint8Array(SLAB_BYTES);
      used = 0;
    }
    copy = slab.subarray(used, used + n);
    used += n;
  } else {
    copy = new Uint8Array(takeSpare(n), 0, n);
  }
  copy.set(data);
  return copy;
}

/** A spare of `n` to `2n` bytes, out of the list, or a new one of `n`. */
function takeSpare(n: number): ArrayBuffer {
  for (let i = 0; i < spares.length; i++) {
    const spare = spares[i] as ArrayBuffer;
    if (spare.byteLength >= n && spare.byteLength <= 2 * n) {
      spares[i] = spares[spares.length - 1] as ArrayBuffer;
      spares.pop();
      return spare;
    }
  }
  return new ArrayBuffer(n);
}

/** A spare the host no longer holds, for the next large copy (the oldest gives way when the list is full). */
function giveSpare(buffer: ArrayBuffer): void {
  if (spares.length === MAX_SPARES) spares.shift();
  spares.push(buffer);
}

/** The host finished writing `copy` in place and holds nothing of it: its room is reused. */
export function returned(copy: Uint8Array): void {
  if (copy.buffer === slab.buffer) {
    if (copy.byteOffset + copy.length === used) used = copy.byteOffset;
  } else if (copy.length > SLAB_COPY_BYTES) {
    giveSpare(copy.buffer as ArrayBuffer);
  }
}

/** The host is done with a `copy` it kept past the write call (a slab copy's room stays carved). */
export function finished(copy: Uint8Array): void {
  if (copy.length > SLAB_COPY_BYTES) giveSpare(copy.buffer as ArrayBuffer);
}
