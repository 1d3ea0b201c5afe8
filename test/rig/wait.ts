// The one polling helper of the test tree and the benchmarks.

/** How often waitFor asks its probe unless told otherwise. */
export const POLL_MS = 25;

/** What a probe may answer: undefined, null and false mean "not yet"; anything else is the result. */
export type Probe<T> = () => T | undefined | null | false | Promise<T | undefined | null | false>;

/**
 * Ask `probe` every `everyMs` until it answers something other than undefined, null or false,
 * and return that answer. The probe is always asked at least once, and once more after the
 * deadline has passed before giving up. A probe that throws counts as "not yet"; the last
 * error is named in the timeout error. `describe`, if given, is asked on timeout and its text
 * is appended to the error (a failure of its own is appended instead).
 */
export async function waitFor<T>(
  what: string,
  probe: Probe<T>,
  timeoutMs = 15_000,
  describe?: () => Promise<string> | string,
  everyMs = POLL_MS,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await probe();
      if (value !== undefined && value !== null && value !== false) return value;
    } catch (error) {
      last = error;
    }
    if (Date.now() > deadline) break;
    await new Promise((r) => setTimeout(r, everyMs));
  }
  const state = describe ? await Promise.resolve().then(describe).catch((e: unknown) => String(e)) : '';
  const lastText = last ? ` (last error: ${last instanceof Error ? last.message : String(last)})` : '';
  throw new Error(`timed out waiting for ${what}${lastText}${state ? `\n${state}` : ''}`, last ? { cause: last } : undefined);
}
