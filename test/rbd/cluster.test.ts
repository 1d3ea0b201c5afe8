// The RBD concern end to end (issue 17): a real Ceph (one monitor + one memstore OSD) in the QEMU
// rig's fabric namespace, two QEMU/TCG hypervisors in their own namespaces whose daemons check the
// locks (rbd calls from the node's namespace, so a lock's address names its node), and a guest
// that boots from an RBD image and writes to it every 0.5 s (test/rig/rbd-guest.ts), so the lock
// is librbd's own exclusive lock. A sampler looks at both hypervisors through every test: the
// guest never runs on two at once.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { addressHost, type RbdDriver } from '../../drivers/rbd/types.ts';
import { createRbdDriver } from '../../drivers/rbd/index.ts';
import { cephInstalled, startCephRig, type CephRig } from '../rig/ceph.ts';
import { Cluster, clusterUnavailable, guestXml, paths, type Sampler } from '../rig/cluster.ts';
import { rbdGuestImage, rbdGuestXml } from '../rig/rbd-guest.ts';
import { writeVm } from '../rig/testdriver.ts';
import { waitFor } from '../rig/wait.ts';
import { vkFor } from '../cli/helpers.ts';
import { decodeRbdCheck } from '../../schemas/index.ts';

const MON = '198.51.100.254';
const IMAGE = 'rbd/web1';
const unavailable = clusterUnavailable() ?? cephInstalled();
if (unavailable) console.error(`!!! SKIPPING the RBD cluster tests: ${unavailable} !!!`);

describe('RBD locks: real Ceph, QEMU guests on RBD, real daemons', { skip: unavailable ?? false, timeout: 600_000 }, () => {
  let c: Cluster;
  let ceph: CephRig;
  /** rbd from each node's namespace, and from the fabric's (no node's address). */
  const rbd: Record<string, RbdDriver> = {};
  let sampler: Sampler;

  const locks = async () => (await rbd.fabric!.listLocks(IMAGE)).map((l) => ({ ...l, host: addressHost(l.address) }));
  const qemuPid = (node: string): number | undefined => {
    const file = join(c.hv(node).libvirtd.dir, 'run', 'qemu', 'web1.pid');
    if (!existsSync(file)) return undefined;
    const pid = Number(readFileSync(file, 'utf8').trim());
    return Number.isInteger(pid) && pid > 1 ? pid : undefined;
  };
  const state = async () => JSON.stringify({ where: await c.where('web1'), status: await c.status('web1'), rbd: await rbdCheck(), locks: await locks().catch(String), actions: c.actions.slice(-10) }, null, 1);
  const rbdCheck = async () => {
    const got = await c.store.get(paths.vmRbd('web1'));
    return got ? decodeRbdCheck(got.data.toString('utf8')) : null;
  };
  const setState = (s: 'running' | 'stopped') => c.editSpec('web1', (spec) => void (spec.state = s));
  const runsOn = (node: string, timeoutMs = 60_000) => waitFor(`web1 running on ${node}`, () => c.runsOn('web1', node), timeoutMs, state);
  const lockFrom = (host: string, timeoutMs = 20_000) => waitFor(`the lock held from ${host}`, async () => (await locks()).some((l) => l.host === host), timeoutMs, state);
  const stopped = async () => {
    await setState('stopped');
    await waitFor('web1 stopped', async () => (await c.status('web1'))?.phase === 'Stopped' && (await c.runningOn('web1')).length === 0, 60_000, state);
  };

  before(async () => {
    c = await Cluster.start('qemu', { nodes: 2, clusterConfig: { migration: { phaseTimeoutMs: 20_000 } } });
    const fabric = c.fabric!.fabricNs;
    // The monitor listens on the fabric's bridge, where the nodes' namespaces reach it.
    execFileSync('ip', ['-n', fabric, 'addr', 'add', `${MON}/24`, 'dev', 'br0']);
    ceph = await startCephRig({ netns: fabric, address: MON });
    const opts = { conf: ceph.conf, mountTimeoutS: 2, callTimeoutMs: 15_000 };
    rbd.fabric = createRbdDriver({ ...opts, netns: fabric });
    for (const hv of c.hvs) rbd[hv.name] = createRbdDriver({ ...opts, netns: hv.ns! });
    const img = join(c.work, 'web1.img');
    writeFileSync(img, rbdGuestImage());
    execFileSync('ip', ['netns', 'exec', fabric, 'rbd', '-c', ceph.conf, '--client_mount_timeout=5', 'import', img, IMAGE], { stdio: 'ignore' });
    for (const hv of c.hvs) {
      await c.startDaemon(hv.name, {
        rbd: { enabled: true, conf: ceph.conf, storageAddress: hv.addr!, netns: hv.ns!, mountTimeoutS: 2, callTimeoutMs: 15_000, probeMs: 2_000 },
      });
    }
    const xml = rbdGuestXml({ name: 'web1', image: IMAGE, monitors: [{ host: MON }], serialLog: join(c.work, 'web1.serial') });
    await writeVm(c.store, 'web1', { node: 'hv1', state: 'stopped', stopMode: 'force', rbd: [IMAGE] }, xml);
    await waitFor('both nodes publish their storage address', async () => {
      const s = await Promise.all(c.hvs.map((hv) => c.nodeStatus(hv.name)));
      return s.every((x, i) => x?.storage?.address === c.hvs[i]!.addr && x?.storage?.reachable === true);
    }, 30_000);
    sampler = c.sampler('web1');
  });

  after(async () => {
    await sampler?.stop();
    await c?.cleanup();
    await ceph?.cleanup();
  });

  it('a VM with an RBD disk starts on hv1; its lock shows hv1\'s storage address', async () => {
    await setState('running');
    await runsOn('hv1');
    await lockFrom('198.51.100.1');
    const check = await rbdCheck();
    assert.equal(check?.node, 'hv1');
    assert.equal(check?.purpose, 'start');
  });

  it('its QEMU SIGKILLed (a crash): the daemon removes its own stale lock first, then starts it again on hv1', async () => {
    const pid = qemuPid('hv1');
    assert.ok(pid, 'the QEMU pid file');
    const before = (await locks()).filter((l) => l.host === '198.51.100.1');
    assert.equal(before.length, 1);
    const mark = c.actions.length;
    process.kill(pid, 'SIGKILL');
    // All three awaited: the new QEMU's pid file appears before its start is done, and the daemon's
    // action line reaches us through its log pipe after the domain already runs.
    await waitFor('a new QEMU running and its start logged', async () => {
      const now = qemuPid('hv1');
      return now !== undefined && now !== pid && (await c.runsOn('web1', 'hv1'))
        && c.actions.slice(mark).some((l) => / web1 start\b/.test(l));
    }, 60_000, state);
    const lines = c.actions.slice(mark);
    const removed = lines.findIndex((l) => l.includes('removed stale RBD lock on rbd/web1') && l.includes(before[0]!.address));
    const started = lines.findIndex((l) => / web1 start\b/.test(l));
    assert.ok(removed >= 0, `the stale lock's removal is logged:\n${lines.join('\n')}`);
    assert.ok(started > removed, `removed before the start:\n${lines.join('\n')}`);
    // The new QEMU takes the lock on its first write; the old one is gone without a blocklist entry.
    await waitFor('a new lock from hv1', async () => (await locks()).some((l) => l.host === '198.51.100.1' && l.address !== before[0]!.address), 20_000, state);
    assert.deepEqual((await rbd.fabric!.blocklistList()).filter((b) => b.address.startsWith('198.51.100.1')), []);
  });

  it('vk vm flush-locks is refused on a running VM (exit 2, nothing removed)', async () => {
    const vk = vkFor(c.zk.connectString, paths.root);
    const r = await vk('vm', 'flush-locks', 'web1');
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /locks not flushed: its desired state is running/);
    assert.equal((await locks()).filter((l) => l.host === '198.51.100.1').length, 1);
    assert.equal((await c.spec('web1')).flushLocksAt, undefined);
  });

  it('with the lock held from hv2, hv1 refuses the start with RbdLockHeld naming hv2 and starts nothing; once hv2 releases, hv1 starts it with no new edit', async () => {
    await stopped();
    await waitFor('no lock after the stop', async () => (await locks()).length === 0, 20_000, state);
    await rbd.hv2!.addLock(IMAGE, 'held-by-hv2');
    const t0 = Date.now();
    await setState('running');
    const generation = (await c.store.get(paths.vmSpec('web1')))!.version;
    const status = await waitFor('RbdLockHeld', async () => {
      const s = await c.status('web1');
      return s?.conditions.find((x) => x.type === 'RbdLockHeld' && x.status === 'True') ? s : undefined;
    }, 20_000, state);
    console.log(`refused ${Date.now() - t0} ms after the spec write: ${status.conditions.find((x) => x.type === 'RbdLockHeld')!.message}`);
    assert.match(status.conditions.find((x) => x.type === 'RbdLockHeld')!.message, /rbd\/web1 is locked by hv2/);
    assert.equal(status.conditions.find((x) => x.type === 'Running')?.reason, 'RbdLockHeld');
    // Nothing is started, for as long as it is held (several of the node's looks).
    for (let i = 0; i < 10; i++) {
      assert.deepEqual(await c.runningOn('web1'), [], await state());
      await new Promise((res) => setTimeout(res, 400));
    }
    // What an operator sees: the verdict, and who holds which image.
    const vk = vkFor(c.zk.connectString, paths.root);
    const described = await vk('describe', 'vm', 'web1');
    assert.equal(described.code, 0, described.stderr);
    assert.match(described.stdout, /RBD locks:\n\s+Checked by:\s+hv1 at \S+ \(before a start\)\n\s+Verdict:\s+held \(RbdLockHeld\)/);
    assert.match(described.stdout, /rbd\/web1\s+hv2\s+client\.\d+\s+198\.51\.100\.2:0\/\d+/);
    const node = await vk('describe', 'node', 'hv2');
    assert.match(node.stdout, /Storage:\s+198\.51\.100\.2, Ceph reachable/);
    const held = (await rbd.hv2!.listLocks(IMAGE)).find((l) => l.id === 'held-by-hv2')!;
    await rbd.hv2!.removeLock(IMAGE, held);
    await runsOn('hv1', 30_000);
    assert.equal((await c.store.get(paths.vmSpec('web1')))!.version, generation, 'no spec edit since');
    const after = await c.status('web1');
    assert.equal(after?.conditions.some((x) => x.type === 'RbdLockHeld'), false);
    await lockFrom('198.51.100.1');
  });

  it('vk vm flush-locks clears the locks of a stopped VM and says which', async () => {
    await stopped();
    await waitFor('no lock after the stop', async () => (await locks()).length === 0, 20_000, state);
    await rbd.hv2!.addLock(IMAGE, 'left-by-hv2');
    const vk = vkFor(c.zk.connectString, paths.root);
    const r = await vk('vm', 'flush-locks', 'web1', '--timeout', '30');
    assert.equal(r.code, 0, r.stderr + r.stdout);
    assert.match(r.stdout, /vm\/web1 locks flushed: removed 1 lock/);
    assert.match(r.stdout, /removed rbd\/web1: client\.\d+ 198\.51\.100\.2:0\/\d+ \(hv2\)/);
    assert.deepEqual(await locks(), []);
    assert.deepEqual(await rbd.fabric!.blocklistList(), []);
  });

  it('a live migration hv1 → hv2 of the RBD-backed guest completes; the lock ends held from hv2', async () => {
    await setState('running');
    await runsOn('hv1');
    await lockFrom('198.51.100.1');
    await c.migrate('web1', 'hv2');
    await waitFor('migrated', async () => (await c.record('web1'))?.phase === 'done' && (await c.runsOn('web1', 'hv2')), 90_000, state);
    assert.equal((await c.record('web1'))?.method, 'live');
    await lockFrom('198.51.100.2');
    const check = await rbdCheck();
    assert.equal(check?.purpose, 'incoming');
    assert.equal(check?.verdict, 'clear');
    assert.equal(check?.source, 'hv1');
  });

  it('the monitor stopped: no start is attempted, RbdUnreachable within the timeout; VMs without RBD disks still converge; back once it returns', async () => {
    await stopped();
    await ceph.stopMonitor();
    try {
      const t0 = Date.now();
      await setState('running');
      const status = await waitFor('RbdUnreachable', async () => {
        const s = await c.status('web1');
        return s?.conditions.find((x) => x.type === 'RbdUnreachable' && x.status === 'True') ? s : undefined;
      }, 30_000, state);
      console.log(`RbdUnreachable ${Date.now() - t0} ms after the spec write (mountTimeoutS 2): ${status.conditions.find((x) => x.type === 'RbdUnreachable')!.message}`);
      assert.deepEqual(await c.runningOn('web1'), []);
      // A VM without RBD disks converges meanwhile on the same node.
      await writeVm(c.store, 'plain1', { node: 'hv2', state: 'running', stopMode: 'force' }, guestXml('plain1', c.blob!));
      await waitFor('plain1 running on hv2', () => c.runsOn('plain1', 'hv2'), 60_000);
      assert.deepEqual(await c.runningOn('web1'), []);
      const node = await c.nodeStatus('hv2');
      assert.equal(node?.storage?.reachable, false);
    } finally {
      await ceph.startMonitor();
    }
    await runsOn('hv2', 60_000);
    await c.editSpec('plain1', (s) => void (s.state = 'stopped'));
  });

  it('through all of it, the guest never ran on two hypervisors at once (sampler)', async () => {
    const report = await sampler.stop();
    console.log(`sampler: ${report.samples} samples`);
    assert.ok(report.samples > 50, `the sampler ran (${report.samples} samples)`);
    assert.deepEqual(report.doubleRunning, []);
  });
});
