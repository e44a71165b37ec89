/**
 * First Ctrl-C (or SIGTERM): ask politely, so the machine stops what it started through its
 * own states. A second one: run the cleanup stack now and exit 130.
 */
export function onInterrupt(first: () => void, force: () => Promise<void>): () => void {
  let count = 0;
  const handler = (): void => {
    count += 1;
    if (count === 1) {
      first();
      return;
    }
    void force().finally(() => process.exit(130));
  };
  process.on('SIGINT', handler);
  process.on('SIGTERM', handler);
  process.on('SIGHUP', handler);
  return () => {
    process.off('SIGINT', handler);
    process.off('SIGTERM', handler);
    process.off('SIGHUP', handler);
  };
}
