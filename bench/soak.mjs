// Soak: a TCP echo load on each backend for a bounded time (default one
// minute each): the C client checks every byte comes back in order, and the
// server's memory is sampled to show it stays flat after warm-up. Exits
// non-zero on lost or reordered bytes or growing memory.
//
//   node bench/soak.mjs [--seconds S] [--results FILE]
import { execFileSync, spawn } from 'node:child_process';
import { putSection } from './results-section.mjs';
import { ECHO_CLIENT, buildEchoClient } from './tcp/clients.mjs';
import { residentBytes } from './tcp/proc.mjs';
import { fileURLToPath } from 'node:url';

const here = fileURLToPath(new URL('.', import.meta.url));
const args = process.argv.slice(2);
const option = (name, fallback) => {
  const i = args.indexOf(name);
  return i === -1 ? fallback : args[i + 1];
};
const SECONDS = Number(option('--seconds', 60));
const RESULTS = option('--results', null);
const CHUNK = 5;
/**
 * Flat after warm-up: the last third of the samples may exceed the middle
 * third by at most this much, both at its lowest sample and at its highest
 * (a heap that settles after growing is fine; one that keeps growing is a
 * leak). Either alone misleads: RSS swings by 15 to 20 MiB between the
 * 64-byte and the 16 KiB phases and with collections, so one sample caught
 * before a collection is a spike in the peaks, and a heap that has not yet
 * handed back what a 16 KiB phase grew keeps the 64-byte samples high for a
 * while, which lifts the floor late in a run. Memory a leak keeps raises
 * every sample, the lowest and the highest.
 */
const SLACK_BYTES = 8 * 1024 * 1024;

buildEchoClient();

/** The server's resident memory: the soak's measure, so it cannot go without. */
function rss(pid) {
  const bytes = residentBytes(pid);
  if (bytes === null)
    throw new Error(`soak: cannot read the resident memory of process ${pid} (it needs Linux's /proc)`);
  return bytes;
}

async function soak(backend, port) {
  const server = spawn(process.execPath, [`${here}tcp/wasmloop-echo.mjs`, backend, String(port)], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  await new Promise((resolve, reject) => {
    server.stdout.on('data', (d) => String(d).includes('ready') && resolve());
    server.on('exit', (code) => reject(new Error(`${backend} server exited with ${code}`)));
  });
  const samples = [];
  let rounds = 0;
  let bytes = 0;
  let bad = 0;
  const chunks = Math.max(6, Math.round(SECONDS / CHUNK));
  for (let c = 0; c < chunks; c++) {
    // Alternate small and large messages on 50 connections.
    const size = c % 2 === 0 ? 64 : 16 * 1024;
    const out = JSON.parse(
      execFileSync(ECHO_CLIENT, ['127.0.0.1', String(port), '50', String(size), String(CHUNK)], { encoding: 'utf8' }),
    );
    rounds += out.rounds;
    bytes += out.rounds * size * 2;
    bad += out.badBytes;
    samples.push(rss(server.pid));
  }
  server.kill('SIGTERM');
  const third = Math.floor(samples.length / 3);
  const middle = samples.slice(third, 2 * third);
  const last = samples.slice(2 * third);
  const growth = Math.min(Math.min(...last) - Math.min(...middle), Math.max(...last) - Math.max(...middle));
  return { backend, seconds: chunks * CHUNK, rounds, bytes, bad, samples, growth };
}

const results = [];
let port = 21_000 + Math.floor(Math.random() * 1000);
/** Each backend by its name in the report, and the spec the server loads. */
const BACKENDS = {
  selector: 'selector',
  completion: 'completion',
  // The completion backend's portable implementation.
  'completion on node:net': `${here}../ts-host/dist/backends/completion.js:createNetCompletionBackend`,
};
for (const [name, spec] of Object.entries(BACKENDS)) {
  const r = { ...(await soak(spec, ++port)), backend: name };
  results.push(r);
  const mib = (x) => (x / 2 ** 20).toFixed(1);
  console.log(
    `soak ${name}: ${r.seconds} s, ${r.rounds.toLocaleString('en')} round trips, ${mib(r.bytes)} MiB echoed, ` +
      `${r.bad} bad bytes; server RSS ${r.samples.map(mib).join(' ')} MiB (growth of the last third over the middle third, at its lowest and highest samples, the smaller: ${mib(r.growth)} MiB)`,
  );
}
let failed = false;
for (const r of results) {
  if (r.bad !== 0) {
    console.error(`soak: FAILED: ${r.backend} echoed ${r.bad} wrong bytes`);
    failed = true;
  }
  if (r.growth > SLACK_BYTES) {
    console.error(
      `soak: FAILED: ${r.backend} kept growing: ${r.growth} bytes more in the last third than in the middle third`,
    );
    failed = true;
  }
}
if (RESULTS !== null) {
  const lines = results.map(
    (r) =>
      `- \`${r.backend}\`: ${r.seconds} s of 50 connections (64-byte and 16 KiB messages, alternating every ${CHUNK} s): ` +
      `${r.rounds.toLocaleString('en')} round trips, ${(r.bytes / 2 ** 20).toFixed(0)} MiB echoed, ${r.bad} bytes lost or reordered; ` +
      `server RSS every ${CHUNK} s (MiB): ${r.samples.map((x) => (x / 2 ** 20).toFixed(0)).join(', ')}; ` +
      `growth of the last third over the middle third (the smaller of the two at their lowest and at their highest samples): ${(r.growth / 2 ** 20).toFixed(1)} MiB (flat: at most ${SLACK_BYTES / 2 ** 20}).`,
  );
  putSection(RESULTS, 'Soak', `(\`make soak\`, ${new Date().toISOString().slice(0, 10)})\n\n${lines.join('\n')}`);
}
process.exit(failed ? 1 : 0);
