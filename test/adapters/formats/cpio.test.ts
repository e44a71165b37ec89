import { gunzipSync, gzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { writeNewc, type CpioEntry } from '../../../adapters/formats/cpio.js';
import { readNewc } from './cpio-reader.js';

const S_IFMT = 0o170000;

describe('writeNewc', () => {
  it('writes a file the way the newc format lays it out, byte for byte', () => {
    const archive = writeNewc([{ type: 'file', path: 'a', data: Buffer.from('hi'), mode: 0o600 }]);
    const expectedHeader =
      '070701' +
      '00000001' + // ino
      '00008180' + // mode: regular file 0600
      '00000000' + // uid
      '00000000' + // gid
      '00000001' + // nlink
      '00000000' + // mtime
      '00000002' + // filesize
      '00000000' +
      '00000000' + // devmajor, devminor
      '00000000' +
      '00000000' + // rdevmajor, rdevminor
      '00000002' + // namesize: "a" and its NUL
      '00000000'; // check
    expect(archive.toString('ascii', 0, 110)).toBe(expectedHeader);
    // 110 + 2 name bytes = 112, already aligned; then "hi" padded to 4.
    expect(archive.subarray(110, 112)).toEqual(Buffer.from('a\0'));
    expect(archive.subarray(112, 116)).toEqual(Buffer.from('hi\0\0'));
    expect(archive.toString('ascii', 116, 122)).toBe('070701');
    expect(archive.length % 4).toBe(0);
  });

  it('round-trips files, folders, symlinks and device nodes with their types and modes', () => {
    const blob = Buffer.from(Array.from({ length: 1001 }, (_, i) => i % 251));
    const archive = writeNewc([
      { type: 'char', path: 'dev/console', major: 5, minor: 1, mode: 0o600 },
      { type: 'dir', path: 'tmp', mode: 0o1777 },
      { type: 'file', path: 'init', data: Buffer.from('#!/bin/sh\n'), mode: 0o755 },
      { type: 'file', path: 'usr/lib/blob.bin', data: blob },
      { type: 'symlink', path: 'lib64/ld.so', target: '/usr/lib/blob.bin' },
    ]);
    const entries = readNewc(archive);
    const byPath = new Map(entries.map((entry) => [entry.path, entry]));

    expect(byPath.get('dev/console')).toMatchObject({ mode: 0o020600, rdevMajor: 5, rdevMinor: 1 });
    expect(byPath.get('tmp')?.mode).toBe(0o041777);
    expect(byPath.get('init')?.mode).toBe(0o100755);
    expect(byPath.get('init')?.data.toString()).toBe('#!/bin/sh\n');
    expect(byPath.get('usr/lib/blob.bin')?.mode).toBe(0o100644);
    expect(byPath.get('usr/lib/blob.bin')?.data).toEqual(blob);
    expect(byPath.get('lib64/ld.so')?.mode).toBe(0o120777);
    expect(byPath.get('lib64/ld.so')?.data.toString()).toBe('/usr/lib/blob.bin');
    for (const entry of entries) {
      expect(entry.dataOffset % 4, entry.path).toBe(0);
      expect(entry.offset % 4, entry.path).toBe(0);
      expect([entry.uid, entry.gid, entry.mtime]).toEqual([0, 0, 0]);
    }
    expect(new Set(entries.map((entry) => entry.path)).size).toBe(entries.length);
  });

  it('adds each missing parent folder once, before its first child', () => {
    const entries = readNewc(
      writeNewc([
        { type: 'file', path: 'a/b/c/file1', data: Buffer.from('1') },
        { type: 'file', path: 'a/b/file2', data: Buffer.from('2') },
        { type: 'dir', path: 'a/b/d' },
      ]),
    );
    expect(entries.map((entry) => entry.path)).toEqual(['a', 'a/b', 'a/b/c', 'a/b/c/file1', 'a/b/file2', 'a/b/d']);
    expect(entries.filter((entry) => (entry.mode & S_IFMT) === 0o040000).map((entry) => entry.mode & 0o7777)).toEqual([0o755, 0o755, 0o755, 0o755]);
  });

  it('gives each entry its own inode number (the kernel hard-links entries that share one)', () => {
    const entries = readNewc(
      writeNewc([
        { type: 'file', path: 'x/one', data: Buffer.from('1') },
        { type: 'file', path: 'x/two', data: Buffer.from('2') },
      ]),
    );
    expect(new Set(entries.map((entry) => entry.ino)).size).toBe(3);
    expect(entries.every((entry) => entry.ino !== 0)).toBe(true);
  });

  it('is deterministic and survives gzip', () => {
    const input: CpioEntry[] = [
      { type: 'file', path: 'etc/hostname', data: Buffer.from('guest\n') },
      { type: 'symlink', path: 'bin/sh', target: 'busybox' },
    ];
    const first = writeNewc(input);
    expect(writeNewc(input)).toEqual(first);
    expect(readNewc(gunzipSync(gzipSync(first))).map((entry) => entry.path)).toEqual(['etc', 'etc/hostname', 'bin', 'bin/sh']);
  });

  it('normalises a leading slash and refuses paths that are not plain', () => {
    expect(readNewc(writeNewc([{ type: 'dir', path: '/run/' }]))[0]?.path).toBe('run');
    for (const path of ['', '/', 'a/../b', './a', 'a//b', 'TRAILER!!!']) {
      expect(() => writeNewc([{ type: 'dir', path }]), path).toThrow(/cpio/);
    }
  });

  it('refuses the same path twice', () => {
    expect(() =>
      writeNewc([
        { type: 'dir', path: 'a' },
        { type: 'file', path: 'a', data: Buffer.alloc(0) },
      ]),
    ).toThrow(/twice/);
  });
});
