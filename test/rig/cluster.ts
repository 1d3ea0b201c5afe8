// A cluster of simulated QEMU hypervisors for migration tests and benches (DESIGN.md §5).
//
//   fabric namespace <p>f: bridge br0
//     ├─ veth ─ namespace <p>1: libvirtd "hv1" (QEMU/TCG) on 198.51.100.1, TCP 16509 for peer-to-peer
//     ├─ veth ─ namespace <p>2: libvirtd "hv2" on 198.51.100.2
//     └─ veth ─ namespace <p>3: libvirtd "hv3" on 198.51.100.3
//
// Each libvirtd runs in its own mount + UTS + network namespace (test/rig/libvirtd.ts). The
// daemons run in this process (startDaemon) or as `vk daemon` child processes (for kill tests);
// they reach their libvirtd over its unix socket and publish `qemu+tcp://198.51.100.N/system` /
// `tcp://198.51.100.N` as their migration URIs. One real ZooKeeper on loopback.
//
// Guests are diskless 256 MiB TCG domains with a `loader` device that fills part of guest RAM with
// random bytes (all-zero pages migrate almost for free), so a migration capped at 1 MiB/s takes
// about as many seconds as the blob has MiB.
//
// Everything started here is stopped by PID and every namespace created here deleted by
// cleanup(), or at process exit.
import { execFileSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DaemonConfigSchema, type DaemonConfig } from '../../daemon/config.ts';
import { startDaemon, type RunningDaemon } from '../../daemon/daemon.ts';
import { createLogger } from '../../controllers/logger.ts';
import type { MigrationEvent } from '../../reconcilers/migration/execute.ts';
import { ZkStore } from '../../drivers/zk/index.ts';
import { LibvirtHypervisor } from '../../drivers/libvirt-hypervisor.ts';
import {
  decodeMigrationRecord,
  decodeVmStatus,
  encodeClusterConfig,
  encodeVmSpec,
  ZkPaths,
  type ClusterConfigInput,
  type MigrationRecord,
  type VmSpecInput,
  type VmStatus,
} from '../../schemas/index.ts';
import { daemonLog, killDaemonProcess, spawnDaemonProcess, stopDaemonProcess } from './daemon-process.ts';
import { ensureLibvirtInstalled, guestXml, qemuAvailable, startLibvirtd, type Libvirtd } from './libvirtd.ts';
import { netnsSupported } from './netns.ts';
import { Sampler, type SamplerOptions } from './sampler.ts';
import { startZooKeeper, type ZkServer } from './zookeeper.ts';

export { analyse, Sampler, type Sample, type SamplerOptions, type SamplerReport } from './sampler.ts';

export const paths = new ZkPaths();

// ------------------------------------------------------------------------------ namespaces

const createdNs = new Set<string>();
let nsHooked = false;

function ip(...args: string[]): string {
  return execFileSync('ip', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

function deleteNs(ns: string): void {
  try {
    ip('netns', 'del', ns);
  } catch {
    // already gone
  }
  createdNs.delete(ns);
}

export interface Fabric {
  /** Per hypervisor: namespace and address (198.51.100.<i+1>). */
  hosts: Array<{ ns: string; addr: string }>;
  fabricNs: string;
  cleanup(): void;
}

/** n namespaces joined through a bridge in a fabric namespace; addresses 198.51.100.1…n. */
export function createFabric(n: number, prefix = `vk${randomBytes(3).toString('hex')}`): Fabric {
  if (!nsHooked) {
    nsHooked = true;
    process.once('exit', () => [...createdNs].forEach(deleteNs));
  }
  const fabricNs = `${prefix}f`;
  const hosts = Array.from({ length: n }, (_, i) => ({ ns: `${prefix}h${i + 1}`, addr: `198.51.100.${i + 1}` }));
  const all = [fabricNs, ...hosts.map((h) => h.ns)];
  try {
    for (const ns of all) {
      ip('netns', 'add', ns);
      createdNs.add(ns);
      ip('-n', ns, 'link', 'set', 'lo', 'up');
    }
    ip('-n', fabricNs, 'link', 'add', 'br0', 'type', 'bridge');
    ip('-n', fabricNs, 'link', 'set', 'br0', 'up');
    hosts.forEach((h, i) => {
      const inside = `eth0`;
      const port = `p${i + 1}`;
      ip('-n', fabricNs, 'link', 'add', port, 'type', 'veth', 'peer', 'name', inside, 'netns', h.ns);
      ip('-n', fabricNs, 'link', 'set', port, 'master', 'br0');
      ip('-n', fabricNs, 'link', 'set', port, 'up');
      ip('-n', h.ns, 'addr', 'add', `${h.addr}/24`, 'dev', inside);
      ip('-n', h.ns, 'link', 'set', inside, 'up');
    });
  } catch (error) {
    all.forEach(deleteNs);
    throw error;
  }
  return { hosts, fabricNs, cleanup: () => all.forEach(deleteNs) };
}

// ------------------------------------------------------------------------------ guests

export { guestXml };

/** Why the QEMU cluster cannot run here, or undefined when it can. */
export function clusterUnavailable(): string | undefined {
  ensureLibvirtInstalled();
  if (!qemuAvailable()) return '/usr/bin/qemu-system-x86_64 is missing (install qemu-system-x86)';
  if (!netnsSupported()) return '`ip netns` is not usable here (needs root and iproute2)';
  return undefined;
}

// ------------------------------------------------------------------------------ hypervisors

export interface Hv {
  name: string;
  ns: string;
  addr: string;
  libvirtd: Libvirtd;
  /** The test's own connection: looks behind the daemons' backs (sampler, assertions). */
  probe: LibvirtHypervisor;
  /** The in-process daemon, when one runs. */
  daemon: RunningDaemon | undefined;
  /** The `vk daemon` child process, when one runs. */
  child: ChildProcess | undefined;
  config(extra?: DaemonExtra): DaemonConfig;
}

export interface DaemonExtra {
  bandwidthMiBs?: number;
}

export interface ClusterOptions {
  nodes?: number;
  /** MiB of random data loaded into each guest's RAM (default 12). */
  blobMiB?: number;
  /** Written to /virtkeeper/config (default: phaseTimeoutMs 8000). */
  clusterConfig?: ClusterConfigInput;
}

export class Cluster {
  readonly events: Array<MigrationEvent & { node: string; at: number }> = [];
  readonly actions: string[] = [];
  /** performance.now() of each ABORT_JOB, per VM. */
  readonly abortsIssued: Array<{ node: string; vm: string; at: number }> = [];
  private constructor(
    readonly zk: ZkServer,
    readonly store: ZkStore,
    readonly fabric: Fabric,
    readonly hvs: Hv[],
    readonly work: string,
    readonly blob: string,
  ) {}

  static async start(o: ClusterOptions = {}): Promise<Cluster> {
    const n = o.nodes ?? 3;
    const work = mkdtempSync(join(tmpdir(), 'vk-cluster-'));
    const blob = join(work, 'ram.bin');
    writeFileSync(blob, randomBytes((o.blobMiB ?? 12) * 1024 * 1024));
    let zk: ZkServer | undefined;
    let store: ZkStore | undefined;
    let fabric: Fabric | undefined;
    const hvs: Hv[] = [];
    try {
      zk = await startZooKeeper();
      store = await ZkStore.connect({ connectString: zk.connectString });
      fabric = createFabric(n);
      const libvirtds = await Promise.all(fabric.hosts.map((h, i) => startLibvirtd({ name: `hv${i + 1}`, netns: h.ns })));
      const zkHosts = zk.connectString;
      for (const [i, libvirtd] of libvirtds.entries()) {
        const host = fabric.hosts[i]!;
        const name = `hv${i + 1}`;
        const probe = await LibvirtHypervisor.open({ socket: libvirtd.socketPath, uri: 'qemu:///system' }, 30_000);
        hvs.push({
          name,
          ns: host.ns,
          addr: host.addr,
          libvirtd,
          probe,
          daemon: undefined,
          child: undefined,
          config: (extra: DaemonExtra = {}) =>
            DaemonConfigSchema.parse({
              node: name,
              zookeeper: { hosts: zkHosts, sessionTimeoutMs: 4000 },
              libvirt: { socket: libvirtd.socketPath, uri: 'qemu:///system' },
              migration: {
                uri: `qemu+tcp://${host.addr}/system`,
                migrateUri: `tcp://${host.addr}`,
                ...(extra.bandwidthMiBs !== undefined ? { bandwidthMiBs: extra.bandwidthMiBs } : {}),
              },
              resyncMs: 10_000,
              logLevel: (process.env.VK_TEST_LOG ?? 'silent') as 'silent',
            }),
        });
      }
      await store.ensurePath(paths.root);
      await store.create(paths.config, encodeClusterConfig(o.clusterConfig ?? { migration: { phaseTimeoutMs: 8000 } }));
      return new Cluster(zk, store, fabric, hvs, work, blob);
    } catch (error) {
      for (const hv of hvs) await hv.probe.close().catch(() => undefined);
      await store?.close().catch(() => undefined);
      await zk?.cleanup();
      fabric?.cleanup();
      rmSync(work, { recursive: true, force: true });
      throw error;
    }
  }

  hv(name: string): Hv {
    const hv = this.hvs.find((h) => h.name === name);
    if (!hv) throw new Error(`no hypervisor ${name}`);
    return hv;
  }

  /** Starts the node's daemon in this process. */
  async startDaemon(name: string, extra: DaemonExtra = {}): Promise<RunningDaemon> {
    const hv = this.hv(name);
    if (hv.daemon || hv.child) throw new Error(`${name} already has a daemon`);
    const cfg = hv.config(extra);
    hv.daemon = await startDaemon(cfg, {
      log: createLogger({ level: cfg.logLevel, node: name }),
      onAction: (line) => this.actions.push(line),
      onMigrationEvent: (e) => this.events.push({ ...e, node: name, at: performance.now() }),
      onAbortIssued: (vm, at) => this.abortsIssued.push({ node: name, vm, at }),
    });
    return hv.daemon;
  }

  async stopDaemon(name: string): Promise<void> {
    const hv = this.hv(name);
    const d = hv.daemon;
    hv.daemon = undefined;
    await d?.stop();
    await this.stopChild(name);
  }

  /**
   * Starts the node's daemon as a `vk daemon` child process (so a test can SIGKILL it); resolves
   * once it holds a fresh alive znode (./daemon-process.ts).
   */
  async spawnDaemon(name: string, extra: DaemonExtra = {}, readyTimeoutMs = 30_000): Promise<ChildProcess> {
    const hv = this.hv(name);
    if (hv.daemon || hv.child) throw new Error(`${name} already has a daemon`);
    try {
      return await spawnDaemonProcess({ name, config: hv.config(extra), work: this.work, store: this.store, readyTimeoutMs }, (child) => (hv.child = child));
    } catch (error) {
      const child = hv.child as ChildProcess | undefined; // set by the callback; exited during start: forget it
      if (child && (child.exitCode !== null || child.signalCode !== null)) hv.child = undefined;
      throw error;
    }
  }

  /** SIGKILL the node's daemon child process (a crash), by PID. */
  async killChild(name: string): Promise<void> {
    const hv = this.hv(name);
    const child = hv.child;
    hv.child = undefined;
    await killDaemonProcess(child);
  }

  async stopChild(name: string): Promise<void> {
    const hv = this.hv(name);
    const child = hv.child;
    hv.child = undefined;
    await stopDaemonProcess(child);
  }

  daemonLog(name: string): string {
    return daemonLog(this.work, name);
  }

  // ---------------------------------------------------------------------------- ZooKeeper

  async writeVm(name: string, spec: VmSpecInput): Promise<void> {
    await this.store.ensurePath(paths.vms);
    await this.store.multi([
      { op: 'create', path: paths.vm(name) },
      { op: 'create', path: paths.vmSpec(name), data: encodeVmSpec(spec) },
      { op: 'create', path: paths.vmXml(name), data: guestXml(name, this.blob) },
    ]);
  }

  /** Read-modify-write of a VM spec with CAS; resolves to performance.now() just before the write. */
  async editSpec(name: string, edit: (spec: Record<string, unknown>) => void): Promise<number> {
    const current = await this.store.get(paths.vmSpec(name));
    if (!current) throw new Error(`no spec for ${name}`);
    const spec = JSON.parse(current.data.toString('utf8')) as Record<string, unknown>;
    edit(spec);
    const data = encodeVmSpec(spec as VmSpecInput);
    const t = performance.now();
    await this.store.set(paths.vmSpec(name), data, current.version);
    return t;
  }

  /** `vk vm migrate NAME --node TARGET`: node = target, previousNode = where it was. */
  migrate(name: string, target: string): Promise<number> {
    return this.editSpec(name, (s) => {
      s.previousNode = (s.previousNode as string | undefined) ?? (s.node as string);
      s.node = target;
    });
  }

  /** `vk vm unmigrate NAME`: back to previousNode, which is dropped. */
  unmigrate(name: string): Promise<number> {
    return this.editSpec(name, (s) => {
      s.node = s.previousNode;
      delete s.previousNode;
    });
  }

  async deleteVm(name: string): Promise<void> {
    await this.store.deleteRecursive(paths.vm(name));
  }

  async status(name: string): Promise<VmStatus | null> {
    const got = await this.store.get(paths.vmStatus(name));
    return got ? decodeVmStatus(got.data.toString('utf8')) : null;
  }

  async record(name: string): Promise<MigrationRecord | null> {
    const got = await this.store.get(paths.vmMigration(name));
    return got ? decodeMigrationRecord(got.data.toString('utf8')) : null;
  }

  async spec(name: string): Promise<Record<string, unknown>> {
    const got = await this.store.get(paths.vmSpec(name));
    return JSON.parse(got!.data.toString('utf8')) as Record<string, unknown>;
  }

  // ---------------------------------------------------------------------------- libvirt

  /** The guest's state on each hypervisor ('unknown' when its libvirtd does not answer). */
  async where(vm: string): Promise<Record<string, string | null>> {
    const out: Record<string, string | null> = {};
    await Promise.all(
      this.hvs.map(async (hv) => {
        try {
          out[hv.name] = (await hv.probe.getDomain(vm))?.state ?? null;
        } catch {
          out[hv.name] = 'unknown';
        }
      }),
    );
    return out;
  }

  /** Names of the hypervisors where the guest runs (state running). */
  async runningOn(vm: string): Promise<string[]> {
    const w = await this.where(vm);
    return Object.keys(w)
      .filter((k) => w[k] === 'running')
      .sort();
  }

  sampler(vm: string, o: SamplerOptions = {}): Sampler {
    return new Sampler((name) => this.where(name), vm, o);
  }

  async cleanup(): Promise<void> {
    for (const hv of this.hvs) {
      await hv.daemon?.stop().catch(() => undefined);
      hv.daemon = undefined;
      await this.stopChild(hv.name).catch(() => undefined);
    }
    await this.store.close().catch(() => undefined);
    for (const hv of this.hvs) {
      await hv.probe.close().catch(() => undefined);
      await hv.libvirtd.cleanup();
    }
    this.fabric.cleanup();
    await this.zk.cleanup();
    if (!process.env.VK_KEEP_TMP) rmSync(this.work, { recursive: true, force: true });
  }
}
