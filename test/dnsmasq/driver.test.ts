// The dnsmasq driver (drivers/dnsmasq/) against real dnsmasq 2.90 and busybox udhcpc. Topology,
// made once for the file: a node namespace with bridge vkbr200 and on it the macvlan vkgw200
// (the gateway's virtual MAC 02:76:6b:00:00:c8, 203.0.113.1/24), and VM-side client namespaces
// plugged into vkbr200 (test/rig/dhcp-client.ts). It checks: a client gets a lease in the range,
// the script's lease file and readLeases, watchLeases, DNS for <hostname>.<domain>, a restart with
// readLeases' leases as init (the lease survives an emptied lease dir: DNS knows the name before
// any renewal, a renewal is ACKed with the same address, another client asking for that address
// gets another one), orphan adoption by a second driver object, stop (idempotent, no process
// left), a missing interface, a hostname with shell metacharacters, two networks side by side in
// one namespace, and what dnsmasq does when the gateway address vanishes. The argv, the lease
// parser and the lease script itself (run with sh on crafted input) are tested first without
// dnsmasq.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { accessSync, constants, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  createDnsmasqDriver,
  DnsmasqError,
  dnsmasqArgv,
  initLeases,
  leaseScript,
  parseLeaseFile,
  parseLeaseLine,
  specProblem,
  vniFiles,
  type DnsmasqDriver,
  type DnsmasqErrorReason,
  type DnsmasqSpec,
  type ScriptLease,
} from '../../drivers/dnsmasq/index.ts';
import { addNetns, deleteNetns, ip, netnsUsable } from '../../drivers/launch/netns.ts';
import { isAlive, refOf } from '../../drivers/launch/process.ts';
import { dhcp, events, nextEvent, plugClient, renew, stopUdhcpc, type DhcpClient } from '../rig/dhcp-client.ts';
import { waitFor } from '../rig/wait.ts';

const DNSMASQ = '/usr/sbin/dnsmasq';
const nowS = (): number => Math.floor(Date.now() / 1000);

/** Live processes (not zombies) whose command line mentions `text`. */
function processesMentioning(text: string): string[] {
  const found: string[] = [];
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e) || Number(e) === process.pid) continue;
    let cmd: string;
    try {
      cmd = readFileSync(`/proc/${e}/cmdline`, 'utf8').split('\0').join(' ');
    } catch {
      continue;
    }
    if (cmd.includes(text) && isAlive(refOf(Number(e)))) found.push(`${e}: ${cmd}`);
  }
  return found;
}

async function rejectsWith(p: Promise<unknown>, reason: DnsmasqErrorReason, message?: RegExp): Promise<DnsmasqError> {
  let caught: unknown;
  try {
    await p;
  } catch (e) {
    caught = e;
  }
  assert.ok(caught instanceof DnsmasqError, `expected a DnsmasqError ${reason}, got ${caught === undefined ? 'success' : String(caught)}`);
  assert.equal(caught.reason, reason, caught.message);
  if (message) assert.match(caught.message, message);
  return caught;
}

const SPEC: DnsmasqSpec = {
  vni: 200,
  interface: 'vkgw200',
  address: '203.0.113.1',
  prefixLength: 24,
  range: { start: '203.0.113.100', end: '203.0.113.199' },
  domain: 'tenant.example',
};

describe('dnsmasq driver: argv, lease parsing and the lease script (no dnsmasq needed)', () => {
  it('argv of a DHCP + DNS spec, every file under the run dir', () => {
    assert.deepEqual(dnsmasqArgv(SPEC, '/run/vk/dnsmasq/'), [
      '/usr/sbin/dnsmasq',
      '--keep-in-foreground',
      '--conf-file=/dev/null',
      '--no-hosts',
      '--no-resolv',
      '--pid-file=/run/vk/dnsmasq/dnsmasq-200.pid',
      '--log-facility=/run/vk/dnsmasq/dnsmasq-200.log',
      '--interface=vkgw200',
      '--bind-interfaces',
      '--except-interface=lo',
      '--listen-address=203.0.113.1',
      '--dhcp-range=203.0.113.100,203.0.113.199,255.255.255.0,3600s',
      '--dhcp-lease-max=100',
      '--dhcp-authoritative',
      '--leasefile-ro',
      '--dhcp-script=/run/vk/dnsmasq/lease-200.sh',
      '--log-dhcp',
      '--domain=tenant.example',
      '--local=/tenant.example/',
    ]);
  });

  it('argv without a domain: --port=0 (no DNS); without a range: no DHCP flags; lease time and prefix carried', () => {
    const { domain: _d, ...dhcpOnly } = SPEC;
    const a = dnsmasqArgv({ ...dhcpOnly, prefixLength: 20, range: { start: '203.0.113.10', end: '203.0.113.20' }, leaseTimeS: 600 }, '/r', '/opt/dnsmasq');
    assert.equal(a[0], '/opt/dnsmasq');
    assert.ok(a.includes('--dhcp-range=203.0.113.10,203.0.113.20,255.255.240.0,600s'), a.join(' '));
    assert.ok(a.includes('--dhcp-lease-max=11'));
    assert.equal(a.at(-1), '--port=0');
    assert.ok(!a.some((x) => x.startsWith('--domain') || x.startsWith('--local')));
    const { range: _r, ...dnsOnly } = SPEC;
    const b = dnsmasqArgv(dnsOnly, '/r');
    assert.ok(!b.some((x) => /dhcp|leasefile/.test(x)), b.join(' '));
    assert.deepEqual(b.slice(-2), ['--domain=tenant.example', '--local=/tenant.example/']);
  });

  it('specs that cannot run are refused with the reason', () => {
    const cases: Array<[Partial<DnsmasqSpec>, RegExp]> = [
      [{ vni: 0 }, /vni/],
      [{ interface: 'vkgw200;x' }, /interface/],
      [{ interface: 'a-name-longer-than-15' }, /interface/],
      [{ address: '203.0.113.256' }, /address/],
      [{ prefixLength: 31 }, /prefixLength/],
      [{ range: { start: '203.0.113.200', end: '203.0.113.100' } }, /above its end/],
      [{ range: { start: '198.51.100.10', end: '198.51.100.20' } }, /not inside 203\.0\.113\.1\/24/],
      [{ range: { start: '203.0.113.1', end: '203.0.113.20' } }, /holds the gateway/],
      [{ leaseTimeS: 60 }, /at least 120/],
      [{ domain: 'Tenant.Example' }, /domain/],
      [{ domain: 'a..b' }, /domain/],
      [{ range: undefined, domain: undefined }, /nothing to serve/],
    ];
    for (const [change, reason] of cases) {
      const spec = { ...SPEC, ...change } as DnsmasqSpec;
      assert.match(specProblem(spec) ?? '(accepted)', reason, JSON.stringify(change));
      assert.throws(() => dnsmasqArgv(spec, '/r'), TypeError);
    }
    assert.throws(() => dnsmasqArgv(SPEC, 'relative/dir'), TypeError);
    assert.throws(() => dnsmasqArgv(SPEC, '/run/with space'), TypeError);
    assert.throws(() => createDnsmasqDriver({ runDir: '/r', netns: 'a b' }), TypeError);
  });

  it('specHash tells a changed spec and only that', () => {
    const d = createDnsmasqDriver({ runDir: '/nonexistent/vk-dnsmasq' });
    assert.equal(d.specHash(SPEC), d.specHash({ ...SPEC }));
    assert.match(d.specHash(SPEC), /^[0-9a-f]{16}$/);
    for (const change of [{ leaseTimeS: 7200 }, { domain: 'other.example' }, { range: { start: '203.0.113.100', end: '203.0.113.150' } }, { interface: 'vkgw201' }])
      assert.notEqual(d.specHash({ ...SPEC, ...change }), d.specHash(SPEC), JSON.stringify(change));
  });

  it('parseLeaseLine / parseLeaseFile: strict, a malformed line or file is no lease', () => {
    assert.deepEqual(parseLeaseLine('1796408791 02:00:00:00:00:01 203.0.113.163 vm1 01:02:00:00:00:00:01'), {
      mac: '02:00:00:00:00:01',
      ip: '203.0.113.163',
      hostname: 'vm1',
      clientId: '01:02:00:00:00:00:01',
      expires: 1796408791,
    });
    assert.deepEqual(parseLeaseLine('0 02:00:00:00:00:01 203.0.113.163 * *'), { mac: '02:00:00:00:00:01', ip: '203.0.113.163', expires: 0 });
    for (const bad of [
      '',
      '1 02:00:00:00:00:01 203.0.113.163 vm1',
      '1 02:00:00:00:00:01 203.0.113.163 vm1 * extra',
      '1 02:00:00:00:00:01 203.0.113.163 a;touch *',
      '1 02:00:00:00:00:01 203.0.113.163 $(id) *',
      '1 02:00:00:00:00:01 203.0.113.163 vm1.tenant.example *',
      '1 02:00:00:00:00:01 203.0.113.163 -vm1 *',
      '1 ../../etc/passwd 203.0.113.163 vm1 *',
      '1 02:00:00:00:00:01 203.0.113.300 vm1 *',
      '1 02:00:00:00:00:01 203.0.113.163 vm1 zz',
      '-1 02:00:00:00:00:01 203.0.113.163 vm1 *',
      '01 02:00:00:00:00:01 203.0.113.163 vm1 *',
      '1  02:00:00:00:00:01 203.0.113.163 vm1 *',
    ])
      assert.equal(parseLeaseLine(bad), undefined, bad);
    const line = '1796408791 02:00:00:00:00:01 203.0.113.163 vm1 *\n';
    assert.ok(parseLeaseFile('02:00:00:00:00:01', line));
    assert.equal(parseLeaseFile('02:00:00:00:00:02', line), undefined); // named for another MAC
    assert.equal(parseLeaseFile('02:00:00:00:00:01', line.trimEnd()), undefined); // half-written
    assert.equal(parseLeaseFile('02:00:00:00:00:01', line + line), undefined);
  });

  it('initLeases: expired, malformed and out-of-range leases left out; one per MAC and per address; names dnsmasq would refuse dropped', () => {
    const now = 1_800_000_000;
    const leases: ScriptLease[] = [
      { mac: '02:00:00:00:00:01', ip: '203.0.113.101', hostname: 'vm1', expires: now + 100 },
      { mac: '02:00:00:00:00:02', ip: '203.0.113.102', expires: now - 1 }, // expired
      { mac: '02:00:00:00:00:03', ip: '203.0.113.50', expires: now + 100 }, // outside the range
      { mac: 'nonsense', ip: '203.0.113.104', expires: now + 100 },
      { mac: '02:00:00:00:00:05', ip: '203.0.113.105', hostname: 'vm 5; rm -rf /', clientId: '$(id)', expires: 0 }, // infinite
      { mac: '02:00:00:00:00:01', ip: '203.0.113.106', expires: now + 50 }, // same MAC, ends sooner
      { mac: '02:00:00:00:00:07', ip: '203.0.113.101', expires: now + 10 }, // same address, ends sooner
      { mac: '02:00:00:00:00:0A', ip: '203.0.113.110', clientId: '01:02:00:00:00:00:0A', expires: now + 100 },
    ];
    assert.deepEqual(initLeases(leases, now, { first: 0, last: 1 }), []); // no address is in that range
    const range = { first: (203 << 24 >>> 0) + (113 << 8) + 100, last: (203 << 24 >>> 0) + (113 << 8) + 199 };
    assert.deepEqual(initLeases(leases, now, range), [
      { mac: '02:00:00:00:00:01', ip: '203.0.113.101', hostname: 'vm1', expires: now + 100 },
      { mac: '02:00:00:00:00:05', ip: '203.0.113.105', expires: 0 },
      { mac: '02:00:00:00:00:0a', ip: '203.0.113.110', clientId: '01:02:00:00:00:00:0a', expires: now + 100 },
    ]);
  });

  it('watchLeases: a lease dir made later is watched, changes are reported per VNI, a replaced dir is watched anew, unsubscribe ends it', async () => {
    const runDir = mkdtempSync(join(tmpdir(), 'vk-dnsmasq-watch-'));
    const seen: number[] = [];
    const d = createDnsmasqDriver({ runDir });
    mkdirSync(join(runDir, 'leases-5'));
    const unwatch = d.watchLeases((vni) => {
      seen.push(vni);
      if (vni === 6) throw new Error('a failing callback does not stop the watch');
    });
    try {
      writeFileSync(join(runDir, 'leases-5', '02:00:00:00:00:01'), '0 02:00:00:00:00:01 203.0.113.101 * *\n');
      await waitFor('VNI 5 reported', () => seen.includes(5), 5000);
      mkdirSync(join(runDir, 'leases-6'));
      await waitFor('the new dir of VNI 6 reported', () => seen.includes(6), 5000);
      seen.length = 0;
      writeFileSync(join(runDir, 'leases-6', '02:00:00:00:00:02'), '0 02:00:00:00:00:02 203.0.113.102 * *\n');
      await waitFor('a change in VNI 6 reported', () => seen.includes(6), 5000);
      assert.ok(!seen.includes(5));
      rmSync(join(runDir, 'leases-5'), { recursive: true });
      mkdirSync(join(runDir, 'leases-5'));
      await waitFor('VNI 5 reported after its dir was replaced', () => seen.includes(5), 5000);
      seen.length = 0;
      writeFileSync(join(runDir, 'leases-5', '02:00:00:00:00:03'), '0 02:00:00:00:00:03 203.0.113.103 * *\n');
      await waitFor('a change in the new dir of VNI 5 reported', () => seen.includes(5), 5000);
      assert.deepEqual(d.readLeases(5), [{ mac: '02:00:00:00:00:03', ip: '203.0.113.103', expires: 0 }]);
      // Junk in a lease dir is no lease.
      writeFileSync(join(runDir, 'leases-5', '02:00:00:00:00:04'), '0 02:00:00:00:00:04 203.0.113.104 $(id) *\n');
      writeFileSync(join(runDir, 'leases-5', 'notamac'), '0 02:00:00:00:00:05 203.0.113.105 * *\n');
      writeFileSync(join(runDir, 'leases-5', '.02:00:00:00:00:06.123'), '0 02:00:00:00:00:06 203.0.113.106 * *\n');
      assert.deepEqual(d.readLeases(5).map((l) => l.mac), ['02:00:00:00:00:03']);
      assert.deepEqual(d.readLeases(7), []);
      unwatch();
      seen.length = 0;
      writeFileSync(join(runDir, 'leases-5', '02:00:00:00:00:07'), '0 02:00:00:00:00:07 203.0.113.107 * *\n');
      await new Promise((r) => setTimeout(r, 200));
      assert.deepEqual(seen, []);
    } finally {
      unwatch();
      rmSync(runDir, { recursive: true, force: true });
    }
  });

  describe('the lease script, run with sh on crafted input', () => {
    let dir: string;
    let run: (args: string[], env?: Record<string, string>) => { status: number | null; stdout: string };
    const leaseDir = (): string => join(dir, 'leases-7');
    before(() => {
      dir = mkdtempSync(join(tmpdir(), 'vk-dnsmasq-script-'));
      mkdirSync(leaseDir());
      const script = join(dir, 'lease-7.sh');
      writeFileSync(script, leaseScript({ initFile: join(dir, 'leases-7.init'), leaseDir: leaseDir() }), { mode: 0o755 });
      run = (args, env = {}) => {
        const r = spawnSync(script, args, { cwd: dir, env: { PATH: '/usr/bin:/bin', ...env }, encoding: 'utf8', timeout: 5000 });
        return { status: r.status, stdout: r.stdout };
      };
    });
    after(() => rmSync(dir, { recursive: true, force: true }));

    it('init prints the init file (nothing, exit 0, when there is none)', () => {
      assert.deepEqual(run(['init']), { status: 0, stdout: '' });
      writeFileSync(join(dir, 'leases-7.init'), '1796408791 02:00:00:00:00:01 203.0.113.163 vm1 *\n');
      assert.deepEqual(run(['init']), { status: 0, stdout: '1796408791 02:00:00:00:00:01 203.0.113.163 vm1 *\n' });
    });

    it('add / old write one file per MAC; del removes it only while it names that address; other actions are ignored', () => {
      const env = { DNSMASQ_LEASE_EXPIRES: '1796408791', DNSMASQ_CLIENT_ID: '01:02:00:00:00:00:01' };
      assert.equal(run(['add', '02:00:00:00:00:01', '203.0.113.163', 'vm1'], env).status, 0);
      const file = join(leaseDir(), '02:00:00:00:00:01');
      assert.equal(readFileSync(file, 'utf8'), '1796408791 02:00:00:00:00:01 203.0.113.163 vm1 01:02:00:00:00:00:01\n');
      run(['old', '02:00:00:00:00:01', '203.0.113.163'], { DNSMASQ_LEASE_EXPIRES: '1796409999' }); // renewed, name gone
      assert.equal(readFileSync(file, 'utf8'), '1796409999 02:00:00:00:00:01 203.0.113.163 * *\n');
      run(['del', '02:00:00:00:00:01', '203.0.113.170']); // an old address of that MAC
      assert.ok(existsSync(file));
      run(['del', '02:00:00:00:00:01', '203.0.113.163']);
      assert.ok(!existsSync(file));
      for (const action of ['arp-add', 'tftp', 'relay-snoop', 'something-new'])
        assert.equal(run([action, '02:00:00:00:00:01', '203.0.113.163'], { DNSMASQ_LEASE_EXPIRES: '1' }).status, 0);
      assert.deepEqual(readdirSync(leaseDir()), []);
    });

    it('DNSMASQ_LEASE_LENGTH (a HAVE_BROKEN_RTC build) and DNSMASQ_TIME_REMAINING become an expiry from now', () => {
      const t0 = nowS();
      run(['add', '02:00:00:00:00:02', '203.0.113.164'], { DNSMASQ_LEASE_LENGTH: '3600' });
      const a = parseLeaseFile('02:00:00:00:00:02', readFileSync(join(leaseDir(), '02:00:00:00:00:02'), 'utf8'));
      assert.ok(a && a.expires >= t0 + 3600 && a.expires <= nowS() + 3600, JSON.stringify(a));
      run(['add', '02:00:00:00:00:03', '203.0.113.165'], { DNSMASQ_TIME_REMAINING: '100' });
      const b = parseLeaseFile('02:00:00:00:00:03', readFileSync(join(leaseDir(), '02:00:00:00:00:03'), 'utf8'));
      assert.ok(b && b.expires >= t0 + 100 && b.expires <= nowS() + 100, JSON.stringify(b));
      run(['del', '02:00:00:00:00:02', '203.0.113.164']);
      run(['del', '02:00:00:00:00:03', '203.0.113.165']);
    });

    it('nothing a client sends runs anything: hostile hostname, client id, expiry, MAC and address', () => {
      const marker = join(dir, 'pwned');
      const hostile = [`a;touch ${marker}`, `$(touch ${marker})`, `\`touch ${marker}\``, `x' ; touch ${marker}; '`, `a\ntouch ${marker}`];
      for (const h of hostile) {
        run(['add', '02:00:00:00:00:04', '203.0.113.166', h], { DNSMASQ_LEASE_EXPIRES: '1796408791', DNSMASQ_CLIENT_ID: h });
        const text = readFileSync(join(leaseDir(), '02:00:00:00:00:04'), 'utf8');
        assert.equal(text, '1796408791 02:00:00:00:00:04 203.0.113.166 * *\n', h);
      }
      run(['add', '02:00:00:00:00:05', '203.0.113.167', 'vm5'], { DNSMASQ_LEASE_EXPIRES: `1; touch ${marker}` });
      run(['add', '02:00:00:00:00:06', '203.0.113.168', 'vm6'], { DNSMASQ_LEASE_LENGTH: `1+$(touch ${marker})` });
      run(['add', `../${'x'}`, '203.0.113.169', 'vm7'], { DNSMASQ_LEASE_EXPIRES: '1' });
      run(['add', '02:00:00:00:00:08', `203.0.113.170/../../x`, 'vm8'], { DNSMASQ_LEASE_EXPIRES: '1' });
      run(['add', '02:00:00:00:00:09', `$(touch ${marker})`, 'vm9'], { DNSMASQ_LEASE_EXPIRES: '1' });
      assert.ok(!existsSync(marker), 'a hostile value ran a command');
      assert.deepEqual(readdirSync(leaseDir()).sort(), ['02:00:00:00:00:04']);
      assert.deepEqual(readdirSync(dir).sort(), ['lease-7.sh', 'leases-7', 'leases-7.init']);
    });
  });
});

// ---------------------------------------------------------------------------------------------
// Against real dnsmasq and udhcpc

function whyNot(): string | undefined {
  if (process.getuid?.() !== 0) return 'needs root (network namespaces)';
  const netns = netnsUsable();
  if (netns) return netns;
  for (const f of [DNSMASQ, '/usr/bin/busybox', '/usr/bin/setpriv'])
    try {
      accessSync(f, constants.X_OK);
    } catch {
      return `${f} is missing (Debian packages dnsmasq-base, busybox, util-linux)`;
    }
  return undefined;
}
const skip = whyNot();

describe('dnsmasq driver against real dnsmasq 2.90 and udhcpc', { skip }, () => {
  const tag = Math.random().toString(16).slice(2, 8);
  const node = `vkdn${tag}`;
  const clients: DhcpClient[] = [];
  let runDir: string;
  let driver: DnsmasqDriver;
  let vm1: DhcpClient;
  let vm1Ip = '';
  let unwatch: (() => void) | undefined;
  const changed: number[] = [];

  const inNode = (...argv: string[]) => spawnSync('ip', ['netns', 'exec', node, ...argv], { encoding: 'utf8', timeout: 10_000 });
  const nslookup = (client: DhcpClient, name: string): string => {
    const r = spawnSync('ip', ['netns', 'exec', client.ns, 'busybox', 'nslookup', name, SPEC.address], { encoding: 'utf8', timeout: 10_000 });
    return `${r.stdout}${r.stderr}`;
  };
  /** The address an nslookup output gives for `name`, if any. */
  const answer = (out: string, name: string): string | undefined => new RegExp(`Name:\\s+${name.replace(/\./g, '\\.')}\\s+Address:\\s+([0-9.]+)`).exec(out)?.[1];
  const plug = (name: string, mac: string): DhcpClient => {
    const c = plugClient({ nodeNs: node, bridge: 'vkbr200', name: `${node}${name}`.slice(0, 15), mac });
    clients.push(c);
    return c;
  };
  const log = (vni = 200): string => readFileSync(vniFiles(runDir, vni).logFile, 'utf8');
  const inRange = (a: string): boolean => {
    const last = Number(a.split('.')[3]);
    return a.startsWith('203.0.113.') && last >= 100 && last <= 199;
  };

  before(() => {
    runDir = mkdtempSync(join(tmpdir(), 'vk-dnsmasq-'));
    process.once('exit', () => {
      try {
        deleteNetns(node);
      } catch {
        // gone
      }
    });
    addNetns(node);
    ip('-n', node, 'link', 'set', 'lo', 'up');
    ip('-n', node, 'link', 'add', 'vkbr200', 'type', 'bridge');
    ip('-n', node, 'link', 'set', 'vkbr200', 'up');
    ip('-n', node, 'link', 'add', 'vkgw200', 'link', 'vkbr200', 'address', '02:76:6b:00:00:c8', 'type', 'macvlan', 'mode', 'bridge');
    ip('-n', node, 'link', 'set', 'vkgw200', 'up');
    ip('-n', node, 'addr', 'add', '203.0.113.1/24', 'dev', 'vkgw200');
    driver = createDnsmasqDriver({ runDir, netns: node });
    vm1 = plug('a', '02:00:00:00:00:01');
  });

  after(async () => {
    unwatch?.();
    for (const vni of [200, 201]) await driver?.stop(vni).catch(() => undefined);
    for (const c of clients) await c.cleanup().catch(() => undefined);
    try {
      deleteNetns(node);
    } catch {
      // gone
    }
    if (runDir) rmSync(runDir, { recursive: true, force: true });
  });

  it('start: resolves once dnsmasq wrote its pidfile; list() names it with the spec hash; a second start is refused', async () => {
    unwatch = driver.watchLeases((vni) => changed.push(vni));
    const inst = await driver.start(SPEC, []);
    assert.equal(inst.vni, 200);
    assert.equal(inst.specHash, driver.specHash(SPEC));
    assert.equal(readFileSync(vniFiles(runDir, 200).pidFile, 'utf8').trim(), String(inst.pid));
    assert.deepEqual(await driver.list(), [inst]);
    // dnsmasq writes its pidfile before its start-up lines reach the log file: wait for them.
    await waitFor('dnsmasq\'s start-up lines in its log', () => /DHCP, sockets bound exclusively to interface vkgw200/.test(log()), 5_000, () => log());
    assert.match(log(), /DHCP, sockets bound exclusively to interface vkgw200/);
    // It runs in the node's namespace, as dnsmasq's unprivileged user, with its helper as root.
    assert.equal(readFileSync(`/proc/${inst.pid}/status`, 'utf8').match(/^Uid:\s+(\d+)/m)?.[1], '65534');
    await rejectsWith(driver.start(SPEC, []), 'AlreadyRunning', /VNI 200 already runs \(PID \d+\)/);
    assert.deepEqual(await driver.list(), [inst]);
  });

  it('a client gets a lease in the range; the script writes its lease file; readLeases returns it; watchLeases fired', async () => {
    const bound = await dhcp(vm1, { hostname: 'vm1', timeoutMs: 30_000 });
    vm1Ip = bound.ip;
    assert.ok(inRange(bound.ip), `lease ${bound.ip} outside the range`);
    assert.equal(bound.router, '203.0.113.1');
    assert.equal(bound.serverid, '203.0.113.1');
    assert.equal(bound.dns, '203.0.113.1');
    assert.equal(bound.domain, 'tenant.example');
    assert.equal(bound.lease, '3600');
    const t = nowS();
    const leases = await waitFor('the lease file of vm1', () => {
      const l = driver.readLeases(200);
      return l.length === 1 && l;
    });
    assert.deepEqual(leases, [{ mac: vm1.mac, ip: bound.ip, hostname: 'vm1', clientId: `01:${vm1.mac}`, expires: leases[0]!.expires }]);
    assert.ok(leases[0]!.expires > t + 3500 && leases[0]!.expires <= t + 3601, `expires ${leases[0]!.expires} vs now ${t}`);
    assert.deepEqual(readdirSync(vniFiles(runDir, 200).leaseDir), [vm1.mac]);
    await waitFor('watchLeases to report VNI 200', () => changed.includes(200), 5000);
    // The client applied it.
    assert.match(spawnSync('ip', ['-n', vm1.ns, '-4', '-o', 'addr', 'show', 'dev', 'eth0'], { encoding: 'utf8' }).stdout, new RegExp(`${bound.ip.replace(/\./g, '\\.')}/24`));
  });

  it('DNS answers <hostname>.<domain> with the client address; other names are refused, not forwarded', () => {
    assert.equal(answer(nslookup(vm1, 'vm1.tenant.example'), 'vm1.tenant.example'), vm1Ip);
    const other = nslookup(vm1, 'example.org');
    assert.match(other, /REFUSED/, other);
    assert.match(nslookup(vm1, 'nobody.tenant.example'), /NXDOMAIN/);
  });

  it('a renewal is ACKed and reported (with --leasefile-ro: an `old` with the new expiry)', async () => {
    const before = driver.readLeases(200)[0]!;
    await new Promise((r) => setTimeout(r, 1100)); // a new expiry second
    const again = await renew(vm1);
    assert.equal(again.event, 'renew');
    assert.equal(again.ip, vm1Ip);
    const after = await waitFor('the renewed expiry', () => {
      const l = driver.readLeases(200)[0];
      return l && l.expires > before.expires && l;
    });
    assert.equal(after.ip, vm1Ip);
  });

  it('stop, emptied lease dir, start with readLeases() as init: the lease survives (DNS knows it, renewal ACKed, nobody else gets the address)', async () => {
    const saved = driver.readLeases(200);
    assert.equal(saved.length, 1);
    const first = (await driver.list())[0]!;
    await driver.stop(200);
    assert.deepEqual(processesMentioning(vniFiles(runDir, 200).pidFile), []);
    assert.ok(!isAlive(refOf(first.pid)));
    assert.deepEqual(await driver.list(), []);
    // A new primary: the lease dir is gone, the leases come back from ZooKeeper.
    rmSync(vniFiles(runDir, 200).leaseDir, { recursive: true, force: true });
    const expired: ScriptLease = { mac: '02:00:00:00:00:99', ip: '203.0.113.150', expires: nowS() - 10 };
    const inst = await driver.start(SPEC, [...saved, expired]);
    assert.notEqual(inst.pid, first.pid);
    assert.deepEqual(driver.readLeases(200), saved); // at once: level state, the expired one left out
    assert.equal(readFileSync(vniFiles(runDir, 200).initFile, 'utf8'), `${saved[0]!.expires} ${vm1.mac} ${vm1Ip} vm1 01:${vm1.mac}\n`);
    // dnsmasq read it: the name resolves before any client said a word.
    assert.equal(answer(nslookup(vm1, 'vm1.tenant.example'), 'vm1.tenant.example'), vm1Ip);
    const again = await renew(vm1);
    assert.equal(again.event, 'renew');
    assert.equal(again.ip, vm1Ip);
    assert.equal(again.serverid, '203.0.113.1');
    assert.match(log(), new RegExp(`DHCPACK\\(vkgw200\\) ${vm1Ip.replace(/\./g, '\\.')} ${vm1.mac} vm1`));
    // Another client asking for that very address gets another one.
    const vm2 = plug('b', '02:00:00:00:00:02');
    const other = await dhcp(vm2, { requestIp: vm1Ip, timeoutMs: 30_000 });
    assert.notEqual(other.ip, vm1Ip);
    assert.ok(inRange(other.ip));
    await waitFor('two leases', () => driver.readLeases(200).length === 2);
    await stopUdhcpc(vm2);
  });

  it('a second driver object on the same run dir adopts the instance (list, stop); stop is idempotent and leaves no process', async () => {
    const [inst] = await driver.list();
    assert.ok(inst);
    const helper = processesMentioning(vniFiles(runDir, 200).pidFile).filter((p) => !p.startsWith(`${inst.pid}:`));
    assert.equal(helper.length, 1, `dnsmasq's script helper: ${helper.join('\n')}`);
    const adopter = createDnsmasqDriver({ runDir, netns: node });
    assert.deepEqual(await adopter.list(), [inst]);
    assert.deepEqual(adopter.readLeases(200), driver.readLeases(200));
    await adopter.stop(200);
    assert.deepEqual(processesMentioning(vniFiles(runDir, 200).pidFile), []);
    assert.deepEqual(processesMentioning(vniFiles(runDir, 200).script), []);
    assert.ok(!existsSync(vniFiles(runDir, 200).pidFile));
    assert.deepEqual(await driver.list(), []);
    await adopter.stop(200);
    await driver.stop(200);
    await driver.stop(4242);
    // A stale pidfile (a PID that is not this dnsmasq: our own) is removed, never signalled.
    writeFileSync(vniFiles(runDir, 200).pidFile, `${process.pid}\n`);
    assert.deepEqual(await driver.list(), []);
    assert.ok(!existsSync(vniFiles(runDir, 200).pidFile));
  });

  it('a missing interface: StartFailed naming dnsmasq’s complaint, no process left', async (t) => {
    const spec = { ...SPEC, vni: 202, interface: 'vkgw202' };
    const e = await rejectsWith(driver.start(spec, []), 'StartFailed', /dnsmasq for VNI 202 exited during start:[\s\S]*unknown interface vkgw202/);
    assert.match(e.log ?? '', /unknown interface vkgw202/);
    t.diagnostic(e.message);
    assert.deepEqual(processesMentioning(vniFiles(runDir, 202).pidFile), []);
    assert.deepEqual(await driver.list(), []);
  });

  it('a gateway address missing at start (with DNS): StartFailed, the listen address named', async (t) => {
    ip('-n', node, 'link', 'add', 'vkgw203', 'link', 'vkbr200', 'type', 'macvlan', 'mode', 'bridge');
    ip('-n', node, 'link', 'set', 'vkgw203', 'up');
    try {
      const spec: DnsmasqSpec = { vni: 203, interface: 'vkgw203', address: '192.0.2.1', prefixLength: 24, domain: 'three.example' };
      const e = await rejectsWith(driver.start(spec, []), 'StartFailed', /failed to create listening socket for 192\.0\.2\.1/);
      t.diagnostic(e.message);
      assert.deepEqual(processesMentioning(vniFiles(runDir, 203).pidFile), []);
    } finally {
      ip('-n', node, 'link', 'del', 'vkgw203');
    }
  });

  it('a hostname with shell metacharacters runs nothing', async () => {
    await driver.start(SPEC, driver.readLeases(200));
    const marker = join(tmpdir(), `vk-dnsmasq-pwned-${tag}`);
    const vm3 = plug('c', '02:00:00:00:00:03');
    const bound = await dhcp(vm3, { hostname: `a;touch ${marker}`, timeoutMs: 30_000 });
    assert.ok(inRange(bound.ip));
    const lease = await waitFor('the lease file of vm3', () => driver.readLeases(200).find((l) => l.mac === vm3.mac));
    assert.equal(lease.ip, bound.ip);
    // dnsmasq drops a name that is not a legal hostname before logging it or passing it on as the
    // script's $4 (it still exports the raw option as DNSMASQ_SUPPLIED_HOSTNAME, which the script
    // never reads; its own defence is tested above on crafted input).
    assert.equal(lease.hostname, undefined);
    assert.doesNotMatch(log(), /touch/);
    assert.ok(!existsSync(marker), `${marker} was created`);
    await stopUdhcpc(vm3);
  });

  it('two networks side by side in one namespace (each dnsmasq binds only its own device and address)', async () => {
    ip('-n', node, 'link', 'add', 'vkbr201', 'type', 'bridge');
    ip('-n', node, 'link', 'set', 'vkbr201', 'up');
    ip('-n', node, 'link', 'add', 'vkgw201', 'link', 'vkbr201', 'address', '02:76:6b:00:00:c9', 'type', 'macvlan', 'mode', 'bridge');
    ip('-n', node, 'link', 'set', 'vkgw201', 'up');
    ip('-n', node, 'addr', 'add', '198.51.100.1/24', 'dev', 'vkgw201');
    const spec201: DnsmasqSpec = { vni: 201, interface: 'vkgw201', address: '198.51.100.1', prefixLength: 24, range: { start: '198.51.100.100', end: '198.51.100.110' }, domain: 'other.example' };
    const b = await driver.start(spec201, []);
    assert.deepEqual((await driver.list()).map((i) => i.vni), [200, 201]);
    const sockets = inNode('ss', '-Hulpn').stdout;
    assert.match(sockets, /198\.51\.100\.1:53 .*pid=\d+/);
    assert.match(sockets, /203\.0\.113\.1:53 /);
    assert.doesNotMatch(sockets, /127\.0\.0\.1:53|0\.0\.0\.0:53 /);
    assert.equal(driver.readLeases(201).length, 0);
    await driver.stop(201);
    assert.ok(!isAlive(refOf(b.pid)));
    assert.deepEqual((await driver.list()).map((i) => i.vni), [200]);
  });

  it('the gateway address vanishes (its lifetime ran out): dnsmasq ignores DHCP on the device until it is back, then serves again unrestarted', async () => {
    const [inst] = await driver.list();
    assert.ok(inst);
    ip('-n', node, 'addr', 'change', '203.0.113.1/24', 'dev', 'vkgw200', 'valid_lft', '2', 'preferred_lft', '2');
    await waitFor('203.0.113.1 to expire', () => !inNode('ip', '-4', '-o', 'addr', 'show', 'dev', 'vkgw200').stdout.includes('203.0.113.1'), 10_000);
    // A renewal goes unanswered; busybox udhcpc then drops the address and starts over.
    const n = events(vm1).length;
    process.kill(vm1.udhcpc!.pid!, 'SIGUSR1');
    const outcome = await nextEvent(vm1, n, ['renew', 'bound', 'deconfig'], 30_000);
    assert.equal(outcome.event, 'deconfig', JSON.stringify(outcome));
    await waitFor('dnsmasq to log the packet it ignores', () => /DHCP packet received on vkgw200 which has no address/.test(log()), 10_000);
    // A new client gets nothing meanwhile.
    const vm4 = plug('d', '02:00:00:00:00:04');
    await assert.rejects(dhcp(vm4, { timeoutMs: 4000 }), /timed out/);
    assert.ok(isAlive(refOf(inst.pid)), 'dnsmasq still runs');
    // The address comes back: DHCP works again without a restart.
    ip('-n', node, 'addr', 'add', '203.0.113.1/24', 'dev', 'vkgw200');
    const back = await nextEvent(vm4, 0, ['bound'], 30_000);
    assert.ok(inRange(back.ip));
    const vm1Back = await nextEvent(vm1, n, ['bound'], 30_000);
    assert.equal(vm1Back.ip, vm1Ip, 'vm1 gets its address back: the lease is still known');
    assert.equal(answer(nslookup(vm1, 'vm1.tenant.example'), 'vm1.tenant.example'), vm1Ip, 'DNS answers again on the re-added address');
    assert.deepEqual((await driver.list()).map((i) => i.pid), [inst.pid]);
  });

  it('after everything: stop leaves no process of the run dir', async () => {
    await driver.stop(200);
    await driver.stop(200);
    assert.deepEqual(processesMentioning(runDir), []);
  });
});
