// Builds the package's single-file entries from ts-host/dist with esbuild:
//   ts-host/dist/wasmloop.browser.js  the `browser` condition: one file for an
//     import map or a bundler, with no node: imports (each becomes a module
//     that fails to load, which the loader already treats as "not on this
//     host"), so bundlers need no Node-specific settings.
//   ts-host/dist/wasmloop.workerd.js  the `workerd` condition (entries/workerd.js):
//     one file a workerd config can name, importing the core's .wasm files
//     through the package's subpaths and node: built-ins at run time.
// Both sit in ts-host/dist/, so the core's files stay at ./generated/ from them.
import { build } from 'esbuild';
import { fileURLToPath } from 'node:url';

const dist = fileURLToPath(new URL('../dist/', import.meta.url));

/** Resolves every node: import to a module that throws as it loads. */
const noNodeBuiltins = {
  name: 'no-node-builtins',
  setup(b) {
    b.onResolve({ filter: /^node:/ }, (args) => ({ path: args.path, namespace: 'absent' }));
    b.onLoad({ filter: /.*/, namespace: 'absent' }, (args) => ({
      contents: `throw new Error(${JSON.stringify(`${args.path} is not available in a browser`)});`,
      loader: 'js',
    }));
  },
};

const common = { bundle: true, format: 'esm', target: 'es2022', logLevel: 'warning', legalComments: 'none' };

await build({
  ...common,
  entryPoints: [`${dist}index.js`],
  outfile: `${dist}wasmloop.browser.js`,
  platform: 'browser',
  plugins: [noNodeBuiltins],
});

await build({
  ...common,
  entryPoints: [fileURLToPath(new URL('./workerd.js', import.meta.url))],
  outfile: `${dist}wasmloop.workerd.js`,
  platform: 'neutral',
  external: ['node:*', 'wasmloop/wasm/*'],
});
