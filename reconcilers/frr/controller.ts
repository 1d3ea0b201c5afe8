// The FRR controller (DESIGN §4 "FRR BGP EVPN"): a one-key controller (the key is this node's
// name) that keeps the node's FRR running the config rendered from the cluster config, and
// reports BGP sessions and VNIs in the node status (`status.frr`).
//
// Sources: the cluster config (ASN, timers, coordinators, nodes' addresses), the node list, the
// networks (VNIs come and go), reconnects, and a resync (frr.resyncMs) that proves the config in
// sync: a delta found then is drift (a hand edit; FRR restarted) — reported and reverted. After
// any change the node is looked at again every 1 s, 2 s, 4 s… until its sessions are Established
// and its status stopped changing, so the status follows the sessions as they come up.
//
// FRR down is a status (FrrUnreachable), never a crash: the pass ends, the next looks again.
// The daemon never starts or stops FRR (systemd does; the rig and the sandbox start it).
import { filter, map, merge, tap } from 'rxjs';
import { Controller } from '../../controllers/controller.ts';
import type { Manager } from '../../controllers/manager.ts';
import { valueOf } from '../../controllers/informers/nodes.ts';
import { done, requeueAfter, type Result } from '../../controllers/reconciler.ts';
import type { Runnable } from '../../controllers/runnable.ts';
import { compareAndSet, NO_CHANGE } from '../../drivers/zk/index.ts';
import type { FrrDriver } from '../../drivers/frr/types.ts';
import { decodeNodeStatus, encodeNodeStatus, type NodeFrr } from '../../schemas/index.ts';
import { runFrrPass } from './execute.ts';
import { establishedPeers, frrStatus, isEmptyDelta, nextLookMs, sameFrrStatus } from './plan.ts';
import { desiredFrr, type FrrDesired } from './render.ts';

export interface FrrControllerOptions {
  driver: FrrDriver;
  /** The hostname FRR runs under (rendered into frr.conf). */
  hostname: string;
  /** The daemon config's cluster address, used when the cluster config lists none for this node. */
  fallbackAddress?: string;
  resyncMs?: number;
  onAction?(line: string): void;
  now?: () => string;
}

export class FrrController implements Runnable {
  readonly name = 'frr';
  private readonly controller: Controller<string>;
  private readonly now: () => string;
  private readonly resyncMs: number;
  private reloads = 0;
  private lastReloadAt: string | undefined;
  private lastDrift: { at: string; lines: string[] } | undefined;
  /** Consecutive passes that found the node still settling (drives the 1 s, 2 s, 4 s… looks). */
  private settling = 0;

  constructor(
    private readonly m: Manager,
    private readonly o: FrrControllerOptions,
  ) {
    this.now = o.now ?? (() => new Date().toISOString());
    this.resyncMs = o.resyncMs ?? 10_000;
    const { config, nodes, networks } = m.informers;
    const self = m.node;
    this.controller = new Controller<string>({
      name: 'frr',
      log: m.log,
      concurrency: 1,
      sources: [
        merge(
          // A new config starts a new settling: look again after 1 s, not after the back-off reached.
          config.changes$.pipe(tap(() => (this.settling = 0))),
          nodes.list$,
          networks.changes$,
          m.store.connectionState$.pipe(filter((s) => s === 'connected')),
        ).pipe(map(() => self)),
      ],
      resync: { keys: () => [self], everyMs: this.resyncMs },
      reconcile: () => this.reconcile(),
      plan: () => this.planLines(),
    });
  }

  get queue() {
    return this.controller.queue;
  }

  /** Reloads made since the daemon started. */
  get reloadCount(): number {
    return this.reloads;
  }

  start(): Promise<void> {
    return this.controller.start();
  }

  stop(): Promise<void> {
    return this.controller.stop();
  }

  plan(): Promise<string[]> {
    return this.controller.plan();
  }

  private desired(): FrrDesired {
    return desiredFrr(this.m.informers.config.value, this.m.node, {
      hostname: this.o.hostname,
      ...(this.o.fallbackAddress !== undefined ? { fallbackAddress: this.o.fallbackAddress } : {}),
    });
  }

  private async reconcile(): Promise<Result> {
    if (this.m.store.connectionState !== 'connected') return requeueAfter(500);
    const desired = this.desired();
    if (desired.kind === 'off') {
      await this.writeStatus(undefined);
      return done;
    }
    if (desired.kind === 'notConfigured') {
      await this.writeStatus(frrStatus({ state: 'NotConfigured', message: desired.message, reloads: this.reloads, expectedPeers: [], observedPeers: [], vnis: [], now: this.now() }));
      return done;
    }
    const pass = await runFrrPass(desired.text, { node: this.m.node, driver: this.o.driver, log: this.m.log, ...(this.o.onAction ? { onAction: this.o.onAction } : {}) });
    const now = this.now();
    if (pass.reloaded) {
      this.reloads++;
      this.lastReloadAt = now;
    }
    if (pass.drift) this.lastDrift = { at: now, lines: pass.drift };
    const status = frrStatus({
      state: pass.state,
      ...(pass.message !== undefined ? { message: pass.message } : {}),
      asn: desired.input.bgp.asn,
      routerId: desired.input.address,
      reloads: this.reloads,
      ...(this.lastReloadAt !== undefined ? { lastReloadAt: this.lastReloadAt } : {}),
      ...(this.lastDrift ? { lastDrift: this.lastDrift } : {}),
      expectedPeers: desired.peers,
      observedPeers: pass.peers,
      vnis: pass.vnis,
      now,
    });
    const changed = await this.writeStatus(status);
    const settled = pass.state === 'InSync' && !pass.reloaded && !changed && establishedPeers(status) === status.peers.length;
    this.settling = settled ? 0 : this.settling + 1;
    const ms = nextLookMs({ settled, attempt: this.settling - 1, resyncMs: this.resyncMs });
    return ms === undefined ? done : requeueAfter(ms);
  }

  /** Sets (or, with undefined, removes) status.frr; answers whether it changed. */
  private async writeStatus(frr: NodeFrr | undefined): Promise<boolean> {
    const cached = valueOf(this.m.informers.nodes.get(this.m.node)?.status);
    if (cached && sameFrrStatus(cached.frr, frr)) return false;
    const outcome = await compareAndSet(this.m.store, this.m.paths.nodeStatus(this.m.node), {
      what: `the status of node ${this.m.node}`,
      decode: (data) => decodeNodeStatus(data.toString('utf8')),
      encode: encodeNodeStatus,
      edit: (status) => {
        if (sameFrrStatus(status.frr, frr)) return NO_CHANGE;
        const { frr: _old, ...rest } = status;
        return frr ? { ...rest, frr } : rest;
      },
    });
    // No node status yet: the keepalive creates it and the settling looks write this then.
    if (outcome.kind === 'written') {
      this.m.informers.nodes.noteStatus(this.m.node, outcome.value, outcome.version);
      return true;
    }
    return outcome.kind !== 'unchanged';
  }

  /** The dry run: what a pass would change, without writing or reloading. */
  private async planLines(): Promise<string[]> {
    const desired = this.desired();
    const self = this.m.node;
    if (desired.kind === 'off') return [];
    if (desired.kind === 'notConfigured') return [`${self} frr not configured: ${desired.message}`];
    try {
      if ((await this.o.driver.readConfig()) !== desired.text) return [`${self} frr write frr.conf and reload (the rendered config changed)`];
      const delta = await this.o.driver.delta();
      if (isEmptyDelta(delta)) return [];
      return [`${self} frr reload ${delta.toAdd.length} to add ${delta.toDelete.length} to delete (FRR's running config drifted)`];
    } catch (error) {
      return [`${self} frr cannot check FRR: ${(error as Error).message}`];
    }
  }
}
