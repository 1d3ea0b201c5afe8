import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ValidationError, ZkPaths } from '../../schemas/index.ts';
import { expectInvalid } from './helpers.ts';

describe('ZkPaths', () => {
  test('lays keys out as DESIGN.md §3 under the default root', () => {
    const p = new ZkPaths();
    assert.equal(p.root, '/virtkeeper');
    assert.equal(p.schema, '/virtkeeper/schema');
    assert.equal(p.config, '/virtkeeper/config');
    assert.equal(p.vms, '/virtkeeper/vms');
    assert.equal(p.vm('web1'), '/virtkeeper/vms/web1');
    assert.equal(p.vmSpec('web1'), '/virtkeeper/vms/web1/spec');
    assert.equal(p.vmXml('web1'), '/virtkeeper/vms/web1/xml');
    assert.equal(p.vmStatus('web1'), '/virtkeeper/vms/web1/status');
    assert.equal(p.vmMigration('web1'), '/virtkeeper/vms/web1/migration');
    assert.equal(p.vmConsole('web1'), '/virtkeeper/vms/web1/console');
    assert.equal(p.networks, '/virtkeeper/networks');
    assert.equal(p.network('100'), '/virtkeeper/networks/100');
    assert.equal(p.networkSpec(100), '/virtkeeper/networks/100/spec');
    assert.equal(p.networkStatus(100), '/virtkeeper/networks/100/status');
    assert.equal(p.nodes, '/virtkeeper/nodes');
    assert.equal(p.node('hv1'), '/virtkeeper/nodes/hv1');
    assert.equal(p.nodeSpec('hv1'), '/virtkeeper/nodes/hv1/spec');
    assert.equal(p.nodeStatus('hv1'), '/virtkeeper/nodes/hv1/status');
    assert.equal(p.nodeAlive('hv1'), '/virtkeeper/nodes/hv1/alive');
    assert.equal(p.locks, '/virtkeeper/locks');
    assert.equal(p.lock('flush'), '/virtkeeper/locks/flush');
  });

  test('takes another root', () => {
    const p = new ZkPaths('/test/run-42');
    assert.equal(p.vmSpec('web1'), '/test/run-42/vms/web1/spec');
    assert.equal(p.config, '/test/run-42/config');
  });

  for (const root of ['virtkeeper', '/virtkeeper/', '/', '', '//x', '/a//b', '/a/../b', '/a/./b', '/zookeeper', '/a b', '/a\u0000']) {
    test(`rejects the root ${JSON.stringify(root)}`, () => {
      expectInvalid(() => new ZkPaths(root), 'root', root);
    });
  }

  const p = new ZkPaths();
  const builders: [string, (name: string) => string][] = [
    ['vm', (n) => p.vm(n)],
    ['vmSpec', (n) => p.vmSpec(n)],
    ['vmXml', (n) => p.vmXml(n)],
    ['vmStatus', (n) => p.vmStatus(n)],
    ['vmMigration', (n) => p.vmMigration(n)],
    ['vmConsole', (n) => p.vmConsole(n)],
    ['node', (n) => p.node(n)],
    ['nodeSpec', (n) => p.nodeSpec(n)],
    ['nodeStatus', (n) => p.nodeStatus(n)],
    ['nodeAlive', (n) => p.nodeAlive(n)],
    ['lock', (n) => p.lock(n)],
  ];
  const badNames = ['a/b', '..', '.', '', 'a\nb', 'a'.repeat(64), '../config', 'A'];
  for (const [builder, build] of builders) {
    test(`${builder}() refuses names that could escape or be ambiguous`, () => {
      for (const name of badNames) {
        assert.throws(
          () => build(name),
          (e: unknown) => e instanceof ValidationError && e.value === name && e.message.includes(JSON.stringify(name)),
          `${builder}(${JSON.stringify(name)})`,
        );
      }
    });
  }

  test('network() refuses what is not a VNI', () => {
    for (const vni of ['0', '16777216', 'a/b', '..', '01', 'abc']) {
      expectInvalid(() => p.network(vni), 'network vni', vni);
      expectInvalid(() => p.networkSpec(vni), 'network vni', vni);
    }
    expectInvalid(() => p.network(0), 'network vni', 0);
  });

  test('names path validation errors by what was being built', () => {
    expectInvalid(() => p.vmSpec('a/b'), 'vm name', 'a/b');
    expectInvalid(() => p.nodeStatus('a/b'), 'node name', 'a/b');
    expectInvalid(() => p.lock('a/b'), 'lock name', 'a/b');
  });

  test('parse() tells what a path refers to', () => {
    assert.deepEqual(p.parse('/virtkeeper/vms/web1/spec'), { kind: 'vm', name: 'web1', leaf: 'spec' });
    assert.deepEqual(p.parse('/virtkeeper/vms/web1'), { kind: 'vm', name: 'web1' });
    assert.deepEqual(p.parse('/virtkeeper/nodes/hv1/alive'), { kind: 'node', name: 'hv1', leaf: 'alive' });
    assert.deepEqual(p.parse('/virtkeeper/networks/100/spec'), { kind: 'network', vni: '100', leaf: 'spec' });
    assert.deepEqual(p.parse('/virtkeeper/networks/100/status'), { kind: 'network', vni: '100', leaf: 'status' });
    assert.deepEqual(p.parse('/virtkeeper/locks/flush/lock-0000000001'), { kind: 'lock', name: 'flush', child: 'lock-0000000001' });
    assert.deepEqual(p.parse('/virtkeeper/config'), { kind: 'config' });
    assert.deepEqual(p.parse('/virtkeeper/vms'), { kind: 'vms' });
    for (const outside of ['/other/vms/web1', '/virtkeeper', '/virtkeeperx/vms', '/virtkeeper/vms/Web1', '/virtkeeper/vms/web1/bogus', '/virtkeeper/vms/web1/spec/x', '/virtkeeper/networks/0', '/virtkeeper/config/x']) {
      assert.equal(p.parse(outside), undefined, outside);
    }
  });

  test('parse() inverts every builder', () => {
    for (const [builder, build] of builders) {
      const info = p.parse(build('x1'));
      assert.ok(info && 'name' in info && info.name === 'x1', builder);
    }
  });
});
