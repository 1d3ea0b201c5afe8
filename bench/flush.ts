// flush: the time to flush 100 VMs off hv1 (three nodes, libvirt test driver, shutdown
// migrations, real ZooKeeper, one `vk daemon` process per node — BENCH_INPROC=1 runs the three
// daemons in this process instead) with the per-node migration limit
// (ClusterConfig migration.maxOutgoing) at 1 and at 8, and their ratio. Timed from the node spec
// write to the node status saying flushed for that spec version (seen through a watch). Between the
// two, `ready` brings everything back. maxIncoming is 8 so targets never hold the flush back.
// Usage: npm run bench -- flush [VMS]   (default 100)
import { firstValueFrom, filter } from 'rxjs';
import { decodeNodeStatus, encodeClusterConfig, type ClusterConfigInput } from '../schemas/index.ts';
import { Cluster, paths } from '../test/rig/cluster.ts';
import { waitFor } from '../test/rig/wait.ts';
import { round3 } from './lib/stats.ts';

const VMS = Number(process.argv[2] ?? 100);
const names = Array.from({ length: VMS }, (_, i) => `vm${String(i + 1).padStart(3, '0')}`);
const configWith = (maxOutgoing: number): ClusterConfigInput => ({ defaultNodeSelector: 'mem', migration: { maxOutgoing, maxIncoming: 8, phaseTimeoutMs: 30_000 } });

const rig = await Cluster.start('test', { nodes: ['hv1', 'hv2', 'hv3'], clusterConfig: configWith(1) });
try {
  for (const hv of ['hv1', 'hv2', 'hv3']) await (process.env.BENCH_INPROC ? rig.startDaemon(hv) : rig.spawnDaemon(hv));
  for (const vm of names) await rig.writeVm(vm, { node: 'hv1', state: 'running', shutdownTimeoutMs: 10_000, meta: { migrationMethod: 'shutdown' } });
  const allOn = async (node: string) => (await Promise.all(names.map((vm) => rig.status(vm)))).every((s) => s?.node === node && s.phase === 'Running');
  await waitFor(`${VMS} VMs running on hv1`, () => allOn('hv1'), 300_000);

  /** Seconds from the spec write to the status reporting `state` for that spec version. */
  const timed = async (state: 'flushed' | 'ready'): Promise<number> => {
    const t0 = performance.now();
    const version = await rig.setNode('hv1', state);
    await firstValueFrom(
      rig.store.watchData(paths.nodeStatus('hv1')).pipe(
        filter((s) => {
          if (s.kind !== 'data') return false;
          const status = decodeNodeStatus(s.data.toString('utf8'));
          return status.domainState === state && status.observedGeneration >= version;
        }),
      ),
    );
    return (performance.now() - t0) / 1000;
  };

  const setLimit = async (maxOutgoing: number) => {
    const got = await rig.store.get(paths.config);
    await rig.store.set(paths.config, encodeClusterConfig(configWith(maxOutgoing)), got!.version);
    // The daemons pick the config up from a watch; give it a moment (not part of any figure).
    await new Promise((r) => setTimeout(r, 500));
  };

  const limit1 = await timed('flushed');
  console.log(`flush of ${VMS} VMs, maxOutgoing 1: ${round3(limit1)} s`);
  const back1 = await timed('ready');
  await waitFor('all back on hv1', () => allOn('hv1'), 300_000);
  console.log(`ready (back to hv1; each source at maxOutgoing 1): ${round3(back1)} s`);

  await setLimit(8);
  const limit8 = await timed('flushed');
  console.log(`flush of ${VMS} VMs, maxOutgoing 8: ${round3(limit8)} s`);
  const moved = (await Promise.all(names.map((vm) => rig.status(vm)))).filter((s) => s?.node !== 'hv1' && s?.phase === 'Running').length;
  if (moved !== VMS) throw new Error(`only ${moved} of ${VMS} VMs left hv1`);

  console.log(JSON.stringify({ bench: 'flush', vms: VMS, limit1_s: round3(limit1), limit8_s: round3(limit8), ratio: round3(limit1 / limit8) }));
} finally {
  await rig.cleanup();
}
