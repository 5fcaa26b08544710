// The components a composed component nests, found by reading its sections
// (the component binary format: a preamble, then sections of id, LEB128
// size and contents; a nested component is section 4 and is itself a whole
// component binary). wac nests each component it composes byte for byte, so
// the composed command holds build/core.component.wasm unchanged.
//
//   node rust-core/wasi/nested.mjs COMPOSED CORE   fails unless COMPOSED nests CORE
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';

const CORE_MODULE_SECTION = 1;
const COMPONENT_SECTION = 4;
const PREAMBLE = 8; // "\0asm", version 0x0d 0x00, layer 0x01 0x00

const sha256 = (bytes) => createHash('sha256').update(bytes).digest('hex');

function isComponent(bytes) {
  return bytes.length >= PREAMBLE && bytes.readUInt32BE(0) === 0x0061736d && bytes[6] === 0x01 && bytes[7] === 0x00;
}

/** The sections of the component binary `bytes`: { id, offset, length }, in file order. */
function sections(bytes, base) {
  if (!isComponent(bytes)) throw new Error('not a WebAssembly component');
  const found = [];
  let at = PREAMBLE;
  while (at < bytes.length) {
    const id = bytes[at++];
    let size = 0;
    for (let shift = 0; ; shift += 7) {
      if (at >= bytes.length || shift > 28) throw new Error(`malformed section size at byte ${base + at}`);
      const byte = bytes[at++];
      size += (byte & 0x7f) * 2 ** shift;
      if ((byte & 0x80) === 0) break;
    }
    if (at + size > bytes.length) throw new Error(`section ${id} at byte ${base + at} runs past the end`);
    found.push({ id, offset: at, length: size });
    at += size;
  }
  return found;
}

/**
 * Every component nested in `bytes` (a component binary), at any depth, in
 * file order: { offset, length, sha256, bytes }. Throws if `bytes` is not a
 * well-formed sequence of sections.
 */
export function nestedComponents(bytes, base = 0) {
  const found = [];
  for (const { id, offset, length } of sections(bytes, base)) {
    if (id !== COMPONENT_SECTION) continue;
    const nested = bytes.subarray(offset, offset + length);
    found.push({ offset: base + offset, length, sha256: sha256(nested), bytes: nested });
    found.push(...nestedComponents(nested, base + offset));
  }
  return found;
}

/**
 * The core modules of the component `bytes` itself (not of components it
 * nests), in file order: { index, sha256 }. These are what a runtime
 * compiles for it; jco names them core.core.wasm, core.core2.wasm, ...
 */
export function coreModules(bytes) {
  return sections(bytes, 0)
    .filter(({ id }) => id === CORE_MODULE_SECTION)
    .map(({ offset, length }, index) => ({ index, sha256: sha256(bytes.subarray(offset, offset + length)) }));
}

/** Whether the component file `composed` nests the component file `core` byte for byte, and its sha256. */
export function nestsComponent(composed, core) {
  const coreSha256 = sha256(readFileSync(core));
  const nested = nestedComponents(readFileSync(composed));
  return { coreSha256, nested: nested.some((c) => c.sha256 === coreSha256), count: nested.length };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const [composed, core] = process.argv.slice(2);
  const { coreSha256, nested, count } = nestsComponent(composed, core);
  if (!nested) {
    console.error(`${composed}: none of its ${count} nested components is ${core} (sha256 ${coreSha256})`);
    process.exit(1);
  }
  console.log(
    `${composed}: ${readFileSync(composed).length} bytes, nests ${core} unchanged (sha256 ${coreSha256.slice(0, 16)}…)`,
  );
}
