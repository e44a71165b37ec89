import type { QgaClient } from '../qemu/protocol/qga-client.js';
import { QgaExecuteError } from '../qemu/protocol/errors.js';
import { isJsonObject } from '../qemu/protocol/framing.js';

/** What one `guest-file-read` asks for: large enough that a chatty command needs few round trips. */
const READ_CHUNK = 64 * 1024;

/**
 * A guest file another program is writing, read from where the last read stopped through the agent
 * (`guest-file-open` / `guest-file-read`). The file may not exist yet: opening is tried again on
 * each read until it does.
 */
export class GuestFileTail {
  private handle: number | undefined;

  constructor(
    private readonly qga: QgaClient,
    readonly path: string,
    private readonly options: { timeoutMs: number; signal?: AbortSignal },
  ) {}

  /** Everything written since the last call (empty when nothing was, or the file is not there yet). */
  async readNew(): Promise<Buffer> {
    const handle = await this.open();
    if (handle === undefined) return Buffer.alloc(0);
    const chunks: Buffer[] = [];
    for (;;) {
      const reply = await this.qga.execute('guest-file-read', { handle, count: READ_CHUNK }, this.options);
      if (!isJsonObject(reply) || typeof reply.count !== 'number') throw new Error(`guest-file-read answered ${JSON.stringify(reply).slice(0, 200)}`);
      if (reply.count > 0 && typeof reply['buf-b64'] === 'string') chunks.push(Buffer.from(reply['buf-b64'], 'base64'));
      // eof means "at the end for now": the writer may add more, and the next call reads on from here.
      if (reply.count < READ_CHUNK || reply.eof === true) break;
    }
    return Buffer.concat(chunks);
  }

  async close(): Promise<void> {
    const handle = this.handle;
    this.handle = undefined;
    if (handle !== undefined) await this.qga.execute('guest-file-close', { handle }, this.options);
  }

  private async open(): Promise<number | undefined> {
    if (this.handle !== undefined) return this.handle;
    try {
      const handle = await this.qga.execute('guest-file-open', { path: this.path, mode: 'r' }, this.options);
      if (typeof handle !== 'number') throw new Error(`guest-file-open answered ${JSON.stringify(handle).slice(0, 200)}`);
      this.handle = handle;
      return handle;
    } catch (error) {
      // Not written yet: the wrapper creates it just before it runs the command.
      if (error instanceof QgaExecuteError && /No such file/i.test(error.message)) return undefined;
      throw error;
    }
  }
}
