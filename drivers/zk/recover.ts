// What to do when a call was sent and the connection dropped before its reply (ConnectionLoss):
// the request may or may not have been applied. ZooKeeper cannot tell us, so we look.
//
// - Reads are simply sent again once connected.
// - Versioned writes verify and retry: after the loss we wait for a connection (bounded), read
//   the znode and decide: the write landed (same data at the next version / node gone / node
//   created with our data and owner) → success; it did not (znode still at the version we
//   expected / still absent) → send it again (the CAS makes a double apply impossible); anything
//   else → the outcome stays unknown → ConnectionLossError.
// - A retry that fails with the error our own first attempt would cause if it landed late
//   (BAD_VERSION for set, NO_NODE for delete, NODE_EXISTS for create) is verified once more.
// - Sequential creates and multi are not retried: ConnectionLossError (outcome unknown).
import { ConnectionLossError } from './errors.ts';

const MAX_RETRIES = 3;

export type Verdict<T> = { landed: T } | 'retry' | 'ambiguous';

function retriableLoss(e: unknown): e is ConnectionLossError {
  return e instanceof ConnectionLossError && e.inFlight;
}

/** A read: sent again after an in-flight connection loss (never after a connection wait timed out). */
export async function readWithRetry<T>(read: () => Promise<T>): Promise<T> {
  for (let i = 0; ; i++) {
    try {
      return await read();
    } catch (e) {
      if (!retriableLoss(e) || i >= MAX_RETRIES) throw e;
    }
  }
}

export interface WriteRecovery<T> {
  attempt(): Promise<T>;
  /** Read the znode and judge whether the lost write landed. May throw (e.g. NoNodeError for a set). */
  verify(): Promise<Verdict<T>>;
  /** The error a retry gets if the lost attempt landed after all. */
  isOwnEcho(e: unknown): boolean;
}

export async function writeWithRecovery<T>(w: WriteRecovery<T>): Promise<T> {
  let loss: ConnectionLossError;
  try {
    return await w.attempt();
  } catch (e) {
    if (!retriableLoss(e)) throw e;
    loss = e;
  }
  for (let i = 0; i < MAX_RETRIES; i++) {
    const verdict = await w.verify();
    if (verdict === 'ambiguous') throw loss;
    if (verdict !== 'retry') return verdict.landed;
    try {
      return await w.attempt();
    } catch (e) {
      if (retriableLoss(e)) {
        loss = e;
        continue;
      }
      if (!w.isOwnEcho(e)) throw e;
      const again = await w.verify();
      if (again !== 'retry' && again !== 'ambiguous') return again.landed;
      throw e;
    }
  }
  throw loss;
}
