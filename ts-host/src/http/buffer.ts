/**
 * The receive buffer of an HTTP connection: `buf[start, end)` holds what was
 * received and not yet consumed.
 *
 * Bytes before `end` are never overwritten: heads and body chunks handed out
 * are views of them. A chunk that arrives when nothing is held becomes the
 * buffer itself (no copy: the protocol API hands over its arrays); only a
 * partial head or chunk line followed by more bytes is copied, into a buffer
 * of this object's own that grows by doubling, so a head trickling in costs
 * linear time.
 */
const EMPTY = new Uint8Array(0);

export class ReceiveBuffer {
  buf: Uint8Array = EMPTY;
  start = 0;
  end = 0;
  /** Where the search for the end of a head resumes. */
  scan = 0;
  /** `buf` is this object's (it may append into its spare room), not a received chunk. */
  #owned = false;

  /** Bytes held. */
  get length(): number {
    return this.end - this.start;
  }

  /** Appends received bytes. */
  append(data: Uint8Array): void {
    if (this.start === this.end) {
      this.buf = data;
      this.start = this.scan = 0;
      this.end = data.length;
      this.#owned = false;
      return;
    }
    const held = this.end - this.start;
    if (!this.#owned || this.end + data.length > this.buf.length) {
      const next = new Uint8Array(Math.max(2 * (held + data.length), 4096));
      next.set(this.buf.subarray(this.start, this.end));
      this.scan -= this.start;
      this.buf = next;
      this.start = 0;
      this.end = held;
      this.#owned = true;
    }
    this.buf.set(data, this.end);
    this.end += data.length;
  }

  /** The end of the head: the index after its empty line, or -1. */
  findHeadEnd(): number {
    const buf = this.buf;
    const end = this.end;
    let i = buf.indexOf(10, this.scan);
    while (i !== -1 && i < end) {
      const next = buf[i + 1];
      if (i + 1 < end && next === 10) return i + 2;
      if (i + 2 < end && next === 13 && buf[i + 2] === 10) return i + 3;
      i = buf.indexOf(10, i + 1);
    }
    // Resume where an unfinished CRLFCRLF could begin.
    this.scan = Math.max(this.start, end - 3);
    return -1;
  }

  /** Forgets a fully consumed buffer (its views stay with whoever holds them). */
  release(): void {
    this.buf = EMPTY;
    this.start = this.end = this.scan = 0;
    this.#owned = false;
  }
}
