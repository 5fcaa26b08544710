// The packed tarball, installed as a user installs it: `npm pack`, then
// `npm install <tarball>` into a fresh project outside the repository. Every
// check under test/pack/ works on such a project, never on the source tree.
// The tarball is packed once per process; each caller gets a project of its own.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = fileURLToPath(new URL('../..', import.meta.url));
export const BIN = join(ROOT, 'node_modules/.bin');

let packed = null;
const scratch = [];

/** `npm pack` of the repository (built by make): { dir, tarball, files, info }. */
export function pack() {
  if (packed !== null) return packed;
  const dir = mkdtempSync(join(tmpdir(), 'wasmloop-pack-'));
  scratch.push(dir);
  // make has built everything prepack would; scripts off keeps npm from running it again.
  const out = execFileSync('npm', ['pack', '--json', '--ignore-scripts', '--pack-destination', dir], {
    cwd: ROOT,
    encoding: 'utf8',
  });
  const [info] = JSON.parse(out);
  packed = { dir, tarball: join(dir, info.filename), files: info.files.map((f) => f.path), info };
  return packed;
}

/**
 * A fresh project with the tarball installed (offline: the package has no
 * dependencies), and `files` ({ name: text }) written into it. Resolves to
 * its directory, removed when the process exits.
 */
export function installedProject(name, files = {}) {
  const { dir, tarball } = pack();
  // A directory of its own: several checks in one process may share a name.
  const project = mkdtempSync(join(dir, `${name}-`));
  writeFileSync(join(project, 'package.json'), JSON.stringify({ name, private: true, type: 'module' }, null, 2));
  execFileSync('npm', ['install', '--no-audit', '--no-fund', '--offline', tarball], { cwd: project, stdio: 'pipe' });
  for (const [file, text] of Object.entries(files)) writeFileSync(join(project, file), text);
  return project;
}

process.on('exit', () => {
  for (const dir of scratch) rmSync(dir, { recursive: true, force: true });
});

/**
 * A user's program that runs unchanged on every host: a loop from a plain
 * `createLoop()`, a few timers (one cancelled) and a callSoon, then what the
 * loop chose and what its loader compiled.
 */
export const APP = `import { createLoop, loadedCore } from 'wasmloop';

export async function run() {
  const loop = await createLoop();
  const order = [];
  loop.callLater(20, () => order.push('timer 20 ms'));
  loop.callLater(10, () => order.push('timer 10 ms'));
  loop.callLater(15, () => order.push('cancelled')).cancel();
  loop.callSoon(() => order.push('soon'));
  await loop.runUntilComplete(() => loop.sleep(30));
  const backend = loop.backend;
  await loop.close();
  return { backend, order, core: loadedCore() };
}
`;

/** What APP's timers must log, on any host. */
export const APP_ORDER = ['soon', 'timer 10 ms', 'timer 20 ms'];
