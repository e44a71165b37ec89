import { execa, type ResultPromise } from 'execa';

/**
 * Makes a running QEMU slow to answer, for real: strace delays every sendmsg it makes (its QMP
 * replies among them) by `delayMs`, until `stop()` detaches. A capture takes milliseconds; a
 * slow QEMU holds it in one state long enough for a test to interrupt it there.
 */
export async function slowQemuReplies(pid: number, delayMs: number): Promise<{ stop(): Promise<void> }> {
  const tracer: ResultPromise = execa('strace', ['-f', '-qq', '-p', String(pid), '-e', 'trace=sendmsg', '-e', `inject=sendmsg:delay_enter=${delayMs * 1000}`, '-o', '/dev/null'], {
    reject: false,
    stdin: 'ignore',
  });
  // strace says nothing once attached: give it a moment to stop every thread.
  await new Promise((resolve) => setTimeout(resolve, 300));
  if (tracer.exitCode !== null && tracer.exitCode !== undefined) throw new Error(`strace could not attach to QEMU ${pid}: ${(await tracer).stderr}`);
  return {
    async stop() {
      tracer.kill('SIGTERM');
      await tracer;
    },
  };
}
