// The FRR concern's effects: one pass makes FRR run the rendered config and reads back its state,
// all through the FrrDriver (drivers/frr). The order is the proof: write frr.conf if it differs,
// `frr-reload.py --test`, reload only on a delta (then test again: an empty delta is "in sync"),
// then read the sessions and VNIs.
import type { Logger } from 'pino';
import { FrrError, type BgpPeerObservation, type FrrDriver, type VniObservation } from '../../drivers/frr/types.ts';
import type { FrrState } from '../../schemas/index.ts';
import { deltaLines, isEmptyDelta, judgeDelta } from './plan.ts';

export interface FrrPassResult {
  state: FrrState;
  message?: string;
  /** frr.conf was rewritten this pass. */
  wrote: boolean;
  reloaded: boolean;
  /** The delta found although frr.conf already held the rendered text (P2). */
  drift?: string[];
  peers: BgpPeerObservation[];
  vnis: VniObservation[];
}

export interface FrrPassContext {
  node: string;
  driver: FrrDriver;
  log: Logger;
  onAction?(line: string): void;
}

const STATE_OF_REASON: Record<FrrError['reason'], FrrState> = {
  FrrUnreachable: 'FrrUnreachable',
  ReloadFailed: 'ReloadFailed',
  FrrCommandFailed: 'Failed',
};

export async function runFrrPass(text: string, ctx: FrrPassContext): Promise<FrrPassResult> {
  const { driver, log, node } = ctx;
  const result: FrrPassResult = { state: 'InSync', wrote: false, reloaded: false, peers: [], vnis: [] };
  try {
    if ((await driver.readConfig()) !== text) {
      await driver.writeConfig(text);
      result.wrote = true;
      ctx.onAction?.(`${node} frr write frr.conf`);
      log.info({ concern: 'frr' }, 'frr.conf rewritten from the cluster config');
    }
    const delta = await driver.delta();
    const verdict = judgeDelta(delta, result.wrote);
    if (verdict.drift) {
      result.drift = deltaLines(delta);
      ctx.onAction?.(`${node} frr drift ${result.drift.length} lines`);
      log.warn({ concern: 'frr', reason: 'FrrDrift', lines: result.drift }, `FRR's running config differs from frr.conf (${result.drift.length} lines: a hand edit, or FRR restarted without it); reloading`);
    }
    if (verdict.reload) {
      await driver.reload();
      result.reloaded = true;
      ctx.onAction?.(`${node} frr reload ${delta.toAdd.length} to add ${delta.toDelete.length} to delete`);
      const after = await driver.delta();
      if (!isEmptyDelta(after)) {
        const lines = deltaLines(after);
        result.state = 'ReloadFailed';
        result.message = `frr-reload.py --reload left ${lines.length} lines different: ${lines.slice(0, 5).join('; ')}`;
        log.error({ concern: 'frr', reason: 'ReloadFailed', lines }, result.message);
      } else log.info({ concern: 'frr', added: delta.toAdd.length, deleted: delta.toDelete.length }, 'FRR reloaded; running config in sync');
    }
    result.peers = await driver.bgpPeers();
    result.vnis = await driver.evpnVnis();
  } catch (error) {
    if (!(error instanceof FrrError)) throw error;
    result.state = STATE_OF_REASON[error.reason];
    result.message = error.message;
  }
  return result;
}
