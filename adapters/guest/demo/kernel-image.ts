import { gunzipSync } from 'node:zlib';
import { loadExeca } from '../../support/lazy-execa.js';
import { readElfNotes } from '../../formats/elf.js';

/**
 * The uncompressed kernel (vmlinux) inside a bzImage, when QEMU can boot it directly.
 *
 * Why: under TCG, the bzImage's own decompressor (xz for Debian's kernel) runs emulated and takes
 * about 3 s of a 7 s boot. A vmlinux carrying a PVH entry note boots with the same `-kernel`,
 * `-initrd` and `-append`, and QEMU loads it straight into guest RAM. Decompressing once on
 * the host costs about a second.
 *
 * Returns undefined (boot the bzImage then) when the kernel has no PVH entry, uses a compression
 * this does not handle, or the host lacks the decompressor.
 */
export async function extractPvhKernel(bzImage: Buffer, signal?: AbortSignal): Promise<{ vmlinux: Buffer } | { vmlinux: undefined; reason: string }> {
  const payload = compressedPayload(bzImage);
  if (!payload) return { vmlinux: undefined, reason: 'not a bzImage with a payload (boot protocol 2.08+)' };
  const format = compressionOf(payload);
  if (!format) return { vmlinux: undefined, reason: 'its payload uses a compression other than gzip, xz or zstd' };
  let vmlinux: Buffer;
  try {
    vmlinux = await decompress(payload, format, signal);
  } catch (error) {
    if (signal?.aborted) throw error;
    return { vmlinux: undefined, reason: `cannot decompress its ${format} payload: ${(error as Error).message.split('\n')[0] ?? ''}` };
  }
  if (!hasPvhEntry(vmlinux)) return { vmlinux: undefined, reason: 'the kernel has no PVH entry point (CONFIG_PVH)' };
  return { vmlinux };
}

/** Linux's "Xen" ELF note XEN_ELFNOTE_PHYS32_ENTRY: the 32-bit entry QEMU jumps to for PVH. */
const XEN_ELFNOTE_PHYS32_ENTRY = 18;

/** Whether `vmlinux` has the PVH entry point QEMU can start it at directly. */
export function hasPvhEntry(vmlinux: Buffer): boolean {
  try {
    return readElfNotes(vmlinux, 'vmlinux').some((note) => note.name === 'Xen' && note.type === XEN_ELFNOTE_PHYS32_ENTRY);
  } catch {
    return false;
  }
}

/**
 * The compressed vmlinux, per the x86 boot protocol's setup header: it starts `payload_offset`
 * bytes into the protected-mode code, which follows the (setup_sects + 1) * 512 bytes of setup.
 * The build appends the uncompressed size as 4 bytes ("size_append"); they are not part of the stream.
 */
function compressedPayload(bzImage: Buffer): Buffer | undefined {
  if (bzImage.length < 0x250 || bzImage.toString('latin1', 0x202, 0x206) !== 'HdrS' || bzImage.readUInt16LE(0x206) < 0x208) return undefined;
  const setupSectors = bzImage[0x1f1] || 4;
  const offset = (setupSectors + 1) * 512 + bzImage.readUInt32LE(0x248);
  const length = bzImage.readUInt32LE(0x24c);
  if (length <= 4 || offset + length > bzImage.length) return undefined;
  return bzImage.subarray(offset, offset + length - 4);
}

type Compression = 'gzip' | 'xz' | 'zstd';

function compressionOf(payload: Buffer): Compression | undefined {
  if (payload[0] === 0x1f && payload[1] === 0x8b) return 'gzip';
  if (payload.subarray(0, 6).equals(Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]))) return 'xz';
  if (payload.readUInt32LE(0) === 0xfd2fb528) return 'zstd';
  return undefined;
}

async function decompress(payload: Buffer, format: Compression, signal: AbortSignal | undefined): Promise<Buffer> {
  if (format === 'gzip') return gunzipSync(payload);
  const execa = await loadExeca();
  const result = await execa(format, ['-dc'], { input: payload, encoding: 'buffer', cancelSignal: signal, maxBuffer: 512 * 1024 * 1024 });
  return Buffer.from(result.stdout);
}
