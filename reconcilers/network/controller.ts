// The network controller (DESIGN §4 "Networks"): a one-key controller (the key is this node's
// name) that converges the node's bridges, VXLANs and vLANs to every Network spec in one pass.
//
// Sources: the networks informer (specs), the cluster config (bridgeDevice), the VM informer (the
// bridges local domains use — only while a pass has kept a bridge for them), netlink events
// (`ip monitor link`: a link deleted or changed by hand is repaired at once, not at the next
// resync), reconnects and the resync.
//
// Status: each network's readiness on this node is this node's entry in
// /networks/<vni>/status ({"nodes":{"hv1":{"ready":true,…}}}), written with compare-and-set and
// only when it changes; a bridge kept because a local domain uses it, and a kernel without 802.1Q,
// are conditions on the node status (BridgeInUse, VlanUnsupported).
//
// A network whose spec is unreadable is left exactly as it is: its links are hidden from the
// planner, which would otherwise see them as strays of our group and delete them.
import { filter, map, merge, type Observable } from 'rxjs';
import { Controller } from '../../controllers/controller.ts';
import type { Manager } from '../../controllers/manager.ts';
import { valueOf } from '../../controllers/informers/nodes.ts';
import { done, requeueAfter, type Result } from '../../controllers/reconciler.ts';
import type { Runnable } from '../../controllers/runnable.ts';
import { compareAndSet, NO_CHANGE, NoNodeError } from '../../drivers/zk/index.ts';
import type { LinkObservation } from '../../drivers/net/types.ts';
import {
  decodeNetworkStatus,
  decodeNodeStatus,
  encodeNetworkStatus,
  encodeNodeStatus,
  type Condition,
  type NetworkNodeStatus,
  type NetworkStatus,
  type NodeStatus,
} from '../../schemas/index.ts';
import { executeNetworkPlan, type LinkDriver } from './execute.ts';
import { bridgeName, describeLinkAction, planNetworks, vlanName, vxlanName, type NetworkDesired, type NetworkPlan, type NetworkPlanInput, type NetworkVerdict } from './plan.ts';

export interface NetworkControllerOptions {
  links: LinkDriver;
  /** Netlink changes of the node's links ("look again"). */
  linkEvents: Observable<unknown>;
  /** The daemon config's cluster address; the cluster config's nodes.<node>.clusterAddress wins when set. */
  clusterAddress?: string;
  clusterDevice?: string;
  group: number;
  resyncMs?: number;
  onAction?(line: string): void;
  now?: () => string;
}

/** Node conditions this controller owns. */
const BRIDGE_IN_USE = 'BridgeInUse';
const VLAN_UNSUPPORTED = 'VlanUnsupported';
const OWN_CONDITIONS = [BRIDGE_IN_USE, VLAN_UNSUPPORTED] as const;

/** VM phases in which the guest's domain exists on its status node. */
const DOMAIN_PHASES: ReadonlySet<string> = new Set(['Starting', 'Running', 'Migrating', 'Failed']);

export class NetworkController implements Runnable {
  readonly name = 'network';
  private readonly controller: Controller<string>;
  private vlan: { supported: boolean; message?: string } = { supported: false, message: 'not probed yet' };
  private readonly now: () => string;
  /** The last pass kept a stray bridge because local domains use it (BridgeInUse). */
  private keepingBridges = false;

  constructor(
    private readonly m: Manager,
    private readonly o: NetworkControllerOptions,
  ) {
    this.now = o.now ?? (() => new Date().toISOString());
    const { networks, config, vms } = m.informers;
    const self = m.node;
    this.controller = new Controller<string>({
      name: 'network',
      log: m.log,
      concurrency: 1,
      sources: [
        merge(
          networks.changes$,
          config.changes$,
          o.linkEvents,
          m.store.connectionState$.pipe(filter((s) => s === 'connected')),
          // The local domains matter only while a bridge is kept for them: not on every VM change.
          vms.changes$.pipe(filter(() => this.keepingBridges)),
        ).pipe(map(() => self)),
      ],
      resync: { keys: () => [self], everyMs: o.resyncMs ?? 60_000 },
      reconcile: () => this.reconcile(),
      plan: async () => (await this.planNow()).plan.actions.map((a) => describeLinkAction(self, a)),
    });
  }

  get queue() {
    return this.controller.queue;
  }

  async start(): Promise<void> {
    this.vlan = await this.o.links.probeVlan().catch((error: unknown) => ({ supported: false, message: `the vLAN probe failed: ${(error as Error).message}` }));
    if (!this.vlan.supported) this.m.log.warn({ reason: VLAN_UNSUPPORTED }, `this kernel cannot make 802.1Q vLANs: bridged networks will not be ready here (${this.vlan.message ?? ''})`);
    await this.controller.start();
  }

  async stop(): Promise<void> {
    await this.controller.stop();
  }

  plan(): Promise<string[]> {
    return this.controller.plan();
  }

  private async reconcile(): Promise<Result> {
    if (this.m.store.connectionState !== 'connected') return requeueAfter(500);
    const { plan, desired } = await this.planNow();
    this.keepingBridges = plan.conditions.length > 0;
    const verdicts = await executeNetworkPlan(plan, { node: this.m.node, group: this.o.group, links: this.o.links, log: this.m.log, ...(this.o.onAction ? { onAction: this.o.onAction } : {}) });
    const generations = new Map(desired.map((d) => [d.vni, d.generation]));
    for (const verdict of verdicts) await this.writeStatus(verdict, generations.get(verdict.vni) ?? -1);
    await this.writeConditions(plan);
    return done;
  }

  /** Observes the links and plans the pass (no effects). */
  private async planNow(): Promise<{ plan: NetworkPlan; desired: NetworkDesired[] }> {
    const { networks, config } = this.m.informers;
    const desired: NetworkDesired[] = [];
    const unreadable = new Set<number>();
    for (const vni of networks.vnis()) {
      const spec = networks.get(vni)?.spec;
      if (spec && 'value' in spec) desired.push({ vni, spec: spec.value, generation: spec.version });
      else if (spec) unreadable.add(vni);
    }
    const observed = hideLinksOf(await this.o.links.observe(), unreadable);
    const clusterAddress = this.clusterAddress();
    const input: NetworkPlanInput = {
      networks: desired,
      config: config.value,
      local: {
        group: this.o.group,
        ...(clusterAddress !== undefined ? { clusterAddress } : {}),
        ...(this.o.clusterDevice !== undefined ? { clusterDevice: this.o.clusterDevice } : {}),
      },
      observed,
      vlanSupported: this.vlan.supported,
      bridgesInUse: this.bridgesInUse(),
    };
    return { plan: planNetworks(input), desired };
  }

  /** The VXLANs' local address: the cluster config's for this node (FRR's router-id too), else the daemon config's. */
  private clusterAddress(): string | undefined {
    return this.m.informers.config.value.nodes?.[this.m.node]?.clusterAddress ?? this.o.clusterAddress;
  }

  /** Bridge → the VMs whose domain is on this node (by their status) and whose XML uses it. */
  private bridgesInUse(): Map<string, string[]> {
    const vms = this.m.informers.vms;
    const out = new Map<string, string[]>();
    for (const name of vms.names()) {
      const entry = vms.get(name);
      const status = valueOf(entry?.status);
      if (status?.node !== this.m.node || !DOMAIN_PHASES.has(status.phase)) continue;
      const bridges = (entry?.xml && 'value' in entry.xml ? entry.xml.value.info?.bridges : undefined) ?? [];
      for (const bridge of bridges) out.set(bridge, [...(out.get(bridge) ?? []), name]);
    }
    return out;
  }

  /** This node's entry in /networks/<vni>/status, written only when it changes. */
  private async writeStatus(verdict: NetworkVerdict, generation: number): Promise<void> {
    const node = this.m.node;
    const entry: NetworkNodeStatus = {
      ready: verdict.ready,
      ...(verdict.reason !== undefined ? { reason: verdict.reason } : {}),
      ...(verdict.message !== undefined ? { message: verdict.message.slice(0, 1024) } : {}),
      observedGeneration: generation,
      updatedAt: this.now(),
    };
    const cached = valueOf(this.m.informers.networks.get(verdict.vni)?.status)?.nodes[node];
    if (cached && sameReadiness(cached, entry)) return;
    try {
      const outcome = await compareAndSet(this.m.store, this.m.paths.networkStatus(verdict.vni), {
        what: `the status of network ${verdict.vni}`,
        decode: (data) => decodeNetworkStatus(data.toString('utf8')),
        encode: encodeNetworkStatus,
        absent: (): NetworkStatus => ({ nodes: {} }),
        edit: (current) => {
          const before = current.nodes[node];
          return before && sameReadiness(before, entry) ? NO_CHANGE : { nodes: { ...current.nodes, [node]: entry } };
        },
      });
      if (outcome.kind === 'written') this.m.informers.networks.noteStatus(verdict.vni, outcome.value, outcome.version);
    } catch (error) {
      // The network was deleted meanwhile (its subtree went with it): nothing to report.
      if (error instanceof NoNodeError) return;
      throw error;
    }
  }

  /** The node conditions this controller owns: BridgeInUse (bridges kept for local domains) and VlanUnsupported. */
  private async writeConditions(plan: NetworkPlan): Promise<void> {
    const now = this.now();
    const wanted: Condition[] = [];
    if (plan.conditions.length > 0) {
      const message = plan.conditions.map((c) => `${c.bridge} is still used by ${c.vms.join(', ')}`).join('; ');
      wanted.push({ type: BRIDGE_IN_USE, status: 'True', reason: BRIDGE_IN_USE, message: message.slice(0, 4096), lastTransitionTime: now });
    }
    if (!this.vlan.supported) {
      wanted.push({ type: VLAN_UNSUPPORTED, status: 'True', reason: VLAN_UNSUPPORTED, message: `bridged networks cannot be made here: ${this.vlan.message ?? 'no 802.1Q support'}`.slice(0, 4096), lastTransitionTime: now });
    }
    const current = valueOf(this.m.informers.nodes.get(this.m.node)?.status);
    if (current && sameConditions(current, wanted)) return;
    const outcome = await compareAndSet(this.m.store, this.m.paths.nodeStatus(this.m.node), {
      what: `the status of node ${this.m.node}`,
      decode: (data) => decodeNodeStatus(data.toString('utf8')),
      encode: encodeNodeStatus,
      edit: (status) => {
        if (sameConditions(status, wanted)) return NO_CHANGE;
        const kept = status.conditions.filter((c) => !(OWN_CONDITIONS as readonly string[]).includes(c.type));
        const merged = wanted.map((c) => {
          const before = status.conditions.find((b) => b.type === c.type);
          return before && before.status === c.status ? { ...c, lastTransitionTime: before.lastTransitionTime } : c;
        });
        return { ...status, conditions: [...kept, ...merged] };
      },
    });
    // No node status yet: the keepalive creates it, and the next pass writes the conditions.
    if (outcome.kind === 'written') this.m.informers.nodes.noteStatus(this.m.node, outcome.value, outcome.version);
  }
}

function sameReadiness(a: NetworkNodeStatus, b: NetworkNodeStatus): boolean {
  return a.ready === b.ready && a.reason === b.reason && a.message === b.message && a.observedGeneration === b.observedGeneration;
}

/** The node status carries exactly `wanted` among this controller's conditions (times aside). */
function sameConditions(status: NodeStatus, wanted: readonly Condition[]): boolean {
  const own = status.conditions.filter((c) => (OWN_CONDITIONS as readonly string[]).includes(c.type));
  if (own.length !== wanted.length) return false;
  return wanted.every((w) => own.some((c) => c.type === w.type && c.status === w.status && c.message === w.message));
}

/** The observation without the links of these networks (left exactly as they are). */
function hideLinksOf(observed: LinkObservation, vnis: ReadonlySet<number>): LinkObservation {
  if (vnis.size === 0) return observed;
  const hidden = new Set([...vnis].flatMap((vni) => [bridgeName(vni), vxlanName(vni), vlanName(vni)]));
  return { ...observed, links: observed.links.filter((l) => !hidden.has(l.name)) };
}
