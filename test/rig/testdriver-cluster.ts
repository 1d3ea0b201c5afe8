// A cluster of test-driver hypervisors (flush, domain ownership and bench tests): a real
// ZooKeeper, one private libvirtd (test driver) per node (./testdriver.ts), and a daemon per node —
// in this process, or as a `vk daemon` child process when a test must SIGKILL it. The QEMU
// counterpart, with namespaces and live migration, is ./cluster.ts.
// Everything started here is stopped by its PID (libvirtd and ZooKeeper rigs do the same).
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { RunningDaemon } from '../../daemon/daemon.ts';
import type { DaemonConfig } from '../../daemon/config.ts';
import { ZkStore } from '../../drivers/zk/index.ts';
import {
  decodeNodeStatus,
  decodeVmSpec,
  decodeVmStatus,
  encodeClusterConfig,
  encodeNodeSpec,
  type ClusterConfigInput,
  type NodeStatus,
  type VmSpec,
  type VmSpecInput,
  type VmStatus,
} from '../../schemas/index.ts';
import { daemonLog, killDaemonProcess, spawnDaemonProcess, stopDaemonProcess } from './daemon-process.ts';
import { daemonConfig, paths, runDaemon, startHv, stopHv, testXml, writeVm, type HvRig } from './testdriver.ts';
import { startZooKeeper, type ZkServer } from './zookeeper.ts';

export { paths };

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

export class TestDriverCluster {
  readonly actions = new ActionLog();
  readonly daemons = new Map<string, RunningDaemon>();
  readonly children = new Map<string, ChildProcess>();

  private constructor(
    readonly zk: ZkServer,
    readonly store: ZkStore,
    readonly hvs: HvRig[],
    readonly work: string,
  ) {}

  static async start(names: string[], config: ClusterConfigInput): Promise<TestDriverCluster> {
    const work = mkdtempSync(join(tmpdir(), 'vk-flush-'));
    let zk: ZkServer | undefined;
    let store: ZkStore | undefined;
    const hvs: HvRig[] = [];
    try {
      zk = await startZooKeeper();
      store = await ZkStore.connect({ connectString: zk.connectString });
      for (const name of names) hvs.push(await startHv(name));
      await store.ensurePath(paths.root);
      await store.create(paths.config, encodeClusterConfig(config));
      return new TestDriverCluster(zk, store, hvs, work);
    } catch (error) {
      for (const hv of hvs) await stopHv(hv).catch(() => undefined);
      await store?.close().catch(() => undefined);
      await zk?.cleanup();
      rmSync(work, { recursive: true, force: true });
      throw error;
    }
  }

  hv(name: string): HvRig {
    const hv = this.hvs.find((h) => h.name === name);
    if (!hv) throw new Error(`no hypervisor ${name}`);
    return hv;
  }

  private config(name: string, extra: Partial<DaemonConfig> = {}) {
    return daemonConfig(name, this.zk.connectString, this.hv(name).libvirtd.socketPath, { keepaliveMs: 300, resyncMs: 5_000, ...extra });
  }

  /** A daemon in this process; `extra` overrides its config (e.g. `migration` to publish a migration URI). */
  async startDaemon(name: string, extra: Partial<DaemonConfig> = {}): Promise<RunningDaemon> {
    if (this.daemons.has(name) || this.children.has(name)) throw new Error(`${name} already has a daemon`);
    const d = await runDaemon(this.config(name, extra), this.actions);
    this.daemons.set(name, d);
    return d;
  }

  async stopDaemon(name: string): Promise<void> {
    const d = this.daemons.get(name);
    this.daemons.delete(name);
    await d?.stop();
  }

  /** `vk daemon` as a child process; resolves once it holds a fresh alive znode (./daemon-process.ts). */
  async spawnDaemon(name: string): Promise<ChildProcess> {
    if (this.daemons.has(name) || this.children.has(name)) throw new Error(`${name} already has a daemon`);
    return spawnDaemonProcess({ name, config: this.config(name), work: this.work, store: this.store, readyTimeoutMs: 60_000 }, (child) => this.children.set(name, child));
  }

  /** SIGKILL the child daemon by its PID (a crash). */
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

  daemonLog(name: string): string {
    return daemonLog(this.work, name);
  }

  // ------------------------------------------------------------------------------ ZooKeeper

  async writeVm(name: string, spec: VmSpecInput, memoryMiB = 64, vcpus = 1): Promise<void> {
    await writeVm(this.store, name, spec, testXml(name, memoryMiB, vcpus));
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

  /** The VM runs on `node`: status says Running there and that libvirt runs it. */
  async runsOn(vm: string, node: string): Promise<boolean> {
    const s = await this.status(vm);
    if (s?.node !== node || s.phase !== 'Running') return false;
    return (await this.hv(node).hv.getDomain(vm))?.state === 'running';
  }

  /** Names of the hypervisors whose libvirt runs the VM. */
  async runningOn(vm: string): Promise<string[]> {
    const out: string[] = [];
    for (const hv of this.hvs) if ((await hv.hv.getDomain(vm))?.state === 'running') out.push(hv.name);
    return out;
  }

  async cleanup(): Promise<void> {
    for (const name of [...this.daemons.keys()]) await this.stopDaemon(name).catch(() => undefined);
    for (const name of [...this.children.keys()]) await this.stopChild(name).catch(() => undefined);
    await this.store.close().catch(() => undefined);
    for (const hv of this.hvs) await stopHv(hv).catch(() => undefined);
    await this.zk.cleanup();
    if (!process.env.VK_KEEP_TMP) rmSync(this.work, { recursive: true, force: true });
  }
}
