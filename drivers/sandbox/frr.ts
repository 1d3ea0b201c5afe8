// Each sandbox node's FRR: zebra and bgpd in the node's network namespace, under its hostname,
// with everything in DIR/<node>/frr (or /run/virtkeeper-sandbox/<prefix>/<node> when user frr
// cannot reach DIR) — started by `vk sandbox up` before the node's daemon, as
// systemd starts FRR on a real hypervisor (the daemon never starts FRR; it keeps its frr.conf).
// The recipe is the shared launcher (drivers/launch/frr.ts); here the daemons are recorded in
// sandbox.json and stopped by those records.
import { chmodSync, rmdirSync, rmSync, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { frrIds, frrInstalled, frrLogTail, startFrr, stopFrr } from '../launch/frr.ts';
import { isAlive } from '../launch/process.ts';
import { frrDir, type NodeState } from './state.ts';

export { frrDir };

/** The Debian packages FRR comes in (frr-pythontools has frr-reload.py, which the daemon reloads FRR with). */
export const FRR_PACKAGES = ['frr', 'frr-pythontools'] as const;

/** Why the sandbox cannot run FRR here (with what to do), or undefined when it can. */
export function frrProblem(): string | undefined {
  const why = frrInstalled();
  if (why === undefined) return undefined;
  if (process.getuid?.() !== 0) return `FRR cannot be started: ${why}`;
  return `FRR is needed (every sandbox node runs zebra and bgpd), but ${why}. Install it: apt-get install -y --no-install-recommends ${FRR_PACKAGES.join(' ')} (test/rig/install-deps.sh installs it for the test suite)`;
}

/** Can user frr (ids) search directory `path`? Mode bits only (other, or owner/group frr). */
function searchable(path: string, ids: { uid: number; gid: number }): boolean {
  const st = statSync(path);
  return (st.mode & 0o001) !== 0 || (st.uid === ids.uid && (st.mode & 0o100) !== 0) || (st.gid === ids.gid && (st.mode & 0o010) !== 0);
}

/** Where FRR's files go when user frr cannot reach DIR (a sandbox under /root, which is 0700). */
export const FRR_RUN_BASE = '/run/virtkeeper-sandbox';

/**
 * FRR drops to user frr, which must be able to reach DIR/<node>/frr. `own` (DIR, DIR/<node>:
 * the sandbox's directories) get o+x — search, not read — when frr cannot search them (mkdtemp
 * makes 0700). Answers the first directory above them that frr cannot search (then the caller
 * puts FRR's files under FRR_RUN_BASE instead), or undefined.
 */
export function letFrrReach(own: readonly string[]): string | undefined {
  const ids = frrIds();
  if (!ids) throw new Error('there is no user frr (the frr package makes it)');
  const mine = new Set(own.map((d) => resolve(d)));
  for (const d of mine) {
    for (let p = dirname(d); ; p = dirname(p)) {
      if (!mine.has(p) && !searchable(p, ids)) return p;
      if (p === dirname(p)) break;
    }
  }
  for (const d of mine) {
    if (!searchable(d, ids)) chmodSync(d, (statSync(d).mode & 0o7777) | 0o001);
  }
  return undefined;
}

/** Removes FRR dirs kept outside DIR (under FRR_RUN_BASE), and their parents there once empty. */
export function removeOutsideFrrDirs(nodes: readonly NodeState[]): void {
  for (const node of nodes) {
    if (node.frrDir === undefined || !node.frrDir.startsWith(`${FRR_RUN_BASE}/`)) continue;
    rmSync(node.frrDir, { recursive: true, force: true });
    for (let p = dirname(node.frrDir); p.startsWith(`${FRR_RUN_BASE}/`) || p === FRR_RUN_BASE; p = dirname(p)) {
      try {
        rmdirSync(p);
      } catch {
        break; // not empty, or gone
      }
    }
  }
}

/**
 * Starts the node's zebra and bgpd. loadConfig: read DIR/<node>/frr/frr.conf once they serve, as
 * systemd's frr.service does on boot (a restarted FRR); a new node has none: its daemon writes it.
 */
export async function startNodeFrr(node: NodeState, opts: { loadConfig: boolean }): Promise<NonNullable<NodeState['frr']>> {
  const h = await startFrr({ netns: node.netns, hostname: node.name, dir: frrDir(node), loadConfig: opts.loadConfig });
  return { zebra: h.zebra, bgpd: h.bgpd };
}

/** SIGKILL to the node's zebra and bgpd by their recorded PIDs, waiting until every thread is gone. */
export function stopNodeFrr(frr: NonNullable<NodeState['frr']>): Promise<void> {
  return stopFrr(frr);
}

/** Both recorded daemons run. */
export function frrRunning(node: NodeState): boolean {
  return node.frr !== undefined && isAlive(node.frr.zebra) && isAlive(node.frr.bgpd);
}

/** The last lines of the node's zebra and bgpd logs. */
export function nodeFrrLogTail(node: NodeState, lines = 20): string {
  return [frrLogTail(frrDir(node), 'zebra', lines), frrLogTail(frrDir(node), 'bgpd', lines)].filter((s) => s !== '').join('\n');
}
