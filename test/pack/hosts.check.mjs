// The user path on each host, from the packed tarball installed into a
// scratch project: the same program (scratch.mjs APP: `import { createLoop }
// from 'wasmloop'`, a few timers) on Node, Deno and Bun as scripts, in
// workerd from the config docs/hosts.md gives, and in Chromium through an
// import map and through a bundle esbuild made. Each reports the backend
// `auto` picked and the sha256 of the core modules its loader compiled; the
// reports land in build/pack-report.json for `make readme`.
import { suite } from '../harness.mjs';
import * as assert from 'uvu/assert';
import { execFileSync, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { cpSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { createServer as createNetServer } from 'node:net';
import { join } from 'node:path';
import { APP, APP_ORDER, BIN, ROOT, installedProject } from './scratch.mjs';
import { inChromium } from '../chromium.mjs';

const CORE_FILES = ['core.core.wasm', 'core.core2.wasm', 'core.core3.wasm'];
const sha256 = (bytes) => createHash('sha256').update(bytes).digest('hex');
const MAIN = "import { run } from './app.mjs';\nconsole.log(JSON.stringify(await run()));\n";

const project = installedProject('app', { 'app.mjs': APP, 'main.mjs': MAIN });
const installed = join(project, 'node_modules/wasmloop');
/** sha256 of the core modules in the installed package: what every host must compile. */
const shipped = Object.fromEntries(
  CORE_FILES.map((f) => [f, sha256(readFileSync(join(installed, 'ts-host/dist/generated', f)))]),
);
const reports = {};

// Each case starts a host from the tarball (Deno, Bun, workerd, a browser):
// seconds each, many more on a loaded machine, so the limit against a hang
// is long.
const hosts = suite('pack: the user path on each host, from the tarball', {}, { timeLimitMs: 120_000 });

hosts.after(() => {
  mkdirSync(join(ROOT, 'build'), { recursive: true });
  writeFileSync(
    join(ROOT, 'build/pack-report.json'),
    JSON.stringify({ date: new Date().toISOString(), shipped, reports }, null, 2),
  );
});

/** Checks a host's APP report: the timers ran in order, and it compiled the shipped core. */
function checkApp(name, report, auto) {
  assert.not.ok(report.error, `${name}: ${report.error}`);
  assert.equal(report.order, APP_ORDER, `${name}: the timers fired in order, the cancelled one not at all`);
  assert.is(report.backend, auto, `${name}: auto picks ${auto}`);
  assert.equal(
    report.core.map((m) => m.file),
    CORE_FILES,
    `${name} compiled every core module`,
  );
  for (const module of report.core) {
    assert.is(
      module.sha256,
      shipped[module.file],
      `${name} compiled the package's ${module.file} (from ${module.from})`,
    );
    assert.is(module.size, readFileSync(join(installed, 'ts-host/dist/generated', module.file)).length);
  }
}

const script = (name, command, args, auto, path) =>
  hosts(`${name}: a script importing 'wasmloop' from node_modules`, () => {
    const report = JSON.parse(execFileSync(command, [...args, 'main.mjs'], { cwd: project, encoding: 'utf8' }));
    reports[name] = { path, ...report };
    checkApp(name, report, auto);
    for (const module of report.core)
      assert.ok(
        module.from.startsWith(`file://${installed}/`),
        `${name} read ${module.file} from the installed package`,
      );
  });

script('node', process.execPath, [], 'selector', '`node main.mjs`');
script(
  'deno',
  join(BIN, 'deno'),
  ['run', '--allow-read', '--allow-env', '--allow-sys', '--allow-net'],
  'completion',
  '`deno run main.mjs` (node_modules)',
);
script('bun', join(BIN, 'bun'), [], 'completion', '`bun main.mjs`');

/** A TCP port free right now on 127.0.0.1. */
function freePort() {
  return new Promise((resolve, reject) => {
    const server = createNetServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

/** The workerd config docs/hosts.md gives (its one capnp block), listening on `address`. */
function documentedWorkerdConfig(address) {
  const docs = readFileSync(join(ROOT, 'docs/hosts.md'), 'utf8');
  const block = /```capnp\n([\s\S]*?)```/.exec(docs);
  if (block === null) throw new Error('docs/hosts.md has no ```capnp block');
  const config = block[1].replace('"*:8080"', JSON.stringify(address));
  assert.ok(config.includes(address), 'the documented config listens on *:8080');
  return config;
}

/** Serves `config.capnp` in `dir` with workerd; resolves to the JSON body of GET / (then stops it). */
async function workerdResponse(dir, port) {
  const child = spawn(join(BIN, 'workerd'), ['serve', 'config.capnp'], { cwd: dir });
  let log = '';
  child.stdout.on('data', (d) => (log += d));
  child.stderr.on('data', (d) => (log += d));
  try {
    const deadline = Date.now() + 60_000;
    for (;;) {
      if (child.exitCode !== null) throw new Error(`workerd exited with ${child.exitCode}:\n${log}`);
      try {
        return await (await fetch(`http://127.0.0.1:${port}/`)).json();
      } catch (error) {
        if (Date.now() > deadline) throw new Error(`workerd did not answer: ${error.message}\n${log}`);
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    }
  } finally {
    child.kill('SIGKILL');
  }
}

const WORKER = `${APP}
export default {
  async fetch() {
    try {
      return Response.json(await run());
    } catch (error) {
      return Response.json({ error: String(error && error.stack ? error.stack : error) });
    }
  },
};
`;

hosts("workerd: a Worker importing 'wasmloop', served from the documented config", async () => {
  writeFileSync(join(project, 'worker.js'), WORKER);
  const port = await freePort();
  writeFileSync(join(project, 'config.capnp'), documentedWorkerdConfig(`127.0.0.1:${port}`));
  const report = await workerdResponse(project, port);
  // workerd compiles the files the config embeds and gives no bytes back.
  assert.equal(
    report.core?.map((m) => m.from),
    CORE_FILES.map(() => 'module binding'),
    'the core came from module bindings',
  );
  const embedded = [...documentedWorkerdConfig('x').matchAll(/wasm = embed "([^"]+)"/g)].map((m) => m[1]);
  assert.equal(
    embedded.map((path) => sha256(readFileSync(join(project, path)))),
    CORE_FILES.map((f) => shipped[f]),
    'the config embeds the shipped core',
  );
  report.core = CORE_FILES.map((file, i) => ({
    file,
    from: `config: ${embedded[i]}`,
    size: readFileSync(join(project, embedded[i])).length,
    sha256: shipped[file],
  }));
  reports.workerd = { path: 'a Worker, workerd config from docs/hosts.md', ...report };
  checkApp('workerd', report, 'completion');
});

hosts('workerd: the default entry, bundled without the workerd condition, says what to do', async () => {
  const dir = join(project, 'plain-worker');
  mkdirSync(dir);
  writeFileSync(join(dir, 'worker.js'), WORKER);
  // A bundler that does not pick the workerd condition gets the default entry.
  execFileSync(
    join(BIN, 'esbuild'),
    [
      'worker.js',
      '--bundle',
      '--format=esm',
      '--platform=neutral',
      '--external:node:*',
      '--outfile=bundle.js',
      '--log-level=error',
    ],
    { cwd: dir },
  );
  const port = await freePort();
  writeFileSync(
    join(dir, 'config.capnp'),
    `using Workerd = import "/workerd/workerd.capnp";
const config :Workerd.Config = (
  services = [ (name = "main", worker = .worker) ],
  sockets = [ (name = "http", address = "127.0.0.1:${port}", http = (), service = "main") ],
);
const worker :Workerd.Worker = (
  modules = [ (name = "worker.js", esModule = embed "bundle.js") ],
  compatibilityDate = "2026-11-01",
);
`,
  );
  const report = await workerdResponse(dir, port);
  assert.match(report.error ?? '', /workerd compiles no Wasm from bytes/);
  assert.match(report.error, /`workerd` export condition/);
  assert.match(report.error, /coreModules/);
});

/** Opens `path` of `dir` in headless Chromium; resolves to window.report, with the browser's version. */
async function inChromiumPage(dir, path) {
  const { version, pages } = await inChromium(dir, [path]);
  const [{ report, errors }] = pages;
  assert.equal(errors, [], 'no errors in the page');
  return { ...report, version };
}

const PAGE_SCRIPT = (src) => `<script type="module">
  import { run } from '${src}';
  try {
    window.report = await run();
  } catch (error) {
    window.report = { error: String(error && error.stack ? error.stack : error) };
  }
</script>`;

hosts("chromium: a page importing 'wasmloop' through an import map", async () => {
  writeFileSync(
    join(project, 'index.html'),
    `<!doctype html>
<script type="importmap">
  { "imports": { "wasmloop": "./node_modules/wasmloop/ts-host/dist/wasmloop.browser.js" } }
</script>
${PAGE_SCRIPT('./app.mjs')}
`,
  );
  const report = await inChromiumPage(project, 'index.html');
  reports['chromium (import map)'] = { path: 'import map to the `browser` entry', ...report };
  checkApp('chromium (import map)', report, 'clock');
});

hosts("chromium: a page bundled by esbuild, which picks the 'browser' condition", async () => {
  const out = join(project, 'public');
  mkdirSync(join(out, 'generated'), { recursive: true });
  execFileSync(
    join(BIN, 'esbuild'),
    ['app.mjs', '--bundle', '--format=esm', '--outfile=public/app.js', '--log-level=warning'],
    { cwd: project },
  );
  // The core's files, where the bundle fetches them: ./generated/ beside it.
  for (const file of CORE_FILES) cpSync(join(installed, 'ts-host/dist/generated', file), join(out, 'generated', file));
  const bundle = readFileSync(join(out, 'app.js'), 'utf8');
  assert.not.match(bundle, /from ["']node:|import\(["']node:/, 'the bundle imports nothing from node:');
  writeFileSync(join(out, 'index.html'), `<!doctype html>\n${PAGE_SCRIPT('./app.js')}\n`);
  const report = await inChromiumPage(out, 'index.html');
  reports['chromium (esbuild)'] = { path: 'bundled by esbuild (`browser` entry)', ...report };
  checkApp('chromium (esbuild)', report, 'clock');
  assert.ok(
    report.core.every((m) => m.from.includes('/generated/')),
    'fetched from ./generated/ beside the bundle',
  );
});

hosts('every user path reported', () => {
  assert.equal(Object.keys(reports).sort(), [
    'bun',
    'chromium (esbuild)',
    'chromium (import map)',
    'deno',
    'node',
    'workerd',
  ]);
  assert.ok(readdirSync(project).includes('node_modules'));
});

hosts.run();
