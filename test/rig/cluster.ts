// The cluster rig: a real ZooKeeper on loopback, a private libvirtd per hypervisor, and a daemon per
// node — in this process (startDaemon), or as a `vk daemon` child process when a test must SIGKILL
// it (spawnDaemon, ./daemon-process.ts). Cluster.start takes the driver kind:
//
// - 'test': libvirt's test driver (./testdriver.ts): domains "run" at once and nothing executes;
//   for flush, ownership and reconcile tests and benches. The libvirtds run in the host's network
//   namespace; the rig's own connection to each is held open (the test driver forgets its domains
//   when its last connection closes).
// - 'qemu': QEMU/TCG guests in network namespaces, for live migration tests and benches:
//
//     fabric namespace <p>f: bridge br0
//       ├─ veth ─ namespace <p>h1: libvirtd "hv1" (QEMU/TCG) on 198.51.100.1, TCP 16509 for peer-to-peer
//       ├─ veth ─ namespace <p>h2: libvirtd "hv2" on 198.51.100.2
//       └─ veth ─ namespace <p>h3: libvirtd "hv3" on 198.51.100.3
//
//   The daemons reach their libvirtd over its unix socket and publish `qemu+tcp://198.51.100.N/system`
//   / `tcp://198.51.100.N` as their migration URIs. Guests are diskless 256 MiB TCG domains with a
//   `loader` device that fills part of guest RAM with random bytes (all-zero pages migrate almost
//   for free), so a migration capped at 1 MiB/s takes about as many seconds as the blob has MiB.
//
// Everything started here is stopped by PID and every namespace created here deleted by
// cleanup(), or at process exit (./libvirtd.ts, ./zookeeper.ts, ./netns.ts).
import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DaemonConfigSchema, type DaemonConfig } from '../../daemon/config.ts';
import { startDaemon, type RunningDaemon } from '../../daemon/daemon.ts';
import { createLogger } from '../../controllers/logger.ts';
import type { MigrationEvent } from '../../reconcilers/migration/execute.ts';
import type { FenceEvent } from '../../reconcilers/fence/index.ts';
import { ZkStore } from '../../drivers/zk/index.ts';
import { LibvirtHypervisor } from '../../drivers/libvirt-hypervisor.ts';
import { ListDomainsFlags } from '../../drivers/libvirt/index.ts';
import type { LibvirtDriver } from '../../drivers/launch/libvirtd.ts';
import {
  decodeMigrationRecord,
  decodeNodeStatus,
  decodeVmSpec,
  decodeVmStatus,
  encodeClusterConfig,
  encodeNodeSpec,
  type ClusterConfigInput,
  type MigrationRecord,
  type NodeStatus,
  type VmSpec,
  type VmSpecInput,
  type VmStatus,
} from '../../schemas/index.ts';
import { daemonLog, killDaemonProcess, spawnDaemonProcess, stopDaemonProcess } from './daemon-process.ts';
import { ensureLibvirtInstalled, guestXml, qemuAvailable, startLibvirtd, type Libvirtd } from './libvirtd.ts';
import { createFabric, netnsSupported, type Fabric } from './netns.ts';
import { Sampler, type SamplerOptions } from './sampler.ts';
import { editSpec, paths, startHv, stopHv, testXml, writeVm } from './testdriver.ts';
import { startZooKeeper, type ZkServer } from './zookeeper.ts';

export { analyse, Sampler, type Sample, type SamplerOptions, type SamplerReport } from './sampler.ts';
export { guestXml, paths };

/** Why the QEMU cluster cannot run here, or undefined when it can. */
export function clusterUnavailable(): string | undefined {
  ensureLibvirtInstalled();
  if (!qemuAvailable()) return '/usr/bin/qemu-system-x86_64 is missing (install qemu-system-x86)';
  if (!netnsSupported()) return '`ip netns` is not usable here (needs root and iproute2)';
  return undefined;
}

/** The daemons' action lines, in order; `onLine` sees each line as it is pushed (synchronously). */
export class ActionLog extends Array<string> {
  /** filter/map/slice give plain arrays. */
  static override get [Symbol.species](): ArrayConstructor {
    return Array;
  }
  onLine: ((line: string) => void) | undefined;
  override push(...lines: string[]): number {
    for (const line of lines) this.onLine?.(line);
    return super.push(...lines);
  }
}

export interface Hv {
  name: string;
  libvirtd: Libvirtd;
  /** The rig's own connection, held open: looks behind the daemons' backs (sampler, assertions). */
  probe: LibvirtHypervisor;
  /** QEMU only: the node's network namespace and its address on the fabric. */
  ns?: string;
  addr?: string;
}

/** What a test changes in a node's daemon config; `bandwidthMiBs` caps its live migrations (QEMU). */
export type DaemonExtra = Partial<DaemonConfig> & { bandwidthMiBs?: number };

export interface ClusterOptions {
  /** Node names, or how many (hv1…hvN); default 3. */
  nodes?: number | string[];
  /** Written to /virtkeeper/config (default: phaseTimeoutMs 8000). */
  clusterConfig?: ClusterConfigInput;
  /** QEMU only: MiB of random data loaded into each guest's RAM (default 12). */
  blobMiB?: number;
  /** ZooKeeper's tick (default the rig's 200 ms; 2000 is ZooKeeper's own default, for benches of session expiry). */
  zkTickTimeMs?: number;
}

export class Cluster {
  readonly actions = new ActionLog();
  readonly daemons = new Map<string, RunningDaemon>();
  readonly children = new Map<string, ChildProcess>();
  readonly events: Array<MigrationEvent & { node: string; at: number }> = [];
  /** Fence events of the in-process daemons, with Date.now() (comparable with a BMC's event stamps). */
  readonly fenceEvents: Array<FenceEvent & { by: string; at: number }> = [];
  /** performance.now() of each ABORT_JOB, per VM. */
  readonly abortsIssued: Array<{ node: string; vm: string; at: number }> = [];

  private constructor(
    readonly driver: LibvirtDriver,
    readonly zk: ZkServer,
    readonly store: ZkStore,
    readonly hvs: Hv[],
    readonly work: string,
    /** QEMU only: the namespaces. */
    readonly fabric: Fabric | undefined,
    /** QEMU only: the random bytes loaded into each guest's RAM. */
    readonly blob: string | undefined,
  ) {}

  static async start(driver: LibvirtDriver, o: ClusterOptions = {}): Promise<Cluster> {
    const names = typeof o.nodes === 'object' ? o.nodes : Array.from({ length: o.nodes ?? 3 }, (_, i) => `hv${i + 1}`);
    const work = mkdtempSync(join(tmpdir(), 'vk-cluster-'));
    let blob: string | undefined;
    let zk: ZkServer | undefined;
    let store: ZkStore | undefined;
    let fabric: Fabric | undefined;
    const hvs: Hv[] = [];
    try {
      zk = await startZooKeeper(o.zkTickTimeMs !== undefined ? { tickTime: o.zkTickTimeMs } : {});
      store = await ZkStore.connect({ connectString: zk.connectString });
      if (driver === 'test') {
        for (const name of names) {
          const rig = await startHv(name);
          hvs.push({ name, libvirtd: rig.libvirtd, probe: rig.hv });
        }
      } else {
        blob = join(work, 'ram.bin');
        writeFileSync(blob, randomBytes((o.blobMiB ?? 12) * 1024 * 1024));
        const f = (fabric = createFabric(names.length));
        const libvirtds = await Promise.all(names.map((name, i) => startLibvirtd({ name, netns: f.hosts[i]!.ns })));
        for (const [i, libvirtd] of libvirtds.entries()) {
          const probe = await LibvirtHypervisor.open({ socket: libvirtd.socketPath, uri: 'qemu:///system' }, 30_000);
          hvs.push({ name: names[i]!, libvirtd, probe, ...f.hosts[i]! });
        }
      }
      await store.ensurePath(paths.root);
      await store.create(paths.config, encodeClusterConfig(o.clusterConfig ?? { migration: { phaseTimeoutMs: 8000 } }));
      return new Cluster(driver, zk, store, hvs, work, fabric, blob);
    } catch (error) {
      for (const hv of hvs) await stopHv({ name: hv.name, libvirtd: hv.libvirtd, hv: hv.probe }).catch(() => undefined);
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

  /** The node's daemon config: the driver's defaults, then `extra`. */
  config(name: string, extra: DaemonExtra = {}): DaemonConfig {
    const hv = this.hv(name);
    const { bandwidthMiBs, ...rest } = extra;
    const base = {
      node: name,
      zookeeper: { hosts: this.zk.connectString, sessionTimeoutMs: 4000 },
      libvirt: { socket: hv.libvirtd.socketPath, uri: this.driver === 'test' ? 'test:///default' : 'qemu:///system' },
      logLevel: process.env.VK_TEST_LOG ?? 'silent',
      // Links (and FRR) are managed only by tests that give the daemon a namespace of their own.
      network: { enabled: false },
      frr: { enabled: false },
      primary: { enabled: false },
      // Fencing only in the tests of it (test/fence/).
      fence: { enabled: false },
    };
    if (this.driver === 'test') return DaemonConfigSchema.parse({ ...base, keepaliveMs: 300, resyncMs: 5_000, ...rest });
    const migration = {
      uri: `qemu+tcp://${hv.addr}/system`,
      migrateUri: `tcp://${hv.addr}`,
      ...(bandwidthMiBs !== undefined ? { bandwidthMiBs } : {}),
    };
    return DaemonConfigSchema.parse({ ...base, migration, resyncMs: 10_000, ...rest });
  }

  /** Starts the node's daemon in this process; `extra` overrides its config (./cluster.ts config()). */
  async startDaemon(name: string, extra: DaemonExtra = {}): Promise<RunningDaemon> {
    if (this.daemons.has(name) || this.children.has(name)) throw new Error(`${name} already has a daemon`);
    const cfg = this.config(name, extra);
    const d = await startDaemon(cfg, {
      log: createLogger({ level: cfg.logLevel, node: name }),
      onAction: (line) => this.actions.push(line),
      onMigrationEvent: (e) => this.events.push({ ...e, node: name, at: performance.now() }),
      onAbortIssued: (vm, at) => this.abortsIssued.push({ node: name, vm, at }),
      onFenceEvent: (e) => this.fenceEvents.push({ ...e, by: name, at: Date.now() }),
    });
    this.daemons.set(name, d);
    return d;
  }

  /** Stops the node's daemon, in this process or its child process. */
  async stopDaemon(name: string): Promise<void> {
    const d = this.daemons.get(name);
    this.daemons.delete(name);
    await d?.stop();
    await this.stopChild(name);
  }

  /**
   * Starts the node's daemon as a `vk daemon` child process (so a test can SIGKILL it); resolves
   * once it holds a fresh alive znode (./daemon-process.ts).
   */
  async spawnDaemon(name: string, extra: DaemonExtra = {}, readyTimeoutMs = 60_000): Promise<ChildProcess> {
    if (this.daemons.has(name) || this.children.has(name)) throw new Error(`${name} already has a daemon`);
    try {
      return await spawnDaemonProcess({ name, config: this.config(name, extra), work: this.work, store: this.store, readyTimeoutMs }, (child) => this.children.set(name, child));
    } catch (error) {
      const child = this.children.get(name); // exited during start: forget it
      if (child && (child.exitCode !== null || child.signalCode !== null)) this.children.delete(name);
      throw error;
    }
  }

  /** SIGKILL the node's daemon child process (a crash), by PID. */
  async killChild(name: string): Promise<void> {
    const child = this.children.get(name);
    this.children.delete(name);
    await killDaemonProcess(child);
  }

  async stopChild(name: string): Promise<void> {
    const child = this.children.get(name);
    this.children.delete(name);
    await stopDaemonProcess(child);
  }

  /**
   * A power loss of the node: its daemon child process, its guests and its libvirtd SIGKILLed, by
   * PID (what a BMC's power-off does to a real host).
   */
  async powerLoss(name: string): Promise<void> {
    const hv = this.hv(name);
    await this.killChild(name);
    hv.libvirtd.killGuests();
    await hv.libvirtd.kill();
  }

  /** After powerLoss: its libvirtd started again (same state) and the rig's connection reopened. The daemon is the caller's. */
  async powerBack(name: string): Promise<void> {
    const hv = this.hv(name);
    await hv.libvirtd.start();
    await hv.probe.close().catch(() => undefined);
    hv.probe = await LibvirtHypervisor.open({ socket: hv.libvirtd.socketPath, uri: this.driver === 'test' ? 'test:///default' : 'qemu:///system' }, 30_000);
  }

  daemonLog(name: string): string {
    return daemonLog(this.work, name);
  }

  // ---------------------------------------------------------------------------- ZooKeeper

  /** Creates the VM; its XML is the driver's guest (memoryMiB and vcpus: test driver only). */
  async writeVm(name: string, spec: VmSpecInput, memoryMiB = 64, vcpus = 1): Promise<void> {
    await writeVm(this.store, name, spec, this.blob === undefined ? testXml(name, memoryMiB, vcpus) : guestXml(name, this.blob));
  }

  /** Read-modify-write of a VM spec with CAS; resolves to performance.now() just before the write. */
  editSpec(name: string, edit: (spec: Record<string, unknown>) => void): Promise<number> {
    return editSpec(this.store, name, edit);
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

  async spec(vm: string): Promise<VmSpec> {
    const got = await this.store.get(paths.vmSpec(vm));
    if (!got) throw new Error(`no spec for ${vm}`);
    return decodeVmSpec(got.data.toString('utf8'));
  }

  async status(vm: string): Promise<VmStatus | null> {
    const got = await this.store.get(paths.vmStatus(vm));
    return got ? decodeVmStatus(got.data.toString('utf8')) : null;
  }

  async record(vm: string): Promise<MigrationRecord | null> {
    const got = await this.store.get(paths.vmMigration(vm));
    return got ? decodeMigrationRecord(got.data.toString('utf8')) : null;
  }

  async nodeStatus(node: string): Promise<NodeStatus | null> {
    const got = await this.store.get(paths.nodeStatus(node));
    return got ? decodeNodeStatus(got.data.toString('utf8')) : null;
  }

  /** Writes the node spec (as `vk node flush|ready` does); resolves to its new version. */
  async setNode(node: string, domainState: 'ready' | 'flushed'): Promise<number> {
    const path = paths.nodeSpec(node);
    const got = await this.store.get(path);
    if (!got) {
      await this.store.create(path, encodeNodeSpec({ domainState }), { parents: true });
      return 0;
    }
    return (await this.store.set(path, encodeNodeSpec({ domainState }), got.version)).version;
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

  /**
   * Per hypervisor, 'running' when the guest is among its active domains, else null: one list call
   * per libvirtd (no lookup), cheap enough for a sampler every 10 ms.
   */
  async activeOn(vm: string): Promise<Record<string, string | null>> {
    const out: Record<string, string | null> = {};
    await Promise.all(
      this.hvs.map(async (hv) => {
        const active = await hv.probe.conn.connectListAllDomains(ListDomainsFlags.ACTIVE);
        out[hv.name] = active.some((d) => d.name === vm) ? 'running' : null;
      }),
    );
    return out;
  }

  /** Names of the hypervisors where the guest runs (state running), sorted. */
  async runningOn(vm: string): Promise<string[]> {
    const w = await this.where(vm);
    return Object.keys(w)
      .filter((k) => w[k] === 'running')
      .sort();
  }

  /** The VM runs on `node`: status says Running there and that libvirt runs it. */
  async runsOn(vm: string, node: string): Promise<boolean> {
    const s = await this.status(vm);
    if (s?.node !== node || s.phase !== 'Running') return false;
    return (await this.hv(node).probe.getDomain(vm))?.state === 'running';
  }

  sampler(vm: string, o: SamplerOptions = {}): Sampler {
    return new Sampler((name) => this.where(name), vm, o);
  }

  async cleanup(): Promise<void> {
    for (const name of [...this.daemons.keys()]) await this.stopDaemon(name).catch(() => undefined);
    for (const name of [...this.children.keys()]) await this.stopChild(name).catch(() => undefined);
    await this.store.close().catch(() => undefined);
    for (const hv of this.hvs) await stopHv({ name: hv.name, libvirtd: hv.libvirtd, hv: hv.probe }).catch(() => undefined);
    this.fabric?.cleanup();
    await this.zk.cleanup();
    if (!process.env.VK_KEEP_TMP) rmSync(this.work, { recursive: true, force: true });
  }
}
