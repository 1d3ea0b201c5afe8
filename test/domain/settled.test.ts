// The drift resync of the domain and migration controllers (reconcilers/*/controller.ts, reconcilers/settled.ts):
// a VM whose last look planned nothing is left out of the periodic resync while nothing it read
// has changed, and looked at again as soon as something has, a change in libvirt's listing
// included. Against a real ZooKeeper and a real libvirtd (test driver), one of each for the file.
//
// The Manager's hypervisor is a second connection to the same libvirtd whose lifecycle stream is
// silenced: what this file tests is the resync's own listing, the backstop for a lost event.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { NEVER } from 'rxjs';
import { silentLogger } from '../../controllers/logger.ts';
import { Manager } from '../../controllers/manager.ts';
import type { Controller } from '../../controllers/controller.ts';
import { domainController } from '../../reconcilers/domain/controller.ts';
import { migrationController } from '../../reconcilers/migration/controller.ts';
import { LibvirtHypervisor } from '../../drivers/libvirt-hypervisor.ts';
import { ZkStore } from '../../drivers/zk/index.ts';
import { decodeVmStatus, type VmStatus } from '../../schemas/index.ts';
import { domainState, editSpec, paths, startHv, stopHv, writeVm, type HvRig } from '../rig/testdriver.ts';
import { startZooKeeper, type ZkServer } from '../rig/zookeeper.ts';
import { waitFor } from '../rig/wait.ts';

const RESYNC_MS = 150;
const VMS = ['s1', 's2', 's3', 's4'];

let zk: ZkServer;
let store: ZkStore;
let rig: HvRig;
let own: LibvirtHypervisor;
let m: Manager;
let domain: Controller<string>;
let migration: Controller<string>;

before(async () => {
  zk = await startZooKeeper();
  store = await ZkStore.connect({ connectString: zk.connectString, sessionTimeoutMs: 4000 });
  rig = await startHv('settled');
  own = await LibvirtHypervisor.open({ socket: rig.libvirtd.socketPath, uri: 'test:///default' });
  // The real driver, but no lifecycle event ever reaches the controller.
  const hv = new Proxy(own, { get: (target, prop, receiver) => (prop === 'lifecycle$' ? NEVER : Reflect.get(target, prop, receiver)) });
  m = new Manager({ node: 'hv1', store, paths, hv, log: silentLogger(), vms: { node: 'hv1' } });
  // No full look in this file's lifetime: every look after the first is a drift look.
  domain = domainController(m, { resyncMs: RESYNC_MS, fullResyncEvery: 1_000_000 });
  migration = migrationController(m, { resyncMs: RESYNC_MS, fullResyncEvery: 1_000_000 });
  m.add(domain);
  m.add(migration);
  await store.ensurePath(paths.nodes);
  await store.create(paths.node('hv1'));
  for (const vm of VMS) await writeVm(store, vm, { node: 'hv1', state: 'running' });
  await m.start();
});

after(async () => {
  await m?.stop().catch(() => undefined);
  await own?.close().catch(() => undefined);
  await store?.close().catch(() => undefined);
  if (rig) await stopHv(rig);
  await zk?.cleanup();
});

async function status(vm: string): Promise<VmStatus | null> {
  const got = await store.get(paths.vmStatus(vm));
  return got && decodeVmStatus(got.data.toString('utf8'));
}

const processed = (): number => domain.queue.metrics().processed;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Reconciles finished over `periods` resync periods. */
async function looksOver(periods: number): Promise<number> {
  const before = processed();
  await sleep(RESYNC_MS * periods);
  return processed() - before;
}

describe('domain controller: drift resync', () => {
  it('once every VM runs and was looked at again for nothing, resyncs look at none of them', async () => {
    await waitFor('every VM running', async () => (await Promise.all(VMS.map(status))).every((s) => s?.phase === 'Running'), 20_000);
    // Each resync before settling looks at all four: eight periods without a look can only be settled VMs.
    await waitFor('a stretch of eight resync periods without a look', async () => (await looksOver(8)) === 0, 20_000);
    const migrationBefore = migration.queue.metrics().processed;
    assert.equal(await looksOver(8), 0, 'a settled VM was looked at again with nothing changed');
    // The migration concern's VMs at rest (status here, no record): settled by their first look too.
    assert.equal(migration.queue.metrics().processed, migrationBefore, 'the migration concern looked at a VM at rest again');
  });

  it('a domain destroyed behind the daemon, with no event, is found by the next listing and started again', async () => {
    const restartedBefore = (await status('s2'))?.restartedAt;
    await rig.hv.destroy('s2');
    assert.equal(await domainState(rig, 's2'), 'shutoff');
    await waitFor('s2 running again', async () => (await domainState(rig, 's2')) === 'running', 10_000);
    const s = await waitFor('s2 counted as a crash', async () => {
      const got = await status('s2');
      return got?.phase === 'Running' && got.crash ? got : undefined;
    });
    assert.equal(s.crash!.count, 1);
    assert.equal(s.restartedAt, restartedBefore, 'the spec asked for no restart');
    // A crash streak ends with time, not with any input: such a look settles nothing, so s2 alone
    // is looked at every period while the other three stay settled.
    const looks = await looksOver(8);
    assert.ok(looks >= 4 && looks <= 10, `${looks} looks over eight periods (s2 alone, about one each)`);
  });

  it('a settled VM whose spec changes is reconciled at once, and settles again', async () => {
    await editSpec(store, 's3', (spec) => {
      spec['state'] = 'stopped';
    });
    await waitFor('s3 stopped', async () => (await domainState(rig, 's3')) !== 'running', 10_000);
    await waitFor('s3 reports Stopped', async () => (await status('s3'))?.phase === 'Stopped');
    await editSpec(store, 's3', (spec) => {
      spec['state'] = 'running';
    });
    await waitFor('s3 running again', async () => (await domainState(rig, 's3')) === 'running', 10_000);
    // Only s2's clock-bound look remains; s3 settles after its no-op look.
    await waitFor('back to s2 alone', async () => (await looksOver(8)) <= 10, 10_000);
    assert.equal(await domainState(rig, 's1'), 'running');
    assert.equal(await domainState(rig, 's4'), 'running');
  });
});
