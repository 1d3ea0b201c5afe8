// `vk plan` against running daemons: what it predicts for a start and for a migration is what the
// daemons then do (real ZooKeeper, two private libvirtds with the test driver, two real daemons).
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { RunningDaemon } from '../../daemon/daemon.ts';
import { ZkStore } from '../../drivers/zk/index.ts';
import { startZooKeeper, type ZkServer } from '../rig/zookeeper.ts';
import { daemonConfig, domainState, readStatus, runDaemon, startHv, stopHv, type HvRig } from '../rig/testdriver.ts';
import { waitFor } from '../rig/wait.ts';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { vkFor, type Vk } from './helpers.ts';

// No NICs: a migration target refuses a VM whose bridges it lacks, and the test hypervisors have none.
const MANIFEST = `kind: Node
metadata: {name: hv1}
---
kind: Node
metadata: {name: hv2}
---
kind: VM
metadata: {name: app1}
spec:
  node: hv1
  meta: {nodeLimit: [hv1, hv2]}
  xml: |
    <domain type='test'><name>app1</name><memory unit='MiB'>64</memory><vcpu>1</vcpu><os><type>hvm</type></os></domain>
`;

interface PlannedAction {
  node: string;
  vm: string;
  action: string;
  to?: string;
}

describe('vk plan predicts what the daemons do', () => {
  let zk: ZkServer;
  let store: ZkStore;
  let vk: Vk;
  const rigs: HvRig[] = [];
  const daemons: RunningDaemon[] = [];
  const performed: string[] = [];
  const manifestDir = mkdtempSync(join(tmpdir(), 'vk-plan-'));
  writeFileSync(join(manifestDir, 'app1.yaml'), MANIFEST);

  before(async () => {
    zk = await startZooKeeper();
    store = await ZkStore.connect({ connectString: zk.connectString });
    vk = vkFor(zk.connectString, '/virtkeeper');
    for (const name of ['hv1', 'hv2']) rigs.push(await startHv(name));
  });

  after(async () => {
    for (const d of daemons) await d.stop().catch(() => undefined);
    await store?.close().catch(() => undefined);
    for (const r of rigs) await stopHv(r);
    await zk?.cleanup();
    rmSync(manifestDir, { recursive: true, force: true });
  });

  const plan = async (): Promise<PlannedAction[]> => {
    const run = await vk('plan', '-o', 'json');
    assert.ok(run.code === 0 || run.code === 1, run.stderr);
    return (JSON.parse(run.stdout) as { actions: PlannedAction[] }).actions;
  };

  test('a start: the plan lists define and start on hv1, and hv1 performs exactly those', async () => {
    const applied = await vk('apply', '-f', manifestDir);
    assert.equal(applied.code, 0, applied.stderr);
    const predicted = await plan();
    const starts = predicted.filter((a) => a.vm === 'app1');
    assert.deepEqual(
      starts.map((a) => [a.node, a.action]),
      [
        ['hv1', 'define'],
        ['hv1', 'start'],
      ],
    );
    for (const rig of rigs) daemons.push(await runDaemon(daemonConfig(rig.name, zk.connectString, rig.libvirtd.socketPath), performed));
    await waitFor('app1 Running on hv1', async () => (await readStatus(store, 'app1'))?.phase === 'Running');
    await Promise.all(daemons.map((d) => d.domain.queue.idle()));
    // Status writes (and the claim, a status compare-and-set) are bookkeeping `vk plan` leaves out.
    const app1Actions = performed.filter((l) => l.includes(' app1 ') && !l.includes(' status ') && !l.includes(' claim '));
    assert.deepEqual(app1Actions, ['hv1 app1 define (not defined here)', 'hv1 app1 start']);
    assert.equal(await domainState(rigs[0]!, 'app1'), 'running');
    assert.deepEqual(
      (await plan()).filter((a) => a.vm === 'app1'),
      [],
      'converged: nothing left to do for app1',
    );
  });

  test('a migration: the plan names the target, and the guest ends there only', async () => {
    // Daemons paused so the plan is read before anyone acts; the libvirtds keep the guest.
    for (const d of daemons.splice(0)) await d.stop();
    // The test driver has no live migration: a shutdown migration moves the guest.
    assert.equal((await vk('vm', 'meta', 'app1', '--method', 'shutdown')).code, 0);
    const migrate = await vk('vm', 'migrate', 'app1', '--node', 'hv2');
    assert.equal(migrate.code, 0, migrate.stderr);
    const predicted = (await plan()).filter((a) => a.vm === 'app1');
    assert.deepEqual(predicted.map((a) => [a.node, a.action, a.to]), [['hv1', 'migrate', 'hv2']]);
    for (const rig of rigs) daemons.push(await runDaemon(daemonConfig(rig.name, zk.connectString, rig.libvirtd.socketPath), performed));
    await waitFor('app1 running on hv2', async () => (await domainState(rigs[1]!, 'app1')) === 'running', 30_000);
    await waitFor('app1 gone from hv1', async () => (await domainState(rigs[0]!, 'app1')) === null || (await domainState(rigs[0]!, 'app1')) === 'shutoff', 30_000);
    const status = await waitFor('status on hv2', async () => {
      const s = await readStatus(store, 'app1');
      return s?.node === 'hv2' && s.phase === 'Running' ? s : undefined;
    }, 30_000);
    assert.equal(status.node, 'hv2');
  });
});
