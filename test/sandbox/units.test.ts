// The sandbox's pieces that need no root: the README tour parser, the example manifests and the
// shipped config files (they must stay valid), the guest disk, the state helpers.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { parseAllDocuments } from 'yaml';
import { exampleBridges, envLine, nextCommands } from '../../cli/commands/sandbox.ts';
import { loadDaemonConfig } from '../../daemon/config.ts';
import { aptLine, frrDir, GUEST_GREETING, guestImage, nodeAddress, prefixFor, preferredPort, type NodeState, type SandboxState } from '../../drivers/sandbox/index.ts';
import { FRR_RUN_BASE, letFrrReach, removeOutsideFrrDirs } from '../../drivers/sandbox/frr.ts';
import { writeDaemonConfig } from '../../drivers/sandbox/node.ts';
import { frrIds } from '../../drivers/launch/frr.ts';
import { DAEMON_NODE_FLAGS } from '../../drivers/launch/daemon.ts';
import { decodeManifest, parseVmXml, splitVmManifestSpec, type ClusterConfig, type VmManifest } from '../../schemas/index.ts';
import { parseTour, printedCommands, readmeTour, REPO } from './helpers.ts';

const EXAMPLES = join(REPO, 'manifests', 'examples');

function exampleDocs(): Array<{ file: string; doc: unknown }> {
  const out: Array<{ file: string; doc: unknown }> = [];
  for (const f of readdirSync(EXAMPLES).filter((f) => /\.ya?ml$/.test(f)).sort()) {
    for (const d of parseAllDocuments(readFileSync(join(EXAMPLES, f), 'utf8'))) out.push({ file: f, doc: d.toJS() });
  }
  return out;
}

test('the example manifests decode: a ClusterConfig, a bridged and a managed network, VMs with varied placement', () => {
  const manifests = exampleDocs().map(({ file, doc }, i) => decodeManifest(doc, `${file}#${i}`));
  const kinds = manifests.map((m) => m.kind);
  assert.equal(kinds.filter((k) => k === 'ClusterConfig').length, 1);
  const networks = manifests.filter((m) => m.kind === 'Network');
  assert.deepEqual([...new Set(networks.map((n) => (n.spec as { type: string }).type))].sort(), ['bridged', 'managed'], 'both kinds of network');
  const vms = manifests.filter((m): m is VmManifest => m.kind === 'VM');
  assert.ok(vms.length >= 4, 'a handful of VMs');
  const selectors = new Set(vms.map((v) => v.spec.meta.nodeSelector));
  assert.ok(selectors.size >= 3, `different selectors, got ${[...selectors].join(',')}`);
  assert.ok(vms.some((v) => v.spec.meta.autostart) && vms.some((v) => !v.spec.meta.autostart), 'autostart both ways');
  assert.ok(vms.some((v) => v.spec.meta.nodeLimit.length > 0) && vms.some((v) => v.spec.meta.nodeLimit.length === 0), 'limits both ways');
  assert.ok(vms.some((v) => v.spec.state === 'stopped'), 'one VM is stopped');
  for (const vm of vms) {
    const { xmlFile } = splitVmManifestSpec(vm.spec);
    assert.ok(xmlFile, `${vm.metadata.name} has its XML in a file`);
    const xml = readFileSync(join(EXAMPLES, xmlFile), 'utf8');
    const info = parseVmXml(xml, vm.metadata.name);
    // libxml2 (libvirt) refuses "--" inside comments, which fast-xml-parser lets through.
    for (const c of xml.match(/<!--([\s\S]*?)-->/g) ?? []) assert.ok(!c.slice(4, -3).includes('--'), `${xmlFile}: "--" in a comment`);
    assert.equal(info.memoryKiB, 128 * 1024, `${vm.metadata.name}: 128 MiB`);
    assert.equal(info.serialLog, `/var/log/libvirt/qemu/${vm.metadata.name}-serial.log`);
    for (const br of info.bridges) assert.ok(exampleBridges().includes(br), `${vm.metadata.name}'s bridge ${br} is an example network's`);
    for (const node of [vm.spec.node, ...vm.spec.meta.nodeLimit]) assert.match(node, /^hv[123]$/, 'examples use hv1-hv3 only');
  }
  assert.deepEqual(exampleBridges(), ['vkbr100', 'vkbr200', 'vkbr300']);
});

test("the examples' cluster config: BGP EVPN with the sandbox's hv1-hv3 addresses, every coordinator among them", () => {
  const configs = exampleDocs()
    .map(({ file, doc }, i) => decodeManifest(doc, `${file}#${i}`))
    .filter((m) => m.kind === 'ClusterConfig');
  assert.equal(configs.length, 1);
  const spec = configs[0]!.spec as ClusterConfig;
  assert.ok(spec.bgp, 'a bgp section: the sandbox runs FRR on every node');
  assert.ok(spec.bgp.keepaliveS * 3 <= spec.bgp.holdS);
  assert.deepEqual(spec.nodes, { hv1: { clusterAddress: nodeAddress(1) }, hv2: { clusterAddress: nodeAddress(2) }, hv3: { clusterAddress: nodeAddress(3) } });
  for (const c of spec.coordinators) assert.ok(c in spec.nodes!, `coordinator ${c} has a cluster address`);
});

test("a sandbox node's daemon config names the node's FRR in DIR/<node>/frr", () => {
  const dir = mkdtempSync(join(tmpdir(), 'vk-units-'));
  try {
    const node: NodeState = { name: 'hv2', netns: 'vks0000-hv2', address: nodeAddress(2), dir: join(dir, 'hv2'), socket: join(dir, 'hv2', 'run', 'libvirt-sock') };
    mkdirSync(node.dir);
    const cfg = loadDaemonConfig(writeDaemonConfig(node, { zk: '127.0.0.1:2181', driver: 'test', address: node.address }), {}, {});
    assert.equal(frrDir(node), join(dir, 'hv2', 'frr'));
    assert.deepEqual(
      { enabled: cfg.frr.enabled, confDir: cfg.frr.confDir, vtySocket: cfg.frr.vtySocket, runDir: cfg.frr.runDir, hostname: cfg.frr.hostname },
      { enabled: true, confDir: frrDir(node), vtySocket: frrDir(node), runDir: frrDir(node), hostname: 'hv2' },
    );
    assert.equal(cfg.network.clusterAddress, nodeAddress(2));
    assert.equal(cfg.netns, 'vks0000-hv2');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('user frr can reach DIR/<node>/frr: the sandbox dirs get o+x; below a 0700 directory they are left alone and it is named', { skip: process.getuid?.() !== 0 || !frrIds() ? 'needs root and user frr' : false }, () => {
  const top = mkdtempSync(join(tmpdir(), 'vk-reach-')); // 0700, like a --dir made by mktemp -d
  try {
    const node = join(top, 'hv1');
    mkdirSync(node, { mode: 0o700 });
    chmodSync(node, 0o700);
    assert.equal(letFrrReach([top, node]), undefined);
    assert.equal(statSync(top).mode & 0o777, 0o701);
    assert.equal(statSync(node).mode & 0o777, 0o701);
    const inner = join(top, 'closed', 'sandbox');
    mkdirSync(inner, { recursive: true });
    chmodSync(join(top, 'closed'), 0o700);
    chmodSync(inner, 0o700);
    assert.equal(letFrrReach([inner]), join(top, 'closed'));
    assert.equal(statSync(inner).mode & 0o777, 0o700, 'nothing is opened up in vain');
  } finally {
    rmSync(top, { recursive: true, force: true });
  }
});

test('FRR dirs kept under /run/virtkeeper-sandbox go at teardown, with their emptied parents; others are left to DIR', { skip: process.getuid?.() !== 0 ? 'needs root (/run)' : false }, () => {
  const base = join(FRR_RUN_BASE, `vkstest${process.pid}`);
  const nodes = ['hv1', 'hv2'].map((name) => ({ name, netns: `x-${name}`, address: '198.51.100.1', dir: `/nonexistent/${name}`, socket: '/nonexistent/s', frrDir: join(base, name) }));
  for (const n of nodes) mkdirSync(join(n.frrDir, 'sub'), { recursive: true });
  try {
    removeOutsideFrrDirs([...nodes, { name: 'hv3', netns: 'x', address: '198.51.100.3', dir: '/nonexistent/hv3', socket: '/nonexistent/s' }]);
    assert.equal(existsSync(base), false);
  } finally {
    rmSync(base, { recursive: true, force: true });
  }
});

test('the shipped daemon config file loads, and the systemd unit runs the daemon with it and restarts it', () => {
  const cfg = loadDaemonConfig(join(REPO, 'manifests/systemd/virtkeeper.yaml'), {}, {});
  assert.equal(cfg.node, 'hv1');
  assert.equal(cfg.zookeeper.hosts.split(',').length, 3);
  assert.deepEqual(cfg.network, { enabled: true, clusterAddress: '198.51.100.1', group: 4244 });
  assert.equal(loadDaemonConfig(join(REPO, 'manifests/systemd/virtkeeper.yaml'), {}, { network: false }).network.enabled, false, '--no-network');
  const unit = readFileSync(join(REPO, 'manifests/systemd/vk-daemon.service'), 'utf8');
  assert.match(unit, /^ExecStart=.*cli\/vk\.mjs daemon --config \/etc\/virtkeeper\/virtkeeper\.yaml$/m);
  // The unit runs node with the daemon's flags, as the sandbox, the test rig and the benches do.
  const execStart = unit.match(/^ExecStart=\/usr\/bin\/node (.*) \/opt\/virtkeeper\/cli\/vk\.mjs daemon /m);
  assert.ok(execStart, 'ExecStart runs /usr/bin/node [flags] /opt/virtkeeper/cli/vk.mjs daemon');
  assert.deepEqual(execStart[1]!.split(' '), [...DAEMON_NODE_FLAGS]);
  assert.match(unit, /^Restart=always$/m);
  assert.match(unit, /^\[Install\]$/m);
});

test('the ZooKeeper ensemble config names three servers and a quorum-only setup', () => {
  const cfg = readFileSync(join(REPO, 'manifests/zookeeper/zoo.cfg'), 'utf8');
  const servers = cfg.match(/^server\.\d+=.+:2888:3888$/gm) ?? [];
  assert.equal(servers.length, 3);
  assert.match(cfg, /^standaloneEnabled=false$/m);
  assert.match(cfg, /^dataDir=\/var\/lib\/zookeeper$/m);
});

test('the guest disk: a boot sector that writes the greeting to COM1', () => {
  const img = guestImage();
  assert.equal(img.length, 1024 * 1024);
  assert.equal(img[510], 0x55);
  assert.equal(img[511], 0xaa);
  assert.ok(img.subarray(0, 512).toString('latin1').includes(GUEST_GREETING));
});

test('prefix and port are stable per directory and differ between directories', () => {
  assert.equal(prefixFor('/tmp/a'), prefixFor('/tmp/a/'));
  assert.notEqual(prefixFor('/tmp/a'), prefixFor('/tmp/b'));
  assert.match(prefixFor('/tmp/a'), /^vks[0-9a-f]{4}$/);
  const p = preferredPort('/tmp/a');
  assert.ok(p >= 21810 && p < 21990);
  assert.equal(preferredPort('/tmp/a'), p);
});

test('README tour parser: blocks of the tour section only, expected exit codes, --qemu marks, quoted #', () => {
  const md = [
    '## Before',
    '```sh',
    'not-this',
    '```',
    '## Five-minute tour',
    'text',
    '```sh',
    '# a comment line',
    'vk get vms',
    "vk diff -f x   # exit 1: differences",
    "echo '# not a comment' | grep -c '#'",
    'vk vm log web1 | grep hello   # needs --qemu',
    '```',
    '```',
    'not sh',
    '```',
    '## After',
    '```sh',
    'not-this-either',
    '```',
  ].join('\n');
  const tour = parseTour(md);
  assert.deepEqual(
    tour.map((t) => [t.command, t.expectExit, t.needsQemu]),
    [
      ['vk get vms', 0, false],
      ['vk diff -f x', 1, false],
      ["echo '# not a comment' | grep -c '#'", 0, false],
      ['vk vm log web1 | grep hello', 0, true],
    ],
  );
  const real = readmeTour();
  assert.ok(real.length >= 15, 'the README has a tour');
  for (const verb of ['vk get', 'vk apply', 'vk diff', 'vk plan', 'vk vm migrate', '--wait', 'vk node flush', 'vk node ready', 'vk vm log']) {
    assert.ok(real.some((l) => l.command.includes(verb)), `the tour uses ${verb}`);
  }
  assert.equal(real[real.length - 1]!.command, 'vk sandbox down', 'the tour cleans up last');
});

test('the lines up prints: an export line first, then commands, then vk sandbox down', () => {
  const state = {
    dir: '/tmp/x',
    driver: 'test',
    zookeeper: { connectString: '127.0.0.1:21850' },
    nodes: [{ name: 'hv1', socket: '/tmp/x/hv1/run/libvirt-sock' }],
  } as unknown as SandboxState;
  const env = envLine(state);
  assert.equal(env, 'export VK_ZK=127.0.0.1:21850 VK_SANDBOX_DIR=/tmp/x PATH="/tmp/x/bin:$PATH"');
  const output = ['…', 'Next, in this shell:', '', `  ${env}`, ...nextCommands(state).map((c) => `  ${c}`), '', 'When you are done:', '', '  vk sandbox down', '', 'The five-minute tour …'].join('\n');
  const lines = printedCommands(output).map((l) => l.command);
  assert.equal(lines[0], env);
  assert.equal(lines[lines.length - 1], 'vk sandbox down');
  assert.ok(lines.includes('vk get nodes'));
  assert.ok(lines.includes('vk describe node hv1'), 'the node with its BGP sessions');
  assert.ok(!lines.some((l) => l.includes('vk vm log')), 'no console commands on the test driver');
});

const NOBODY = ['--reuid=65534', '--regid=65534', '--clear-groups'];
/** Why the non-root test cannot run here: not root, or a checkout uid 65534 cannot read (e.g. under a 0700 mktemp dir). */
function nonRootSkip(): string | undefined {
  if (process.getuid?.() !== 0) return 'needs root to switch to an unprivileged user';
  if (spawnSync('setpriv', [...NOBODY, 'test', '-r', join(REPO, 'cli/vk.mjs')]).status !== 0) {
    const why = `!!! SKIPPED: uid 65534 cannot read this checkout (${REPO}); put it where every user can read it to run this test !!!`;
    console.error(why);
    return why;
  }
  return undefined;
}

test('vk sandbox up as a non-root user: exit 2 with what to do, nothing made', { skip: nonRootSkip() }, () => {
  const dir = join(tmpdir(), `vk-nonroot-${process.pid}`);
  const r = spawnSync('setpriv', [...NOBODY, process.execPath, join(REPO, 'cli/vk.mjs'), 'sandbox', 'up', '--dir', dir], {
    encoding: 'utf8',
    env: { ...process.env, HOME: tmpdir() },
  });
  assert.equal(r.status, 2, r.stderr);
  // With every package installed, the remaining problem is root; with some missing, the apt-get line.
  assert.match(r.stderr, /needs root|apt-get update && apt-get install -y --no-install-recommends /);
  assert.ok(!existsSync(dir), 'nothing was made');
});

test('the apt-get line a non-root user is told to run', () => {
  assert.equal(aptLine(['zookeeper', 'qemu-utils']), 'apt-get update && apt-get install -y --no-install-recommends zookeeper qemu-utils');
});
