// `vk sandbox up` end to end on the test driver: a converged 3-node cluster with the example VMs
// running and BGP EVPN between the nodes (FRR in every node's namespace, the VXLANs' flood entries
// from EVPN); every command it prints works exactly as printed (run in one shell, in order, ending
// with `vk sandbox down`); down leaves no process, network namespace or mount behind; up after
// down works again. With four nodes, hv4's address joins the cluster config; an FRR killed on a
// node is started again, with its config, by `vk sandbox restart`.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, rmSync } from 'node:fs';
import { test } from 'node:test';
import { isAlive, nodeAddress, readState, type SandboxState } from '../../drivers/sandbox/index.ts';
import { stopSandbox } from '../../drivers/sandbox/sandbox.ts';
import type { NodeFrr } from '../../schemas/index.ts';
import { waitFor } from '../rig/wait.ts';
import { cannotRun, cleanEnv, describeSession, footprint, leftovers, printedCommands, runSession, sandboxDir, vk, zombies } from './helpers.ts';

const why = cannotRun();

/** Each node's VXLAN of VNI 100 floods to every other node: the entries zebra installs from EVPN. */
function assertEvpnFlooding(state: SandboxState): void {
  for (const node of state.nodes) {
    const fdb = execFileSync('bridge', ['-n', node.netns, 'fdb', 'show', 'dev', 'vkvx100'], { encoding: 'utf8' });
    for (const other of state.nodes.filter((n) => n !== node)) {
      assert.match(fdb, new RegExp(`^00:00:00:00:00:00 dst ${other.address.replaceAll('.', '\\.')} self permanent$`, 'm'), `${node.name} floods VNI 100 to ${other.name}:\n${fdb}`);
    }
  }
}

async function frrOf(env: NodeJS.ProcessEnv, node: string): Promise<NodeFrr | undefined> {
  const r = await vk(['get', 'node', node, '-o', 'json'], { env });
  assert.equal(r.code, 0, r.stderr);
  return (JSON.parse(r.stdout) as Array<{ status: { frr?: NodeFrr } | null }>)[0]?.status?.frr;
}

test('vk sandbox up / printed commands / status / down / up again / down', { timeout: 1_800_000, skip: why }, async (t) => {
  const dir = sandboxDir('e2e');
  const env = cleanEnv();
  try {
    // ---- up
    const up = await vk(['sandbox', 'up', '--dir', dir], { env });
    assert.equal(up.code, 0, `vk sandbox up failed:\n${up.stdout}\n${up.stderr}`);
    // Each of the three coordinators peers with the two others.
    assert.match(up.stdout, /converged: 5 VMs; BGP EVPN on 3 nodes, 6 sessions Established/);
    assert.doesNotMatch(up.stdout, /cluster config: adding/, 'the examples list hv1-hv3 already');
    const table = up.stdout.slice(up.stdout.indexOf('NAME '));
    for (const vm of ['web1', 'web2', 'db1', 'cache1']) assert.match(table, new RegExp(`^${vm}\\s+hv\\d\\s+running\\s+Running\\s`, 'm'), `${vm} runs`);
    assert.match(table, /^batch1\s+hv2\s+stopped\s+Stopped\s/m);
    const state = readState(dir)!;
    assert.equal(state.phase, 'up');
    assert.equal(state.nodes.length, 3);
    for (const n of state.nodes) assert.ok(n.frr && isAlive(n.frr.zebra) && isAlive(n.frr.bgpd), `${n.name}'s FRR recorded and running`);
    assertEvpnFlooding(state);

    // ---- status
    const status = await vk(['sandbox', 'status', '--dir', dir], { env });
    assert.equal(status.code, 0, `status:\n${status.stdout}${status.stderr}`);
    assert.match(status.stdout, /^hv3\s.*\byes\s+run\/ready$/m);
    for (const n of state.nodes) assert.match(status.stdout, new RegExp(`^${n.name}\\s.*pid ${n.frr!.zebra.pid} ok\\s+pid ${n.frr!.bgpd.pid} ok\\s`, 'm'), `${n.name}'s zebra and bgpd in status`);

    // ---- the REST API: up printed its address and a token; it answers with it, and only with it
    assert.ok(state.api && isAlive(state.api.proc), 'vk api recorded and running');
    assert.match(up.stdout, new RegExp(`REST API: ${state.api.url.replace(/[.]/g, '\\.')}`));
    const token = /admin token: (vk_\S+)/.exec(up.stdout)?.[1];
    assert.ok(token, 'up printed a token');
    const vms = await fetch(`${state.api.url}/vm`, { headers: { authorization: `Bearer ${token}` } });
    assert.equal(vms.status, 200);
    assert.equal(((await vms.json()) as unknown[]).length, 5, 'the five example VMs over HTTP');
    assert.equal((await fetch(`${state.api.url}/vm`)).status, 401, 'no token: 401');
    assert.match(status.stdout, new RegExp(`^api\\s+${state.api.url.replace(/[.]/g, '\\.')}\\s+pid ${state.api.proc!.pid}\\s+serving$`, 'm'));

    // ---- up again while up: says so, changes nothing
    const again = await vk(['sandbox', 'up', '--dir', dir], { env });
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stdout, /already up/);
    assert.equal(readState(dir)!.zookeeper.proc!.pid, state.zookeeper.proc!.pid);

    // ---- the printed commands, in one shell, as printed; the last one is `vk sandbox down`
    const fp = footprint(dir);
    assert.ok(fp.procs.length >= 13, 'ZooKeeper, 3 libvirtd, 3 daemons, 3 zebra, 3 bgpd');
    assert.equal(fp.procs.filter((p) => p.what.startsWith('FRR ')).length, 6);
    const lines = printedCommands(up.stdout);
    assert.match(lines[0]!.command, /^export VK_ZK=127\.0\.0\.1:\d+ /);
    assert.equal(lines[lines.length - 1]!.command, 'vk sandbox down');
    const results = await runSession(lines, { env });
    const account = describeSession(results);
    t.diagnostic(`${results.length} commands run, ${results.filter((r) => r.code === r.line.expectExit).length} with the expected exit code`);
    const failed = results.filter((r) => r.code !== r.line.expectExit);
    assert.equal(results.length, lines.length, `the session ended early:\n${account}`);
    assert.deepEqual(
      failed.map((r) => `${r.line.command} → ${r.code}`),
      [],
      `printed commands that did not work as printed:\n${account}`,
    );

    // ---- down left nothing behind
    assert.deepEqual(leftovers(fp), []);
    assert.ok(!existsSync(`${dir}/sandbox.json`), 'state file removed');
    const z = zombies(fp);
    if (z > 0) t.diagnostic(`${z} of the stopped processes remain as zombies: their parent (PID 1 here) does not reap orphans; they hold no memory, namespace or mount`);

    // ---- up after down
    const up2 = await vk(['sandbox', 'up', '--dir', dir], { env });
    assert.equal(up2.code, 0, `second up:\n${up2.stdout}\n${up2.stderr}`);
    assert.match(up2.stdout, /converged: 5 VMs/);
    assert.equal(readState(dir)!.zookeeper.port, state.zookeeper.port, 'the same ZooKeeper port, so the export line stays right');
    const fp2 = footprint(dir);
    const down2 = await vk(['sandbox', 'down', '--dir', dir], { env });
    assert.equal(down2.code, 0, down2.stderr);
    assert.deepEqual(leftovers(fp2), []);

    // ---- down without a sandbox is fine
    const down3 = await vk(['sandbox', 'down', '--dir', dir], { env });
    assert.equal(down3.code, 0);
    assert.match(down3.stdout, /nothing to stop/);
    const status3 = await vk(['sandbox', 'status', '--dir', dir], { env });
    assert.equal(status3.code, 1);
  } finally {
    if (readState(dir)) await stopSandbox(dir);
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a sandbox whose processes died is cleaned up by the next up', { timeout: 600_000, skip: why }, async () => {
  const dir = sandboxDir('crash');
  const env = cleanEnv();
  try {
    const up = await vk(['sandbox', 'up', '--dir', dir, '--nodes', '3'], { env });
    assert.equal(up.code, 0, up.stderr);
    const fp = footprint(dir);
    // Kill one libvirtd (a dead daemon is restarted in place instead: restart.test.ts): status
    // reports the sandbox degraded.
    const libvirtd = readState(dir)!.nodes[1]!.libvirtd!;
    process.kill(libvirtd.pid, 'SIGKILL');
    for (let i = 0; i < 100; i++) {
      const s = await vk(['sandbox', 'status', '--dir', dir], { env });
      if (s.code === 1) {
        assert.match(s.stdout, /DEGRADED/);
        assert.match(s.stdout, /^hv2\s.*DOWN/m);
        break;
      }
      if (i === 99) assert.fail('status never noticed the dead libvirtd');
    }
    // up on a sandbox that cannot be repaired in place: removes the old one, starts a fresh one.
    const up2 = await vk(['sandbox', 'up', '--dir', dir], { env });
    assert.equal(up2.code, 0, up2.stderr);
    assert.match(up2.stdout, /removing what is left of an earlier sandbox/);
    assert.deepEqual(fp.procs.filter((p) => isAlive(p.ref)).map((p) => `${p.what} (pid ${p.ref.pid})`), [], 'the old processes are gone');
    const fp2 = footprint(dir);
    assert.equal((await vk(['sandbox', 'down', '--dir', dir], { env })).code, 0);
    assert.deepEqual(leftovers(fp2), []);
  } finally {
    if (readState(dir)) await stopSandbox(dir);
    rmSync(dir, { recursive: true, force: true });
  }
});

test('four nodes: hv4 joins the cluster config and BGP; a killed bgpd shows in status and `vk sandbox restart` starts FRR again with its config', { timeout: 900_000, skip: why }, async () => {
  const dir = sandboxDir('bgp4');
  const env = cleanEnv();
  try {
    const up = await vk(['sandbox', 'up', '--dir', dir, '--nodes', '4'], { env });
    assert.equal(up.code, 0, `vk sandbox up --nodes 4 failed:\n${up.stdout}\n${up.stderr}`);
    assert.match(up.stdout, new RegExp(`cluster config: adding hv4 ${nodeAddress(4).replaceAll('.', '\\.')} to nodes`));
    // hv1-hv3 (coordinators) peer with the three other nodes each, hv4 with the three coordinators.
    assert.match(up.stdout, /converged: 5 VMs; BGP EVPN on 4 nodes, 12 sessions Established/);
    const state = readState(dir)!;
    assertEvpnFlooding(state);
    const zkEnv = { ...env, VK_ZK: state.zookeeper.connectString };
    const diff = await vk(['diff', '-f', 'manifests/examples/'], { env: zkEnv });
    assert.equal(diff.code, 1, `the cluster config differs from the files by hv4:\n${diff.stdout}${diff.stderr}`);
    assert.match(diff.stdout, /hv4/);
    const netns = await vk(['sandbox', 'netns', 'hv4', '--dir', dir], { env });
    assert.equal(netns.stdout.trim(), state.nodes[3]!.netns);

    // ---- bgpd of hv4 killed: status says so, and the coordinators lose the session.
    const hv4 = state.nodes[3]!;
    const old = hv4.frr!;
    process.kill(old.bgpd.pid, 'SIGKILL');
    await waitFor('bgpd of hv4 to die', () => !isAlive(old.bgpd), 30_000);
    const degraded = await vk(['sandbox', 'status', '--dir', dir], { env });
    assert.equal(degraded.code, 1, degraded.stdout);
    assert.match(degraded.stdout, new RegExp(`^hv4\\s.*pid ${old.zebra.pid} ok\\s+pid ${old.bgpd.pid} DOWN\\s`, 'm'));
    await waitFor('hv1 sees its session to hv4 down', async () => (await frrOf(zkEnv, 'hv1'))?.peers.find((p) => p.node === 'hv4')?.state !== 'Established', 60_000);

    // ---- restart: FRR was down, so it is started again (zebra too), loading the frr.conf hv4's daemon wrote.
    const restart = await vk(['sandbox', 'restart', 'hv4', '--dir', dir], { env });
    assert.equal(restart.code, 0, `vk sandbox restart hv4:\n${restart.stdout}\n${restart.stderr}`);
    assert.match(restart.stdout, /started FRR of hv4 \(zebra pid \d+, bgpd pid \d+\), loading its frr\.conf/);
    const now = readState(dir)!.nodes[3]!.frr!;
    assert.ok(!isAlive(old.zebra), 'the old zebra was stopped');
    assert.ok(isAlive(now.zebra) && isAlive(now.bgpd) && now.bgpd.pid !== old.bgpd.pid);
    const s = await waitFor('hv4 in sync with its three sessions Established again', async () => {
      const f = await frrOf(zkEnv, 'hv4');
      return f?.state === 'InSync' && f.peers.length === 3 && f.peers.every((p) => p.state === 'Established') ? f : false;
    }, 60_000);
    assert.deepEqual(s.peers.map((p) => p.node).sort(), ['hv1', 'hv2', 'hv3']);
    await waitFor('hv4 floods VNI 100 to the others again', () => {
      try {
        assertEvpnFlooding(readState(dir)!);
        return true;
      } catch {
        return false;
      }
    }, 30_000);
    // A restart of a node whose FRR runs leaves it alone.
    const again = await vk(['sandbox', 'restart', 'hv4', '--dir', dir], { env });
    assert.equal(again.code, 0, again.stderr);
    assert.doesNotMatch(again.stdout, /started FRR/);
    assert.deepEqual(readState(dir)!.nodes[3]!.frr, now);

    const fp = footprint(dir);
    const down = await vk(['sandbox', 'down', '--dir', dir], { env });
    assert.equal(down.code, 0, down.stderr);
    assert.match(down.stdout, /stopped FRR bgpd hv4 \(pid \d+, killed\)/);
    assert.deepEqual(leftovers(fp), []);
    assert.ok(!existsSync(dir), 'down removed the directory, cluster-config.yaml included');
  } finally {
    if (readState(dir)) await stopSandbox(dir);
    rmSync(dir, { recursive: true, force: true });
  }
});
