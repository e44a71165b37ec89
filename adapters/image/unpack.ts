import { spawn } from 'node:child_process';
import { createReadStream } from 'node:fs';
import { link, open, stat } from 'node:fs/promises';
import { pipeline } from 'node:stream/promises';
import { decompressFile } from '../oci/zstd-file.js';
import { abortError, WarmvmError } from '../support/errors.js';

export interface UnpackOptions {
  signal?: AbortSignal;
  /** Bytes of the downloaded file read so far, of its size. */
  onProgress?: (doneBytes: number, totalBytes: number) => void;
}

/**
 * The downloaded file `src` as the disk image `dest`: decompressed, or linked as it is (`src` is
 * kept until the image is published, so a refused format costs no second download). xz through
 * Debian's `xz` command: it streams in bounded memory, uses every core, and leaves runs of zeros
 * as holes in a raw disk (npm's xz libraries hold the whole file in memory); zstd through
 * zstd-napi, as snapshots are.
 */
export async function unpackImage(src: string, dest: string, compression: 'xz' | 'zstd' | undefined, shown: string, options: UnpackOptions = {}): Promise<void> {
  const { signal, onProgress } = options;
  if (signal?.aborted) throw abortError(signal, `unpacking ${shown}`);
  if (compression === undefined) {
    await link(src, dest);
    return;
  }
  if (compression === 'zstd') {
    try {
      await decompressFile(src, dest, { signal, onProgress });
    } catch (error) {
      if (error instanceof WarmvmError && error.code === 'E_OCI_BLOB') throw notCompressed(shown, 'zstd', error);
      throw error;
    }
    return;
  }
  await unxz(src, dest, shown, options);
}

async function unxz(src: string, dest: string, shown: string, options: UnpackOptions): Promise<void> {
  const { signal, onProgress } = options;
  const total = (await stat(src)).size;
  // The image file is xz's own stdout (node:child_process, not execa: execa pipes an output file
  // through a stream), and a regular file lets xz seek over runs of zeros.
  const output = await open(dest, 'w', 0o644);
  try {
    const child = spawn('xz', ['--decompress', '--stdout', '--threads=0'], { stdio: ['pipe', output.fd, 'pipe'], signal });
    const { stdin, stderr: errors } = child as typeof child & { stdin: NodeJS.WritableStream; stderr: NodeJS.ReadableStream };
    let stderr = '';
    errors.setEncoding('utf8').on('data', (text: string) => {
      stderr = `${stderr}${text}`.slice(-4000);
    });
    const exited = new Promise<{ code: number | null; error: NodeJS.ErrnoException | undefined }>((resolve) => {
      child.once('error', (error: NodeJS.ErrnoException) => resolve({ code: null, error }));
      child.once('close', (code) => resolve({ code, error: undefined }));
    });
    let read = 0;
    const fed = pipeline(
      createReadStream(src),
      async function* (source: AsyncIterable<Buffer>) {
        for await (const chunk of source) {
          read += chunk.length;
          onProgress?.(read, total);
          yield chunk;
        }
      },
      stdin,
    ).then(
      () => undefined,
      (error: unknown) => error,
    );
    const [result, feedError] = await Promise.all([exited, fed]);
    if (signal?.aborted) throw abortError(signal, `unpacking ${shown}`);
    if (result.error?.code === 'ENOENT') {
      throw new WarmvmError('E_IMAGE_DECOMPRESS', `cannot unpack the image ${shown}: the xz command is not installed`, {
        hint: 'install it (Debian: apt-get install xz-utils), or serve the image uncompressed or as zstd',
        cause: result.error,
      });
    }
    if (result.error !== undefined || result.code !== 0) throw notCompressed(shown, 'xz', result.error ?? new Error(stderr.trim() || `xz exited with ${result.code}`));
    if (feedError !== undefined)
      throw new WarmvmError('E_IMAGE_DECOMPRESS', `cannot unpack the image ${shown}: reading the download failed`, { hint: 'start again', cause: feedError });
    await output.datasync();
  } finally {
    await output.close();
  }
}

function notCompressed(shown: string, how: 'xz' | 'zstd', cause: Error): WarmvmError {
  return new WarmvmError('E_IMAGE_DECOMPRESS', `cannot unpack the image ${shown} as ${how}: ${cause.message}`, {
    hint: `the file at the URL is not ${how}-compressed as image.compression (or the URL's suffix) says: set image.compression to how it is packed, or leave it out for a file with no such suffix`,
    cause,
  });
}
