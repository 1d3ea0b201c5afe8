// Issue 12 §3 and §4 (second bullet), through real daemons: a real ZooKeeper, three private
// libvirtds (test driver, so no live migration: like `vk sandbox up`, no node publishes a migration
// URI), three daemons, and the real `vk` binary. The VMs are the examples' (manifests/examples/
// vms.yaml, same specs), with test-driver domain XML instead of the sandbox's QEMU guests (those
// need the sandbox's bridges), applied with `vk apply -f` so `vk diff -f` can judge the end.
//
// - A flush whose VM can only migrate live, with no node able to take a live migration, does not
//   hang: the VM is shut down with the reason in the flush progress, and ready starts it again.
// - flush hv1, flush hv2, ready hv1, ready hv2 gives every VM its spec back: `vk diff` exits 0, and
//   every VM runs (or not) where its manifest says.
// - ready cancels a flush stuck on a move at once, not after the grace period: the grace period
//   (2 × phaseTimeoutMs) is made far longer than the ready's --timeout.
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { decodeMigrationRecord } from '../../schemas/index.ts';
import { vkFor, type Vk } from '../cli/helpers.ts';
import { testXml } from '../rig/testdriver.ts';
import { Cluster, paths } from '../rig/cluster.ts';
import { waitFor } from '../rig/wait.ts';

const repo = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const NODES = ['hv1', 'hv2', 'hv3'];
/** Where each example VM runs by its manifest (batch1 is stopped). */
const HOME: Record<string, string | null> = { web1: 'hv1', web2: 'hv2', db1: 'hv3', cache1: 'hv1', batch1: null };
const MEMORY: Record<string, number> = { web1: 128, web2: 128, db1: 256, cache1: 64, batch1: 128 };
/** Longer than any --timeout below: a flush that waits out its grace period fails the test. */
const PHASE_TIMEOUT_MS = 120_000;

describe("flush and ready of the examples' VMs (issue 12 §3, §4)", { timeout: 600_000 }, () => {
  let rig: Cluster;
  let vk: Vk;
  let dir: string;

  const ok = async (...args: string[]) => {
    const run = await vk(...args);
    assert.equal(run.code, 0, `vk ${args.join(' ')}: ${run.stdout}${run.stderr}`);
    return run;
  };
  /** Every VM runs where its manifest says, and nowhere else. */
  const converged = async () => {
    for (const [vm, home] of Object.entries(HOME)) {
      const on = await rig.runningOn(vm);
      if (on.join() !== (home ?? '')) return false;
      if (home && !(await rig.runsOn(vm, home))) return false;
    }
    return true;
  };

  before(async () => {
    rig = await Cluster.start('test', { nodes: NODES, clusterConfig: { defaultNodeSelector: 'mem', migration: { maxOutgoing: 2, maxIncoming: 2, phaseTimeoutMs: PHASE_TIMEOUT_MS } } });
    vk = vkFor(rig.zk.connectString, '/virtkeeper');
    for (const name of NODES) await rig.startDaemon(name);
    await waitFor('every node ready', async () => (await Promise.all(NODES.map((n) => rig.nodeStatus(n)))).every((s) => s?.domainState === 'ready'), 30_000);
    dir = mkdtempSync(join(tmpdir(), 'vk-cycle-'));
    mkdirSync(join(dir, 'domains'));
    for (const [vm, mib] of Object.entries(MEMORY)) writeFileSync(join(dir, 'domains', `${vm}.xml`), testXml(vm, mib));
    writeFileSync(join(dir, 'vms.yaml'), readFileSync(join(repo, 'manifests/examples/vms.yaml'), 'utf8'));
    await ok('apply', '-f', dir);
    await waitFor('the VMs running where the manifests say', converged, 60_000);
    await ok('diff', '-f', dir);
  });

  after(async () => {
    await rig?.cleanup();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('flush hv2: web2 (live only, no node takes live migration) is shut down with the reason instead of hanging; ready starts it again', async () => {
    const flush = await ok('node', 'flush', 'hv2', '--wait', '--timeout', '40');
    assert.match(flush.stdout, /node\/hv2 flushed: 0 moved, 1 shut down/);
    assert.match(flush.stdout, /web2 shut down: no valid target \(hv1: it takes no live migration \(publishes no migration URI\)/, 'the reason is in the flush progress');
    assert.ok(rig.actions.some((l) => /^hv2 web2 shutdown \(flush: no valid target .*takes no live migration/.test(l)), rig.actions.join('\n'));
    const spec = await rig.spec('web2');
    assert.deepEqual([spec.node, spec.state, spec.stoppedByFlush, spec.meta.autostart], ['hv2', 'stopped', 'hv2', true]);
    await waitFor('web2 stopped', async () => (await rig.runningOn('web2')).length === 0);
    assert.equal((await readLockHolders()).length, 0, 'the flush lock is free');

    const ready = await ok('node', 'ready', 'hv2', '--wait', '--timeout', '40');
    assert.match(ready.stdout, /node\/hv2 ready: 0 returned, 1 started/);
    await waitFor('web2 running on hv2 again', () => rig.runsOn('web2', 'hv2'), 30_000);
    await ok('diff', '-f', dir);
  });

  it('flush hv1, flush hv2, ready hv1, ready hv2: every VM gets its spec back and runs where its manifest says', async () => {
    await ok('node', 'flush', 'hv1', '--wait', '--timeout', '40');
    assert.deepEqual([(await rig.spec('web1')).node, (await rig.spec('cache1')).node], ['hv2', 'hv3']);
    await ok('node', 'flush', 'hv2', '--wait', '--timeout', '40');
    await ok('node', 'ready', 'hv1', '--wait', '--timeout', '40');
    await ok('node', 'ready', 'hv2', '--wait', '--timeout', '40');
    const diff = await vk('diff', '-f', dir);
    assert.equal(diff.code, 0, `vk diff after the cycle:\n${diff.stdout}${diff.stderr}`);
    await waitFor('every VM running where its manifest says', converged, 60_000);
  });

  it('ready cancels a flush stuck on a move at once, and the flush lock is free for the next flush', async () => {
    // hv1 now publishes a migration URI that leads nowhere: web2's live migration to it fails and is
    // retried for ever (a move that is under way, with a migration record, but never settles).
    await rig.stopDaemon('hv1');
    await rig.startDaemon('hv1', { migration: { uri: 'qemu+tcp://127.0.0.1:9/system', migrateUri: 'tcp://127.0.0.1:9' } });
    await waitFor('hv1 ready again', async () => (await rig.nodeStatus('hv1'))?.domainState === 'ready', 30_000);

    await ok('node', 'flush', 'hv2');
    await waitFor(
      "web2's live migration to hv1 attempted",
      async () => {
        const got = await rig.store.get(paths.vmMigration('web2'));
        return got !== null && decodeMigrationRecord(got.data.toString('utf8')).target === 'hv1';
      },
      30_000,
    );
    await waitFor('hv2 flushing, one move under way', async () => {
      const s = await rig.nodeStatus('hv2');
      return s?.domainState === 'flushing' && s.flush?.phase === 'moving' && s.flush.inFlight === 1;
    });

    // Far less than the grace period: only a flush that lets go at once lets this ready finish.
    const ready = await ok('node', 'ready', 'hv2', '--wait', '--timeout', '40');
    assert.match(ready.stdout, /node\/hv2 ready: 1 returned/);
    assert.ok(rig.actions.some((l) => l.startsWith('hv2 (node) flush cancelled')), 'the flush reports its cancellation');
    assert.equal((await readLockHolders()).length, 0, 'the flush lock is free');
    await waitFor('web2 running on hv2', () => rig.runsOn('web2', 'hv2'), 30_000);
    const spec = await rig.spec('web2');
    assert.deepEqual([spec.node, spec.previousNode, spec.state], ['hv2', undefined, 'running']);
    await ok('diff', '-f', dir);
  });

  async function readLockHolders(): Promise<string[]> {
    return (await rig.store.children(paths.lock('flush'))) ?? [];
  }
});
