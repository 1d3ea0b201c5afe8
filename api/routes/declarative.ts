// POST /apply, /diff, /plan: manifests in (parsed documents, or YAML text; the domain XML inline),
// the same result objects `vk apply|diff|plan -o json` print out (core/declarative.ts). Diff and
// plan write nothing; apply validates every object before its first write (a bad one: 400, nothing
// written).
import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { Cluster } from '../../cli/connect.ts';
import { applyManifests, decodeRequestManifests, diffManifests, planManifests } from '../../core/declarative.ts';
import { errorResponses } from '../schemas.ts';

const manifestsFields = {
  manifests: z.array(z.unknown()).max(10_000).optional().describe('manifest documents (apiVersion, kind, metadata, spec), as vk apply -f reads them; a VM\'s XML inline (spec.xml)'),
  yaml: z.string().optional().describe('or: manifests as YAML text (several documents separated by ---)'),
};
const ManifestsBody = z.strictObject(manifestsFields).meta({ id: 'Manifests' });
const ApplyBody = z.strictObject({ ...manifestsFields, dryRun: z.boolean().optional().describe('say what would be written, write nothing') }).meta({ id: 'ApplyManifests' });
const PlanBody = z
  .strictObject({ manifests: manifestsFields.manifests, yaml: manifestsFields.yaml })
  .meta({ id: 'PlanManifests', description: 'no manifests: the plan of the cluster as it is' });

const KIND = z.enum(['VM', 'Network', 'Node', 'ClusterConfig']);
const RESULT = z.enum(['created', 'configured', 'unchanged']);
const AppliedObject = z.object({ id: z.string().describe('e.g. vm/web1'), kind: KIND, name: z.string(), result: RESULT });

const ApplyOutcome = z.object({ dryRun: z.boolean(), objects: z.array(AppliedObject) }).meta({ id: 'ApplyOutcome' });
const DiffOutcome = z
  .object({
    differs: z.boolean().describe('true when apply would write anything'),
    objects: z.array(AppliedObject.extend({ patches: z.array(z.object({ part: z.string().describe('spec, xml or config'), patch: z.string().describe('unified diff, live → manifest') })) })),
  })
  .meta({ id: 'DiffOutcome' });
const PlanOutcome = z
  .object({
    zxid: z.string().describe('the ZooKeeper zxid the plan was computed at'),
    actions: z.array(z.looseObject({ node: z.string(), vm: z.string().nullable(), action: z.string(), description: z.string() })),
  })
  .meta({ id: 'PlanOutcome' });

const readErrors = errorResponses(400, 401, 503);

export function declarativeRoutes(app: FastifyInstance, cluster: Cluster): void {
  const api = app.withTypeProvider<ZodTypeProvider>();
  api.post(
    '/apply',
    { schema: { tags: ['manifests'], summary: 'create or update the objects of manifests, as vk apply -o json', body: ApplyBody, response: { 200: ApplyOutcome, ...errorResponses(400, 401, 403, 503) } } },
    async (req) => applyManifests(cluster, decodeRequestManifests(req.body), { dryRun: req.body.dryRun === true }),
  );
  api.post(
    '/diff',
    { schema: { tags: ['manifests'], summary: 'what apply would change, as vk diff -o json (writes nothing)', body: ManifestsBody, response: { 200: DiffOutcome, ...readErrors } } },
    async (req) => diffManifests(cluster, decodeRequestManifests(req.body)),
  );
  api.post(
    '/plan',
    { schema: { tags: ['manifests'], summary: 'what the cluster would do, per node, as vk plan -o json (writes nothing)', body: PlanBody, response: { 200: PlanOutcome, ...readErrors } } },
    async (req) => {
      const given = req.body.manifests !== undefined || req.body.yaml !== undefined;
      const { zxid, actions } = await planManifests(cluster, given ? decodeRequestManifests(req.body) : []);
      return { zxid, actions };
    },
  );
}
