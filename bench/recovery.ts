// recovery: a node's power loss → every VM of it running elsewhere, with the fence proved first.
// Three QEMU/TCG hypervisors in network namespaces, a real Ceph on the fabric, a BMC simulator
// (ipmi_sim) for hv3 whose power-off kills hv3's daemon, libvirtd and guests; real daemons with the
// DEFAULT settings that matter here: ZooKeeper's own tickTime (2000 ms), the daemon's session
// timeout (10 s), the cluster's fence grace (5 s) and resync (1 s). hv3 runs N guests that boot
// from RBD images (so each recovery also breaks a real librbd lock).
//
// Each trial: hv3's BMC powers it off behind the cluster's back (t0 = the BMC's own stamp); then
//   fence done      = the coordinator's fence.succeeded event
//   last VM running = every guest runs on hv1/hv2 (status Running there and libvirt says so)
// and, as the floor measured in the same run, alive gone = hv3's alive znode deleted (ZooKeeper
// expired the session: nothing can act before that). Then hv3 is repaired and `vk node ready`
// brings its VMs home for the next trial.
// Usage: npm run bench -- recovery [TRIALS] [VMS]   (default 5 and 10)
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createIpmiFencer } from '../drivers/fence/index.ts';
import { encodeNodeFence } from '../schemas/index.ts';
import { startBmcRig } from '../test/rig/bmc.ts';
import { startCephRig } from '../test/rig/ceph.ts';
import { Cluster, paths } from '../test/rig/cluster.ts';
import { rbdGuestImage, rbdGuestXml } from '../test/rig/rbd-guest.ts';
import { writeVm } from '../test/rig/testdriver.ts';
import { waitFor } from '../test/rig/wait.ts';
import { round3, summarize } from './lib/stats.ts';

const TRIALS = Number(process.argv[2] ?? 5);
const N = Number(process.argv[3] ?? 10);
const MON = '198.51.100.254';
/** PVC's documented figure (≈ 60–65 s to fence + restart, seeds and DESIGN §6), for the ratio. */
const PVC_S = 75;

const c = await Cluster.start('qemu', { nodes: 3, zkTickTimeMs: 2000, clusterConfig: { coordinators: ['hv1', 'hv2'] } });
const bmc = await startBmcRig({ name: 'hv3-bmc' });
const fabric = c.fabric!.fabricNs;
execFileSync('ip', ['-n', fabric, 'addr', 'add', `${MON}/24`, 'dev', 'br0']);
const ceph = await startCephRig({ netns: fabric, address: MON });
try {
  bmc.onPowerChange((e) => {
    if (e.what === 'power' && e.value === 0 && !e.ignored) void c.powerLoss('hv3');
  });
  const vms = Array.from({ length: N }, (_, i) => `vm${String(i + 1).padStart(2, '0')}`);
  for (const vm of vms) {
    const img = join(c.work, `${vm}.img`);
    writeFileSync(img, rbdGuestImage());
    execFileSync('ip', ['netns', 'exec', fabric, 'rbd', '-c', ceph.conf, '--client_mount_timeout=5', 'import', img, `rbd/${vm}`], { stdio: 'ignore' });
  }
  const daemon = (hv: string) => ({
    zookeeper: { hosts: c.zk.connectString, root: paths.root, sessionTimeoutMs: 10_000 },
    rbd: { enabled: true, conf: ceph.conf, storageAddress: c.hv(hv).addr!, netns: c.hv(hv).ns!, mountTimeoutS: 3, callTimeoutMs: 15_000, probeMs: 30_000 },
    fence: { enabled: true, ipmitool: '/usr/bin/ipmitool', resyncMs: 1_000 },
  });
  for (const hv of ['hv1', 'hv2']) await c.startDaemon(hv, daemon(hv));
  await c.spawnDaemon('hv3', daemon('hv3'));
  await c.store.create(paths.nodeFence('hv3'), encodeNodeFence({ ipmi: { ...bmc.fenceOptions() }, storage: {} }), { parents: true });
  for (const vm of vms) {
    await writeVm(c.store, vm, { node: 'hv3', state: 'running', stopMode: 'force', rbd: [`rbd/${vm}`] }, rbdGuestXml({ name: vm, image: `rbd/${vm}`, monitors: [{ host: MON }], memoryMiB: 64 }));
  }
  const allOn = async (where: (node: string) => boolean): Promise<boolean> => {
    for (const vm of vms) {
      const s = await c.status(vm);
      if (!s || !where(s.node) || !(await c.runsOn(vm, s.node))) return false;
    }
    return true;
  };
  await waitFor(`${N} VMs running on hv3`, () => allOn((n) => n === 'hv3'), 300_000);
  console.log(`${N} guests on RBD running on hv3; ${TRIALS} power-loss trials (session timeout 10 s, ZooKeeper tick 2 s, fence grace 5 s)`);

  // Every action line of the in-process daemons, stamped, for the slowest VM's timeline.
  const stamped: Array<{ at: number; line: string }> = [];
  c.actions.onLine = (line) => stamped.push({ at: Date.now(), line });
  const fenceS: number[] = [];
  const recoveredS: number[] = [];
  const aliveGoneS: number[] = [];
  for (let t = 1; t <= TRIALS; t++) {
    const events = c.fenceEvents.length;
    const bmcEvents = bmc.events().length;
    let aliveGoneAt: number | undefined;
    const watch = setInterval(() => {
      void c.store.exists(paths.nodeAlive('hv3')).then((s) => {
        if (s === null && aliveGoneAt === undefined) aliveGoneAt = Date.now();
      });
    }, 20);
    await createIpmiFencer(bmc.fenceOptions()).powerOff();
    const t0 = bmc.events().slice(bmcEvents).find((e) => e.what === 'power' && e.value === 0)!.at;
    await waitFor('every VM running on hv1/hv2', () => allOn((n) => n !== 'hv3'), 180_000);
    const doneAt = Date.now();
    clearInterval(watch);
    const fenced = c.fenceEvents.slice(events).find((e) => e.kind === 'fence.succeeded');
    fenceS.push((fenced!.at - t0) / 1000);
    recoveredS.push((doneAt - t0) / 1000);
    aliveGoneS.push(((aliveGoneAt ?? doneAt) - t0) / 1000);
    const runningAt = new Map<string, number>();
    for (const vm of vms) runningAt.set(vm, stamped.filter((x) => x.at >= t0 && new RegExp(` ${vm} start\\b`).test(x.line)).at(-1)?.at ?? doneAt);
    const slowest = [...runningAt.entries()].sort((a, b) => b[1] - a[1])[0]![0];
    const timeline = stamped.filter((x) => x.at >= t0 && x.line.includes(slowest)).map((x) => `    +${((x.at - t0) / 1000).toFixed(2)} s ${x.line}`);
    console.log(`  slowest VM ${slowest}:\n${timeline.join('\n')}`);
    console.log(`trial ${t}: alive gone ${aliveGoneS.at(-1)!.toFixed(2)} s, fence done ${fenceS.at(-1)!.toFixed(2)} s (${fenced!.level}), last VM running ${recoveredS.at(-1)!.toFixed(2)} s after the power loss`);
    // Repair: power on, libvirtd and daemon back, `vk node ready` (as the CLI writes it) brings the VMs home.
    await createIpmiFencer(bmc.fenceOptions()).powerOn();
    await c.powerBack('hv3');
    await c.spawnDaemon('hv3', daemon('hv3'));
    await c.setNode('hv3', 'ready');
    await waitFor('every VM back on hv3', () => allOn((n) => n === 'hv3'), 600_000);
  }
  const f = summarize(fenceS.map((s) => s * 1000));
  const r = summarize(recoveredS.map((s) => s * 1000));
  const a = summarize(aliveGoneS.map((s) => s * 1000));
  console.log(`loss → alive znode gone (the floor: ZooKeeper expires the session) p50 ${(a.p50 / 1000).toFixed(2)} s`);
  console.log(`loss → fence done   p50 ${(f.p50 / 1000).toFixed(2)} s, max ${(f.max / 1000).toFixed(2)} s`);
  console.log(`loss → last VM running p50 ${(r.p50 / 1000).toFixed(2)} s, max ${(r.max / 1000).toFixed(2)} s (goal ≤ 30 s; PVC ≈ ${PVC_S} s: ${(PVC_S / (r.p50 / 1000)).toFixed(1)}× faster)`);
  console.log(`our share beyond the session expiry and the 5 s grace: p50 ${((r.p50 - a.p50) / 1000 - 5).toFixed(2)} s`);
  console.log(
    JSON.stringify({
      bench: 'recovery',
      trials: TRIALS,
      vms: N,
      alive_gone_p50_s: round3(a.p50 / 1000),
      fence_p50_s: round3(f.p50 / 1000),
      fence_max_s: round3(f.max / 1000),
      recovered_p50_s: round3(r.p50 / 1000),
      recovered_max_s: round3(r.max / 1000),
      ratio_to_pvc: round3(PVC_S / (r.p50 / 1000)),
    }),
  );
} finally {
  await c.cleanup();
  await bmc.cleanup();
  await ceph.cleanup();
}
