// Keepalive and console log through a real daemon, ZooKeeper and libvirtd (test driver).
import assert from 'node:assert/strict';
import { appendFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { RunningDaemon } from '../../daemon/daemon.ts';
import { ZkStore } from '../../drivers/zk/index.ts';
import { decodeNodeLease, decodeNodeStatus, type NodeStatus } from '../../schemas/index.ts';
import { startZooKeeper, type ZkServer } from '../rig/zookeeper.ts';
import { daemonConfig, domainState, paths, runDaemon, startHv, stopHv, testXml, writeVm, type HvRig } from '../rig/testdriver.ts';
import { waitFor } from '../rig/wait.ts';

describe('keepalive and console log', () => {
  let zk: ZkServer;
  let store: ZkStore;
  let hv1: HvRig;
  let daemon: RunningDaemon | undefined;
  const logDir = mkdtempSync(join(tmpdir(), 'vk-console-'));

  before(async () => {
    zk = await startZooKeeper();
    store = await ZkStore.connect({ connectString: zk.connectString });
    hv1 = await startHv('hv1');
    daemon = await runDaemon(daemonConfig('hv1', zk.connectString, hv1.libvirtd.socketPath, { keepaliveMs: 300, consolePollMs: 50 }));
  });

  after(async () => {
    await daemon?.stop().catch(() => undefined);
    await store?.close().catch(() => undefined);
    if (hv1) await stopHv(hv1);
    await zk?.cleanup();
    rmSync(logDir, { recursive: true, force: true });
  });

  async function nodeStatus(): Promise<NodeStatus | null> {
    const got = await store.get(paths.nodeStatus('hv1'));
    return got ? decodeNodeStatus(got.data) : null;
  }

  it('provisioned memory counts a stopped VM assigned to the node; allocated does not', async () => {
    await writeVm(store, 'run1', { node: 'hv1', state: 'running' }, testXml('run1', 64, 2));
    await writeVm(store, 'off1', { node: 'hv1', state: 'stopped' }, testXml('off1', 128, 4));
    await writeVm(store, 'else1', { node: 'hv2', state: 'running' }, testXml('else1', 512));
    await waitFor('run1 running', async () => (await domainState(hv1, 'run1')) === 'running');
    const status = await waitFor('node status with both VMs', async () => {
      const s = await nodeStatus();
      return s && s.memory.provisionedMiB === 192 && s.memory.allocatedMiB === 64 ? s : undefined;
    });
    assert.deepEqual(status.runningVms, ['run1']);
    assert.equal(status.vcpus.allocated, 2);
    assert.ok(status.memory.totalMiB > 0);
  });

  it('a paused domain does not delay the keepalive', async () => {
    const run1 = await hv1.hv.getDomain('run1');
    await hv1.hv.conn.domainSuspend(run1!);
    assert.equal(await domainState(hv1, 'run1'), 'paused');
    // Each tick renews the lease (the status is written only when its figures change).
    const renewedAt = async () => {
      const got = await store.get(paths.nodeLease('hv1'));
      return got ? decodeNodeLease(got.data).renewedAt : undefined;
    };
    const first = (await waitFor('a lease', renewedAt, 10_000))!;
    // Several further ticks arrive while the domain stays paused.
    let seen = first;
    for (let tick = 0; tick < 3; tick++) {
      seen = await waitFor('next keepalive', async () => {
        const at = await renewedAt();
        return at && at > seen ? at : undefined;
      }, 10_000);
    }
    assert.equal(await domainState(hv1, 'run1'), 'paused');
    const status = (await nodeStatus())!;
    assert.deepEqual(status.runningVms, [], 'a paused domain is not counted as running');
    assert.equal(status.memory.provisionedMiB, 192);
    await hv1.hv.conn.domainResume(run1!);
  });

  it('tails a VM\'s serial log into ZooKeeper, bounded, and writes only on change', async () => {
    const logFile = join(logDir, 'con1.log');
    writeFileSync(logFile, 'boot line 1\n');
    const serial = `<devices><serial type='pty'><log file='${logFile}' append='off'/><target port='0'/></serial></devices>`;
    await writeVm(store, 'con1', { node: 'hv1', state: 'stopped' }, testXml('con1', 32, 1, serial));
    await waitFor('first line', async () => (await store.get(paths.vmConsole('con1')))?.data.toString('utf8') === 'boot line 1');
    appendFileSync(logFile, 'login: \nsecond\n');
    const got = await waitFor('appended lines', async () => {
      const c = await store.get(paths.vmConsole('con1'));
      return c?.data.toString('utf8') === 'boot line 1\nlogin: \nsecond' ? c : undefined;
    });
    await new Promise((r) => setTimeout(r, 500)); // ten polls with nothing new
    assert.equal((await store.get(paths.vmConsole('con1')))?.version, got.version, 'no write without new output');
  });
});
