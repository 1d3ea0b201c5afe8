// The node selectors (reconcilers/selectors.ts) with hand-built node statuses: each selector, its
// ties (by name), nodes that are not ready / dead / asked to flush / outside the limit, and the
// placements a flush adds.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { describe, test } from 'node:test';
import { compareFigures, figuresOf, place, selectNode, type NodeCandidate, type Placed, type SelectInput } from '../../reconcilers/selectors.ts';
import { decodeNodeStatus, type NodeStatus } from '../../schemas/index.ts';

interface Over {
  total?: number;
  prov?: number;
  alloc?: number;
  free?: number;
  load?: number;
  vcpus?: number;
  vms?: number;
  alive?: boolean;
  state?: NodeStatus['domainState'];
  flushed?: boolean;
  noStatus?: boolean;
}

function node(name: string, o: Over = {}): NodeCandidate {
  return {
    name,
    alive: o.alive ?? true,
    spec: { domainState: o.flushed ? 'flushed' : 'ready' },
    status: o.noStatus
      ? null
      : decodeNodeStatus({
          daemonState: 'run',
          domainState: o.state ?? 'ready',
          memory: { totalMiB: o.total ?? 8192, usedMiB: 0, freeMiB: o.free ?? 8192, allocatedMiB: o.alloc ?? 0, provisionedMiB: o.prov ?? 0 },
          vcpus: { total: 64, allocated: o.vcpus ?? 0 },
          load: o.load ?? 0,
          runningVms: Array.from({ length: o.vms ?? 0 }, (_, i) => `vm${i}`),
          keepaliveAt: '2026-01-01T00:00:00.000Z',
          version: 'test',
        }),
  };
}

const select = (nodes: NodeCandidate[], selector: SelectInput['selector'], extra: Partial<SelectInput> = {}) =>
  selectNode({ selector, defaultSelector: 'mem', nodeLimit: [], nodes, ...extra });

describe('selector mem: most free memory counting provisioned (not allocated, not free)', () => {
  test('a stopped VM (provisioned, not allocated) counts against its node', () => {
    const nodes = [
      // hv1: nothing runs, but 6 GiB provisioned to stopped VMs; the host looks empty.
      node('hv1', { total: 8192, prov: 6144, alloc: 0, free: 8000 }),
      node('hv2', { total: 8192, prov: 2048, alloc: 2048, free: 1000 }),
    ];
    assert.equal(select(nodes, 'mem').node, 'hv2');
  });

  test('bigger total wins at equal provisioned; equal headroom is a tie won by name', () => {
    assert.equal(select([node('hv1', { total: 8192, prov: 1024 }), node('hv2', { total: 16384, prov: 1024 })], 'mem').node, 'hv2');
    const tie = [node('hv9', { total: 8192, prov: 1024 }), node('hv3', { total: 9216, prov: 2048 }), node('hv5', { total: 7168, prov: 0 })];
    assert.equal(select(tie, 'mem').node, 'hv3', 'all three have 7168 MiB left: the first name');
    assert.equal(select([...tie].reverse(), 'mem').node, 'hv3', 'input order does not matter');
  });
});

describe('selector memprov: least provisioned relative to total', () => {
  test('lowest share wins even with less headroom', () => {
    const nodes = [node('hv1', { total: 4096, prov: 400 }), node('hv2', { total: 65536, prov: 16384 })];
    assert.equal(select(nodes, 'memprov').node, 'hv1', '~0.098 < 0.25');
    assert.equal(select(nodes, 'mem').node, 'hv2', 'while mem prefers the big node');
  });

  test('equal shares tie exactly (no float drift) and go to the first name; a node without memory is last', () => {
    const nodes = [node('hv2', { total: 3000, prov: 1000 }), node('hv1', { total: 9000, prov: 3000 }), node('hv0', { total: 0, prov: 0 })];
    assert.equal(select(nodes, 'memprov').node, 'hv1');
    assert.equal(select([node('hv0', { total: 0 })], 'memprov').node, 'hv0', 'still chosen when it is the only one');
  });
});

describe('selectors load, vcpus, vms', () => {
  const nodes = [node('hv1', { load: 2.5, vcpus: 4, vms: 9 }), node('hv2', { load: 0.5, vcpus: 12, vms: 3 }), node('hv3', { load: 1, vcpus: 2, vms: 3 })];
  test('each picks its own best', () => {
    assert.equal(select(nodes, 'load').node, 'hv2');
    assert.equal(select(nodes, 'vcpus').node, 'hv3');
    assert.equal(select(nodes, 'vms').node, 'hv2', 'hv2 and hv3 both have 3 VMs: hv2 by name');
  });
  test('ties by name for each', () => {
    const same = [node('hvb', { load: 1, vcpus: 2, vms: 1 }), node('hva', { load: 1, vcpus: 2, vms: 1 })];
    for (const s of ['load', 'vcpus', 'vms', 'mem', 'memprov'] as const) assert.equal(select(same, s).node, 'hva', s);
  });
  test("'default' is the cluster's default selector", () => {
    const r = select(nodes, 'default', { defaultSelector: 'vcpus' });
    assert.equal(r.node, 'hv3');
    assert.equal(r.selector, 'vcpus');
  });
});

describe('candidates', () => {
  test('not ready, dead, without status, asked to flush, outside the limit, or current: never chosen, each with its reason', () => {
    const nodes = [
      node('hv1', { prov: 0 }), // current
      node('hv2', { prov: 0, state: 'flushing' }),
      node('hv3', { prov: 0, state: 'flushed' }),
      node('hv4', { prov: 0, state: 'unflushing' }),
      node('hv5', { prov: 0, alive: false }),
      node('hv6', { noStatus: true }),
      node('hv7', { prov: 0, flushed: true }),
      node('hv8', { prov: 0 }), // outside the limit
      node('hv9', { prov: 7000 }), // the worst, and the only valid one
    ];
    const limit = ['hv1', 'hv2', 'hv3', 'hv4', 'hv5', 'hv6', 'hv7', 'hv9'];
    const r = select(nodes, 'mem', { current: 'hv1', nodeLimit: limit });
    assert.equal(r.node, 'hv9');
    assert.deepEqual(r.excluded, [
      { node: 'hv1', why: 'the VM is there now' },
      { node: 'hv2', why: 'it is flushing' },
      { node: 'hv3', why: 'it is flushed' },
      { node: 'hv4', why: 'it is unflushing' },
      { node: 'hv5', why: 'its daemon is not running' },
      { node: 'hv6', why: 'it has reported no status' },
      { node: 'hv7', why: 'it is asked to flush' },
      { node: 'hv8', why: 'outside the node limit' },
    ]);
    assert.equal(select(nodes, 'mem', { current: 'hv1', nodeLimit: ['hv1', 'hv8'] }).node, 'hv8');
    assert.equal(select(nodes.slice(0, 8), 'mem', { current: 'hv1', nodeLimit: limit }).node, undefined, 'nothing valid');
    assert.equal(select([], 'mem').node, undefined);
  });
});

describe('placements (what a flush already put on a node)', () => {
  test('memory, vCPUs, VM count and load are added before comparing', () => {
    const s = node('hv1', { prov: 1000, vcpus: 2, vms: 1, load: 0.5 }).status!;
    assert.deepEqual(figuresOf(s, { memoryMiB: 512, vcpus: 3, vms: 2 }), { totalMiB: 8192, provisionedMiB: 1512, load: 3.5, vcpus: 5, vms: 3 });
    assert.deepEqual(figuresOf(s), { totalMiB: 8192, provisionedMiB: 1000, load: 0.5, vcpus: 2, vms: 1 });
  });

  test('20 equal VMs spread over two equal nodes instead of piling onto the first', () => {
    const nodes = [node('hv2'), node('hv3')];
    let placed: Map<string, Placed> = new Map();
    const chosen: string[] = [];
    for (let i = 0; i < 20; i++) {
      for (const selector of ['mem'] as const) {
        const target = select(nodes, selector, { placed }).node!;
        chosen.push(target);
        placed = place(placed, target, { memoryMiB: 256, vcpus: 1 });
      }
    }
    assert.equal(chosen.filter((n) => n === 'hv2').length, 10);
    assert.deepEqual(chosen.slice(0, 4), ['hv2', 'hv3', 'hv2', 'hv3'], 'ties alternate, by name first');
    for (const selector of ['memprov', 'vcpus', 'vms', 'load'] as const) {
      let p: Map<string, Placed> = new Map();
      const got: string[] = [];
      for (let i = 0; i < 6; i++) {
        const t = select(nodes, selector, { placed: p }).node!;
        got.push(t);
        p = place(p, t, { memoryMiB: 256, vcpus: 1 });
      }
      assert.deepEqual(got, ['hv2', 'hv3', 'hv2', 'hv3', 'hv2', 'hv3'], selector);
    }
  });

  test('place() leaves its input alone', () => {
    const before = new Map<string, Placed>([['hv2', { memoryMiB: 1, vcpus: 1, vms: 1 }]]);
    const after = place(before, 'hv2', { memoryMiB: 2, vcpus: 3 });
    assert.deepEqual(before.get('hv2'), { memoryMiB: 1, vcpus: 1, vms: 1 });
    assert.deepEqual(after.get('hv2'), { memoryMiB: 3, vcpus: 4, vms: 2 });
  });

  test('compareFigures is antisymmetric', () => {
    const a = figuresOf(node('a', { total: 8192, prov: 100, load: 1, vcpus: 1, vms: 1 }).status!);
    const b = figuresOf(node('b', { total: 4096, prov: 10, load: 2, vcpus: 2, vms: 2 }).status!);
    for (const s of ['mem', 'memprov', 'load', 'vcpus', 'vms'] as const) {
      assert.equal(Math.sign(compareFigures(s, a, b)), -Math.sign(compareFigures(s, b, a)), s);
    }
  });
});

test('the CLI and the API pick targets with these functions (moved, not copied)', () => {
  // cli/select-node.ts, a re-export of this module, is gone: the VM writes vk and the API share
  // (core/vm.ts: migrate, move) import it directly, and nothing under cli/, core/ or api/ defines a
  // selector of its own.
  const core = readFileSync(new URL('../../core/vm.ts', import.meta.url), 'utf8');
  assert.match(core, /import \{[^}]*\bselectNode\b[^}]*\} from '\.\.\/reconcilers\/selectors\.ts';/);
  for (const dir of ['cli', 'core', 'api']) {
    const root = new URL(`../../${dir}/`, import.meta.url);
    const sources = readdirSync(root, { recursive: true, encoding: 'utf8' }).filter((f) => f.endsWith('.ts'));
    assert.ok(sources.length > 0, dir);
    for (const f of sources) assert.doesNotMatch(readFileSync(new URL(f, root), 'utf8'), /function (selectNode|compareFigures|figuresOf|place)\b/, `${dir}/${f}`);
  }
});
