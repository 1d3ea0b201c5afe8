// One bad znode (issue 12 §2, the daemon's side): a spec or domain XML that another ZooKeeper
// client broke gets a condition naming the znode and the error, logged once (not at every resync);
// a VM whose spec says it must not run is still stopped, and stopping needs no XML.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startDaemon, type RunningDaemon } from '../../daemon/daemon.ts';
import { createLogger } from '../../controllers/logger.ts';
import { ZkStore } from '../../drivers/zk/index.ts';
import { decodeVmStatus, type VmStatus } from '../../schemas/index.ts';
import { startZooKeeper, type ZkServer } from '../rig/zookeeper.ts';
import { daemonConfig, domainState, editSpec, paths, startHv, stopHv, writeVm, type HvRig } from '../rig/testdriver.ts';
import { waitFor } from '../rig/wait.ts';

describe('a VM whose spec or XML cannot be read', () => {
  let zk: ZkServer;
  let store: ZkStore;
  let hv1: HvRig;
  let daemon: RunningDaemon | undefined;
  const lines: Array<Record<string, unknown>> = [];

  before(async () => {
    zk = await startZooKeeper();
    store = await ZkStore.connect({ connectString: zk.connectString });
    hv1 = await startHv('hv1');
    const log = createLogger({ level: 'info', node: 'hv1', destination: { write: (s: string) => lines.push(JSON.parse(s) as Record<string, unknown>) } });
    daemon = await startDaemon(daemonConfig('hv1', zk.connectString, hv1.libvirtd.socketPath, { resyncMs: 200 }), { log });
  });

  after(async () => {
    await daemon?.stop();
    await store?.close();
    if (hv1) await stopHv(hv1);
    await zk?.cleanup();
  });

  async function status(vm: string): Promise<VmStatus | null> {
    const got = await store.get(paths.vmStatus(vm));
    return got && decodeVmStatus(got.data.toString('utf8'));
  }

  async function overwrite(path: string, text: string): Promise<void> {
    const got = await store.get(path);
    await store.set(path, text, got!.version);
  }

  it('garbage in a running VM\'s spec: condition InvalidSpec naming the znode, logged once, the guest untouched', async () => {
    await writeVm(store, 'bad1', { node: 'hv1', state: 'running' });
    await waitFor('bad1 running', async () => (await status('bad1'))?.phase === 'Running');
    await overwrite(paths.vmSpec('bad1'), 'this is not JSON');
    const s = await waitFor('InvalidSpec condition', async () => {
      const got = await status('bad1');
      return got?.conditions.find((c) => c.type === 'InvalidSpec') ? got : undefined;
    });
    const c = s.conditions.find((x) => x.type === 'InvalidSpec')!;
    assert.equal(c.status, 'True');
    assert.ok(c.message.startsWith(`${paths.vmSpec('bad1')}:`), c.message);
    assert.match(c.message, /cannot be parsed/);
    assert.equal(await domainState(hv1, 'bad1'), 'running', 'nothing says it must not run: it keeps running');
    // Several resyncs (every 200 ms) later: still one warn line for it.
    await new Promise((r) => setTimeout(r, 1_000));
    const warned = lines.filter((l) => l['vm'] === 'bad1' && l['reason'] === 'InvalidSpec');
    assert.equal(warned.length, 1, JSON.stringify(warned));
    // Repaired: the condition goes.
    await overwrite(paths.vmSpec('bad1'), JSON.stringify({ node: 'hv1', state: 'running' }));
    await waitFor('InvalidSpec cleared', async () => !(await status('bad1'))?.conditions.some((x) => x.type === 'InvalidSpec'));
  });

  it('an unreadable spec that says stopped still stops the guest', async () => {
    await writeVm(store, 'bad2', { node: 'hv1', state: 'running' });
    await waitFor('bad2 running', async () => (await domainState(hv1, 'bad2')) === 'running');
    // A wrong-typed field makes it invalid; its state still says the VM must not run.
    await overwrite(paths.vmSpec('bad2'), JSON.stringify({ node: 'hv1', state: 'stopped', shutdownTimeoutMs: 'soon' }));
    await waitFor('bad2 stopped', async () => (await domainState(hv1, 'bad2')) !== 'running');
    assert.ok((await status('bad2'))?.conditions.some((x) => x.type === 'InvalidSpec' && /shutdownTimeoutMs/.test(x.message)));
  });

  it('a spec znode deleted under a VM: the guest is destroyed', async () => {
    await writeVm(store, 'bad3', { node: 'hv1', state: 'running' });
    await waitFor('bad3 running', async () => (await domainState(hv1, 'bad3')) === 'running');
    const spec = await store.get(paths.vmSpec('bad3'));
    await store.delete(paths.vmSpec('bad3'), spec!.version);
    await waitFor('bad3 gone', async () => (await domainState(hv1, 'bad3')) !== 'running');
  });

  it('a missing or broken XML: InvalidXml on the status, and the VM can still be stopped', async () => {
    await writeVm(store, 'bad4', { node: 'hv1', state: 'running' });
    await waitFor('bad4 running', async () => (await domainState(hv1, 'bad4')) === 'running');
    await overwrite(paths.vmXml('bad4'), '<domain><name>bad4</name>');
    const s = await waitFor('InvalidXml condition', async () => {
      const got = await status('bad4');
      return got?.conditions.find((c) => c.type === 'InvalidXml') ? got : undefined;
    }).catch(async (e: unknown) => {
      throw new Error(`${(e as Error).message}; status ${JSON.stringify(await status('bad4'))}; log ${JSON.stringify(lines.filter((l) => l['vm'] === 'bad4'))}`);
    });
    assert.ok(s.conditions.find((c) => c.type === 'InvalidXml')!.message.startsWith(`${paths.vmXml('bad4')}:`));
    assert.equal(await domainState(hv1, 'bad4'), 'running', 'a running guest is not touched');
    const xml = await store.get(paths.vmXml('bad4'));
    await store.delete(paths.vmXml('bad4'), xml!.version);
    await editSpec(store, 'bad4', (spec) => (spec['state'] = 'stopped'));
    await waitFor('bad4 stopped without an XML', async () => (await domainState(hv1, 'bad4')) !== 'running');
    const stopped = await waitFor('Stopped status', async () => {
      const got = await status('bad4');
      return got?.phase === 'Stopped' ? got : undefined;
    });
    assert.match(stopped.conditions.find((c) => c.type === 'InvalidXml')?.message ?? '', /is missing/);
  });

  it('a spec.node naming no node of the cluster (written by another tool): condition UnknownNode, the guest stays', async () => {
    // No status yet: the first live node by name (hv1, the only one) reports it.
    await writeVm(store, 'lost1', { node: 'hv9', state: 'running' });
    const fresh = await waitFor('UnknownNode on a new VM', async () => (await status('lost1'))?.conditions.find((c) => c.type === 'UnknownNode'));
    assert.match(fresh.message, /spec\.node names hv9, which is not a node of this cluster/);
    // A running VM whose spec moves to a node that does not exist: its owner says so and keeps it.
    await writeVm(store, 'lost2', { node: 'hv1', state: 'running' });
    await waitFor('lost2 running', async () => (await status('lost2'))?.phase === 'Running');
    await editSpec(store, 'lost2', (spec) => (spec['node'] = 'hv9'));
    await waitFor('UnknownNode on lost2', async () => (await status('lost2'))?.conditions.some((c) => c.type === 'UnknownNode'));
    assert.equal(await domainState(hv1, 'lost2'), 'running');
    await editSpec(store, 'lost2', (spec) => (spec['node'] = 'hv1'));
    await waitFor('UnknownNode cleared', async () => !(await status('lost2'))?.conditions.some((c) => c.type === 'UnknownNode'));
    assert.equal(await domainState(hv1, 'lost2'), 'running');
  });
});
