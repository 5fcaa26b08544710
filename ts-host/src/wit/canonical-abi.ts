/**
 * The few pieces of the component model's canonical ABI the host does by
 * hand, for the `list<u32>` values that cross the boundary once per
 * iteration (the batch out of `run-once`, the tokens into `take-ready` and
 * `take-completed`). jco's generated code does the same work with a fresh
 * ArrayBuffer, byte views and DataViews per call; on the hot path that
 * costs more than the rest of an idle iteration.
 *
 * A `list<u32>` in linear memory is a (pointer, length) pair of u32 words;
 * the elements are `length` u32 words at `pointer` (4-byte aligned).
 */

/** What a hand-lowered import needs of the instance, once it exists. */
export interface LinearMemory {
  /** `cabi_realloc(old, oldSize, align, newSize)`: allocates in the core's heap. */
  realloc(old: number, oldSize: number, align: number, size: number): number;
  /** A Uint32Array over linear memory, current (memory.grow replaces the buffer). */
  words(): Uint32Array;
}

/**
 * A `list<u32>`-returning import as the core module calls it, `(max,
 * retArea)`, lowered by hand: allocates the list with the core's
 * `cabi_realloc`, copies the tokens in, and writes (pointer, length) to the
 * return area. An empty list owns no memory: its pointer is the alignment,
 * 4, as `cabi_realloc` itself returns for a size of 0 (Rust's dangling
 * pointer for an empty Vec).
 */
export function lowerTokenList(
  take: (max: number) => Uint32Array,
  memory: LinearMemory,
): (max: number, retArea: number) => void {
  return (max, retArea) => {
    const tokens = take(max >>> 0);
    const length = tokens.length;
    let ptr = 4;
    let words: Uint32Array;
    if (length > 0) {
      ptr = memory.realloc(0, 0, 4, length * 4);
      words = memory.words();
      const at = ptr >>> 2;
      if (length < 16) {
        for (let i = 0; i < length; i++) words[at + i] = tokens[i] as number;
      } else {
        words.set(tokens, at);
      }
    } else {
      words = memory.words();
    }
    words[retArea >>> 2] = ptr;
    words[(retArea >>> 2) + 1] = length;
  };
}
