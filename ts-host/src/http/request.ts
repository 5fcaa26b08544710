/**
 * The `Request` a handler gets, built on demand. Node 20's `new Request()`
 * with a few headers costs several microseconds (bench/http/fetch-objects.mjs),
 * more than the rest of a small request's path; most handlers read the
 * method and URL, some a header or the body, few everything. So the object
 * handed over inherits from `Request.prototype` (`instanceof Request`
 * holds), answers `method`, `url`, `headers`, `signal`, `body` and the body
 * readers itself, and builds a real Request only for what it does not
 * answer (`clone()`, `formData()`, `cache`, ...).
 *
 * The body is the exchange's: chunks as they arrive, pulled with
 * backpressure (see `exchange.ts`).
 */
import type { RequestHead } from './head.js';

/** What a lazy request needs from its exchange. */
export interface RequestSource {
  readonly head: RequestHead;
  /** The authority to use when the request has no Host (the server's address). */
  readonly defaultHost: string;
  /** The connection is TLS: the URL is https:. */
  readonly secure: boolean;
  /** True if the request has a body (chunked, or a Content-Length above 0). */
  readonly hasBody: boolean;
  /** The body as a stream (made once). */
  bodyStream(): ReadableStream<Uint8Array>;
  /** The whole body, once it has arrived. */
  bodyBytes(): Promise<Uint8Array>;
  /** True once the body was read whole (a stream's readers lock it instead). */
  readonly bodyTaken: boolean;
  /** Aborts when the client goes away before the response is complete. */
  signal(): AbortSignal;
}

const SOURCE = Symbol('wasmloop.http.source');
const URL_ = Symbol('wasmloop.http.url');
const HEADERS = Symbol('wasmloop.http.headers');
const REAL = Symbol('wasmloop.http.request');

/** What a lazy request made so far lives on the object itself (one allocation). */
interface LazyRequest {
  [SOURCE]: RequestSource;
  [URL_]: string | undefined;
  [HEADERS]: Headers | undefined;
  [REAL]: Request | undefined;
}

/** Targets that are already what URL serialization would give. */
const PLAIN_TARGET = /^\/(?:[A-Za-z0-9\-._~!$&()*+,;=:@/?]|%[0-9A-F]{2})*$/;
const PLAIN_HOST = /^[a-z0-9\-.]+(?::[0-9]{1,5})?$/;

/** The request's absolute URL (RFC 9112 section 3.3): https: on a TLS connection (`secure`). */
export function requestUrl(head: RequestHead, defaultHost: string, secure = false): string {
  const target = head.target();
  const scheme = secure ? 'https' : 'http';
  if (target.charCodeAt(0) !== 47 /* / */) {
    // absolute-form carries its own authority; asterisk-form (OPTIONS *) has none.
    const absolute = target === '*' ? `${scheme}://${head.host() || defaultHost}/*` : target;
    return new URL(absolute).href;
  }
  const host = head.host() || defaultHost;
  if (host === lastUrl.host && target === lastUrl.target && secure === lastUrl.secure) return lastUrl.url;
  const url = `${scheme}://${host}${target}`;
  // Only a plain target and host skip URL's normalization (dot segments,
  // percent-encoding, case, the default port).
  if ((target.length === 1 || (PLAIN_TARGET.test(target) && !target.includes('/.'))) && plainHost(host, secure)) {
    if (target.length <= 64) lastUrl = { host, target, secure, url };
    return url;
  }
  return new URL(url).href;
}

/** The last plain URL `requestUrl` made, and what it was made of (a short target only). */
let lastUrl = { host: '', target: '', secure: false, url: '' };

/** The last host `plainHost` passed, for http: and for https: (a connection's requests name the same one). */
let plainHttp = '';
let plainHttps = '';

/** `host` needs no normalization: lowercase, no default port for the scheme. */
function plainHost(host: string, secure: boolean): boolean {
  if (host === (secure ? plainHttps : plainHttp)) return true;
  if (!PLAIN_HOST.test(host) || host.endsWith(secure ? ':443' : ':80')) return false;
  if (secure) plainHttps = host;
  else plainHttp = host;
  return true;
}

function source(request: object): RequestSource {
  const s = (request as Partial<LazyRequest>)[SOURCE];
  if (s === undefined) throw new TypeError('Illegal invocation');
  return s;
}

function cache(request: object): LazyRequest {
  source(request);
  return request as LazyRequest;
}

function headersOf(request: object): Headers {
  const c = cache(request);
  c[HEADERS] ??= new Headers(c[SOURCE].head.fields());
  return c[HEADERS];
}

function urlOf(request: object): string {
  const c = cache(request);
  if (c[URL_] === undefined) {
    const s = c[SOURCE];
    c[URL_] = requestUrl(s.head, s.defaultHost, s.secure);
  }
  return c[URL_];
}

/** The real Request, made the first time something needs it. */
function real(request: object): Request {
  const c = cache(request);
  if (c[REAL] === undefined) {
    const s = c[SOURCE];
    const method = s.head.method();
    const init: RequestInit & { duplex?: 'half' } = { method, headers: headersOf(request), signal: s.signal() };
    if (s.hasBody && method !== 'GET' && method !== 'HEAD') {
      init.body = s.bodyStream();
      init.duplex = 'half';
    }
    c[REAL] = new Request(urlOf(request), init);
  }
  return c[REAL];
}

const prototype = Object.create(Request.prototype) as object;

const own: PropertyDescriptorMap = {
  method: {
    get(this: object) {
      return source(this).head.method();
    },
  },
  url: {
    get(this: object) {
      return urlOf(this);
    },
  },
  headers: {
    get(this: object) {
      return headersOf(this);
    },
  },
  signal: {
    get(this: object) {
      return source(this).signal();
    },
  },
  body: {
    get(this: object) {
      const c = cache(this);
      if (c[REAL] !== undefined) return c[REAL].body;
      return c[SOURCE].hasBody ? c[SOURCE].bodyStream() : null;
    },
  },
  bodyUsed: {
    get(this: object) {
      const c = cache(this);
      if (c[REAL] !== undefined) return c[REAL].bodyUsed;
      const s = c[SOURCE];
      return s.bodyTaken || (s.hasBody && s.bodyStream().locked);
    },
  },
  arrayBuffer: {
    value(this: object) {
      return bytes(this).then((b) => b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
    },
  },
  bytes: {
    value(this: object) {
      return bytes(this).then((b) => (b.byteOffset === 0 && b.byteLength === b.buffer.byteLength ? b : b.slice()));
    },
  },
  text: {
    value(this: object) {
      return bytes(this).then((b) => new TextDecoder().decode(b));
    },
  },
  json: {
    value(this: object) {
      return bytes(this).then((b) => JSON.parse(new TextDecoder().decode(b)) as unknown);
    },
  },
  blob: {
    value(this: object) {
      const type = headersOf(this).get('content-type') ?? '';
      return bytes(this).then((b) => new Blob([b as Uint8Array<ArrayBuffer>], { type }));
    },
  },
};

/** The body whole, without a stream when nothing else took it. */
function bytes(request: object): Promise<Uint8Array> {
  const c = cache(request);
  if (c[REAL] !== undefined) return c[REAL].arrayBuffer().then((b) => new Uint8Array(b));
  const s = c[SOURCE];
  if (s.bodyTaken) return Promise.reject(new TypeError('Body is unusable: Body has already been read'));
  return s.hasBody ? s.bodyBytes() : Promise.resolve(new Uint8Array(0));
}

// Everything else Request has goes to the real one.
for (const key of Reflect.ownKeys(Request.prototype)) {
  if (key === 'constructor' || key === Symbol.toStringTag || (typeof key === 'string' && key in own)) continue;
  const descriptor = Reflect.getOwnPropertyDescriptor(Request.prototype, key) as PropertyDescriptor;
  if (typeof descriptor.value === 'function') {
    const method = descriptor.value as (...args: unknown[]) => unknown;
    own[key as string] = {
      value(this: object, ...args: unknown[]) {
        return method.apply(real(this), args);
      },
    };
  } else if (descriptor.get !== undefined) {
    const getter = descriptor.get;
    own[key as string] = {
      get(this: object) {
        return getter.call(real(this));
      },
    };
  }
}
Object.defineProperties(prototype, own);

/** A Request over `source`, built on demand. */
export function lazyRequest(from: RequestSource): Request {
  const request = Object.create(prototype) as LazyRequest;
  request[SOURCE] = from;
  request[URL_] = undefined;
  request[HEADERS] = undefined;
  request[REAL] = undefined;
  return request as unknown as Request;
}

/**
 * The request line's target and HTTP version (`'1.1'`) of a request this
 * server made, for access logs (a Request has neither); null for any other.
 */
export function requestLineOf(request: Request): { target: string; version: string } | null {
  const s = (request as Partial<LazyRequest>)[SOURCE];
  return s === undefined ? null : { target: s.head.target(), version: s.head.minor === 0 ? '1.0' : '1.1' };
}
