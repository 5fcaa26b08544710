// The HTTP benchmark's two response bodies, the same bytes from every
// JavaScript server (asgi_app.py builds the same for uvicorn), and the
// check the benchmark applies to what each server sends back.
export const HELLO = 'Hello, World!';

/** 64 KiB: byte i is 'a' + i % 26. */
export const BIG = Uint8Array.from({ length: 64 * 1024 }, (_, i) => 97 + (i % 26));

/** The body `path` must answer with. */
export const expectedBody = (path) => (path === '/64k' ? BIG : new TextEncoder().encode(HELLO));
