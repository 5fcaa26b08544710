/**
 * `wasmloop serve`'s access log: one line per response, in uvicorn's format
 * (its `uvicorn.access` logger, without colours), on stdout:
 *
 *     INFO:     127.0.0.1:51234 - "GET /items?id=3 HTTP/1.1" 200 OK
 *
 * A line is written when the response starts (its status is known), as
 * uvicorn writes it. Lines are batched: a write to a pipe or file is a
 * system call, so the lines of one turn of the host go out in one write of
 * at most PIPE_BUF bytes each (whole lines: the writes of several workers
 * sharing one pipe never interleave within a line).
 */
import type { SocketAddress } from '../backends/backend.js';
import { STATUS_TEXT } from '../http/status.js';

/** Bytes a pipe write is atomic up to (POSIX's minimum, Linux's value). */
const PIPE_BUF = 4096;

/** The client as uvicorn prints it: `host:port`, nothing for a Unix socket peer. */
export function clientAddress(address: SocketAddress | null | undefined): string {
  if (address === null || address === undefined || address.family === 'unix') return '';
  return `${address.host}:${address.port}`;
}

export class AccessLog {
  readonly #write: (text: string) => void;
  #pending: string[] = [];
  #scheduled = false;

  /** `write` takes a batch of whole lines (default: process.stdout). */
  constructor(write: (text: string) => void = (text) => void process.stdout.write(text)) {
    this.#write = write;
  }

  /** Logs one response; `version` is `'1.1'` or `'1.0'`, `target` the request line's. */
  response(client: string, method: string, target: string, version: string, status: number): void {
    this.#pending.push(
      `INFO:     ${client} - "${method} ${target} HTTP/${version}" ${status} ${STATUS_TEXT[status] ?? ''}\n`,
    );
    if (!this.#scheduled) {
      this.#scheduled = true;
      setImmediate(() => this.flush());
    }
  }

  /** Writes what is pending now (at shutdown, say). */
  flush(): void {
    this.#scheduled = false;
    const lines = this.#pending;
    if (lines.length === 0) return;
    this.#pending = [];
    let batch = '';
    for (const line of lines) {
      if (batch.length + line.length > PIPE_BUF && batch !== '') {
        this.#write(batch);
        batch = '';
      }
      batch += line;
    }
    this.#write(batch);
  }
}
