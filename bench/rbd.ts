// rbd: what the RBD lock check adds to a VM start. One real ZooKeeper, one real Ceph (a monitor and
// a memstore OSD on loopback), one private libvirtd (test driver), one daemon in this process with
// the RBD concern on, whose Hypervisor is wrapped to timestamp start(). Two VMs, identical but for
// one RBD disk on `rbd1`; each round starts (spec state → running) and stops each in turn and
// times the spec write → libvirt create issued. The check's cost is the RBD VM's latency minus the
// plain one's (p50 and p99 of each, same run); one `rbd lock ls` call alone is timed beside it.
// Usage: npm run bench -- rbd [STARTS]   (default 50)
import type { Hypervisor } from '../drivers/hypervisor.ts';
import { ZkStore } from '../drivers/zk/index.ts';
import { createRbdDriver } from '../drivers/rbd/index.ts';
import { startCephRig } from '../test/rig/ceph.ts';
import { createLogger } from '../controllers/logger.ts';
import { startDaemon } from '../daemon/daemon.ts';
import { encodeVmSpec } from '../schemas/index.ts';
import { startZooKeeper } from '../test/rig/zookeeper.ts';
import { daemonConfig, paths, readStatus, startHv, stopHv, testXml, writeVm } from '../test/rig/testdriver.ts';
import { waitFor } from '../test/rig/wait.ts';
import { describe, nsToMs, round3, summarize } from './lib/stats.ts';

const STARTS = Number(process.argv[2] ?? 50);
const IMAGE = 'rbd/bench';

const zk = await startZooKeeper();
const hv1 = await startHv('hv1');
const ceph = await startCephRig();
const [monHost, monPort] = ceph.monAddress.split(':') as [string, string];
try {
  const driver = createRbdDriver({ conf: ceph.conf, mountTimeoutS: 3 });
  await ceph.createImage(IMAGE, 8);
  const lsMs: number[] = [];
  for (let i = 0; i < 20; i++) {
    const t = process.hrtime.bigint();
    await driver.listLocks(IMAGE);
    lsMs.push(nsToMs(process.hrtime.bigint() - t));
  }
  const ls = summarize(lsMs);
  console.log(describe('one `rbd lock ls` call', ls));

  let onStart: ((name: string) => void) | undefined;
  const wrap = <T extends Hypervisor>(hv: T): T =>
    new Proxy(hv, {
      get(target, prop, receiver) {
        if (prop === 'start') {
          return (name: string) => {
            onStart?.(name);
            return target.start(name);
          };
        }
        const value = Reflect.get(target, prop, receiver) as unknown;
        return typeof value === 'function' ? value.bind(target) : value;
      },
    });
  const cfg = daemonConfig('hv1', zk.connectString, hv1.libvirtd.socketPath, {
    rbd: { enabled: true, conf: ceph.conf, storageAddress: '127.0.0.1', mountTimeoutS: 3, callTimeoutMs: 10_000, probeMs: 30_000 },
  } as never);
  const daemon = await startDaemon(cfg, { log: createLogger({ level: 'silent' }), wrapHypervisor: wrap });
  const store = await ZkStore.connect({ connectString: zk.connectString });
  const disk = `<devices><disk type='network' device='disk'><source protocol='rbd' name='${IMAGE}'><host name='${monHost}' port='${monPort}'/></source><target dev='vda' bus='virtio'/></disk></devices>`;
  await writeVm(store, 'rbd1', { node: 'hv1', state: 'stopped', stopMode: 'force', rbd: [IMAGE] }, testXml('rbd1', 64, 1, disk));
  await writeVm(store, 'plain1', { node: 'hv1', state: 'stopped', stopMode: 'force' }, testXml('plain1'));
  for (const vm of ['rbd1', 'plain1']) await waitFor(`${vm} Stopped`, async () => (await readStatus(store, vm))?.phase === 'Stopped');

  const setState = async (vm: string, state: 'running' | 'stopped'): Promise<bigint> => {
    const current = await store.get(paths.vmSpec(vm));
    const spec = JSON.parse(current!.data.toString('utf8')) as Record<string, unknown>;
    const data = encodeVmSpec({ ...(spec as { node: string }), state });
    const t0 = process.hrtime.bigint();
    await store.set(paths.vmSpec(vm), data, current!.version);
    return t0;
  };
  const startOnce = async (vm: string): Promise<number> => {
    const started = new Promise<bigint>((resolve) => (onStart = (name) => name === vm && resolve(process.hrtime.bigint())));
    const t0 = await setState(vm, 'running');
    const ms = nsToMs((await started) - t0);
    onStart = undefined;
    await waitFor(`${vm} Running`, async () => (await readStatus(store, vm))?.phase === 'Running', 20_000);
    await setState(vm, 'stopped');
    await waitFor(`${vm} Stopped`, async () => (await readStatus(store, vm))?.phase === 'Stopped', 20_000);
    await Promise.all([daemon.domain.queue.idle(), daemon.migration.queue.idle()]);
    return ms;
  };

  const withRbd: number[] = [];
  const plain: number[] = [];
  for (let i = 0; i < STARTS; i++) {
    withRbd.push(await startOnce('rbd1'));
    plain.push(await startOnce('plain1'));
  }
  const r = summarize(withRbd);
  const p = summarize(plain);
  console.log(describe('spec write → libvirt create issued, VM with an RBD disk', r));
  console.log(describe('spec write → libvirt create issued, the same VM without', p));
  const checkP50 = r.p50 - p.p50;
  const checkP99 = r.p99 - p.p99;
  console.log(`the lock check adds ${round3(checkP50)} ms at p50 and ${round3(checkP99)} ms at p99 (${round3(r.p50 / p.p50)}x the plain start at p50); one rbd lock ls alone: ${round3(ls.p50)} ms p50`);
  await store.close();
  await daemon.stop();
  console.log(
    JSON.stringify({
      bench: 'rbd',
      starts: STARTS,
      check_p50_ms: round3(checkP50),
      check_p99_ms: round3(checkP99),
      rbd_start_p50_ms: round3(r.p50),
      rbd_start_p99_ms: round3(r.p99),
      plain_start_p50_ms: round3(p.p50),
      plain_start_p99_ms: round3(p.p99),
      lock_ls_p50_ms: round3(ls.p50),
      ratio_p50_vs_plain: round3(r.p50 / p.p50),
    }),
  );
} finally {
  await ceph.cleanup();
  await stopHv(hv1);
  await zk.cleanup();
}
