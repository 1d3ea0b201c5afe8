// The primary coordinator's rig, shared by test/primary/handover.test.ts and bench/handover.ts:
// netns nodes on a fabric, real FRR in each, a real ZooKeeper, the cluster config with BGP and
// the nodes' addresses, the given networks, and a `vk daemon` child process per node with the
// network, FRR and primary concerns (so a test can SIGKILL or SIGSTOP one).
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { decodePrimaryRecord, encodeNetworkSpec, type NetworkSpecInput, type PrimaryRecord } from '../../schemas/index.ts';
import { Cluster, paths } from './cluster.ts';
import { evpnConverged, startFrrNode, type FrrNode } from './frr.ts';
import { createFabric, type Fabric } from './netns.ts';
import { waitFor } from './wait.ts';

export interface PrimaryRigOptions {
  nodes: string[];
  coordinators: string[];
  networks: Array<[number, NetworkSpecInput]>;
  sessionTimeoutMs: number;
  barrierMs: number;
  leaseTimeS?: number;
}

export interface PrimaryRig {
  rig: Cluster;
  fabric: Fabric;
  frr: Map<string, FrrNode>;
  nsOf(node: string): string;
  addrOf(node: string): string;
  /** The node's primary.runDir (dnsmasq's pidfiles, logs, leases). */
  runDirOf(node: string): string;
  /** Starts the node's daemon as a child process. */
  spawn(node: string): Promise<unknown>;
  /** /config/primary with its version, null while absent. */
  record(): Promise<(PrimaryRecord & { version: number; raw: Record<string, unknown> }) | null>;
  /** Resolves once `node` is primary (phase primary). */
  primaryIs(node: string, timeoutMs?: number): Promise<PrimaryRecord>;
  /** Asks for a hand-over to `to` as `vk node primary` does (the request in /config/primary). */
  requestHandover(to: string): Promise<void>;
  /** Whether the node holds `address` on vkgw<vni>. */
  holds(node: string, vni: number, address: string): boolean;
  /** Every node's zebra knows every other node as a remote VTEP of `vni`. */
  evpnConverged(vni: number): Promise<void>;
  cleanup(): Promise<void>;
}

export async function startPrimaryRig(o: PrimaryRigOptions): Promise<PrimaryRig> {
  const fabric = createFabric(o.nodes.length);
  const nsOf = (node: string) => fabric.hosts[o.nodes.indexOf(node)]!.ns;
  const addrOf = (node: string) => fabric.hosts[o.nodes.indexOf(node)]!.addr;
  const frr = new Map<string, FrrNode>();
  let rig: Cluster | undefined;
  const cleanup = async () => {
    await rig?.cleanup();
    for (const f of frr.values()) await f.cleanup();
    fabric.cleanup();
  };
  try {
    rig = await Cluster.start('test', {
      nodes: o.nodes,
      clusterConfig: {
        coordinators: o.coordinators,
        bgp: { asn: 65500, keepaliveS: 1, holdS: 3, connectRetryS: 1 },
        nodes: Object.fromEntries(o.nodes.map((n) => [n, { clusterAddress: addrOf(n) }])),
      },
    });
    for (const node of o.nodes) frr.set(node, await startFrrNode({ name: node, netns: nsOf(node) }));
    for (const [vni, spec] of o.networks) await rig.store.create(paths.networkSpec(vni), encodeNetworkSpec(spec), { parents: true });
  } catch (error) {
    await cleanup();
    throw error;
  }
  const r = rig;
  const runDirOf = (node: string) => join(r.work, `${node}-primary`);
  const record = async () => {
    const got = await r.store.get(paths.primary);
    if (!got) return null;
    const text = got.data.toString('utf8');
    return { ...decodePrimaryRecord(text), version: got.version, raw: JSON.parse(text) as Record<string, unknown> };
  };
  return {
    rig: r,
    fabric,
    frr,
    nsOf,
    addrOf,
    runDirOf,
    spawn: (node) =>
      r.spawnDaemon(node, {
        netns: nsOf(node),
        resyncMs: 600_000,
        zookeeper: { hosts: r.zk.connectString, sessionTimeoutMs: o.sessionTimeoutMs },
        network: { enabled: true, group: 4244 },
        frr: { enabled: true, confDir: frr.get(node)!.dir, vtySocket: frr.get(node)!.dir, runDir: frr.get(node)!.dir, hostname: node, resyncMs: 5_000 },
        primary: { enabled: true, runDir: runDirOf(node), barrierMs: o.barrierMs, ...(o.leaseTimeS !== undefined ? { leaseTimeS: o.leaseTimeS } : {}) },
        // The tests read what the daemons did, in order, from their logs.
        logLevel: 'info',
      } as never),
    record,
    primaryIs: (node, timeoutMs = 20_000) =>
      waitFor(
        `${node} primary`,
        async () => {
          const got = await record();
          return got?.node === node && got.phase === 'primary' ? got : false;
        },
        timeoutMs,
        async () => JSON.stringify(await record()),
      ),
    async requestHandover(to) {
      const got = (await record())!;
      await r.store.set(paths.primary, JSON.stringify({ ...got.raw, request: { to, at: new Date().toISOString() } }), got.version);
    },
    holds(node, vni, address) {
      try {
        return execFileSync('ip', ['-n', nsOf(node), '-j', 'addr', 'show', 'dev', `vkgw${vni}`], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).includes(`"local":"${address}"`);
      } catch {
        return false;
      }
    },
    evpnConverged: (vni) => evpnConverged(o.nodes.map((n) => ({ node: frr.get(n)!, address: addrOf(n) })), vni),
    cleanup,
  };
}
