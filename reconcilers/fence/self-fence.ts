// Self-fencing (DESIGN §4, "level 0"; optional, off by default): a daemon that has not been
// connected to ZooKeeper for selfFenceAfterMs destroys its own guests on shared storage, so that
// by the time a coordinator can recover them (session timeout + fence grace) they are gone.
//
// Off by default because a whole-ensemble outage (every daemon disconnected at once) would then
// stop every such guest in the cluster, though nobody could recover anything.
//
// Invariant S1: the timer runs only while the store is not connected; any reconnection (the same
// session or a new one) cancels it. S2: what it destroys is decided when it fires, from the local
// libvirt (what runs) and the VM cache (which have RBD disks): never a guest on local disks only.
import type { Subscription } from 'rxjs';
import type { Manager } from '../../controllers/manager.ts';
import type { Runnable } from '../../controllers/runnable.ts';
import { isActive } from '../../drivers/domain-run-state.ts';
import { valueOf } from '../../controllers/informers/nodes.ts';
import { selfFenceProblem, selfFenceTargets } from './plan.ts';

export interface SelfFenceOptions {
  afterMs: number;
  /** The daemon's session timeout, to warn of a deadline that comes too late. */
  sessionTimeoutMs: number;
  onAction?(line: string): void;
}

export class SelfFence implements Runnable {
  readonly name = 'self-fence';
  private sub: Subscription | undefined;
  private timer: NodeJS.Timeout | undefined;
  private firing: Promise<void> | undefined;

  constructor(
    private readonly m: Manager,
    private readonly o: SelfFenceOptions,
  ) {}

  async start(): Promise<void> {
    const problem = selfFenceProblem(this.o.afterMs, this.o.sessionTimeoutMs, this.m.informers.config.value.fence.graceMs);
    if (problem) this.m.log.warn({ afterMs: this.o.afterMs }, `self-fence: ${problem}`);
    this.m.log.info({ afterMs: this.o.afterMs }, 'self-fence armed');
    this.sub = this.m.store.connectionState$.subscribe((state) => {
      if (state === 'connected') {
        clearTimeout(this.timer);
        this.timer = undefined;
      } else this.timer ??= setTimeout(() => (this.firing = this.fire()), this.o.afterMs);
    });
  }

  async stop(): Promise<void> {
    this.sub?.unsubscribe();
    clearTimeout(this.timer);
    await this.firing;
  }

  private async fire(): Promise<void> {
    this.timer = undefined;
    if (this.m.store.connectionState === 'connected') return;
    const vms = this.m.informers.vms;
    try {
      const active = (await this.m.hv.listDomains()).filter((d) => isActive(d)).map((d) => d.name);
      const targets = selfFenceTargets(active, (vm) => valueOf(vms.get(vm)?.xml)?.info?.rbd ?? valueOf(vms.get(vm)?.spec)?.rbd);
      this.m.log.error({ afterMs: this.o.afterMs, targets }, `self-fence: no ZooKeeper session for ${this.o.afterMs} ms; destroying ${targets.length} guest(s) on shared storage`);
      for (const vm of targets) {
        try {
          await this.m.hv.destroy(vm);
          this.o.onAction?.(`${this.m.node} ${vm} self-fenced: destroyed (no ZooKeeper session for ${this.o.afterMs} ms)`);
        } catch (error) {
          this.m.log.error({ err: error, vm }, 'self-fence: could not destroy the guest');
        }
      }
    } catch (error) {
      this.m.log.error({ err: error }, 'self-fence: could not list the local guests');
    }
  }
}
