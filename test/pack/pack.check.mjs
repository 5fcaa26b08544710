// `npm pack` gives a package that installs and runs without Rust or jco: the
// built component, compiled JS and types inside; the selector's addon for
// each prebuilt platform, with its C source and headers so the install
// script can build it elsewhere; the shipped examples run by name; and
// `require('wasmloop')` says how to load an ESM-only package.
import { test } from '../harness.mjs';
import * as assert from 'uvu/assert';
import { execFileSync, spawnSync } from 'node:child_process';
import { cpSync, existsSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT, installedProject, pack } from './scratch.mjs';

const PREBUILT = ['linux-x64-glibc', 'linux-x64-musl', 'linux-arm64-glibc'];
const ADDON = (platform) => `ts-host/dist/native/${platform}/wasmloop_selector.node`;
const node = (project, args, env = {}) =>
  spawnSync(process.execPath, args, {
    cwd: project,
    encoding: 'utf8',
    env: { ...process.env, PATH: '/usr/bin:/bin', ...env },
  });

test('the tarball carries the built package, the addons and what builds them, and no Rust', () => {
  const { files } = pack();
  for (const needed of [
    'ts-host/dist/index.js',
    'ts-host/dist/index.d.ts',
    'ts-host/dist/wasmloop.browser.js',
    'ts-host/dist/wasmloop.workerd.js',
    'ts-host/dist/require.cjs',
    'ts-host/dist/generated/core.core.wasm',
    'ts-host/dist/generated/core.core2.wasm',
    'ts-host/dist/generated/core.core3.wasm',
    'ts-host/dist/generated/core.component.wasm',
    ...PREBUILT.map(ADDON),
    'ts-host/native/selector.h',
    'ts-host/native/selector.c',
    'ts-host/native/sockets.c',
    'ts-host/native/inherited.c',
    'ts-host/native/poller-epoll.c',
    'ts-host/native/poller-uv.c',
    'ts-host/native/install.mjs',
    'ts-host/dist/native/include/node_api.h',
    'ts-host/dist/native/include/uv.h',
    'examples/custom-backend.mjs',
    'wit/world.wit',
  ]) {
    assert.ok(files.includes(needed), `${needed} is in the tarball`);
  }
  assert.not.ok(
    files.some((f) => f.startsWith('rust-core/') || f.endsWith('.rs')),
    'no Rust sources',
  );
  // Each addon is built for the machine its directory names.
  const machine = { 'linux-x64-glibc': 'x86-64', 'linux-x64-musl': 'x86-64', 'linux-arm64-glibc': 'aarch64' };
  for (const platform of PREBUILT) {
    const elf = readFileSync(join(ROOT, ADDON(platform)));
    const e_machine = elf.readUInt16LE(18);
    assert.is(
      { 62: 'x86-64', 183: 'aarch64' }[e_machine],
      machine[platform],
      `${platform}'s addon is for ${machine[platform]}`,
    );
    // musl's addon links against musl's libc.so, glibc's against libc.so.6.
    const needsGlibc = elf.includes(Buffer.from('libc.so.6\0'));
    assert.is(needsGlibc, platform.endsWith('-glibc'), `${platform}'s addon links the right C library`);
  }
  const manifest = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8'));
  assert.is(manifest.scripts.install, 'node ts-host/native/install.mjs');
});

const project = installedProject('app');

test('the packed tarball installs into a fresh project and runs there', () => {
  assert.equal(
    readdirSync(join(project, 'node_modules')).filter((d) => !d.startsWith('.')),
    ['wasmloop'],
    'no dependencies pulled in',
  );
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
  const result = node(project, ['main.mjs']);
  assert.is(result.status, 0, result.stderr);
  assert.equal(JSON.parse(result.stdout), {
    backend: 'selector',
    order: ['soon', 'timer'],
    v: 'done',
    echoed: {
      auto: 'selector over tcp',
      completion: 'completion over tcp',
      'wasmloop:createNetCompletionBackend': 'completion over tcp',
    },
  });
});

test('the types resolve for a TypeScript user', () => {
  writeFileSync(
    join(project, 'check.ts'),
    `import { createLoop, type TimerHandle, LoopClosedError, loadedCore } from 'wasmloop';
     const loop = await createLoop({ backend: 'auto', debug: false });
     const h: TimerHandle = loop.callLater(1, (n: number) => n + 1, 2);
     const when: number = h.when();
     const e: Error = new LoopClosedError('x');
     const hash: string | null | undefined = loadedCore()?.[0]?.sha256;
     export { when, e, hash };`,
  );
  writeFileSync(
    join(project, 'tsconfig.json'),
    JSON.stringify({
      compilerOptions: {
        module: 'NodeNext',
        moduleResolution: 'NodeNext',
        target: 'ES2022',
        strict: true,
        noEmit: true,
        skipLibCheck: false,
        types: [],
      },
    }),
  );
  execFileSync(process.execPath, [join(ROOT, 'node_modules/typescript/bin/tsc'), '-p', project], {
    cwd: project,
    encoding: 'utf8',
  });
});

test("require('wasmloop') says how to load an ES module package", () => {
  writeFileSync(join(project, 'main.cjs'), "require('wasmloop');\n");
  const result = node(project, ['main.cjs']);
  assert.is.not(result.status, 0);
  assert.match(result.stderr, /wasmloop is an ES module package and cannot be loaded with require\(\)/);
  assert.match(result.stderr, /await import\('wasmloop'\)/);
  // And from CommonJS the documented way works.
  writeFileSync(
    join(project, 'dynamic.cjs'),
    "import('wasmloop').then(async ({ createLoop }) => { const l = await createLoop(); console.log(l.backend); await l.close(); });\n",
  );
  const dynamic = node(project, ['dynamic.cjs']);
  assert.is(dynamic.status, 0, dynamic.stderr);
  assert.is(dynamic.stdout.trim(), 'selector');
});

test('the shipped examples import wasmloop by name and run from a project', () => {
  const examples = join(project, 'node_modules/wasmloop/examples');
  cpSync(join(examples, 'custom-backend.mjs'), join(project, 'custom-backend.mjs'));
  writeFileSync(
    join(project, 'custom.mjs'),
    `import { createLoop } from 'wasmloop';
     const loop = await createLoop({ backend: './custom-backend.mjs:createBackend' });
     const t = await loop.runUntilComplete(async () => { await loop.sleep(5); return loop.backend; });
     await loop.close();
     console.log(t);`,
  );
  const custom = node(project, ['custom.mjs']);
  assert.is(custom.status, 0, custom.stderr);
  assert.is(custom.stdout.trim(), 'accelerated-2x');
  for (const file of readdirSync(join(ROOT, 'examples'))) {
    assert.not.match(
      readFileSync(join(examples, file), 'utf8'),
      /ts-host\/dist/,
      `${file} imports the package by name`,
    );
  }
});

test('with no addon for the platform: a clear reason, completion under auto, and a build from source', () => {
  const bare = installedProject('no-prebuilt');
  const platformDir = join(bare, 'node_modules/wasmloop/ts-host/dist/native/linux-x64-glibc');
  rmSync(platformDir, { recursive: true });
  const probe = `import { createLoop } from 'wasmloop';
    const loop = await createLoop({ debug: true });
    console.log(loop.backend);
    await loop.close();`;
  writeFileSync(join(bare, 'probe.mjs'), probe);

  // No compiler: the install script says what is missing, the install goes on.
  const approve = spawnSync('npm', ['install-scripts', 'approve', 'wasmloop'], { cwd: bare, encoding: 'utf8' });
  assert.is(approve.status, 0, approve.stderr);
  const noCompiler = spawnSync('npm', ['rebuild', 'wasmloop', '--foreground-scripts'], {
    cwd: bare,
    encoding: 'utf8',
    env: { ...process.env, CC: 'no-such-cc' },
  });
  assert.is(noCompiler.status, 0, noCompiler.stderr);
  assert.match(
    noCompiler.stdout + noCompiler.stderr,
    /no prebuilt selector addon for linux-x64-glibc, and no C compiler \(no-such-cc\)/,
  );
  assert.not.ok(existsSync(join(platformDir, 'wasmloop_selector.node')));

  // auto falls back to completion; debug mode says why selector was passed over.
  const fallback = node(bare, ['probe.mjs']);
  assert.is(fallback.status, 0, fallback.stderr);
  assert.is(fallback.stdout.trim(), 'completion');
  assert.match(fallback.stderr, /backend 'selector' cannot start here: no native addon for linux-x64-glibc/);
  assert.match(fallback.stderr, /npm rebuild wasmloop/);

  // With a compiler, the install script builds it from the shipped source and headers.
  const build = spawnSync('npm', ['rebuild', 'wasmloop', '--foreground-scripts'], { cwd: bare, encoding: 'utf8' });
  assert.is(build.status, 0, build.stderr);
  assert.match(build.stdout + build.stderr, /built the selector addon for linux-x64-glibc from source/);
  const built = node(bare, ['probe.mjs']);
  assert.is(built.status, 0, built.stderr);
  assert.is(built.stdout.trim(), 'selector');
});

test.run();
