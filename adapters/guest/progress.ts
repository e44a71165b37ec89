import type { Logger } from '../support/logger.js';

/** A guest build's progress: each line goes to its log at info and to the caller's `onProgress`, when given. */
export function reportProgress(logger: Logger, onProgress: ((line: string) => void) | undefined): (line: string) => void {
  return (line) => {
    logger.info(line);
    onProgress?.(line);
  };
}
