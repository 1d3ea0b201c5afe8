// The VM writes, shared by the CLI (`vk vm …`) and the REST API (api/): one implementation of each.
// They take the cluster handle and plain typed inputs, print nothing, and throw typed errors
// (core/errors.ts; schemas' ValidationError for bad input).
//
// Invariants:
// - Bad input is found before the first write: define validates everything that needs no
//   cluster in prepareDefine (pure), and every other check runs before the write it guards.
// - Every change of an existing VM is one compare-and-set of its spec znode (cli/update.ts),
//   retried on conflicts: one change, one new generation. Define goes through apply's write path
//   (cli/objects.ts applyObjects), so a defined VM is written exactly as a manifest's VM.
// - Removal deletes the VM's znodes in one multi, at the versions read.
import { dirname } from 'node:path';
import { ZkError } from '../drivers/zk/index.ts';
import { selectNode } from '../reconcilers/selectors.ts';
import { API_VERSION, parseDomainXml, parseWith, ValidationError, VmMetaSchema, type DomainInfo, type VmMeta, type VmSpec, type VmState } from '../schemas/index.ts';
import { readAllNodes, readAllVms, readConfig, readExistingVm, readNode, readVm, readVmOrFail, unreadableSpec, type LiveVm } from '../cli/cluster.ts';
import { flushLocksRefusal } from '../reconcilers/rbd/plan.ts';
import { EXIT_USAGE, withSource } from '../cli/errors.ts';
import type { Cluster } from '../cli/connect.ts';
import { decodeDocument, type DesiredVm } from '../cli/manifests.ts';
import { applyObjects } from '../cli/objects.ts';
import { updateVmSpec, type Updated } from '../cli/update.ts';
import { ConflictError, ContentionError, InvalidInputError, RefusedError } from './errors.ts';
import { removalIndexOps } from './vm-index.ts';

export const DEFAULT_META: VmMeta = { nodeLimit: [], nodeSelector: 'default', autostart: false, migrationMethod: 'default', maxDowntimeMs: 300 };

/** A VM write's outcome: the spec as it was and is, and the generation to wait for. */
export type VmUpdate = Updated<VmSpec> & { vm: LiveVm };

// ---------------------------------------------------------------------------------- nodes

/**
 * The node a VM goes to when none is given: the VM's selector within its node limit.
 * `hint` ends the refusal's message (the CLI says "give --node").
 */
export async function chooseNode(cluster: Cluster, meta: VmMeta, current: string | undefined, vmName: string, hint = 'give --node'): Promise<string> {
  const [nodes, config] = await Promise.all([readAllNodes(cluster.store, cluster.paths), readConfig(cluster.store, cluster.paths)]);
  const selection = selectNode({
    selector: meta.nodeSelector,
    defaultSelector: config.value.defaultNodeSelector,
    nodeLimit: meta.nodeLimit,
    current,
    nodes: nodes.map((n) => ({ name: n.name, alive: n.alive, spec: n.spec?.value ?? null, status: n.status?.value ?? null })),
  });
  if (selection.node === undefined) {
    const why = selection.excluded.map((e) => `${e.node} (${e.why})`).join(', ');
    throw new RefusedError(`no node available for vm ${vmName} (selector ${selection.selector})${why ? `: ${why}` : ': the cluster has no nodes'}; ${hint}`);
  }
  return selection.node;
}

/** Refuses a node that is not in the cluster; `field` names the input (`--node` in the CLI, `node` in the API). */
export async function requireNode(cluster: Cluster, node: string, field: string): Promise<void> {
  if (!(await cluster.store.exists(cluster.paths.node(node)))) throw new InvalidInputError(field, node, `${field}: no node ${JSON.stringify(node)} in the cluster`);
}

// --------------------------------------------------------------------------------- define

export interface DefineInput {
  xml: string;
  /** Where the XML came from, for messages (the CLI's file name; the API's `xml`). */
  xmlSource: string;
  state?: VmState;
  node?: string;
  /** Merged over DEFAULT_META. */
  meta?: Partial<VmMeta>;
}

export interface PreparedDefine {
  name: string;
  info: DomainInfo;
  state: VmState;
  meta: VmMeta;
  xml: string;
  xmlSource: string;
  /** The VM document when the node was given (validated now); otherwise built once a node is chosen. */
  given?: DesiredVm;
}

/**
 * The object `vk vm define` writes: the VM document `vk apply` would read for it, decoded by
 * apply's own decoder (so it is validated, and written, exactly as a manifest's VM).
 */
function defineObject(p: Omit<PreparedDefine, 'given'>, node: string): DesiredVm {
  const doc = { apiVersion: API_VERSION, kind: 'VM', metadata: { name: p.name }, spec: { state: p.state, node, meta: p.meta, xml: p.xml } };
  const obj = decodeDocument({ source: `vm ${p.name}`, file: p.xmlSource, doc }, dirname(p.xmlSource));
  if (obj.kind !== 'VM') throw new Error(`unreachable: a VM document decoded as ${obj.kind}`);
  return obj;
}

/**
 * Everything about a define that needs no cluster: the XML parses (its name is the VM's name), the
 * meta and, when a node is given, the whole VM document validate. Throws ValidationError.
 * `parseXml` lets the CLI keep a file's content out of its messages.
 */
export function prepareDefine(input: DefineInput, parseXml: (xml: string, source: string) => DomainInfo = parseDomainXml): PreparedDefine {
  const info = parseXml(input.xml, input.xmlSource);
  const name = info.name;
  const state = input.state ?? 'running';
  const meta: VmMeta = { ...DEFAULT_META, ...input.meta };
  withSource(`vm ${name}`, () => parseWith(VmMetaSchema, meta, 'spec.meta'));
  const base = { name, info, state, meta, xml: input.xml, xmlSource: input.xmlSource };
  return input.node === undefined ? base : { ...base, given: defineObject(base, input.node) };
}

/**
 * The same from a VM manifest document (as vk apply reads it), validated by apply's own decoder.
 * `xmlFile` is refused: the XML must be inline (a path would be read on the server).
 */
export function prepareDefineManifest(doc: unknown, source: string): PreparedDefine {
  const spec = (doc as { spec?: { xmlFile?: unknown } } | null)?.spec;
  if (spec && typeof spec === 'object' && spec.xmlFile !== undefined) {
    throw new ValidationError('spec.xmlFile', spec.xmlFile, 'not accepted here: give the domain XML inline (spec.xml)', { kind: 'path', source });
  }
  const obj = decodeDocument({ source, file: source, doc }, null);
  if (obj.kind !== 'VM') throw new ValidationError('kind', obj.kind, 'must be VM', { kind: 'kind', source });
  return { name: obj.name, info: obj.info, state: obj.spec.state, meta: obj.spec.meta, xml: obj.xml, xmlSource: obj.xmlField, given: obj };
}

export interface Defined {
  name: string;
  node: string;
  /** The new spec's generation (0: a created znode). */
  generation: number;
}

/**
 * Writes a prepared define through apply's write path. Refuses a VM that exists (also one created
 * meanwhile, at the write), a domain UUID another VM holds, a node not in the cluster.
 */
export async function defineVm(cluster: Cluster, p: PreparedDefine, opts: { nodeField: string; uuidField: string; chooseHint?: string }): Promise<Defined> {
  const { store, paths } = cluster;
  const alreadyExists = () => new RefusedError(`vm ${p.name} already exists; change it with vk apply or vk vm meta`);
  const existing = await readVm(store, paths, p.name);
  if (existing.spec || existing.invalidSpec) throw alreadyExists();
  const others = await readAllVms(store, paths);
  const owner = others.find((v) => p.info.uuid !== undefined && v.xml?.info?.uuid === p.info.uuid);
  if (owner) {
    throw new InvalidInputError(opts.uuidField, p.info.uuid, `${opts.uuidField}: duplicate UUID ${p.info.uuid}: VM ${JSON.stringify(owner.name)} in the cluster already has it`);
  }
  let obj: DesiredVm;
  if (p.given) {
    await requireNode(cluster, p.given.spec.node, opts.nodeField);
    obj = p.given;
  } else {
    obj = defineObject(p, await chooseNode(cluster, p.meta, undefined, p.name, opts.chooseHint));
  }
  // apply's write path; a VM someone else creates meanwhile is refused there, not overwritten.
  await applyObjects(cluster, [obj], {
    print: () => undefined,
    check: (prepared) => {
      if (prepared.parts.some((part) => part.label === 'spec' && part.live !== null)) throw alreadyExists();
    },
  });
  return { name: p.name, node: obj.spec.node, generation: 0 };
}

// ------------------------------------------------------------------------ spec mutations
// Pure edits of a spec (each may throw to refuse); the verbs below and updateVm compose them.

export function withMeta(spec: VmSpec, patch: Partial<VmMeta>): VmSpec {
  return { ...spec, meta: { ...spec.meta, ...patch } };
}

/** `forced`: this stop destroys the domain (a one-off request); the standing stopMode never changes. */
export function withState(spec: VmSpec, state: VmState, forced: boolean, now: string): VmSpec {
  return { ...spec, state, ...(forced && { forceStopAt: now }) };
}

/** A permanent move: the VM's node becomes `target` and it has no previous node. */
export function withMove(spec: VmSpec, name: string, target: string): VmSpec {
  if (spec.node === target && !spec.previousNode) throw new RefusedError(`vm ${name} is already on ${target}`);
  const { previousNode: _dropped, ...rest } = spec;
  return { ...rest, node: target };
}

// ----------------------------------------------------------------------------------- verbs

export async function setVmState(cluster: Cluster, name: string, state: VmState, forced: boolean): Promise<VmUpdate> {
  const now = new Date().toISOString();
  return updateVmSpec(cluster, name, (spec) => withState(spec, state, forced, now));
}

export async function changeVmMeta(cluster: Cluster, name: string, patch: Partial<VmMeta>): Promise<VmUpdate> {
  return updateVmSpec(cluster, name, (spec) => withMeta(spec, patch));
}

/** Restarts a running VM once: a new restartedAt (returned, to wait for). */
export async function restartVm(cluster: Cluster, name: string): Promise<VmUpdate & { restartedAt: string }> {
  const now = new Date().toISOString();
  const updated = await updateVmSpec(cluster, name, (spec) => {
    if (spec.state !== 'running') throw new RefusedError(`vm ${name} is ${spec.state}, not running; use vk vm start`);
    return { ...spec, restartedAt: now };
  });
  return { ...updated, restartedAt: now };
}

/** The node a migration or move goes to: the one given (it must exist), else the VM's selector's choice. */
async function migrationTarget(cluster: Cluster, name: string, node: string | undefined, nodeField: string): Promise<string> {
  const vm = await readExistingVm(cluster.store, cluster.paths, name);
  const spec = vm.spec.value;
  if (node === undefined) return chooseNode(cluster, spec.meta, spec.node, vm.name);
  await requireNode(cluster, node, nodeField);
  return node;
}

export interface MigrateInput {
  node?: string;
  /** Migrate a VM that is already migrated (keeps its original previous node). */
  force?: boolean;
  /** Live migration only: sets meta.migrationMethod to live. */
  forceLive?: boolean;
  nodeField: string;
}

export async function migrateVm(cluster: Cluster, name: string, input: MigrateInput): Promise<VmUpdate & { target: string }> {
  const target = await migrationTarget(cluster, name, input.node, input.nodeField);
  const updated = await updateVmSpec(cluster, name, (spec) => {
    if (spec.previousNode && !input.force) {
      throw new RefusedError(
        `vm ${name} is already migrated (from ${spec.previousNode}); use --force to migrate it again (keeping ${spec.previousNode} as its previous node), vk vm unmigrate to bring it back, or vk vm move to make the move permanent`,
      );
    }
    if (spec.node === target) throw new RefusedError(`vm ${name} is already on ${target}`);
    const meta = input.forceLive ? { ...spec.meta, migrationMethod: 'live' as const } : spec.meta;
    // Back to where it came from (only reachable with force): that is an unmigrate.
    if (spec.previousNode === target) {
      const { previousNode: _back, ...rest } = spec;
      return { ...rest, node: target, meta };
    }
    // A forced re-migration keeps the original previous node (seed 002).
    const previousNode = spec.previousNode ? spec.previousNode : spec.node;
    return { ...spec, node: target, previousNode, meta };
  });
  return { ...updated, target };
}

export async function moveVm(cluster: Cluster, name: string, input: { node?: string; nodeField: string }): Promise<VmUpdate & { target: string }> {
  const target = await migrationTarget(cluster, name, input.node, input.nodeField);
  const updated = await updateVmSpec(cluster, name, (spec) => withMove(spec, name, target));
  return { ...updated, target };
}

export async function unmigrateVm(cluster: Cluster, name: string): Promise<VmUpdate> {
  return updateVmSpec(cluster, name, (spec) => {
    if (!spec.previousNode) throw new RefusedError(`vm ${name} is not migrated (it has no previous node)`);
    const { previousNode, ...rest } = spec;
    return { ...rest, node: previousNode };
  });
}

/** Deletes the VM's znodes in one multi; refuses a VM whose desired state is running unless `force`. */
export async function removeVm(cluster: Cluster, name: string, force: boolean): Promise<LiveVm> {
  const { store, paths } = cluster;
  for (let attempt = 1; attempt <= 5; attempt++) {
    const vm = await readVmOrFail(store, paths, name, { status: true });
    if (vm.invalidSpec && !force) {
      throw unreadableSpec(`vm ${name}`, vm.invalidSpec, 'its desired state is unknown: use --force to remove it, or repair it with vk apply');
    }
    if (vm.spec?.value.state === 'running' && !force) {
      throw new RefusedError(`vm ${name} is running (desired state running); stop or disable it first, or use --force`);
    }
    const children = (await store.children(paths.vm(name))) ?? [];
    const stats = await Promise.all(children.map(async (c) => ({ path: `${paths.vm(name)}/${c}`, stat: await store.exists(`${paths.vm(name)}/${c}`) })));
    const parent = await store.exists(paths.vm(name));
    if (!parent || stats.some((s) => s.stat === null || s.stat.numChildren > 0)) continue;
    try {
      await store.multi([
        ...stats.map((s) => ({ op: 'delete' as const, path: s.path, version: s.stat!.version })),
        { op: 'delete' as const, path: paths.vm(name), version: parent.version },
        // Its index entries go with it (core/vm-index.ts): the nodes see it leave their index.
        ...(await removalIndexOps(store, paths, name)),
      ]);
      return vm;
    } catch (error) {
      if (!(error instanceof ZkError) || !['BAD_VERSION', 'NO_NODE', 'NOT_EMPTY', 'NODE_EXISTS'].includes(error.code)) throw error;
    }
  }
  throw new ContentionError(`vm ${name} kept changing while being removed; gave up after 5 attempts`);
}

// ------------------------------------------------------------------ the API's one-call change

export interface VmChange {
  meta?: Partial<VmMeta>;
  state?: VmState;
  /** A permanent move to this node (as vk vm move: clears the previous node). */
  node?: string;
  /** Refuse (ConflictError with the current generation) unless the VM is at this generation. */
  generation?: number;
}

/**
 * PVC's POST /vm/<vm>: meta, state and node changed together in one compare-and-set (one new
 * generation). A stop here is a shutdown (the VM's stopMode), as `vk vm shutdown`.
 */
export async function changeVm(cluster: Cluster, name: string, change: VmChange): Promise<VmUpdate> {
  if (change.node !== undefined) await requireNode(cluster, change.node, 'node');
  const now = new Date().toISOString();
  return updateVmSpec(cluster, name, (spec, vm) => {
    if (change.generation !== undefined && vm.spec.version !== change.generation) {
      throw new ConflictError(`vm ${name} is at generation ${vm.spec.version}, not ${change.generation}`, vm.spec.version);
    }
    let next = spec;
    if (change.meta) next = withMeta(next, change.meta);
    if (change.state !== undefined) next = withState(next, change.state, false, now);
    if (change.node !== undefined && (next.node !== change.node || next.previousNode)) next = withMove(next, name, change.node);
    return next;
  });
}

/**
 * `vk vm flush-locks NAME` / POST /vm/{name}/flush-locks (PVC's verb): asks the VM's node to clear
 * the RBD locks of a VM that runs nowhere, by a new spec.flushLocksAt; the node answers in
 * /vms/<name>/rbd (`flushLocks.at` = the returned `at`). Refused (exit 2, HTTP 409, nothing
 * written) for a VM without RBD disks, or one that runs or may start; refused when the VM's node
 * has no daemon to do it.
 */
export async function requestFlushLocks(cluster: Cluster, name: string): Promise<VmUpdate & { at: string; node: string; images: string[] }> {
  const { store, paths } = cluster;
  const vm = await readExistingVm(store, paths, name, { status: true });
  const refuse = (spec: VmSpec, status: LiveVm['status']): void => {
    if (spec.rbd.length === 0) throw new RefusedError(`vm ${name} has no RBD disks: nothing to flush`, EXIT_USAGE);
    const why = flushLocksRefusal(spec, status?.value ?? null, false, spec.node);
    if (why !== undefined) throw new RefusedError(`vm ${name}: locks not flushed: ${why}`, EXIT_USAGE);
  };
  refuse(vm.spec.value, vm.status);
  const node = vm.spec.value.node;
  if (!(await readNode(store, paths, node)).alive) {
    throw new RefusedError(`vm ${name}: locks not flushed: ${node}'s daemon is not running, and it is the node that removes them (start it, or move the VM to a live node first with vk vm move ${name} --node …)`);
  }
  const at = new Date().toISOString();
  const updated = await updateVmSpec(cluster, name, (spec, fresh) => {
    refuse(spec, fresh.status ?? vm.status);
    return { ...spec, flushLocksAt: at };
  });
  return { ...updated, at, node, images: vm.spec.value.rbd };
}
