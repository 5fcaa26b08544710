// The package's entry on workerd (the `workerd` export condition), bundled
// by bundle.mjs into ts-host/dist/wasmloop.workerd.js. Workers compile no
// Wasm from bytes at run time; they import .wasm files as compiled modules.
// This entry imports the core's modules through the package's own subpaths
// (wrangler binds them as it bundles; a workerd config names them, see
// docs/hosts.md) and hands them to the loader, so a plain createLoop() works.
import core from 'wasmloop/wasm/core.core.wasm';
import core2 from 'wasmloop/wasm/core.core2.wasm';
import core3 from 'wasmloop/wasm/core.core3.wasm';
import { useCoreModules } from '../dist/core.js';

useCoreModules({ 'core.core.wasm': core, 'core.core2.wasm': core2, 'core.core3.wasm': core3 });

export * from '../dist/index.js';
