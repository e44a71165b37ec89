import { WarmvmError } from './errors.js';

/** A stream read to its end, refused past `limit` bytes (what a single message can carry). */
export async function readToEnd(stream: NodeJS.ReadableStream, limit: number, what: string): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of stream) {
    const bytes = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
    size += bytes.length;
    if (size > limit) {
      throw new WarmvmError('E_STDIN_TOO_BIG', `${what} is more than ${limit} bytes`, {
        hint: 'the guest agent takes the whole input in one message: copy large data another way (a forwarded port, a disk), or give less',
      });
    }
    chunks.push(bytes);
  }
  return Buffer.concat(chunks);
}
