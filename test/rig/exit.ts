// One way for the rig's launchers to clean up when the test process ends without their cleanup():
// at exit, and on SIGINT/SIGTERM (then exiting 130/143). Each cleanup is synchronous (an exiting
// process runs no more async work) and registered once.
const cleanups = new Set<() => void>();
let hooked = false;

function runAll(): void {
  for (const fn of [...cleanups]) {
    try {
      fn();
    } catch {
      // best effort: the next cleanup still runs
    }
  }
}

/** Runs `cleanup` when the process exits or is interrupted (once per function, however often registered). */
export function cleanupAtExit(cleanup: () => void): void {
  cleanups.add(cleanup);
  if (hooked) return;
  hooked = true;
  process.once('exit', runAll);
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.once(sig, () => {
      runAll();
      process.exit(sig === 'SIGINT' ? 130 : 143);
    });
  }
}
