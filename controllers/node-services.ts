// The node's background services beside the domain reconciler: the keepalive (node status every
// few seconds) and the console follower (serial logs of this node's VMs into ZooKeeper).
import { Subscription } from 'rxjs';
import type { Logger } from 'pino';
import { readHost } from '../drivers/host.ts';
import type { Hypervisor } from '../drivers/hypervisor.ts';
import { createConsoleFollower, type ConsoleFollower } from '../reconcilers/console.ts';
import { runKeepalive, type AssignedVm } from '../reconcilers/node-keepalive.ts';
import { decodeNodeStatus, encodeNodeStatus, type ZkPaths } from '../schemas/index.ts';
import type { VmInformer } from './vm-informer.ts';
import type { ZkStore } from './zk/index.ts';

export interface NodeServicesOptions {
  node: string;
  version: string;
  store: ZkStore;
  paths: ZkPaths;
  hv: Hypervisor;
  informer: VmInformer;
  log: Logger;
  keepaliveMs: number;
  consolePollMs: number;
  consoleLines: number;
}

/** How long VM changes gather before the console follower looks at them. */
const CONSOLE_BATCH_MS = 200;

export class NodeServices {
  private readonly abort = new AbortController();
  private keepalive: Promise<void> | undefined;
  private readonly console: ConsoleFollower;
  private readonly subs = new Subscription();
  private readonly consoleDirty = new Set<string>();
  private consoleTimer: NodeJS.Timeout | undefined;

  constructor(private readonly o: NodeServicesOptions) {
    this.console = createConsoleFollower({
      log: o.log,
      maxLines: o.consoleLines,
      pollMs: o.consolePollMs,
      readConsole: async (vm) => {
        const got = await o.store.get(o.paths.vmConsole(vm));
        return got ? { text: got.data.toString('utf8'), version: got.version } : null;
      },
      writeConsole: async (vm, text, version) => {
        if (version === null) {
          await o.store.create(o.paths.vmConsole(vm), text);
          return 0;
        }
        return (await o.store.set(o.paths.vmConsole(vm), text, version)).version;
      },
    });
  }

  start(): void {
    const { o } = this;
    this.keepalive = runKeepalive({
      node: o.node,
      version: o.version,
      hv: o.hv,
      log: o.log,
      signal: this.abort.signal,
      intervalMs: o.keepaliveMs,
      readHost: () => readHost(),
      readAssigned: async () => this.assigned(),
      readNodeStatus: async () => {
        const got = await o.store.get(o.paths.nodeStatus(o.node));
        return got ? { value: decodeNodeStatus(got.data), version: got.version } : null;
      },
      writeNodeStatus: async (status, version) => {
        const data = encodeNodeStatus(status);
        if (version === null) await o.store.create(o.paths.nodeStatus(o.node), data, { parents: true });
        else await o.store.set(o.paths.nodeStatus(o.node), data, version);
      },
    }).catch((error: unknown) => o.log.error({ err: error }, 'keepalive stopped'));
    for (const vm of o.informer.names()) this.updateConsole(vm);
    // Batched off the reconcile path: while hundreds of VMs converge, which serial logs to follow
    // (it parses each homed VM's XML) can wait a moment, and repeated changes of a VM coalesce.
    this.subs.add(
      o.informer.changes$.subscribe((vm) => {
        this.consoleDirty.add(vm);
        this.consoleTimer ??= setTimeout(() => this.flushConsoleUpdates(), CONSOLE_BATCH_MS);
      }),
    );
  }

  async stop(): Promise<void> {
    this.subs.unsubscribe();
    clearTimeout(this.consoleTimer);
    this.abort.abort();
    await this.keepalive;
    await this.console.stop();
  }

  /** Every VM whose spec.node is this node, with memory and vCPUs from its XML. */
  private assigned(): AssignedVm[] {
    const out: AssignedVm[] = [];
    for (const vm of this.o.informer.names()) {
      const entry = this.o.informer.get(vm);
      if (!entry?.spec || 'error' in entry.spec || entry.spec.value.node !== this.o.node) continue;
      const info = entry.xml && 'value' in entry.xml ? entry.xml.value.info : undefined;
      if (!info) continue;
      const { memoryKiB, vcpus } = info;
      out.push({ name: vm, state: entry.spec.value.state, memoryKiB, vcpus });
    }
    return out;
  }

  private flushConsoleUpdates(): void {
    this.consoleTimer = undefined;
    const vms = [...this.consoleDirty];
    this.consoleDirty.clear();
    for (const vm of vms) this.updateConsole(vm);
  }

  /** Follow the serial log of a VM homed here; stop following it otherwise. */
  private updateConsole(vm: string): void {
    const entry = this.o.informer.get(vm);
    const homed = entry?.spec && 'value' in entry.spec && entry.spec.value.node === this.o.node;
    const path = homed && entry.xml && 'value' in entry.xml ? entry.xml.value.info?.serialLog : undefined;
    const current = this.console.state(vm)?.path;
    if (path === current) return;
    const switchOver = current === undefined ? Promise.resolve() : this.console.unfollow(vm);
    switchOver.then(
      () => path !== undefined && this.console.follow(vm, path),
      (error: unknown) => this.o.log.warn({ vm, err: error }, 'console unfollow failed'),
    );
  }
}
