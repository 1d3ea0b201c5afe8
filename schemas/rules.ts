import { z } from 'zod';

/** An integer within [min, max], with one message for every way of missing it. */
export function intInRange(min: number, max: number = Number.MAX_SAFE_INTEGER) {
  let rule: string;
  if (max !== Number.MAX_SAFE_INTEGER) rule = `must be an integer from ${min} to ${max}`;
  else if (min === 1) rule = 'must be a positive integer';
  else if (min === 0) rule = 'must be a non-negative integer';
  else rule = `must be an integer >= ${min}`;
  return z.number({ error: rule }).int({ error: rule }).min(min, { error: rule }).max(max, { error: rule });
}

/** Adds an issue at `path[index]…suffix` for every repeated entry of a list. */
export function noDuplicates(
  list: readonly string[],
  ctx: z.RefinementCtx,
  path: PropertyKey[],
  kind: string,
  suffix: PropertyKey[] = [],
): void {
  const seen = new Map<string, number>();
  list.forEach((item, index) => {
    const first = seen.get(item);
    if (first === undefined) seen.set(item, index);
    else {
      ctx.addIssue({
        code: 'custom',
        path: [...path, index, ...suffix],
        input: item,
        params: { kind },
        message: `duplicate entry (same as [${first}])`,
      });
    }
  });
}
