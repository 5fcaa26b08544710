/** HTTP/1.1 on the loop: `serve(loop, { fetch })` and `loop.fetch`. See docs/http.md. */
export { serve, HTTP_DEFAULTS } from './server.js';
export type { ServeOptions, HttpServer, ConnectionInfo, RequestLine } from './server.js';
export { HttpClient, createHttpClient, CLIENT_DEFAULTS } from './client.js';
export type { HttpClientOptions, Connector, ConnectTarget } from './client.js';
