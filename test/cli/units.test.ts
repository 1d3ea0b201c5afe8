// The pure parts of the CLI (node selector, plan rendering, console follow) and its help and
// completion; no ZooKeeper needed.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import type { Command } from 'commander';
import { newConsoleLines } from '../../core/console.ts';
import { buildProgram } from '../../cli/program.ts';
import { planVm, type VmView } from '../../cli/plan.ts';
import { selectNode, type NodeCandidate } from '../../reconcilers/selectors.ts';
import { decodeNodeStatus, decodeVmSpec, type NodeStatus, type VmStatus } from '../../schemas/index.ts';
import { VK } from './helpers.ts';

function node(name: string, over: { total?: number; prov?: number; load?: number; vcpus?: number; vms?: number; alive?: boolean; state?: NodeStatus['domainState']; flushed?: boolean } = {}): NodeCandidate {
  return {
    name,
    alive: over.alive ?? true,
    spec: { domainState: over.flushed ? 'flushed' : 'ready' },
    status: decodeNodeStatus({
      daemonState: 'run',
      domainState: over.state ?? 'ready',
      memory: { totalMiB: over.total ?? 8000, usedMiB: 0, freeMiB: 8000, allocatedMiB: 0, provisionedMiB: over.prov ?? 0 },
      vcpus: { total: 32, allocated: over.vcpus ?? 0 },
      load: over.load ?? 0,
      runningVms: Array.from({ length: over.vms ?? 0 }, (_, i) => `vm${i}`),
      keepaliveAt: '2024-05-01T12:00:00.000Z',
      version: 'test',
    }),
  };
}

describe('selectNode', () => {
  const nodes = [
    node('hv1', { total: 8000, prov: 2000, load: 2, vcpus: 8, vms: 1 }), // free 6000, share 0.25
    node('hv2', { total: 16000, prov: 8000, load: 1, vcpus: 4, vms: 5 }), // free 8000, share 0.5
    node('hv3', { total: 4000, prov: 400, load: 3, vcpus: 2, vms: 3 }), // free 3600, share 0.1
  ];
  const pick = (selector: Parameters<typeof selectNode>[0]['selector'], extra: Partial<Parameters<typeof selectNode>[0]> = {}) =>
    selectNode({ selector, defaultSelector: 'mem', nodeLimit: [], nodes, ...extra }).node;

  test('each selector picks its best node', () => {
    assert.equal(pick('mem'), 'hv2', 'most memory left after provisioned');
    assert.equal(pick('memprov'), 'hv3', 'lowest provisioned share');
    assert.equal(pick('load'), 'hv2');
    assert.equal(pick('vcpus'), 'hv3');
    assert.equal(pick('vms'), 'hv1');
    assert.equal(pick('default', { defaultSelector: 'vcpus' }), 'hv3', 'default is the cluster config selector');
  });

  test('limit, current node, dead, unready and flushing nodes are excluded; ties go to the first name', () => {
    assert.equal(pick('mem', { nodeLimit: ['hv1', 'hv3'] }), 'hv1');
    assert.equal(pick('mem', { current: 'hv2' }), 'hv1');
    const sick = [node('hv2', { alive: false }), node('hv3', { state: 'flushing' }), node('hv4', { flushed: true }), node('hv5', { vms: 2 }), node('hv6', { vms: 2 })];
    const result = selectNode({ selector: 'vms', defaultSelector: 'mem', nodeLimit: [], current: 'hv5', nodes: [...sick].reverse() });
    assert.equal(result.node, 'hv6');
    const equal = selectNode({ selector: 'vms', defaultSelector: 'mem', nodeLimit: [], nodes: [node('hv9', { vms: 2 }), node('hv7', { vms: 2 })] });
    assert.equal(equal.node, 'hv7');
    const none = selectNode({ selector: 'mem', defaultSelector: 'mem', nodeLimit: ['hv2', 'hv3'], nodes: sick });
    assert.equal(none.node, undefined);
    assert.deepEqual(none.excluded, [
      { node: 'hv2', why: 'its daemon is not running' },
      { node: 'hv3', why: 'it is flushing' },
      { node: 'hv4', why: 'outside the node limit' },
      { node: 'hv5', why: 'outside the node limit' },
      { node: 'hv6', why: 'outside the node limit' },
    ]);
  });
});

describe('planVm', () => {
  const xml = "<domain type='test'><name>web1</name><memory>1024</memory></domain>";
  const now = '2024-05-01T12:00:00.000Z';
  const running = (nodeName: string): { value: VmStatus; version: number } => ({
    version: 3,
    value: { phase: 'Running', node: nodeName, observedGeneration: 1, domainState: 'running', conditions: [], updatedAt: now },
  });
  const vm = (over: Partial<VmView>): VmView => ({
    name: 'web1',
    spec: decodeVmSpec({ node: 'hv2' }),
    generation: 2,
    xml,
    status: null,
    migration: null,
    ...over,
  });

  test('a running VM whose node changed is one migration; a stopped one is destroyed nowhere and defined on the target', () => {
    assert.deepEqual(
      planVm(vm({ status: running('hv1') }), now).map((a) => a.description),
      ['web1 migrate hv1 → hv2 (method default)'],
    );
    const stopped = vm({ spec: decodeVmSpec({ node: 'hv2', state: 'stopped' }), status: { version: 1, value: { ...running('hv1').value, phase: 'Stopped', domainState: 'shutoff' } } });
    assert.deepEqual(
      planVm(stopped, now).map((a) => `${a.node} ${a.action}`),
      ['hv1 undefine', 'hv2 define'],
    );
  });

  test('a migration in flight plans nothing, unless the target moved again', () => {
    const migration = { id: 'm1', source: 'hv1', target: 'hv2', method: 'live' as const, phase: 'copying' as const, startedAt: now };
    assert.deepEqual(planVm(vm({ status: running('hv1'), migration }), now), []);
    const moved = planVm(vm({ spec: decodeVmSpec({ node: 'hv3' }), status: running('hv1'), migration }), now);
    assert.deepEqual(moved.map((a) => [a.node, a.action, a.to]), [['hv1', 'migrate', 'hv3']]);
  });
});

describe('newConsoleLines', () => {
  test('only the lines after the overlap are new; no overlap means the log started over', () => {
    assert.deepEqual(newConsoleLines([], ['a', 'b']), ['a', 'b']);
    assert.deepEqual(newConsoleLines(['a', 'b', 'c'], ['a', 'b', 'c']), []);
    assert.deepEqual(newConsoleLines(['a', 'b', 'c'], ['b', 'c', 'd', 'e']), ['d', 'e']);
    assert.deepEqual(newConsoleLines(['a', 'b', 'c'], ['x', 'y']), ['x', 'y']);
    assert.deepEqual(newConsoleLines(['a', 'a'], ['a', 'a', 'a']), ['a']);
  });
});

function allCommands(cmd: Command, path: string[] = []): Array<{ path: string[]; cmd: Command }> {
  return [{ path, cmd }, ...cmd.commands.flatMap((c) => allCommands(c, [...path, c.name()]))];
}

describe('help and completion', () => {
  const program = buildProgram();

  test('every command and every flag has a description, and help lists every flag', () => {
    const commands = allCommands(program);
    assert.ok(commands.length > 20, `${commands.length} commands`);
    for (const { path, cmd } of commands) {
      const name = `vk ${path.join(' ')}`.trim();
      if (path.length > 0) assert.notEqual(cmd.description(), '', `${name} has a description`);
      const help = cmd.helpInformation();
      for (const option of cmd.options) {
        assert.ok(option.description.trim().length > 0, `${name} ${option.flags} has a description`);
        assert.ok(help.includes(option.flags), `${name} --help lists ${option.flags}`);
      }
    }
  });

  test('vk --help and a subcommand help, from the binary', () => {
    const top = spawnSync(process.execPath, [VK, '--help'], { encoding: 'utf8' });
    assert.equal(top.status, 0);
    for (const text of ['--zk <hosts>', '--root <path>', '--auth <user:password>', 'apply [options]', 'plan [options]', 'completion <shell>']) {
      assert.ok(top.stdout.includes(text), text);
    }
    const migrate = spawnSync(process.execPath, [VK, 'vm', 'migrate', '--help'], { encoding: 'utf8' });
    assert.equal(migrate.status, 0);
    assert.match(migrate.stdout, /^ {2}--force-live +live migration only/m);
    assert.match(migrate.stdout, /^ {2}--timeout <seconds> +with --wait/m);
    assert.match(migrate.stdout, /Global Options:\n(.*\n)* {2}--zk <hosts>/);
  });

  test('vk completion bash completes commands and flags; zsh is generated from the same tree', () => {
    const dir = mkdtempSync(join(tmpdir(), 'vk-completion-'));
    try {
      const bash = spawnSync(process.execPath, [VK, 'completion', 'bash'], { encoding: 'utf8' });
      assert.equal(bash.status, 0, bash.stderr);
      const script = join(dir, 'vk.bash');
      writeFileSync(script, bash.stdout);
      const complete = (words: string[]) => {
        const run = spawnSync(
          'bash',
          ['-c', `source ${script}; COMP_WORDS=(${words.map((w) => `'${w}'`).join(' ')}); COMP_CWORD=${words.length - 1}; _vk; printf '%s\\n' "\${COMPREPLY[@]}"`],
          { encoding: 'utf8' },
        );
        assert.equal(run.status, 0, run.stderr);
        return run.stdout.trim().split('\n');
      };
      assert.deepEqual(complete(['vk', 'vm', 'mig']), ['migrate']);
      assert.deepEqual(complete(['vk', '--zk', 'h:1', 'vm', 'migrate', '--force']).sort(), ['--force', '--force-live']);
      assert.ok(complete(['vk', 'a']).includes('apply'));
      assert.deepEqual(complete(['vk', 'node', '']).filter((w) => !w.startsWith('-')).sort(), ['fence', 'flush', 'primary', 'ready']);
      const zsh = spawnSync(process.execPath, [VK, 'completion', 'zsh'], { encoding: 'utf8' });
      assert.equal(zsh.status, 0);
      assert.match(zsh.stdout, /^#compdef vk/);
      assert.match(zsh.stdout, /"vm migrate"\) words_list=\(.*--force-live/);
      assert.equal(spawnSync(process.execPath, [VK, 'completion', 'fish'], { encoding: 'utf8' }).status, 2);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
