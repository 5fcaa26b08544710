/**
 * Where reads land: a slab, handed out as views, as Node's Buffer pool does.
 * No copy, and no new backing store per read (which costs a malloc, and a
 * second one when the chunk is later written from a small on-heap array). A
 * slab lives as long as a view of it does; a full slab is left to its views
 * and a fresh one started.
 *
 *     const room = readRoom();
 *     const n = ops.read(fd, currentSlab(), slabOffset(), room);
 *     if (n > 0) chunk = takeRead(n);
 */

/** The largest chunk a read returns, in bytes. */
export const CHUNK_BYTES = 64 * 1024;

const SLAB_BYTES = 256 * 1024;
let slab = new Uint8Array(SLAB_BYTES);
let slabUsed = 0;

/** Room for one read, in bytes: at least CHUNK_BYTES / 4, at most CHUNK_BYTES. */
export function readRoom(): number {
  if (SLAB_BYTES - slabUsed < CHUNK_BYTES / 4) {
    slab = new Uint8Array(SLAB_BYTES);
    slabUsed = 0;
  }
  return Math.min(CHUNK_BYTES, SLAB_BYTES - slabUsed);
}

/** The slab the next read goes into (valid until the next `readRoom()`). */
export function currentSlab(): Uint8Array {
  return slab;
}

/** Where in `currentSlab()` the next read goes. */
export function slabOffset(): number {
  return slabUsed;
}

/** Hands out the `n` bytes just read at the slab's free end. */
export function takeRead(n: number): Uint8Array {
  const view = slab.subarray(slabUsed, slabUsed + n);
  slabUsed = (slabUsed + n + 7) & ~7;
  return view;
}
