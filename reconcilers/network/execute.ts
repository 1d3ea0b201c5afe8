// The network executor: carries out one pass of link actions as ONE `ip -batch` (with -force, so a
// failing line does not stop the others) plus one sysctl call, maps each failure back to its
// network, and returns each network's readiness on this node.
import type { Logger } from 'pino';
import type { BatchResult, LinkObservation } from '../../drivers/net/types.ts';
import { batchLines, describeLinkAction, sysctlsOf, type NetworkPlan, type NetworkVerdict } from './plan.ts';

/** The node's links, as the executor and the controller need them (drivers/net/ip.ts bound to a namespace). */
export interface LinkDriver {
  observe(): Promise<LinkObservation>;
  applyBatch(lines: string[]): Promise<BatchResult>;
  /** Sets sysctls (key → value); failures name the key in their message. */
  setSysctls(values: Record<string, string>): Promise<{ failures: Array<{ key: string; message: string }> }>;
  probeVlan(): Promise<{ supported: boolean; message?: string }>;
}

export interface NetworkEffects {
  node: string;
  group: number;
  links: LinkDriver;
  log: Logger;
  onAction?(line: string): void;
}

/**
 * Applies the plan's actions and answers each network's readiness: the planner's verdict, unless
 * one of the network's actions failed (then LinkFailed, with the kernel's message).
 */
export async function executeNetworkPlan(plan: NetworkPlan, fx: NetworkEffects): Promise<NetworkVerdict[]> {
  const failed = new Map<number, string[]>();
  const note = (vni: number | undefined, message: string) => {
    if (vni === undefined) return;
    failed.set(vni, [...(failed.get(vni) ?? []), message]);
  };
  if (plan.actions.length > 0) {
    const { lines, actionOf } = batchLines(plan.actions, fx.group);
    const result = lines.length > 0 ? await fx.links.applyBatch(lines) : { failures: [] };
    for (const action of plan.actions) fx.onAction?.(describeLinkAction(fx.node, action));
    for (const failure of result.failures) {
      const action = plan.actions[actionOf[failure.line] ?? -1];
      fx.log.warn({ line: lines[failure.line], vni: action?.vni, err: failure.message }, 'link action failed');
      note(action?.vni, `${lines[failure.line]}: ${failure.message}`);
    }
    const sysctls = sysctlsOf(plan.actions);
    if (Object.keys(sysctls).length > 0) {
      const { failures } = await fx.links.setSysctls(sysctls);
      for (const failure of failures) {
        const action = plan.actions.find((a) => a.kind === 'sysctl' && a.key === failure.key);
        fx.log.warn({ key: failure.key, vni: action?.vni, err: failure.message }, 'sysctl failed');
        note(action?.vni, `${failure.key}: ${failure.message}`);
      }
    }
  }
  return plan.verdicts.map((verdict) => {
    const messages = failed.get(verdict.vni);
    if (!messages) return verdict;
    return { vni: verdict.vni, ready: false, reason: 'LinkFailed', message: messages.join('; ').slice(0, 1024) };
  });
}
