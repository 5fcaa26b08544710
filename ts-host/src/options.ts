/**
 * Options objects: every options object the public API takes goes through
 * `checkOptions`, so an unknown key is a TypeError naming it (with the key
 * the caller probably meant), never silently ignored. A user who passes
 * `{ ssl: ... }` must not get plaintext.
 *
 *     const o = checkOptions('createServer', options, SERVER_OPTIONS);
 *     // TypeError: createServer: unknown option 'ssl' (did you mean 'tls'?)
 */
import { describe } from './errors.js';

/**
 * Names other libraries use for options we have under another name:
 * Node's, asyncio's and uvicorn's spellings of ours.
 */
const KNOWN_ALIASES: Readonly<Record<string, string>> = {
  ssl: 'tls',
  ssl_context: 'tls',
  secure: 'tls',
  reuse_port: 'reusePort',
  reuseAddress: 'reusePort',
  exclusive: 'reusePort',
  timeout: 'idleTimeoutMs',
  idleTimeout: 'idleTimeoutMs',
  keepAliveTimeout: 'keepAliveTimeoutMs',
  maxconn: 'maxConnections',
  limit_concurrency: 'maxConnections',
  server_hostname: 'servername',
  serverName: 'servername',
  ALPNProtocols: 'alpnProtocols',
  local_addr: 'localAddress',
  remote_addr: 'remoteAddress',
  hostname: 'host',
  address: 'host',
};

/**
 * Checks that `options` is an object (or undefined, when `optional`) whose
 * own enumerable keys are all in `known`; returns it (or `{}`). An unknown
 * key is a TypeError that names it and, where one is close, the known key
 * meant.
 */
export function checkOptions<T extends object>(
  operation: string,
  options: T | undefined,
  known: readonly string[],
  optional = true,
): T {
  if (options === undefined && optional) return {} as T;
  if (typeof options !== 'object' || options === null || Array.isArray(options)) {
    throw new TypeError(`${operation}: options must be an object, got ${describe(options)}`);
  }
  for (const key of Object.keys(options)) {
    if (known.includes(key)) continue;
    const meant = suggestion(key, known);
    throw new TypeError(
      `${operation}: unknown option '${key}'` +
        (meant === null ? ` (known: ${known.join(', ')})` : ` (did you mean '${meant}'?)`),
    );
  }
  return options;
}

/** The known name `key` most likely meant, or null. */
export function suggestion(key: string, known: readonly string[]): string | null {
  const alias = Object.hasOwn(KNOWN_ALIASES, key) ? KNOWN_ALIASES[key] : undefined;
  if (alias !== undefined && known.includes(alias)) return alias;
  const lower = key.toLowerCase().replace(/[_-]/g, '');
  let best: string | null = null;
  let bestDistance = Infinity;
  for (const name of known) {
    const candidate = name.toLowerCase();
    if (candidate === lower) return name;
    const d = editDistance(lower, candidate);
    if (d < bestDistance) {
      bestDistance = d;
      best = name;
    }
  }
  // A typo, not a different word: at most 2 edits, and fewer than a third of the name.
  return best !== null && bestDistance <= Math.min(2, Math.floor(best.length / 3)) ? best : null;
}

/** Levenshtein distance (insertions, deletions and substitutions). */
function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      current[j] = Math.min(
        (previous[j] as number) + 1,
        (current[j - 1] as number) + 1,
        (previous[j - 1] as number) + cost,
      );
    }
    previous = current;
  }
  return previous[b.length] as number;
}
