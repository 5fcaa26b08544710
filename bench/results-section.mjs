// Replaces one "## <title> ..." section of bench/RESULTS.md where it stands
// (or appends it):
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
  const sections = text === '' ? [] : text.split(/\n(?=## )/).map((s) => s.trimEnd());
  const section = `## ${title}${body.startsWith('\n') ? '' : ' '}${body.trimEnd()}`;
  // Replaced where it stands (any later copy is dropped); a new one goes last.
  const kept = [];
  let placed = false;
  for (const s of sections) {
    if (!isSection(s, title)) kept.push(s);
    else if (!placed) {
      kept.push(section);
      placed = true;
    }
  }
  if (!placed) kept.push(section);
  writeFileSync(file, `${kept.join('\n\n')}\n`);
}

/**
 * Whether `section` is the one titled `title`: "## Title", then its end, a
 * newline or " (" (where the sections say which command wrote them).
 */
function isSection(section, title) {
  const head = `## ${title}`;
  if (!section.startsWith(head)) return false;
  const rest = section.slice(head.length, head.length + 2);
  return rest === '' || rest[0] === '\n' || rest === ' (';
}

if (process.argv[1] && import.meta.url.endsWith(process.argv[1].split('/').pop())) {
  const [file, title] = process.argv.slice(2);
  putSection(file, title, readFileSync(0, 'utf8'));
}
