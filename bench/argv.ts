import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/** The value after `name` on the command line, if given; a flag with no value is a mistake, not a default. */
export function option(name: string, argv: readonly string[] = process.argv): string | undefined {
  const index = argv.indexOf(name);
  if (index < 0) return undefined;
  const value = argv[index + 1];
  if (value === undefined || value.startsWith('--')) throw new Error(`${name} takes a value`);
  return value;
}

/**
 * With --help or -h: prints the bench's own opening comment (what it measures, how to run it, its
 * flags) and exits, before it starts anything. `moduleUrl`: the bench's `import.meta.url`.
 */
export function helpIfAsked(moduleUrl: string, argv: readonly string[] = process.argv): void {
  if (!argv.includes('--help') && !argv.includes('-h')) return;
  const opening = /^\/\*\*\n([\s\S]*?)\n \*\//.exec(readFileSync(fileURLToPath(moduleUrl), 'utf8'))?.[1] ?? '';
  process.stdout.write(`${opening.replace(/^ \* ?/gm, '')}\n`);
  process.exit(0);
}
