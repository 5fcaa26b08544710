/**
 * Copies of a protocol's writes for a completion host that keeps the array
 * it is given until the write finishes (`node:net`, or a custom backend
 * without `copiesWrites`). A transport promises its protocol that the array
 * is the protocol's again once `write()` returns; asyncio's proactor
 * transport copies each write for the same reason.
 *
 *     slab (64 KiB):  [ kept | kept | copy | free ................ ]
 *                                   ^ carved   ^ used
 *
 * - A copy of up to SLAB_COPY_BYTES is carved from a shared slab at `used`.
 *   The host holds a copy only while its write is in flight: a write it
 *   finished in place (before `write` returned, the common case) gives its
 *   room back (`returned`), so `used` moves only for copies the host kept.
 *   A full slab is dropped, not reused: the copies still in flight keep it
 *   alive, and the collector frees it after the last went out.
 * - A larger copy goes to a spare buffer, reused while writes finish in
 *   place and handed over to the host when one does not (`kept`); a spare
 *   more than twice a write's size is not used for it, so a kept write pins
 *   at most twice its bytes.
 *
 * The copy costs a memcpy and a view; the allocations are left to writes
 * the system did not take at once, which wait for it anyway.
 */

const SLAB_BYTES = 64 * 1024;
const SLAB_COPY_BYTES = 16 * 1024;

let slab = new Uint8Array(SLAB_BYTES);
let used = 0;
let spare: Uint8Array | null = null;

/** A copy of `data` to hand to the host: `returned` or `kept` once the host says which. */
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
    if (spare === null || spare.length < n || spare.length > 2 * n) spare = new Uint8Array(n);
    copy = spare.length === n ? spare : spare.subarray(0, n);
  }
  copy.set(data);
  return copy;
}

/** The host finished writing `copy` in place and holds nothing of it: its room is reused. */
export function returned(copy: Uint8Array): void {
  if (copy.buffer === slab.buffer && copy.byteOffset + copy.length === used) used = copy.byteOffset;
}

/** The host keeps `copy` until its write finishes: nothing else may use that room. */
export function kept(copy: Uint8Array): void {
  if (spare !== null && copy.buffer === spare.buffer) spare = null;
}
