import { mkdir, mkdtemp, rm, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { aptStateFingerprint, debFileName, parsePolicy } from '../../../adapters/guest/debian-packages.js';

describe('parsePolicy', () => {
  it('reads each package candidate, with or without an architecture suffix', () => {
    const output = [
      'busybox-static:',
      '  Installed: (none)',
      '  Candidate: 1:1.35.0-4+deb12u1+b1',
      '  Version table:',
      '     1:1.35.0-4+deb12u1+b1 500',
      '        500 http://deb.debian.org/debian bookworm/main amd64 Packages',
      'libc6:amd64:',
      '  Installed: 2.36-9+deb12u14',
      '  Candidate: 2.36-9+deb12u14',
      'libgone:',
      '  Installed: (none)',
      '  Candidate: (none)',
    ].join('\n');
    expect([...parsePolicy(output)]).toEqual([
      ['busybox-static', '1:1.35.0-4+deb12u1+b1'],
      ['libc6', '2.36-9+deb12u14'],
      ['libgone', '(none)'],
    ]);
  });
});

describe('debFileName', () => {
  it('spells the epoch the way apt-get download names its files', () => {
    expect(debFileName({ name: 'busybox-static', version: '1:1.35.0-4' })).toBe('busybox-static_1%3a1.35.0-4_amd64.deb');
  });
});

describe('aptStateFingerprint', () => {
  it('changes when an index file changes, and only then', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'warmvm-apt-'));
    try {
      const index = join(dir, 'lists', 'Packages');
      await writeFile(join(dir, 'sources.list'), 'deb http://deb.debian.org/debian bookworm main\n');
      await mkdir(join(dir, 'lists'));
      await writeFile(index, 'Package: a\n');
      const roots = [join(dir, 'lists'), join(dir, 'sources.list'), join(dir, 'missing')];
      const first = await aptStateFingerprint(roots);
      expect(await aptStateFingerprint(roots)).toBe(first);
      await utimes(index, new Date(2001, 1, 1), new Date(2001, 1, 1));
      expect(await aptStateFingerprint(roots)).not.toBe(first);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
