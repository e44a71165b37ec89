/** A timestamped progress line on stderr, so stdout keeps only the figures (or the JSON). */
export function progress(line: string): void {
  process.stderr.write(`  [${new Date().toISOString().slice(11, 19)}] ${line}\n`);
}
