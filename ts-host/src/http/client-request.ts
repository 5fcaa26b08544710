/**
 * What the client sends: `fetch`'s arguments (a `Request` or a URL, and an
 * init) checked and turned into an outgoing request, its body into bytes
 * or a stream, and its head into the bytes of an HTTP/1.1 request head.
 *
 * Names and values of fields are checked by `Headers` (no CR, LF or NUL can
 * reach the wire). The fields that frame the message and decide the
 * connection's fate (Connection, Keep-Alive, Transfer-Encoding, TE,
 * Trailer, Upgrade, Expect) are the client's: an application's are
 * dropped, as fetch's forbidden request-header names are. Content-Length
 * is the client's too, except that it gives a stream body its length.
 */
import { describe } from '../errors.js';
import { checkOptions } from '../options.js';
import { NativeResponse } from './light-response.js';

/** The keys of a RequestInit. Those fetch defines for browsers are accepted and change nothing here. */
const INIT_OPTIONS = [
  'method',
  'headers',
  'body',
  'signal',
  'redirect',
  'duplex',
  'cache',
  'credentials',
  'integrity',
  'keepalive',
  'mode',
  'priority',
  'referrer',
  'referrerPolicy',
  'window',
] as const;

export type RedirectMode = 'follow' | 'manual' | 'error';

/** A request body: none, bytes (replayable, length known), or a stream (read once). */
export type RequestBody =
  | { readonly kind: 'none' }
  | { readonly kind: 'bytes'; readonly bytes: Uint8Array }
  | { readonly kind: 'stream'; readonly stream: ReadableStream; readonly length: number };

export interface OutgoingRequest {
  method: string;
  url: URL;
  headers: Headers;
  body: RequestBody;
  redirect: RedirectMode;
  signal: AbortSignal | null;
}

const NO_BODY: RequestBody = { kind: 'none' };
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
/** Methods fetch normalizes to upper case. */
const NORMALIZED = new Set(['DELETE', 'GET', 'HEAD', 'OPTIONS', 'POST', 'PUT']);
const FORBIDDEN_METHODS = new Set(['CONNECT', 'TRACE', 'TRACK']);
/** Fields the client decides; an application's are dropped. */
const CLIENT_FIELDS = new Set([
  'connection',
  'keep-alive',
  'transfer-encoding',
  'te',
  'trailer',
  'upgrade',
  'expect',
  'content-length',
]);
const encoder = new TextEncoder();

/** Checks `fetch(input, init)`'s arguments; the request they describe. */
export async function outgoingRequest(input: unknown, init: RequestInit | undefined): Promise<OutgoingRequest> {
  const o = checkOptions('fetch', init, INIT_OPTIONS) as RequestInit;
  const request = input instanceof Request ? input : null;
  let url: URL;
  if (request !== null) url = new URL(request.url);
  else if (typeof input === 'string' || input instanceof URL) {
    try {
      url = new URL(input);
    } catch (error) {
      throw new TypeError(`fetch: input must be an absolute URL, got ${describe(String(input))}`, { cause: error });
    }
  } else {
    throw new TypeError(`fetch: input must be a Request, a URL or a URL string, got ${describe(input)}`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new TypeError(`fetch: only http: and https: URLs can be fetched, got a ${url.protocol} URL`);
  }
  if (url.username !== '' || url.password !== '') {
    throw new TypeError(
      'fetch: a URL with credentials (user:password@) cannot be fetched; send an Authorization field instead',
    );
  }
  const method = checkMethod(o.method ?? request?.method ?? 'GET');
  const headers = new Headers(o.headers ?? request?.headers);
  const redirect = checkRedirect(o.redirect ?? request?.redirect ?? 'follow');
  if (o.integrity !== undefined && o.integrity !== '') {
    throw new TypeError('fetch: integrity is not checked by this client; leave it empty');
  }
  const signal = o.signal !== undefined ? o.signal : (request?.signal ?? null);
  if (signal !== null && !(signal instanceof AbortSignal)) {
    throw new TypeError(`fetch: signal must be an AbortSignal or null, got ${describe(signal)}`);
  }
  const given = o.body !== undefined ? o.body : (request?.body ?? null);
  if (given !== null && (method === 'GET' || method === 'HEAD')) {
    throw new TypeError(`fetch: a ${method} request cannot have a body`);
  }
  if (request !== null && o.body === undefined && request.bodyUsed) {
    throw new TypeError('fetch: the Request body was already read');
  }
  const body = await extractBody(given, headers);
  return { method, url, headers, body, redirect, signal };
}

function checkMethod(method: unknown): string {
  if (typeof method !== 'string' || !TOKEN.test(method)) {
    throw new TypeError(`fetch: method must be an HTTP method token, got ${describe(method)}`);
  }
  const upper = method.toUpperCase();
  if (FORBIDDEN_METHODS.has(upper)) throw new TypeError(`fetch: method ${upper} is not allowed`);
  return NORMALIZED.has(upper) ? upper : method;
}

function checkRedirect(mode: unknown): RedirectMode {
  if (mode === 'follow' || mode === 'manual' || mode === 'error') return mode;
  throw new TypeError(`fetch: redirect must be 'follow', 'manual' or 'error', got ${describe(mode)}`);
}

/**
 * A body as bytes (a string, buffer, view, Blob, URLSearchParams, FormData)
 * or a stream; sets the Content-Type such a body implies when none is set.
 */
async function extractBody(body: unknown, headers: Headers): Promise<RequestBody> {
  if (body === null || body === undefined) return NO_BODY;
  let bytes: Uint8Array;
  let type: string | null = null;
  if (typeof body === 'string') {
    bytes = encoder.encode(body);
    type = 'text/plain;charset=UTF-8';
  } else if (body instanceof ArrayBuffer) {
    bytes = new Uint8Array(body.slice(0));
  } else if (ArrayBuffer.isView(body)) {
    bytes = new Uint8Array(body.buffer, body.byteOffset, body.byteLength).slice();
  } else if (body instanceof URLSearchParams) {
    bytes = encoder.encode(body.toString());
    type = 'application/x-www-form-urlencoded;charset=UTF-8';
  } else if (body instanceof Blob) {
    bytes = new Uint8Array(await body.arrayBuffer());
    type = body.type === '' ? null : body.type;
  } else if (body instanceof FormData) {
    // The runtime's own multipart encoder, and the boundary it chose.
    const encoded = new NativeResponse(body);
    type = encoded.headers.get('content-type');
    bytes = new Uint8Array(await encoded.arrayBuffer());
  } else if (body instanceof ReadableStream) {
    if (body.locked) throw new TypeError('fetch: the body stream is locked (already being read)');
    return { kind: 'stream', stream: body, length: declaredLength(headers) };
  } else {
    throw new TypeError(
      `fetch: body must be a string, ArrayBuffer, ArrayBufferView, Blob, URLSearchParams, FormData or ReadableStream, got ${describe(body)}`,
    );
  }
  if (type !== null && !headers.has('content-type')) headers.set('content-type', type);
  return { kind: 'bytes', bytes };
}

/** A stream body's length from the application's Content-Length, or -1 (sent chunked). */
function declaredLength(headers: Headers): number {
  const value = headers.get('content-length');
  if (value === null) return -1;
  if (!/^\d{1,15}$/.test(value.trim())) {
    throw new TypeError(`fetch: content-length must be a whole number of bytes, got ${describe(value)}`);
  }
  return Number(value.trim());
}

/** The body's length when it is known before sending (bytes), else -1; 0 for none. */
export function knownLength(body: RequestBody): number {
  return body.kind === 'bytes' ? body.bytes.length : body.kind === 'stream' ? body.length : 0;
}

/**
 * The request head: request line, Host, the application's fields, then
 * the framing. `bodyLength` is -1 for a chunked body.
 */
export function requestHead(request: OutgoingRequest, bodyLength: number): string {
  const url = request.url;
  let fields = '';
  let host = false;
  let accept = false;
  for (const [name, value] of request.headers) {
    if (CLIENT_FIELDS.has(name)) continue;
    if (name === 'host') host = true;
    else if (name === 'accept') accept = true;
    fields += `${name}: ${value}\r\n`;
  }
  if (!accept) fields += 'accept: */*\r\n';
  const method = request.method;
  if (bodyLength < 0) fields += 'transfer-encoding: chunked\r\n';
  else if (bodyLength > 0 || request.body.kind !== 'none' || method === 'POST' || method === 'PUT') {
    // fetch sends a zero length for a POST or PUT without a body, and none for other methods without one.
    fields += `content-length: ${bodyLength}\r\n`;
  }
  return `${method} ${url.pathname}${url.search} HTTP/1.1\r\n${host ? '' : `host: ${url.host}\r\n`}${fields}\r\n`;
}

/** `head` (Latin-1, as field values are) followed by `body`, in one buffer. */
export function joined(head: string, body: Uint8Array | null): Uint8Array {
  const bodyLength = body === null ? 0 : body.length;
  const out = new Uint8Array(head.length + bodyLength);
  for (let i = 0; i < head.length; i++) out[i] = head.charCodeAt(i);
  if (body !== null) out.set(body, head.length);
  return out;
}

/** A chunk of a chunked body: size line, bytes, CRLF, in one buffer. */
export function chunkOf(chunk: Uint8Array): Uint8Array {
  const line = `${chunk.length.toString(16)}\r\n`;
  const out = new Uint8Array(line.length + chunk.length + 2);
  for (let i = 0; i < line.length; i++) out[i] = line.charCodeAt(i);
  out.set(chunk, line.length);
  out[out.length - 2] = 13;
  out[out.length - 1] = 10;
  return out;
}

export const LAST_CHUNK = '0\r\n\r\n';
