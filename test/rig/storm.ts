// A move storm (issue 12 §1): `writes` version-checked writes of a VM's spec.node, `spacingMs`
// apart, cycling through the nodes after `from` — the write `vk vm move` makes (node set,
// previousNode dropped). Shared by test/domain/storm.test.ts and bench/storm.ts.
import { compareAndSet, type ZkStore } from '../../drivers/zk/index.ts';
import { decodeVmSpec, encodeVmSpec, ZkPaths } from '../../schemas/index.ts';
import { indexOps } from '../../core/vm-index.ts';

/** The spacings a series of storms cycles through. */
export const STORM_SPACINGS_MS = [5, 10, 20, 30, 50] as const;

const paths = new ZkPaths();

/** Compare-and-set of spec.node (re-read and retried on a version conflict, up to CAS_ATTEMPTS). */
export async function moveVm(store: ZkStore, vm: string, node: string): Promise<void> {
  const outcome = await compareAndSet(store, paths.vmSpec(vm), {
    decode: (data) => decodeVmSpec(data.toString('utf8')),
    encode: encodeVmSpec,
    edit: ({ previousNode: _dropped, ...spec }) => ({ ...spec, node }),
    also: (next) => indexOps(store, paths, vm, next),
  });
  if (outcome.kind === 'absent') throw new Error(`no spec for ${vm}`);
}

/** Runs one storm; resolves to the node written last. */
export async function moveStorm(store: ZkStore, vm: string, nodes: readonly string[], from: string, o: { writes: number; spacingMs: number }): Promise<string> {
  let index = nodes.indexOf(from);
  let last = from;
  for (let i = 0; i < o.writes; i++) {
    index = (index + 1) % nodes.length;
    last = nodes[index]!;
    const started = performance.now();
    await moveVm(store, vm, last);
    const left = o.spacingMs - (performance.now() - started);
    if (i < o.writes - 1 && left > 0) await new Promise((r) => setTimeout(r, left));
  }
  return last;
}
