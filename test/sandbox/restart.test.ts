// Issue 12 §6: the sandbox (test driver) keeps each node's guests across daemon crashes and
// restarts, as a real hypervisor does. A sampler looks at every node's libvirtd (short-lived
// connections of its own, so it never holds the test driver's state itself) while a daemon is
// SIGKILLed, repaired by `vk sandbox up`, and another is restarted with `vk sandbox restart`: no
// guest may vanish, stop or be defined anew (same UUID) at any sample. `down` leaves nothing behind.
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { test } from 'node:test';
import { LibvirtHypervisor } from '../../drivers/libvirt-hypervisor.ts';
import { isAlive, readState, type NodeState } from '../../drivers/sandbox/index.ts';
import { stopSandbox } from '../../drivers/sandbox/sandbox.ts';
import { waitFor } from '../rig/wait.ts';
import { cannotRun, cleanEnv, footprint, leftovers, sandboxDir, vk } from './helpers.ts';

const why = cannotRun();
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** name → uuid of the running domains of a node's test driver, through a connection opened and closed here. */
async function runningGuests(node: NodeState): Promise<Map<string, string>> {
  const hv = await LibvirtHypervisor.open({ socket: node.socket, uri: 'test:///default' });
  try {
    return new Map((await hv.listDomains()).filter((d) => d.state === 'running').map((d) => [d.name, d.uuid]));
  } finally {
    await hv.close();
  }
}

interface Sampler {
  samples: number;
  /** One line per sample in which a guest of the first sample was missing, not running, or had another UUID. */
  problems: string[];
  stop(): Promise<void>;
}

function sample(nodes: readonly NodeState[], expected: ReadonlyMap<string, Map<string, string>>): Sampler {
  let stopped = false;
  const s: Sampler = {
    samples: 0,
    problems: [],
    stop: async () => {
      stopped = true;
      await loop;
    },
  };
  const loop = (async () => {
    while (!stopped) {
      for (const node of nodes) {
        let seen: Map<string, string>;
        try {
          seen = await runningGuests(node);
        } catch (error) {
          s.problems.push(`${new Date().toISOString()} ${node.name}: cannot list domains: ${(error as Error).message}`);
          continue;
        }
        const lost = [...expected.get(node.name)!].filter(([name, uuid]) => seen.get(name) !== uuid).map(([name]) => (seen.has(name) ? `${name} (new UUID: defined again)` : name));
        if (lost.length > 0) s.problems.push(`${new Date().toISOString()} ${node.name}: not running: ${lost.join(', ')} (running: ${[...seen.keys()].join(', ') || 'none'})`);
      }
      s.samples++;
      await sleep(50);
    }
  })();
  return s;
}

test('sandbox guests survive a daemon SIGKILL + `vk sandbox up`, and `vk sandbox restart`', { timeout: 900_000, skip: why }, async (t) => {
  const dir = sandboxDir('restart');
  const env = cleanEnv();
  let sampler: Sampler | undefined;
  try {
    const up = await vk(['sandbox', 'up', '--dir', dir], { env });
    assert.equal(up.code, 0, `vk sandbox up failed:\n${up.stdout}\n${up.stderr}`);
    const state = readState(dir)!;
    const expected = new Map<string, Map<string, string>>();
    for (const node of state.nodes) expected.set(node.name, await runningGuests(node));
    t.diagnostic(`guests: ${[...expected].map(([n, g]) => `${n}=${[...g.keys()].join('+')}`).join(' ')}`);
    // The node with the most guests loses its daemon; another one gets a restart.
    const [victim, other] = [...state.nodes].sort((a, b) => expected.get(b.name)!.size - expected.get(a.name)!.size);
    assert.ok(expected.get(victim!.name)!.size >= 1, 'the examples run guests on the victim node');

    sampler = sample(state.nodes, expected);
    await waitFor('first samples', () => sampler!.samples >= 3, 60_000);

    // ---- SIGKILL the daemon, by the PID sandbox.json records.
    const killed = victim!.daemon!;
    process.kill(killed.pid, 'SIGKILL');
    await waitFor('the daemon to die', () => !isAlive(killed), 60_000);
    const after = sampler.samples;
    await waitFor('samples after the kill', () => sampler!.samples >= after + 20, 60_000);
    assert.deepEqual(sampler.problems, [], `guests vanished when the daemon of ${victim!.name} died`);

    const degraded = await vk(['sandbox', 'status', '--dir', dir], { env });
    assert.equal(degraded.code, 1, degraded.stdout);
    assert.match(degraded.stdout, new RegExp(`^${victim!.name}\\s.*DOWN`, 'm'));

    // ---- `vk sandbox up` on the sandbox: starts the missing daemon in place, builds nothing anew.
    const repair = await vk(['sandbox', 'up', '--dir', dir], { env });
    assert.equal(repair.code, 0, `up on a sandbox with a dead daemon:\n${repair.stdout}\n${repair.stderr}`);
    assert.match(repair.stdout, new RegExp(`restarted: ${victim!.name} \\(pid \\d+\\)`));
    assert.match(repair.stdout, /already up/);
    assert.doesNotMatch(repair.stdout, /removing what is left/);
    const repaired = readState(dir)!;
    assert.equal(repaired.zookeeper.proc!.pid, state.zookeeper.proc!.pid, 'the same ZooKeeper');
    const newDaemon = repaired.nodes.find((n) => n.name === victim!.name)!.daemon!;
    assert.notEqual(newDaemon.pid, killed.pid);
    assert.ok(isAlive(newDaemon));

    // ---- `vk sandbox restart NODE`: a running daemon is stopped by PID and started again.
    const before = repaired.nodes.find((n) => n.name === other!.name)!.daemon!;
    const restart = await vk(['sandbox', 'restart', other!.name, '--dir', dir], { env });
    assert.equal(restart.code, 0, `vk sandbox restart:\n${restart.stdout}\n${restart.stderr}`);
    assert.match(restart.stdout, new RegExp(`restarted: ${other!.name} \\(pid \\d+\\)`));
    assert.ok(!isAlive(before), 'the old daemon is gone');
    const restarted = readState(dir)!.nodes.find((n) => n.name === other!.name)!.daemon!;
    assert.ok(isAlive(restarted) && restarted.pid !== before.pid);
    const bad = await vk(['sandbox', 'restart', 'hv99', '--dir', dir], { env });
    assert.equal(bad.code, 2, `an unknown node is bad input:\n${bad.stdout}${bad.stderr}`);

    // The restarted daemons take over their guests (status still Running on the same node) and
    // leave them alone: let them resync a while under the sampler.
    const status = await vk(['sandbox', 'status', '--dir', dir], { env });
    assert.equal(status.code, 0, `status after the restarts:\n${status.stdout}${status.stderr}`);
    for (const n of state.nodes) assert.match(status.stdout, new RegExp(`^${n.name}\\s.*pid ${n.libvirtd!.pid} ok\\s+pid ${n.holder!.pid} ok\\s+pid \\d+ ok\\s.*\\byes\\s+run/ready$`, 'm'));
    const afterRestart = sampler.samples;
    await waitFor('samples after the restarts', () => sampler!.samples >= afterRestart + 20, 60_000);
    const vms = await vk(['get', 'vms', '-o', 'wide'], { env: { ...env, VK_ZK: state.zookeeper.connectString } });
    assert.equal(vms.code, 0, vms.stderr);
    for (const [node, guests] of expected) for (const vm of guests.keys()) assert.match(vms.stdout, new RegExp(`^${vm}\\s+${node}\\s+running\\s+Running\\s`, 'm'));
    await sampler.stop();
    t.diagnostic(`${sampler.samples} samples of ${state.nodes.length} nodes`);
    assert.deepEqual(sampler.problems, [], 'no guest vanished, stopped or was defined anew');

    // ---- down stops everything by PID, holders included, and leaves nothing behind.
    const fp = footprint(dir);
    assert.ok(fp.procs.some((p) => p.what.startsWith('test-driver holder')), 'the footprint includes the holders');
    const down = await vk(['sandbox', 'down', '--dir', dir], { env });
    assert.equal(down.code, 0, down.stderr);
    assert.match(down.stdout, /stopped test-driver holder hv1 \(pid \d+/);
    assert.deepEqual(leftovers(fp), []);
  } finally {
    await sampler?.stop();
    if (readState(dir)) await stopSandbox(dir);
    rmSync(dir, { recursive: true, force: true });
  }
});
