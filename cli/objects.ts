// What `vk apply` writes for each manifest object, and what `vk diff` compares.
//
// An object maps to znodes ("parts"): a VM to /vms/<name>/spec and /vms/<name>/xml, a network to
// /networks/<vni>/spec, a node to /nodes/<name>/spec, the cluster config to /config. Writing one
// object is one multi: create ops for absent znodes (and the object's parent znode), set ops with
// the versions read for changed ones, check ops for the unchanged parts of a changed object (the
// write is based on one consistent view). An object whose encoded bytes all equal what ZooKeeper
// holds is not written at all.
//
// A VM's previousNode, restartedAt and forceStopAt are operational state set by verbs (migrate,
// restart, stop): when ZooKeeper has them and the manifest does not, they are kept.
import { TransactionError, type Op, type ZkStat } from '../drivers/zk/index.ts';
import {
  decodeClusterConfig,
  decodeNetworkSpec,
  decodeNodeSpec,
  decodeVmSpec,
  encodeClusterConfig,
  encodeNetworkSpec,
  encodeNodeSpec,
  encodeVmSpec,
  type VmSpec,
} from '../schemas/index.ts';
import type { Cluster } from './connect.ts';
import { ensureLayout } from './connect.ts';
import { CliError, EXIT_USAGE } from './errors.ts';
import { objectId, sortForWrite, type DesiredObject } from './manifests.ts';
import { toYaml } from './output.ts';
import { dedupeCreates, indexOps } from '../core/vm-index.ts';

export type ApplyResult = 'created' | 'configured' | 'unchanged';

export interface Part {
  path: string;
  /** spec, xml or config: names the part in diffs. */
  label: string;
  desired: string;
  live: { data: Buffer; version: number; stat: ZkStat } | null;
  same: boolean;
  /** Renderings compared by `vk diff` (YAML for JSON values, the text itself for XML). */
  liveText: string;
  desiredText: string;
}

export interface PreparedObject {
  obj: DesiredObject;
  id: string;
  result: ApplyResult;
  parts: Part[];
  ops: Op[];
  /** The VM spec that would be written (manifest plus kept operational fields). */
  vmSpec?: VmSpec;
}

type Decoder = (value: unknown) => unknown;

function jsonPart(path: string, label: string, desired: string, live: Part['live'], decode: Decoder, encode: (v: unknown) => string): Part {
  let liveValue: unknown;
  let canonical: string | undefined;
  if (live) {
    try {
      liveValue = decode(live.data);
      canonical = encode(liveValue);
    } catch {
      // Not decodable: compare and show the raw text.
      try {
        liveValue = JSON.parse(live.data.toString('utf8'));
      } catch {
        liveValue = live.data.toString('utf8');
      }
    }
  }
  const same = live !== null && (live.data.toString('utf8') === desired || canonical === desired);
  return {
    path,
    label,
    desired,
    live,
    same,
    liveText: live ? toYaml(liveValue) : '',
    desiredText: toYaml(JSON.parse(desired)),
  };
}

function textPart(path: string, label: string, desired: string, live: Part['live']): Part {
  const liveText = live ? live.data.toString('utf8') : '';
  return { path, label, desired, live, same: live !== null && liveText === desired, liveText, desiredText: desired };
}

/** Reads what ZooKeeper holds for `obj` and works out the write. */
export async function prepareObject({ store, paths }: Cluster, obj: DesiredObject): Promise<PreparedObject> {
  let parent: string | null = null;
  let parts: Part[];
  let vmSpec: VmSpec | undefined;
  switch (obj.kind) {
    case 'VM': {
      parent = paths.vm(obj.name);
      const [spec, xml] = await Promise.all([store.get(paths.vmSpec(obj.name)), store.get(paths.vmXml(obj.name))]);
      const merged: VmSpec = { ...obj.spec };
      if (spec) {
        let liveSpec: VmSpec | undefined;
        try {
          liveSpec = decodeVmSpec(spec.data);
        } catch {
          liveSpec = undefined;
        }
        if (liveSpec && merged.previousNode === undefined && liveSpec.previousNode !== undefined) merged.previousNode = liveSpec.previousNode;
        if (liveSpec && merged.restartedAt === undefined && liveSpec.restartedAt !== undefined) merged.restartedAt = liveSpec.restartedAt;
        if (liveSpec && merged.forceStopAt === undefined && liveSpec.forceStopAt !== undefined) merged.forceStopAt = liveSpec.forceStopAt;
      }
      vmSpec = merged;
      parts = [
        jsonPart(paths.vmSpec(obj.name), 'spec', encodeVmSpec(merged), spec, (v) => decodeVmSpec(v), (v) => encodeVmSpec(v as VmSpec)),
        textPart(paths.vmXml(obj.name), 'xml', obj.xml, xml),
      ];
      break;
    }
    case 'Network': {
      parent = paths.network(obj.name);
      const spec = await store.get(paths.networkSpec(obj.name));
      parts = [jsonPart(paths.networkSpec(obj.name), 'spec', encodeNetworkSpec(obj.spec), spec, (v) => decodeNetworkSpec(v), (v) => encodeNetworkSpec(v as never))];
      break;
    }
    case 'Node': {
      parent = paths.node(obj.name);
      const spec = await store.get(paths.nodeSpec(obj.name));
      parts = [jsonPart(paths.nodeSpec(obj.name), 'spec', encodeNodeSpec(obj.spec), spec, (v) => decodeNodeSpec(v), (v) => encodeNodeSpec(v as never))];
      break;
    }
    case 'ClusterConfig': {
      const config = await store.get(paths.config);
      // Maintenance is the operators' switch (`vk cluster maintenance`), not declared state: an
      // apply keeps it as it is, so re-applying a config never turns fencing back on mid-maintenance.
      let maintenance = false;
      try {
        maintenance = config ? decodeClusterConfig(config.data).maintenance : false;
      } catch {
        // An unreadable config is replaced whole; maintenance off, as in a new cluster.
      }
      const desired = { ...obj.spec, maintenance };
      parts = [jsonPart(paths.config, 'config', encodeClusterConfig(desired), config, (v) => decodeClusterConfig(v), (v) => encodeClusterConfig(v as never))];
      break;
    }
  }
  const result: ApplyResult = parts.every((p) => p.live === null) ? 'created' : parts.every((p) => p.same) ? 'unchanged' : 'configured';
  const ops: Op[] = [];
  if (result !== 'unchanged') {
    if (parent !== null && !(await store.exists(parent))) ops.push({ op: 'create', path: parent });
    for (const part of parts) {
      if (part.live === null) ops.push({ op: 'create', path: part.path, data: part.desired });
      else if (part.same) ops.push({ op: 'check', path: part.path, version: part.live.version });
      else ops.push({ op: 'set', path: part.path, data: part.desired, version: part.live.version });
    }
    // A VM's write also checks or creates the index entry of the node its spec names (core/vm-index.ts).
    if (vmSpec) ops.push(...(await indexOps(store, paths, obj.name, vmSpec)));
  }
  return { obj, id: objectId(obj), result, parts, ops, ...(vmSpec && { vmSpec }) };
}

/** The highest zxid at which any part of `prepared` changed. */
export function lastChange(prepared: PreparedObject): bigint {
  let max = 0n;
  for (const part of prepared.parts) if (part.live && part.live.stat.mzxid > max) max = part.live.stat.mzxid;
  return max;
}

export interface ApplyOptions {
  dryRun?: boolean;
  /** Applying a saved plan: refuse when any object changed after this zxid, and never retry. */
  planZxid?: bigint;
  print?: (line: string) => void;
  /**
   * Called with every object each time it is read, before the first write and before every retry;
   * throws to refuse it (nothing more is written). `vk vm define` refuses a VM that exists by then.
   */
  check?: (prepared: PreparedObject) => void;
}

export class StalePlanError extends CliError {
  constructor(detail: string) {
    super(`the plan is stale: ${detail}; run vk plan again`, EXIT_USAGE);
  }
}

function checkFresh(prepared: PreparedObject, planZxid: bigint | undefined): void {
  if (planZxid === undefined) return;
  const changed = lastChange(prepared);
  if (changed > planZxid) throw new StalePlanError(`${prepared.id} changed at zxid ${changed}, after the plan (zxid ${planZxid})`);
}

function isConflict(error: unknown): boolean {
  return error instanceof TransactionError && ['BAD_VERSION', 'NODE_EXISTS', 'NO_NODE'].includes(error.cause.code);
}

/**
 * The most bytes vk puts in one ZooKeeper request. ZooKeeper refuses a request over jute.maxbuffer
 * (1 MiB by default) by dropping the connection; this leaves room for paths, ACLs and headers.
 */
export const MAX_TRANSACTION_BYTES = 960 * 1024;

/** What a multi of `ops` costs on the wire, roughly (data and path bytes plus a per-op allowance). */
export function transactionBytes(ops: readonly Op[]): number {
  let total = 0;
  for (const op of ops) {
    const data = op.op === 'create' || op.op === 'set' ? op.data : undefined;
    total += 64 + Buffer.byteLength(op.path) + (data === undefined ? 0 : typeof data === 'string' ? Buffer.byteLength(data) : data.length);
  }
  return total;
}

/** Refuses (exit 2, before any write) an object whose write ZooKeeper could not take. */
function checkSize(prepared: PreparedObject): void {
  const bytes = transactionBytes(prepared.ops);
  if (bytes > MAX_TRANSACTION_BYTES) {
    throw new CliError(`${prepared.obj.source}: ${prepared.id} would be a ${bytes}-byte write, more than ZooKeeper takes in one request (${MAX_TRANSACTION_BYTES} bytes); nothing was written`, EXIT_USAGE);
  }
}

/** Reads and prepares one object, with the checks every read of it gets before a write. */
async function prepareChecked(cluster: Cluster, obj: DesiredObject, options: ApplyOptions, planZxid: bigint | undefined): Promise<PreparedObject> {
  const p = await prepareObject(cluster, obj);
  checkFresh(p, planZxid);
  checkSize(p);
  options.check?.(p);
  return p;
}

async function prepareAll(cluster: Cluster, objects: readonly DesiredObject[], options: ApplyOptions, planZxid: bigint | undefined): Promise<PreparedObject[]> {
  const prepared: PreparedObject[] = [];
  for (const obj of objects) prepared.push(await prepareChecked(cluster, obj, options, planZxid));
  return prepared;
}

/** How many times a write that lost a race with another writer is re-read and tried again. */
const WRITE_ATTEMPTS = 5;

/**
 * Writes `ops(prepared)` in one multi. A write that loses a race (a version or existence check
 * fails) is re-read with `reread` and tried again, at most WRITE_ATTEMPTS times in all; applying a
 * saved plan never retries: `changed` says what changed in the stale plan's error.
 */
async function writeRetrying<T>(
  cluster: Cluster,
  prepared: T,
  ops: (prepared: T) => Op[],
  reread: () => Promise<T>,
  plan: { zxid: bigint | undefined; changed: string },
): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      await cluster.store.multi(ops(prepared));
      return prepared;
    } catch (error) {
      if (!isConflict(error)) throw error;
      if (plan.zxid !== undefined) throw new StalePlanError(`${plan.changed} while applying the plan`);
      if (attempt >= WRITE_ATTEMPTS) throw error;
      prepared = await reread();
    }
  }
}

/**
 * Writes `objects` (already validated), printing `vm/web1 created|configured|unchanged`. Every
 * object is read, encoded and size-checked before the first write. When all the writes fit in one
 * ZooKeeper request they are one multi (all or nothing); otherwise each object is one multi. A
 * write that loses a race with another writer is re-read and retried (not when applying a saved
 * plan: that is a stale plan). This is the one write path of manifest objects: `vk apply` and
 * `vk vm define` both come here.
 */
export async function applyObjects(cluster: Cluster, objects: readonly DesiredObject[], options: ApplyOptions = {}): Promise<PreparedObject[]> {
  const print = options.print ?? ((line: string) => process.stdout.write(`${line}\n`));
  const sorted = sortForWrite(objects);
  let prepared = await prepareAll(cluster, sorted, options, options.planZxid);
  if (options.dryRun) {
    for (const p of prepared) print(`${p.id} ${p.result} (dry run)`);
    return prepared;
  }
  await ensureLayout(cluster, prepared.flatMap((p) => p.ops.map((op) => op.path)));
  if (transactionBytes(prepared.flatMap((p) => p.ops)) <= MAX_TRANSACTION_BYTES) {
    prepared = await writeRetrying(
      cluster,
      prepared,
      (all) => dedupeCreates(all.flatMap((p) => p.ops)),
      () => prepareAll(cluster, sorted, options, undefined),
      { zxid: options.planZxid, changed: 'the cluster changed' },
    );
    for (const p of prepared) print(`${p.id} ${p.result}`);
    return prepared;
  }
  const done: PreparedObject[] = [];
  for (const first of prepared) {
    // An object with nothing to write is an empty multi: no request at all.
    const p = await writeRetrying(cluster, first, (one) => one.ops, () => prepareChecked(cluster, first.obj, options, undefined), {
      zxid: options.planZxid,
      changed: `${first.id} changed`,
    });
    print(`${p.id} ${p.result}`);
    done.push(p);
  }
  return done;
}
