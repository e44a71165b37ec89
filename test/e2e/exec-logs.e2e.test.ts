import { execa, type ResultPromise } from 'execa';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { instancePaths } from '../../adapters/instance/paths.js';
import { QmpClient } from '../../adapters/qemu/protocol/qmp-client.js';
import { caseConfig } from '../helpers/store-check.js';
import { CLI, cli, E2E_HOME } from '../helpers/cli.js';

// `warmvm exec` and `warmvm logs` on the real QEMU and demo guest. One instance of the demo config
// (it resumes the demo snapshot when there is one), one cold-booted without an agent.
const TIMEOUT = 300_000;
/** For a test that waits on an event: a fault that loses the event fails it at this bound instead of hanging. */
const EVENT_TIMEOUT = 120_000;
const NAME = 'el-main';
const NO_AGENT = 'el-noagent';

/** The CLI with a pipe for stdin (closed at once unless `input` is given) and output collected as it comes. */
function spawnCli(args: string[], input?: string): ResultPromise {
  return execa('node', [CLI, ...args], { reject: false, env: { WARMVM_HOME: E2E_HOME }, input: input ?? '', stripFinalNewline: false });
}

/** Resolves once `text` has appeared on the stream (everything seen so far is in `seen()`). */
function watchFor(stream: NodeJS.ReadableStream): { seen: () => string; until: (text: string) => Promise<void> } {
  let buffer = '';
  const waiters: { text: string; resolve: () => void }[] = [];
  stream.on('data', (chunk: Buffer) => {
    buffer += chunk.toString('utf8');
    for (const waiter of waiters.filter((w) => buffer.includes(w.text))) {
      waiters.splice(waiters.indexOf(waiter), 1);
      waiter.resolve();
    }
  });
  return {
    seen: () => buffer,
    until: (text) => (buffer.includes(text) ? Promise.resolve() : new Promise((resolve) => waiters.push({ text, resolve }))),
  };
}

async function guestProcesses(): Promise<string> {
  const result = await cli(['exec', '--name', NAME, '--', 'ps']);
  expect(result.exitCode, result.stderr).toBe(0);
  return result.stdout;
}

describe('exec and logs on real QEMU', () => {
  let gate: Server;
  let gatePort = 0;
  let openGate: (() => void) | undefined;
  const gateEvents: string[] = [];

  beforeAll(async () => {
    for (const name of [NAME, NO_AGENT]) {
      await cli(['stop', '--name', name]);
      await cli(['reset', '--name', name]);
    }
    const started = await cli(['start', '--name', NAME, '--json']);
    expect(started.json.outcome, started.stderr + started.stdout).toBe('healthy');
    // A host HTTP server the guest reaches at 10.0.2.2 (QEMU's user network maps it to the host's
    // loopback): it answers only when the test says so, so a guest command can wait for the test.
    gate = createServer((_request, response) => {
      gateEvents.push('guest asked');
      openGate = () => response.end('open\n');
    });
    await new Promise<void>((resolve) => gate.listen(0, '127.0.0.1', resolve));
    gatePort = (gate.address() as AddressInfo).port;
  }, 900_000);

  afterAll(async () => {
    gate?.close();
    for (const name of [NAME, NO_AGENT]) await cli(['stop', '--name', name]);
  });

  it(
    'streams output while the command runs: its second line waits for the test to read its first',
    async () => {
      const run = spawnCli(['exec', '--name', NAME, '--', 'sh', '-c', `echo first; timeout 30 wget -q -O - http://10.0.2.2:${gatePort}/; echo second >&2; exit 7`]);
      const stdout = watchFor(run.stdout as NodeJS.ReadableStream);
      const stderr = watchFor(run.stderr as NodeJS.ReadableStream);
      const events: string[] = [];
      void run.then(() => events.push('exited'));
      await stdout.until('first');
      events.push('read first');
      // (busybox's wget -T crashes in this build: `timeout` bounds it instead.)
      // The command is blocked on the gate until now: had its output come only at its end, we would not be here.
      await new Promise<void>((resolve) => {
        const poll = (): void => (openGate || events.includes('exited') ? resolve() : void setTimeout(poll, 50));
        poll();
      });
      expect(stderr.seen()).not.toContain('second');
      expect(openGate, 'the guest command reached the gate').toBeDefined();
      openGate?.();
      events.push('gate opened');
      await stderr.until('second');
      events.push('read second');
      const result = await run;
      expect(events).toEqual(['read first', 'gate opened', 'read second', 'exited']);
      expect(gateEvents).toEqual(['guest asked']);
      expect(result.exitCode).toBe(7);
      expect(stdout.seen()).toBe('first\nopen\n');
    },
    TIMEOUT,
  );

  it(
    "passes the guest's exit status on: a code, a signal as 128 + n, a missing command as 127",
    async () => {
      expect((await cli(['exec', '--name', NAME, '--', 'sh', '-c', 'exit 3'])).exitCode).toBe(3);
      expect((await cli(['exec', '--name', NAME, '--', 'true'])).exitCode).toBe(0);
      expect((await cli(['exec', '--name', NAME, '--', 'sh', '-c', 'kill -9 $$'])).exitCode).toBe(137);
      const missing = await cli(['exec', '--name', NAME, '--', 'no-such-program']);
      expect(missing.exitCode).toBe(127);
      expect(missing.stderr).toContain('command not found in the guest: no-such-program');
    },
    TIMEOUT,
  );

  it(
    'forwards stdin that is not a terminal, as the command reads it',
    async () => {
      const result = await spawnCli(['exec', '--name', NAME, '--', 'sh', '-c', 'wc -l; echo done'], 'one\ntwo\nthree\n');
      expect(result.exitCode, String(result.stderr)).toBe(0);
      expect(String(result.stdout).trim().split(/\s+/)).toEqual(['3', 'done']);
      const echoed = await spawnCli(['exec', '--name', NAME, '--', 'cat'], 'hello from the host\n');
      expect(String(echoed.stdout)).toBe('hello from the host\n');
      const ignored = await spawnCli(['exec', '--name', NAME, '--no-stdin', '--', 'cat'], 'not sent\n');
      expect(String(ignored.stdout)).toBe('');
    },
    TIMEOUT,
  );

  it(
    '--json prints one object; output that is not UTF-8 comes beside in base64',
    async () => {
      const result = await cli(['exec', '--name', NAME, '--json', '--', 'sh', '-c', 'echo out; echo err >&2; exit 2']);
      expect(result.exitCode).toBe(2);
      expect(result.stdout.trim().split('\n')).toHaveLength(1);
      expect(result.json).toEqual({ exitCode: 2, stdout: 'out\n', stderr: 'err\n' });
      const binary = await cli(['exec', '--name', NAME, '--json', '--', 'sh', '-c', "printf 'a\\377b'; kill -15 $$"]);
      expect(binary.json).toEqual({ exitCode: 143, signal: 15, stdout: 'a\uFFFDb', stderr: '', stdoutBase64: Buffer.from([0x61, 0xff, 0x62]).toString('base64') });
    },
    TIMEOUT,
  );

  it(
    '--timeout stops the command and what it started, and exits 124 with the output so far',
    async () => {
      const result = await cli(['exec', '--name', NAME, '--timeout', '1', '--json', '--', 'sh', '-c', 'echo started; sleep 3131 & wait']);
      expect(result.exitCode).toBe(124);
      expect(result.json).toMatchObject({ outcome: 'failed', error: { code: 'E_EXEC_TIMEOUT' }, stdout: 'started\n' });
      expect(await guestProcesses()).not.toContain('sleep 3131');
    },
    TIMEOUT,
  );

  it(
    'Ctrl-C stops the guest command and exits 130',
    async () => {
      const run = spawnCli(['exec', '--name', NAME, '--', 'sh', '-c', 'echo ready; sleep 3132']);
      await watchFor(run.stdout as NodeJS.ReadableStream).until('ready');
      run.kill('SIGINT');
      const result = await run;
      expect(result.exitCode).toBe(130);
      expect(String(result.stderr)).toContain('stopped (Ctrl-C)');
      expect(await guestProcesses()).not.toContain('sleep 3132');
    },
    EVENT_TIMEOUT,
  );

  it(
    'a second exec waits for the agent while the first holds it, then runs',
    async () => {
      const first = spawnCli(['exec', '--name', NAME, '--', 'sh', '-c', 'echo one; sleep 2; echo one-done']);
      await watchFor(first.stdout as NodeJS.ReadableStream).until('one');
      const second = await spawnCli(['exec', '--name', NAME, '--', 'echo', 'two']);
      const firstResult = await first;
      expect(second.exitCode, String(second.stderr)).toBe(0);
      expect(String(second.stdout)).toBe('two\n');
      expect(String(firstResult.stdout)).toBe('one\none-done\n');
    },
    TIMEOUT,
  );

  it(
    'an exec that finds the agent held longer than it waits says busy, naming the holder, and the holder runs on',
    async () => {
      // The agent's socket answers one client: without the lock the second would wait blind and then blame the agent.
      const holder = spawnCli(['exec', '--name', NAME, '--', 'sh', '-c', 'echo holding; sleep 14; echo held']);
      await watchFor(holder.stdout as NodeJS.ReadableStream).until('holding');
      const busy = await cli(['exec', '--name', NAME, '--json', '--', 'true']);
      expect(busy.exitCode).toBe(125);
      expect(busy.json).toMatchObject({ outcome: 'failed', error: { code: 'E_AGENT_BUSY', message: expect.stringContaining(`pid ${holder.pid}`) } });
      const held = await holder;
      expect(held.exitCode).toBe(0);
      expect(String(held.stdout)).toBe('holding\nheld\n');
    },
    TIMEOUT,
  );

  it(
    'an agent that does not answer (the VM paused) is said so, with the fix',
    async () => {
      const qmp = await QmpClient.connect(instancePaths(E2E_HOME, NAME).qmpSocket);
      try {
        await qmp.execute('stop');
        const silent = await cli(['exec', '--name', NAME, '--', 'true']);
        expect(silent.exitCode).toBe(125);
        expect(silent.stderr).toContain(`the guest agent of instance "${NAME}" does not answer`);
        expect(silent.stderr).toContain('fix: is qemu-guest-agent running in the guest?');
      } finally {
        await qmp.execute('cont');
        await qmp.close();
      }
      expect((await cli(['exec', '--name', NAME, '--', 'true'])).exitCode).toBe(0);
    },
    TIMEOUT,
  );

  it(
    'logs prints the console; logs -f sees a line written after it started and ends with 0 on Ctrl-C',
    async () => {
      expect((await cli(['exec', '--name', NAME, '--', 'sh', '-c', 'echo LOG-BEFORE >/dev/console'])).exitCode).toBe(0);
      const printed = await cli(['logs', '--name', NAME]);
      expect(printed.exitCode, printed.stderr).toBe(0);
      expect(printed.stdout).toContain('LOG-BEFORE');
      const qemuLog = await cli(['logs', '--name', NAME, '--qemu']);
      expect(qemuLog.stdout).toContain('qemu-system-x86_64');

      const follow = spawnCli(['logs', '--name', NAME, '-f']);
      const seen = watchFor(follow.stdout as NodeJS.ReadableStream);
      await seen.until('LOG-BEFORE');
      expect(seen.seen()).not.toContain('LOG-AFTER');
      expect((await cli(['exec', '--name', NAME, '--', 'sh', '-c', 'echo LOG-AFTER >/dev/console'])).exitCode).toBe(0);
      await seen.until('LOG-AFTER');
      follow.kill('SIGINT');
      expect((await follow).exitCode).toBe(0);
    },
    EVENT_TIMEOUT,
  );

  it(
    'logs -f follows across a restart: the new console from its start, with a note',
    async () => {
      const follow = spawnCli(['logs', '--name', NAME, '-f']);
      const out = watchFor(follow.stdout as NodeJS.ReadableStream);
      const err = watchFor(follow.stderr as NodeJS.ReadableStream);
      await out.until('LOG-AFTER');
      expect((await cli(['stop', '--name', NAME])).exitCode).toBe(0);
      const started = await cli(['start', '--name', NAME, '--json']);
      expect(started.json.outcome, started.stderr).toBe('healthy');
      expect((await cli(['exec', '--name', NAME, '--', 'sh', '-c', 'echo LOG-RESTARTED >/dev/console'])).exitCode).toBe(0);
      await out.until('LOG-RESTARTED');
      await err.until('written anew');
      follow.kill('SIGINT');
      expect((await follow).exitCode).toBe(0);
    },
    EVENT_TIMEOUT,
  );

  it(
    'clear errors: no such instance, no agent, not running; logs of a stopped instance is its last run',
    async () => {
      const none = await cli(['exec', '--name', 'el-never', '--json', '--', 'true']);
      expect(none.exitCode).toBe(125);
      expect(none.json).toMatchObject({ outcome: 'failed', error: { code: 'E_NO_INSTANCE' } });

      const config = await caseConfig(NO_AGENT, { agent: false, rotation: false });
      const cold = await cli(['start', '--name', NO_AGENT, '--config', config, '--cold', '--json']);
      expect(cold.json.outcome, cold.stderr + cold.stdout).toBe('healthy');
      const noAgent = await cli(['exec', '--name', NO_AGENT, '--', 'true']);
      expect(noAgent.exitCode).toBe(125);
      expect(noAgent.stderr).toContain('has no guest agent');
      expect(noAgent.stderr).toContain('"agent": true');

      expect((await cli(['stop', '--name', NAME])).exitCode).toBe(0);
      const stopped = await cli(['exec', '--name', NAME, '--json', '--', 'true']);
      expect(stopped.exitCode).toBe(125);
      expect(stopped.json).toMatchObject({ outcome: 'failed', error: { code: 'E_NOT_RUNNING' } });
      const lastRun = await cli(['logs', '--name', NAME]);
      expect(lastRun.exitCode).toBe(0);
      expect(lastRun.stdout).toContain('LOG-RESTARTED');
      expect(lastRun.stderr).toContain('is not running: this is');
    },
    TIMEOUT,
  );
});
