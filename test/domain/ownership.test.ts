// Ownership (issue 12 §1): a node starts a VM only after winning it in ZooKeeper, and a running
// copy on a node that does not own it is destroyed there.
//
// The move storm: twenty version-checked writes of a VM's spec.node, a few
// milliseconds apart, cycling three nodes (what `vk vm move` writes, as a quick operator or a
// script can make it), repeated 50 times on three test-driver nodes with real daemons. A sampler
// looks at all three libvirtds every 10 ms: the VM must never run on two nodes at once, and each
// storm must end with it running only on the node written last.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Sampler } from '../rig/sampler.ts';
import { Cluster } from '../rig/cluster.ts';
import { waitFor } from '../rig/wait.ts';
import { moveStorm, moveVm, STORM_SPACINGS_MS } from '../rig/storm.ts';
import { testXml } from '../rig/testdriver.ts';

const NODES = ['hv1', 'hv2', 'hv3'];
const STORMS = Number(process.env.VK_STORMS ?? 50);

describe('a VM never runs on two nodes', { timeout: 900_000 }, () => {
  let rig: Cluster;

  before(async () => {
    rig = await Cluster.start('test', { nodes: NODES, clusterConfig: {} });
    for (const node of NODES) await rig.startDaemon(node);
  });

  after(async () => {
    await rig?.cleanup();
  });

  const activeOn = (vm: string) => rig.activeOn(vm);

  it('a copy started by hand on its home node while another node owns it is destroyed there, with a condition', async () => {
    const vm = 'stray1';
    await rig.writeVm(vm, { node: 'hv1', state: 'running' });
    await waitFor('stray1 running on hv1', () => rig.runsOn(vm, 'hv1'), 30_000);
    // hv1's daemon goes away, so nothing hands the guest over; the spec moves to hv2.
    await rig.stopDaemon('hv1');
    await moveVm(rig.store, vm, 'hv2');
    // An operator's `virsh start` on hv2 (or a daemon restarted with a stale domain).
    const hv2 = rig.hv('hv2').probe;
    await hv2.define(testXml(vm));
    await hv2.start(vm);
    const status = await waitFor(
      'hv2 destroys the copy it does not own and says so',
      async () => {
        const s = await rig.status(vm);
        const note = s?.conditions.find((c) => c.type === 'StrayDomainDestroyed');
        return note && (await hv2.getDomain(vm))?.state !== 'running' ? s : undefined;
      },
      20_000,
    );
    const note = status.conditions.find((c) => c.type === 'StrayDomainDestroyed')!;
    assert.equal(note.status, 'True');
    assert.match(note.message, /running copy on hv2.*hv1 does/);
    assert.equal(status.node, 'hv1', 'hv1 still owns the VM');
    assert.equal((await rig.hv('hv1').probe.getDomain(vm))?.state, 'running', 'the owner\'s guest runs on');
    // The owner comes back and hands the guest over to its new home.
    await rig.startDaemon('hv1');
    await waitFor('stray1 moved to hv2', async () => (await rig.runningOn(vm)).join() === 'hv2' && rig.runsOn(vm, 'hv2'), 30_000);
  });

  it(`${STORMS} storms of 20 writes (spaced ${STORM_SPACINGS_MS.join(', ')} ms): zero double runs, each ends on the last node written`, async (t) => {
    const vm = 'storm1';
    await rig.writeVm(vm, { node: 'hv1', state: 'running', shutdownTimeoutMs: 2_000 });
    await waitFor('storm1 running on hv1', () => rig.runsOn(vm, 'hv1'), 30_000);
    const sampler = new Sampler(activeOn, vm, { everyMs: 10, allowDowntime: true });
    let node = 'hv1';
    let wrongFinal = 0;
    for (let i = 0; i < STORMS; i++) {
      const spacing = STORM_SPACINGS_MS[i % STORM_SPACINGS_MS.length]!;
      node = await moveStorm(rig.store, vm, NODES, node, { writes: 20, spacingMs: spacing });
      const last = node;
      const settled = await waitFor(
        `storm ${i + 1} (spacing ${spacing} ms) settles on ${last}`,
        async () => {
          const where = await activeOn(vm);
          const running = Object.keys(where).filter((k) => where[k] === 'running');
          return running.length === 1 && running[0] === last && (await rig.runsOn(vm, last)) ? running : undefined;
        },
        60_000,
      ).catch(async (error: unknown) => {
        t.diagnostic(`storm ${i + 1}: ${(error as Error).message}; where: ${JSON.stringify(await activeOn(vm))}; status ${JSON.stringify(await rig.status(vm))}`);
        return undefined;
      });
      if (!settled) wrongFinal++;
      if (sampler.doubleRunsSoFar() > 0 && process.env.VK_STORM_STOP_AT_FIRST) break;
    }
    const report = await sampler.stop();
    t.diagnostic(`${report.samples} samples, ${report.switchOvers.length} switch-overs, ${report.doubleRunning.length} double-run samples`);
    assert.ok(report.samples > STORMS * 10, `the sampler ran (${report.samples} samples)`);
    assert.deepEqual(
      report.doubleRunning.map((s) => s.states),
      [],
      'no instant with the VM running on two nodes',
    );
    assert.equal(wrongFinal, 0, 'every storm ended with the VM running only on the node written last');
  });
});
