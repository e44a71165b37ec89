import { readdirSync, readFileSync } from 'node:fs';
import { basename, join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = join(import.meta.dirname, '..', '..');
const SOURCE_FOLDERS = ['bin', 'machines', 'actors', 'steps', 'adapters', 'shapes'];

function tsFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return tsFiles(path);
    return entry.name.endsWith('.ts') ? [path] : [];
  });
}

const sources = SOURCE_FOLDERS.flatMap((folder) => tsFiles(join(ROOT, folder))).map((path) => relative(ROOT, path));

// The layout rules dependency-cruiser cannot see: where files lie and what they are named.
describe('the layout of the source tree', () => {
  it('puts no file directly in adapters/: each lies in the folder of its concern', () => {
    expect(sources.filter((path) => /^adapters\/[^/]+\.ts$/.test(path))).toEqual([]);
  });

  it("names no file with its folder's word (adapters/trace/recorder.ts, not adapters/trace/trace-recorder.ts)", () => {
    const prefixed = sources.filter((path) => {
      const parts = path.split('/');
      const folder = parts.at(-2) ?? '';
      return parts.length > 2 && basename(path).startsWith(`${folder}-`);
    });
    expect(prefixed).toEqual([]);
  });

  it('has no barrel: no module re-exports what another defines', () => {
    const reexports = sources.filter((path) => /^export\s+(\*|(type\s+)?\{[^}]*\})\s+from\s/m.test(readFileSync(join(ROOT, path), 'utf8')));
    expect(reexports).toEqual([]);
  });
});
