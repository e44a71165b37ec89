/** Resumes of one snapshot in a row whose guest failed after `cont` (rotation, health) before it is set aside. */
export const FAILURES_BEFORE_SET_ASIDE = 2;

const AFTER_CONT_STATES: ReadonlySet<string> = new Set(['resume.rotating', 'resume.probing']);

/**
 * The guest ran from the snapshot and then failed (once may be the workload's fault, twice in a
 * row is the snapshot's). Ctrl-C is nobody's failure.
 */
export function failedAfterCont(failure: { state: string; code: string }): boolean {
  return AFTER_CONT_STATES.has(failure.state) && failure.code !== 'E_INTERRUPTED';
}
