// The node's background services beside the domain reconciler: the keepalive (node status every
// few seconds) and the console follower (serial logs of this node's VMs into ZooKeeper).
//
// Their settings come from the cluster config (/virtkeeper/config: keepaliveIntervalMs,
// consoleLogLines), watched and applied as it changes, unless the node's daemon config sets its
// own (keepaliveMs, consoleLines), which then wins for this node.
import { Subscription } from 'rxjs';
import { readHost } from '../../drivers/host.ts';
import { createConsoleFollower, type ConsoleFollower } from './console.ts';
import { runKeepalive } from './execute.ts';
import { compareAndSet, NO_CHANGE } from '../../drivers/zk/index.ts';
import { effectiveSettings, type AssignedVm } from './plan.ts';
import { decodeNodeStatus, defaultClusterConfig, encodeNodeLease, encodeNodeStatus } from '../../schemas/index.ts';
import type { Manager } from '../../controllers/manager.ts';
import type { Runnable } from '../../controllers/runnable.ts';

export interface NodeServicesOptions {
  version: string;
  /** The daemon config's keepaliveMs: when set, it wins over the cluster's keepaliveIntervalMs. */
  keepaliveMs: number | undefined;
  consolePollMs: number;
  /** The daemon config's consoleLines: when set, it wins over the cluster's consoleLogLines. */
  consoleLines: number | undefined;
}

/** How long VM changes gather before the console follower looks at them. */
const CONSOLE_BATCH_MS = 200;

export class NodeServices implements Runnable {
  readonly name = 'node';
  private stopped = false;
  /** The keepalive loop in force (restarted when its interval changes) and the interval it runs at. */
  private keepalive: { abort: AbortController; done: Promise<void>; intervalMs: number } | undefined;
  private readonly console: ConsoleFollower;
  private readonly subs = new Subscription();
  private readonly consoleDirty = new Set<string>();
  private consoleTimer: NodeJS.Timeout | undefined;

  private readonly o: NodeServicesOptions & Pick<Manager, 'node' | 'store' | 'paths' | 'hv' | 'log'> & { informer: Manager['informers']['vms'] };

  constructor(private readonly m: Manager, opts: NodeServicesOptions) {
    const o = { ...opts, node: m.node, store: m.store, paths: m.paths, hv: m.hv, log: m.log, informer: m.informers.vms };
    this.o = o;
    this.console = createConsoleFollower({
      log: o.log,
      maxLines: effectiveSettings(o, defaultClusterConfig()).consoleLines,
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

  async start(): Promise<void> {
    const { o } = this;
    // The keepalive starts with the config in force (the manager has synced it) and follows it.
    this.subs.add(this.m.informers.config.changes$.subscribe(() => this.applySettings()));
    this.applySettings();
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
    this.stopped = true;
    this.subs.unsubscribe();
    clearTimeout(this.consoleTimer);
    this.keepalive?.abort.abort();
    await this.keepalive?.done;
    await this.console.stop();
    await this.markStopped();
  }

  /**
   * A clean stop says so in the node status (daemonState stop), so the fencing coordinator reports
   * the node instead of fencing it: its guests run on. Best effort, bounded: a daemon that cannot
   * write it is taken for lost, as after a crash.
   */
  private async markStopped(): Promise<void> {
    if (this.o.store.connectionState !== 'connected') return;
    const write = compareAndSet(this.o.store, this.o.paths.nodeStatus(this.m.node), {
      what: `the status of node ${this.m.node}`,
      decode: (data) => decodeNodeStatus(data.toString('utf8')),
      encode: encodeNodeStatus,
      edit: (s) => (s.daemonState === 'stop' ? NO_CHANGE : { ...s, daemonState: 'stop' as const }),
    });
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<void>((resolve) => (timer = setTimeout(resolve, 2_000)));
    try {
      await Promise.race([write, timeout]);
    } catch (error) {
      this.o.log.warn({ err: error }, 'could not mark the node status stopped');
    } finally {
      clearTimeout(timer);
    }
  }

  /** The keepalive interval and console lines in force now. */
  settings(): { keepaliveMs: number; consoleLines: number } {
    return effectiveSettings(this.o, this.m.informers.config.value);
  }

  private applySettings(): void {
    if (this.stopped) return;
    const { keepaliveMs, consoleLines } = this.settings();
    this.console.setMaxLines(consoleLines);
    if (this.keepalive?.intervalMs === keepaliveMs) return;
    const source = this.o.keepaliveMs !== undefined ? 'daemon config' : 'cluster config';
    this.o.log.info({ keepaliveMs, consoleLines, source }, this.keepalive ? 'keepalive interval changed' : 'keepalive starting');
    // A new loop at the new interval, once the old one has settled (it writes nothing after that).
    const previous = this.keepalive;
    previous?.abort.abort();
    const abort = new AbortController();
    const done = (previous?.done ?? Promise.resolve()).then(() => (abort.signal.aborted ? undefined : this.runKeepalive(abort.signal, keepaliveMs)));
    this.keepalive = { abort, done, intervalMs: keepaliveMs };
  }

  private runKeepalive(signal: AbortSignal, intervalMs: number): Promise<void> {
    const { o } = this;
    let leaseVersion: number | null | undefined;
    return runKeepalive({
      node: o.node,
      version: o.version,
      hv: o.hv,
      log: o.log,
      signal,
      intervalMs,
      readHost: () => readHost(),
      readAssigned: async () => this.assigned(),
      readNodeStatus: async () => {
        const got = await o.store.get(o.paths.nodeStatus(o.node));
        return got ? { value: decodeNodeStatus(got.data), version: got.version } : null;
      },
      writeNodeStatus: async (status, version) => {
        const data = encodeNodeStatus(status);
        // The node informer caches our own write at once, so the watch emission it causes needs no decode.
        const nodes = this.m.informers.nodes;
        if (version === null) {
          await o.store.create(o.paths.nodeStatus(o.node), data, { parents: true });
          nodes.noteStatus(o.node, status, 0);
          return 0;
        }
        const written = (await o.store.set(o.paths.nodeStatus(o.node), data, version)).version;
        nodes.noteStatus(o.node, status, written);
        return written;
      },
      renewLease: async (renewedAt) => {
        // A compare-and-set on the version this loop wrote last (read once, and again after a failure).
        const path = o.paths.nodeLease(o.node);
        const data = encodeNodeLease({ renewedAt });
        try {
          if (leaseVersion === undefined) leaseVersion = (await o.store.exists(path))?.version ?? null;
          leaseVersion = leaseVersion === null ? (await o.store.create(path, data, { parents: true }), 0) : (await o.store.set(path, data, leaseVersion)).version;
        } catch (error) {
          leaseVersion = undefined;
          throw error;
        }
      },
    }).catch((error: unknown) => o.log.error({ err: error }, 'keepalive stopped'));
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
