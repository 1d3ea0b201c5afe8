// The FRR driver (drivers/frr/) against real FRR 8.4: two namespaces on a fabric bridge (hv1 the
// route reflector at 198.51.100.1, hv2 at 198.51.100.2), each with a VXLAN for VNI 100 and its own
// zebra + bgpd (test/rig/frr.ts) started once for the file. It checks: the delta after loading is
// empty (and why the hostname option is needed), iBGP l2vpn evpn reaches Established, the VNI's
// remote VTEP shows, a hand edit shows in the delta and reload() undoes it, writeConfig/readConfig,
// a config FRR rejects, a frozen bgpd (timeouts kill what they started), bgpd alone down (which
// frr-reload.py itself does not notice) and FRR stopped: FrrUnreachable, promptly. The parsers are
// tested on captured output first; those tests need no FRR.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { hostname as osHostname, tmpdir } from 'node:os';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { createFrrDriver, FrrError, parseBgpSummary, parseEvpnVnis, parseReloadTest, type FrrDriver, type FrrErrorReason } from '../../drivers/frr/index.ts';
import { run } from '../../drivers/exec/run.ts';
import { stderrExcerpt } from '../../drivers/frr/run.ts';
import { ip, netnsUsable } from '../../drivers/launch/netns.ts';
import { frrInstalled, startFrrNode, type FrrNode } from '../rig/frr.ts';
import { createFabric, type Fabric } from '../rig/netns.ts';
import { waitFor } from '../rig/wait.ts';
import { allThreadsGone, isAlive, refOf } from '../../drivers/launch/process.ts';

const ASN = 65500;

/** frr.conf of node i (1-based) on 198.51.100.i; hv1 reflects routes to the others. */
function frrConf(i: number, peers: number[], extra: string[] = []): string {
  const rr = i === 1;
  return [
    `hostname hv${i}`,
    'service integrated-vtysh-config',
    '!',
    'no ip forwarding',
    'no ipv6 forwarding',
    '!',
    `router bgp ${ASN}`,
    ` bgp router-id 198.51.100.${i}`,
    ' no bgp default ipv4-unicast',
    ' neighbor fabric peer-group',
    ' neighbor fabric remote-as internal',
    ' neighbor fabric timers 1 3',
    ...peers.map((p) => ` neighbor 198.51.100.${p} peer-group fabric`),
    ...extra,
    ' !',
    ' address-family l2vpn evpn',
    '  neighbor fabric activate',
    ...(rr ? ['  neighbor fabric route-reflector-client'] : []),
    '  advertise-all-vni',
    ' exit-address-family',
    'exit',
    '!',
    '',
  ].join('\n');
}

async function rejectsWith(p: Promise<unknown>, reason: FrrErrorReason, message?: RegExp): Promise<FrrError> {
  let caught: unknown;
  try {
    await p;
  } catch (e) {
    caught = e;
  }
  assert.ok(caught instanceof FrrError, `expected an FrrError ${reason}, got ${caught === undefined ? 'success' : String(caught)}`);
  assert.equal(caught.reason, reason, caught.message);
  if (message) assert.match(caught.message, message);
  return caught;
}

/** Rejects with `reason` and within `withinMs`. */
async function rejectsPromptly(what: string, p: () => Promise<unknown>, reason: FrrErrorReason, withinMs: number, message?: RegExp): Promise<FrrError> {
  const t0 = Date.now();
  const e = await rejectsWith(p(), reason, message);
  const took = Date.now() - t0;
  assert.ok(took < withinMs, `${what} took ${took} ms (bound ${withinMs} ms): ${e.message}`);
  return e;
}

/** Whether the process is live (not a zombie). */
const alive = (pid: number): boolean => isAlive(refOf(pid));

/** Live processes whose command line mentions `text`, but for the ones in `except`. */
function processesMentioning(text: string, except: number[] = []): string[] {
  const found: string[] = [];
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e) || except.includes(Number(e)) || Number(e) === process.pid) continue;
    let cmd: string;
    try {
      cmd = readFileSync(`/proc/${e}/cmdline`, 'utf8').split('\0').join(' ');
    } catch {
      continue;
    }
    if (cmd.includes(text) && alive(Number(e))) found.push(`${e}: ${cmd}`);
  }
  return found;
}

describe('FRR driver: parsers and process handling (no FRR needed)', () => {
  it('parseReloadTest: empty output is in sync', () => {
    assert.deepEqual(parseReloadTest(''), { toDelete: [], toAdd: [] });
    assert.deepEqual(parseReloadTest('\n'), { toDelete: [], toAdd: [] });
  });

  it('parseReloadTest: both sections, context lines kept as printed', () => {
    const out = [
      '',
      'Lines To Delete',
      '===============',
      'ipv6 forwarding',
      'no hostname vm',
      'router bgp 65500',
      ' no neighbor fabric timers 1 3',
      '',
      'Lines To Add',
      '============',
      'router bgp 65500',
      ' neighbor 198.51.100.2 peer-group fabric',
      'router bgp 65500',
      ' address-family l2vpn evpn',
      '  advertise-all-vni',
      'ip forwarding',
      '',
    ].join('\n');
    assert.deepEqual(parseReloadTest(out), {
      toDelete: ['ipv6 forwarding', 'no hostname vm', 'router bgp 65500', ' no neighbor fabric timers 1 3'],
      toAdd: ['router bgp 65500', ' neighbor 198.51.100.2 peer-group fabric', 'router bgp 65500', ' address-family l2vpn evpn', '  advertise-all-vni', 'ip forwarding'],
    });
  });

  it('parseReloadTest: one section alone; anything outside a section is refused', () => {
    assert.deepEqual(parseReloadTest('\nLines To Add\n============\nrouter bgp 65500\n neighbor 198.51.100.2 peer-group fabric\n'), {
      toDelete: [],
      toAdd: ['router bgp 65500', ' neighbor 198.51.100.2 peer-group fabric'],
    });
    assert.throws(() => parseReloadTest('Daemon foo is not a valid option\n'), TypeError);
    assert.throws(() => parseReloadTest('Lines To Add\nrouter bgp 65500\n'), TypeError); // no underline: not a header
  });

  it('parseBgpSummary: peers by address with state and EVPN prefixes received; {} = no router bgp', () => {
    assert.deepEqual(parseBgpSummary({}), []);
    const summary = {
      routerId: '198.51.100.1',
      as: 65500,
      peers: {
        '198.51.100.10': { hostname: 'hv10', remoteAs: 65500, state: 'Active', peerState: 'OK' },
        '198.51.100.2': { hostname: 'hv2', remoteAs: 65500, pfxRcd: 1, pfxSnt: 2, state: 'Established', peerState: 'OK' },
      },
      totalPeers: 2,
    };
    assert.deepEqual(parseBgpSummary(summary), [
      { address: '198.51.100.2', state: 'Established', prefixesReceived: 1 },
      { address: '198.51.100.10', state: 'Active', prefixesReceived: 0 },
    ]);
    assert.throws(() => parseBgpSummary({ peers: { '198.51.100.2': {} } }), TypeError);
    assert.throws(() => parseBgpSummary([]), TypeError);
  });

  it('parseEvpnVnis: VNIs ascending, remote VTEPs sorted, absent remoteVteps = none', () => {
    assert.deepEqual(parseEvpnVnis({}), []);
    assert.deepEqual(
      parseEvpnVnis({
        '200': { vni: 200, type: 'L2', vxlanIf: 'vkvx200', numRemoteVteps: 0 },
        '100': { vni: 100, type: 'L2', vxlanIf: 'vkvx100', numRemoteVteps: 2, remoteVteps: ['198.51.100.3', '198.51.100.2'] },
      }),
      [
        { vni: 100, remoteVteps: ['198.51.100.2', '198.51.100.3'] },
        { vni: 200, remoteVteps: [] },
      ],
    );
    assert.throws(() => parseEvpnVnis({ x: { remoteVteps: 'no' } }), TypeError);
  });

  it("stderrExcerpt: frr-reload.py's colours and INFO lines go, errors stay", () => {
    const stderr = [
      '2026-12-04 14:18:39,417  INFO: Called via "Namespace(…)"',
      '2026-12-04 14:18:39,467 \x1b[91m  ERROR\x1b[0m: vtysh failed to process new configuration: vtysh (mark file) exited with status 2:',
      "b'line 3: % Unknown command:  neighbor bogus-thing here\\n\\n'",
      '2026-12-04 14:18:39,527  INFO: "frr version 8.4.4" cannot be removed',
    ].join('\n');
    const text = stderrExcerpt(stderr);
    assert.match(text, /^2026-12-04 14:18:39,467   ERROR: vtysh failed to process new configuration/);
    assert.match(text, /Unknown command: {2}neighbor bogus-thing here/);
    assert.doesNotMatch(text, /INFO|\x1b/);
    assert.ok(stderrExcerpt('x'.repeat(5000)).length <= 601);
  });

  it('run: on timeout the whole process group is killed, grandchildren included', async () => {
    const t0 = Date.now();
    const o = await run(['sh', '-c', 'sleep 30 & echo $! >&2; wait'], 300);
    assert.ok(o.timedOut);
    assert.ok(Date.now() - t0 < 2000);
    const grandchild = Number(o.stderr.trim());
    assert.ok(grandchild > 1, `no PID printed: ${JSON.stringify(o.stderr)}`);
    await waitFor(`sleep ${grandchild} gone`, () => !alive(grandchild), 5000);
  });

  it('no FRR at the location: every call but readConfig is FrrUnreachable at once', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'vk-frr-none-'));
    try {
      const frr = createFrrDriver({ confDir: dir, vtySocket: join(dir, 'nothing'), runDir: dir, binDir: '/usr/bin', reloadScript: '/usr/lib/frr/frr-reload.py', timeoutMs: 5000 });
      for (const [name, call] of [
        ['delta', () => frr.delta()],
        ['reload', () => frr.reload()],
        ['bgpPeers', () => frr.bgpPeers()],
        ['evpnVnis', () => frr.evpnVnis()],
      ] as const) {
        await rejectsPromptly(name, call, 'FrrUnreachable', 1000, /zebra: no vty socket .*zebra\.vty; bgpd: no vty socket/);
      }
      assert.equal(await frr.readConfig(), undefined);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('createFrrDriver refuses a hostname that is not one, a daemon name that is not one, a timeout that is not positive', () => {
    const loc = { confDir: '/x', vtySocket: '/x', runDir: '/x', binDir: '/usr/bin', reloadScript: '/x', timeoutMs: 1000 };
    assert.throws(() => createFrrDriver({ ...loc, hostname: 'a b; rm' }), TypeError);
    assert.throws(() => createFrrDriver({ ...loc, daemons: ['../zebra'] }), TypeError);
    assert.throws(() => createFrrDriver({ ...loc, timeoutMs: 0 }), TypeError);
  });
});

const why = frrInstalled() ?? netnsUsable();
if (why) console.error(`test/frr/driver.test.ts: SKIPPING the tests against real FRR: ${why}`);

describe('FRR driver against real FRR 8.4 in two namespaces', { skip: why }, () => {
  let fabric: Fabric | undefined;
  const nodes: FrrNode[] = [];
  let hv1: FrrNode;
  let hv2: FrrNode;
  let frr1: FrrDriver;
  let frr2: FrrDriver;
  const conf1 = frrConf(1, [2]);
  const conf2 = frrConf(2, [1]);

  /** Both sides Established and each received the other's EVPN route (the IMET route of VNI 100). */
  const established = async (): Promise<void> => {
    await waitFor(
      'both BGP sessions Established with a prefix received',
      async () => {
        const [p1, p2] = await Promise.all([frr1.bgpPeers(), frr2.bgpPeers()]);
        return p1.length === 1 && p2.length === 1 && [...p1, ...p2].every((p) => p.state === 'Established' && p.prefixesReceived >= 1);
      },
      20_000,
      async () => `hv1: ${JSON.stringify(await frr1.bgpPeers().catch(String))}\nhv2: ${JSON.stringify(await frr2.bgpPeers().catch(String))}\n${hv1.logTail(5)}\n${hv2.logTail(5)}`,
      100,
    );
  };

  /** `vtysh -c 'conf t' -c …` on a node, as an operator would type it. */
  const handEdit = (node: FrrNode, ...commands: string[]): void => {
    const r = spawnSync('vtysh', ['--vty_socket', node.dir, '--config_dir', node.dir, '-c', 'conf t', ...commands.flatMap((c) => ['-c', c])], { encoding: 'utf8', timeout: 10_000 });
    assert.equal(r.status, 0, `vtysh: ${r.stdout}${r.stderr}`);
  };

  const showRunning = (node: FrrNode): string =>
    spawnSync('vtysh', ['--vty_socket', node.dir, '--config_dir', node.dir, '-c', 'show running-config'], { encoding: 'utf8', timeout: 10_000 }).stdout;

  before(async () => {
    fabric = createFabric(2);
    for (const [i, h] of fabric.hosts.entries()) {
      const n = i + 1;
      ip('-n', h.ns, 'link', 'set', 'lo', 'up');
      ip('-n', h.ns, 'link', 'add', 'vkbr100', 'type', 'bridge');
      ip('-n', h.ns, 'link', 'add', 'vkvx100', 'type', 'vxlan', 'id', '100', 'dstport', '4789', 'local', `198.51.100.${n}`, 'nolearning');
      ip('-n', h.ns, 'link', 'set', 'vkvx100', 'master', 'vkbr100', 'up');
      ip('-n', h.ns, 'link', 'set', 'vkbr100', 'up');
    }
    const [h1, h2] = fabric.hosts;
    hv1 = await startFrrNode({ name: 'hv1', netns: h1!.ns, config: conf1 });
    nodes.push(hv1);
    hv2 = await startFrrNode({ name: 'hv2', netns: h2!.ns, config: conf2 });
    nodes.push(hv2);
    frr1 = createFrrDriver(hv1.location());
    frr2 = createFrrDriver(hv2.location());
  });

  after(async () => {
    const dirs = nodes.map((n) => n.dir);
    for (const n of nodes) await n.cleanup();
    fabric?.cleanup();
    for (const d of dirs) assert.deepEqual(processesMentioning(d), [], `processes left behind for ${d}`);
  });

  it('the config loaded at start is in sync: the delta is empty on both nodes', async () => {
    assert.deepEqual(await frr1.delta(), { toDelete: [], toAdd: [] });
    assert.deepEqual(await frr2.delta(), { toDelete: [], toAdd: [] });
    assert.equal(await frr1.readConfig(), conf1);
  });

  it("without the hostname option vtysh's own hostname is a delta; with it there is no hostname line", async (t) => {
    const mine = osHostname();
    if (mine === 'hv1') return t.skip('this machine is called hv1 itself');
    const plain = createFrrDriver(hv1.location({ hostname: null }));
    assert.deepEqual(await plain.delta(), { toDelete: [`no hostname ${mine}`], toAdd: [] });
    const d = await frr1.delta();
    assert.deepEqual([...d.toDelete, ...d.toAdd].filter((l) => /hostname/.test(l)), []);
  });

  it('iBGP l2vpn evpn reaches Established on both sides, peers as configured', async () => {
    await established();
    assert.deepEqual(await frr1.bgpPeers(), [{ address: '198.51.100.2', state: 'Established', prefixesReceived: 1 }]);
    assert.deepEqual(await frr2.bgpPeers(), [{ address: '198.51.100.1', state: 'Established', prefixesReceived: 1 }]);
  });

  it("evpnVnis lists VNI 100 with the other node's VTEP", async () => {
    await waitFor('VNI 100 with its remote VTEP on both nodes', async () => {
      const [v1, v2] = await Promise.all([frr1.evpnVnis(), frr2.evpnVnis()]);
      return JSON.stringify(v1) === JSON.stringify([{ vni: 100, remoteVteps: ['198.51.100.2'] }]) && JSON.stringify(v2) === JSON.stringify([{ vni: 100, remoteVteps: ['198.51.100.1'] }]);
    });
  });

  it('a hand edit shows in the delta (with its context line); reload() undoes it', async () => {
    handEdit(hv1, `router bgp ${ASN}`, 'no neighbor 198.51.100.2');
    assert.deepEqual(await frr1.bgpPeers(), []);
    const d = await frr1.delta();
    assert.deepEqual(d, { toDelete: [], toAdd: [`router bgp ${ASN}`, ' neighbor 198.51.100.2 peer-group fabric'] });
    await frr1.reload();
    assert.deepEqual(await frr1.delta(), { toDelete: [], toAdd: [] });
    assert.match(showRunning(hv1), /^ neighbor 198\.51\.100\.2 peer-group fabric$/m);
    await established();
  });

  it('a deletion is reported as the command that undoes it', async () => {
    handEdit(hv1, `router bgp ${ASN}`, 'neighbor fabric description added-by-hand');
    assert.deepEqual(await frr1.delta(), { toDelete: [`router bgp ${ASN}`, ' no neighbor fabric description added-by-hand'], toAdd: [] });
    await frr1.reload();
    assert.deepEqual(await frr1.delta(), { toDelete: [], toAdd: [] });
    assert.doesNotMatch(showRunning(hv1), /added-by-hand/);
  });

  it('writeConfig replaces frr.conf atomically, mode 0640, owned like its dir; readConfig reads it back', async () => {
    const changed = frrConf(1, [2], [' neighbor fabric description vk-fabric']);
    await frr1.writeConfig(changed);
    assert.equal(await frr1.readConfig(), changed);
    const file = statSync(join(hv1.dir, 'frr.conf'));
    const dir = statSync(hv1.dir);
    assert.equal(file.mode & 0o777, 0o640);
    assert.deepEqual([file.uid, file.gid], [dir.uid, dir.gid]);
    assert.notEqual(dir.uid, 0, 'the rig hands the dir to user frr');
    assert.deepEqual(readdirSync(hv1.dir).filter((f) => f.includes('.tmp')), []);
    assert.deepEqual(await frr1.delta(), { toDelete: [], toAdd: [`router bgp ${ASN}`, ' neighbor fabric description vk-fabric'] });
    await frr1.reload();
    assert.deepEqual(await frr1.delta(), { toDelete: [], toAdd: [] });
    assert.match(showRunning(hv1), /^ neighbor fabric description vk-fabric$/m);
    await frr1.writeConfig(conf1);
    await frr1.reload();
    assert.deepEqual(await frr1.delta(), { toDelete: [], toAdd: [] });
    assert.doesNotMatch(showRunning(hv1), /vk-fabric/);
  });

  it('a config FRR rejects: delta() is FrrCommandFailed, reload() ReloadFailed, both naming the line; nothing changes', async () => {
    const before = showRunning(hv2);
    await frr2.writeConfig(frrConf(2, [1], [' neighbor fabric bogus-keyword 7']));
    try {
      const e1 = await rejectsWith(frr2.delta(), 'FrrCommandFailed', /frr-reload\.py --test .*: exit status 1: .*Unknown command: +neighbor fabric bogus-keyword 7/s);
      assert.ok(e1.command?.includes('--test'));
      await rejectsWith(frr2.reload(), 'ReloadFailed', /frr-reload\.py --reload .*: exit status 1: .*Unknown command: +neighbor fabric bogus-keyword 7/s);
      assert.equal(showRunning(hv2), before);
    } finally {
      await frr2.writeConfig(conf2);
    }
    assert.deepEqual(await frr2.delta(), { toDelete: [], toAdd: [] });
  });

  it('a frozen bgpd: every call is cut at its timeout and leaves no process behind', async () => {
    const pid = hv2.handle!.bgpdPid;
    const frozen = createFrrDriver(hv2.location({ timeoutMs: 700 }));
    process.kill(pid, 'SIGSTOP');
    try {
      // Each call either runs into its timeout or, once the calls before it filled bgpd's listen
      // queue, is refused at the reachability probe: both are prompt, and both say why.
      for (const [name, call, timedOutReason] of [
        ['bgpPeers', () => frozen.bgpPeers(), 'FrrUnreachable'],
        ['delta', () => frozen.delta(), 'FrrUnreachable'],
        ['reload', () => frozen.reload(), 'ReloadFailed'],
      ] as const) {
        const t0 = Date.now();
        const e = await call().then(
          () => assert.fail(`${name} resolved against a frozen bgpd`),
          (err: unknown) => err as FrrError,
        );
        const took = Date.now() - t0;
        assert.ok(took < 3000, `${name} took ${took} ms: ${e.message}`);
        if (/queue is full/.test(e.message)) {
          assert.equal(e.reason, 'FrrUnreachable', e.message);
          assert.match(e.message, /bgpd: .*bgpd\.vty takes no more connections: its queue is full/);
        } else {
          assert.equal(e.reason, timedOutReason, e.message);
          assert.match(e.message, /no answer within 700 ms \(killed\)/);
        }
      }
      // Fill bgpd's listen queue for sure: the next call is refused at once, naming the full queue.
      const held: Socket[] = [];
      try {
        for (let i = 0; i < 1000; i++) {
          const s = connect(join(hv2.location().vtySocket, 'bgpd.vty'));
          held.push(s);
          const code = await new Promise<string | undefined>((resolve) => {
            s.once('connect', () => resolve(undefined));
            s.once('error', (e: NodeJS.ErrnoException) => resolve(e.code));
          });
          if (code === 'EAGAIN') break;
          assert.equal(code, undefined, `connection ${i} to a frozen bgpd`);
        }
        await rejectsPromptly('delta with a full queue', () => frozen.delta(), 'FrrUnreachable', 1000, /bgpd: .*bgpd\.vty takes no more connections: its queue is full/);
      } finally {
        for (const s of held) s.destroy();
      }
      const leftovers = () => processesMentioning(hv2.dir, [hv2.handle!.zebraPid, pid]);
      await waitFor('no vtysh or frr-reload.py left', () => leftovers().length === 0, 5000, () => leftovers().join('\n'));
    } finally {
      process.kill(pid, 'SIGCONT');
    }
    // Thawed, bgpd first works through the connections queued while it was frozen.
    const delta = await waitFor('bgpd answering again', () => frr2.delta().catch(() => undefined), 10_000);
    assert.deepEqual(delta, { toDelete: [], toAdd: [] });
    await established();
  });

  it('bgpd alone down (frr-reload.py would see only a config to add): FrrUnreachable naming bgpd', async () => {
    process.kill(hv2.handle!.bgpdPid, 'SIGKILL');
    await waitFor('bgpd gone, every thread', () => allThreadsGone(hv2.handle!.bgpd), 5000);
    for (const [name, call] of [
      ['delta', () => frr2.delta()],
      ['reload', () => frr2.reload()],
      ['bgpPeers', () => frr2.bgpPeers()],
    ] as const) {
      await rejectsPromptly(name, call, 'FrrUnreachable', 1000, /bgpd: .*bgpd\.vty refuses connections/);
    }
  });

  it('FRR stopped: every call but readConfig is FrrUnreachable, promptly', async () => {
    await hv2.stop();
    assert.equal(hv2.running, false);
    for (const [name, call] of [
      ['delta', () => frr2.delta()],
      ['reload', () => frr2.reload()],
      ['bgpPeers', () => frr2.bgpPeers()],
      ['evpnVnis', () => frr2.evpnVnis()],
    ] as const) {
      await rejectsPromptly(name, call, 'FrrUnreachable', 1000, /FRR is not running: zebra: .*zebra\.vty refuses connections; bgpd: /);
    }
    assert.equal(await frr2.readConfig(), conf2);
  });

  it('restarted, FRR reads frr.conf: in sync and Established again', async () => {
    await hv2.restart();
    assert.equal(hv2.running, true);
    assert.deepEqual(await frr2.delta(), { toDelete: [], toAdd: [] });
    await established();
  });
});
