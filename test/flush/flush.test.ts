// Node flush and ready through real daemons: a real ZooKeeper, three private libvirtds (test driver,
// so shutdown migrations), three daemons, and the real `vk` binary for plan/flush/ready/get.
//
// 20 VMs are flushed off hv1 under the `mem` selector: each must land where an independent
// re-computation of `mem` over provisioned memory (counting what the flush placed) says, never
// outside its node limit; the VM whose limit allows only hv1 is shut down and marked stoppedByFlush;
// `vk plan` run beforehand predicted every move. `vk node ready hv1` brings back exactly the VMs
// whose previous node is hv1 and starts the VM the flush shut down.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Subscription } from 'rxjs';
import { decodeNodeStatus, type NodeStatus } from '../../schemas/index.ts';
import { vkFor, type Vk } from '../cli/helpers.ts';
import { Cluster, paths } from '../rig/cluster.ts';
import { waitFor } from '../rig/wait.ts';

const MAX_OUTGOING = 4;
const VMS = Array.from({ length: 20 }, (_, i) => `vm${String(i + 1).padStart(2, '0')}`);
/** Sizes that make the choice of target matter (MiB). */
const memoryOf = (vm: string) => 64 * (((Number(vm.slice(2)) * 5) % 8) + 1);
const LIMITS: Record<string, string[]> = { vm05: ['hv1', 'hv2'], vm07: ['hv1', 'hv2'], vm13: ['hv1'] };

interface Planned {
  node: string;
  vm: string | null;
  action: string;
  to?: string;
  by?: string;
}

describe('node flush and ready with three daemons', { timeout: 300_000 }, () => {
  let rig: Cluster;
  let vk: Vk;
  let dir: string;

  before(async () => {
    rig = await Cluster.start('test', {
      nodes: ['hv1', 'hv2', 'hv3'],
      clusterConfig: {
        defaultNodeSelector: 'vms',
        migration: { maxOutgoing: MAX_OUTGOING, maxIncoming: 8, phaseTimeoutMs: 8000 },
      },
    });
    vk = vkFor(rig.zk.connectString, '/virtkeeper');
    dir = mkdtempSync(join(tmpdir(), 'vk-flush-test-'));
    for (const name of ['hv1', 'hv2', 'hv3']) await rig.startDaemon(name);
  });

  after(async () => {
    await rig?.cleanup();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('flushes 20 VMs where mem (provisioned memory) says, as vk plan predicted; ready brings back exactly the migrated ones', async (t) => {
    // Other nodes' load: a stopped 1 GiB VM on hv2 (provisioned, not running), a running one on hv3.
    await rig.writeVm('big2', { node: 'hv2', state: 'stopped' }, 1024);
    await rig.writeVm('run3', { node: 'hv3', state: 'running' }, 256);
    await rig.writeVm('off1', { node: 'hv1', state: 'stopped' }, 64);
    for (const vm of VMS) {
      await rig.writeVm(
        vm,
        {
          node: 'hv1',
          state: 'running',
          shutdownTimeoutMs: 5000,
          ...(vm === 'vm05' ? { previousNode: 'hv3' } : {}),
          meta: { migrationMethod: 'shutdown', nodeSelector: 'mem', ...(LIMITS[vm] ? { nodeLimit: LIMITS[vm] } : {}) },
        },
        memoryOf(vm),
      );
    }
    await waitFor('every VM running on hv1', async () => (await Promise.all(VMS.map((vm) => rig.runsOn(vm, 'hv1')))).every(Boolean), 60_000);
    await waitFor('run3 running on hv3', () => rig.runsOn('run3', 'hv3'), 30_000);
    const statuses = await waitFor(
      'node statuses showing the provisioned memory',
      async () => {
        const [s2, s3] = [await rig.nodeStatus('hv2'), await rig.nodeStatus('hv3')];
        return s2?.memory.provisionedMiB === 1024 && s3?.memory.provisionedMiB === 256 ? { hv2: s2, hv3: s3 } : undefined;
      },
      30_000,
    );

    // Independent re-computation of `mem`: most total − provisioned − placed-by-this-flush, ties by name.
    const left = new Map<string, number>([
      ['hv2', statuses.hv2.memory.totalMiB - statuses.hv2.memory.provisionedMiB],
      ['hv3', statuses.hv3.memory.totalMiB - statuses.hv3.memory.provisionedMiB],
    ]);
    const expected = new Map<string, string | null>();
    for (const vm of VMS) {
      const allowed = ['hv2', 'hv3'].filter((n) => !LIMITS[vm] || LIMITS[vm]!.includes(n));
      let best: string | null = null;
      for (const n of allowed) if (best === null || left.get(n)! > left.get(best)!) best = n;
      expected.set(vm, best);
      if (best) left.set(best, left.get(best)! - memoryOf(vm));
    }
    assert.equal(expected.get('vm13'), null);
    const spread = [...expected.values()];
    t.diagnostic(`expected: hv2 ${spread.filter((n) => n === 'hv2').length}, hv3 ${spread.filter((n) => n === 'hv3').length}, stopped ${spread.filter((n) => n === null).length}`);

    // vk plan with the flush as a manifest, before anything is written.
    const manifest = join(dir, 'flush-hv1.yaml');
    writeFileSync(manifest, 'kind: Node\nmetadata:\n  name: hv1\nspec:\n  domainState: flushed\n');
    const planRun = await vk('plan', '-f', manifest, '-o', 'json');
    assert.equal(planRun.code, 1, planRun.stderr);
    const planned = (JSON.parse(planRun.stdout) as { actions: Planned[] }).actions.filter((a) => a.by === 'flush');
    const predicted = new Map(planned.map((a) => [a.vm!, a.action === 'migrate' ? a.to! : null]));
    assert.deepEqual(Object.fromEntries(predicted), Object.fromEntries(expected), 'vk plan predicts the mem placement');
    assert.deepEqual(
      planned.filter((a) => a.action === 'shutdown').map((a) => a.vm),
      ['vm13'],
    );

    // Follow hv1's status while it flushes: moves under way never exceed the limit.
    let maxInFlight = 0;
    const sub: Subscription = rig.store.watchData(paths.nodeStatus('hv1')).subscribe((s) => {
      if (s.kind !== 'data') return;
      const f = decodeNodeStatus(s.data.toString('utf8')).flush;
      if (f?.operation === 'flush') maxInFlight = Math.max(maxInFlight, f.inFlight);
    });
    const flush = await vk('node', 'flush', 'hv1', '--wait', '--timeout', '120');
    sub.unsubscribe();
    assert.equal(flush.code, 0, flush.stderr + flush.stdout);
    assert.match(flush.stdout, /node\/hv1 flush requested/);
    assert.match(flush.stdout, /node\/hv1 flushed: 19 moved, 1 shut down/);
    assert.match(flush.stdout, /flushing: \d+\/20 done/, 'progress was shown');
    assert.ok(maxInFlight <= MAX_OUTGOING, `at most ${MAX_OUTGOING} moves at once (saw ${maxInFlight})`);
    t.diagnostic(`most moves seen under way at once: ${maxInFlight}`);

    for (const vm of VMS) {
      const target = expected.get(vm)!;
      const spec = await rig.spec(vm);
      if (target === null) {
        assert.equal(spec.state, 'stopped', vm);
        assert.equal(spec.stoppedByFlush, 'hv1', `${vm} is marked stopped by the flush of hv1`);
        assert.equal(spec.meta.autostart, false, `${vm}: the user's autostart is left alone`);
        assert.equal(spec.node, 'hv1');
        await waitFor(`${vm} stopped`, async () => (await rig.status(vm))?.phase === 'Stopped');
        assert.deepEqual(await rig.runningOn(vm), []);
        continue;
      }
      assert.equal(spec.node, target, `${vm} went to ${target}`);
      assert.ok(!LIMITS[vm] || LIMITS[vm]!.includes(spec.node), `${vm} within its node limit`);
      assert.equal(spec.previousNode, vm === 'vm05' ? 'hv3' : 'hv1', `${vm} previousNode`);
      assert.equal(await rig.runsOn(vm, target), true, `${vm} runs on ${target}`);
      assert.deepEqual(await rig.runningOn(vm), [target], `${vm} runs nowhere else`);
    }
    const hv1 = (await rig.nodeStatus('hv1'))!;
    assert.equal(hv1.domainState, 'flushed');
    assert.deepEqual([hv1.flush?.phase, hv1.flush?.moved, hv1.flush?.stopped, hv1.flush?.total], ['done', 19, 1, 20]);
    assert.equal((await rig.spec('off1')).node, 'hv1', 'a stopped VM stays assigned');
    assert.equal((await rig.spec('big2')).node, 'hv2');

    // Ready: back come exactly the VMs whose previous node is hv1; vm13 (autostart) starts.
    const migrated = VMS.filter((vm) => expected.get(vm) !== null && vm !== 'vm05');
    const ready = await vk('node', 'ready', 'hv1', '--wait', '--timeout', '120');
    assert.equal(ready.code, 0, ready.stderr + ready.stdout);
    assert.match(ready.stdout, new RegExp(`node/hv1 ready: ${migrated.length} returned, 1 started`));
    for (const vm of migrated) {
      const spec = await rig.spec(vm);
      assert.equal(spec.node, 'hv1', vm);
      assert.equal(spec.previousNode, undefined, `${vm} previousNode cleared`);
      assert.equal(await rig.runsOn(vm, 'hv1'), true, `${vm} runs on hv1 again`);
      assert.deepEqual(await rig.runningOn(vm), ['hv1']);
    }
    const vm05 = await rig.spec('vm05');
    assert.deepEqual([vm05.node, vm05.previousNode], ['hv2', 'hv3'], 'vm05 came from hv3, not hv1: it stays');
    assert.equal(await rig.runsOn('vm05', 'hv2'), true);
    const vm13 = await rig.spec('vm13');
    assert.deepEqual([vm13.node, vm13.state, vm13.stoppedByFlush, vm13.meta.autostart], ['hv1', 'running', undefined, false]);
    await waitFor('vm13 running on hv1', () => rig.runsOn('vm13', 'hv1'));
    const off1 = await rig.spec('off1');
    assert.deepEqual([off1.node, off1.state], ['hv1', 'stopped'], 'not autostart: stays stopped');
    const hv1Ready: NodeStatus = (await rig.nodeStatus('hv1'))!;
    assert.equal(hv1Ready.domainState, 'ready');
  });
});
