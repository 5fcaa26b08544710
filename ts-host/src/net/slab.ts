/**
 * Where reads land: one scratch buffer, from which each read is copied out
 * to an ArrayBuffer of exactly its own size. A chunk handed to a program is
 * the program's: transferring it (`postMessage(data, [data.buffer])`),
 * detaching or keeping it cannot affect any other read, and `chunk.buffer`
 * holds that chunk's bytes and nothing of another connection's.
 *
 * Reads used to land in shared 256 KiB slabs handed out as views (Node's
 * Buffer pool does the same): no copy, but a transferred chunk detached the
 * slab under every later read in the process, and `chunk.buffer` exposed
 * other connections' bytes. Marking the slabs untransferable (Node's
 * `worker_threads.markAsUntransferable`) would stop the first on Node only,
 * and not the second. The copy costs one allocation and a memcpy per read;
 * the echo benchmark's figures are in the commit that made this change.
 *
 *     const n = ops.read(fd, READ_BUFFER, 0, CHUNK_BYTES);
 *     if (n > 0) chunk = takeRead(n);
 */

/** The largest chunk a read returns, in bytes. */
export const CHUNK_BYTES = 64 * 1024;

/** What every read is made into (valid until the next read: copy out at once with takeRead). */
export const READ_BUFFER = new Uint8Array(CHUNK_BYTES);

/** The `n` bytes just read into READ_BUFFER, as an array of their own. */
export function takeRead(n: number): Uint8Array {
  return READ_BUFFER.slice(0, n);
}

/**
 * Where strings written are encoded, rather than into a new array each:
 * `TextEncoder.encode` allocates a backing store per call (malloc, and a
 * free once the GC finds the array dead), and a server writes a string per
 * response. Every writer that encodes here writes at once and copies what
 * the socket did not take before it returns (the readiness transport, the
 * native completion socket), so one buffer serves them all. Strings of up
 * to TEXT_SCRATCH_CHARS UTF-16 units always fit (at most 3 bytes a unit).
 */
export const TEXT_SCRATCH = new Uint8Array(16 * 1024);
export const TEXT_SCRATCH_CHARS = TEXT_SCRATCH.length / 3;
const encoder = new TextEncoder();

/** Encodes `text` (at most TEXT_SCRATCH_CHARS units) into TEXT_SCRATCH; its length in bytes, valid until the next call. */
export function encodeToScratch(text: string): number {
  return encoder.encodeInto(text, TEXT_SCRATCH).written;
}
