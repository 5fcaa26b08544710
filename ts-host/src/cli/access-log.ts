/**
 * `wasmloop serve`'s access log: one line per response, in uvicorn's format
 * (its `uvicorn.access` logger, without colours), on stdout:
 *
 *     INFO:     127.0.0.1:51234 - "GET /items?id=3 HTTP/1.1" 200 OK
 *
 * A line is written when the response starts (its status is known), as
 * uvicorn writes it. The server's own error responses (400, 408, 413, 431,
 * 503: `serve`'s `onRefused`) are logged too, in the same format; one that
 * came before a request line was read has `-` in its place, as Apache
 * logs a request that never came:
 *
 *     INFO:     127.0.0.1:51236 - "-" 408 Request Timeout
 * Lines are batched: a write to a pipe or file is a
 * system call, so the lines of one turn of the host go out in one write of
 * at most PIPE_BUF bytes each (whole lines: the writes of several workers
 * sharing one pipe never interleave within a line).
 */
import type { SocketAddress } from '../backends/backend.js';
import type { RequestLine } from '../http/server.js';
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
    this.#push(`INFO:     ${client} - "${method} ${target} HTTP/${version}" ${status} ${STATUS_TEXT[status] ?? ''}\n`);
  }

  /** Logs a response the server made itself: `request` is null if no request line was read. */
  refused(client: string, request: RequestLine | null, status: number): void {
    if (request !== null) this.response(client, request.method, request.target, request.version, status);
    else this.#push(`INFO:     ${client} - "-" ${status} ${STATUS_TEXT[status] ?? ''}\n`);
  }

  #push(line: string): void {
    this.#pending.push(line);
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
