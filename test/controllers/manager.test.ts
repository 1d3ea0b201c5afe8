// The Manager (controllers/manager.ts), invariants M1–M4, against a real ZooKeeper and a real
// libvirtd (test driver), one of each for the file. The runnables are recording fakes: what is
// under test is the order the Manager starts, stops and plans them in, and what the informers hold
// when it does.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { silentLogger } from '../../controllers/logger.ts';
import { Manager } from '../../controllers/manager.ts';
import type { Runnable } from '../../controllers/runnable.ts';
import { valueOf } from '../../controllers/informers/nodes.ts';
import { ZkStore } from '../../drivers/zk/index.ts';
import { encodeClusterConfig, encodeNodeSpec, encodeNodeStatus, ZkPaths } from '../../schemas/index.ts';
import { startHv, stopHv, writeVm, type HvRig } from '../rig/testdriver.ts';
import { startZooKeeper, type ZkServer } from '../rig/zookeeper.ts';

const paths = new ZkPaths();
const log = silentLogger();
const VMS = Array.from({ length: 12 }, (_, i) => `vm${i}`);
/** No test waits forever on informers that never sync. */
const T = { timeout: 20_000 };

let zk: ZkServer;
let store: ZkStore;
let hv: HvRig;

before(async () => {
  zk = await startZooKeeper();
  store = await ZkStore.connect({ connectString: zk.connectString, sessionTimeoutMs: 4000 });
  hv = await startHv('mgr');
  // Written before any Manager starts: M1 says every runnable sees all of it at its start().
  await store.ensurePath(paths.nodes);
  await store.create(paths.node('hv1'));
  await store.create(paths.nodeSpec('hv1'), encodeNodeSpec({ domainState: 'flushed' }));
  await store.create(
    paths.nodeStatus('hv1'),
    encodeNodeStatus({
      daemonState: 'run',
      domainState: 'ready',
      memory: { totalMiB: 4096, usedMiB: 1024, freeMiB: 3072, allocatedMiB: 0, provisionedMiB: 0 },
      vcpus: { total: 4, allocated: 0 },
      load: 0.75,
      runningVms: [],
      keepaliveAt: '2026-01-01T00:00:00.000Z',
      version: 'test',
      conditions: [],
    }),
  );
  await store.create(paths.nodeAlive('hv1'), '{"pid":1}', { mode: 'ephemeral' });
  await store.create(paths.node('hv2'));
  await store.create(paths.nodeSpec('hv2'), encodeNodeSpec({}));
  await store.create(paths.config, encodeClusterConfig({ keepaliveIntervalMs: 1234, keepaliveDeadAfterMs: 5678 }));
  for (const [i, name] of VMS.entries()) await writeVm(store, name, { node: i % 2 === 0 ? 'hv1' : 'hv2', state: 'running' });
});

/** Every Manager a test made: stopped here too, in case that test never got to it. */
const managers: Manager[] = [];

after(async () => {
  for (const m of managers) await m.stop().catch(() => undefined);
  await store?.close().catch(() => undefined);
  if (hv) await stopHv(hv);
  await zk?.cleanup();
});

interface FakeOptions {
  start?(): void | Promise<void>;
  failStart?: Error;
  failStop?: Error;
  plan?(): Promise<string[]>;
}

/** A runnable that records its start and stop in `events`. */
class Fake implements Runnable {
  plan?: () => Promise<string[]>;
  constructor(
    readonly name: string,
    private readonly events: string[],
    private readonly o: FakeOptions = {},
  ) {
    if (o.plan) this.plan = o.plan;
  }
  async start(): Promise<void> {
    this.events.push(`start ${this.name}`);
    await this.o.start?.();
    if (this.o.failStart) throw this.o.failStart;
  }
  async stop(): Promise<void> {
    this.events.push(`stop ${this.name}`);
    if (this.o.failStop) throw this.o.failStop;
  }
}

/** A Manager over the file's drivers; its close() is recorded, not done (the drivers are shared). */
function manager(events: string[]): Manager {
  const m = new Manager({
    node: 'hv1',
    store,
    paths,
    hv: hv.hv,
    log,
    close: async () => {
      events.push('close');
    },
  });
  managers.push(m);
  // Each informer's stop() completes its changes$: record when.
  for (const [name, informer] of Object.entries(m.informers)) {
    informer.changes$.subscribe({ complete: () => events.push(`informer ${name} stopped`) });
  }
  return m;
}

describe('Manager', () => {
  it('M1: every informer has synced before the first runnable starts', T, async () => {
    const events: string[] = [];
    const m = manager(events);
    let seen: Record<string, unknown> | undefined;
    m.add(
      new Fake('reader', events, {
        start: () => {
          const { nodes, config, vms } = m.informers;
          const hv1 = nodes.get('hv1');
          seen = {
            nodes: nodes.names(),
            nodesLoaded: nodes.names().every((n) => nodes.get(n)?.loaded === true),
            hv1Spec: valueOf(hv1?.spec)?.domainState,
            hv1Load: valueOf(hv1?.status)?.load,
            hv1AliveSession: hv1?.alive?.session,
            keepaliveIntervalMs: config.value.keepaliveIntervalMs,
            vms: vms.names(),
            vmsLoaded: vms.names().every((n) => vms.get(n)?.loaded === true),
            vm1Node: valueOf(vms.get('vm1')?.spec)?.node,
          };
        },
      }),
    );
    try {
      await m.start();
      assert.deepEqual(seen, {
        nodes: ['hv1', 'hv2'],
        nodesLoaded: true,
        hv1Spec: 'flushed',
        hv1Load: 0.75,
        hv1AliveSession: store.sessionId,
        keepaliveIntervalMs: 1234,
        vms: [...VMS].sort(),
        vmsLoaded: true,
        vm1Node: 'hv2',
      });
    } finally {
      await m.stop();
    }
  });

  it('M2/M3: starts in registration order, stops in reverse, then the informers, then closes the drivers once', T, async () => {
    const events: string[] = [];
    const m = manager(events);
    for (const name of ['a', 'b', 'c']) m.add(new Fake(name, events));
    await m.start();
    assert.deepEqual(events, ['start a', 'start b', 'start c']);
    events.length = 0;

    await m.stop();
    assert.deepEqual(events.slice(0, 3), ['stop c', 'stop b', 'stop a'], 'runnables stop first, in reverse order');
    assert.deepEqual(events.slice(3, 7).sort(), ['informer config stopped', 'informer networks stopped', 'informer nodes stopped', 'informer vms stopped'], 'then the informers');
    assert.deepEqual(events.slice(7), ['close'], 'the drivers are closed last, once');

    await m.stop();
    assert.equal(events.filter((e) => e === 'close').length, 1, 'a second stop() closed the drivers again');
    assert.equal(events.length, 8, 'a second stop() stopped something again');
  });

  it('M2: a runnable whose start throws stops those already started, and start() rejects with its error', T, async () => {
    const events: string[] = [];
    const m = manager(events);
    const boom = new Error('b cannot start');
    m.add(new Fake('a', events));
    m.add(new Fake('a2', events));
    m.add(new Fake('b', events, { failStart: boom }));
    m.add(new Fake('c', events));
    await assert.rejects(m.start(), (e) => e === boom);
    assert.deepEqual(events, ['start a', 'start a2', 'start b', 'stop a2', 'stop a'], 'c must not start; a and a2 stop in reverse; b never started');

    events.length = 0;
    await m.stop();
    assert.deepEqual(events.filter((e) => e.startsWith('stop ')), [], 'stop() after a failed start stopped a runnable twice');
    assert.deepEqual(events.at(-1), 'close');
    assert.equal(events.filter((e) => e === 'close').length, 1);
  });

  it('M3: a stop() that comes while a runnable is starting stops it too, and nothing after it starts', T, async () => {
    const events: string[] = [];
    const m = manager(events);
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    let entered!: () => void;
    const inStart = new Promise<void>((r) => (entered = r));
    m.add(new Fake('a', events));
    m.add(new Fake('b', events, { start: () => (entered(), gate) }));
    m.add(new Fake('c', events));
    const starting = m.start();
    await inStart;
    const stopping = m.stop();
    release();
    await Promise.all([starting, stopping]);
    assert.ok(!events.includes('start c'), `c started after stop(): ${events.join(', ')}`);
    assert.ok(events.includes('stop a') && events.includes('stop b'), `a and b stopped: ${events.join(', ')}`);
    assert.equal(events.filter((e) => e === 'stop b').length, 1);
  });

  it('M3: a runnable whose stop throws does not keep the others running or the drivers open', T, async () => {
    const events: string[] = [];
    const m = manager(events);
    m.add(new Fake('a', events));
    m.add(new Fake('b', events, { failStop: new Error('b cannot stop') }));
    m.add(new Fake('c', events));
    await m.start();
    events.length = 0;
    await m.stop();
    assert.deepEqual(events.filter((e) => !e.startsWith('informer ')), ['stop c', 'stop b', 'stop a', 'close']);
  });

  it('M4: plan() syncs the informers, asks every runnable with a planner in registration order, and starts none', T, async () => {
    const events: string[] = [];
    const m = manager(events);
    const { nodes, config, vms } = m.informers;
    m.add(
      new Fake('first', events, {
        plan: async () => [`first sees nodes ${nodes.names().join(',')}`, `first sees keepalive ${config.value.keepaliveIntervalMs}`],
      }),
    );
    m.add(new Fake('no-planner', events));
    m.add(
      new Fake('last', events, {
        plan: async () => [`last sees ${vms.names().filter((n) => vms.get(n)?.loaded).length} loaded VMs`],
      }),
    );
    try {
      const lines = await m.plan();
      assert.deepEqual(lines, ['first sees nodes hv1,hv2', 'first sees keepalive 1234', `last sees ${VMS.length} loaded VMs`]);
      assert.deepEqual([...events], [], 'plan() started a runnable');
    } finally {
      await m.stop();
    }
    assert.deepEqual(events.filter((e) => !e.startsWith('informer ')), ['close'], 'stop() after plan() stopped a runnable that never started');
  });

  it('add() refuses a duplicate name; get() finds a runnable by name', T, async () => {
    const events: string[] = [];
    const m = manager(events);
    const a = m.add(new Fake('a', events));
    const b = m.add(new Fake('b', events));
    assert.throws(() => m.add(new Fake('a', events)), /a runnable named a is already registered/);
    assert.deepEqual(m.names(), ['a', 'b']);
    assert.equal(m.get<Fake>('a'), a);
    assert.equal(m.get<Fake>('b'), b);
    assert.throws(() => m.get('nope'), /no runnable named nope/);
    await m.stop();
    assert.deepEqual(events, ['close'], 'a Manager never started only closes its drivers');
  });
});
