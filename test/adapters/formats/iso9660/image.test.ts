import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WarmvmError } from '../../../../adapters/support/errors.js';
import { buildIso, writeIsoFile } from '../../../../adapters/formats/iso9660/image.js';
import type { IsoFile } from '../../../../adapters/formats/iso9660/options.js';
import { resolveCommand } from '../../../../adapters/support/which.js';
import { readIso } from '../../../helpers/iso-reader.js';

const run = promisify(execFile);
const SECTOR = 2048;

const blob = (size: number, seed: number): Buffer => Buffer.from(Array.from({ length: size }, (_, i) => (i * 7 + seed) % 251));

/** A NoCloud seed plus files that exercise sector boundaries. */
const SEED_FILES: IsoFile[] = [
  { name: 'user-data', data: Buffer.from('#cloud-config\nhostname: guest\n') },
  { name: 'meta-data', data: Buffer.from('instance-id: iid-1\nlocal-hostname: guest\n') },
  { name: 'network-config', data: Buffer.from('version: 2\n') },
  { name: 'empty', data: Buffer.alloc(0) },
  { name: 'also-empty', data: new Uint8Array(0) },
  { name: 'exactly-one-sector.bin', data: blob(SECTOR, 1) },
  { name: 'one-sector-and-a-byte.bin', data: blob(SECTOR + 1, 2) },
  { name: 'several-sectors.bin', data: blob(5000, 3) },
  { name: 'A Long Mixed-Case.Name.with.dots-and-dashes.json', data: Buffer.from('{"ok":true}\n') },
];

function expectIsoError(action: () => unknown, code: string, message: RegExp): void {
  let caught: unknown;
  try {
    action();
  } catch (error) {
    caught = error;
  }
  expect(caught, `expected ${code}`).toBeInstanceOf(WarmvmError);
  expect((caught as WarmvmError).code).toBe(code);
  expect((caught as WarmvmError).message).toMatch(message);
  expect((caught as WarmvmError).hint).toBeTruthy();
}

/** ECMA-119 9.3, written here apart from the writer: name, then extension, each padded with spaces. */
function comparePrimaryIdentifiers(a: string, b: string): number {
  const split = (id: string): [string, string] => {
    const [nameAndExtension = ''] = id.split(';');
    const [name = '', extension = ''] = nameAndExtension.split('.');
    return [name, extension];
  };
  const [aName, aExtension] = split(a);
  const [bName, bExtension] = split(b);
  const width = Math.max(aName.length, bName.length);
  const byName = Buffer.compare(Buffer.from(aName.padEnd(width, ' ')), Buffer.from(bName.padEnd(width, ' ')));
  if (byName !== 0) return byName;
  const extensionWidth = Math.max(aExtension.length, bExtension.length);
  return Buffer.compare(Buffer.from(aExtension.padEnd(extensionWidth, ' ')), Buffer.from(bExtension.padEnd(extensionWidth, ' ')));
}

describe('buildIso', () => {
  it('puts the descriptors, both-endian fields and root records where ECMA-119 says', () => {
    const image = buildIso({ volumeLabel: 'cidata', files: SEED_FILES });
    expect(image.length % SECTOR).toBe(0);
    expect(image.subarray(0, 16 * SECTOR).every((byte) => byte === 0)).toBe(true);
    const descriptor = (sector: number): Buffer => image.subarray(sector * SECTOR, (sector + 1) * SECTOR);
    expect([...descriptor(16).subarray(0, 7)]).toEqual([1, ...Buffer.from('CD001'), 1]);
    expect([...descriptor(17).subarray(0, 7)]).toEqual([2, ...Buffer.from('CD001'), 1]);
    expect(descriptor(17).toString('latin1', 88, 91)).toBe('%/E');
    expect([...descriptor(18).subarray(0, 7)]).toEqual([255, ...Buffer.from('CD001'), 1]);
    expect(
      descriptor(18)
        .subarray(7)
        .every((byte) => byte === 0),
    ).toBe(true);
    for (const sector of [16, 17]) {
      const at = descriptor(sector);
      expect([...at.subarray(128, 132)], 'logical block size 2048, both-endian').toEqual([0x00, 0x08, 0x08, 0x00]);
      expect(at.readUInt32LE(80)).toBe(image.length / SECTOR);
      expect(at.readUInt32BE(84)).toBe(image.length / SECTOR);
      expect(at[156], 'root record length').toBe(34);
      expect(at[156 + 32], 'root identifier length').toBe(1);
      expect(at[156 + 33], 'root identifier').toBe(0);
      expect(at[156 + 25], 'root is a directory').toBe(0x02);
    }
    expect(readIso(image).logicalBlockSize).toBe(SECTOR);
  });

  it('writes the volume label as given into both descriptors', () => {
    for (const volumeLabel of ['cidata', 'CONFIG-2', 'x'.repeat(16), 'a.b_c~!']) {
      const iso = readIso(buildIso({ volumeLabel, files: [] }));
      expect([iso.label, iso.jolietLabel, iso.jolietEscape]).toEqual([volumeLabel, volumeLabel, '%/E']);
      expect(iso.primary).toEqual([]);
      expect(iso.joliet).toEqual([]);
    }
  });

  it('round-trips several files, empty ones and ones spanning sectors, each from its own sector', () => {
    const image = buildIso({ volumeLabel: 'cidata', files: SEED_FILES });
    const iso = readIso(image);
    expect(iso.volumeSpaceSize * SECTOR).toBe(image.length);
    const byName = new Map(iso.joliet.map((entry) => [entry.name, entry]));
    expect([...byName.keys()].sort()).toEqual(SEED_FILES.map((file) => file.name).sort());
    for (const file of SEED_FILES) expect(byName.get(file.name)?.data, file.name).toEqual(Buffer.from(file.data));

    const withData = iso.joliet.filter((entry) => entry.size > 0).sort((a, b) => a.extent - b.extent);
    for (const [index, entry] of withData.entries()) {
      const next = withData[index + 1];
      if (next) expect(entry.extent + Math.ceil(entry.size / SECTOR), `${entry.name} overlaps ${next.name}`).toBeLessThanOrEqual(next.extent);
      expect(entry.extent, `${entry.name} is after the descriptors`).toBeGreaterThan(18);
    }
    for (const entry of iso.joliet.filter((candidate) => candidate.size === 0)) {
      expect(entry.extent, `${entry.name} points inside the volume`).toBeLessThan(iso.volumeSpaceSize);
      expect(entry.extent, `${entry.name} points after the directories, where streaming readers expect data`).toBeGreaterThan(withData[0]!.extent);
    }
    // Both namespaces name the same data.
    expect(iso.primary.map((entry) => `${entry.extent}/${entry.size}`).sort()).toEqual(iso.joliet.map((entry) => `${entry.extent}/${entry.size}`).sort());
    expect(iso.primary.every((entry) => entry.flags === 0) && iso.joliet.every((entry) => entry.flags === 0)).toBe(true);
  });

  it('keeps Joliet names as given and gives the primary records 8.3 names of d-characters', () => {
    const names: Record<string, string> = {
      'user-data': 'USER_DAT.;1',
      'meta-data': 'META_DAT.;1',
      'network-config': 'NETWORK_.;1',
      'A Long Mixed-Case.Name.with.dots-and-dashes.json': 'A_LONG_M.JSO;1',
      'x.tar.gz': 'X_TAR.GZ;1',
      '.profile': '_PROFILE.;1',
      'Ωmega é.txt': '_MEGA__.TXT;1',
      [`${'n'.repeat(64)}`]: 'NNNNNNNN.;1',
    };
    const iso = readIso(buildIso({ volumeLabel: 'cidata', files: Object.keys(names).map((name) => ({ name, data: Buffer.from(name) })) }));
    const primaryByContent = new Map(iso.primary.map((entry) => [`${entry.extent}/${entry.size}`, entry.name]));
    for (const entry of iso.joliet) {
      expect(primaryByContent.get(`${entry.extent}/${entry.size}`), entry.name).toBe(names[entry.name]);
      expect(entry.data.toString(), entry.name).toBe(entry.name);
    }
    expect(iso.joliet.map((entry) => entry.name).sort()).toEqual(Object.keys(names).sort());
  });

  it('makes colliding primary names unique the same way whatever order the files come in', () => {
    const files: IsoFile[] = ['user-data', 'user-data2', 'User-Data', 'user_data', 'user-d-1'].map((name) => ({ name, data: Buffer.from(name) }));
    const image = buildIso({ volumeLabel: 'cidata', files });
    const iso = readIso(image);
    const primaryOf = (name: string): string | undefined => {
      const joliet = iso.joliet.find((entry) => entry.name === name);
      return iso.primary.find((entry) => entry.extent === joliet?.extent)?.name;
    };
    // Joliet order (UCS-2 units): User-Data < user-d-1 < user-data < user-data2 < user_data.
    // "user-d-1" maps to USER_D_1 by itself, so the collisions skip that name.
    expect(['User-Data', 'user-d-1', 'user-data', 'user-data2', 'user_data'].map(primaryOf)).toEqual(['USER_DAT.;1', 'USER_D_1.;1', 'USER_D_2.;1', 'USER_D_3.;1', 'USER_D_4.;1']);
    expect(buildIso({ volumeLabel: 'cidata', files: [...files].reverse() }).equals(image)).toBe(true);
    expect(buildIso({ volumeLabel: 'cidata', files: [files[2]!, files[0]!, files[4]!, files[1]!, files[3]!] }).equals(image)).toBe(true);
  });

  it('sorts directory records as ECMA-119 9.3 requires: primary by padded name then extension, Joliet by UCS-2 units', () => {
    // "AB.;1" must come before "AB.1;1" (an empty extension pads to spaces), though ";" > "1" as bytes.
    const names = ['ab.1', 'ab', 'a-b', 'a.txt', 'Zeta', 'zeta', 'é', 'Ω', '0', 'a_b.c', 'abc.de'];
    const iso = readIso(buildIso({ volumeLabel: 'cidata', files: names.map((name) => ({ name, data: Buffer.from(name) })) }));
    const primaryNames = iso.primary.map((entry) => entry.name);
    expect(primaryNames).toEqual([...primaryNames].sort(comparePrimaryIdentifiers));
    expect(primaryNames.indexOf('AB.;1')).toBeLessThan(primaryNames.indexOf('AB.1;1'));
    const jolietNames = iso.joliet.map((entry) => entry.name);
    expect(jolietNames).toEqual([...names].sort()); // JS sorts strings by UTF-16 code units
  });

  it('is deterministic, dated 2000-01-01 UTC unless told otherwise', () => {
    const first = buildIso({ volumeLabel: 'cidata', files: SEED_FILES });
    // Buffer#equals: toEqual would walk whole images byte by byte, slowly.
    expect(buildIso({ volumeLabel: 'cidata', files: SEED_FILES.map((file) => ({ ...file, data: Buffer.from(file.data) })) }).equals(first)).toBe(true);
    const iso = readIso(first);
    expect(iso.created.toISOString()).toBe('2000-01-01T00:00:00.000Z');
    expect(iso.joliet[0]?.recorded.toISOString()).toBe('2000-01-01T00:00:00.000Z');

    const createdAt = new Date('2031-07-04T05:06:07.890Z');
    const dated = buildIso({ volumeLabel: 'cidata', files: SEED_FILES, createdAt });
    expect(dated.equals(first)).toBe(false);
    expect(buildIso({ volumeLabel: 'cidata', files: SEED_FILES, createdAt: new Date(createdAt) }).equals(dated)).toBe(true);
    const datedIso = readIso(dated);
    expect(datedIso.created.toISOString()).toBe('2031-07-04T05:06:07.890Z');
    expect(datedIso.modified.toISOString()).toBe('2031-07-04T05:06:07.890Z');
    expect(datedIso.primary.every((entry) => entry.recorded.toISOString() === '2031-07-04T05:06:07.000Z')).toBe(true);
  });

  it('spreads a large root directory over several sectors without a record crossing a boundary', () => {
    const files = Array.from({ length: 100 }, (_, i) => ({ name: `${String(i).padStart(3, '0')}-${'long-name-'.repeat(6)}`.slice(0, 64), data: Buffer.from([i]) }));
    const image = buildIso({ volumeLabel: 'cidata', files });
    const iso = readIso(image); // throws on a record that crosses a sector boundary
    expect(iso.joliet.map((entry) => entry.name)).toEqual(files.map((file) => file.name));
    expect(iso.joliet.map((entry) => entry.data[0])).toEqual(files.map((_, i) => i));
    expect(new Set(iso.primary.map((entry) => entry.name)).size).toBe(100);
    const svd = image.subarray(17 * SECTOR);
    expect(svd.readUInt32LE(156 + 10), 'Joliet root: 12 records of 162 bytes a sector').toBe(9 * SECTOR);
  });

  it('refuses a root directory of more than 16 sectors with an error that names the limit', () => {
    const files = (count: number): IsoFile[] => Array.from({ length: count }, (_, i) => ({ name: String(i).padStart(64, 'f'), data: new Uint8Array(0) }));
    expect(readIso(buildIso({ volumeLabel: 'cidata', files: files(192) })).joliet).toHaveLength(192);
    expectIsoError(
      () => buildIso({ volumeLabel: 'cidata', files: files(193) }),
      'E_ISO_ROOT_FULL',
      /17 sectors for the joliet names of its 193 files, more than the 16 sectors \(32 KiB\)/,
    );
  });

  it('refuses file names Joliet or Linux would not keep as given', () => {
    const bad = [
      '',
      '.',
      '..',
      'a/b',
      'a\\b',
      'a:b',
      'a;1',
      'a*',
      'a?',
      'a"b',
      'a<b',
      'a>b',
      'a|b',
      'a\nb',
      'nul\0',
      'del\x7f',
      'c1\x85',
      'n'.repeat(65),
      'ends-with-dot.',
      'emoji-😀',
      'lone-\ud800',
    ];
    for (const name of bad) {
      expectIsoError(() => buildIso({ volumeLabel: 'cidata', files: [{ name, data: Buffer.alloc(0) }] }), 'E_ISO_NAME', /^ISO image: the file name .* (is|contains|has|ends)/);
    }
    expect(() => buildIso({ volumeLabel: 'cidata', files: [{ name: 'n'.repeat(64), data: Buffer.alloc(0) }] })).not.toThrow();
    expectIsoError(
      () =>
        buildIso({
          volumeLabel: 'cidata',
          files: [
            { name: 'user-data', data: Buffer.from('1') },
            { name: 'user-data', data: Buffer.from('2') },
          ],
        }),
      'E_ISO_NAME',
      /"user-data" is given twice/,
    );
  });

  it('refuses volume labels that are not 1–16 printable ASCII characters without spaces', () => {
    for (const volumeLabel of ['', 'x'.repeat(17), 'ci data', 'tab\t', 'cïdata', 'nul\0']) {
      expectIsoError(() => buildIso({ volumeLabel, files: [] }), 'E_ISO_LABEL', /volume label .* is not 1–16 printable ASCII characters without spaces/);
    }
  });

  it('refuses a file of 4 GiB or more and dates it cannot record', () => {
    // A real Uint8Array that reports 4 GiB, so the test need not allocate it.
    const huge = Object.defineProperty(new Uint8Array(0), 'length', { value: 2 ** 32 });
    expectIsoError(() => buildIso({ volumeLabel: 'cidata', files: [{ name: 'big', data: huge }] }), 'E_ISO_FILE_TOO_BIG', /big has 4294967296 bytes, more than the 4294967295/);
    for (const createdAt of [new Date(Number.NaN), new Date('1899-12-31T23:59:59Z'), new Date('2156-01-01T00:00:00Z')]) {
      expectIsoError(() => buildIso({ volumeLabel: 'cidata', files: [], createdAt }), 'E_ISO_DATE', /years 1900–2155/);
    }
  });
});

describe('writeIsoFile and real tools', () => {
  let dir = '';
  let isoPath = '';
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'wvm-iso-'));
    isoPath = join(dir, 'seed.iso');
    await writeIsoFile(isoPath, { volumeLabel: 'cidata', files: SEED_FILES });
  });
  afterAll(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  /** The tool's path; a missing tool fails the test rather than skipping it. */
  async function tool(command: string, debianPackage: string): Promise<string> {
    const path = await resolveCommand(command, { PATH: [process.env.PATH ?? '', '/usr/sbin', '/sbin'].join(delimiter) });
    if (!path) throw new Error(`${command} (Debian package ${debianPackage}) is missing: run "bash scripts/setup.sh --tests"`);
    return path;
  }

  it('writes the image in place of a temp file it leaves no trace of', async () => {
    expect((await readFile(isoPath)).equals(buildIso({ volumeLabel: 'cidata', files: SEED_FILES }))).toBe(true);
    expect(await readdir(dir)).toEqual(['seed.iso']);

    const occupied = join(dir, 'occupied');
    await mkdir(occupied);
    await writeFile(join(occupied, 'keep'), 'x');
    await expect(writeIsoFile(occupied, { volumeLabel: 'cidata', files: [] })).rejects.toMatchObject({ code: 'E_ISO_WRITE', message: expect.stringContaining(occupied) });
    await expect(writeIsoFile(join(dir, 'missing', 'x.iso'), { volumeLabel: 'cidata', files: [] })).rejects.toMatchObject({ code: 'E_ISO_WRITE' });
    expect((await readdir(dir)).sort()).toEqual(['occupied', 'seed.iso']);
    await rm(occupied, { recursive: true });
  });

  it('isoinfo reads the label, the Joliet level and the volume size', async () => {
    const { stdout } = await run(await tool('isoinfo', 'genisoimage'), ['-d', '-i', isoPath]);
    expect(stdout).toMatch(/^Volume id: cidata$/m);
    expect(stdout).toMatch(/^Joliet with UCS level 3 found$/m);
    expect(stdout).toMatch(/^Logical block size is: 2048$/m);
    expect(stdout).toMatch(new RegExp(`^Volume size is: ${(await readFile(isoPath)).length / SECTOR}$`, 'm'));
  });

  it('isoinfo lists the Joliet names as given and the primary names as mapped', async () => {
    const isoinfo = await tool('isoinfo', 'genisoimage');
    const joliet = (await run(isoinfo, ['-J', '-f', '-i', isoPath])).stdout.trim().split('\n');
    expect(joliet.sort()).toEqual(SEED_FILES.map((file) => `/${file.name}`).sort());
    const primary = (await run(isoinfo, ['-f', '-i', isoPath])).stdout.trim().split('\n');
    expect(primary).toContain('/USER_DAT.;1');
    expect(primary).toContain('/META_DAT.;1');
    expect(primary).toContain('/NETWORK_.;1');
    expect(primary).toHaveLength(SEED_FILES.length);
  });

  it('isoinfo extracts every file byte for byte', async () => {
    const isoinfo = await tool('isoinfo', 'genisoimage');
    for (const file of SEED_FILES) {
      const { stdout } = await run(isoinfo, ['-J', '-x', `/${file.name}`, '-i', isoPath], { encoding: 'buffer', maxBuffer: 16 * 1024 * 1024 });
      expect(stdout, file.name).toEqual(Buffer.from(file.data));
    }
  });

  it('blkid sees an iso9660 filesystem labelled cidata, as cloud-init looks for it', async () => {
    const { stdout } = await run(await tool('blkid', 'util-linux'), ['-p', '-o', 'export', isoPath]);
    expect(stdout).toMatch(/^TYPE=iso9660$/m);
    expect(stdout).toMatch(/^LABEL=cidata$/m);
    expect(stdout).toMatch(/^BLOCK_SIZE=2048$/m);
  });
});
