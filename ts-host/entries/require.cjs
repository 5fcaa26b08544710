// What `require('wasmloop')` gets (the `require` export condition): an error
// that says how to load the package. wasmloop is ESM-only: its modules await
// the host's optional built-ins (node:net, node:os, ...) as they load, so
// they cannot be required even where Node requires ES modules (22.12+).
'use strict';
const error = new Error(
  "wasmloop is an ES module package and cannot be loaded with require(). Use `import { createLoop } from 'wasmloop'`, " +
    "or from CommonJS `const { createLoop } = await import('wasmloop')` (createLoop is async either way).",
);
error.code = 'ERR_REQUIRE_ESM';
throw error;
