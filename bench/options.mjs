// What the benchmark scripts check on their command lines.

/**
 * `text`, the value of `option`, as a whole number from 1. Anything else is
 * reported through `fail(message)`, which ends the run.
 */
export function wholeOption(option, text, fail) {
  const value = Number(text);
  if (!Number.isInteger(value) || value < 1)
    fail(`${option} must be a whole number from 1, got ${JSON.stringify(text)}`);
  return value;
}
