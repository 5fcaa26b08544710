/**
 * One request in flight, as the connection sees it: its head, its body as
 * it arrives, and the signal that aborts when the client goes away.
 *
 * The body flows with backpressure. Chunks queue here until the
 * application asks (a stream, or the whole body); past
 * `BODY_HIGH_WATER_BYTES` queued and unread, the connection stops reading
 * from the socket, so a client sending to a handler that does not read
 * waits in TCP instead of in memory.
 */
import type { RequestHead } from './head.js';
import { type RequestSource, lazyRequest } from './request.js';

/** Request body bytes queued unread before the connection pauses reading. */
export const BODY_HIGH_WATER_BYTES = 64 * 1024;

/** What an exchange asks of its connection. */
export interface ExchangeOwner {
  /** Stop (true) or resume (false) reading for this body's sake. */
  pauseForBody(paused: boolean): void;
  /** The application wants the body: time for `100 Continue`, if the client waits for one. */
  bodyWanted(): void;
}

export class Exchange implements RequestSource {
  readonly head: RequestHead;
  readonly defaultHost: string;
  readonly secure: boolean;
  readonly hasBody: boolean;
  readonly #owner: ExchangeOwner;
  /** Body chunks not yet handed over (made on the first one: most requests have none). */
  #chunks: Uint8Array[] | null = null;
  #queuedBytes = 0;
  #ended = false;
  #error: Error | null = null;
  #controller: ReadableStreamDefaultController<Uint8Array> | null = null;
  #stream: ReadableStream<Uint8Array> | null = null;
  /** Someone waits for the whole body (`bodyBytes()`). */
  #whole: { resolve(bytes: Uint8Array): void; reject(error: Error): void } | null = null;
  #abort: AbortController | null = null;
  /** Nobody will read the body any more: arriving chunks are dropped. */
  #dropping = false;
  bodyTaken = false;
  /** The response has started (its head is written). */
  responseStarted = false;
  /** The request as the handler sees it. */
  readonly request: Request;

  constructor(head: RequestHead, defaultHost: string, secure: boolean, hasBody: boolean, owner: ExchangeOwner) {
    this.head = head;
    this.defaultHost = defaultHost;
    this.secure = secure;
    this.hasBody = hasBody;
    this.#owner = owner;
    this.#ended = !hasBody;
    this.request = lazyRequest(this);
  }

  /** Body bytes arrived. */
  push(chunk: Uint8Array): void {
    if (this.#dropping) return;
    const controller = this.#controller;
    if (controller !== null) {
      controller.enqueue(chunk);
      if ((controller.desiredSize ?? 0) <= 0) this.#owner.pauseForBody(true);
      return;
    }
    (this.#chunks ??= []).push(chunk);
    this.#queuedBytes += chunk.length;
    if (this.#whole === null && this.#queuedBytes >= BODY_HIGH_WATER_BYTES) this.#owner.pauseForBody(true);
  }

  /** The body is complete. */
  end(): void {
    if (this.#ended) return;
    this.#ended = true;
    this.#controller?.close();
    const whole = this.#whole;
    if (whole !== null) {
      this.#whole = null;
      whole.resolve(this.#takeQueued());
    }
  }

  /** The body cannot complete (the client went away, or broke the framing). */
  fail(error: Error): void {
    if (this.#ended || this.#error !== null) return;
    this.#error = error;
    this.#controller?.error(error);
    const whole = this.#whole;
    if (whole !== null) {
      this.#whole = null;
      whole.reject(error);
    }
  }

  /** The client went away before the response was complete. */
  abort(error: Error): void {
    this.fail(error);
    this.#abort?.abort(error);
  }

  /** The response is complete: what is still to come of the body is dropped. */
  finish(): void {
    this.#dropping = true;
    this.#chunks = null;
    this.#queuedBytes = 0;
    if (!this.#ended) this.fail(new Error('the response was sent before the request body was read'));
  }

  signal(): AbortSignal {
    this.#abort ??= new AbortController();
    return this.#abort.signal;
  }

  bodyStream(): ReadableStream<Uint8Array> {
    if (this.#stream !== null) return this.#stream;
    this.#stream = new ReadableStream<Uint8Array>(
      {
        start: (controller) => {
          this.#controller = controller;
          for (const chunk of this.#chunks ?? []) controller.enqueue(chunk);
          this.#chunks = null;
          this.#queuedBytes = 0;
          if (this.#error !== null) controller.error(this.#error);
          else if (this.#ended) controller.close();
        },
        pull: () => {
          this.#owner.bodyWanted();
          this.#owner.pauseForBody(false);
        },
        cancel: () => {
          this.#dropping = true;
          this.#controller = null;
          this.#owner.pauseForBody(false);
        },
      },
      { highWaterMark: BODY_HIGH_WATER_BYTES, size: (chunk) => chunk.byteLength },
    );
    return this.#stream;
  }

  bodyBytes(): Promise<Uint8Array> {
    const stream = this.#stream;
    if (stream !== null)
      return stream.locked ? Promise.reject(new TypeError('Body is unusable: its stream is locked')) : readAll(stream);
    this.bodyTaken = true;
    if (this.#error !== null) return Promise.reject(this.#error);
    if (this.#ended) return Promise.resolve(this.#takeQueued());
    return new Promise((resolve, reject) => {
      this.#whole = { resolve, reject };
      this.#owner.bodyWanted();
      this.#owner.pauseForBody(false);
    });
  }

  #takeQueued(): Uint8Array {
    const chunks = this.#chunks ?? [];
    this.#chunks = null;
    this.#queuedBytes = 0;
    if (chunks.length === 1) return chunks[0] as Uint8Array;
    let length = 0;
    for (const chunk of chunks) length += chunk.length;
    const whole = new Uint8Array(length);
    let at = 0;
    for (const chunk of chunks) {
      whole.set(chunk, at);
      at += chunk.length;
    }
    return whole;
  }
}

/** Every chunk of `stream`, joined. */
async function readAll(stream: ReadableStream<Uint8Array>): Promise<Uint8Array> {
  const reader = stream.getReader();
  const chunks: Uint8Array[] = [];
  let length = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    chunks.push(value);
    length += value.length;
  }
  if (chunks.length === 1) return chunks[0] as Uint8Array;
  const whole = new Uint8Array(length);
  let at = 0;
  for (const chunk of chunks) {
    whole.set(chunk, at);
    at += chunk.length;
  }
  return whole;
}
