// Manifests: YAML or JSON documents of kind VM, Network, Node or ClusterConfig, several per file
// (`---`), read from files or directories (recursively: *.yaml, *.yml, *.json, sorted).
//
// Everything is validated before anything is written: every document of every file, the XML of
// every VM (inline or xmlFile, relative to the manifest), duplicates among the documents (same
// kind and name, same domain UUID), and UUIDs already held by another VM in ZooKeeper. Each bad
// document gives one error line `<file>#<n>: <field>: <reason>`; the run then writes nothing.
import { readdirSync, statSync } from 'node:fs';
import { dirname, extname, join, resolve } from 'node:path';
import { parseAllDocuments } from 'yaml';
import {
  API_VERSION,
  decodeManifest,
  MAX_DOMAIN_XML_BYTES,
  networkMtuProblem,
  parseVmXml,
  splitVmManifestSpec,
  ValidationError,
  type ClusterConfig,
  type DomainInfo,
  type NetworkSpec,
  type NodeSpec,
  type VmSpec,
  type ZkPaths,
} from '../schemas/index.ts';
import type { ZkStore } from '../drivers/zk/index.ts';
import { bridgeName, listNodeNames, readAllNetworks, readAllVms, readConfig, type LiveNetwork, type LiveVm } from './cluster.ts';
import { CliError, EXIT_USAGE, ManifestErrors, usageError } from './errors.ts';
import { FileRefused, readNamedFile, readRegularFileWithin, withoutFileContent } from './read-file.ts';
import { RefusedError } from '../core/errors.ts';

const MANIFEST_EXTENSIONS = new Set(['.yaml', '.yml', '.json']);
/** The largest manifest file read (many VMs with inline XML fit; /dev/zero does not). */
export const MAX_MANIFEST_BYTES = 64 * 1024 * 1024;
/** How many aliases a YAML document may expand (a "billion laughs" document is refused). */
const MAX_YAML_ALIASES = 100;

/** One parsed document, before validation. */
export interface RawDocument {
  /** `file#n`, n counting documents of the file from 1. */
  source: string;
  file: string;
  doc: unknown;
}

interface Common {
  name: string;
  source: string;
  /** The manifest with everything resolved (xmlFile read into xml, defaults filled): what a plan file stores. */
  manifest: Record<string, unknown>;
}

export type DesiredObject =
  | (Common & { kind: 'VM'; spec: VmSpec; xml: string; info: DomainInfo; xmlField: string })
  | (Common & { kind: 'Network'; spec: NetworkSpec })
  | (Common & { kind: 'Node'; spec: NodeSpec })
  | (Common & { kind: 'ClusterConfig'; spec: ClusterConfig });

export type DesiredVm = Extract<DesiredObject, { kind: 'VM' }>;

/** The kubectl-style id of an object: vm/web1, network/100, node/hv1, clusterconfig/cluster. */
export function objectId(obj: { kind: string; name: string }): string {
  return `${obj.kind.toLowerCase()}/${obj.name}`;
}

/** Order in which objects are written: what VMs refer to comes first. */
const KIND_ORDER = { ClusterConfig: 0, Network: 1, Node: 2, VM: 3 } as const;

export function sortForWrite<T extends { kind: keyof typeof KIND_ORDER }>(objects: readonly T[]): T[] {
  return objects
    .map((o, i) => ({ o, i }))
    .sort((a, b) => KIND_ORDER[a.o.kind] - KIND_ORDER[b.o.kind] || a.i - b.i)
    .map(({ o }) => o);
}

/** Files named by `paths` (directories walked recursively, sorted). A missing path is a usage error. */
export function manifestFiles(paths: readonly string[]): string[] {
  const files: string[] = [];
  const walk = (dir: string) => {
    const entries = readdirSync(dir, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    for (const entry of entries) {
      const full = join(dir, entry.name);
      if (entry.isDirectory()) walk(full);
      else if (entry.isFile() && MANIFEST_EXTENSIONS.has(extname(entry.name).toLowerCase())) files.push(full);
    }
  };
  for (const path of paths) {
    let isDir: boolean;
    try {
      isDir = statSync(path).isDirectory();
    } catch (error) {
      throw usageError(`${path}: ${(error as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file or directory' : (error as Error).message}`);
    }
    if (isDir) walk(path);
    else files.push(path);
  }
  return files;
}

/** The first line of a parser message, without the colon that introduced its (dropped) context. */
function oneLine(text: string): string {
  return text.split('\n')[0]!.trim().replace(/:$/, '');
}

/** Parses the YAML documents of `text` (named `file` in sources); syntax errors are collected, one per document. */
export function parseYamlDocuments(text: string, file: string, errors: ValidationError[]): RawDocument[] {
  const out: RawDocument[] = [];
  const docs = parseAllDocuments(text, { prettyErrors: true, uniqueKeys: true });
  const list = Array.isArray(docs) ? docs : [docs];
  list.forEach((doc, i) => {
    const source = `${file}#${i + 1}`;
    const problem = doc.errors[0];
    if (problem) {
      errors.push(new ValidationError('(document)', undefined, `YAML syntax error: ${oneLine(problem.message)}`, { source, showValue: false }));
      return;
    }
    let value: unknown;
    try {
      value = doc.toJS({ maxAliasCount: MAX_YAML_ALIASES });
    } catch (error) {
      // yaml throws a ReferenceError for an alias bomb (and for an alias to nothing).
      errors.push(new ValidationError('(document)', undefined, `YAML cannot be expanded: ${oneLine((error as Error).message)} (at most ${MAX_YAML_ALIASES} aliases)`, { source, showValue: false }));
      return;
    }
    if (value === null || value === undefined) return; // an empty document (a trailing ---)
    out.push({ source, file, doc: value });
  });
  return out;
}

/** Parses every document of every file; syntax errors are collected, one per document. */
export function readDocuments(files: readonly string[], errors: ValidationError[]): RawDocument[] {
  const out: RawDocument[] = [];
  for (const file of files) {
    const text = readNamedFile(file, MAX_MANIFEST_BYTES, 'a manifest file');
    if (extname(file).toLowerCase() === '.json') {
      try {
        out.push({ source: `${file}#1`, file, doc: JSON.parse(text) });
      } catch (error) {
        errors.push(new ValidationError('(document)', undefined, `JSON syntax error: ${oneLine((error as Error).message)}`, { source: `${file}#1`, showValue: false }));
      }
      continue;
    }
    out.push(...parseYamlDocuments(text, file, errors));
  }
  return out;
}

function sameList(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

/** A VM's xmlFile: a regular file inside the manifest's directory, of at most MAX_DOMAIN_XML_BYTES. */
function readXmlFile(xmlFile: string, baseDir: string): string {
  try {
    return readRegularFileWithin(resolve(baseDir, xmlFile), baseDir, MAX_DOMAIN_XML_BYTES, 'a domain XML');
  } catch (error) {
    if (error instanceof FileRefused) throw new ValidationError('spec.xmlFile', xmlFile, error.reason, { kind: 'path' });
    throw error;
  }
}

/** The desired object of a kind whose manifest is its spec alone (all but VM). */
function named<K extends Exclude<DesiredObject['kind'], 'VM'>, S>(kind: K, name: string, source: string, spec: S) {
  return { kind, name, source, spec, manifest: { apiVersion: API_VERSION, kind, metadata: { name }, spec } };
}

/** Validates one document; `baseDir` resolves a VM's xmlFile (null: xmlFile is refused, the XML must be inline). */
export function decodeDocument(raw: RawDocument, baseDir: string | null): DesiredObject {
  const manifest = decodeManifest(raw.doc, raw.source);
  const source = raw.source;
  try {
    switch (manifest.kind) {
      case 'VM': {
        const name = manifest.metadata.name;
        const split = splitVmManifestSpec(manifest.spec);
        let xml: string;
        let xmlField: string;
        if (split.xml !== undefined) {
          xml = split.xml;
          xmlField = 'spec.xml';
        } else {
          xmlField = 'spec.xmlFile';
          if (baseDir === null) throw new ValidationError('spec.xmlFile', split.xmlFile, 'not accepted here: give the domain XML inline (spec.xml)', { kind: 'path' });
          xml = readXmlFile(split.xmlFile!, baseDir);
        }
        const info = xmlField === 'spec.xmlFile' ? withoutFileContent(() => parseVmXml(xml, name, xmlField)) : parseVmXml(xml, name, xmlField);
        const spec = split.spec;
        const givenRbd = ((raw.doc as { spec?: { rbd?: unknown } }).spec ?? {}).rbd;
        if (givenRbd !== undefined && !sameList(spec.rbd, info.rbd)) {
          throw new ValidationError('spec.rbd', spec.rbd, `must list the RBD disks of the domain XML ${JSON.stringify(info.rbd)} (or be left out: it is derived from the XML)`);
        }
        const fullSpec: VmSpec = { ...spec, rbd: info.rbd };
        return {
          kind: 'VM',
          name,
          source,
          spec: fullSpec,
          xml,
          info,
          xmlField,
          manifest: { apiVersion: API_VERSION, kind: 'VM', metadata: { name }, spec: { ...fullSpec, xml } },
        };
      }
      case 'Network':
        return named('Network', manifest.metadata.name, source, manifest.spec);
      case 'Node':
        return named('Node', manifest.metadata.name, source, manifest.spec);
      case 'ClusterConfig':
        return named('ClusterConfig', 'cluster', source, manifest.spec);
    }
  } catch (error) {
    if (error instanceof ValidationError) throw error.withSource(source);
    throw error;
  }
}

/**
 * Validates every document and the rules across them; throws ManifestErrors (one line per bad
 * document) when anything is wrong. `errors` may already hold syntax errors.
 */
export function decodeDocuments(docs: readonly RawDocument[], errors: ValidationError[] = [], options: { inlineXmlOnly?: boolean } = {}): DesiredObject[] {
  const objects: DesiredObject[] = [];
  for (const raw of docs) {
    try {
      objects.push(decodeDocument(raw, options.inlineXmlOnly ? null : dirname(raw.file)));
    } catch (error) {
      if (error instanceof ValidationError) errors.push(error);
      else throw error;
    }
  }
  const byId = new Map<string, DesiredObject>();
  const byUuid = new Map<string, DesiredObject>();
  for (const obj of objects) {
    const id = `${obj.kind}/${obj.name}`;
    const first = byId.get(id);
    if (first) {
      errors.push(new ValidationError('metadata.name', obj.name, `duplicate ${obj.kind} name: also defined in ${first.source}`, { source: obj.source, kind: 'name' }));
      continue;
    }
    byId.set(id, obj);
    if (obj.kind === 'VM' && obj.info.uuid !== undefined) {
      const other = byUuid.get(obj.info.uuid);
      if (other) {
        errors.push(
          new ValidationError(`${obj.xmlField}/domain/uuid`, obj.info.uuid, `duplicate UUID: VM ${JSON.stringify(other.name)} (${other.source}) has it too`, {
            source: obj.source,
            kind: 'UUID',
          }),
        );
      } else byUuid.set(obj.info.uuid, obj);
    }
  }
  if (errors.length > 0) throw new ManifestErrors(errors);
  return objects;
}

/** Reads and validates manifests from files/directories (no ZooKeeper involved). */
export function loadManifests(paths: readonly string[]): DesiredObject[] {
  const files = manifestFiles(paths);
  const errors: ValidationError[] = [];
  const docs = readDocuments(files, errors);
  if (docs.length === 0 && errors.length === 0) throw usageError(`no manifests found in ${paths.join(', ')}`);
  return decodeDocuments(docs, errors);
}

/** What the cluster checks of a set of objects look at (only what the objects need is read). */
export interface ClusterView {
  vms: readonly LiveVm[];
  nodes: readonly string[];
  networks: readonly LiveNetwork[];
  /** The cluster config in ZooKeeper (the default when there is none); undefined when not read. */
  config: ClusterConfig | undefined;
}

/**
 * Reads what checkAgainstCluster needs for `objects`: VMs and nodes for VMs, the nodes for a
 * cluster config (its coordinators), and for networks and the cluster config the networks and the
 * config in force (not read when the objects bring one).
 */
export async function readClusterView(store: ZkStore, paths: ZkPaths, objects: readonly DesiredObject[]): Promise<ClusterView> {
  const has = (kind: DesiredObject['kind']) => objects.some((o) => o.kind === kind);
  const vmRules = has('VM');
  const networkRules = has('Network') || has('ClusterConfig');
  const [vms, nodes, networks, config] = await Promise.all([
    vmRules ? readAllVms(store, paths) : [],
    vmRules || has('ClusterConfig') ? listNodeNames(store, paths) : [],
    has('ClusterConfig') ? readAllNetworks(store, paths) : [],
    networkRules && !has('ClusterConfig') ? readConfig(store, paths).then((c) => c.value) : undefined,
  ]);
  return { vms, nodes, networks, config };
}

/**
 * The checks that need the cluster, all before anything is written (vk apply, diff, plan, vm define
 * and network add all come here). Refuses:
 * - VMs whose domain UUID another VM (of another name) already holds in ZooKeeper, and VMs whose
 *   spec.node or meta.nodeLimit names a node that neither exists in ZooKeeper nor is defined by the
 *   manifests;
 * - networks whose MTU the cluster config in force does not allow (bridged: at most bridgeMtu;
 *   managed: at most clusterMtu - 50), the config in force being the one the objects bring, else
 *   the one in ZooKeeper;
 * - a cluster config under which a network in ZooKeeper (and not redefined by the objects) would
 *   have an MTU it does not allow, naming the networks;
 * - a cluster config whose coordinators name a node that is neither in its `nodes` nor in
 *   ZooKeeper nor defined by a Node document of the objects (listing in `nodes` a node whose
 *   daemon has not started yet is fine).
 */
export function checkAgainstCluster(objects: readonly DesiredObject[], view: ClusterView): void {
  const errors: ValidationError[] = [...vmErrors(objects, view), ...networkErrors(objects, view), ...unknownCoordinators(objects, view.nodes)];
  if (errors.length > 0) throw new ManifestErrors(errors);
}

function vmErrors(objects: readonly DesiredObject[], view: ClusterView): ValidationError[] {
  if (!objects.some((o) => o.kind === 'VM')) return [];
  const owners = new Map<string, string>();
  // A VM the manifests redefine will hold the manifest's UUID, not the one it has now.
  const redefined = new Set(objects.filter((o) => o.kind === 'VM').map((o) => o.name));
  for (const vm of view.vms) {
    if (redefined.has(vm.name)) continue;
    const uuid = vm.xml?.info?.uuid;
    if (uuid !== undefined) owners.set(uuid, vm.name);
  }
  const errors: ValidationError[] = [...unknownNodes(objects, view.nodes)];
  for (const obj of objects) {
    if (obj.kind !== 'VM' || obj.info.uuid === undefined) continue;
    const owner = owners.get(obj.info.uuid);
    if (owner !== undefined && owner !== obj.name) {
      errors.push(
        new ValidationError(`${obj.xmlField}/domain/uuid`, obj.info.uuid, `duplicate UUID: VM ${JSON.stringify(owner)} in the cluster already has it`, {
          source: obj.source,
          kind: 'UUID',
        }),
      );
    }
  }
  return errors;
}

/** The MTU rules of networks against the cluster config in force (see checkAgainstCluster). */
function networkErrors(objects: readonly DesiredObject[], view: ClusterView): ValidationError[] {
  const configObj = objects.find((o): o is Extract<DesiredObject, { kind: 'ClusterConfig' }> => o.kind === 'ClusterConfig');
  const config = configObj?.spec ?? view.config;
  if (!config) return [];
  const errors: ValidationError[] = [];
  for (const obj of objects) {
    if (obj.kind !== 'Network') continue;
    const problem = networkMtuProblem(obj.spec.type, obj.spec.mtu, config);
    if (problem) errors.push(new ValidationError('spec.mtu', obj.spec.mtu, problem, { source: obj.source }));
  }
  if (!configObj) return errors;
  // A new config must not make a network already in the cluster invalid (one the objects redefine was checked above).
  const redefined = new Set(objects.filter((o) => o.kind === 'Network').map((o) => o.name));
  const broken: Record<'bridgeMtu' | 'clusterMtu', string[]> = { bridgeMtu: [], clusterMtu: [] };
  for (const network of view.networks) {
    const spec = network.spec?.value;
    if (!spec || redefined.has(network.vni)) continue;
    if (networkMtuProblem(spec.type, spec.mtu, config)) broken[spec.type === 'bridged' ? 'bridgeMtu' : 'clusterMtu'].push(`${network.vni} (${spec.type}, mtu ${spec.mtu})`);
  }
  for (const key of ['bridgeMtu', 'clusterMtu'] as const) {
    const list = broken[key];
    if (list.length === 0) continue;
    const limit = key === 'bridgeMtu' ? 'a bridged network\'s MTU may not exceed bridgeMtu' : 'a managed network\'s MTU may not exceed clusterMtu - 50';
    errors.push(
      new ValidationError(`spec.${key}`, config[key], `would make network${list.length > 1 ? 's' : ''} ${list.join(', ')} invalid (${limit}); lower ${list.length > 1 ? 'their' : 'its'} mtu first, or in the same apply`, {
        source: configObj.source,
      }),
    );
  }
  return errors;
}

/** The VMs whose domain XML attaches to network `vni`'s bridge (an unparsable XML that mentions the bridge counts too). */
export function networkUsers(vni: string, vms: readonly LiveVm[]): string[] {
  const bridge = bridgeName(vni);
  const quoted = new RegExp(`['"]${bridge}['"]`);
  return vms
    .filter((vm) => {
      if (!vm.xml) return false;
      const info = vm.xml.info;
      return info ? info.bridges.includes(bridge) : quoted.test(vm.xml.text);
    })
    .map((vm) => vm.name);
}

/** Refuses (exit 2) to delete network `vni` while VMs are attached to it, naming them. */
export function checkNetworkRemoval(vni: string, vms: readonly LiveVm[]): void {
  const users = networkUsers(vni, vms);
  if (users.length === 0) return;
  throw new RefusedError(
    `network ${vni} is in use: vm ${users.join(', ')} attach${users.length === 1 ? 'es' : ''} to its bridge ${bridgeName(vni)}; detach or remove ${users.length === 1 ? 'it' : 'them'} first (nothing was removed)`,
    EXIT_USAGE,
  );
}

/** Node names that Node documents of `objects` define. */
function definedNodes(objects: readonly DesiredObject[]): string[] {
  return objects.filter((o) => o.kind === 'Node').map((o) => o.name);
}

/** One error per coordinator of the objects' cluster config that is a node nowhere: not in its nodes, not in ZooKeeper, not defined here. */
function unknownCoordinators(objects: readonly DesiredObject[], liveNodes: readonly string[]): ValidationError[] {
  const config = objects.find((o): o is Extract<DesiredObject, { kind: 'ClusterConfig' }> => o.kind === 'ClusterConfig');
  if (!config) return [];
  const known = new Set([...liveNodes, ...definedNodes(objects), ...Object.keys(config.spec.nodes ?? {})]);
  const reason = 'no such node: not in spec.nodes, and not in the cluster (a node appears when its daemon first starts, or with a Node manifest)';
  return config.spec.coordinators.flatMap((name, i) =>
    known.has(name) ? [] : [new ValidationError(`spec.coordinators[${i}]`, name, reason, { source: config.source, kind: 'name' })],
  );
}

/** One error per VM naming a node (spec.node, then meta.nodeLimit) that exists nowhere. */
function unknownNodes(objects: readonly DesiredObject[], liveNodes: readonly string[]): ValidationError[] {
  const known = new Set([...liveNodes, ...definedNodes(objects)]);
  const reason = 'no such node in the cluster (a node appears when its daemon first starts, or with a Node manifest)';
  const errors: ValidationError[] = [];
  for (const obj of objects) {
    if (obj.kind !== 'VM') continue;
    const named: Array<[string, string]> = [['spec.node', obj.spec.node], ...obj.spec.meta.nodeLimit.map((n, i): [string, string] => [`spec.meta.nodeLimit[${i}]`, n])];
    const unknown = named.find(([, node]) => !known.has(node));
    if (unknown) errors.push(new ValidationError(unknown[0], unknown[1], reason, { source: obj.source, kind: 'name' }));
  }
  return errors;
}
