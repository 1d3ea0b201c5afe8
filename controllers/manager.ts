// The Manager: owns the ZooKeeper store, the hypervisor driver and the shared informers, and runs
// the registered runnables (controllers and services), controller-runtime style.
//
// Invariants:
//   M1  start(): the informers start first and every one has synced before the first runnable
//       starts, so no concern ever plans from a half-loaded cache.
//   M2  Runnables start in registration order, each awaited, and stop in reverse order; a
//       runnable that failed to start stops those already started, then the error is thrown.
//   M3  stop() stops the runnables, then the informers, then closes the drivers (each at most once);
//       a stop() that comes while start() is still starting runnables makes it start no more.
//   M4  plan() is the one dry run: it syncs the informers, asks every registered runnable for its
//       plan in registration order, and starts none of them.
import type { Logger } from 'pino';
import type { MigratingHypervisor } from '../drivers/hypervisor.ts';
import type { ZkStore } from '../drivers/zk/index.ts';
import type { ZkPaths } from '../schemas/index.ts';
import { ConfigInformer } from './informers/config.ts';
import { NetworkInformer } from './informers/networks.ts';
import { NodeInformer } from './informers/nodes.ts';
import { VmInformer, type VmInformerOptions } from './informers/vms.ts';
import type { Runnable } from './runnable.ts';

export interface ManagerOptions {
  /** This node's name. */
  node: string;
  store: ZkStore;
  paths: ZkPaths;
  hv: MigratingHypervisor;
  log: Logger;
  /** Closes the drivers (after everything else has stopped). */
  close?(): Promise<void>;
  /** Which VMs the VM informer follows (default: every VM; a daemon: its node's index). */
  vms?: VmInformerOptions;
}

export interface Informers {
  vms: VmInformer;
  nodes: NodeInformer;
  networks: NetworkInformer;
  config: ConfigInformer;
}

export class Manager {
  readonly node: string;
  readonly store: ZkStore;
  readonly paths: ZkPaths;
  readonly hv: MigratingHypervisor;
  readonly log: Logger;
  readonly informers: Informers;
  private readonly runnables: Runnable[] = [];
  private readonly started: Runnable[] = [];
  private informersStarted = false;
  private stopped = false;

  constructor(private readonly o: ManagerOptions) {
    this.node = o.node;
    this.store = o.store;
    this.paths = o.paths;
    this.hv = o.hv;
    this.log = o.log;
    this.informers = {
      vms: new VmInformer(o.store, o.paths, o.log, o.vms),
      nodes: new NodeInformer(o.store, o.paths, o.log),
      networks: new NetworkInformer(o.store, o.paths, o.log),
      config: new ConfigInformer(o.store, o.paths, o.log),
    };
  }

  /** Registers a runnable (started after those registered before it). Returns it. */
  add<R extends Runnable>(runnable: R): R {
    if (this.runnables.some((r) => r.name === runnable.name)) throw new Error(`a runnable named ${runnable.name} is already registered`);
    this.runnables.push(runnable);
    return runnable;
  }

  /** The registered runnable of that name. */
  get<R extends Runnable>(name: string): R {
    const found = this.runnables.find((r) => r.name === name);
    if (!found) throw new Error(`no runnable named ${name} is registered`);
    return found as R;
  }

  names(): string[] {
    return this.runnables.map((r) => r.name);
  }

  async start(): Promise<void> {
    await this.syncInformers();
    for (const runnable of this.runnables) {
      // stop() came while starting: start nothing more (stop() stops what has started).
      if (this.stopped) return;
      try {
        await runnable.start();
      } catch (error) {
        await this.stopRunnables();
        throw error;
      }
      if (this.stopped) {
        // stop() ran while this one was starting, and could not see it: stop it now.
        await runnable.stop().catch((error: unknown) => this.log.error({ err: error, runnable: runnable.name }, 'stop failed'));
        return;
      }
      this.started.push(runnable);
      this.log.debug({ runnable: runnable.name }, 'started');
    }
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    await this.stopRunnables();
    if (this.informersStarted) {
      const { vms, nodes, networks, config } = this.informers;
      config.stop();
      networks.stop();
      nodes.stop();
      vms.stop();
    }
    await this.o.close?.();
  }

  /** Every registered runnable's dry-run lines, in registration order. */
  async plan(): Promise<string[]> {
    await this.syncInformers();
    const lines: string[] = [];
    for (const runnable of this.runnables) if (runnable.plan) lines.push(...(await runnable.plan()));
    return lines;
  }

  private async syncInformers(): Promise<void> {
    if (this.informersStarted) return;
    this.informersStarted = true;
    const { vms, nodes, networks, config } = this.informers;
    config.start();
    nodes.start();
    networks.start();
    vms.start();
    await Promise.all([config.synced(), nodes.synced(), networks.synced(), vms.synced()]);
  }

  private async stopRunnables(): Promise<void> {
    for (const runnable of [...this.started].reverse()) {
      try {
        await runnable.stop();
      } catch (error) {
        this.log.error({ err: error, runnable: runnable.name }, 'stop failed');
      }
    }
    this.started.length = 0;
  }
}
