// The REST API's request and response shapes, built from the project's zod schemas (schemas/):
// the routes validate with them and the OpenAPI document (/openapi.json) is generated from them.
import { z } from 'zod';
import {
  MigrationRecordSchema,
  NameSchema,
  NetworkSpecSchema,
  NetworkStatusSchema,
  NodeSpecSchema,
  NodeStatusSchema,
  VmManifestSchema,
  VmSpecSchema,
  VmStatusSchema,
  VniSchema,
  VM_MIGRATION_METHODS,
  VM_NODE_SELECTORS,
  VM_STATES,
} from '../schemas/index.ts';
import { intInRange } from '../schemas/rules.ts';

export const ErrorBody = z
  .object({
    error: z.object({
      reason: z.string().describe('InvalidInput, Unauthorized, Forbidden, NotFound, Conflict, Refused, Unavailable, Internal'),
      message: z.string(),
      field: z.string().optional().describe('the input field at fault (400)'),
      currentVersion: z.number().int().optional().describe('the generation the object has now (409 on a conflict)'),
    }),
  })
  .meta({ id: 'Error' });

/** The documented error responses of a route: only the statuses it can answer with. */
export function errorResponses<const C extends readonly (400 | 401 | 403 | 404 | 409 | 503)[]>(...codes: C): Record<C[number], typeof ErrorBody> {
  return Object.fromEntries(codes.map((c) => [c, ErrorBody])) as Record<C[number], typeof ErrorBody>;
}

export const VmNameParams = z.strictObject({ name: NameSchema });
export const VniParams = z.strictObject({ vni: VniSchema });
export const NodeNameParams = z.strictObject({ name: NameSchema });

/** Meta fields to change; those left out keep their value (merged over the VM's meta). */
export const VmMetaPatch = z
  .strictObject({
    nodeLimit: z.array(NameSchema).optional(),
    nodeSelector: z.enum(VM_NODE_SELECTORS).optional(),
    autostart: z.boolean().optional(),
    migrationMethod: z.enum(VM_MIGRATION_METHODS).optional(),
    maxDowntimeMs: intInRange(1).optional(),
  })
  .meta({ id: 'VmMetaPatch' });

/** PVC's POST /vm: a libvirt domain XML (its <name> is the VM's name) with meta, node and state. */
export const DefineXmlBody = z
  .strictObject({
    xml: z.string().describe('libvirt domain XML'),
    meta: VmMetaPatch.optional(),
    node: NameSchema.optional().describe("default: chosen by the VM's selector"),
    state: z.enum(VM_STATES).optional().describe('default running'),
  })
  .meta({ id: 'DefineVmXml' });

/** POST /vm's body: the XML form, or a VM manifest (as vk apply reads; spec.xml inline). */
export const DefineBody = z.union([DefineXmlBody, VmManifestSchema]);

/**
 * The branch of a union body to validate a request with, so a 400 names the field of the form the
 * client meant (a body with `kind` is a manifest) instead of "matches no branch".
 */
export const unionBranches = new Map<z.ZodType, (data: unknown) => z.ZodType>([
  [DefineBody, (data) => (data !== null && typeof data === 'object' && 'kind' in data ? VmManifestSchema : DefineXmlBody)],
]);

/** PVC's POST /vm/<vm>: meta, state and node, any of them, changed together. */
export const ChangeBody = z
  .strictObject({
    meta: VmMetaPatch.optional(),
    state: z.enum(VM_STATES).optional().describe('stopped shuts the VM down as its stopMode says'),
    node: NameSchema.optional().describe('move the VM to this node permanently (as vk vm move)'),
    generation: z.number().int().min(0).optional().describe('refuse with 409 unless the VM is at this generation'),
  })
  .meta({ id: 'ChangeVm' });

export const RemoveQuery = z.strictObject({ force: z.enum(['true', 'false']).optional().describe('remove a VM whose desired state is running') });

export const VmQuery = z.strictObject({
  waitFor: z.coerce.number().int().min(0).optional().describe('wait until the VM has acted on this generation (as vk --wait)'),
  timeout: z.coerce.number().positive().max(3600).optional().describe('seconds to wait at most (default 120)'),
});

/** POST /vm/{name}/migrate: as `vk vm migrate NAME [--node N] [--force] [--force-live]`. */
export const MigrateBody = z
  .strictObject({
    node: NameSchema.optional().describe("the target; absent: the VM's selector picks one"),
    force: z.boolean().optional().describe('migrate a VM that is already migrated (its original previous node is kept)'),
    live: z.boolean().optional().describe('live migration only: sets meta.migrationMethod to live'),
  })
  .meta({ id: 'MigrateVm' });

/** POST /vm/{name}/move: as `vk vm move NAME [--node N]` (a permanent move: no previous node). */
export const MoveBody = z.strictObject({ node: NameSchema.optional().describe("the new home; absent: the VM's selector picks one") }).meta({ id: 'MoveVm' });

/** The answer of POST /vm/{name}/flush-locks: the node answers in the VM's RBD check (`flushLocks.at` = `at`). */
export const FlushLocksResult = z
  .object({ name: z.string(), generation: z.number().int(), node: z.string().describe('the node that removes the locks'), at: z.string().describe("the request's stamp, echoed in the node's answer"), images: z.array(z.string()) })
  .meta({ id: 'FlushLocksResult' });

export const WriteResult = z
  .object({ name: z.string(), generation: z.number().int().describe('the spec generation to wait for (GET /vm/{name}?waitFor=)'), changed: z.boolean(), node: z.string() })
  .meta({ id: 'WriteResult' });

const Invalid = z.object({ znode: z.string(), error: z.string(), raw: z.string() }).optional();

export const VmView = z
  .object({
    name: z.string(),
    spec: VmSpecSchema.nullable(),
    generation: z.number().int().nullable(),
    status: VmStatusSchema.nullable(),
    migration: MigrationRecordSchema.nullable(),
    uuid: z.string().nullable(),
    networks: z.array(z.string()),
    invalid: Invalid,
  })
  .meta({ id: 'Vm' });

export const VmDetail = VmView.extend({
  xml: z.string().nullable(),
  wait: z
    .object({ result: z.enum(['done', 'failed', 'timeout']), message: z.string() })
    .optional()
    .describe('present when waitFor was given'),
}).meta({ id: 'VmDetail' });

export const NodeView = z
  .object({
    name: z.string(),
    role: z.string().nullable(),
    alive: z.boolean(),
    keepalive: z.object({ at: z.string(), ageMs: z.number(), stale: z.boolean(), deadAfterMs: z.number() }).nullable(),
    spec: NodeSpecSchema.nullable(),
    status: NodeStatusSchema.nullable(),
    flushLock: z.object({ position: z.number().int(), holder: z.string().nullable(), child: z.string() }).nullable(),
    invalid: Invalid,
  })
  .meta({ id: 'Node' });

export const NetworkView = z
  .object({
    vni: z.string(),
    bridge: z.string(),
    spec: NetworkSpecSchema.nullable(),
    generation: z.number().int().nullable(),
    vms: z.array(z.string()),
    leases: z.number().int().nullable(),
    status: NetworkStatusSchema.nullable(),
    statusProblem: z.string().optional(),
    ready: z.object({ ready: z.number().int(), nodes: z.number().int(), byNode: z.record(z.string(), z.string()) }),
    invalid: Invalid,
  })
  .meta({ id: 'Network' });
