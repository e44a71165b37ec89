import type { Logger } from './logger.js';

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
  private closed = false;

  constructor(private readonly logger?: Logger) {}

  add(name: string, fn: () => Promise<void> | void): CleanupHandle {
    const step: Step = { name, fn, done: false };
    this.steps.push(step);
    // A resource that appears after the stack ran has no owner left: clean it at once.
    if (this.closed) void this.runStep(step);
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

  /** Runs every pending step, newest first, including steps added while it runs. */
  async runAll(): Promise<void> {
    this.running ??= (async () => {
      for (let step = this.newestPending(); step; step = this.newestPending()) await this.runStep(step);
      this.closed = true;
    })();
    await this.running;
  }

  private newestPending(): Step | undefined {
    for (let index = this.steps.length - 1; index >= 0; index -= 1) if (!this.steps[index]?.done) return this.steps[index];
    return undefined;
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
