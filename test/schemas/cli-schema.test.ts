import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, test } from 'node:test';

const VK = fileURLToPath(new URL('../../cli/vk.mjs', import.meta.url));

function vk(...args: string[]) {
  return spawnSync(process.execPath, [VK, ...args], { encoding: 'utf8', timeout: 60_000 });
}

describe('vk schema', () => {
  test('vk schema vm prints a closed JSON Schema', () => {
    const run = vk('schema', 'vm');
    assert.equal(run.status, 0, run.stderr);
    const schema = JSON.parse(run.stdout) as { additionalProperties: boolean; properties: { spec: { additionalProperties: boolean }; kind: { const: string } } };
    assert.equal(schema.additionalProperties, false);
    assert.equal(schema.properties.spec.additionalProperties, false);
    assert.equal(schema.properties.kind.const, 'VM');
    assert.match(run.stdout, /^\{\n {2}"\$schema"/, 'pretty-printed');
  });

  test('the kind is case-insensitive', () => {
    for (const [arg, kind] of [['NETWORK', 'Network'], ['Node', 'Node'], ['clusterconfig', 'ClusterConfig']]) {
      const run = vk('schema', arg!);
      assert.equal(run.status, 0, run.stderr);
      assert.equal((JSON.parse(run.stdout) as { properties: { kind: { const: string } } }).properties.kind.const, kind);
    }
  });

  test('vk schema bogus exits 2 with one line naming the kind and the valid ones', () => {
    const run = vk('schema', 'bogus');
    assert.equal(run.status, 2);
    assert.equal(run.stdout, '');
    const lines = run.stderr.trimEnd().split('\n');
    assert.equal(lines.length, 1, run.stderr);
    assert.match(lines[0]!, /"bogus"/);
    assert.match(lines[0]!, /vm, network, node, clusterconfig/);
  });

  test('usage errors exit 2', () => {
    assert.equal(vk('schema').status, 2);
    assert.equal(vk('no-such-command').status, 2);
  });

  test('--help exits 0', () => {
    const run = vk('--help');
    assert.equal(run.status, 0);
    assert.match(run.stdout, /schema <kind>/);
  });
});
