// Fencing's effects: the levels run in order against a lost node, each result recorded, and the
// RBD locks of a VM about to be recovered broken. The effects interface is all this file touches;
// the controller wires it to drivers/fence and drivers/rbd.
//
// Invariants:
//   E1  A level succeeds only when its driver call resolved: ipmi = an "off" read after the off
//       command (drivers/fence), command = exit 0, storage = `ceph osd blocklist add` answered.
//       Any throw is that level's failure, recorded with its reason, and the next level is tried.
//   E2  No result or log line holds a secret: messages come from FenceError / RbdError (which hold
//       none) or from formatNodeFence; settings are never logged.
import { isIPv6 } from 'node:net';
import type { Logger } from 'pino';
import type { FenceLevel, FenceResult, NodeFence } from '../../schemas/index.ts';

export interface FenceEffects {
  /** ipmitool power off, verified off (then on when the settings say so). */
  powerOff(settings: NonNullable<NodeFence['ipmi']>): Promise<void>;
  /** The configured command; resolves on exit 0. */
  runCommand(settings: NonNullable<NodeFence['command']>, node: string): Promise<void>;
  /** Whether this coordinator can reach Ceph (its daemon has the RBD concern configured). */
  readonly storage: boolean;
  blocklistAdd(address: string, ttlS: number): Promise<void>;
  blocklistRemove(address: string): Promise<void>;
  /**
   * Every lock of the image, broken; resolves to the lockers removed. `blocklistClients`: each
   * locker's client instance is blocklisted as its lock is broken (needed when the node's own
   * address is not blocklisted: it ends the dead client's watch at once).
   */
  breakLocks(image: string, opts: { blocklistClients: boolean }): Promise<string[]>;
  readonly log: Logger;
  onAction?(line: string): void;
}

export interface LevelsOutcome {
  level: FenceLevel | undefined;
  results: FenceResult[];
  /** The storage level's entry (to lift on ready). */
  blocklist?: { address: string; ttlS: number };
}

function errorParts(err: unknown): { reason?: string; message: string } {
  const e = err as { reason?: unknown; message?: unknown };
  const reason = typeof e?.reason === 'string' ? e.reason : undefined;
  const message = typeof e?.message === 'string' ? e.message : String(err);
  return { ...(reason !== undefined ? { reason } : {}), message: message.slice(0, 1000) };
}

/** The blocklist entry of a node's storage address: every client from it (`ADDR:0/0`). */
export function blocklistEntry(address: string): string {
  return isIPv6(address) ? `[${address}]:0/0` : `${address}:0/0`;
}

/**
 * Tries the node's levels in order (ipmi → command → storage) until one succeeds (E1).
 * `storageAddress`: the node's published storage address (the storage level's default).
 */
export async function runLevels(node: string, settings: NodeFence | null, storageAddress: string | undefined, fx: FenceEffects, now: () => Date = () => new Date()): Promise<LevelsOutcome> {
  const results: FenceResult[] = [];
  const attempt = async (level: FenceLevel, act: () => Promise<string>): Promise<boolean> => {
    const t0 = performance.now();
    const at = now().toISOString();
    try {
      const message = await act();
      results.push({ level, ok: true, message, ms: Math.round(performance.now() - t0), at });
      fx.onAction?.(`fence ${node}: ${level} succeeded: ${message}`);
      return true;
    } catch (err) {
      const { reason, message } = errorParts(err);
      results.push({ level, ok: false, ...(reason !== undefined ? { reason } : {}), message, ms: Math.round(performance.now() - t0), at });
      fx.onAction?.(`fence ${node}: ${level} failed${reason ? ` (${reason})` : ''}: ${message}`);
      fx.log.warn({ fenced: node, fenceLevel: level, reason, message }, `fence ${node}: ${level} failed`);
      return false;
    }
  };
  if (settings?.ipmi) {
    const ipmi = settings.ipmi;
    if (await attempt('ipmi', async () => {
      await fx.powerOff(ipmi);
      return `power off verified through ${ipmi.host}:${ipmi.port}`;
    })) return { level: 'ipmi', results };
  }
  if (settings?.command) {
    const command = settings.command;
    if (await attempt('command', async () => {
      await fx.runCommand(command, node);
      return 'the fence command exited 0';
    })) return { level: 'command', results };
  }
  if (settings?.storage) {
    const address = settings.storage.address ?? storageAddress;
    const ttlS = settings.storage.ttlS;
    const ok = await attempt('storage', async () => {
      if (!fx.storage) throw Object.assign(new Error('this coordinator has no Ceph access (its daemon config has rbd.enabled false)'), { reason: 'StorageUnavailable' });
      if (address === undefined) throw Object.assign(new Error(`${node} has published no storage address and its fence settings name none`), { reason: 'NoStorageAddress' });
      await fx.blocklistAdd(blocklistEntry(address), ttlS);
      return `blocklisted ${blocklistEntry(address)} for ${ttlS} s`;
    });
    if (ok) return { level: 'storage', results, blocklist: { address: blocklistEntry(address!), ttlS } };
  }
  return { level: undefined, results };
}
