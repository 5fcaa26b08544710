/**
 * Finding the selector's native addon for this platform. The package ships
 * prebuilt addons in ts-host/dist/native/<platform>/ for the platforms in
 * PREBUILT_PLATFORMS, and its install script (ts-host/native/install.mjs)
 * builds one from source into the same place elsewhere, where a C compiler
 * is found. N-API is ABI-stable, so one build serves every Node version.
 * When neither is there, loading fails with an error that says what to do,
 * and `auto` passes on to the next backend (debug mode logs the reason).
 */

/** The platforms the package ships a prebuilt addon for. */
export const PREBUILT_PLATFORMS: readonly string[] = ['linux-x64-glibc', 'linux-x64-musl', 'linux-arm64-glibc'];

/** The addon's file name, in its platform's directory. */
export const ADDON_FILE = 'wasmloop_selector.node';

/** What the install script leaves beside the addon when its source build failed. */
export const BUILD_ERROR_FILE = 'build-error.txt';

type ProcessReport = { header?: { glibcVersionRuntime?: string } };
type ReportApi = { excludeNetwork?: boolean; getReport?: () => ProcessReport };

let platformCache: string | null = null;

/**
 * This process's platform as the addon directories name it:
 * `<os>-<cpu>`, and on Linux `-glibc` or `-musl` (the C library Node runs
 * on, from process.report: glibc builds report glibcVersionRuntime).
 */
export function addonPlatform(): string {
  if (platformCache !== null) return platformCache;
  let platform = `${process.platform}-${process.arch}`;
  if (process.platform === 'linux') {
    const report = (process as unknown as { report?: ReportApi }).report;
    let glibc: string | undefined;
    if (report?.getReport !== undefined) {
      // Without the network section: it may resolve host names.
      const excludeNetwork = report.excludeNetwork;
      report.excludeNetwork = true;
      try {
        glibc = report.getReport().header?.glibcVersionRuntime;
      } finally {
        report.excludeNetwork = excludeNetwork;
      }
    }
    platform += glibc === undefined ? '-musl' : '-glibc';
  }
  platformCache = platform;
  return platform;
}

/** The addon's path relative to ts-host/dist/backends/ (this file's place once built). */
export function addonPath(platform: string = addonPlatform()): string {
  return `../native/${platform}/${ADDON_FILE}`;
}

type Require = (id: string) => unknown;
type Fs = { existsSync(path: string): boolean; readFileSync(path: string, encoding: 'utf8'): string };
type Url = { fileURLToPath(url: URL): string };

/**
 * Loads this platform's addon with `require` (Node's, from createRequire);
 * throws an error naming the fix when there is none.
 */
export function requireAddon<T>(require: Require): T {
  const platform = addonPlatform();
  const fs = require('node:fs') as Fs;
  const { fileURLToPath } = require('node:url') as Url;
  const file = fileURLToPath(new URL(addonPath(platform), import.meta.url));
  if (!fs.existsSync(file)) {
    const errorFile = file.slice(0, -ADDON_FILE.length) + BUILD_ERROR_FILE;
    let failed = '';
    try {
      if (fs.existsSync(errorFile)) {
        failed = ` (the build at install failed: ${fs.readFileSync(errorFile, 'utf8').trim().split('\n')[0]})`;
      }
    } catch {
      // No record of a build: nothing to add.
    }
    throw new Error(
      `no native addon for ${platform}${failed}: wasmloop ships prebuilt addons for ${PREBUILT_PLATFORMS.join(', ')} ` +
        'and builds one at install where a C compiler is found: install one (cc, or set CC) and run ' +
        '`npm rebuild wasmloop` (where npm blocks install scripts, approve it first: `npm install-scripts approve wasmloop`), ' +
        "or use the 'completion' backend",
    );
  }
  try {
    return require(file) as T;
  } catch (error) {
    throw new Error(
      `the native addon for ${platform} (${file}) does not load: ${(error as Error).message}. ` +
        "Run `npm rebuild wasmloop` to build it from source, or use the 'completion' backend",
    );
  }
}
