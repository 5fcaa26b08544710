// The echo benchmarks' load clients, C programs compiled on first use:
// bench/tcp/echo-client.c (TCP) and bench/tls/tls-echo-client.c (TLS,
// OpenSSL), which share bench/tcp/echo-client.h. Both take HOST PORT
// CONNECTIONS MESSAGE_BYTES SECONDS and print one JSON line of results.
import { execFileSync, spawn } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const BENCH = fileURLToPath(new URL('../', import.meta.url));
const BUILD = fileURLToPath(new URL('../../build/', import.meta.url));

/** The TCP client's binary, once `buildEchoClient()` made it. */
export const ECHO_CLIENT = `${BUILD}echo-client`;
/** The TLS client's binary, once `buildTlsEchoClient()` made it. */
export const TLS_ECHO_CLIENT = `${BUILD}tls-echo-client`;

function compile(source, binary, libraries) {
  mkdirSync(BUILD, { recursive: true });
  execFileSync('cc', ['-O2', '-Wall', '-Wextra', '-Werror', '-o', binary, `${BENCH}${source}`, ...libraries]);
}

export function buildEchoClient() {
  compile('tcp/echo-client.c', ECHO_CLIENT, []);
}

export function buildTlsEchoClient() {
  compile('tls/tls-echo-client.c', TLS_ECHO_CLIENT, ['-lssl', '-lcrypto']);
}

/**
 * Runs a client, `binary argv` (argv[1] the port), and resolves to its
 * result, checked: it exited with 0, made round trips, and every byte came
 * back exactly.
 */
export function runEchoClient(binary, argv) {
  return new Promise((resolve, reject) => {
    const child = spawn(binary, argv, { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (d) => {
      out += d;
    });
    child.on('error', reject);
    child.on('close', (code) => {
      try {
        if (code !== 0) throw new Error(`${binary} exited with ${code} against port ${argv[1]}`);
        const result = JSON.parse(out);
        if (result.badBytes !== 0 || result.rounds === 0) throw new Error(`port ${argv[1]}: ${out}`);
        resolve(result);
      } catch (error) {
        reject(error);
      }
    });
  });
}
