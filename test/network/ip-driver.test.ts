// The `ip` driver (drivers/net/ip.ts) against the real iproute2, inside a network namespace made
// here (random name, deleted in after()): observation of bridges and VXLANs (group, MTU, VXLAN
// id/local/dstport/learning, bridge-port flags, disable_ipv6), one-process batches with -force
// and per-line failures, sysctls in one process, `ip monitor link` events and its child's life,
// and the 802.1Q probe, answered honestly for the kernel it runs on.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { addNetns, deleteNetns, ip, netnsUsable } from '../../drivers/launch/netns.ts';
import { IpCommandError, IpTimeoutError } from '../../drivers/net/errors.ts';
import {
  applyBatch,
  disableIpv6Key,
  observeLinks,
  parseBatchStderr,
  parseGroup,
  probeVlan,
  PROBE_GROUP,
  setSysctls,
  sysctlPath,
  watchLinks,
} from '../../drivers/net/ip.ts';
import { run } from '../../drivers/net/run.ts';
import type { ObservedLink } from '../../drivers/net/types.ts';
import { waitFor } from '../rig/wait.ts';
import { isAlive, refOf } from '../../drivers/launch/process.ts';

const GROUP = 4244;
const why = netnsUsable();
const prefix = `vk${randomBytes(3).toString('hex')}`;
const ns = `${prefix}ipd`;
const opts = { netns: ns };

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const linkNames = async (): Promise<string[]> => (await observeLinks(opts)).links.map((l) => l.name);

/** Whether the process is live (not a zombie). */
const alive = (pid: number): boolean => isAlive(refOf(pid));

function cmdline(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ').trim();
  } catch {
    return '';
  }
}

/** Every live process whose command line is `ip -n <our ns> monitor link`. */
function monitorsOfOurNs(): number[] {
  return spawnSync('sh', ['-c', 'ls /proc'], { encoding: 'utf8' })
    .stdout.split('\n')
    .filter((e) => /^\d+$/.test(e))
    .map(Number)
    .filter((pid) => cmdline(pid) === `ip -n ${ns} monitor link` && alive(pid));
}

/** 802.1Q is there when its /proc file exists or `modprobe -n 8021q` would load it. */
function kernelHasVlan(): { yes: boolean; why: string } {
  if (existsSync('/proc/net/vlan')) return { yes: true, why: '/proc/net/vlan exists' };
  const r = spawnSync('modprobe', ['-n', '8021q'], { encoding: 'utf8' });
  if (r.error) return { yes: false, why: `/proc/net/vlan absent and modprobe is not runnable (${r.error.message})` };
  if (r.status !== 0) return { yes: false, why: `/proc/net/vlan absent and modprobe -n 8021q failed: ${r.stderr.trim()}` };
  return { yes: true, why: 'modprobe -n 8021q succeeds' };
}

describe('ip driver: pure parts', () => {
  it('parseGroup: numbers, numeric strings, "default" and names from the group file', () => {
    const names = new Map([['default', 0], ['vkgroup', 4244]]);
    assert.equal(parseGroup('4244', names), 4244);
    assert.equal(parseGroup(4244, names), 4244);
    assert.equal(parseGroup('default', names), 0);
    assert.equal(parseGroup('vkgroup', names), 4244);
    assert.equal(parseGroup('0x10', names), 16);
    assert.equal(parseGroup('nosuchname', names), -1);
  });

  it('parseBatchStderr: messages before "Command failed -:N" belong to line N; the rest is the tail', () => {
    const r = parseBatchStderr('RTNETLINK answers: File exists\nCommand failed -:1\nCannot find device "x"\nmore\nCommand failed -:5\nError: argument "9" is wrong: invalid id\n');
    assert.deepEqual(r.failed, [
      { ipLine: 1, message: 'RTNETLINK answers: File exists' },
      { ipLine: 5, message: 'Cannot find device "x"\nmore' },
    ]);
    assert.deepEqual(r.tail, ['Error: argument "9" is wrong: invalid id']);
  });

  it('sysctl keys: a dot in an interface name is a slash in the key', () => {
    assert.equal(disableIpv6Key('vk.100'), 'net.ipv6.conf.vk/100.disable_ipv6');
    assert.equal(sysctlPath(disableIpv6Key('vk.100')), '/proc/sys/net/ipv6/conf/vk.100/disable_ipv6');
    assert.throws(() => sysctlPath('net..x'), TypeError);
    assert.throws(() => sysctlPath('net.ipv6.conf.a b.x'), TypeError);
  });

  it('run: a process past its timeout is killed and the error names the command', async () => {
    let pid: number | undefined;
    await assert.rejects(run(['sh', '-c', 'echo $$ >&2; exec sleep 30'], { timeoutMs: 300 }), (e: unknown) => {
      assert.ok(e instanceof IpTimeoutError);
      assert.deepEqual(e.command, ['sh', '-c', 'echo $$ >&2; exec sleep 30']);
      pid = Number(e.stderr.trim());
      return true;
    });
    assert.ok(pid && pid > 1);
    await waitFor(`process ${pid} gone`, () => !alive(pid as number), 5_000);
  });
});

describe('ip driver against real iproute2 in a namespace', { skip: why }, () => {
  before(() => addNetns(ns));
  after(() => deleteNetns(ns));

  it('observes back exactly the bridge + VXLAN a batch made', async () => {
    const r = await applyBatch(
      [
        `link add vkbr100 group ${GROUP} mtu 1450 type bridge`,
        `link add vkvx100 group ${GROUP} mtu 1450 type vxlan id 100 local 198.51.100.1 dstport 4789 nolearning`,
        'link set vkvx100 master vkbr100',
        'link set dev vkvx100 type bridge_slave learning off neigh_suppress on',
        'link set vkvx100 up',
        'link set vkbr100 up',
      ],
      opts,
    );
    assert.deepEqual(r.failures, []);
    assert.equal(r.processes, 1);
    // The kernel settles operstate asynchronously (linkwatch): a bridge is DOWN until its up port counts.
    const obs = await waitFor('vkbr100 operstate UP', async () => {
      const o = await observeLinks(opts);
      return o.links.find((l) => l.name === 'vkbr100')?.operstate === 'UP' && o;
    }, 10_000);
    const vx = obs.links.find((l) => l.name === 'vkvx100');
    const br = obs.links.find((l) => l.name === 'vkbr100');
    assert.ok(vx && br);
    // A VXLAN device reports no operstate of its own (UNKNOWN) on most kernels.
    assert.match(vx.operstate, /^(UP|UNKNOWN)$/);
    assert.deepEqual(vx, {
      name: 'vkvx100',
      kind: 'vxlan',
      group: GROUP,
      mtu: 1450,
      master: 'vkbr100',
      operstate: vx.operstate,
      up: true,
      vxlan: { id: 100, local: '198.51.100.1', dstport: 4789, learning: false },
      bridgePort: { learning: false, neighSuppress: true },
    } satisfies ObservedLink);
    assert.deepEqual(br, { name: 'vkbr100', kind: 'bridge', group: GROUP, mtu: 1450, operstate: 'UP', up: true } satisfies ObservedLink);
    const lo = obs.links.find((l) => l.name === 'lo');
    assert.equal(lo?.group, 0);
    assert.equal(lo?.kind, '');
    // IPv6 on (the default) is read for every link, in one process.
    assert.equal(obs.ipv6Disabled.vkbr100, false);
    assert.equal(obs.ipv6Disabled.vkvx100, false);
  });

  it('reports exactly the failing line and applies the others (-force), even when ip stops on a line', async () => {
    // A line the kernel refuses (ip goes on by itself with -force).
    const a = await applyBatch(['link add vkfa1 type bridge', 'link add vkfa2 type nosuchkind', 'link add vkfa3 type bridge'], opts);
    assert.deepEqual(
      a.failures.map((f) => f.line),
      [1],
    );
    assert.match(a.failures[0]?.message ?? '', /Unknown device type|not supported|Error/);
    // A line ip cannot parse (invarg: ip exits at once, -force or not): the lines after it still run.
    const b = await applyBatch(
      ['link add vkfb1 type bridge', '', 'link add vkfb2 type vxlan id 99999999 dstport 4789', 'link add vkfb3 type bridge', 'link set vkfa1 mtu 1400'],
      opts,
    );
    assert.deepEqual(
      b.failures.map((f) => f.line),
      [2],
    );
    assert.match(b.failures[0]?.message ?? '', /invalid id/);
    assert.equal(b.processes, 2);
    const names = await linkNames();
    for (const n of ['vkfa1', 'vkfa3', 'vkfb1', 'vkfb3']) assert.ok(names.includes(n), `${n} was made`);
    for (const n of ['vkfa2', 'vkfb2']) assert.ok(!names.includes(n), `${n} was not made`);
    assert.equal((await observeLinks(opts)).links.find((l) => l.name === 'vkfa1')?.mtu, 1400);
    await applyBatch([`link del vkfa1`, 'link del vkfa3', 'link del vkfb1', 'link del vkfb3'], opts);
  });

  it('setSysctls disables IPv6 on bridges (a dotted name too) in one process and reports a key that failed', async () => {
    const made = await applyBatch(['link add vkbr.7 type bridge'], opts);
    assert.deepEqual(made.failures, []);
    const r = await setSysctls(
      {
        [disableIpv6Key('vkbr100')]: '1',
        [disableIpv6Key('vkbr.7')]: '1',
        [disableIpv6Key('vknosuch')]: '1',
      },
      opts,
    );
    assert.deepEqual(
      r.failures.map((f) => f.key),
      [disableIpv6Key('vknosuch')],
    );
    assert.match(r.failures[0]?.message ?? '', /nonexistent|No such file/);
    const obs = await observeLinks(opts);
    assert.equal(obs.ipv6Disabled.vkbr100, true);
    assert.equal(obs.ipv6Disabled['vkbr.7'], true);
    assert.equal(obs.ipv6Disabled.vkvx100, false);
    // And not in the host's namespace: it has no such link.
    assert.equal(existsSync('/proc/sys/net/ipv6/conf/vkbr.7'), false);
  });

  it('watchLinks emits when another ip deletes a link, restarts a child that died, and leaves no ip monitor after unsubscribe', async () => {
    await applyBatch(['link add vkwatch1 type bridge'], opts);
    const pids: number[] = [];
    let events = 0;
    const sub = watchLinks({ ...opts, backoffMs: 50, onSpawn: (pid) => pids.push(pid) }).subscribe(() => events++);
    try {
      await waitFor('ip monitor started', () => pids.length === 1, 5_000);
      const first = pids[0] as number;
      assert.equal(cmdline(first), `ip -n ${ns} monitor link`);
      // Until the monitor listens, changes go unseen: poke until one event arrives, then let it settle.
      let i = 0;
      await waitFor(
        'the monitor sees a change',
        async () => {
          if (events > 0) return true;
          ip('-n', ns, 'link', 'set', 'vkbr100', 'mtu', String(1400 + (i++ % 2)));
          return false;
        },
        10_000,
        undefined,
        100,
      );
      let last = events;
      await waitFor(
        'events quiet',
        async () => {
          const quiet = events === last;
          last = events;
          return quiet;
        },
        10_000,
        undefined,
        300,
      );
      const before = events;
      ip('-n', ns, 'link', 'del', 'vkwatch1');
      await waitFor('an event for the deleted link', () => events > before, 5_000);

      // The child dies (we started it; killed by its PID): a new one is started and one value emitted.
      const restartedFrom = events;
      process.kill(first, 'SIGKILL');
      await waitFor('a second ip monitor', () => pids.length === 2, 5_000);
      await waitFor('an emission after the restart', () => events > restartedFrom, 5_000);
      await waitFor('first child gone', () => !alive(first), 5_000);
    } finally {
      sub.unsubscribe();
    }
    for (const pid of pids) await waitFor(`ip monitor ${pid} gone after unsubscribe`, () => !alive(pid), 5_000);
    assert.deepEqual(monitorsOfOurNs(), []);
    const after = events;
    ip('-n', ns, 'link', 'set', 'vkbr100', 'mtu', '1450');
    await sleep(200);
    assert.equal(events, after, 'no emission after unsubscribe');
  });

  it('probeVlan answers for this kernel and leaves nothing behind', async (t) => {
    const kernel = kernelHasVlan();
    const before = await linkNames();
    const r = await probeVlan(opts);
    t.diagnostic(`kernel: ${kernel.why}; probe: ${JSON.stringify(r)}`);
    if (!kernel.yes) {
      t.diagnostic('THIS KERNEL HAS NO 802.1Q: the probe must say so; vLAN creation itself cannot be tested here');
      assert.equal(r.supported, false);
      assert.ok(r.message && r.message.length > 0, 'the kernel message is passed on');
      assert.doesNotMatch(r.message, /cannot probe/);
    } else {
      assert.equal(r.supported, true, r.message);
    }
    assert.deepEqual(await linkNames(), before);
    assert.equal(ip('-n', ns, 'link', 'show', 'group', String(PROBE_GROUP)).trim(), '');
  });

  it('one applyBatch makes 100 bridge + VXLAN sets in one ip process', async () => {
    const lines: string[] = [];
    for (let i = 0; i < 100; i++) {
      const vni = 1000 + i;
      lines.push(
        `link add vkbr${vni} group ${GROUP} mtu 1450 type bridge`,
        `link add vkvx${vni} group ${GROUP} mtu 1450 type vxlan id ${vni} local 198.51.100.1 dstport 4789 nolearning`,
        `link set vkvx${vni} master vkbr${vni}`,
        `link set dev vkvx${vni} type bridge_slave learning off neigh_suppress on`,
        `link set vkvx${vni} up`,
        `link set vkbr${vni} up`,
      );
    }
    const r = await applyBatch(lines, opts);
    assert.deepEqual(r.failures, []);
    assert.equal(r.processes, 1);
    const obs = await observeLinks(opts);
    for (let i = 0; i < 100; i++) {
      const vni = 1000 + i;
      const vx = obs.links.find((l) => l.name === `vkvx${vni}`);
      assert.equal(vx?.master, `vkbr${vni}`);
      assert.deepEqual(vx?.vxlan, { id: vni, local: '198.51.100.1', dstport: 4789, learning: false });
      assert.deepEqual(vx?.bridgePort, { learning: false, neighSuppress: true });
      assert.equal(obs.links.find((l) => l.name === `vkbr${vni}`)?.group, GROUP);
      assert.equal(obs.ipv6Disabled[`vkbr${vni}`], false);
    }
    // The group removes them all at once.
    const del = await applyBatch([`link del group ${GROUP}`], opts);
    assert.deepEqual(del.failures, []);
    assert.equal((await observeLinks(opts)).links.filter((l) => l.group === GROUP).length, 0);
  });

  it('errors are typed and carry the command and stderr', async () => {
    const missing = { netns: `${prefix}gone` };
    await assert.rejects(observeLinks(missing), (e: unknown) => {
      assert.ok(e instanceof IpCommandError);
      assert.ok(e.command.includes(missing.netns));
      assert.match(e.stderr, /No such file|Cannot open|does not exist/i);
      return true;
    });
    await assert.rejects(applyBatch(['link show'], { netns: 'bad name' }), TypeError);
    await assert.rejects(applyBatch(['link add x type bridge\nlink del lo'], opts), TypeError);
  });
});
