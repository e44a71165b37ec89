import type { Logger } from 'pino';

export interface CleanupHandle {
  /** Forget this step: the resource is handed on (a QEMU left running on success). */
  release(): void;
  /** Run this step now, once; later `runAll` skips it. */
  run(): Promise<void>;
}

interface Step {
  name: string;
  fn: () => Promise<void> | void;
  done: boolean;
}

/**
 * Cleanup registered as each resource comes to exist and run once, in reverse, on every path
 * (firecracker's and Lima's pattern). A failing step is logged and the rest still run.
 */
export class CleanupStack {
  private readonly steps: Step[] = [];
  private running: Promise<void> | undefined;

  constructor(private readonly logger?: Logger) {}

  add(name: string, fn: () => Promise<void> | void): CleanupHandle {
    const step: Step = { name, fn, done: false };
    this.steps.push(step);
    return {
      release: () => {
        step.done = true;
      },
      run: async () => {
        await this.runStep(step);
      },
    };
  }

  get pending(): string[] {
    return this.steps.filter((step) => !step.done).map((step) => step.name);
  }

  async runAll(): Promise<void> {
    this.running ??= (async () => {
      for (const step of [...this.steps].reverse()) await this.runStep(step);
    })();
    await this.running;
  }

  private async runStep(step: Step): Promise<void> {
    if (step.done) return;
    step.done = true;
    try {
      await step.fn();
    } catch (error) {
      this.logger?.warn({ err: error, step: step.name }, 'cleanup step failed');
    }
  }
}
