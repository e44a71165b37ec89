/**
 * The guest's RAM filled with non-zero data before a capture or suspend, so that there is real RAM
 * to write: a tmpfs holding an 8 MB random block repeated (zstd's 4 MB frames cannot shrink it,
 * zero pages cannot hide it).
 */
import type { GuestShell } from './guest-shell.js';

/** 75% of the RAM, unless that leaves the guest less than AGENT_HEADROOM_MB available (then 50%): its agent must still answer. */
const FILL_PERCENT = 75;
const FALLBACK_FILL_PERCENT = 50;
const AGENT_HEADROOM_MB = 64;
const SEED_MB = 8;
/** A fill (or a write over it) of GBs under TCG is slow. */
export const FILL_TIMEOUT_MS = 3_600_000;
/** The file in the guest's tmpfs that holds the fill. */
export const BLOB = '/mnt/fill/blob';

export interface Fill {
  percent: number;
  mb: number;
  seconds: number;
  availableBeforeMb: number;
  availableAfterMb: number;
  /** Why the fill fell back to 50%, if it did. */
  note: string | undefined;
}

const memAvailableMb = (text: string): number => Number(/MemAvailable:\s+(\d+)/.exec(text)?.[1] ?? NaN) / 1024;

/** Fills the RAM of a guest of `memoryMb` (by the rule above), through `shell`. */
export async function fillGuest(shell: GuestShell, memoryMb: number): Promise<Fill> {
  const availableBeforeMb = memAvailableMb(await shell('grep MemAvailable /proc/meminfo', 120_000));
  const wanted = Math.floor((memoryMb * FILL_PERCENT) / 100);
  const starved = availableBeforeMb - wanted < AGENT_HEADROOM_MB;
  const percent = starved ? FALLBACK_FILL_PERCENT : FILL_PERCENT;
  const note = starved
    ? `${FALLBACK_FILL_PERCENT}% at ${memoryMb} MB: ${FILL_PERCENT}% (${wanted} MB) would leave the guest ${Math.round(availableBeforeMb - wanted)} MB of its ${Math.round(availableBeforeMb)} MB available, starving its agent`
    : undefined;
  const blocks = Math.max(1, Math.floor((memoryMb * percent) / 100 / SEED_MB));
  const mb = blocks * SEED_MB;
  const script = [
    'set -e',
    'mkdir -p /mnt/fill',
    `mount -t tmpfs -o size=${mb + 16}m tmpfs /mnt/fill`,
    `dd if=/dev/urandom of=/mnt/fill/seed bs=1M count=${SEED_MB} 2>/dev/null`,
    `i=0; while [ $i -lt ${blocks - 1} ]; do cat /mnt/fill/seed; i=$((i+1)); done >${BLOB}`,
    'grep MemAvailable /proc/meminfo',
  ].join('\n');
  const began = performance.now();
  const out = await shell(script, FILL_TIMEOUT_MS);
  return { percent, mb, seconds: (performance.now() - began) / 1000, availableBeforeMb, availableAfterMb: memAvailableMb(out), note };
}

/** The blob's size in bytes: the seed is a file of its own, so the blob holds one block less than the fill. */
export const blobBytes = (fill: Fill): number => (fill.mb - SEED_MB) * 2 ** 20;

/** `ls -l` of the blob: the guest's RAM came back (after a wake) only if the tmpfs file did, at its size. */
export async function fillSurvived(shell: GuestShell, expectedBytes: number): Promise<{ ok: boolean; listing: string }> {
  const listing = (await shell(`ls -l ${BLOB}`, 120_000).catch((error: unknown) => `ls failed: ${(error as Error).message}`)).trim();
  const size = Number(listing.split(/\s+/)[4]);
  return { ok: size === expectedBytes, listing };
}
