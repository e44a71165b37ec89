import type { InspectionEvent } from 'xstate';
import { WarmvmError } from '../../adapters/support/errors.js';
import type { InspectorModel, RunEnd } from '../../adapters/inspector/protocol.js';
import { startInspectorServer, type InspectorServer } from '../../adapters/inspector/server.js';
import { connectStatelyInspector, type StatelyInspector } from '../../adapters/inspector/stately.js';
import { describeEvent } from '../../adapters/trace/event.js';
import type { Exchange, TraceEntry } from '../../adapters/trace/record.js';
import type { Output } from '../output.js';

/** `--inspect`, `--inspect=PORT`, `--inspect=stately`, `--inspect=stately:ws://host:port`. */
export type InspectTarget = { kind: 'page'; port: number } | { kind: 'stately'; url: string };

/** Where `--inspect=stately` looks for Stately's inspector without a URL. */
export const DEFAULT_STATELY_URL = 'ws://localhost:8080';
const EXCHANGE_EVERY_MS = 100;

/** `--inspect`'s value as a target; undefined without the flag. */
export function parseInspectTarget(value: string | boolean | undefined): InspectTarget | undefined {
  if (value === undefined || value === false) return undefined;
  if (value === true || value === '') return { kind: 'page', port: 0 };
  if (value === 'stately') return { kind: 'stately', url: DEFAULT_STATELY_URL };
  if (value.startsWith('stately:')) return { kind: 'stately', url: value.slice('stately:'.length) };
  const port = Number(value);
  if (!Number.isInteger(port) || port < 0 || port > 65_535) {
    throw new WarmvmError('E_USAGE', `--inspect=${value} is neither a port nor "stately[:URL]"`, {
      hint: 'use --inspect, --inspect=PORT or --inspect=stately:ws://localhost:8080',
    });
  }
  return { kind: 'page', port };
}

/**
 * The inspector of one run: the local page, or Stately's WebSocket inspector. Fed the trace's
 * entries and the last exchanges as they happen; neither carries secrets.
 */
export class LiveInspector {
  private constructor(
    private readonly server: InspectorServer | undefined,
    private readonly stately: StatelyInspector | undefined,
  ) {}

  /** Opened before the run begins (see `begin`), so the time it takes is not in the run's trace. */
  static async open(target: InspectTarget, run: { model: InspectorModel; title: string }): Promise<LiveInspector> {
    if (target.kind === 'stately') {
      const stately = await connectStatelyInspector(target.url);
      if (!stately) {
        announce(`warmvm: WARNING: no Stately inspector answers at ${target.url}; running without it`);
        return new LiveInspector(undefined, undefined);
      }
      announce(`warmvm: inspection events go to the Stately inspector at ${target.url}`);
      return new LiveInspector(undefined, stately);
    }
    const server = await startInspectorServer({ port: target.port });
    announce(`warmvm: inspector at ${server.url}`);
    const inspector = new LiveInspector(server, undefined);
    inspector.hello = { model: run.model, title: run.title };
    return inspector;
  }

  private hello: { model: InspectorModel; title: string } | undefined;

  /** The run began at `startedAt` (its trace's clock): the page gets the machines and that time. */
  begin(startedAt: number): void {
    if (this.hello) this.server?.publish({ kind: 'hello', ...this.hello, live: true, startedAt, now: Date.now() });
  }

  get url(): string | undefined {
    return this.server?.url;
  }

  /** For createActor's `inspect`, next to the trace's. */
  get inspect(): ((event: InspectionEvent) => void) | undefined {
    return this.stately?.inspect;
  }

  entry(entry: TraceEntry): void {
    this.flushExchanges();
    this.server?.publish({ kind: 'entry', entry, summary: describeEvent(entry.event) });
  }

  /**
   * Polls (query-migrate every few ms) would flood the page: each channel's latest exchange goes
   * out at most every EXCHANGE_EVERY_MS, and all of them before the next state entry.
   */
  exchange(exchange: Exchange): void {
    if (!this.server) return;
    this.pending.set(exchange.channel, exchange);
    this.flushTimer ??= setTimeout(() => this.flushExchanges(), EXCHANGE_EVERY_MS);
  }

  private readonly pending = new Map<Exchange['channel'], Exchange>();
  private flushTimer: NodeJS.Timeout | undefined;

  private flushExchanges(): void {
    clearTimeout(this.flushTimer);
    this.flushTimer = undefined;
    const ordered = [...this.pending.values()].sort((a, b) => a.at - b.at);
    this.pending.clear();
    for (const exchange of ordered) this.server?.publish({ kind: 'exchange', exchange });
  }

  /** The run is over: the page shows how, and the command stays up until Ctrl-C so it can be read. */
  async finish(end: RunEnd, output: Output): Promise<void> {
    this.stately?.stop();
    if (!this.server) return;
    this.flushExchanges();
    this.server.publish({ kind: 'end', end });
    announce(`warmvm: the run is over (${end.outcome}); the inspector at ${this.server.url} keeps it. Press Ctrl-C to end.`);
    await untilInterrupted();
    output.progress.line('warmvm: inspector closed');
    await this.server.close();
  }
}

/** Said on stderr even with --json: the URL is how a person (or a test) finds the page. */
function announce(line: string): void {
  process.stderr.write(`${line}\n`);
}

/** Resolves at the first SIGINT, SIGTERM or SIGHUP, keeping Node alive until then. */
export function untilInterrupted(): Promise<void> {
  return new Promise((resolve) => {
    // A pending promise does not keep Node alive: this timer does, until the signal.
    const keepAlive = setInterval(() => undefined, 60_000);
    const done = (): void => {
      clearInterval(keepAlive);
      for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.off(signal, done);
      resolve();
    };
    for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.once(signal, done);
  });
}
