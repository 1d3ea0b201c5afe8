import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { EMPTY, NEVER } from 'rxjs';
import { createLogger } from '../../controllers/logger.ts';
import { parseMeminfo } from '../../drivers/host.ts';
import type { DomainSummary, Hypervisor, NodeResources } from '../../drivers/hypervisor.ts';
import { computeNodeStatus, HYPERVISOR_CONDITION, statusFiguresChanged, type AssignedVm, type KeepaliveInput } from '../../reconcilers/node/plan.ts';
import { runKeepalive, type KeepaliveEffects } from '../../reconcilers/node/execute.ts';
import { encodeNodeStatus, type NodeStatus } from '../../schemas/index.ts';
import { waitFor } from '../rig/wait.ts';

const NOW = '2026-11-21T12:00:00.000Z';
const GiB = 1024 * 1024; // in KiB

function dom(name: string, state: DomainSummary['state'], memoryKiB: number, vcpus = 1): DomainSummary {
  return { name, uuid: '00000000-0000-4000-8000-000000000000', state, persistent: true, memoryKiB, vcpus };
}

function input(extra: Partial<KeepaliveInput> = {}): KeepaliveInput {
  return {
    node: 'hv1',
    version: '0.1.0',
    now: NOW,
    resources: { memoryKiB: 64 * GiB, cpus: 16 },
    hostMemory: { totalKiB: 64 * GiB, availableKiB: 40 * GiB },
    load: 0.5,
    domains: [],
    assigned: [],
    domainState: 'ready',
    daemonState: 'run',
    ...extra,
  };
}

describe('computeNodeStatus', () => {
  it('counts a stopped VM assigned here as provisioned (XML memory) but not as allocated', () => {
    const status = computeNodeStatus(
      input({
        domains: [dom('web1', 'running', 2 * GiB, 2), dom('db1', 'shutoff', 8 * GiB, 4)],
        assigned: [
          { name: 'web1', state: 'running', memoryKiB: 4 * GiB, vcpus: 2 }, // XML says 4 GiB; the running domain has 2
          { name: 'db1', state: 'stopped', memoryKiB: 8 * GiB, vcpus: 4 },
          { name: 'cold', state: 'stopped', memoryKiB: 1 * GiB, vcpus: 1 }, // not even defined here
        ],
      }),
    );
    assert.equal(status.memory.allocatedMiB, 2048);
    assert.equal(status.memory.provisionedMiB, 2048 + 8192 + 1024);
    assert.equal(status.vcpus.allocated, 2);
    assert.equal(status.vcpus.total, 16);
    assert.deepEqual(status.runningVms, ['web1']);
  });

  it('does not count a paused domain as allocated; its provisioned memory comes from the XML', () => {
    const status = computeNodeStatus(
      input({
        domains: [dom('a', 'running', 1 * GiB, 1), dom('incoming', 'paused', 3 * GiB, 3)],
        assigned: [
          { name: 'a', memoryKiB: 1 * GiB, vcpus: 1 },
          { name: 'incoming', memoryKiB: 2 * GiB, vcpus: 3 },
        ],
      }),
    );
    assert.equal(status.memory.allocatedMiB, 1024);
    assert.equal(status.vcpus.allocated, 1);
    assert.equal(status.memory.provisionedMiB, 1024 + 2048);
    assert.deepEqual(status.runningVms, ['a']);
  });

  it('lists running VMs sorted, counts domains not assigned here as allocated, and skips names the schema refuses', () => {
    const status = computeNodeStatus(
      input({
        domains: [dom('zeta', 'running', GiB), dom('alpha', 'running', GiB), dom('mid', 'blocked', GiB), dom('bad name', 'running', GiB), dom('off', 'shutoff', GiB)],
      }),
    );
    assert.deepEqual(status.runningVms, ['alpha', 'mid', 'zeta']);
    assert.equal(status.memory.allocatedMiB, 4096);
    assert.equal(status.memory.provisionedMiB, 0);
  });

  it('takes host memory from /proc/meminfo figures and keeps domainState, observedGeneration and foreign conditions', () => {
    const flushCondition = { type: 'Flushing', status: 'True' as const, reason: 'FlushRequested', message: 'x', lastTransitionTime: '2026-01-01T00:00:00.000Z' };
    const status = computeNodeStatus(
      input({ domainState: 'flushing', daemonState: 'init', observedGeneration: 4, conditions: [flushCondition] }),
    );
    assert.deepEqual(status.memory, { totalMiB: 65536, usedMiB: 24576, freeMiB: 40960, allocatedMiB: 0, provisionedMiB: 0 });
    assert.equal(status.domainState, 'flushing');
    assert.equal(status.daemonState, 'init');
    assert.equal(status.observedGeneration, 4);
    assert.equal(status.keepaliveAt, NOW);
    assert.equal(status.load, 0.5);
    assert.deepEqual(status.conditions[0], flushCondition);
    // The result is valid per the schema.
    assert.doesNotThrow(() => encodeNodeStatus(status));
  });

  it('flags stale hypervisor figures in a condition whose transition time moves only on change', () => {
    const bad = computeNodeStatus(input({ hypervisorProblem: { reason: 'HypervisorTimeout', message: 'slow' } }));
    const cond = bad.conditions.find((c) => c.type === HYPERVISOR_CONDITION);
    assert.equal(cond?.status, 'False');
    assert.equal(cond?.reason, 'HypervisorTimeout');
    const later = '2026-11-21T12:00:05.000Z';
    const stillBad = computeNodeStatus(input({ now: later, conditions: bad.conditions, hypervisorProblem: { reason: 'HypervisorTimeout', message: 'slow' } }));
    assert.equal(stillBad.conditions.find((c) => c.type === HYPERVISOR_CONDITION)?.lastTransitionTime, NOW);
    const good = computeNodeStatus(input({ now: later, conditions: stillBad.conditions }));
    const ok = good.conditions.filter((c) => c.type === HYPERVISOR_CONDITION);
    assert.equal(ok.length, 1);
    assert.equal(ok[0]?.status, 'True');
    assert.equal(ok[0]?.lastTransitionTime, later);
    assert.doesNotThrow(() => encodeNodeStatus(bad));
  });
});

describe('parseMeminfo', () => {
  it('reads MemTotal and MemAvailable in KiB, estimating MemAvailable on old kernels', () => {
    assert.deepEqual(parseMeminfo('MemTotal:       16318480 kB\nMemFree:  100 kB\nMemAvailable:   12000000 kB\nHugePages_Total:       0\n'), {
      totalKiB: 16318480,
      availableKiB: 12000000,
    });
    assert.deepEqual(parseMeminfo('MemTotal: 1000 kB\nMemFree: 100 kB\nBuffers: 50 kB\nCached: 200 kB\n'), { totalKiB: 1000, availableKiB: 350 });
    assert.throws(() => parseMeminfo('MemFree: 1 kB\n'), /MemTotal/);
  });
});

describe('statusFiguresChanged (with a lease, a status is written only when it says something new)', () => {
  const base = computeNodeStatus(input({ domains: [dom('a', 'running', GiB)], assigned: [{ name: 'a', memoryKiB: GiB, vcpus: 1 }] }));
  it('the keepalive time alone, and drift of used/free memory or load within the noise, change nothing', () => {
    assert.equal(statusFiguresChanged(base, { ...base, keepaliveAt: '2026-11-21T12:05:00.000Z' }), false);
    // 1 % of 64 GiB is 655 MiB: 600 MiB of drift is noise.
    assert.equal(statusFiguresChanged(base, { ...base, memory: { ...base.memory, usedMiB: base.memory.usedMiB + 600, freeMiB: base.memory.freeMiB - 600 } }), false);
    assert.equal(statusFiguresChanged(base, { ...base, load: base.load + 0.4 }), false);
  });
  it('memory or load past the noise, a VM starting or stopping, a condition, anything else is a change', () => {
    assert.equal(statusFiguresChanged(base, { ...base, memory: { ...base.memory, freeMiB: base.memory.freeMiB - 700 } }), true);
    assert.equal(statusFiguresChanged(base, { ...base, load: base.load + 0.5 }), true);
    assert.equal(statusFiguresChanged(base, { ...base, runningVms: [] }), true);
    assert.equal(statusFiguresChanged(base, { ...base, memory: { ...base.memory, allocatedMiB: 0 } }), true);
    const hung = computeNodeStatus(input({ domains: [dom('a', 'running', GiB)], assigned: [{ name: 'a', memoryKiB: GiB, vcpus: 1 }], hypervisorProblem: { reason: 'HypervisorTimeout', message: 'no answer' } }));
    assert.equal(statusFiguresChanged(base, hung), true);
    assert.equal(statusFiguresChanged(base, { ...base, domainState: 'flushed' }), true);
  });
});

// ------------------------------------------------------------------------------ executor

/** A Hypervisor that answers listDomains/domainLoads/nodeResources from data and records every call. */
class StubHypervisor implements Hypervisor {
  readonly calls: Array<{ method: string; args: unknown[] }> = [];
  readonly lifecycle$ = EMPTY;
  readonly connected$ = NEVER;
  /** listDomains/domainLoads answers; `'hang'` makes that call never resolve. */
  constructor(
    private readonly answers: () => DomainSummary[] | 'hang',
    private readonly resources: NodeResources = { memoryKiB: 64 * GiB, cpus: 8 },
  ) {}
  private record(method: string, args: unknown[]) {
    this.calls.push({ method, args });
  }
  /** Per-domain calls: recorded, and never answered (like a paused domain stalling libvirt). */
  private stall(method: string, args: unknown[]): Promise<never> {
    this.record(method, args);
    return new Promise<never>(() => {});
  }
  listDomains(): Promise<DomainSummary[]> {
    this.record('listDomains', []);
    const a = this.answers();
    return a === 'hang' ? new Promise(() => {}) : Promise.resolve(a);
  }
  domainLoads(): Promise<DomainSummary[]> {
    this.record('domainLoads', []);
    const a = this.answers();
    return a === 'hang' ? new Promise(() => {}) : Promise.resolve(a);
  }
  refreshDomainStates(): Promise<string[]> {
    return this.stall('refreshDomainStates', []);
  }
  domainState(name: string) {
    return this.stall('domainState', [name]);
  }
  knownDomainState(name: string) {
    this.record('knownDomainState', [name]);
    return undefined;
  }
  nodeResources(): Promise<NodeResources> {
    this.record('nodeResources', []);
    return Promise.resolve(this.resources);
  }
  getDomain(name: string) {
    return this.stall('getDomain', [name]);
  }
  define(xml: string) {
    return this.stall('define', [xml]);
  }
  start(name: string) {
    return this.stall('start', [name]);
  }
  shutdown(name: string) {
    return this.stall('shutdown', [name]);
  }
  destroy(name: string) {
    return this.stall('destroy', [name]);
  }
  undefine(name: string) {
    return this.stall('undefine', [name]);
  }
  close() {
    return Promise.resolve();
  }
}

class VersionConflict extends Error {
  readonly reason = 'VersionConflict';
}

/** The node status znode as plain data: a value and a version, with compare-and-set. */
function statusCell(initial: NodeStatus | null = null) {
  const cell = {
    value: initial,
    version: initial ? 0 : -1,
    writes: [] as NodeStatus[],
    conflictNext: 0,
    async read() {
      return cell.value ? { value: cell.value, version: cell.version } : null;
    },
    async write(status: NodeStatus, version: number | null) {
      if (cell.conflictNext > 0) {
        cell.conflictNext--;
        throw new VersionConflict('bad version');
      }
      if ((version ?? -1) !== cell.version) throw new VersionConflict(`expected ${cell.version}, got ${version}`);
      cell.value = status;
      cell.version++;
      cell.writes.push(status);
    },
  };
  return cell;
}

function capturingLogger() {
  const lines: Array<Record<string, unknown>> = [];
  const log = createLogger({ level: 'debug', node: 'hv1', destination: { write: (s: string) => void lines.push(JSON.parse(s)) } });
  return { log, lines };
}

function effects(hv: Hypervisor, cell: ReturnType<typeof statusCell>, signal: AbortSignal, extra: Partial<KeepaliveEffects> = {}): KeepaliveEffects {
  const assigned: AssignedVm[] = [
    { name: 'a', state: 'running', memoryKiB: GiB, vcpus: 1 },
    { name: 'p', state: 'running', memoryKiB: 2 * GiB, vcpus: 2 },
    { name: 's', state: 'stopped', memoryKiB: 4 * GiB, vcpus: 4 },
  ];
  return {
    node: 'hv1',
    version: '0.1.0',
    hv,
    readAssigned: async () => assigned,
    readNodeStatus: () => cell.read(),
    writeNodeStatus: (s, v) => cell.write(s, v),
    readHost: () => ({ memory: { totalKiB: 64 * GiB, availableKiB: 32 * GiB }, load: 1.25 }),
    log: capturingLogger().log,
    signal,
    intervalMs: 10,
    callTimeoutMs: 100,
    ...extra,
  };
}

describe('runKeepalive', () => {
  it('asks nothing per domain: a paused domain is neither queried nor counted as allocated', async () => {
    const hv = new StubHypervisor(() => [dom('a', 'running', GiB, 1), dom('p', 'paused', 2 * GiB, 2), dom('s', 'shutoff', 4 * GiB, 4)]);
    const cell = statusCell();
    const ac = new AbortController();
    const run = runKeepalive(effects(hv, cell, ac.signal));
    try {
      await waitFor('three keepalives', () => cell.writes.length >= 3, 5_000);
    } finally {
      ac.abort();
      await run;
    }

    assert.deepEqual([...new Set(hv.calls.map((c) => c.method))].sort(), ['domainLoads', 'nodeResources']);
    assert.ok(!hv.calls.some((c) => c.args.includes('p')), 'the paused domain was asked something');
    const last = cell.writes.at(-1)!;
    assert.equal(last.memory.allocatedMiB, 1024);
    assert.equal(last.memory.provisionedMiB, 1024 + 2048 + 4096);
    assert.equal(last.vcpus.allocated, 1);
    assert.equal(last.vcpus.total, 8);
    assert.deepEqual(last.runningVms, ['a']);
    assert.deepEqual(last.memory, { totalMiB: 65536, usedMiB: 32768, freeMiB: 32768, allocatedMiB: 1024, provisionedMiB: 7168 });
    assert.equal(last.load, 1.25);
    assert.doesNotThrow(() => encodeNodeStatus(last));
  });

  it('keeps ticking when a libvirt call never answers, and flags the stale figures meanwhile', async () => {
    let n = 0;
    const hv = new StubHypervisor(() => (n++ === 0 ? 'hang' : [dom('b', 'running', GiB), dom('a', 'running', GiB)]));
    const cell = statusCell();
    const { log, lines } = capturingLogger();
    const ac = new AbortController();
    const run = runKeepalive(effects(hv, cell, ac.signal, { log, callTimeoutMs: 50 }));
    try {
      await waitFor('a keepalive after the hung call', () => cell.writes.some((s) => s.runningVms.length === 2), 5_000);
    } finally {
      ac.abort();
      await run;
    }

    const first = cell.writes[0]!;
    const cond = first.conditions.find((c) => c.type === HYPERVISOR_CONDITION);
    assert.equal(cond?.status, 'False');
    assert.equal(cond?.reason, 'HypervisorTimeout');
    assert.deepEqual(first.runningVms, []);
    assert.equal(first.memory.provisionedMiB, 7168, 'provisioned still comes from the XML sizes');
    assert.ok(lines.some((l) => l['level'] === 'warn' && String(l['msg']).includes('domainLoads')), 'the stall was not logged');

    const recovered = cell.writes.find((s) => s.runningVms.length === 2)!;
    assert.deepEqual(recovered.runningVms, ['a', 'b']);
    assert.equal(recovered.conditions.find((c) => c.type === HYPERVISOR_CONDITION)?.status, 'True');
    assert.ok(hv.calls.filter((c) => c.method === 'domainLoads').length >= 2);
  });

  it('re-reads the status after a version conflict, keeping the domainState another writer set, and retries once', async () => {
    const hv = new StubHypervisor(() => []);
    const seed = computeNodeStatus(input({ domainState: 'ready' }));
    const cell = statusCell(seed);
    const ac = new AbortController();
    // Another writer flips domainState while the keepalive's write is in flight.
    const ticks: Array<NodeStatus | null> = [];
    const fx = effects(hv, cell, ac.signal, {
      onTick: (s) => ticks.push(s),
      writeNodeStatus: async (s, v) => {
        if (cell.writes.length === 0 && cell.value?.domainState === 'ready') {
          cell.value = { ...cell.value, domainState: 'flushing' };
          cell.version++;
        }
        return cell.write(s, v);
      },
    });
    const run = runKeepalive(fx);
    try {
      await waitFor('a keepalive', () => cell.writes.length >= 1, 5_000);
    } finally {
      ac.abort();
      await run;
    }
    assert.equal(cell.writes[0]!.domainState, 'flushing');
    assert.notEqual(ticks[0], null, 'the first tick should have written after re-reading');
  });

  it('gives up after one retry and writes on the next tick', async () => {
    const hv = new StubHypervisor(() => []);
    const cell = statusCell();
    cell.conflictNext = 2;
    const ticks: Array<NodeStatus | null> = [];
    const ac = new AbortController();
    const run = runKeepalive(effects(hv, cell, ac.signal, { onTick: (s) => ticks.push(s) }));
    try {
      await waitFor('a keepalive', () => cell.writes.length >= 1, 5_000);
    } finally {
      ac.abort();
      await run;
    }
    assert.equal(ticks[0], null, 'the first tick should have given up after two conflicts');
    assert.equal(cell.conflictNext, 0);
  });

  it('writes on top of its own last write without reading; another writer\'s change is re-read and kept', async () => {
    const hv = new StubHypervisor(() => []);
    const cell = statusCell();
    let reads = 0;
    const ac = new AbortController();
    const fx = effects(hv, cell, ac.signal, {
      readNodeStatus: () => (reads++, cell.read()),
      // As the daemon's writer does: the new version comes back.
      writeNodeStatus: async (s, v) => (await cell.write(s, v), cell.version),
    });
    const run = runKeepalive(fx);
    try {
      await waitFor('three keepalives', () => cell.writes.length >= 3, 5_000);
      assert.equal(reads, 1, 'only the first tick should have read the status');
      // Another writer (the flush) changes the status between two ticks.
      cell.value = { ...cell.value!, domainState: 'flushing' };
      cell.version++;
      const before = cell.writes.length;
      await waitFor('two keepalives after the change', () => cell.writes.length >= before + 2, 5_000);
    } finally {
      ac.abort();
      await run;
    }
    assert.equal(reads, 2, 'the conflict should have cost exactly one read');
    assert.ok(cell.writes.slice(-2).every((s) => s.domainState === 'flushing'), 'the other writer\'s domainState was lost');
  });

  it('with a lease: renewed every tick; the status written once while its figures hold, at once when they change, on top of another writer\'s change', async () => {
    let domains = [dom('a', 'running', GiB, 1)];
    let load = 1.25;
    const hv = new StubHypervisor(() => domains);
    const cell = statusCell();
    const renewals: string[] = [];
    const ac = new AbortController();
    let tick = 0;
    const fx = effects(hv, cell, ac.signal, {
      now: () => new Date(Date.parse(NOW) + tick++ * 1000).toISOString(),
      readHost: () => ({ memory: { totalKiB: 64 * GiB, availableKiB: 32 * GiB }, load }),
      writeNodeStatus: async (s, v) => (await cell.write(s, v), cell.version),
      renewLease: async (at) => void renewals.push(at),
    });
    const run = runKeepalive(fx);
    try {
      await waitFor('five renewals', () => renewals.length >= 5, 5_000);
      assert.equal(cell.writes.length, 1, 'a status whose figures hold is written once');
      assert.deepEqual([...new Set(renewals)].length, renewals.length, 'each renewal carries its own tick time');
      // Load drift within the noise: still no write.
      load = 1.5;
      const seen = renewals.length;
      await waitFor('three more renewals', () => renewals.length >= seen + 3, 5_000);
      assert.equal(cell.writes.length, 1);
      // Another writer (the flush) changes the status; then a VM starts: written at once, keeping it.
      cell.value = { ...cell.value!, domainState: 'flushing' };
      cell.version++;
      domains = [dom('a', 'running', GiB, 1), dom('b', 'running', GiB, 1)];
      await waitFor('the new running VM written', () => cell.writes.some((w) => w.runningVms.length === 2), 5_000);
    } finally {
      ac.abort();
      await run;
    }
    const last = cell.writes.at(-1)!;
    assert.deepEqual(last.runningVms, ['a', 'b']);
    assert.equal(last.domainState, 'flushing', "the other writer's domainState was lost");
  });

  it('with a lease: a status whose figures hold is still rewritten once statusRefreshMs has passed', async () => {
    const hv = new StubHypervisor(() => []);
    const cell = statusCell();
    let renewals = 0;
    const ac = new AbortController();
    const fx = effects(hv, cell, ac.signal, {
      writeNodeStatus: async (s, v) => (await cell.write(s, v), cell.version),
      renewLease: async () => void renewals++,
      statusRefreshMs: 150,
    });
    const started = Date.now();
    const run = runKeepalive(fx);
    try {
      await waitFor('a refresh', () => cell.writes.length >= 2, 5_000);
    } finally {
      ac.abort();
      await run;
    }
    assert.ok(Date.now() - started >= 150, 'refreshed before statusRefreshMs');
    assert.ok(renewals > cell.writes.length, `${renewals} renewals for ${cell.writes.length} writes`);
  });

  it('returns on abort and writes nothing after that', async () => {
    const hv = new StubHypervisor(() => []);
    const cell = statusCell();
    const ac = new AbortController();
    const run = runKeepalive(effects(hv, cell, ac.signal, { intervalMs: 60_000 }));
    try {
      await waitFor('the first keepalive, at once', () => cell.writes.length === 1, 5_000);
    } finally {
      ac.abort();
      await run;
    }
    const after = cell.writes.length;
    await new Promise((r) => setTimeout(r, 30));
    assert.equal(cell.writes.length, after);
  });
});
