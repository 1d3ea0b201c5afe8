// `vk sandbox up|status|down|env|netns`: a local cluster in one command. drivers/sandbox/ starts
// and stops the processes and namespaces; this file installs what is missing, applies the example
// manifests, waits for convergence (VMs and BGP EVPN) and tells people what to type next.
import { newToken } from '../../api/auth.ts';
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { InvalidArgumentError, Option, type Command } from 'commander';
import { parseAllDocuments, stringify as toYaml } from 'yaml';
import { ZkStore } from '../../drivers/zk/index.ts';
import {
  aptLine,
  apiLog,
  readApiToken,
  binDir,
  CLUSTER_CONFIG_FILE,
  defaultSandboxDir,
  ensureLibvirtUsers,
  frrProblem,
  holdTestDriver,
  inspectSandbox,
  installPackages,
  markUp,
  MAX_NODES,
  missingPackages,
  missingPrograms,
  netnsUsable,
  nodeFrrLogTail,
  plugVmSide,
  notRestartable,
  readState,
  REPO_ROOT,
  restartNodes,
  startSandbox,
  stopSandbox,
  tailFile,
  virshUri,
  VK_BIN,
  type RestartReport,
  type SandboxHealth,
  type SandboxState,
} from '../../drivers/sandbox/index.ts';
import { establishedPeers } from '../../reconcilers/frr/plan.ts';
import { ZkPaths, type NodeFrr } from '../../schemas/index.ts';
import { readAllNetworks, readConfig, readNetwork } from '../cluster.ts';
import { readPrimary } from '../primary.ts';
import { CliError, EXIT_USAGE } from '../errors.ts';

/** The example manifests the sandbox applies. */
export const EXAMPLES_DIR = join(REPO_ROOT, 'manifests', 'examples');
/** The examples place VMs on hv1, hv2 and hv3. */
const MIN_NODES = 3;

interface UpFlags {
  nodes: number;
  /** --nodes was given (not the default). */
  nodesGiven?: boolean;
  qemu?: boolean;
  dir?: string;
  timeout: number;
  logLevel?: string;
}

function parseNodes(value: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value) || n < MIN_NODES || n > MAX_NODES) {
    throw new InvalidArgumentError(`must be a whole number from ${MIN_NODES} (the examples use hv1-hv3) to ${MAX_NODES}`);
  }
  return n;
}

function parseTimeout(value: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value) || n < 1) throw new InvalidArgumentError('must be a whole number of seconds');
  return n;
}

const say = (line = ''): void => {
  process.stdout.write(`${line}\n`);
};

function dirOf(flags: { dir?: string }): string {
  return flags.dir ? resolve(flags.dir) : defaultSandboxDir();
}

/** Where the user's shell is (npm run changes the cwd to the package; INIT_CWD keeps the original). */
function userCwd(): string {
  return resolve(process.env.INIT_CWD ?? process.cwd());
}

/** A path as the user should type it: relative when their shell is in the repository, else absolute. */
function shown(path: string, trailingSlash = false): string {
  const p = userCwd() === REPO_ROOT ? relative(REPO_ROOT, path) || '.' : path;
  return trailingSlash && !p.endsWith('/') ? `${p}/` : p;
}

const shq = (s: string): string => (/^[A-Za-z0-9_@%+=:,./-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`);

/** The line that points a shell at the sandbox: `export VK_ZK=… PATH=…`. */
export function envLine(state: SandboxState): string {
  const parts = [`VK_ZK=${state.zookeeper.connectString}`];
  if (state.dir !== defaultSandboxDir({})) parts.push(`VK_SANDBOX_DIR=${shq(state.dir)}`);
  parts.push(`PATH="${binDir(state.dir)}:$PATH"`);
  // The API's address, and its token read from its file (the line itself shows no secret).
  if (state.api) parts.push(`VK_API=${state.api.url}`, `VK_API_TOKEN="$(cat ${shq(join(state.dir, 'api', 'token'))})"`);
  return `export ${parts.join(' ')}`;
}

/** What to type after `up`, each line a command that works as printed (in the shell the env line set up). */
export function nextCommands(state: SandboxState): string[] {
  const examples = shown(EXAMPLES_DIR, true);
  const lines = [
    'vk get nodes',
    'vk describe node hv1',
    'vk describe vm web1',
    `vk diff -f ${examples}`,
    'vk vm migrate web1 --node hv2 --wait',
    'vk vm unmigrate web1 --wait',
    'vk node flush hv3 --wait',
    'vk node ready hv3 --wait',
  ];
  if (state.driver === 'qemu') lines.push('vk vm log web1');
  lines.push(`virsh -c '${virshUri(state.nodes[0]!, state.driver)}' list --all`);
  lines.push('vk sandbox status');
  return lines;
}

/** The bridges (vkbr<VNI>) of the example manifests' networks: the daemons make them on every node. */
export function exampleBridges(dir = EXAMPLES_DIR): string[] {
  const bridges = new Set<string>();
  for (const f of readdirSync(dir).filter((f) => /\.ya?ml$/.test(f)).sort()) {
    for (const doc of parseAllDocuments(readFileSync(join(dir, f), 'utf8'))) {
      const v = doc.toJS() as { kind?: unknown; metadata?: { name?: unknown } } | null;
      if (v?.kind === 'Network' && v.metadata?.name !== undefined) bridges.add(`vkbr${String(v.metadata.name)}`);
    }
  }
  return [...bridges];
}

function vkEnv(state: SandboxState): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, VK_ZK: state.zookeeper.connectString };
  delete env.VK_ROOT;
  delete env.VK_AUTH;
  return env;
}

/** Runs `vk …` against the sandbox with the terminal as its output; returns the exit code. */
function runVk(state: SandboxState, args: string[]): number {
  const r = spawnSync(process.execPath, [VK_BIN, ...args], { stdio: 'inherit', env: vkEnv(state), cwd: REPO_ROOT });
  return r.status ?? 1;
}

// ------------------------------------------------------------------------------------ host checks

function checkHost(): void {
  const missing = missingPackages();
  const root = process.getuid?.() === 0;
  if (missing.length > 0) {
    if (!root) {
      throw new CliError(`sandbox: missing Debian packages: ${missing.join(' ')}. Run as root:\n  ${aptLine(missing)}`, EXIT_USAGE);
    }
    say(`installing ${missing.join(' ')} (apt-get)`);
    installPackages(missing);
  }
  if (!root) {
    throw new CliError('sandbox up needs root: it makes network and mount namespaces and runs libvirtd (run it with sudo)', EXIT_USAGE);
  }
  const programs = missingPrograms();
  if (programs.length > 0) throw new CliError(`sandbox: still missing after installation: ${programs.join(' ')}`);
  const netns = netnsUsable();
  if (netns) throw new CliError(`sandbox: network namespaces are not usable here: ${netns}`);
  // Not installed by the sandbox: the frr package starts FRR on the host itself (frr.service).
  const frr = frrProblem();
  if (frr) throw new CliError(`sandbox: ${frr}`, EXIT_USAGE);
  ensureLibvirtUsers();
}

// -------------------------------------------------------------------------------- cluster waits

async function withStore<T>(state: SandboxState, fn: (store: ZkStore, paths: ZkPaths) => Promise<T>): Promise<T> {
  const store = await ZkStore.connect({ connectString: state.zookeeper.connectString, sessionTimeoutMs: 10_000, connectTimeoutMs: 5_000 });
  try {
    return await fn(store, new ZkPaths());
  } finally {
    await store.close().catch(() => undefined);
  }
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function daemonProblem(health: SandboxHealth | undefined): string | undefined {
  if (!health) return 'the state file disappeared';
  for (const n of health.nodes) {
    if (!n.daemon.alive) return `vk daemon of ${n.name} exited:\n${tailFile(join(health.state.dir, n.name, 'daemon.log'))}`;
    if (n.frr && !(n.frr.zebra.alive && n.frr.bgpd.alive)) {
      const gone = (['zebra', 'bgpd'] as const).filter((d) => !n.frr![d].alive).join(' and ');
      return `FRR ${gone} of ${n.name} exited:\n${nodeFrrLogTail(health.state.nodes.find((s) => s.name === n.name)!)}`;
    }
    if (!n.libvirtd.alive) return `libvirtd of ${n.name} exited:\n${tailFile(join(health.state.dir, n.name, 'log', 'libvirtd.log'))}`;
    if (n.holder && !n.holder.alive) return `the test-driver holder of ${n.name} exited:\n${tailFile(join(health.state.dir, n.name, 'holder.log'))}`;
  }
  if (!health.zookeeper.alive) return `ZooKeeper exited:\n${tailFile(join(health.state.zookeeper.dir, 'zookeeper.log'))}`;
  return undefined;
}

/**
 * Waits until every node's daemon (or those of `only`) has registered: its alive znode exists and
 * names the PID sandbox.json records (after a crash the old session's znode lingers for a while).
 */
async function waitDaemonsAlive(state: SandboxState, deadline: number, only?: readonly string[]): Promise<void> {
  const nodes = only ? state.nodes.filter((n) => only.includes(n.name)) : state.nodes;
  await withStore(state, async (store, paths) => {
    for (;;) {
      const alive = await Promise.all(
        nodes.map(async (n) => {
          const got = await store.get(paths.nodeAlive(n.name));
          if (!got) return null;
          const pid = (JSON.parse(got.data.toString('utf8')) as { pid?: number }).pid;
          return pid === n.daemon?.pid ? n.name : null;
        }),
      );
      if (alive.every((a) => a !== null)) return;
      const problem = daemonProblem(await inspectSandbox(state.dir));
      if (problem) throw new CliError(problem);
      if (Date.now() > deadline) {
        const missing = nodes.filter((_, i) => alive[i] === null).map((n) => n.name);
        throw new CliError(`sandbox: the daemons of ${missing.join(', ')} did not register in ZooKeeper in time; see ${state.dir}/<node>/daemon.log`);
      }
      await sleep(100);
    }
  });
}

interface VmProgress {
  name: string;
  done: boolean;
  detail: string;
}

const EXPECTED_PHASE: Record<string, string> = { running: 'Running', stopped: 'Stopped', disabled: 'Disabled' };

/** Converged: the status of every VM acted on its spec's current version and reached the phase the spec asks for, on the spec's node. */
export async function vmProgress(store: ZkStore, paths: ZkPaths): Promise<VmProgress[]> {
  const names = (await store.children(paths.vms)) ?? [];
  return Promise.all(
    names.sort().map(async (name): Promise<VmProgress> => {
      const [spec, status] = await Promise.all([store.get(paths.vmSpec(name)), store.get(paths.vmStatus(name))]);
      if (!spec) return { name, done: false, detail: 'no spec' };
      const s = JSON.parse(spec.data.toString('utf8')) as { state?: string; node?: string };
      const want = EXPECTED_PHASE[s.state ?? 'running'] ?? 'Running';
      if (!status) return { name, done: false, detail: `no status yet (wants ${want} on ${s.node})` };
      const st = JSON.parse(status.data.toString('utf8')) as {
        phase?: string;
        node?: string;
        observedGeneration?: number;
        conditions?: Array<{ status?: string; reason?: string; message?: string }>;
      };
      const done = st.phase === want && st.node === s.node && st.observedGeneration === spec.version;
      const failing = st.phase === 'Failed' ? st.conditions?.find((c) => c.status === 'False' || /Failed/.test(c.reason ?? '')) : undefined;
      const why = failing ? `: ${failing.reason ?? ''} ${(failing.message ?? '').split('\n')[0]!.slice(0, 160)}` : '';
      return { name, done, detail: `${st.phase} on ${st.node}, wants ${want} on ${s.node}${why}` };
    }),
  );
}

interface BgpProgress {
  name: string;
  done: boolean;
  detail: string;
  established: number;
}

/**
 * BGP EVPN settled on every node: its FRR runs the config rendered from the cluster config
 * (status.frr InSync), every session it should have is Established, and every managed network's
 * VNI has every other node of the cluster config as a remote VTEP (the flood entries of its
 * VXLAN come from that). Undefined when the cluster config has no `bgp` (the daemons leave FRR alone).
 */
export async function bgpProgress(store: ZkStore, paths: ZkPaths, nodes: readonly string[]): Promise<BgpProgress[] | undefined> {
  const { value: config } = await readConfig(store, paths);
  if (!config.bgp) return undefined;
  const addresses = Object.entries(config.nodes ?? {}).map(([name, n]) => ({ name, address: n.clusterAddress }));
  const vnis = (await readAllNetworks(store, paths)).filter((n) => n.spec?.value.type === 'managed').map((n) => Number(n.vni));
  return Promise.all(
    nodes.map(async (name): Promise<BgpProgress> => {
      const status = await store.get(paths.nodeStatus(name));
      const frr = status ? (JSON.parse(status.data.toString('utf8')) as { frr?: NodeFrr }).frr : undefined;
      if (!frr) return { name, done: false, detail: 'no FRR status yet', established: 0 };
      const up = establishedPeers(frr);
      if (frr.state !== 'InSync') return { name, done: false, detail: `FRR ${frr.state}${frr.message ? `: ${frr.message.split('\n')[0]!.slice(0, 160)}` : ''}`, established: up };
      const down = frr.peers.filter((p) => p.state !== 'Established');
      if (frr.peers.length === 0 || down.length > 0) {
        const which = down.map((p) => `${p.node ?? p.address} ${p.state}`).join(', ');
        return { name, done: false, detail: `BGP ${up}/${frr.peers.length} Established${which ? ` (${which})` : ''}`, established: up };
      }
      const others = addresses.filter((a) => a.name !== name);
      const lacking = vnis.flatMap((vni) => {
        const known = frr.vnis.find((v) => v.vni === vni)?.remoteVteps ?? [];
        const missing = others.filter((o) => !known.includes(o.address)).map((o) => o.name);
        return missing.length > 0 ? [`VNI ${vni} has no VTEP of ${missing.join(', ')} yet`] : [];
      });
      if (lacking.length > 0) return { name, done: false, detail: lacking.join(', '), established: up };
      return { name, done: true, detail: `BGP ${up}/${frr.peers.length} Established`, established: up };
    }),
  );
}

/** The primary coordinator in phase primary (undefined: the config names no coordinator, none is wanted). */
async function primaryProgress(store: ZkStore, paths: ZkPaths): Promise<{ done: boolean; detail: string } | undefined> {
  const config = await readConfig(store, paths);
  if (config.value.coordinators.length === 0) return undefined;
  const primary = await readPrimary(store, paths);
  if (primary.problem !== undefined) return { done: false, detail: `primary coordinator: /config/primary cannot be read (${primary.problem})` };
  const r = primary.znode?.value;
  if (!r) return { done: false, detail: 'no primary coordinator yet' };
  return r.phase === 'primary' ? { done: true, detail: `primary coordinator ${r.node}` } : { done: false, detail: `primary coordinator: phase ${r.phase}` };
}

async function waitConverged(state: SandboxState, deadline: number): Promise<void> {
  const nodes = state.nodes.map((n) => n.name);
  await withStore(state, async (store, paths) => {
    let lastReport = 0;
    let lastText = '';
    for (;;) {
      const [progress, bgp, primary] = await Promise.all([vmProgress(store, paths), bgpProgress(store, paths, nodes), primaryProgress(store, paths)]);
      const pending = progress.filter((p) => !p.done);
      const bgpPending = (bgp ?? []).filter((b) => !b.done);
      if (progress.length > 0 && pending.length === 0 && bgpPending.length === 0 && primary?.done !== false) {
        const sessions = (bgp ?? []).reduce((sum, b) => sum + b.established, 0);
        say(`converged: ${progress.length} VMs${bgp ? `; BGP EVPN on ${bgp.length} nodes, ${sessions} sessions Established` : ''}${primary ? `; ${primary.detail}` : ''}`);
        return;
      }
      const problem = daemonProblem(await inspectSandbox(state.dir));
      if (problem) throw new CliError(problem);
      const waiting = [...pending.map((p) => `${p.name}: ${p.detail}`), ...bgpPending.map((b) => `${b.name} FRR: ${b.detail}`), ...(primary && !primary.done ? [primary.detail] : [])];
      if (Date.now() > deadline) {
        throw new CliError(
          `sandbox: not converged in time; still waiting for ${waiting.join('; ')}.\n` +
            `The sandbox keeps running: look at ${state.dir}/<node>/daemon.log, ${state.dir}/<node>/frr/bgpd.log, \`vk sandbox status\`; remove it with \`vk sandbox down\`.`,
        );
      }
      const report = waiting.join('; ');
      if (report !== lastText || Date.now() - lastReport > 15_000) {
        lastReport = Date.now();
        lastText = report;
        const bgpLine = bgp ? `, BGP EVPN ${bgp.length - bgpPending.length}/${bgp.length} nodes` : '';
        say(`converging: ${progress.length - pending.length}/${progress.length} VMs${bgpLine}${waiting.length > 0 && waiting.length <= 6 ? ` (${report})` : ''}`);
      }
      await sleep(200);
    }
  });
}

/**
 * The examples' cluster config lists hv1-hv3 (`nodes`, their cluster addresses); a sandbox with
 * more nodes adds the others', so the coordinators peer with them too. Writes DIR/cluster-config.yaml
 * (the examples' ClusterConfig plus those nodes) and applies it.
 */
function addNodeAddresses(state: SandboxState): void {
  let manifest: { kind?: unknown; spec?: { nodes?: Record<string, { clusterAddress: string }> } } | undefined;
  for (const f of readdirSync(EXAMPLES_DIR).filter((f) => /\.ya?ml$/.test(f)).sort()) {
    for (const doc of parseAllDocuments(readFileSync(join(EXAMPLES_DIR, f), 'utf8'))) {
      const v = doc.toJS() as typeof manifest | null;
      if (v?.kind === 'ClusterConfig') manifest = v;
    }
  }
  if (!manifest?.spec) return;
  const listed = manifest.spec.nodes ?? {};
  const extra = state.nodes.filter((n) => !(n.name in listed));
  if (extra.length === 0) return;
  const spec = { ...manifest.spec, nodes: { ...listed, ...Object.fromEntries(extra.map((n) => [n.name, { clusterAddress: n.address }])) } };
  const file = join(state.dir, CLUSTER_CONFIG_FILE);
  writeFileSync(file, `# ${shown(join(EXAMPLES_DIR, 'cluster.yaml'))} with the cluster addresses of ${extra.map((n) => n.name).join(', ')} (written by vk sandbox up)\n${toYaml({ ...manifest, spec })}`);
  say(`cluster config: adding ${extra.map((n) => `${n.name} ${n.address}`).join(', ')} to nodes, so the coordinators peer with them too (vk apply -f ${shown(file)})`);
  if (runVk(state, ['apply', '-f', file]) !== 0) throw new CliError(`sandbox: vk apply -f ${file} failed (see above)`);
}

// ----------------------------------------------------------------------------------------- verbs

function printNext(state: SandboxState): void {
  const token = readApiToken(state.dir);
  if (state.api && token) {
    say();
    say(`REST API: ${state.api.url}  (OpenAPI at ${state.api.url}/openapi.json; reference: api/README.md)`);
    say(`admin token: ${token}  (kept in ${join(state.dir, 'api', 'token')}; the env line below sets VK_API and VK_API_TOKEN)`);
  }
  say();
  say('Next, in this shell:');
  say();
  say(`  ${envLine(state)}`);
  for (const line of nextCommands(state)) say(`  ${line}`);
  say();
  say('When you are done:');
  say();
  say(`  vk sandbox down`);
  say();
  say(`The five-minute tour in README.md goes on from here. Logs: ${state.dir}/<node>/daemon.log, ${state.dir}/<node>/log/libvirtd.log, ${state.dir}/<node>/frr/bgpd.log, ${state.zookeeper.dir}/zookeeper.log`);
}

async function up(flags: UpFlags): Promise<void> {
  const dir = dirOf(flags);
  const driver = flags.qemu ? 'qemu' : 'test';
  const deadline = Date.now() + flags.timeout * 1000;
  checkHost();

  let existing = await inspectSandbox(dir);
  if (existing && !existing.healthy && existing.restartable && existing.state.phase === 'up') {
    // Only daemons or test-driver holders are down (killed, crashed): start them again in place,
    // as systemd would on a real hypervisor, instead of building a new cluster without the guests.
    const report = await restartNodes(dir, { onlyDead: true, log: say });
    await waitRestarted(report, dir, deadline);
    existing = await inspectSandbox(dir);
  }
  if (existing) {
    if (existing.healthy && existing.state.phase === 'up') {
      // Only what was asked for explicitly must match: `npm run sandbox` finds any running sandbox fine.
      const nodesDiffer = flags.nodesGiven && existing.state.nodes.length !== flags.nodes;
      const driverDiffers = flags.qemu === true && existing.state.driver !== 'qemu';
      if (nodesDiffer || driverDiffers) {
        throw new CliError(
          `sandbox: a sandbox already runs in ${dir} (${existing.state.nodes.length} nodes, ${existing.state.driver} driver); \`vk sandbox down\` first`,
        );
      }
      say(`the sandbox in ${dir} is already up`);
      if (runVk(existing.state, ['get', 'vms', '-o', 'wide']) !== 0) process.exitCode = 1;
      printNext(existing.state);
      return;
    }
    say(`removing what is left of an earlier sandbox in ${dir}`);
    const report = await stopSandbox(dir, { log: (l) => say(`  ${l}`) });
    if (report && report.leftovers.length > 0) throw new CliError(`sandbox: could not remove the earlier sandbox: ${report.leftovers.join('; ')}`);
  }

  // Ctrl-C (or a kill) half-way: take down what was started.
  let interrupted = false;
  const onSignal = (sig: NodeJS.Signals): void => {
    if (interrupted) return;
    interrupted = true;
    say(`\n${sig}: removing what was started`);
    void stopSandbox(dir, { keepFiles: true, log: (l) => say(`  ${l}`) }).finally(() => process.exit(130));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    const state = await startSandbox({
      dir,
      nodes: flags.nodes,
      driver,
      apiToken: newToken('admin', 'sandbox'),
      ...(flags.logLevel ? { daemonLogLevel: flags.logLevel } : {}),
      log: say,
    });
    if (interrupted) return;
    try {
      await waitDaemonsAlive(state, deadline);
      say(`applying ${shown(EXAMPLES_DIR, true)}`);
      if (runVk(state, ['apply', '-f', EXAMPLES_DIR]) !== 0) throw new CliError('sandbox: vk apply of the example manifests failed (see above)');
      addNodeAddresses(state);
    } catch (error) {
      // A cluster that never got going is no use: take it down, keep the logs.
      say(`${error instanceof Error ? error.message : String(error)}\nremoving what was started (logs stay in ${dir})`);
      await stopSandbox(dir, { keepFiles: true, log: (l) => say(`  ${l}`) });
      throw new CliError('sandbox: up failed (see above)');
    }
    // Not converged in time: the cluster stays up for a look (waitConverged says how to remove it).
    await waitConverged(state, deadline);
    markUp(state);
    say();
    if (runVk(state, ['get', 'vms', '-o', 'wide']) !== 0) process.exitCode = 1;
    printNext(state);
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

/** Waits until the daemons a restart started have registered in ZooKeeper. */
async function waitRestarted(report: RestartReport, dir: string, deadline: number): Promise<void> {
  const state = readState(dir);
  if (!state || report.daemons.length === 0) return;
  await waitDaemonsAlive(state, deadline, report.daemons.map((d) => d.node));
  say(`restarted: ${report.daemons.map((d) => `${d.node} (pid ${d.pid})`).join(', ')}`);
}

async function restart(nodes: string[], flags: { dir?: string; timeout: number }): Promise<void> {
  const dir = dirOf(flags);
  const health = await inspectSandbox(dir);
  if (!health) throw new CliError(`no sandbox in ${dir} (vk sandbox up starts one)`);
  const unknown = nodes.filter((name) => !health.state.nodes.some((n) => n.name === name));
  if (unknown.length > 0) throw new CliError(`sandbox restart: no node ${unknown.join(', ')} (the sandbox has ${health.state.nodes.map((n) => n.name).join(', ')})`, EXIT_USAGE);
  if (!health.restartable) throw new CliError(`sandbox restart: the sandbox in ${dir} cannot be restarted in place (${notRestartable(health)}); \`vk sandbox up\` builds it again`);
  const report = await restartNodes(dir, { nodes, log: say });
  await waitRestarted(report, dir, Date.now() + flags.timeout * 1000);
}

interface StatusFlags {
  dir?: string;
  output?: 'json';
}

interface ClusterView {
  nodes: Array<{ name: string; alive: boolean; daemonState?: string; domainState?: string }>;
  vms: Record<string, number>;
  error?: string;
}

async function clusterView(state: SandboxState): Promise<ClusterView> {
  try {
    return await withStore(state, async (store, paths) => {
      const nodes = await Promise.all(
        state.nodes.map(async (n) => {
          const [alive, status] = await Promise.all([store.exists(paths.nodeAlive(n.name)), store.get(paths.nodeStatus(n.name))]);
          const s = status ? (JSON.parse(status.data.toString('utf8')) as { daemonState?: string; domainState?: string }) : {};
          return { name: n.name, alive: alive !== null, ...(s.daemonState ? { daemonState: s.daemonState } : {}), ...(s.domainState ? { domainState: s.domainState } : {}) };
        }),
      );
      const vms: Record<string, number> = {};
      for (const name of (await store.children(paths.vms)) ?? []) {
        const status = await store.get(paths.vmStatus(name));
        const phase = status ? ((JSON.parse(status.data.toString('utf8')) as { phase?: string }).phase ?? '?') : 'NoStatus';
        vms[phase] = (vms[phase] ?? 0) + 1;
      }
      return { nodes, vms };
    });
  } catch (error) {
    return { nodes: [], vms: {}, error: (error as Error).message };
  }
}

async function status(flags: StatusFlags): Promise<void> {
  const dir = dirOf(flags);
  const h = await inspectSandbox(dir);
  if (!h) {
    if (flags.output === 'json') say(JSON.stringify({ dir, running: false }));
    else say(`no sandbox in ${dir} (vk sandbox up starts one)`);
    process.exitCode = 1;
    return;
  }
  const view = h.zookeeper.serving ? await clusterView(h.state) : undefined;
  const healthy = h.healthy && view !== undefined && view.error === undefined && view.nodes.every((n) => n.alive);
  if (flags.output === 'json') {
    say(JSON.stringify({ dir, running: true, healthy, phase: h.state.phase, driver: h.state.driver, zookeeper: h.zookeeper, connectString: h.state.zookeeper.connectString, api: h.api ?? null, fabric: h.fabric, nodes: h.nodes, cluster: view ?? null }, null, 2));
    process.exitCode = healthy ? 0 : 1;
    return;
  }
  const ok = (b: boolean): string => (b ? 'ok' : 'DOWN');
  say(`sandbox ${dir}: ${h.state.nodes.length} nodes, ${h.state.driver === 'test' ? 'libvirt test driver' : 'QEMU/TCG guests'}, ${h.state.phase}${healthy ? '' : ' (DEGRADED)'}`);
  say(`zookeeper  ${h.state.zookeeper.connectString}  pid ${h.zookeeper.pid ?? '-'}  ${h.zookeeper.serving ? 'serving' : 'DOWN'}`);
  if (h.api) say(`api        ${h.api.url}  pid ${h.api.pid ?? '-'}  ${h.api.alive ? 'serving' : `DOWN (log: ${apiLog(h.state)})`}`);
  say(`fabric     netns ${h.state.fabric.netns} ${ok(h.fabric)}`);
  const rows = [['NODE', 'NETNS', 'ADDRESS', 'LIBVIRTD', 'HOLDER', 'DAEMON', 'ZEBRA', 'BGPD', 'GUESTS', 'ALIVE', 'STATE']];
  for (const n of h.nodes) {
    const zk = view?.nodes.find((v) => v.name === n.name);
    rows.push([
      n.name,
      `${n.netns} ${ok(n.netnsExists)}`,
      n.address,
      `pid ${n.libvirtd.pid ?? '-'} ${ok(n.libvirtd.alive)}`,
      n.holder ? `pid ${n.holder.pid ?? '-'} ${ok(n.holder.alive)}` : '-',
      `pid ${n.daemon.pid ?? '-'} ${ok(n.daemon.alive)}`,
      `pid ${n.frr?.zebra.pid ?? '-'} ${ok(n.frr?.zebra.alive ?? false)}`,
      `pid ${n.frr?.bgpd.pid ?? '-'} ${ok(n.frr?.bgpd.alive ?? false)}`,
      h.state.driver === 'qemu' ? String(n.guests) : '-',
      zk ? (zk.alive ? 'yes' : 'no') : '?',
      zk ? `${zk.daemonState ?? '-'}/${zk.domainState ?? '-'}` : '?',
    ]);
  }
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  for (const r of rows) say(r.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd());
  if (view?.error) say(`ZooKeeper: ${view.error}`);
  else if (view) say(`vms: ${Object.entries(view.vms).map(([phase, n]) => `${n} ${phase}`).join(', ') || 'none'}`);
  say(envLine(h.state));
  process.exitCode = healthy ? 0 : 1;
}

async function down(flags: { dir?: string; keepLogs?: boolean }): Promise<void> {
  const dir = dirOf(flags);
  if (!readState(dir)) {
    say(`no sandbox in ${dir}: nothing to stop`);
    return;
  }
  const report = await stopSandbox(dir, { keepFiles: flags.keepLogs === true, log: say });
  if (report && report.leftovers.length > 0) throw new CliError(`sandbox down: could not remove: ${report.leftovers.join('; ')}`);
  say(`sandbox in ${dir} removed`);
}

/** The node's network namespace, for `ip netns exec "$(vk sandbox netns hv1)" …`. */
function netnsOf(node: string, flags: { dir?: string }): void {
  const dir = dirOf(flags);
  const state = readState(dir);
  if (!state) throw new CliError(`no sandbox in ${dir} (vk sandbox up starts one)`);
  const n = state.nodes.find((x) => x.name === node);
  if (!n) throw new CliError(`sandbox netns: no node ${node} (the sandbox has ${state.nodes.map((x) => x.name).join(', ')})`, EXIT_USAGE);
  say(n.netns);
}

/**
 * A VM side on `node`'s bridge of network `vni` that takes a DHCP lease from the primary
 * coordinator: prints its namespace (stdout, for `NS=$(…)`) and the lease (stderr).
 */
async function vmSide(node: string, flags: { dir?: string; network: string }): Promise<void> {
  const dir = dirOf(flags);
  const state = readState(dir);
  if (!state) throw new CliError(`no sandbox in ${dir} (vk sandbox up starts one)`);
  if (!state.nodes.some((x) => x.name === node)) throw new CliError(`sandbox vm-side: no node ${node} (the sandbox has ${state.nodes.map((x) => x.name).join(', ')})`, EXIT_USAGE);
  const vni = Number(flags.network);
  const network = await withStore(state, (store, paths) => readNetwork(store, paths, flags.network));
  const spec = network.spec?.value;
  if (!spec) throw new CliError(`sandbox vm-side: --network ${flags.network}: no such network${network.invalidSpec ? ' (its spec is unreadable)' : ''}`, EXIT_USAGE);
  if (spec.type !== 'managed' || spec.dhcp4 === undefined) throw new CliError(`sandbox vm-side: --network ${flags.network}: not a managed network with dhcp4 (nobody would answer)`, EXIT_USAGE);
  const mtu = spec.mtu;
  let side;
  try {
    side = plugVmSide(state, node, vni, mtu);
  } catch (error) {
    throw new CliError(`sandbox vm-side: ${(error as Error).message}`);
  }
  process.stderr.write(`${node}'s VM side on network ${vni}: ${side.ip} (lease ${side.lease} s from the DHCP server ${side.serverId}, gateway ${side.router})\n`);
  say(side.netns);
}

function env(flags: { dir?: string }): void {
  const dir = dirOf(flags);
  const state = readState(dir);
  if (!state) throw new CliError(`no sandbox in ${dir} (vk sandbox up starts one)`);
  say(envLine(state));
}

export function registerSandbox(program: Command): void {
  const sandbox = program
    .command('sandbox')
    .description('a local cluster on this machine: ZooKeeper, simulated hypervisors, the example manifests (needs root)');
  const dirOption = (): Option =>
    new Option('--dir <dir>', `where its state, logs and data go (default: .sandbox/ in the repository, or VK_SANDBOX_DIR)`);

  sandbox
    .command('up')
    .description('start ZooKeeper and N simulated hypervisors (libvirtd, FRR, vk daemon each), apply manifests/examples/, wait until converged (on a running sandbox: start the daemons and FRRs that are down)')
    .addOption(new Option('--nodes <n>', `number of hypervisors, hv1..hvN (${MIN_NODES}-${MAX_NODES})`).argParser(parseNodes).default(3))
    .addOption(new Option('--qemu', 'run real QEMU (TCG) guests instead of the libvirt test driver, so live migration and consoles work').env('VK_SANDBOX_QEMU'))
    .addOption(dirOption())
    .addOption(new Option('--timeout <seconds>', 'give up waiting for convergence after this long').argParser(parseTimeout).default(180))
    .addOption(new Option('--log-level <level>', 'log level of the daemons').choices(['fatal', 'error', 'warn', 'info', 'debug', 'trace']))
    .action((flags: UpFlags, cmd: Command) => up({ ...flags, nodesGiven: cmd.getOptionValueSource('nodes') === 'cli' }));

  sandbox
    .command('status')
    .description('show the sandbox\'s processes, namespaces and nodes (exit 1 when something is down)')
    .addOption(dirOption())
    .addOption(new Option('-o, --output <format>', 'json').choices(['json']))
    .action(status);

  sandbox
    .command('down')
    .description('stop every process the sandbox started (by PID) and remove its namespaces and files')
    .addOption(dirOption())
    .option('--keep-logs', 'keep the logs and data under the directory')
    .action(down);

  sandbox
    .command('restart')
    .argument('[nodes...]', 'nodes whose daemon to restart (default: every node)')
    .description("restart nodes' vk daemons (SIGTERM by PID, then start again), as systemd would; a dead daemon is just started, an FRR that is down too; guests keep running")
    .addOption(dirOption())
    .addOption(new Option('--timeout <seconds>', 'give up waiting for the daemons to register after this long').argParser(parseTimeout).default(60))
    .action((nodes: string[], flags: { dir?: string; timeout: number }) => restart(nodes, flags));

  // Internal: the test-driver holder `up` starts for every node (drivers/sandbox/holder.ts).
  sandbox
    .command('hold', { hidden: true })
    .description("keep a connection to a node's libvirt test driver open until SIGTERM (started by vk sandbox up)")
    .requiredOption('--socket <path>', "libvirtd's read-write socket")
    .requiredOption('--uri <uri>', 'driver URI', 'test:///default')
    .action((flags: { socket: string; uri: string }) => holdTestDriver(flags));

  sandbox
    .command('netns')
    .argument('<node>', 'a node of the sandbox, e.g. hv1')
    .description('print the network namespace of a node: ip netns exec "$(vk sandbox netns hv1)" bridge fdb show')
    .addOption(dirOption())
    .action((node: string, flags: { dir?: string }) => netnsOf(node, flags));

  sandbox
    .command('vm-side')
    .argument('<node>', 'a node of the sandbox, e.g. hv3')
    .description('plug a VM-side namespace into the node\'s bridge of a managed network and take a DHCP lease; prints the namespace: ip netns exec "$(vk sandbox vm-side hv3)" ping 192.0.2.1')
    .addOption(dirOption())
    .addOption(new Option('--network <vni>', 'the managed network (with dhcp4)').default('200'))
    .action((node: string, flags: { dir?: string; network: string }) => vmSide(node, flags));

  sandbox
    .command('env')
    .description('print the export line that points a shell at the sandbox (eval "$(vk sandbox env)")')
    .addOption(dirOption())
    .action(env);
}
