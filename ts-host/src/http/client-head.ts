/**
 * A parsed response head, for the client: the status line, the fields as a
 * `Headers`, and the body's framing as the parser decided it (RFC 9112
 * section 6.3). Decoded once, when the head arrives: every response the
 * client returns needs its status and its fields.
 */
import { latin1 } from './head.js';
import {
  FLAG_CHUNKED,
  FLAG_CLOSE,
  FLAG_CONTENT_LENGTH,
  FLAG_HIGH_BYTES,
  FLAG_KEEP_ALIVE,
  FLAG_NO_BODY,
  FLAG_UNTIL_CLOSE,
  R,
  W,
} from './parser.js';

/** How a response's body is delimited. */
export const enum BodyFraming {
  None,
  Length,
  Chunked,
  UntilClose,
}

export class ResponseHead {
  readonly status: number;
  readonly statusText: string;
  /** 0 for HTTP/1.0, 1 for HTTP/1.1. */
  readonly minor: number;
  readonly framing: BodyFraming;
  /** Content-Length, when `framing` is `Length`. */
  readonly contentLength: number;
  /** The fields in order, names lowercased. */
  readonly fields: [string, string][];
  readonly #flags: number;

  /** Decodes the head in `bytes[start, start + length)` from the parser's output words. */
  constructor(bytes: Uint8Array, start: number, out: Uint32Array) {
    const flags = out[W.FLAGS] as number;
    const ascii = (flags & FLAG_HIGH_BYTES) === 0;
    const text = (word: number): string => {
      const at = start + (out[word] as number);
      return latin1(bytes, at, at + (out[word + 1] as number), ascii);
    };
    this.#flags = flags;
    this.status = out[R.CODE] as number;
    this.statusText = text(R.REASON_AT);
    this.minor = out[W.VERSION] as number;
    this.framing =
      (flags & FLAG_NO_BODY) !== 0
        ? BodyFraming.None
        : (flags & FLAG_CHUNKED) !== 0
          ? BodyFraming.Chunked
          : (flags & FLAG_CONTENT_LENGTH) !== 0
            ? BodyFraming.Length
            : (flags & FLAG_UNTIL_CLOSE) !== 0
              ? BodyFraming.UntilClose
              : BodyFraming.None;
    this.contentLength = (out[W.LENGTH_HI] as number) * 2 ** 32 + (out[W.LENGTH_LO] as number);
    const count = out[W.COUNT] as number;
    const fields = new Array<[string, string]>(count);
    for (let i = 0; i < count; i++) {
      const word = W.HEADERS_AT + 4 * i;
      fields[i] = [text(word), text(word + 2)];
    }
    this.fields = fields;
  }

  /** A 1xx: an interim response, before the final one. */
  get informational(): boolean {
    return this.status < 200;
  }

  /**
   * Whether the connection may carry another request after this response:
   * HTTP/1.1 unless `Connection: close`; HTTP/1.0 only with `keep-alive`;
   * never when the body ends with the connection.
   */
  get persistent(): boolean {
    if ((this.#flags & FLAG_CLOSE) !== 0 || this.framing === BodyFraming.UntilClose) return false;
    return this.minor === 1 || (this.#flags & FLAG_KEEP_ALIVE) !== 0;
  }

  /** The value of field `name` (lowercase), or null. */
  get(name: string): string | null {
    for (const [n, v] of this.fields) if (n === name) return v;
    return null;
  }
}
