import { mkdir, mkdtemp, readFile, rm, stat, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEMO_GUEST_ROTATE_COMMAND, ensureDemoGuest, findBuiltDemoGuest } from '../../../../adapters/guest/demo/guest.js';
import type { DemoGuest } from '../../../../adapters/guest/demo/store.js';
import { readElfDynamic } from '../../../../adapters/formats/elf.js';
import { WarmvmError } from '../../../../adapters/support/errors.js';
import { hasPvhEntry } from '../../../../adapters/guest/demo/kernel-image.js';
import { projectRoot } from '../../../../adapters/support/project-root.js';
import { readNewc, type ReadEntry } from '../../formats/cpio-reader.js';

/**
 * Builds the real demo guest from Debian packages (apt, a 70 MB download) into a temporary images
 * folder. Booting it is the e2e tests' job; this checks the files and the cache around them.
 */

const S_IFMT = 0o170000;
/** A pid above Linux's largest (pid_max is at most 2^22): no process has it. */
const DEAD_PID = 4_194_304 + 1;

let imagesDir: string;
let first: DemoGuest;
const progress: string[] = [];

beforeAll(async () => {
  imagesDir = await mkdtemp(join(tmpdir(), 'warmvm-images-'));
  first = await ensureDemoGuest({ imagesDir, onProgress: (line) => progress.push(line) });
}, 300_000);

afterAll(async () => {
  if (imagesDir) await rm(imagesDir, { recursive: true, force: true });
});

async function initrdEntries(guest: DemoGuest): Promise<Map<string, ReadEntry>> {
  const entries = readNewc(gunzipSync(await readFile(guest.initrd)));
  return new Map(entries.map((entry) => [entry.path, entry]));
}

describe('ensureDemoGuest', () => {
  it('builds a kernel QEMU boots directly and a gzip initrd, into demo-<key>/', async () => {
    expect(first.built).toBe(true);
    expect(first.key).toMatch(/^[0-9a-f]{16}$/);
    expect(first.kernel.startsWith(join(imagesDir, `demo-${first.key}`))).toBe(true);
    const kernel = await readFile(first.kernel);
    // This host has xz, so the kernel is the decompressed vmlinux with its PVH entry.
    expect(hasPvhEntry(kernel)).toBe(true);
    const initrd = await readFile(first.initrd);
    expect([initrd[0], initrd[1]]).toEqual([0x1f, 0x8b]);
    expect(progress.some((line) => line.startsWith('fetching'))).toBe(true);
  });

  it('puts init, busybox, the agent, the workload and the drivers in the initramfs', async () => {
    const files = await initrdEntries(first);
    const init = files.get('init');
    expect(init?.mode).toBe(0o100755);
    expect(init?.data).toEqual(await readFile(join(projectRoot(), 'guest/demo/init')));
    expect(files.get('dev/console')).toMatchObject({ mode: 0o020600, rdevMajor: 5, rdevMinor: 1 });
    expect(files.get('bin/busybox')?.mode).toBe(0o100755);
    expect(files.get('usr/sbin/qemu-ga')?.mode).toBe(0o100755);
    for (const script of ['rotate-secrets', 'health-server']) {
      expect(files.get(`usr/local/bin/${script}`)?.mode).toBe(0o100755);
      expect(files.get(`usr/local/bin/${script}`)?.data).toEqual(await readFile(join(projectRoot(), 'docker', script)));
    }
    expect(DEMO_GUEST_ROTATE_COMMAND).toBe('/usr/local/bin/rotate-secrets');
  });

  it('gives the agent its loader and every library it loads, all the way down', async () => {
    const files = await initrdEntries(first);
    const loader = files.get('lib64/ld-linux-x86-64.so.2');
    expect((loader?.mode ?? 0) & S_IFMT).toBe(0o120000);
    expect(files.get(loader?.data.toString().replace(/^\//, '') ?? '')?.mode).toBe(0o100755);

    const missing: string[] = [];
    const pending = ['usr/sbin/qemu-ga'];
    const checked = new Set<string>();
    for (let path = pending.pop(); path !== undefined; path = pending.pop()) {
      if (checked.has(path)) continue;
      checked.add(path);
      const entry = files.get(path);
      if (!entry) {
        missing.push(path);
        continue;
      }
      for (const soname of readElfDynamic(entry.data, path).needed) pending.push(`lib/x86_64-linux-gnu/${soname}`);
    }
    expect(missing).toEqual([]);
    expect(checked).toContain('lib/x86_64-linux-gnu/libglib-2.0.so.0');
  });

  it('lists the kernel modules dependencies first', async () => {
    const files = await initrdEntries(first);
    const order = (files.get('etc/warmvm/modules')?.data.toString() ?? '').split('\n').filter(Boolean);
    for (const name of order) expect(files.get(`lib/modules/warmvm/${name}`)?.data.subarray(0, 4).toString('latin1')).toBe('\x7fELF');
    const at = (name: string): number => order.indexOf(`${name}.ko`);
    for (const name of ['virtio', 'virtio_ring', 'virtio_pci', 'virtio_console', 'failover', 'net_failover', 'virtio_net']) expect(at(name), name).toBeGreaterThanOrEqual(0);
    expect(at('virtio_ring')).toBeLessThan(at('virtio'));
    expect(at('virtio')).toBeLessThan(at('virtio_pci'));
    expect(at('virtio')).toBeLessThan(at('virtio_console'));
    expect(at('failover')).toBeLessThan(at('net_failover'));
    expect(at('net_failover')).toBeLessThan(at('virtio_net'));
  });

  it('returns the cached image on a second call, without rebuilding it', async () => {
    const before = await stat(first.initrd);
    const second = await ensureDemoGuest({ imagesDir });
    expect(second).toEqual({ ...first, built: false });
    expect((await stat(first.initrd)).mtimeMs).toBe(before.mtimeMs);
    expect(await findBuiltDemoGuest(imagesDir)).toEqual(second);
  });

  it('ignores and removes an abandoned build folder, and rebuilds a damaged image', async () => {
    const abandoned = join(imagesDir, `.demo-build-${DEAD_PID}-x1`);
    await mkdir(abandoned);
    await writeFile(join(abandoned, 'initrd.img'), 'half an initrd');
    await writeFile(join(abandoned, 'manifest.json'), JSON.stringify({ key: first.key }));
    await unlink(first.initrd);
    expect(await findBuiltDemoGuest(imagesDir)).toBeUndefined();

    const rebuilt = await ensureDemoGuest({ imagesDir });
    expect(rebuilt).toEqual({ ...first, built: true });
    expect((await stat(rebuilt.initrd)).size).toBeGreaterThan(1_000_000);
    await expect(stat(abandoned)).rejects.toThrow();
  }, 300_000);

  it('uses the image built earlier when apt cannot answer, and says what to do when there is none', async () => {
    // Forget the remembered resolution, so apt must be asked, and make apt unreachable.
    await rm(join(imagesDir, '.demo-packages.json'), { force: true });
    const path = process.env.PATH;
    process.env.PATH = join(imagesDir, 'no-such-bin');
    try {
      expect(await ensureDemoGuest({ imagesDir })).toEqual({ ...first, built: false });

      const empty = await mkdtemp(join(tmpdir(), 'warmvm-images-empty-'));
      try {
        const error = await ensureDemoGuest({ imagesDir: empty }).catch((caught: unknown) => caught);
        expect(error).toBeInstanceOf(WarmvmError);
        expect((error as WarmvmError).message).toMatch(/apt-cache was not found/);
        expect((error as WarmvmError).hint).toMatch(/Debian/);
      } finally {
        await rm(empty, { recursive: true, force: true });
      }
    } finally {
      process.env.PATH = path;
    }
  });

  it('stops at once when its signal has fired', async () => {
    const error = await ensureDemoGuest({ imagesDir, signal: AbortSignal.abort() }).catch((caught: unknown) => caught);
    expect((error as WarmvmError).code).toBe('E_ABORTED');
  });
});
