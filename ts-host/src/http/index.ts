/** HTTP/1.1 on the loop: `serve(loop, { fetch })`. See docs/http.md. */
export { serve, HTTP_DEFAULTS } from './server.js';
export type { ServeOptions, HttpServer, ConnectionInfo } from './server.js';
