// The conformance vectors on Node, Deno or Bun:
//   node script.mjs vectors.json | deno run -A script.mjs vectors.json | bun script.mjs vectors.json
// Prints one JSON report (see hostReport in ../runner.mjs) on stdout.
import * as wasmloop from '../../../ts-host/dist/index.js';
import { hostReport, useVectors } from '../runner.mjs';

const host = typeof Deno !== 'undefined' ? 'deno' : typeof Bun !== 'undefined' ? 'bun' : 'node';
const args = host === 'deno' ? Deno.args : process.argv.slice(2);
const cwd = host === 'deno' ? Deno.cwd() : process.cwd();
const read = async (url) =>
  host === 'deno'
    ? Deno.readFile(url)
    : host === 'bun'
      ? Bun.file(url).bytes()
      : new Uint8Array(await (await import('node:fs/promises')).readFile(url));

useVectors(JSON.parse(new TextDecoder().decode(await read(new URL(args[0], `file://${cwd}/`)))));
const report = await hostReport(wasmloop, {
  host,
  version: host === 'deno' ? Deno.version.deno : host === 'bun' ? Bun.version : process.versions.node,
});
console.log(JSON.stringify(report));
