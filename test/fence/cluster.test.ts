// Fencing and recovery end to end (issue 18): three QEMU/TCG hypervisors in network namespaces,
// a real Ceph on the fabric, a BMC simulator (ipmi_sim) for hv3 whose power-off kills hv3's
// daemon, libvirtd and guests (test/rig/cluster.ts powerLoss), real daemons: hv1 and hv2 are the
// coordinators (in this process, one of them holds the fence lock), hv3's daemon is a child
// process whose ZooKeeper connection runs through a relay the test can cut (an isolation).
//
// hv3 runs three guests that boot from RBD images: r1 and r2 (all disks on RBD) and d1 (also a
// local file disk, which a storage fence cannot cover). A sampler looks at every node every 50 ms
// for each guest: none ever runs on two at once.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { createIpmiFencer } from '../../drivers/fence/index.ts';
import { createRbdDriver } from '../../drivers/rbd/index.ts';
import type { RbdDriver } from '../../drivers/rbd/types.ts';
import { compareAndSet } from '../../drivers/zk/index.ts';
import { decodeClusterConfig, encodeClusterConfig, encodeNodeFence, type NodeFenceInput } from '../../schemas/index.ts';
import { bmcInstalled, startBmcRig, type BmcRig } from '../rig/bmc.ts';
import { cephInstalled, startCephRig, type CephRig } from '../rig/ceph.ts';
import { Cluster, clusterUnavailable, paths, type Sampler } from '../rig/cluster.ts';
import { rbdGuestImage, rbdGuestXml } from '../rig/rbd-guest.ts';
import { startTcpProxy, type TcpProxy } from '../rig/tcp-proxy.ts';
import { moveVm } from '../rig/storm.ts';
import { writeVm } from '../rig/testdriver.ts';
import { waitFor } from '../rig/wait.ts';
import { vkFor } from '../cli/helpers.ts';

const MON = '198.51.100.254';
const VMS = ['d1', 'r1', 'r2'];
const RBD_ONLY = ['r1', 'r2'];
/** A VM hv3 holds at rest (stopped): fenced, hv3 gives it up through recovery. */
const REST = 'rest1';
const unavailable = clusterUnavailable() ?? cephInstalled() ?? bmcInstalled();
if (unavailable) console.error(`!!! SKIPPING the fencing cluster tests: ${unavailable} !!!`);

describe('fencing and recovery: three nodes, a BMC simulator, real Ceph, real daemons', { skip: unavailable ?? false, timeout: 900_000 }, () => {
  let c: Cluster;
  let ceph: CephRig;
  let bmc: BmcRig;
  let proxy: TcpProxy;
  let rbd: RbdDriver;
  const samplers: Sampler[] = [];
  let fenceSettings: NodeFenceInput;

  const state = async () =>
    JSON.stringify(
      {
        where: Object.fromEntries(await Promise.all(VMS.map(async (vm) => [vm, await c.where(vm)]))),
        specs: Object.fromEntries(await Promise.all(VMS.map(async (vm) => [vm, await c.spec(vm).then((s) => `${s.node}/${s.state}/${s.previousNode ?? '-'}`)]))),
        fence: (await c.nodeStatus('hv3'))?.fence,
        events: c.fenceEvents.slice(-8).map((e) => `${e.kind} ${e.vm ?? ''} ${e.message}`),
        actions: c.actions.slice(-8),
      },
      null,
      1,
    );
  const hv3Daemon = () => ({
    zookeeper: { hosts: proxy.address, root: paths.root, sessionTimeoutMs: 4000 },
    rbd: { enabled: true, conf: ceph.conf, storageAddress: c.hv('hv3').addr!, netns: c.hv('hv3').ns!, mountTimeoutS: 2, callTimeoutMs: 15_000, probeMs: 2_000 },
  });
  const fence = async () => (await c.nodeStatus('hv3'))?.fence;
  const setFenceSettings = async (s: NodeFenceInput) => {
    const path = paths.nodeFence('hv3');
    const got = await c.store.get(path);
    if (got) await c.store.set(path, encodeNodeFence(s), got.version);
    else await c.store.create(path, encodeNodeFence(s), { parents: true });
  };
  const setMaintenance = (on: boolean) =>
    compareAndSet(c.store, paths.config, { decode: (d) => decodeClusterConfig(d.toString('utf8')), encode: encodeClusterConfig, edit: (cfg) => ({ ...cfg, maintenance: on }) });
  const allOnHv3 = () => waitFor('every VM running on hv3', async () => (await Promise.all(VMS.map((vm) => c.runsOn(vm, 'hv3')))).every(Boolean), 120_000, state);
  const recoveredOff = (vms: string[]) =>
    waitFor(`${vms.join(', ')} running on hv1/hv2`, async () => {
      for (const vm of vms) {
        const s = await c.status(vm);
        if (!s || s.node === 'hv3' || !(await c.runsOn(vm, s.node))) return false;
      }
      return true;
    }, 120_000, state);
  const assertNoDoubleRun = () => {
    for (const s of samplers) assert.equal(s.doubleRunsSoFar(), 0, `a guest ran on two nodes at once:\n${JSON.stringify(s.latest())}`);
  };

  /** hv3 repaired: powered on, libvirtd and daemon back; then `vk node ready hv3` brings its VMs home. */
  const repairAndReady = async () => {
    if (bmc.power() === 'off') await createIpmiFencer(bmc.fenceOptions()).powerOn();
    if (!c.hv('hv3').libvirtd.running) await c.powerBack('hv3');
    proxy.restore();
    execFileSync('ip', ['-n', c.hv('hv3').ns!, 'link', 'set', 'eth0', 'up']);
    if (!c.children.has('hv3')) await c.spawnDaemon('hv3', hv3Daemon());
    const vk = vkFor(c.zk.connectString, paths.root);
    const r = await vk('node', 'ready', 'hv3');
    assert.equal(r.code, 0, r.stderr);
    await waitFor('the fence record cleared', async () => (await fence()) === undefined, 60_000, state);
    // The storage fence's entry is lifted (entries of the dead QEMUs' own client instances, made when their locks were broken, may stay: they expire).
    assert.deepEqual((await rbd.blocklistList()).filter((b) => b.address === '198.51.100.3:0/0'), [], "hv3's blocklist entry is lifted");
    await allOnHv3();
    assertNoDoubleRun();
  };

  before(async () => {
    c = await Cluster.start('qemu', {
      nodes: 3,
      clusterConfig: { coordinators: ['hv1', 'hv2'], fence: { graceMs: 2_000, retryBaseMs: 1_000, retryMaxMs: 4_000 }, migration: { phaseTimeoutMs: 20_000 } },
    });
    const fabric = c.fabric!.fabricNs;
    execFileSync('ip', ['-n', fabric, 'addr', 'add', `${MON}/24`, 'dev', 'br0']);
    ceph = await startCephRig({ netns: fabric, address: MON });
    rbd = createRbdDriver({ conf: ceph.conf, mountTimeoutS: 2, callTimeoutMs: 15_000, netns: fabric });
    bmc = await startBmcRig({ name: 'hv3-bmc', password: 'hv3-Secret-7' });
    // The BMC's power-off is hv3's power loss: its daemon, libvirtd and guests die.
    bmc.onPowerChange((e) => {
      if (e.what === 'power' && e.value === 0 && !e.ignored) void c.powerLoss('hv3');
    });
    const zkPort = Number(c.zk.connectString.split(',')[0]!.split(':')[1]);
    proxy = await startTcpProxy('127.0.0.1', zkPort);
    for (const vm of VMS) {
      const img = join(c.work, `${vm}.img`);
      writeFileSync(img, rbdGuestImage());
      execFileSync('ip', ['netns', 'exec', fabric, 'rbd', '-c', ceph.conf, '--client_mount_timeout=5', 'import', img, `rbd/${vm}`], { stdio: 'ignore' });
    }
    const local = join(c.work, 'd1-local.raw');
    writeFileSync(local, Buffer.alloc(1024 * 1024));
    for (const hv of ['hv1', 'hv2']) {
      await c.startDaemon(hv, {
        rbd: { enabled: true, conf: ceph.conf, storageAddress: c.hv(hv).addr!, netns: c.hv(hv).ns!, mountTimeoutS: 2, callTimeoutMs: 15_000, probeMs: 2_000 },
        fence: { enabled: true, ipmitool: '/usr/bin/ipmitool', resyncMs: 500 },
      });
    }
    await c.spawnDaemon('hv3', hv3Daemon());
    fenceSettings = { ipmi: { ...bmc.fenceOptions(), timeoutMs: 1_500, retries: 1, verifyTimeoutMs: 5_000 }, storage: { ttlS: 3600 } };
    await setFenceSettings(fenceSettings);
    for (const vm of VMS) {
      let xml = rbdGuestXml({ name: vm, image: `rbd/${vm}`, monitors: [{ host: MON }], serialLog: join(c.work, `${vm}.serial`) });
      if (vm === 'd1') xml = xml.replace('</devices>', `<disk type='file' device='disk'><driver name='qemu' type='raw'/><source file='${local}'/><target dev='vdb' bus='virtio'/></disk>\n  </devices>`);
      await writeVm(c.store, vm, { node: 'hv3', state: 'running', stopMode: 'force', rbd: [`rbd/${vm}`] }, xml);
    }
    await allOnHv3();
    for (const vm of VMS) samplers.push(c.sampler(vm, { everyMs: 50, allowDowntime: true }));
  });

  after(async () => {
    for (const s of samplers) await s.stop().catch(() => undefined);
    await proxy?.close();
    await c?.cleanup();
    await bmc?.cleanup();
    await ceph?.cleanup();
  });

  it('power loss of hv3 (its BMC powers it off behind the cluster\'s back): every VM runs on hv1/hv2 exactly once; hv3 is fenced by ipmi', async () => {
    // A VM at rest that hv3 holds (its status reserved by hv3's session): recovery releases it.
    await writeVm(c.store, REST, { node: 'hv3', state: 'stopped' }, `<domain type='qemu'><name>${REST}</name><memory unit='MiB'>64</memory><vcpu>1</vcpu><os><type arch='x86_64' machine='pc'>hvm</type></os><devices><emulator>/usr/bin/qemu-system-x86_64</emulator></devices></domain>`);
    const reserved = await waitFor(`${REST} reserved at rest by hv3`, async () => {
      const s = await c.status(REST);
      return s?.node === 'hv3' && s.phase === 'Stopped' && s.reservedBy !== undefined ? s : undefined;
    }, 30_000, state);
    const mark = c.fenceEvents.length;
    await createIpmiFencer(bmc.fenceOptions()).powerOff();
    await recoveredOff(VMS);
    const f = await fence();
    assert.equal(f?.state, 'fenced', JSON.stringify(f));
    assert.equal(f?.level, 'ipmi');
    assert.deepEqual([...(f?.recovered ?? [])].sort(), VMS);
    const kinds = c.fenceEvents.slice(mark).map((e) => e.kind);
    // One fence round: a holder that looks again before its cache has its own "fenced" write recovers, it does not fence again.
    assert.equal(kinds.filter((k) => k === 'fence.started').length, 1, kinds.join(' '));
    assert.equal(kinds.filter((k) => k === 'fence.succeeded').length, 1, kinds.join(' '));
    assert.equal(kinds.filter((k) => k === 'vm.recovered').length, 3, kinds.join(' '));
    // One coordinator acted (the holder of the fence lock), though both run the fence concern.
    assert.equal(new Set(c.fenceEvents.slice(mark).map((e) => e.by)).size, 1);
    // The node says flushed for the generation the fence wrote, so a later `vk node ready` is a ready.
    const hv3 = await c.nodeStatus('hv3');
    assert.equal(hv3?.domainState, 'flushed');
    assert.equal(hv3?.daemonState, 'dead');
    for (const vm of VMS) assert.equal((await c.spec(vm)).previousNode, 'hv3');
    assertNoDoubleRun();
    const events = await vkFor(c.zk.connectString, paths.root)('events', '--node', 'hv3', '-o', 'json');
    assert.equal(events.code, 0, events.stderr);
    const logged = (JSON.parse(events.stdout) as Array<{ event?: { kind: string }; kind?: string }>).map((e) => e.kind ?? e.event?.kind);
    for (const kind of ['fence.started', 'fence.succeeded', 'vm.recovered']) assert.ok(logged.includes(kind), `vk events shows ${kind}: ${logged.join(' ')}`);
    const out = await vkFor(c.zk.connectString, paths.root)('get', 'nodes');
    assert.match(out.stdout, /hv3.*fenced/, out.stdout);
    assert.doesNotMatch(out.stdout + out.stderr, /hv3-Secret-7/);

    // The VM at rest: released (no reservation, a NodeFenced condition), its spec left as it was.
    const released = await waitFor(`${REST} released`, async () => {
      const s = await c.status(REST);
      return s && s.reservedBy === undefined ? s : undefined;
    }, 30_000, state);
    assert.notEqual(reserved.reservedBy, undefined);
    assert.equal(released.phase, 'Stopped');
    const condition = released.conditions.find((k) => k.type === 'Running');
    assert.equal(condition?.reason, 'NodeFenced', JSON.stringify(released.conditions));
    assert.match(condition?.message ?? '', /hv3 was fenced \(ipmi\); released/);
    assert.equal((await c.spec(REST)).node, 'hv3', 'a release leaves the spec alone');
    assert.ok(!(f?.recovered ?? []).includes(REST), 'a VM at rest is released, not recovered (moved)');
    // Released, it is free: moved to hv1, hv1 holds it at once (hv3 is dead and cannot let it go itself).
    await moveVm(c.store, REST, 'hv1');
    await waitFor(`${REST} reserved at rest by hv1`, async () => {
      const s = await c.status(REST);
      return s?.node === 'hv1' && s.phase === 'Stopped' && s.reservedBy !== undefined;
    }, 30_000, state);
  });

  it('vk node ready hv3 after the repair brings its VMs back', async () => {
    await repairAndReady();
  });

  it('network isolation of hv3 (daemon and guests alive, cut off): it is powered off through IPMI before any VM is recovered; no VM ever runs twice', async () => {
    const mark = c.fenceEvents.length;
    const bmcMark = bmc.events().length;
    proxy.cut();
    execFileSync('ip', ['-n', c.hv('hv3').ns!, 'link', 'set', 'eth0', 'down']);
    await recoveredOff(VMS);
    const off = bmc.events().slice(bmcMark).find((e) => e.what === 'power' && e.value === 0);
    assert.ok(off, 'the BMC saw a power-off');
    const recovered = c.fenceEvents.slice(mark).filter((e) => e.kind === 'vm.recovered');
    assert.equal(recovered.length, 3);
    for (const e of recovered) assert.ok(e.at >= off.at, `${e.vm} recovered at ${e.at}, before the power-off at ${off.at}`);
    assert.equal((await fence())?.level, 'ipmi');
    assertNoDoubleRun();
    await repairAndReady();
  });

  it('BMC unreachable too: the storage level fences (blocklist in ceph osd blocklist ls); RBD-only VMs are recovered, d1 (a local disk) is not, and says why', async () => {
    const mark = c.fenceEvents.length;
    await bmc.kill();
    await c.powerLoss('hv3');
    await recoveredOff(RBD_ONLY);
    const f = await waitFor('hv3 fenced by storage', async () => ((await fence())?.state === 'fenced' ? fence() : undefined), 60_000, state);
    assert.equal(f?.level, 'storage');
    assert.ok(f?.results.some((r) => r.level === 'ipmi' && !r.ok), 'the ipmi level was tried first and failed');
    const entries = await rbd.blocklistList();
    assert.ok(entries.some((b) => b.address === '198.51.100.3:0/0'), JSON.stringify(entries));
    const d1 = await waitFor('d1 says why it stays', async () => (await c.status('d1'))?.conditions.find((x) => x.type === 'NotRecovered' && x.status === 'True'), 30_000, state);
    assert.match(d1.message, /vdb .*not on RBD/);
    assert.equal((await c.spec('d1')).node, 'hv3');
    assert.deepEqual(f?.notRecovered.map((n) => n.vm), ['d1']);
    const kinds = c.fenceEvents.slice(mark).filter((e) => e.node === 'hv3').map((e) => e.kind);
    assert.equal(kinds.filter((k) => k === 'fence.started').length, 1, kinds.join(' '));
    assertNoDoubleRun();
    await bmc.restart();
    await repairAndReady();
  });

  it('a daemon restarted within the grace period triggers nothing', async () => {
    const mark = c.fenceEvents.length;
    await c.killChild('hv3');
    await c.spawnDaemon('hv3', hv3Daemon());
    // Session timeout (4 s) + grace (2 s) + margin.
    await new Promise((r) => setTimeout(r, 9_000));
    assert.equal(await fence(), undefined);
    assert.deepEqual(c.fenceEvents.slice(mark).map((e) => e.kind), []);
    for (const vm of VMS) assert.equal(await c.runsOn(vm, 'hv3'), true);
  });

  it('maintenance on: a lost node is reported, not fenced; off again: it is fenced and recovered', async () => {
    await setMaintenance(true);
    const bmcMark = bmc.events().length;
    await c.powerLoss('hv3');
    const f = await waitFor('hv3 reported lost', async () => ((await fence())?.state === 'lost' ? fence() : undefined), 30_000, state);
    assert.match(f!.message, /maintenance/);
    await new Promise((r) => setTimeout(r, 3_000));
    assert.equal(bmc.events().length, bmcMark, 'nothing was sent to the BMC');
    for (const vm of VMS) assert.equal((await c.spec(vm)).node, 'hv3');
    await setMaintenance(false);
    await recoveredOff(VMS);
    assert.equal((await fence())?.state, 'fenced');
    await repairAndReady();
  });

  it('a wrong IPMI password: the fence fails, is retried and reported, and nothing is recovered', async () => {
    await setFenceSettings({ ipmi: { ...bmc.fenceOptions(), password: 'wrong-Pass-9', timeoutMs: 1_500, retries: 0 } });
    const mark = c.fenceEvents.length;
    await c.powerLoss('hv3');
    const f = await waitFor('two failed rounds', async () => {
      const r = await fence();
      return r?.state === 'failed' && r.rounds >= 2 ? r : undefined;
    }, 60_000, state);
    assert.ok(f.results.every((r) => !r.ok && r.reason === 'FenceAuthFailed'), JSON.stringify(f.results));
    assert.ok(c.fenceEvents.slice(mark).filter((e) => e.kind === 'fence.failed').length >= 2);
    assert.equal(c.fenceEvents.slice(mark).filter((e) => e.kind === 'vm.recovered').length, 0);
    for (const vm of VMS) assert.equal((await c.spec(vm)).node, 'hv3');
    assert.doesNotMatch(JSON.stringify(f), /wrong-Pass-9|hv3-Secret-7/);
    // The right password again: the next retry fences it and the VMs are recovered.
    await setFenceSettings(fenceSettings);
    await recoveredOff(VMS);
    await repairAndReady();
  });
});
