// The package's install script: builds the selector's native addon from
// source (selector.c and its other parts, beside this file; selector.h lists
// them) where no prebuilt addon matches this platform and a C compiler is
// found. It needs no network and no node-gyp: the package carries the
// Node-API and libuv headers the addon includes (ts-host/dist/native/include).
// It never fails the install: without a compiler, or when the build fails, it
// says so, and `auto` uses the completion backend (the addon's loader gives
// the same reason at run time).
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const dist = join(here, '../dist');
const NATIVE = join(dist, 'native');

// A source checkout before `make`: make builds the addons itself.
if (!existsSync(join(dist, 'backends/addon.js'))) process.exit(0);

const { ADDON_FILE, BUILD_ERROR_FILE, PREBUILT_PLATFORMS, addonPlatform } = await import('../dist/backends/addon.js');
const platform = addonPlatform();
const target = join(NATIVE, platform, ADDON_FILE);
if (existsSync(target)) process.exit(0);

const note = (why) =>
  console.warn(
    `wasmloop: ${why}. The 'selector' backend is unavailable here and 'auto' uses 'completion' ` +
      `(prebuilt addons: ${PREBUILT_PLATFORMS.join(', ')}). To build it, install a C compiler and run \`npm rebuild wasmloop\`.`,
  );

if (process.platform === 'win32') {
  // The selector is POSIX-only; on Windows `auto` prefers completion anyway.
  process.exit(0);
}

const cc = process.env.CC || 'cc';
const probe = spawnSync(cc, ['--version'], { stdio: 'ignore' });
if (probe.error !== undefined || probe.status !== 0) {
  note(`no prebuilt selector addon for ${platform}, and no C compiler (${cc}) to build one`);
  process.exit(0);
}

const dir = join(NATIVE, platform);
mkdirSync(dir, { recursive: true });
const partial = `${target}.partial`;
const SOURCES = ['selector.c', 'sockets.c', 'inherited.c', 'poller-epoll.c', 'poller-uv.c'];
const args = [
  '-O2',
  '-fPIC',
  '-shared',
  `-I${join(NATIVE, 'include')}`,
  '-o',
  partial,
  ...SOURCES.map((f) => join(here, f)),
];
// Node's symbols (napi_*, uv_*) come from the running node; macOS links
// shared objects against them only when told to look them up at load time.
if (process.platform === 'darwin') args.unshift('-undefined', 'dynamic_lookup');
const build = spawnSync(cc, args, { encoding: 'utf8' });
if (build.error !== undefined || build.status !== 0) {
  rmSync(partial, { force: true });
  const output = `${cc} ${args.join(' ')}\n${build.error?.message ?? ''}${build.stderr ?? ''}`;
  writeFileSync(
    join(dir, BUILD_ERROR_FILE),
    `${(build.stderr ?? '').split('\n').find((l) => l.includes('error')) ?? `${cc} exited with ${build.status}`}\n${output}`,
  );
  note(
    `building the selector addon for ${platform} with ${cc} failed (${join(dir, BUILD_ERROR_FILE)} has the compiler's output)`,
  );
  process.exit(0);
}
renameSync(partial, target);
rmSync(join(dir, BUILD_ERROR_FILE), { force: true });
console.log(`wasmloop: built the selector addon for ${platform} from source (${cc})`);
