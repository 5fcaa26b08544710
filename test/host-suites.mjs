// The shared I/O suites on Deno or Bun, each on its own completion backend
// (and on its node:net and the virtual network), as `make test-io-hosts`
// runs them:
//
//   node_modules/.bin/deno run -A test/host-suites.mjs [SUITE ...]
//   node_modules/.bin/bun test/host-suites.mjs [SUITE ...]
//
// uvu's command line loads suites with require() on Bun, which cannot load
// ES modules that await; its runner module (uvu/run) imports them instead.
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { run } from '../node_modules/uvu/run/index.mjs';

/** The suites that use the network, on every backend that has one. */
export const IO_SUITES = [
  'host-backends',
  'io',
  'lifecycle',
  'protocols',
  'servers',
  'limits',
  'limits-sockopts',
  'datagrams',
  'stale-socket',
  'http-conformance',
  'http-backpressure',
  // TLS: the host's own node:tls over the loop's transports.
  'tls',
  'tls-protocols',
  'tls-starttls',
  'tls-virtual',
  'limits-tls',
  'https',
];

const here = dirname(fileURLToPath(import.meta.url));
const names = process.argv.slice(2).length > 0 ? process.argv.slice(2) : IO_SUITES;
await run(names.map((name) => ({ name: `${name}.test.mjs`, file: join(here, `${name}.test.mjs`) })));
