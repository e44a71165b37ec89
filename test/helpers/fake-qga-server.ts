import { startFakeServer, type CommandHandler, type FakeServer, type Json } from './fake-json-lines-server.js';

/**
 * A qemu-ga stand-in on a real unix socket: no greeting, replies without ids ending in "\n",
 * 0xFF before every guest-sync-delimited reply, guest-exec / guest-exec-status with base64 output.
 */

/** What one guest-exec "runs": how it ends, what it prints, how long it takes. */
export interface FakeExecScript {
  exitcode?: number;
  signal?: number;
  stdout?: string | Buffer;
  stderr?: string | Buffer;
  /** How many guest-exec-status polls answer `exited: false` first. */
  pollsBeforeExit?: number;
}

/** One guest-exec the fake received, decoded. */
export interface FakeExecCall {
  path: string;
  args: string[];
  env: string[] | undefined;
  captureOutput: unknown;
  /** input-data decoded from base64 (undefined when none was sent). */
  input: Buffer | undefined;
}

/** How the fake agent behaves. */
export interface FakeQgaOptions {
  /** Written before the 0xFF of each sync reply: replies meant for an earlier client. */
  staleBeforeSync?: Json[];
  /** Syncs left unanswered first, as when no agent runs in the guest yet. */
  ignoreSyncs?: number;
  /** What each guest-exec "runs". Default: exit 0, no output, exits on the first poll. */
  exec?: (call: FakeExecCall) => FakeExecScript;
  /** Extra or replacement handlers. */
  commands?: Record<string, CommandHandler>;
}

/** The running fake agent, and what it saw. */
export interface FakeQga extends FakeServer {
  readonly execCalls: FakeExecCall[];
  /** guest-exec-status polls, per pid. */
  readonly polls: Map<number, number>;
  readonly syncIds: unknown[];
}

/** Starts a fake agent on a fresh socket (or at `at`). */
export async function startFakeQgaServer(options: FakeQgaOptions = {}, at?: { dir: string; socketPath: string }): Promise<FakeQga> {
  const execCalls: FakeExecCall[] = [];
  const polls = new Map<number, number>();
  const syncIds: unknown[] = [];
  const running = new Map<number, FakeExecScript>();
  let ignoreSyncs = options.ignoreSyncs ?? 0;
  let nextPid = 1000;

  const commands: Record<string, CommandHandler> = {
    'guest-sync-delimited': (request, peer) => {
      const id = request.arguments?.id;
      syncIds.push(id);
      if (ignoreSyncs > 0) {
        ignoreSyncs -= 1;
        return;
      }
      for (const stale of options.staleBeforeSync ?? []) peer.send(stale);
      peer.sendRaw(Buffer.concat([Buffer.from([0xff]), Buffer.from(`${JSON.stringify({ return: id })}\n`)]));
    },
    'guest-ping': (request, peer) => peer.reply(request, {}),
    'guest-set-time': (request, peer) => peer.reply(request, {}),
    'guest-exec': (request, peer) => {
      const args = request.arguments ?? {};
      const inputData = args['input-data'];
      const call: FakeExecCall = {
        path: String(args.path),
        args: (args.arg as string[] | undefined) ?? [],
        env: args.env as string[] | undefined,
        captureOutput: args['capture-output'],
        input: typeof inputData === 'string' ? Buffer.from(inputData, 'base64') : undefined,
      };
      execCalls.push(call);
      const pid = nextPid++;
      running.set(pid, options.exec?.(call) ?? { exitcode: 0 });
      polls.set(pid, 0);
      peer.reply(request, { pid });
    },
    'guest-exec-status': (request, peer) => {
      const pid = Number(request.arguments?.pid);
      const script = running.get(pid);
      if (!script) return peer.fail(request, 'GenericError', `Invalid parameter 'pid'`);
      const count = (polls.get(pid) ?? 0) + 1;
      polls.set(pid, count);
      if (count <= (script.pollsBeforeExit ?? 0)) return peer.reply(request, { exited: false });
      running.delete(pid);
      const status: Json = { exited: true };
      if (script.signal !== undefined) status.signal = script.signal;
      else status.exitcode = script.exitcode ?? 0;
      // Like qemu-ga, leave out empty streams.
      if (script.stdout !== undefined && script.stdout.length > 0) status['out-data'] = Buffer.from(script.stdout).toString('base64');
      if (script.stderr !== undefined && script.stderr.length > 0) status['err-data'] = Buffer.from(script.stderr).toString('base64');
      peer.reply(request, status);
    },
    ...options.commands,
  };

  const server = await startFakeServer({ commands, lineEnding: '\n', socketName: 'qga.sock' }, at);
  return Object.assign(server, { execCalls, polls, syncIds });
}
