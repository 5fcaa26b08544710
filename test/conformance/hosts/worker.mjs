// The conformance vectors inside workerd. Workers cannot compile Wasm from
// bytes, so the core's modules arrive as module bindings (the createLoop
// `coreModules` option); the report is the response to any request.
// `?echoPort=N` names a TCP echo server on 127.0.0.1 to connect out to.
import * as wasmloop from '../../../ts-host/dist/index.js';
import { hostReport, useVectors } from '../runner.mjs';
import vectors from './vectors.json';
import component from '../../../ts-host/dist/generated/core.component.wasm.bin';
import coreModule from '../../../ts-host/dist/generated/core.core.wasm.bin';
import core from '../../../ts-host/dist/generated/core.core.wasm';
import core2 from '../../../ts-host/dist/generated/core.core2.wasm';
import core3 from '../../../ts-host/dist/generated/core.core3.wasm';

const coreModules = { 'core.core.wasm': core, 'core.core2.wasm': core2, 'core.core3.wasm': core3 };

export default {
  async fetch(request) {
    const echoPort = new URL(request.url).searchParams.get('echoPort');
    try {
      useVectors(vectors);
      const report = await hostReport(wasmloop, {
        host: 'workerd',
        version: 'workerd',
        component: new Uint8Array(component),
        coreModule: new Uint8Array(coreModule),
        createOptions: { coreModules },
        echoPort: echoPort === null ? undefined : Number(echoPort),
      });
      return Response.json(report);
    } catch (error) {
      return Response.json({ error: String(error && error.stack ? error.stack : error) });
    }
  },
};
