/**
 * TokenQueue: the I/O tokens a backend has to report, each at most once,
 * oldest first, handed to the core by `take-ready` or `take-completed`.
 * A helper for backends (the built-in ones use it; a custom backend may);
 * not part of the contract itself.
 */

const NO_TOKENS = new Uint32Array(0);

/** take() keeps its views of up to this many tokens (at most 64 small arrays per queue). */
const VIEWS_KEPT = 64;

/** A queue of tokens with de-duplication, as both I/O models need. */
export class TokenQueue {
  #tokens = new Uint32Array(256);
  #length = 0;
  #queued = new Uint8Array(256);
  /** take() hands out a view of this; the caller copies it before the next take. */
  #out = new Uint32Array(256);
  /**
   * The views of `#out` take() has handed out, by length, made once each:
   * a `subarray` is a new typed array per call, and a readiness wakeup
   * takes once (usually one or a few tokens).
   */
  #views: Uint32Array[] = [];

  push(token: number): void {
    if (token < this.#queued.length && this.#queued[token] === 1) return;
    if (token >= this.#queued.length) {
      const grown = new Uint8Array(Math.max(token + 1, this.#queued.length * 2));
      grown.set(this.#queued);
      this.#queued = grown;
    }
    this.#queued[token] = 1;
    if (this.#length === this.#tokens.length) {
      const grown = new Uint32Array(this.#tokens.length * 2);
      grown.set(this.#tokens);
      this.#tokens = grown;
    }
    this.#tokens[this.#length++] = token;
  }

  /** Drops `token` if queued (its registration is gone). */
  drop(token: number): void {
    if (token >= this.#queued.length || this.#queued[token] === 0) return;
    this.#queued[token] = 0;
    let w = 0;
    for (let r = 0; r < this.#length; r++) {
      const t = this.#tokens[r] as number;
      if (t !== token) this.#tokens[w++] = t;
    }
    this.#length = w;
  }

  /**
   * Removes and returns up to `max` tokens, oldest first. The result is a
   * view of a buffer this queue reuses: valid until the next take (the core
   * copies it at once).
   */
  take(max: number): Uint32Array {
    const n = Math.min(max, this.#length);
    if (n === 0) return NO_TOKENS;
    if (this.#out.length < n) {
      this.#out = new Uint32Array(this.#tokens.length);
      this.#views = [];
    }
    let out = this.#views[n];
    if (out === undefined) {
      out = this.#out.subarray(0, n);
      if (n < VIEWS_KEPT) this.#views[n] = out;
    }
    const tokens = this.#tokens;
    const queued = this.#queued;
    for (let i = 0; i < n; i++) {
      const token = tokens[i] as number;
      out[i] = token;
      queued[token] = 0;
    }
    if (n < this.#length) this.#tokens.copyWithin(0, n, this.#length);
    this.#length -= n;
    return out;
  }

  get length(): number {
    return this.#length;
  }
}
