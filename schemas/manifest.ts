import { z } from 'zod';
import { ClusterConfigSchema } from './config.ts';
import { parseVmXml } from './domain-xml.ts';
import { parseWith, ValidationError } from './errors.ts';
import { checkedString, textProblem } from './formats.ts';
import { NameSchema, VNI_MAX, VNI_MIN, vniProblem } from './names.ts';
import { networkVniProblem, NetworkSpecSchema } from './network.ts';
import { NodeSpecSchema } from './node.ts';
import { checkVmSpec, vmSpecShape, type VmSpec } from './vm.ts';

export const API_VERSION = 'virtkeeper/v1';
export const MANIFEST_KINDS = ['VM', 'Network', 'Node', 'ClusterConfig'] as const;
export type ManifestKind = (typeof MANIFEST_KINDS)[number];

/** The manifest kind named by `text`, ignoring case (`vm`, `clusterconfig`); undefined if none. */
export function manifestKindFrom(text: string): ManifestKind | undefined {
  return MANIFEST_KINDS.find((kind) => kind.toLowerCase() === text.toLowerCase());
}

const ApiVersionSchema = z.literal(API_VERSION).optional();

/** A VM spec plus its domain XML: inline (`xml`) or a file relative to the manifest (`xmlFile`), exactly one. */
export const VmManifestSpecSchema = z
  .strictObject({
    ...vmSpecShape,
    xml: z.string().optional(),
    xmlFile: checkedString('path', textProblem(4096)).optional(),
  })
  .superRefine((spec, ctx) => {
    checkVmSpec(spec, ctx);
    if (spec.xml !== undefined && spec.xmlFile !== undefined) {
      ctx.addIssue({
        code: 'custom',
        path: ['xmlFile'],
        input: spec.xmlFile,
        params: { kind: 'path' },
        message: 'cannot be given together with xml; use one or the other',
      });
    } else if (spec.xml === undefined && spec.xmlFile === undefined) {
      ctx.addIssue({
        code: 'custom',
        path: ['xml'],
        input: undefined,
        message: 'required: give the domain XML inline (xml) or as a file relative to the manifest (xmlFile)',
      });
    }
  })
  .meta({ oneOf: [{ required: ['xml'] }, { required: ['xmlFile'] }] });
export type VmManifestSpec = z.output<typeof VmManifestSpecSchema>;

export const VmManifestSchema = z.strictObject({
  apiVersion: ApiVersionSchema,
  kind: z.literal('VM'),
  metadata: z.strictObject({ name: NameSchema }),
  spec: VmManifestSpecSchema,
});

const VNI_RULE = `must be a VNI: an integer from ${VNI_MIN} to ${VNI_MAX}`;

/** YAML readers write `name: 100` as a number; accept it, decodeManifest turns it into "100". */
const VniNameSchema = z
  .union([z.string(), z.number().int()], { error: VNI_RULE })
  .superRefine((vni, ctx) => {
    const ok = typeof vni === 'number' ? Number.isInteger(vni) && vni >= VNI_MIN && vni <= VNI_MAX : !vniProblem(vni);
    if (!ok) ctx.addIssue({ code: 'custom', input: vni, params: { kind: 'VNI' }, message: VNI_RULE });
  })
  // In JSON Schema, pattern applies to strings only and minimum/maximum to numbers only.
  .meta({ pattern: '^[1-9][0-9]{0,7}$', minimum: VNI_MIN, maximum: VNI_MAX });

export const NetworkManifestSchema = z
  .strictObject({
    apiVersion: ApiVersionSchema,
    kind: z.literal('Network'),
    metadata: z.strictObject({ name: VniNameSchema }),
    spec: NetworkSpecSchema,
  })
  .superRefine((manifest, ctx) => {
    // The VNI's range depends on the type: a bridged network's VNI is a vLAN id (1-4094).
    const problem = networkVniProblem(manifest.spec.type, manifest.metadata.name);
    if (problem) ctx.addIssue({ code: 'custom', path: ['metadata', 'name'], input: manifest.metadata.name, params: { kind: 'VNI' }, message: problem });
  });

export const NodeManifestSchema = z.strictObject({
  apiVersion: ApiVersionSchema,
  kind: z.literal('Node'),
  metadata: z.strictObject({ name: NameSchema }),
  spec: NodeSpecSchema.prefault({}),
});

export const ClusterConfigManifestSchema = z.strictObject({
  apiVersion: ApiVersionSchema,
  kind: z.literal('ClusterConfig'),
  metadata: z.strictObject({
    name: z.literal('cluster', { error: 'must be "cluster": a cluster has one config' }),
  }),
  spec: ClusterConfigSchema.prefault({}),
});

export const ManifestSchema = z.discriminatedUnion('kind', [
  VmManifestSchema,
  NetworkManifestSchema,
  NodeManifestSchema,
  ClusterConfigManifestSchema,
]);

const SCHEMAS = {
  VM: VmManifestSchema,
  Network: NetworkManifestSchema,
  Node: NodeManifestSchema,
  ClusterConfig: ClusterConfigManifestSchema,
} as const satisfies Record<ManifestKind, z.ZodType>;

export type VmManifest = z.output<typeof VmManifestSchema>;
export type NetworkManifest = Omit<z.output<typeof NetworkManifestSchema>, 'metadata'> & { metadata: { name: string } };
export type NodeManifest = z.output<typeof NodeManifestSchema>;
export type ClusterConfigManifest = z.output<typeof ClusterConfigManifestSchema>;
export type Manifest = VmManifest | NetworkManifest | NodeManifest | ClusterConfigManifest;

/**
 * Validates one manifest document (already parsed from YAML/JSON), filling
 * defaults. Inline VM XML is checked too (well formed, domain named after the
 * VM); an xmlFile is the caller's to read and check with parseVmXml. Errors
 * are prefixed with `where`, e.g. `web.yaml#2: spec.node: …`.
 */
export function decodeManifest(doc: unknown, where: string): Manifest {
  try {
    if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) {
      throw new ValidationError('(document)', doc, 'a manifest must be a mapping with kind, metadata and spec');
    }
    const kindValue = (doc as Record<string, unknown>).kind;
    const kind = MANIFEST_KINDS.find((k) => k === kindValue);
    if (kind === undefined) {
      const kinds = MANIFEST_KINDS.map((k) => JSON.stringify(k)).join(', ');
      if (kindValue === undefined) {
        throw new ValidationError('kind', undefined, `required field is missing (one of ${kinds})`, { showValue: false });
      }
      throw new ValidationError('kind', kindValue, `must be one of ${kinds}`);
    }
    switch (kind) {
      case 'VM': {
        const manifest = parseWith(VmManifestSchema, doc);
        if (manifest.spec.xml !== undefined) parseVmXml(manifest.spec.xml, manifest.metadata.name, 'spec.xml');
        return manifest;
      }
      case 'Network': {
        const manifest = parseWith(NetworkManifestSchema, doc);
        return { ...manifest, metadata: { name: String(manifest.metadata.name) } };
      }
      case 'Node':
        return parseWith(NodeManifestSchema, doc);
      case 'ClusterConfig':
        return parseWith(ClusterConfigManifestSchema, doc);
    }
  } catch (error) {
    if (error instanceof ValidationError) throw error.withSource(where);
    throw error;
  }
}

/** Separates a VM manifest spec into the VmSpec to store and where its XML comes from. */
export function splitVmManifestSpec(spec: VmManifestSpec): { spec: VmSpec; xml?: string; xmlFile?: string } {
  const { xml, xmlFile, ...vmSpec } = spec;
  return { spec: vmSpec, ...(xml !== undefined && { xml }), ...(xmlFile !== undefined && { xmlFile }) };
}

/** JSON Schema (draft 2020-12) of a manifest of `kind`, for editors; defaulted fields are optional. */
export function jsonSchemaFor(kind: ManifestKind): Record<string, unknown> {
  const schema = z.toJSONSchema(SCHEMAS[kind], { io: 'input' }) as Record<string, unknown>;
  const { $schema, ...rest } = schema;
  return { $schema, title: `virtkeeper ${kind} manifest`, ...rest };
}
