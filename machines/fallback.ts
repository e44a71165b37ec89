import { isErrorCode, type ErrorCode } from '../shapes/error-codes.js';
import type { CaptureOutput } from './capture.js';
import type { FailedOutput, Failure } from './failure.js';
import type { ResumeOutput } from './resume.js';

/** What a child machine the fallback may follow (resume, capture) ended with. */
export type ChildOutput = ResumeOutput | CaptureOutput;

/**
 * Resume failures that mean the snapshot itself is bad: it is set aside and captured anew. Only
 * while reading it (preparing) or loading it (incoming): a later failure says nothing about it.
 */
const SNAPSHOT_DAMAGE: ReadonlySet<ErrorCode> = new Set<ErrorCode>(['E_SNAPSHOT_CORRUPT', 'E_SNAPSHOT_MISSING', 'E_MIGRATION_INCOMING', 'E_NOT_PAUSED']);
const SNAPSHOT_READING_STATES: ReadonlySet<string> = new Set(['resume.preparing', 'resume.incoming']);

/** The fallback edge may be taken: not yet taken, no Ctrl-C, and the child's QEMU stopped (else two would run). */
export function fallbackAllowed(run: { fallbackTaken: boolean; interrupted: boolean }, output: ChildOutput): output is FailedOutput {
  return output.outcome === 'failed' && !run.fallbackTaken && !run.interrupted && output.stopError === undefined;
}

/** The set-aside decision (invariant 6): the failure is the snapshot's own. */
export function snapshotDamaged(failure: Failure): boolean {
  return isErrorCode(failure.code) && SNAPSHOT_DAMAGE.has(failure.code) && SNAPSHOT_READING_STATES.has(failure.state);
}

/** A failure the fallback does not follow: says why, when it is because a QEMU may still run. */
export function noFallbackFailure(failure: Failure, stopError: string | undefined): Failure {
  if (stopError === undefined) return failure;
  return {
    ...failure,
    message: `${failure.message}; its QEMU could not be stopped, so no cold boot was tried (two QEMUs of one instance must never run at once)`,
    hint: 'run "warmvm stop" (it kills a QEMU that ignores SIGTERM), then start again',
  };
}

/** Taking the fallback edge: note why, forget the failed steps, decide whether to capture again. */
export function fallbackEdge(output: ChildOutput, captureAgain: boolean) {
  if (output.outcome !== 'failed') return {};
  return { fallbackTaken: true, fallbackReason: `${output.failure.state}: ${output.failure.message}`, steps: [], captureAfterCold: captureAgain };
}
