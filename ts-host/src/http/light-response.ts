/**
 * A `Response` that defers the runtime's own until something needs it.
 *
 * Node 20 builds a ReadableStream inside every `new Response('...')` (and
 * makes it transferable, the slowest part): several microseconds, about as
 * much as the rest of a small request costs this server
 * (bench/http/fetch-objects.mjs). A handler that returns
 * `new Response('hello')` never reads that stream; the server writes the
 * string. So, as @hono/node-server does, the server may install this class
 * as `globalThis.Response` (`serve({ lightResponse })`, on by default on
 * Node): `new Response(body, init)` with a string, bytes or no body and a
 * plain init only records its arguments (checked as the real constructor
 * checks them); the server reads them directly; any other use of the object
 * (`headers`, `body`, `text()`, `clone()`, ...) builds the real Response
 * from the same arguments, once, and answers from it.
 *
 * `instanceof Response` holds for light and real responses alike, and
 * `Response.json()`, `redirect()` and `error()` behave as the real ones.
 */

/** Where a LightResponse keeps the runtime's class (a second copy of this module finds it there). */
const NATIVE = Symbol.for('wasmloop.http.nativeResponse');
export const NativeResponse: typeof Response =
  (globalThis.Response as unknown as Record<symbol, typeof Response | undefined>)[NATIVE] ?? globalThis.Response;
export const ARGS = Symbol('wasmloop.http.responseArgs');
const REAL = Symbol('wasmloop.http.realResponse');

/** The body and init a light response was made with. */
export interface LightArgs {
  body: string | Uint8Array | null;
  status: number;
  statusText: string;
  /** Plain-object or array fields, as given. */
  headers: Record<string, string> | [string, string][] | undefined;
}

interface Light {
  [ARGS]?: LightArgs;
  [REAL]?: Response;
}

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const BAD_VALUE = /[\r\n\0]/;

/** The recorded arguments if `init` is one the server can write without the real object; else null. */
function lightArgs(body: unknown, init: unknown): LightArgs | null {
  if (body !== null && body !== undefined && typeof body !== 'string' && !(body instanceof Uint8Array)) return null;
  if (init !== undefined && (typeof init !== 'object' || init === null)) return null;
  const { status = 200, statusText = '', headers } = (init ?? {}) as ResponseInit;
  if (typeof status !== 'number' || !Number.isInteger(status) || status < 200 || status > 599) return null;
  if (typeof statusText !== 'string' || BAD_VALUE.test(statusText)) return null;
  if ((status === 204 || status === 205 || status === 304) && body !== null && body !== undefined) return null;
  let fields: LightArgs['headers'];
  if (headers !== undefined) {
    if (Array.isArray(headers)) {
      for (const pair of headers as unknown[]) {
        if (!Array.isArray(pair) || pair.length !== 2 || !plainField(pair[0], pair[1])) return null;
      }
      fields = headers as [string, string][];
    } else if (Object.getPrototypeOf(headers) === Object.prototype) {
      for (const name of Object.keys(headers))
        if (!plainField(name, (headers as Record<string, unknown>)[name])) return null;
      fields = headers as Record<string, string>;
    } else {
      return null; // a Headers object (or another iterable): the real constructor reads it
    }
  }
  return { body: (body ?? null) as string | Uint8Array | null, status, statusText, headers: fields };
}

function plainField(name: unknown, value: unknown): boolean {
  return typeof name === 'string' && typeof value === 'string' && TOKEN.test(name) && !BAD_VALUE.test(value);
}

/** The real Response behind `response`, made the first time it is needed. */
function real(response: object): Response {
  const light = response as Light;
  let made = light[REAL];
  if (made === undefined) {
    const args = light[ARGS];
    made =
      args === undefined
        ? new NativeResponse()
        : new NativeResponse(args.body as BodyInit | null, {
            status: args.status,
            statusText: args.statusText,
            headers: args.headers,
          });
    light[REAL] = made;
    light[ARGS] = undefined;
  }
  return made;
}

export const LightResponse = function Response(this: Light, body?: unknown, init?: unknown): Response {
  if (new.target === undefined) throw new TypeError("Class constructor Response cannot be invoked without 'new'");
  const args = lightArgs(body, init);
  if (args !== null) this[ARGS] = args;
  // Anything the server cannot write as it is gets the real object now
  // (its checks, its errors, its reading of streams and Headers).
  else this[REAL] = new NativeResponse(body as BodyInit | null | undefined, init as ResponseInit | undefined);
  return this as unknown as Response;
} as unknown as typeof Response;

const prototype = Object.create(NativeResponse.prototype) as object;
Object.defineProperty(LightResponse, 'prototype', { value: prototype });
Object.defineProperty(prototype, 'constructor', { value: LightResponse, writable: true, configurable: true });

const answeredHere: PropertyDescriptorMap = {
  status: {
    get(this: Light) {
      return this[ARGS]?.status ?? real(this).status;
    },
  },
  ok: {
    get(this: Light) {
      const s = this[ARGS]?.status ?? real(this).status;
      return s >= 200 && s <= 299;
    },
  },
  statusText: {
    get(this: Light) {
      return this[ARGS]?.statusText ?? real(this).statusText;
    },
  },
  bodyUsed: {
    get(this: Light) {
      return this[ARGS] === undefined ? real(this).bodyUsed : false;
    },
  },
};
for (const key of Reflect.ownKeys(NativeResponse.prototype)) {
  if (key === 'constructor' || key === Symbol.toStringTag || (typeof key === 'string' && key in answeredHere)) continue;
  const descriptor = Reflect.getOwnPropertyDescriptor(NativeResponse.prototype, key) as PropertyDescriptor;
  if (typeof descriptor.value === 'function') {
    const method = descriptor.value as (...args: unknown[]) => unknown;
    answeredHere[key as string] = {
      value(this: object, ...args: unknown[]) {
        return method.apply(real(this), args);
      },
      writable: true,
      configurable: true,
    };
  } else if (descriptor.get !== undefined) {
    const getter = descriptor.get;
    answeredHere[key as string] = {
      get(this: object) {
        return getter.call(real(this));
      },
      configurable: true,
    };
  }
}
Object.defineProperties(prototype, answeredHere);

Object.setPrototypeOf(LightResponse, NativeResponse);
Object.defineProperty(LightResponse, NATIVE, { value: NativeResponse });
Object.defineProperty(LightResponse, Symbol.hasInstance, {
  value: (value: unknown) =>
    value instanceof NativeResponse ||
    (typeof value === 'object' && value !== null && Object.prototype.isPrototypeOf.call(prototype, value)),
});
Object.defineProperty(LightResponse, 'json', {
  value(data: unknown, init?: ResponseInit): Response {
    const text = JSON.stringify(data);
    if (text === undefined) return NativeResponse.json(data, init);
    const headers = init?.headers;
    const plain =
      headers === undefined || (typeof headers === 'object' && Object.getPrototypeOf(headers) === Object.prototype);
    const named =
      plain && headers !== undefined && Object.keys(headers).some((n) => n.toLowerCase() === 'content-type');
    if (!plain) return NativeResponse.json(data, init);
    return new LightResponse(text, {
      ...init,
      headers: named ? headers : { ...(headers as object), 'content-type': 'application/json' },
    });
  },
  writable: true,
  configurable: true,
});

/** The recorded arguments of a light response not yet made real, or undefined. */
export function lightArgsOf(response: object): LightArgs | undefined {
  return (response as Light)[ARGS];
}

/** The real Response a light one was made into, or the response itself. */
export function realOf(response: Response): Response {
  return (response as Light)[REAL] ?? response;
}

/** Installs LightResponse as `globalThis.Response` (once). */
export function installLightResponse(): void {
  if (globalThis.Response !== LightResponse) {
    Object.defineProperty(globalThis, 'Response', {
      value: LightResponse,
      writable: true,
      configurable: true,
      enumerable: false,
    });
  }
}

/**
 * True where the runtime's Response is the costly kind this replaces: Node
 * itself (not Bun, Deno or workerd, which answer to some of Node's names;
 * workerd must get real Responses back from its handlers anyway).
 */
export function lightResponseHelps(): boolean {
  const g = globalThis as {
    process?: { release?: { name?: string }; versions?: { node?: string; bun?: string } };
    Deno?: unknown;
    navigator?: { userAgent?: string };
  };
  const p = g.process;
  return (
    p?.release?.name === 'node' &&
    typeof p.versions?.node === 'string' &&
    p.versions.bun === undefined &&
    g.Deno === undefined &&
    g.navigator?.userAgent !== 'Cloudflare-Workers'
  );
}
