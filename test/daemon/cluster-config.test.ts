// Issue 12 §5: the cluster config's keepaliveIntervalMs, consoleLogLines and keepaliveDeadAfterMs
// are kept, by real daemons (ZooKeeper, libvirtd with the test driver) and by `vk get/describe`.
//  - keepaliveIntervalMs sets the keepalive rate of a daemon whose own config leaves keepaliveMs
//    unset, and a change applies to the running daemon; a daemon config's keepaliveMs wins.
//  - consoleLogLines bounds the console znode, and a change applies at once.
//  - a node whose keepalive is older than keepaliveDeadAfterMs is reported stale (not acted on).
// Rates are observed as counts of keepalive writes (distinct keepaliveAt values seen by a watch),
// with wide margins, never as timings.
import assert from 'node:assert/strict';
import { appendFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Subscription } from 'rxjs';
import type { RunningDaemon } from '../../daemon/daemon.ts';
import { ZkStore } from '../../drivers/zk/index.ts';
import { decodeNodeLease, decodeNodeStatus, encodeClusterConfig, encodeNodeLease, encodeNodeStatus, type ClusterConfigInput } from '../../schemas/index.ts';
import { vkFor } from '../cli/helpers.ts';
import { startZooKeeper, type ZkServer } from '../rig/zookeeper.ts';
import { daemonConfig, paths, runDaemon, startHv, stopHv, testXml, writeVm, type HvRig } from '../rig/testdriver.ts';
import { waitFor } from '../rig/wait.ts';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe('cluster config: keepalive interval, console lines, stale keepalives', () => {
  let zk: ZkServer;
  let store: ZkStore;
  let hv1: HvRig;
  let hv2: HvRig;
  const daemons: RunningDaemon[] = [];
  const subs: Subscription[] = [];
  const logDir = mkdtempSync(join(tmpdir(), 'vk-cfg-'));
  /** Distinct lease renewals each node has written (every keepalive tick), as a watch saw them. */
  const keepalives = new Map<string, Set<string>>();

  async function setConfig(config: ClusterConfigInput): Promise<void> {
    const current = await store.get(paths.config);
    if (current) await store.set(paths.config, encodeClusterConfig(config), current.version);
    else await store.create(paths.config, encodeClusterConfig(config), { parents: true });
  }

  function watchKeepalives(node: string): void {
    keepalives.set(node, new Set());
    subs.push(
      store.watchData(paths.nodeLease(node)).subscribe((s) => {
        if (s.kind === 'data') keepalives.get(node)!.add(decodeNodeLease(s.data).renewedAt);
      }),
    );
  }
  const count = (node: string): number => keepalives.get(node)!.size;

  before(async () => {
    zk = await startZooKeeper();
    store = await ZkStore.connect({ connectString: zk.connectString });
    [hv1, hv2] = await Promise.all([startHv('hv1'), startHv('hv2')]);
    // A slow cluster keepalive to start with.
    await setConfig({ keepaliveIntervalMs: 600_000, keepaliveDeadAfterMs: 1_200_000 });
    watchKeepalives('hv1');
    watchKeepalives('hv2');
    // hv1 follows the cluster; hv2's own config sets keepaliveMs, which wins.
    daemons.push(await runDaemon(daemonConfig('hv1', zk.connectString, hv1.libvirtd.socketPath, { consolePollMs: 50 })));
    daemons.push(await runDaemon(daemonConfig('hv2', zk.connectString, hv2.libvirtd.socketPath, { keepaliveMs: 600_000 })));
  });

  after(async () => {
    for (const s of subs) s.unsubscribe();
    for (const d of daemons) await d.stop().catch(() => undefined);
    await store?.close().catch(() => undefined);
    for (const hv of [hv1, hv2]) if (hv) await stopHv(hv);
    await zk?.cleanup();
    rmSync(logDir, { recursive: true, force: true });
  });

  it('keepaliveIntervalMs sets the keepalive rate of a running daemon; a daemon config keepaliveMs wins', async () => {
    await waitFor('first keepalives', async () => count('hv1') >= 1 && count('hv2') >= 1);
    // At 600 s, no further keepalive comes in a few seconds.
    await sleep(1500);
    assert.equal(count('hv1'), 1, 'hv1 keeps the cluster interval of 600 s');

    // 200 ms: many keepalives come (the old default of 5 s would give 3 or 4 in the 15 s allowed).
    const before = { hv1: count('hv1'), hv2: count('hv2') };
    await setConfig({ keepaliveIntervalMs: 200, keepaliveDeadAfterMs: 1_200_000 });
    await waitFor('hv1 keepalives at the new interval', async () => count('hv1') >= before.hv1 + 10, 15_000);
    assert.ok(count('hv2') <= before.hv2 + 1, `hv2's own keepaliveMs (600 s) wins over the cluster's: ${count('hv2') - before.hv2} more keepalives`);

    // Back to 600 s: the 200 ms loop ends (at most the tick of the change follows).
    await setConfig({ keepaliveIntervalMs: 600_000, keepaliveDeadAfterMs: 1_200_000 });
    await sleep(500);
    const settled = count('hv1');
    await sleep(2000);
    assert.ok(count('hv1') <= settled + 1, `no 200 ms keepalive loop is left: ${count('hv1') - settled} keepalives in 2 s`);
  });

  it('consoleLogLines bounds the console znode, and a change applies to the running daemon', async () => {
    await setConfig({ keepaliveIntervalMs: 600_000, keepaliveDeadAfterMs: 1_200_000, consoleLogLines: 3 });
    const logFile = join(logDir, 'con1.log');
    writeFileSync(logFile, Array.from({ length: 10 }, (_, i) => `line ${i + 1}`).join('\n') + '\n');
    const serial = `<devices><serial type='pty'><log file='${logFile}' append='off'/><target port='0'/></serial></devices>`;
    await writeVm(store, 'con1', { node: 'hv1', state: 'stopped' }, testXml('con1', 32, 1, serial));
    const text = async (): Promise<string | undefined> => (await store.get(paths.vmConsole('con1')))?.data.toString('utf8');
    await waitFor('the console with the last 3 lines', async () => (await text()) === 'line 8\nline 9\nline 10', 10_000).catch(async (error: unknown) => {
      assert.fail(`${(error as Error).message}; the console znode holds ${JSON.stringify(await text())}`);
    });

    // Raised to 5: the next output fills up to 5 lines.
    await setConfig({ keepaliveIntervalMs: 600_000, keepaliveDeadAfterMs: 1_200_000, consoleLogLines: 5 });
    await sleep(300);
    appendFileSync(logFile, Array.from({ length: 10 }, (_, i) => `more ${i + 1}`).join('\n') + '\n');
    await waitFor('the console with the last 5 lines', async () => (await text()) === 'more 6\nmore 7\nmore 8\nmore 9\nmore 10', 10_000);

    // Lowered to 2, with no new output: the znode is cut at once.
    await setConfig({ keepaliveIntervalMs: 600_000, keepaliveDeadAfterMs: 1_200_000, consoleLogLines: 2 });
    await waitFor('the console cut to 2 lines', async () => (await text()) === 'more 9\nmore 10', 10_000);
  });

  it('vk get nodes / describe node report a keepalive older than keepaliveDeadAfterMs as stale', async () => {
    const vk = vkFor(zk.connectString, '/virtkeeper');
    // hv9: its daemon holds a session (an alive znode of our store) but wrote its last keepalive
    // 10 minutes ago: a hung daemon.
    const old = new Date(Date.now() - 600_000).toISOString();
    await store.create(
      paths.nodeStatus('hv9'),
      encodeNodeStatus({
        daemonState: 'run',
        domainState: 'ready',
        memory: { totalMiB: 8000, usedMiB: 1000, freeMiB: 7000, allocatedMiB: 0, provisionedMiB: 0 },
        vcpus: { total: 4, allocated: 0 },
        load: 0,
        runningVms: [],
        keepaliveAt: old,
        version: 'test',
        conditions: [],
      }),
      { parents: true },
    );
    await store.create(paths.nodeAlive('hv9'), '{}', { mode: 'ephemeral' });

    // keepaliveDeadAfterMs 20 minutes: 10 minutes old is not stale yet.
    let nodes = await vk('get', 'nodes');
    assert.equal(nodes.code, 0, nodes.stderr);
    assert.match(nodes.stdout, /^hv9 +yes +ready /m);

    // 5 minutes: stale. A node whose keepalive is fresh is not.
    await setConfig({ keepaliveIntervalMs: 200, keepaliveDeadAfterMs: 300_000 });
    await waitFor('hv1 keepalive after the change', async () => {
      const s = await store.get(paths.nodeStatus('hv1'));
      return s !== null && Date.now() - Date.parse(decodeNodeStatus(s.data).keepaliveAt) < 60_000;
    });
    nodes = await vk('get', 'nodes');
    assert.equal(nodes.code, 0, nodes.stderr);
    assert.match(nodes.stdout, /^hv9 +stale +ready /m, nodes.stdout);
    assert.match(nodes.stdout, /^hv1 +yes +ready /m, nodes.stdout);
    const json = JSON.parse((await vk('get', 'nodes', '-o', 'json')).stdout) as Array<{ name: string; alive: boolean; keepalive: { stale: boolean; ageMs: number; deadAfterMs: number } | null }>;
    const hv9 = json.find((n) => n.name === 'hv9')!;
    assert.equal(hv9.alive, true);
    assert.equal(hv9.keepalive?.stale, true);
    assert.equal(hv9.keepalive?.deadAfterMs, 300_000);
    assert.ok(hv9.keepalive!.ageMs >= 600_000);
    assert.equal(json.find((n) => n.name === 'hv1')!.keepalive?.stale, false);
    const described = await vk('describe', 'node', 'hv9');
    assert.equal(described.code, 0, described.stderr);
    assert.match(described.stdout, /^Alive: +stale /m);
    assert.match(described.stdout, /^ {2}Keepalive at: +\S+ \(\d+ s ago, STALE: older than keepaliveDeadAfterMs 300000\)$/m);
    // Reported, not acted on: the node's status and spec are left alone.
    assert.equal(decodeNodeStatus((await store.get(paths.nodeStatus('hv9')))!.data).keepaliveAt, old);
    assert.equal(await store.get(paths.nodeSpec('hv9')), null);
    // A lease renewed just now is a keepalive: the status's own time is only when it last changed.
    await store.create(paths.nodeLease('hv9'), encodeNodeLease({ renewedAt: new Date().toISOString() }));
    nodes = await vk('get', 'nodes');
    assert.match(nodes.stdout, /^hv9 +yes +ready /m, nodes.stdout);
  });
});
