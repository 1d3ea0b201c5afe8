// The RBD driver (drivers/rbd/) against a real Ceph 16: one monitor + one memstore OSD
// (test/rig/ceph.ts, started once for the file) in a fabric namespace on 198.51.100.254, its
// bridge joining two node namespaces h1 (198.51.100.1) and h2 (198.51.100.2), each with a driver
// of its own. It checks: a lock taken from h1 lists h1's address, a second `lock add` (from h2,
// any id) is RbdLockHeld, removing it (from h2) leaves the blocklist empty and a second removal is
// no error; librbd's exclusive lock taken by a client in h2 (as QEMU takes it) shows as an "auto …"
// lock and a watcher with h2's address and blocks `lock add`; a blocklist add/ls/rm round trip;
// RbdNotFound; and the monitor stopped: RbdUnreachable after --client_mount_timeout (and after
// callTimeoutMs when that is shorter), then the driver works again once the monitor is back.
// The parsers and the error mapping are tested on captured output first; those need no Ceph.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { parseBlocklist, parseLocks, parseWatchers } from '../../drivers/rbd/index.ts';
import { cephTime, jsonValues } from '../../drivers/rbd/parse.ts';
import { reasonOf } from '../../drivers/rbd/errors.ts';
import { addressHost, createRbdDriver, RbdError, type RbdDriver, type RbdErrorReason } from '../../drivers/rbd/index.ts';
import { ip, netnsUsable } from '../../drivers/launch/netns.ts';
import { cephInstalled, holdExclusiveLock, startCephRig, type CephRig } from '../rig/ceph.ts';
import { createFabric, type Fabric } from '../rig/netns.ts';
import { waitFor } from '../rig/wait.ts';

const MON_ADDRESS = '198.51.100.254';
const IMAGE = 'rbd/img1';

/** Rejects with an RbdError of `reason`; answers how long the call took. */
async function rejectsWith(reason: RbdErrorReason, call: () => Promise<unknown>, message?: RegExp): Promise<number> {
  const t0 = Date.now();
  await assert.rejects(call, (e: unknown) => {
    assert.ok(e instanceof RbdError, `not an RbdError: ${String(e)}`);
    assert.equal(e.reason, reason, e.message);
    if (message) assert.match(e.message, message);
    return true;
  });
  return Date.now() - t0;
}

describe('RBD output parsers and error reasons (captured from Ceph 16.2.15)', () => {
  it('rbd lock ls: the array of Ceph 16, the keyed object of older releases, nothing', () => {
    assert.deepEqual(parseLocks('[{"id":"mylock","locker":"client.4119","address":"127.0.0.1:0/2835833973"}]'), [
      { id: 'mylock', locker: 'client.4119', address: '127.0.0.1:0/2835833973' },
    ]);
    assert.deepEqual(parseLocks('[]'), []);
    assert.deepEqual(parseLocks(''), []);
    assert.deepEqual(parseLocks('{"auto 1":{"locker":"client.7","address":"198.51.100.1:0/9"}}'), [{ id: 'auto 1', locker: 'client.7', address: '198.51.100.1:0/9' }]);
    assert.throws(() => parseLocks('[{"id":"x","locker":"client.1"}]'), /"address" is not a non-empty string/);
    assert.throws(() => parseLocks('rbd: error'), /not JSON/);
  });

  it('rbd status: watchers, and none', () => {
    assert.deepEqual(parseWatchers('{"watchers":[{"address":"127.0.0.1:0/2378637426","client":4181,"cookie":93946468515696}]}'), [
      { address: '127.0.0.1:0/2378637426', client: 4181, cookie: 93946468515696 },
    ]);
    assert.deepEqual(parseWatchers('{"watchers":[]}'), []);
    assert.throws(() => parseWatchers('[]'), /not an object/);
  });

  it('ceph osd blocklist ls: a newline and two arrays back to back (entries, then ranges, which are left out)', () => {
    const out = '\n[{"addr":"198.51.100.7:0/0","until":"2026-12-04T20:19:57.653192+0000"}][{"range":"203.0.113.0:0/24","until":"2026-12-04T20:19:57.120574+0000"}]';
    assert.deepEqual(parseBlocklist(out), [{ address: '198.51.100.7:0/0', until: '2026-12-04T20:19:57.653Z' }]);
    assert.deepEqual(parseBlocklist('\n[][]'), []);
    assert.deepEqual(parseBlocklist('[]'), []);
    assert.deepEqual(jsonValues(' [1] {"a":"]["} ', 'x'), [[1], { a: '][' }]);
    assert.throws(() => parseBlocklist('[{"addr":"1.2.3.4:0/0","until":"x"}'), /truncated/);
    assert.equal(cephTime('2026-12-04T21:18:44.845825+0000'), '2026-12-04T21:18:44.845Z');
    assert.equal(cephTime('0.000000'), '0.000000');
  });

  it('error reasons from what rbd and ceph print', () => {
    const r = (code: number, stderr: string, op: 'lockAdd' | 'other' = 'other') => reasonOf({ code, stderr, timedOut: false }, op);
    const monDown = '2026-12-04T20:19:21.278+0000 7f431229c380  0 monclient(hunting): authenticate timed out after 3\n\nrbd: couldn\'t connect to the cluster!\n';
    assert.equal(r(110, monDown), 'RbdUnreachable');
    assert.equal(r(1, '[errno 110] RADOS timed out (error connecting to the cluster)\n'), 'RbdUnreachable');
    assert.equal(reasonOf({ code: null, stderr: '', timedOut: true }, 'other'), 'RbdUnreachable');
    assert.equal(r(16, 'rbd: lock is already held by someone else\n', 'lockAdd'), 'RbdLockHeld');
    assert.equal(r(16, 'rbd: something busy: (16) Device or resource busy\n'), 'RbdFailed');
    assert.equal(r(2, "rbd: error opening pool 'nopool': (2) No such file or directory\n"), 'RbdNotFound');
    assert.equal(r(13, 'rbd: couldn\'t connect to the cluster!\n'), 'RbdDenied');
    assert.equal(r(1, '[errno 13] RADOS permission denied (error connecting to the cluster)\n'), 'RbdDenied');
    assert.equal(r(1, 'Error EPERM: access denied\n'), 'RbdDenied');
    const noKeyring = '2026-12-04T20:31:44.834+0000 7f01ef6b96c0 -1 AuthRegistry(0x7f01e805b630) no keyring found at /etc/ceph/ceph.client.admin.keyring, disabling cephx\n[errno 2] RADOS object not found (error connecting to the cluster)\n';
    assert.equal(r(1, noKeyring), 'RbdDenied');
    assert.equal(r(22, 'Error EINVAL: invalid command\n'), 'RbdFailed');
    assert.equal(r(1, 'rbd: unknown option\n'), 'RbdFailed');
  });

  it('createRbdDriver refuses options that are not usable, and calls refuse arguments Ceph would read as options', async () => {
    assert.throws(() => createRbdDriver({ netns: 'a b' }), TypeError);
    assert.throws(() => createRbdDriver({ id: 'client admin' }), TypeError);
    assert.throws(() => createRbdDriver({ mountTimeoutS: 0 }), TypeError);
    assert.throws(() => createRbdDriver({ conf: 'relative.conf' }), TypeError);
    const d = createRbdDriver({ binDir: '/nonexistent' });
    await assert.rejects(() => d.listLocks('-x/y'), TypeError);
    await assert.rejects(() => d.listLocks('img-without-pool'), TypeError);
    await assert.rejects(() => d.removeLock('rbd/x', { id: 'a', locker: '--all' }), TypeError);
    await assert.rejects(() => d.blocklistAdd('--yes', 10), TypeError);
    await assert.rejects(() => d.blocklistAdd('198.51.100.7:0/0', 0), TypeError);
  });

  it('a missing binary is RbdFailed, not a hang', async () => {
    await rejectsWith('RbdFailed', () => createRbdDriver({ binDir: '/nonexistent' }).listLocks('rbd/x'), /ENOENT/);
  });
});

const why = cephInstalled() ?? netnsUsable() ?? (process.getuid?.() !== 0 ? 'needs root (network namespaces)' : undefined);
if (why) console.error(`\n*** SKIPPING the RBD driver tests against a real Ceph: ${why} ***\n`);

describe('RBD driver against a real Ceph 16 in a fabric namespace', { skip: why }, () => {
  let fabric: Fabric;
  let ceph: CephRig;
  /** One per node namespace: h1 on 198.51.100.1, h2 on 198.51.100.2. */
  let d1: RbdDriver;
  let d2: RbdDriver;
  let h1: string;
  let h2: string;

  before(async () => {
    fabric = createFabric(2);
    [h1, h2] = [fabric.hosts[0]!.addr, fabric.hosts[1]!.addr];
    ip('-n', fabric.fabricNs, 'addr', 'add', `${MON_ADDRESS}/24`, 'dev', 'br0');
    ceph = await startCephRig({ netns: fabric.fabricNs, address: MON_ADDRESS });
    await ceph.createImage(IMAGE);
    d1 = createRbdDriver({ conf: ceph.conf, netns: fabric.hosts[0]!.ns });
    d2 = createRbdDriver({ conf: ceph.conf, netns: fabric.hosts[1]!.ns });
  });

  after(async () => {
    await ceph?.cleanup();
    fabric?.cleanup();
  });

  it('a fresh image has no lock and no watcher', async () => {
    assert.deepEqual(await d1.listLocks(IMAGE), []);
    assert.deepEqual(await d2.watchers(IMAGE), []);
  });

  it('a lock taken from h1 shows h1 as its address (from either node); a second lock add from h2 is RbdLockHeld', async () => {
    await d1.addLock(IMAGE, 'vk-test');
    const [lock, ...rest] = await d2.listLocks(IMAGE);
    assert.deepEqual(rest, []);
    assert.equal(lock!.id, 'vk-test');
    assert.match(lock!.locker, /^client\.\d+$/);
    assert.equal(addressHost(lock!.address), h1, lock!.address);
    await rejectsWith('RbdLockHeld', () => d2.addLock(IMAGE, 'other-id'), /already held/);
    await rejectsWith('RbdLockHeld', () => d2.addLock(IMAGE, 'vk-test'));
    assert.deepEqual(await d1.listLocks(IMAGE), [lock]);
  });

  it('removeLock (from h2) removes it without blocklisting h1; removing it again is no error; then h2 can lock', async () => {
    const [lock] = await d1.listLocks(IMAGE);
    assert.ok(lock);
    await d2.removeLock(IMAGE, lock);
    assert.deepEqual(await d1.listLocks(IMAGE), []);
    assert.deepEqual(await d2.blocklistList(), []);
    await d2.removeLock(IMAGE, lock);
    await d2.addLock(IMAGE, 'vk-test-2');
    const [mine] = await d1.listLocks(IMAGE);
    assert.equal(addressHost(mine!.address), h2);
    await d1.removeLock(IMAGE, mine!);
    assert.deepEqual(await d1.listLocks(IMAGE), []);
    assert.deepEqual(await d1.blocklistList(), []);
  });

  it("librbd's exclusive lock held from h2 (as by QEMU): an auto lock and a watcher at h2; lock add is refused", async () => {
    const holder = await holdExclusiveLock({ conf: ceph.conf, image: IMAGE, netns: fabric.hosts[1]!.ns });
    try {
      const [lock, ...rest] = await d1.listLocks(IMAGE);
      assert.deepEqual(rest, []);
      assert.match(lock!.id, /^auto \d+$/);
      assert.equal(addressHost(lock!.address), h2);
      const [watcher, ...others] = await d1.watchers(IMAGE);
      assert.deepEqual(others, []);
      assert.equal(watcher!.address, lock!.address);
      assert.equal(`client.${watcher!.client}`, lock!.locker);
      assert.ok(Number.isInteger(watcher!.cookie) && watcher!.cookie > 0);
      await rejectsWith('RbdLockHeld', () => d1.addLock(IMAGE, 'vk-test'));
    } finally {
      await holder.release();
    }
    // A clean close releases the lock and the watch.
    await waitFor('lock and watcher gone after the holder closed the image', async () => (await d1.listLocks(IMAGE)).length === 0 && (await d1.watchers(IMAGE)).length === 0, 10_000);
  });

  it('blocklist: add, list (address and expiry), remove, remove again', async () => {
    const t0 = Date.now();
    await d1.blocklistAdd('198.51.100.7:0/0', 600);
    const list = await d2.blocklistList();
    assert.equal(list.length, 1, JSON.stringify(list));
    assert.equal(list[0]!.address, '198.51.100.7:0/0');
    const until = Date.parse(list[0]!.until);
    assert.ok(Math.abs(until - (t0 + 600_000)) < 30_000, `until ${list[0]!.until}`);
    await d2.blocklistRemove('198.51.100.7:0/0');
    assert.deepEqual(await d1.blocklistList(), []);
    await d2.blocklistRemove('198.51.100.7:0/0');
  });

  it('no such image or pool: RbdNotFound', async () => {
    await rejectsWith('RbdNotFound', () => d1.listLocks('rbd/nope'));
    await rejectsWith('RbdNotFound', () => d1.watchers('nopool/nope'));
    await rejectsWith('RbdNotFound', () => d1.addLock('rbd/nope', 'x'));
  });

  it('monitor stopped: RbdUnreachable after the mount timeout (or the call timeout, when shorter); back once it restarts', async (t) => {
    const mountTimeoutS = 2;
    const callTimeoutMs = 6000;
    const bounded = createRbdDriver({ conf: ceph.conf, netns: fabric.hosts[0]!.ns, mountTimeoutS, callTimeoutMs });
    const killed = createRbdDriver({ conf: ceph.conf, netns: fabric.hosts[1]!.ns, mountTimeoutS: 60, callTimeoutMs: 1500 });
    await ceph.stopMonitor();
    try {
      const [rbdMs, cephMs, killedMs] = await Promise.all([
        rejectsWith('RbdUnreachable', () => bounded.listLocks(IMAGE), /couldn't connect to the cluster/),
        rejectsWith('RbdUnreachable', () => bounded.blocklistList(), /error connecting to the cluster/),
        rejectsWith('RbdUnreachable', () => killed.listLocks(IMAGE), /no answer within 1500 ms \(killed\)/),
      ]);
      t.diagnostic(`monitor down: rbd failed after ${rbdMs} ms, ceph after ${cephMs} ms (mount timeout ${mountTimeoutS} s); killed at the call timeout after ${killedMs} ms`);
      for (const ms of [rbdMs, cephMs]) {
        assert.ok(ms >= mountTimeoutS * 1000 - 100, `failed before the mount timeout: ${ms} ms`);
        assert.ok(ms <= callTimeoutMs + 1000, `took ${ms} ms`);
      }
      assert.ok(killedMs <= 1500 + 1000, `took ${killedMs} ms`);
    } finally {
      await ceph.startMonitor();
    }
    assert.deepEqual(await bounded.listLocks(IMAGE), []);
    assert.deepEqual(await killed.blocklistList(), []);
  });
});
