/**
 * Loading `module:function` specs: the one loader behind `createLoop({
 * backend: './my-backend.js:create' })` and `wasmloop run ./app.mjs:main`.
 *
 * A spec is split at its last ':' (so `C:\app.js:main` keeps its drive).
 * The module part may be a path (relative to the working directory, or
 * absolute), a `file:` URL, or a package name, and nothing else: a `data:`
 * URL would run inline code, an `http(s):` URL code from the network, and a
 * built-in (`node:process`, `process`) is not a module anyone wrote a
 * backend or an application in. Every failure is a SpecError whose message
 * says what went wrong in words the callers prefix with their context
 * ("backend 'SPEC': ", "wasmloop: ").
 *
 * Nothing here imports a Node module statically: createLoop runs on hosts
 * without them (browsers, workerd), where only URLs and import-mapped names
 * can be loaded.
 */

/** Why a spec could not be loaded; the message is one line. */
export class SpecError extends Error {}

/** A spec split into its module and its export. */
export interface ExportSpec {
  /** The module part, as written. */
  module: string;
  /** The export's name. */
  exportName: string;
}

const EXPORT_NAME = /^[A-Za-z_$][\w$]*$/;
const WINDOWS_PATH = /^[A-Za-z]:[\\/]/;
const URL_SCHEME = /^([A-Za-z][A-Za-z\d+.-]*):/;

/** Splits `module:function` at its last ':'; SpecError if either part is missing or the name is not an identifier. */
export function splitSpec(spec: string): ExportSpec {
  const colon = spec.lastIndexOf(':');
  const module = colon < 0 ? '' : spec.slice(0, colon);
  const exportName = colon < 0 ? '' : spec.slice(colon + 1);
  if (module === '' || !EXPORT_NAME.test(exportName)) {
    throw new SpecError(
      `'${spec}' is not <module>:<function> (a path, a file: URL or a package name, ':', and the name of an exported function)`,
    );
  }
  return { module, exportName };
}

/** True if `module` is a path (relative or absolute) rather than a URL or a package name. */
export function isPath(module: string): boolean {
  return module.startsWith('.') || module.startsWith('/') || WINDOWS_PATH.test(module);
}

/** True if `module` is neither a path nor a URL: a package name, or a file's bare name. */
export function isBareName(module: string): boolean {
  return !isPath(module) && !URL_SCHEME.test(module);
}

const hasNode = (): boolean =>
  typeof process !== 'undefined' && typeof process.cwd === 'function' && process.versions?.node !== undefined;

/**
 * Where `module` is, as a URL to import, without importing it: a path or
 * `file:` URL must name an existing file; a package name must resolve.
 * SpecError for anything else.
 */
export async function locateModule(module: string): Promise<string> {
  if (isPath(module)) {
    if (!hasNode())
      throw new SpecError(`'${module}' is a path, and this host has no working directory: use a URL or a package name`);
    const { resolve } = await import('node:path');
    const { pathToFileURL } = await import('node:url');
    const path = resolve(process.cwd(), module);
    await mustBeFile(module, path);
    return pathToFileURL(path).href;
  }
  const scheme = URL_SCHEME.exec(module)?.[1]?.toLowerCase();
  if (scheme === 'file') {
    if (hasNode()) {
      const { fileURLToPath } = await import('node:url');
      await mustBeFile(module, fileURLToPath(module));
    }
    return module;
  }
  if (scheme !== undefined) {
    throw new SpecError(`'${module}' is a ${scheme}: URL; a module is a path, a file: URL or a package name`);
  }
  if (hasNode()) {
    const { isBuiltin } = await import('node:module');
    if (isBuiltin(module)) throw new SpecError(`'${module}' is a Node built-in module, not a path or a package`);
  }
  // A package: resolved as import() would, from this file.
  if (typeof import.meta.resolve === 'function') {
    try {
      return import.meta.resolve(module);
    } catch (error) {
      if ((error as { code?: string }).code === 'ERR_MODULE_NOT_FOUND')
        throw new SpecError(`cannot find module '${module}'`);
      if (hasNode()) throw new SpecError(`cannot find module '${module}': ${message(error)}`);
      // Elsewhere (an import map, say) import() has the last word.
    }
  }
  return module;
}

async function mustBeFile(module: string, path: string): Promise<void> {
  const { stat } = await import('node:fs/promises');
  const found = await stat(path).catch(() => null);
  if (found === null) throw new SpecError(`cannot find module '${module}'`);
  if (!found.isFile()) throw new SpecError(`cannot find module '${module}': ${path} is not a file`);
}

/**
 * Imports the module `spec` names and returns its exported function.
 * SpecError if the spec is malformed or refused, the module is missing or
 * fails to load (naming the import that failed, if one of its own), or the
 * export is missing or not a function.
 */
export async function loadExport(spec: string): Promise<(...args: never[]) => unknown> {
  const { module, exportName } = splitSpec(spec);
  const namespace = await importModule(module);
  const value = namespace[exportName];
  if (value === undefined) throw new SpecError(`module '${module}' has no export '${exportName}'`);
  if (typeof value !== 'function')
    throw new SpecError(`export '${exportName}' of '${module}' is ${typeof value}, not a function`);
  return value as (...args: never[]) => unknown;
}

/**
 * Imports `module` (a path, a file: URL or a package name, as
 * `locateModule` takes it) and returns its namespace. SpecError if it is
 * refused, missing or fails to load (naming the import that failed, if one
 * of its own).
 */
export async function importModule(module: string): Promise<Record<string, unknown>> {
  const url = await locateModule(module);
  try {
    return (await import(url)) as Record<string, unknown>;
  } catch (error) {
    throw new SpecError(`module '${module}' failed to load: ${loadFailure(module, error)}`, { cause: error });
  }
}

/**
 * Why an import failed, on one line. The module itself was found (it was
 * located first), so a module that is not found is one it imports: Node's
 * message names it and the importer. Node keeps a syntax error's place out
 * of the error (it prints it only for an uncaught one), so say where to
 * find it.
 */
function loadFailure(module: string, error: unknown): string {
  const code = (error as { code?: string }).code;
  if (code === 'ERR_MODULE_NOT_FOUND') return `its import failed: ${message(error)}`;
  if (error instanceof SyntaxError && isPath(module))
    return `SyntaxError: ${error.message} (node --check ${module} shows where)`;
  return error instanceof Error ? `${error.name}: ${error.message}` : String(error);
}

function message(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
