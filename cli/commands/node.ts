// `vk node flush|ready NAME`: what admins ask of a node (its spec's domainState); `vk node primary
// NAME` (commands/primary.ts): a planned hand-over of the primary coordinator role; `vk node fence
// set|show|rm NAME` (commands/fence.ts): its fence settings.
import type { Command } from 'commander';
import { setNodeDomainState } from '../../core/node.ts';
import { decodeNodeStatus, type NodeSpec, type NodeStatus } from '../../schemas/index.ts';
import { withCluster } from '../connect.ts';
import { println } from '../output.ts';
import { addWaitOptions, dataOf, waitFor, type WaitFlags, type WaitVerdict } from '../wait.ts';
import { registerFence } from './fence.ts';
import { registerPrimary } from './primary.ts';

function verb(node: Command, name: string, description: string, domainState: NodeSpec['domainState']): void {
  const cmd = addWaitOptions(node.command(name).description(description).argument('<name>', 'node name'));
  cmd.action(async (nodeName: string, flags: WaitFlags, command: Command) => {
    await withCluster(command, async (cluster) => {
      const updated = await setNodeDomainState(cluster, nodeName, domainState);
      // Seed 003: a flush that will wait for another one's lock says so.
      const queued = updated.flushLockHolder ? ` (the flush lock is held by ${updated.flushLockHolder}: this flush waits for it)` : '';
      println(updated.changed ? `node/${nodeName} ${name} requested${queued}` : `node/${nodeName} unchanged (already ${domainState})`);
      if (!flags.wait) return;
      const source = cluster.store.watchData(cluster.paths.nodeStatus(nodeName));
      const done = await waitFor(
        source,
        (state): WaitVerdict => {
          const status = dataOf(state, (raw) => decodeNodeStatus(raw));
          if (!status) return { pending: 'no status yet (is its daemon running?)' };
          // A daemon that does not track the node spec's generation reports -1: trust its domainState then.
          const seen = status.observedGeneration === -1 || status.observedGeneration >= updated.version;
          if (status.domainState === domainState && seen) {
            return { done: `node/${nodeName} ${domainState}${status.flush && status.flush.generation >= updated.version ? `: ${status.flush.message}` : ''}` };
          }
          if (status.observedGeneration > updated.version && status.domainState !== domainState) {
            return { failed: `node/${nodeName} ${name} superseded by a later request (now ${status.domainState})` };
          }
          const progress = flushProgress(status, updated.version);
          if (progress) return { pending: progress };
          const vms = status.runningVms.length;
          return { pending: `${status.domainState}, ${vms} VM${vms === 1 ? '' : 's'} running there` };
        },
        { what: `node/${nodeName}`, timeoutSeconds: flags.timeout },
      );
      println(done);
    });
  });
}

/** The progress line of the flush or ready serving spec version `version`, if the node reports one. */
function flushProgress(status: NodeStatus, version: number): string | undefined {
  const f = status.flush;
  if (!f || f.generation < version) return undefined;
  if (f.phase === 'queued') return `${status.domainState}: ${f.message}`;
  if (f.phase === 'moving') {
    // The daemon's message carries the figures and the lines worth reading (a VM shut down for want
    // of a target, a move skipped or re-planned); the figures alone when it has none.
    const figures = `${f.moved + f.stopped}/${f.total} done, ${f.inFlight} under way`;
    const notes = f.message.indexOf('; ');
    return `${status.domainState}: ${figures}${notes >= 0 ? f.message.slice(notes) : ''}`;
  }
  return undefined;
}

export function registerNode(program: Command): void {
  const node = program.command('node').description('act on one node (flush it for maintenance, bring it back, make it the primary coordinator, set how it is fenced)');
  verb(node, 'flush', 'move every VM off the node (VMs with no valid target are shut down; ready starts them again)', 'flushed');
  verb(node, 'ready', 'make the node take VMs again (brings back VMs whose previous node it is, starts the VMs a flush shut down and autostart VMs)', 'ready');
  registerPrimary(node);
  registerFence(node);
}
