// Whether the networks a VM plugs into are ready on a node, read from the networks informer's
// cache (the network concern writes each node's readiness to /networks/<vni>/status). Shared by
// the domain concern (no start on a node whose networks are not ready) and the migration concern
// (no incoming migration there): pure, no effects.
import type { NetworkEntry } from '../controllers/informers/networks.ts';

/** vkbr<N> → N; any other bridge is not a network's. */
export function networkOfBridge(bridge: string): number | undefined {
  const m = /^vkbr([1-9][0-9]{0,7})$/.exec(bridge);
  return m ? Number(m[1]) : undefined;
}

/** Why the networks behind these bridges are not all ready on `node`, or undefined when they are. */
export function networksNotReady(node: string, bridges: readonly string[], network: (vni: number) => NetworkEntry | undefined): string | undefined {
  const problems: string[] = [];
  for (const bridge of bridges) {
    const vni = networkOfBridge(bridge);
    if (vni === undefined) continue;
    const entry = network(vni);
    const mine = entry?.status && 'value' in entry.status ? entry.status.value.nodes[node] : undefined;
    if (!entry?.spec) problems.push(`network ${vni} does not exist`);
    else if (!mine) problems.push(`network ${vni} is not ready on ${node} yet`);
    else if (!mine.ready) problems.push(`network ${vni} is not ready on ${node}: ${mine.reason ?? 'NotReady'}${mine.message ? ` (${mine.message})` : ''}`);
  }
  return problems.length > 0 ? problems.join('; ').slice(0, 4096) : undefined;
}
