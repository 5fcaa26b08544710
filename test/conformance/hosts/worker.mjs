// The conformance vectors inside workerd, on the package's workerd entry
// (ts-host/dist/wasmloop.workerd.js, bound as the module 'wasmloop'), which
// imports the core's modules as Wasm module bindings: workers cannot compile
// Wasm from bytes. The report is the response to any request;
// `?echoPort=N` names a TCP echo server on 127.0.0.1 to connect out to.
// workerd resolves an import against the importing module's name, so the
// config names this module 'worker.mjs', beside 'runner.mjs',
// 'vectors.json' and the package's modules, as a user's config would.
import * as wasmloop from 'wasmloop';
import { hostReport, useVectors } from './runner.mjs';
import vectors from './vectors.json';
// The same module names the entry imports: the same compiled modules.
import core from 'wasmloop/wasm/core.core.wasm';
import core2 from 'wasmloop/wasm/core.core2.wasm';
import core3 from 'wasmloop/wasm/core.core3.wasm';

const bound = { 'core.core.wasm': core, 'core.core2.wasm': core2, 'core.core3.wasm': core3 };

export default {
  async fetch(request) {
    const echoPort = new URL(request.url).searchParams.get('echoPort');
    try {
      useVectors(vectors);
      const report = await hostReport(wasmloop, {
        host: 'workerd',
        version: 'workerd',
        echoPort: echoPort === null ? undefined : Number(echoPort),
      });
      // workerd compiled these modules from the files its config embeds, and
      // gives no bytes back: the test hashes those files and checks that
      // what workerd compiled exports the same names.
      report.boundExports = Object.fromEntries(
        Object.entries(bound).map(([file, module]) => [
          file,
          WebAssembly.Module.exports(module).map((e) => `${e.kind} ${e.name}`),
        ]),
      );
      return Response.json(report);
    } catch (error) {
      return Response.json({ error: String(error?.stack ? error.stack : error) });
    }
  },
};
