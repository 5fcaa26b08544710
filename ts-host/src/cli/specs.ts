/**
 * What the commands' operands and `--backend` name, checked before anything
 * is imported: `run`'s `<module>:<function>`, `serve`'s `<module>[:<export>]`
 * and a backend's name or `module:function`. A bare name that is a file in
 * the working directory is that file (`app.mjs` is `./app.mjs`, as `node
 * app.mjs` reads it); any other bare name stays a package name. Every
 * failure is a UsageError naming what was written.
 */
import { statSync } from 'node:fs';
import { resolve } from 'node:path';
import { BACKEND_NAMES } from '../backends/resolve.js';
import { SpecError, isBareName, locateModule, splitSpec } from '../module-loader.js';
import { suggestion } from '../options.js';
import { UsageError } from './args.js';

/** An export's name, as splitSpec accepts it. */
const EXPORT_NAME = /^[A-Za-z_$][\w$]*$/;

/**
 * Checks a `module:function` spec and returns it as it will be loaded.
 * A UsageError's message starts with `prefix`.
 */
export async function moduleSpec(spec: string, prefix: string): Promise<string> {
  const split = usage(prefix, () => splitSpec(spec));
  return `${await modulePath(split.module, prefix)}:${split.exportName}`;
}

/**
 * `<module>[:<export>]`: the module as it will be loaded, and the export
 * named after its last ':', or null for none (the default export). What
 * follows the last ':' is an export only if it is a name, so `file:///srv/app.mjs`
 * is a module.
 */
export async function moduleAndExport(spec: string): Promise<{ module: string; exportName: string | null }> {
  const colon = spec.lastIndexOf(':');
  const tail = colon < 0 ? '' : spec.slice(colon + 1);
  const named = colon > 0 && EXPORT_NAME.test(tail);
  const module = named ? spec.slice(0, colon) : spec;
  return { module: await modulePath(module, ''), exportName: named ? tail : null };
}

/** `--backend`: a built-in name, or a `module:function` whose module exists. */
export async function backendSpec(spec: string): Promise<string> {
  if (spec.includes(':')) return moduleSpec(spec, '--backend: ');
  if (BACKEND_NAMES.includes(spec)) return spec;
  const meant = suggestion(spec, BACKEND_NAMES);
  throw new UsageError(
    `--backend: unknown backend '${spec}' ` +
      (meant !== null ? `(did you mean '${meant}'?)` : `(known: ${BACKEND_NAMES.join(', ')}, or <module>:<function>)`),
  );
}

/** What `--workers` cannot be combined with. */
export function checkWorkers(workers: number, backend: string): void {
  if (workers > 1 && backend === 'virtual') {
    throw new UsageError('--workers needs a real backend: the virtual network does not span processes');
  }
}

/** The module as it will be loaded, found without importing it. */
async function modulePath(module: string, prefix: string): Promise<string> {
  const path = isBareName(module) && isFile(module) ? `./${module}` : module;
  await usageAsync(prefix, () =>
    locateModule(path).catch((error: unknown) => {
      throw error instanceof SpecError && isBareName(path)
        ? new SpecError(`${error.message}${nearbyFile(path)}`)
        : error;
    }),
  );
  return path;
}

function usage<T>(prefix: string, work: () => T): T {
  try {
    return work();
  } catch (error) {
    if (error instanceof SpecError) throw new UsageError(`${prefix}${error.message}`);
    throw error;
  }
}

async function usageAsync<T>(prefix: string, work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (error) {
    if (error instanceof SpecError) throw new UsageError(`${prefix}${error.message}`);
    throw error;
  }
}

function isFile(path: string): boolean {
  try {
    return statSync(resolve(process.cwd(), path)).isFile();
  } catch {
    return false;
  }
}

/** For a bare name not found (uvicorn's `main:app`): the file in the working directory it may have meant. */
function nearbyFile(module: string): string {
  const candidate = ['.mjs', '.js', '.cjs'].map((ext) => `./${module}${ext}`).find(isFile);
  return candidate === undefined ? '' : ` (did you mean '${candidate}'?)`;
}
