/**
 * TCP and Unix-socket streams over the loop: `Server` and `Connection`, the
 * API the loop offers (`createServer`, `createConnection`). The work is
 * split by job:
 *
 * - `connection.ts`: the Connection interface and the reads every model
 *   shares (framed reads, web streams, one pending read, cancelling);
 * - `server.ts`: what servers share (accepted connections, close,
 *   closeClients/abortClients, running a handler) and connects in progress;
 * - `stream-readiness.ts`: both on the readiness model (a descriptor the
 *   program reads and writes on demand);
 * - `stream-completion.ts`: both on the completion model (the host reads
 *   and writes, the loop orders its completions);
 * - `io-common.ts`: errors, bytes and signals for every I/O file.
 *
 * Either way, every completion reaches the program as a callback the loop
 * core ordered: a watcher (readiness) or an expected completion
 * (completion) in the iteration's batch, after timers.
 */
export { type Connection, CHUNK_BYTES, HIGH_WATER_MARK, LINGER_MS } from './connection.js';
export {
  type IoLoop,
  type IoToken,
  abortable,
  checkSignal,
  errnoName,
  fromHostError,
  ioError,
  toBytes,
} from './io-common.js';
export {
  type Accepted,
  type ConnectTarget,
  type ConnectionHandler,
  type ListenTarget,
  type Server,
  BaseServer,
} from './server.js';
export { connectReadiness, connectReadinessWith, listenReadiness, listenReadinessWith } from './stream-readiness.js';
export {
  connectCompletion,
  connectCompletionWith,
  listenCompletion,
  listenCompletionWith,
  writeToHost,
} from './stream-completion.js';
