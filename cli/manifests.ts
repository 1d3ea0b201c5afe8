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
  parseVmXml,
  splitVmManifestSpec,
  ValidationError,
  type ClusterConfig,
  type DomainInfo,
  type NetworkSpec,
  type NodeSpec,
  type VmSpec,
} from '../schemas/index.ts';
import type { LiveVm } from './cluster.ts';
import { ManifestErrors, usageError } from './errors.ts';
import { FileRefused, readNamedFile, readRegularFileWithin, withoutFileContent } from './read-file.ts';

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

/** Validates one document; `baseDir` resolves a VM's xmlFile. */
export function decodeDocument(raw: RawDocument, baseDir: string): DesiredObject {
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
export function decodeDocuments(docs: readonly RawDocument[], errors: ValidationError[] = []): DesiredObject[] {
  const objects: DesiredObject[] = [];
  for (const raw of docs) {
    try {
      objects.push(decodeDocument(raw, dirname(raw.file)));
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

/**
 * The checks that need the cluster, all before anything is written: refuses VMs whose domain UUID
 * another VM (of another name) already holds in ZooKeeper, and VMs whose spec.node or
 * meta.nodeLimit names a node that neither exists in ZooKeeper nor is defined by the manifests.
 */
export function checkAgainstCluster(objects: readonly DesiredObject[], liveVms: readonly LiveVm[], liveNodes: readonly string[]): void {
  const owners = new Map<string, string>();
  // A VM the manifests redefine will hold the manifest's UUID, not the one it has now.
  const redefined = new Set(objects.filter((o) => o.kind === 'VM').map((o) => o.name));
  for (const vm of liveVms) {
    if (redefined.has(vm.name)) continue;
    const uuid = vm.xml?.info?.uuid;
    if (uuid !== undefined) owners.set(uuid, vm.name);
  }
  const errors: ValidationError[] = [...unknownNodes(objects, liveNodes)];
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
  if (errors.length > 0) throw new ManifestErrors(errors);
}

/** One error per VM naming a node (spec.node, then meta.nodeLimit) that exists nowhere. */
function unknownNodes(objects: readonly DesiredObject[], liveNodes: readonly string[]): ValidationError[] {
  const known = new Set([...liveNodes, ...objects.filter((o) => o.kind === 'Node').map((o) => o.name)]);
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
