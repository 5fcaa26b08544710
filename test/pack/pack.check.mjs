// `npm pack` gives a package that installs and runs without Rust or jco:
// the built component and compiled JS inside, types included.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../..', import.meta.url));
const work = mkdtempSync(join(tmpdir(), 'wasmloop-pack-'));

test.after(() => rmSync(work, { recursive: true, force: true }));

test('the packed tarball installs into a fresh project and runs there', () => {
  const out = execFileSync('npm', ['pack', '--json', '--ignore-scripts', '--pack-destination', work], { cwd: root, encoding: 'utf8' });
  const [info] = JSON.parse(out);
  const files = info.files.map((f) => f.path);
  for (const needed of [
    'ts-host/dist/index.js',
    'ts-host/dist/index.d.ts',
    'ts-host/dist/generated/core.core.wasm',
    'ts-host/dist/generated/core.component.wasm',
    'ts-host/dist/native/wasmloop_selector.node',
    'wit/world.wit',
  ]) {
    assert.ok(files.includes(needed), `${needed} is in the tarball`);
  }
  assert.not.ok(files.some((f) => f.startsWith('rust-core/') || f.endsWith('.rs')), 'no Rust sources');

  const project = join(work, 'app');
  execFileSync('mkdir', ['-p', project]);
  writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'app', private: true, type: 'module' }));
  execFileSync('npm', ['install', '--no-audit', '--no-fund', '--offline', join(work, info.filename)], { cwd: project, stdio: 'pipe' });
  assert.equal(readdirSync(join(project, 'node_modules')).filter((d) => !d.startsWith('.')), ['wasmloop'], 'no dependencies pulled in');

  writeFileSync(
    join(project, 'main.mjs'),
    `import { createLoop } from 'wasmloop';
     const loop = await createLoop();
     const order = [];
     loop.callLater(2, () => order.push('timer'));
     loop.callSoon(() => order.push('soon'));
     const v = await loop.runUntilComplete(async () => { await loop.sleep(5); return 'done'; });
     await loop.close();
     // Echo over TCP on each I/O backend, the portable completion backend
     // named as a 'module:function' spec by this package's name.
     const echoed = {};
     for (const backend of ['auto', 'completion', 'wasmloop:createNetCompletionBackend']) {
       const io = await createLoop({ backend });
       echoed[backend] = io.backend + ' ' + await io.runUntilComplete(async () => {
         const server = await io.createServer(async (c) => { await c.write(await c.read()); c.close(); }, { port: 0 });
         const client = await io.createConnection({ port: server.address().port });
         await client.write('over tcp');
         const reply = new TextDecoder().decode(await client.read());
         client.close();
         await server.close();
         return reply;
       });
       await io.close();
     }
     console.log(JSON.stringify({ backend: loop.backend, order, v, echoed }));`,
  );
  const result = execFileSync(process.execPath, ['main.mjs'], { cwd: project, encoding: 'utf8', env: { ...process.env, PATH: '/usr/bin:/bin' } });
  assert.equal(JSON.parse(result), {
    backend: 'selector',
    order: ['soon', 'timer'],
    v: 'done',
    echoed: {
      auto: 'selector over tcp',
      completion: 'completion over tcp',
      'wasmloop:createNetCompletionBackend': 'completion over tcp',
    },
  });

  // The types resolve for a TypeScript user.
  writeFileSync(
    join(project, 'check.ts'),
    `import { createLoop, type TimerHandle, LoopClosedError } from 'wasmloop';
     const loop = await createLoop({ backend: 'auto', debug: false });
     const h: TimerHandle = loop.callLater(1, (n: number) => n + 1, 2);
     const when: number = h.when();
     const e: Error = new LoopClosedError('x');
     export { when, e };`,
  );
  writeFileSync(
    join(project, 'tsconfig.json'),
    JSON.stringify({ compilerOptions: { module: 'NodeNext', moduleResolution: 'NodeNext', target: 'ES2022', strict: true, noEmit: true, skipLibCheck: false, types: [] } }),
  );
  execFileSync(process.execPath, [join(root, 'node_modules/typescript/bin/tsc'), '-p', project], { cwd: project, encoding: 'utf8' });
});

test.run();
