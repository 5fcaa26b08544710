// Replaces one "## <title> ..." section of bench/RESULTS.md (or appends it):
// stress, soak and fuzzing each keep exactly one section there.
//
//   import { putSection } from './results-section.mjs'
//   node bench/results-section.mjs FILE TITLE < markdown
import { readFileSync, writeFileSync } from 'node:fs';

export function putSection(file, title, body) {
  let text = '';
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    // A new file.
  }
  const sections = text.split(/\n(?=## )/).filter((s) => !s.startsWith(`## ${title}`));
  const section = `## ${title}${body.startsWith('\n') ? '' : ' '}${body.trimEnd()}\n`;
  writeFileSync(file, `${sections.map((s) => s.trimEnd()).join('\n\n')}\n\n${section}`);
}

if (process.argv[1] && import.meta.url.endsWith(process.argv[1].split('/').pop())) {
  const [file, title] = process.argv.slice(2);
  putSection(file, title, readFileSync(0, 'utf8'));
}
