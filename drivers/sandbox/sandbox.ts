// A local sandbox cluster (`vk sandbox up|status|down`): ZooKeeper on loopback, N simulated
// hypervisors (network namespace + private libvirtd + FRR + `vk daemon` each) on a bridge of their own.
// This module starts and stops the processes and namespaces; cli/commands/sandbox.ts talks to the
// cluster (apply, convergence). Everything made is recorded in DIR/sandbox.json the moment it
// exists, and only what is recorded there is ever signalled or deleted.
import { removeVmSides } from './vm-side.ts';
import { readApiToken, startApi, writeApiToken } from './api.ts';
import { mkdirSync, readdirSync, readFileSync, rmSync, rmdirSync, symlinkSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import {
  createFabric,
  createNodeNetns,
  deleteNetns,
  FABRIC_BRIDGE,
  FABRIC_CIDR,
  netnsDirIsMount,
  netnsExists,
  pidsIn,
  unmountNetnsDirIfEmpty,
} from '../launch/netns.ts';
import { FRR_RUN_BASE, frrProblem, frrRunning, letFrrReach, removeOutsideFrrDirs, startNodeFrr, stopNodeFrr } from './frr.ts';
import { launchDaemon, launchHolder, launchLibvirtd, prepareNodeDir, qemuProcs, removeTestDomain, VK_BIN, waitHolder, waitLibvirtd, writeDaemonConfig } from './node.ts';
import { isAlive, killProcess, refOf, stopProcess, type ProcRef } from '../launch/process.ts';
import { nodeAddress, prefixFor, preferredPort, readState, STATE_VERSION, statePath, writeState, type NodeState, type SandboxDriver, type SandboxState } from './state.ts';
import { choosePort, launchZooKeeper, waitZooKeeper, zkServing, ZK_HOST } from './zookeeper.ts';

export const MIN_NODES = 1;
/** DIR/cluster-config.yaml: the examples' cluster config with the nodes beyond hv3 (`vk sandbox up --nodes 4`…). */
export const CLUSTER_CONFIG_FILE = 'cluster-config.yaml';
export const MAX_NODES = 16;

export interface StartOptions {
  dir: string;
  nodes: number;
  driver: SandboxDriver;
  /** The admin token of the sandbox's API server (made by the caller: api/auth.ts newToken). */
  apiToken: { token: string; line: string };
  daemonLogLevel?: string;
  /** Progress lines. */
  log?: (line: string) => void;
}

export function nodeNames(n: number): string[] {
  return Array.from({ length: n }, (_, i) => `hv${i + 1}`);
}

/** DIR/bin holds a `vk` link to this checkout's cli/vk.mjs, for PATH. */
export function binDir(dir: string): string {
  return join(dir, 'bin');
}

/**
 * Starts ZooKeeper, the fabric, and every node's namespace, libvirtd, FRR and daemon. On any failure
 * everything started so far is stopped again (log files stay for a look) and the error rethrown.
 */
export async function startSandbox(opts: StartOptions): Promise<SandboxState> {
  const log = opts.log ?? (() => undefined);
  const dir = resolve(opts.dir);
  if (opts.nodes < MIN_NODES || opts.nodes > MAX_NODES) throw new Error(`--nodes must be ${MIN_NODES}..${MAX_NODES}`);
  const noFrr = frrProblem();
  if (noFrr) throw new Error(noFrr);
  mkdirSync(dir, { recursive: true });
  const prefix = prefixFor(dir);
  // User frr must reach FRR's files; a DIR under a 0700 directory (/root) gets them in /run.
  const blocked = letFrrReach([dir]);
  const frrBase = blocked === undefined ? undefined : join(FRR_RUN_BASE, prefix);
  if (frrBase) log(`FRR: user frr cannot reach ${dir} (${blocked} is not searchable by others): FRR's files go to ${frrBase}`);
  const port = await choosePort(preferredPort(dir));
  const state: SandboxState = {
    version: STATE_VERSION,
    dir,
    prefix,
    driver: opts.driver,
    createdAt: new Date().toISOString(),
    zookeeper: { port, connectString: `${ZK_HOST}:${port}`, dir: join(dir, 'zookeeper') },
    fabric: { netns: `${prefix}-fab`, bridge: FABRIC_BRIDGE, cidr: FABRIC_CIDR, created: false },
    madeNetnsMount: !netnsDirIsMount(),
    nodes: nodeNames(opts.nodes).map((name, i) => ({
      name,
      netns: `${prefix}-${name}`,
      address: nodeAddress(i + 1),
      dir: join(dir, name),
      socket: join(dir, name, 'run', 'libvirt-sock'),
      ...(frrBase ? { frrDir: join(frrBase, name) } : {}),
    })),
    phase: 'starting',
  };
  for (const n of state.nodes) {
    if (Buffer.byteLength(n.socket) > 107) throw new Error(`--dir is too long: the libvirt socket path ${n.socket} exceeds the 107 bytes of a unix socket address`);
  }
  for (const ns of [state.fabric.netns, ...state.nodes.map((n) => n.netns)]) {
    if (netnsExists(ns)) throw new Error(`network namespace ${ns} exists already, but ${statePath(dir)} does not record it (left by a sandbox whose state file was deleted?); remove it with: ip netns del ${ns}`);
  }
  writeState(state);
  try {
    rmSync(state.zookeeper.dir, { recursive: true, force: true });
    mkdirSync(state.zookeeper.dir, { recursive: true });
    log(`ZooKeeper: starting on ${state.zookeeper.connectString}`);
    const zk = launchZooKeeper(state.zookeeper.dir, port);
    state.zookeeper.proc = zk.proc;
    writeState(state);

    log(`network: fabric ${state.fabric.netns} (${FABRIC_CIDR}), nodes ${state.nodes.map((n) => `${n.name}=${n.address}`).join(' ')}`);
    state.fabric.created = true; // recorded first: a half-made namespace is still deleted
    writeState(state);
    createFabric(state.fabric.netns);
    for (const node of state.nodes) {
      prepareNodeDir(node);
      if (node.frrDir === undefined) letFrrReach([dir, node.dir]);
      else {
        rmSync(node.frrDir, { recursive: true, force: true });
        mkdirSync(dirname(node.frrDir), { recursive: true, mode: 0o755 });
      }
      createNodeNetns(node.netns, state.fabric.netns, node.name, node.address);
    }

    log(`libvirtd: starting ${state.nodes.length} (${opts.driver === 'test' ? 'test driver' : 'QEMU/TCG guests'})`);
    for (const node of state.nodes) {
      node.libvirtd = launchLibvirtd(node);
      writeState(state);
    }
    // Before any daemon, as systemd starts FRR before vk-daemon: each node's daemon finds its FRR
    // serving and gives it the config rendered from the cluster config (none yet: an empty FRR).
    log(`FRR: starting zebra + bgpd on ${state.nodes.length} nodes`);
    await startAllFrr(state);
    await waitZooKeeper(zk, port);
    await Promise.all(state.nodes.map((node) => waitLibvirtd(node, node.libvirtd!)));
    if (opts.driver === 'test') {
      // Before any daemon: the holders keep each node's test-driver state for the node's whole
      // life, so a daemon that dies or restarts finds its guests as on a real hypervisor.
      log(`test-driver holders: starting ${state.nodes.length}`);
      for (const node of state.nodes) {
        node.holder = launchHolder(node);
        writeState(state);
      }
      await Promise.all(state.nodes.map((node) => waitHolder(node, node.holder!)));
      for (const node of state.nodes) await removeTestDomain(node);
    }

    log(`vk daemon: starting ${state.nodes.length}`);
    for (const node of state.nodes) {
      const cfg = writeDaemonConfig(node, {
        zk: state.zookeeper.connectString,
        driver: opts.driver,
        address: node.address,
        ...(opts.daemonLogLevel ? { logLevel: opts.daemonLogLevel } : {}),
      });
      node.daemon = launchDaemon(node, cfg);
      writeState(state);
    }
    mkdirSync(binDir(dir), { recursive: true });
    rmSync(join(binDir(dir), 'vk'), { force: true });
    symlinkSync(VK_BIN, join(binDir(dir), 'vk'));
    writeApiToken(dir, opts.apiToken);
    log('vk api: starting on loopback');
    await startApi(state);
    writeState(state);
    return state;
  } catch (error) {
    state.phase = 'failed';
    writeState(state);
    await teardown(state, { keepFiles: true, log });
    throw error;
  }
}

/**
 * Every node's FRR, concurrently; each recorded as soon as it runs. On a failure the others are
 * still waited for (and recorded, so the teardown stops them) before the first error is thrown.
 */
async function startAllFrr(state: SandboxState): Promise<void> {
  const results = await Promise.allSettled(
    state.nodes.map(async (node) => {
      node.frr = await startNodeFrr(node, { loadConfig: false });
      writeState(state);
    }),
  );
  const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) throw failed.reason;
}

export function markUp(state: SandboxState): void {
  state.phase = 'up';
  writeState(state);
}

export interface StopOptions {
  /** Keep logs and data (the state file goes anyway). */
  keepFiles?: boolean;
  log?: (line: string) => void;
}

export interface StopReport {
  stopped: Array<{ what: string; pid: number; how: string }>;
  netnsDeleted: string[];
  unmounted: string[];
  /** What could not be removed (should stay empty). */
  leftovers: string[];
}

/** Stops a sandbox by its state file; a directory without one has nothing to stop. */
export async function stopSandbox(dir: string, opts: StopOptions = {}): Promise<StopReport | undefined> {
  const state = readState(resolve(dir));
  if (!state) return undefined;
  return teardown(state, opts);
}

async function teardown(state: SandboxState, opts: StopOptions): Promise<StopReport> {
  const log = opts.log ?? (() => undefined);
  const report: StopReport = { stopped: [], netnsDeleted: [], unmounted: [], leftovers: [] };
  const stop = async (what: string, ref: ProcRef | undefined, graceMs: number): Promise<void> => {
    if (!ref) return;
    try {
      const how = await stopProcess(ref, graceMs);
      if (how !== 'notRunning') report.stopped.push({ what, pid: ref.pid, how });
    } catch (error) {
      report.leftovers.push(`${what} pid ${ref.pid}: ${(error as Error).message}`);
    }
  };

  // 0. The API server: nothing more comes in.
  await stop('vk api', state.api?.proc, 5_000);
  // 1. Daemons first, so nothing reacts to libvirtd or FRR going away; then FRR (SIGKILL, as the
  //    launcher stops it, waiting until every thread is gone).
  await Promise.all(state.nodes.map((n) => stop(`vk daemon ${n.name}`, n.daemon, 10_000)));
  await Promise.all(
    state.nodes.map(async (n) => {
      if (!n.frr) return;
      const running = (['zebra', 'bgpd'] as const).filter((d) => isAlive(n.frr![d]));
      try {
        await stopNodeFrr(n.frr);
        for (const d of running) report.stopped.push({ what: `FRR ${d} ${n.name}`, pid: n.frr[d].pid, how: 'killed' });
      } catch (error) {
        report.leftovers.push(`FRR of ${n.name}: ${(error as Error).message}`);
      }
    }),
  );
  // 2. The test-driver holders, then libvirtd (QEMU guests survive it, as on a real host), then the guests and anything else
  //    still running in the node's namespace: only processes we started can be in there.
  await Promise.all(state.nodes.map((n) => stop(`test-driver holder ${n.name}`, n.holder, 5_000)));
  await Promise.all(state.nodes.map((n) => stop(`libvirtd ${n.name}`, n.libvirtd, 15_000)));
  for (const n of state.nodes) {
    const refs = new Map<number, ProcRef>();
    for (const r of qemuProcs(n)) refs.set(r.pid, r);
    for (const pid of pidsIn(n.netns)) {
      const r = refOf(pid);
      if (r) refs.set(pid, r);
    }
    for (const r of refs.values()) {
      if (!isAlive(r)) continue;
      const what = describeProcess(r.pid, n.name);
      await killProcess(r);
      report.stopped.push({ what, pid: r.pid, how: 'killed' });
    }
  }
  // 3. ZooKeeper.
  await stop('ZooKeeper', state.zookeeper.proc, 10_000);
  // 4. Namespaces (their interfaces and bridges go with them), then /run/netns if ip made it for us.
  //    The VM sides first: nothing runs in them (udhcpc quits once it holds its lease), but check.
  for (const s of state.vmSides ?? []) {
    for (const pid of pidsIn(s.netns)) {
      const r = refOf(pid);
      if (r && isAlive(r)) {
        await killProcess(r);
        report.stopped.push({ what: describeProcess(pid, s.node), pid, how: 'killed' });
      }
    }
  }
  const sides = removeVmSides(state);
  report.netnsDeleted.push(...sides.deleted);
  report.leftovers.push(...sides.leftovers);
  const namespaces = [...state.nodes.map((n) => n.netns), ...(state.fabric.created ? [state.fabric.netns] : [])];
  for (const ns of namespaces) {
    if (!netnsExists(ns)) continue;
    try {
      deleteNetns(ns);
      report.netnsDeleted.push(ns);
    } catch (error) {
      report.leftovers.push(`netns ${ns}: ${(error as Error).message}`);
    }
  }
  if (state.madeNetnsMount && unmountNetnsDirIfEmpty()) report.unmounted.push('/run/netns');
  // 5. Check: nothing recorded may be left.
  const procs: Array<[string, ProcRef | undefined]> = [
    ['ZooKeeper', state.zookeeper.proc],
    ['vk api', state.api?.proc],
    ...state.nodes.flatMap((n): Array<[string, ProcRef | undefined]> => [
      [`libvirtd ${n.name}`, n.libvirtd],
      [`test-driver holder ${n.name}`, n.holder],
      [`vk daemon ${n.name}`, n.daemon],
      [`FRR zebra ${n.name}`, n.frr?.zebra],
      [`FRR bgpd ${n.name}`, n.frr?.bgpd],
    ]),
  ];
  for (const [what, ref] of procs) if (ref && isAlive(ref)) report.leftovers.push(`${what} pid ${ref.pid} still running`);
  for (const ns of [...namespaces, ...(state.vmSides ?? []).map((v) => v.netns)]) if (netnsExists(ns)) report.leftovers.push(`netns ${ns} still exists`);
  for (const s of report.stopped) log(`stopped ${s.what} (pid ${s.pid}, ${s.how})`);
  for (const ns of report.netnsDeleted) log(`deleted network namespace ${ns}`);
  for (const m of report.unmounted) log(`unmounted ${m}`);

  // 6. Files.
  if (report.leftovers.length === 0) {
    rmSync(statePath(state.dir), { force: true });
    if (!opts.keepFiles) {
      removeOutsideFrrDirs(state.nodes);
      for (const sub of ['zookeeper', 'bin', 'vm-sides', 'api', CLUSTER_CONFIG_FILE, ...state.nodes.map((n) => n.name)]) rmSync(join(state.dir, sub), { recursive: true, force: true });
      try {
        if (readdirSync(state.dir).length === 0) rmdirSync(state.dir);
      } catch {
        // not empty, or gone
      }
    }
  }
  return report;
}

/** "QEMU guest web1 on hv1" for a QEMU process, else the program and the node. */
function describeProcess(pid: number, node: string): string {
  let argv: string[] = [];
  try {
    argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
  } catch {
    // gone
  }
  const guest = argv[argv.indexOf('-name') + 1]?.match(/guest=([^,]+)/)?.[1];
  if (argv[0]?.includes('qemu-system') && guest) return `QEMU guest ${guest} on ${node}`;
  return `${argv[0] ?? 'process'} in ${node}'s namespace`;
}

export interface ProcHealth {
  pid: number | undefined;
  alive: boolean;
}

export interface NodeHealth {
  name: string;
  netns: string;
  netnsExists: boolean;
  address: string;
  libvirtd: ProcHealth;
  /** The test-driver holder; undefined with QEMU guests (which need none). */
  holder: ProcHealth | undefined;
  daemon: ProcHealth;
  /** zebra and bgpd; undefined when the state file records no FRR (a sandbox made before the sandbox ran FRR). */
  frr: { zebra: ProcHealth; bgpd: ProcHealth } | undefined;
  guests: number;
}

export interface SandboxHealth {
  state: SandboxState;
  zookeeper: ProcHealth & { serving: boolean };
  /** The API server; undefined for a sandbox made before it had one. */
  api: (ProcHealth & { url: string }) | undefined;
  fabric: boolean;
  nodes: NodeHealth[];
  /** Every recorded process runs and every namespace exists. */
  healthy: boolean;
  /** Nothing recorded runs or exists any more (a reboot, or everything was killed). */
  dead: boolean;
  /** ZooKeeper, the namespaces and every libvirtd run (and every node has its FRR recorded): dead daemons, holders and FRRs can be restarted in place. */
  restartable: boolean;
}

const health = (ref: ProcRef | undefined): ProcHealth => ({ pid: ref?.pid, alive: isAlive(ref) });

export async function inspectSandbox(dir: string): Promise<SandboxHealth | undefined> {
  const state = readState(resolve(dir));
  if (!state) return undefined;
  const zk = { ...health(state.zookeeper.proc), serving: false };
  if (zk.alive) zk.serving = await zkServing(state.zookeeper.port);
  const nodes = state.nodes.map((n) => ({
    name: n.name,
    netns: n.netns,
    netnsExists: netnsExists(n.netns),
    address: n.address,
    libvirtd: health(n.libvirtd),
    holder: state.driver === 'test' ? health(n.holder) : undefined,
    daemon: health(n.daemon),
    frr: n.frr ? { zebra: health(n.frr.zebra), bgpd: health(n.frr.bgpd) } : undefined,
    guests: qemuProcs(n).filter(isAlive).length,
  }));
  const fabric = netnsExists(state.fabric.netns);
  const frrUp = (n: NodeHealth): boolean => n.frr !== undefined && n.frr.zebra.alive && n.frr.bgpd.alive;
  const api = state.api ? { ...health(state.api.proc), url: state.api.url } : undefined;
  const healthy = (api?.alive ?? true) && zk.serving && fabric && nodes.every((n) => n.netnsExists && n.libvirtd.alive && (n.holder?.alive ?? true) && frrUp(n) && n.daemon.alive);
  const dead = !api?.alive && !zk.alive && !fabric && nodes.every((n) => !n.netnsExists && !n.libvirtd.alive && !n.holder?.alive && !n.frr?.zebra.alive && !n.frr?.bgpd.alive && !n.daemon.alive);
  // What restartNodes() can bring back in place: everything runs but some daemons, holders or
  // FRRs. A node without FRR recorded has a daemon config that names no FRR: it is built anew.
  const restartable = zk.serving && fabric && nodes.every((n) => n.netnsExists && n.libvirtd.alive && n.frr !== undefined);
  return { state, zookeeper: zk, api, fabric, nodes, healthy, dead, restartable };
}

export interface RestartOptions {
  /** Nodes to restart (default: all). */
  nodes?: readonly string[];
  /** Start only the daemons and holders that are not running; leave running ones alone (FRR is only ever started when down). */
  onlyDead?: boolean;
  log?: (line: string) => void;
}

export interface RestartReport {
  /** The API server, when it was down and was started again. */
  api?: { pid: number; url: string };
  /** Nodes whose daemon was (re)started, with the new PID. */
  daemons: Array<{ node: string; pid: number; was: 'running' | 'dead' }>;
  /** Nodes whose test-driver holder had died and was started again. */
  holders: Array<{ node: string; pid: number }>;
  /** Nodes whose FRR (zebra or bgpd) was down and was started again, loading its frr.conf. */
  frr: Array<{ node: string; zebra: number; bgpd: number }>;
}

/**
 * Restarts node daemons the way systemd restarts vk-daemon on a real hypervisor: the running
 * daemon (the one sandbox.json records) gets SIGTERM by PID (SIGKILL after 10 s), then a new one
 * starts with the same config file and is recorded. libvirtd and the guests are left alone; with the
 * test driver the node's holder keeps the guests (a dead holder is started again first, though the
 * test driver's state is gone if the daemon died with it: the new daemon then starts the node's VMs again).
 * A running FRR is left alone too; one that is down (zebra or bgpd) is started again before the
 * daemon, loading the frr.conf the daemon wrote, as systemd would restart frr.service.
 * Needs a sandbox whose ZooKeeper, namespaces and libvirtds run (SandboxHealth.restartable).
 */
export async function restartNodes(dir: string, opts: RestartOptions = {}): Promise<RestartReport> {
  const log = opts.log ?? (() => undefined);
  const health = await inspectSandbox(dir);
  if (!health) throw new Error(`no sandbox in ${resolve(dir)}`);
  if (!health.restartable) throw new Error(`the sandbox in ${health.state.dir} cannot be restarted in place: ${notRestartable(health)}`);
  const { state } = health;
  const names = opts.nodes && opts.nodes.length > 0 ? [...opts.nodes] : state.nodes.map((n) => n.name);
  const unknown = names.filter((name) => !state.nodes.some((n) => n.name === name));
  if (unknown.length > 0) throw new Error(`no node ${unknown.join(', ')} in the sandbox (it has ${state.nodes.map((n) => n.name).join(', ')})`);
  const report: RestartReport = { daemons: [], holders: [], frr: [] };
  for (const node of state.nodes.filter((n) => names.includes(n.name))) {
    if (state.driver === 'test' && !isAlive(node.holder)) {
      node.holder = launchHolder(node);
      writeState(state);
      await waitHolder(node, node.holder);
      await removeTestDomain(node); // the test driver started over: its "test" domain is back
      report.holders.push({ node: node.name, pid: node.holder.pid });
      log(`started the test-driver holder of ${node.name} (pid ${node.holder.pid})`);
    }
    if (!frrRunning(node)) {
      if (node.frr) await stopNodeFrr(node.frr); // the half that may still run
      node.frr = await startNodeFrr(node, { loadConfig: true });
      writeState(state);
      report.frr.push({ node: node.name, zebra: node.frr.zebra.pid, bgpd: node.frr.bgpd.pid });
      log(`started FRR of ${node.name} (zebra pid ${node.frr.zebra.pid}, bgpd pid ${node.frr.bgpd.pid}), loading its frr.conf`);
    }
    const running = isAlive(node.daemon);
    if (running && opts.onlyDead) continue;
    if (running) {
      const how = await stopProcess(node.daemon, 10_000);
      log(`stopped the vk daemon of ${node.name} (pid ${node.daemon!.pid}, ${how})`);
    }
    node.daemon = launchDaemon(node, join(node.dir, 'virtkeeper.yaml'));
    writeState(state);
    report.daemons.push({ node: node.name, pid: node.daemon.pid, was: running ? 'running' : 'dead' });
    log(`started the vk daemon of ${node.name} (pid ${node.daemon.pid})`);
  }
  // The API server, when it is down (as systemd would restart vk-api).
  if (state.api && !isAlive(state.api.proc) && readApiToken(state.dir) !== undefined) {
    await startApi(state);
    writeState(state);
    report.api = { pid: state.api.proc!.pid, url: state.api.url };
    log(`started vk api on ${state.api.url} (pid ${state.api.proc!.pid})`);
  }
  return report;
}

/** Why a sandbox cannot be restarted in place (SandboxHealth.restartable is false). */
export function notRestartable(health: SandboxHealth): string {
  const why: string[] = [];
  if (!health.zookeeper.serving) why.push('its ZooKeeper is down');
  if (!health.fabric) why.push(`its fabric namespace ${health.state.fabric.netns} is gone`);
  for (const n of health.nodes) {
    if (!n.netnsExists) why.push(`the namespace of ${n.name} is gone`);
    if (!n.libvirtd.alive) why.push(`the libvirtd of ${n.name} is down`);
    if (!n.frr) why.push(`${n.name} has no FRR recorded (made before the sandbox ran FRR)`);
  }
  return why.join('; ') || 'nothing is wrong';
}
