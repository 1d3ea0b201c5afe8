// The declarative operations over manifests' objects — apply, diff, plan — as result objects:
// `vk apply|diff|plan` print them (-o json prints exactly these), POST /apply|/diff|/plan return
// them. One implementation for both.
//
// Invariants: every object is validated (documents, then the cluster checks: UUIDs, nodes,
// network MTUs) before the first write, and a bad one writes nothing; diff and plan never write.
import { createTwoFilesPatch } from 'diff';
import { ValidationError } from '../schemas/index.ts';
import { readAllNetworks, readAllNodes, readAllVms, readConfig } from '../cli/cluster.ts';
import type { Cluster } from '../cli/connect.ts';
import { checkAgainstCluster, decodeDocuments, parseYamlDocuments, readClusterView, sortForWrite, type DesiredObject, type RawDocument } from '../cli/manifests.ts';
import { applyObjects, prepareObject, type ApplyResult, type PreparedObject } from '../cli/objects.ts';
import { liveViews, planCluster, type PlanAction } from '../cli/plan.ts';

/** The cluster checks of the objects (UUIDs, nodes, network MTUs), before anything is written. */
export async function checkLive(cluster: Cluster, objects: readonly DesiredObject[]): Promise<void> {
  checkAgainstCluster(objects, await readClusterView(cluster.store, cluster.paths, objects));
}

/**
 * Manifests given in a request rather than files: `manifests` (parsed documents, named
 * `manifests[i]`) and/or `yaml` (multi-document text, `yaml#i`). The domain XML must be inline: a
 * request never makes the server read a file.
 */
export function decodeRequestManifests(input: { manifests?: readonly unknown[]; yaml?: string }): DesiredObject[] {
  const errors: ValidationError[] = [];
  const docs: RawDocument[] = (input.manifests ?? []).map((doc, i) => ({ source: `manifests[${i}]`, file: `manifests[${i}]`, doc }));
  if (input.yaml !== undefined) docs.push(...parseYamlDocuments(input.yaml, 'yaml', errors));
  if (docs.length === 0 && errors.length === 0) throw new ValidationError('manifests', undefined, 'no manifests given (manifests: [...] or yaml: "...")', { showValue: false });
  return decodeDocuments(docs, errors, { inlineXmlOnly: true });
}

// ------------------------------------------------------------------------------------- apply

export interface AppliedObject {
  id: string;
  kind: DesiredObject['kind'];
  name: string;
  result: ApplyResult;
}

export interface ApplyOutcome {
  dryRun: boolean;
  objects: AppliedObject[];
}

function applied(p: PreparedObject): AppliedObject {
  return { id: p.id, kind: p.obj.kind, name: p.obj.name, result: p.result };
}

/** Checks against the cluster, then writes (apply's one write path, cli/objects.ts). */
export async function applyManifests(cluster: Cluster, objects: readonly DesiredObject[], options: { dryRun?: boolean; print?: (line: string) => void } = {}): Promise<ApplyOutcome> {
  await checkLive(cluster, objects);
  const prepared = await applyObjects(cluster, objects, { dryRun: options.dryRun === true, print: options.print ?? (() => {}) });
  return { dryRun: options.dryRun === true, objects: prepared.map(applied) };
}

// -------------------------------------------------------------------------------------- diff

export interface DiffPatch {
  /** spec, xml or config. */
  part: string;
  /** A unified diff, live → manifest (headers live/<id>/<part>, manifest/<id>/<part>). */
  patch: string;
}

export interface DiffObject extends AppliedObject {
  patches: DiffPatch[];
}

export interface DiffOutcome {
  /** true when apply would write anything. */
  differs: boolean;
  objects: DiffObject[];
}

function withNewline(text: string): string {
  return text === '' || text.endsWith('\n') ? text : `${text}\n`;
}

/** Unified diffs of what apply would change, one per changed part (spec, xml, config). */
export function diffPrepared(prepared: PreparedObject): DiffPatch[] {
  const patches: DiffPatch[] = [];
  for (const part of prepared.parts) {
    if (part.same) continue;
    const name = `${prepared.id}/${part.label}`;
    const patch = createTwoFilesPatch(`live/${name}`, `manifest/${name}`, withNewline(part.liveText), withNewline(part.desiredText), undefined, undefined, {
      context: 3,
    });
    patches.push({ part: part.label, patch: patch.replace(/^=+\n/, '').trimEnd() });
  }
  return patches;
}

/** What apply would change, object by object (in write order); writes nothing. */
export async function diffManifests(cluster: Cluster, objects: readonly DesiredObject[]): Promise<DiffOutcome> {
  await checkLive(cluster, objects);
  const out: DiffObject[] = [];
  for (const obj of sortForWrite(objects)) {
    const prepared = await prepareObject(cluster, obj);
    out.push({ ...applied(prepared), patches: diffPrepared(prepared) });
  }
  return { differs: out.some((o) => o.patches.length > 0), objects: out };
}

// -------------------------------------------------------------------------------------- plan

export interface PlanOutcome {
  /** ZooKeeper zxid the plan was computed at (decimal string: it is a 64-bit number). */
  zxid: string;
  actions: PlanAction[];
}

/** What the cluster would do, per node, were the objects applied (none: as it is now); writes nothing. */
export async function planManifests(cluster: Cluster, objects: readonly DesiredObject[]): Promise<PlanOutcome & { prepared: PreparedObject[] }> {
  const { store, paths } = cluster;
  const [liveVms, liveNodes, liveConfig, liveNetworks] = await Promise.all([
    readAllVms(store, paths, { status: true, migration: true }),
    readAllNodes(store, paths),
    readConfig(store, paths),
    objects.some((o) => o.kind === 'ClusterConfig') ? readAllNetworks(store, paths) : [],
  ]);
  checkAgainstCluster(objects, { vms: liveVms, nodes: liveNodes.map((n) => n.name), networks: liveNetworks, config: liveConfig.value });
  const prepared = await Promise.all(sortForWrite(objects).map((o) => prepareObject(cluster, o)));
  const zxid = store.lastZxid();

  const { vms, nodes } = liveViews(liveVms, liveNodes);
  let defaultSelector = liveConfig.value.defaultNodeSelector;
  for (const p of prepared) {
    const obj = p.obj;
    if (obj.kind === 'VM' && p.vmSpec) {
      const before = vms.get(obj.name);
      const specPart = p.parts[0]!;
      const generation = specPart.live === null ? 0 : specPart.live.version + (specPart.same ? 0 : 1);
      vms.set(obj.name, { name: obj.name, spec: p.vmSpec, generation, xml: obj.xml, status: before?.status ?? null, migration: before?.migration ?? null });
    } else if (obj.kind === 'Node') {
      const before = nodes.get(obj.name);
      nodes.set(obj.name, { name: obj.name, spec: obj.spec, status: before?.status ?? null, alive: before?.alive ?? false, liveMigration: before?.liveMigration ?? false });
    } else if (obj.kind === 'ClusterConfig') defaultSelector = obj.spec.defaultNodeSelector;
  }
  const actions = planCluster([...vms.values()], [...nodes.values()], new Date().toISOString(), { defaultSelector });
  return { zxid: zxid.toString(), actions, prepared };
}

