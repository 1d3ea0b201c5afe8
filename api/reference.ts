// The API reference page (api/README.md), rendered from the OpenAPI document the server serves:
// every route with its parameters, body and responses, then every schema they name, field by
// field. Generated, never written by hand: `vk api reference > api/README.md`, and a test fails
// when the committed page differs from what the schemas give.

type Schema = {
  $ref?: string;
  type?: string | string[];
  enum?: unknown[];
  const?: unknown;
  anyOf?: Schema[];
  oneOf?: Schema[];
  items?: Schema;
  properties?: Record<string, Schema>;
  required?: string[];
  additionalProperties?: boolean | Schema;
  description?: string;
  default?: unknown;
  pattern?: string;
  minimum?: number;
  maximum?: number;
  exclusiveMinimum?: number;
  maxLength?: number;
  maxItems?: number;
  format?: string;
};

interface Operation {
  summary?: string;
  tags?: string[];
  parameters?: Array<{ name: string; in: string; required?: boolean; description?: string; schema: Schema }>;
  requestBody?: { content: Record<string, { schema: Schema }> };
  responses: Record<string, { content?: Record<string, { schema: Schema }> }>;
}

export interface OpenApiDocument {
  info: { title: string; description?: string; version: string };
  paths: Record<string, Record<string, Operation>>;
  components?: { schemas?: Record<string, Schema> };
}

const SAFE_INT = 9007199254740991;
const METHOD_ORDER = ['get', 'post', 'put', 'patch', 'delete'];

function refName(ref: string): string {
  return ref.replace('#/components/schemas/', '');
}

function anchor(name: string): string {
  return `schema-${name.toLowerCase()}`;
}

function cell(text: string): string {
  return text.replace(/\|/g, '\\|').replace(/\n/g, ' ');
}

/** A short type: `string`, `integer ≥ 0`, `"a" \| "b"`, `array of [Vm](#…)`, `object`. */
function typeOf(s: Schema | undefined, used: Set<string>): string {
  if (!s || Object.keys(s).filter((k) => k !== 'description').length === 0) return 'any';
  if (s.$ref) {
    const name = refName(s.$ref);
    used.add(name);
    return `[${name}](#${anchor(name)})`;
  }
  const alternatives = s.anyOf ?? s.oneOf;
  if (alternatives) return alternatives.map((a) => typeOf(a, used)).join(' or ');
  if (s.const !== undefined) return JSON.stringify(s.const);
  if (s.enum) return s.enum.map((v) => JSON.stringify(v)).join(', ');
  const types = Array.isArray(s.type) ? s.type : s.type ? [s.type] : [];
  return types
    .map((t) => {
      if (t === 'array') return `array of ${typeOf(s.items, used)}${s.maxItems !== undefined ? ` (at most ${s.maxItems})` : ''}`;
      if (t === 'integer' || t === 'number') {
        const bounds: string[] = [];
        if (s.minimum !== undefined && s.minimum > -SAFE_INT) bounds.push(`≥ ${s.minimum}`);
        if (s.exclusiveMinimum !== undefined) bounds.push(`> ${s.exclusiveMinimum}`);
        if (s.maximum !== undefined && s.maximum < SAFE_INT) bounds.push(`≤ ${s.maximum}`);
        return bounds.length ? `${t} ${bounds.join(', ')}` : t;
      }
      if (t === 'string' && s.format) return `string (${s.format})`;
      return t;
    })
    .join(' or ');
}

function describe(s: Schema): string {
  const parts: string[] = [];
  if (s.description) parts.push(s.description);
  if (s.default !== undefined) parts.push(`default ${JSON.stringify(s.default)}`);
  if (s.pattern) parts.push(`pattern \`${s.pattern}\``);
  return parts.join('; ');
}

/** Rows for an object's fields; inline objects are flattened with dotted names. */
function fieldRows(s: Schema, used: Set<string>, prefix = '', depth = 0): string[] {
  const rows: string[] = [];
  const required = new Set(s.required ?? []);
  for (const [key, field] of Object.entries(s.properties ?? {})) {
    const name = `${prefix}${key}`;
    const inline = field.anyOf?.find((a) => a.properties) ?? (field.properties ? field : undefined);
    const type = inline && depth < 3 ? (field.anyOf ? typeOf({ anyOf: field.anyOf.map((a) => (a.properties ? { type: 'object' } : a)) }, used) : 'object') : typeOf(field, used);
    rows.push(`| \`${name}\` | ${cell(type)} | ${required.has(key) ? 'yes' : ''} | ${cell(describe(field))} |`);
    if (inline && depth < 3) rows.push(...fieldRows(inline, used, `${name}.`, depth + 1));
    const item = field.items;
    if (item?.properties && depth < 3) rows.push(...fieldRows(item, used, `${name}[].`, depth + 1));
  }
  return rows;
}

const FIELD_HEADER = ['| field | type | required | notes |', '|---|---|---|---|'];

function renderSchema(name: string, s: Schema, used: Set<string>): string[] {
  const out = [`### ${name}`, '', `<a id="${anchor(name)}"></a>`, ''];
  if (s.description) out.push(s.description, '');
  if (s.properties) out.push(...FIELD_HEADER, ...fieldRows(s, used), '');
  else out.push(`${typeOf(s, used)}`, '');
  return out;
}

function renderOperation(method: string, path: string, op: Operation, used: Set<string>): string[] {
  const out = [`### ${method.toUpperCase()} ${path}`, ''];
  if (op.summary) out.push(`${op.summary[0]!.toUpperCase()}${op.summary.slice(1)}.`, '');
  const params = op.parameters ?? [];
  if (params.length > 0) {
    out.push('| parameter | in | type | required | notes |', '|---|---|---|---|---|');
    for (const p of params) out.push(`| \`${p.name}\` | ${p.in} | ${cell(typeOf(p.schema, used))} | ${p.required ? 'yes' : ''} | ${cell(p.description ?? '')} |`);
    out.push('');
  }
  const body = op.requestBody?.content['application/json']?.schema;
  if (body) out.push(`Body (JSON): ${typeOf(body, used)}`, '');
  const responses = Object.entries(op.responses).map(([status, r]) => {
    const schema = r.content?.['application/json']?.schema;
    return `${status}${schema ? ` ${typeOf(schema, used)}` : ''}`;
  });
  out.push(`Responses: ${responses.join(' · ')}`, '');
  return out;
}

export function renderReference(doc: OpenApiDocument): string {
  const used = new Set<string>();
  const out = [
    `# ${doc.info.title} REST API reference (version ${doc.info.version})`,
    '',
    '<!-- Generated from the OpenAPI document by `vk api reference` (api/reference.ts); do not edit by hand. -->',
    '',
    doc.info.description ?? '',
    '',
    'Every route but `GET /openapi.json` needs `Authorization: Bearer <token>` when the server has tokens. Every error is',
    '`{"error": {"reason", "message", "field"?, "currentVersion"?}}` ([Error](#schema-error)): 400 bad input (nothing written),',
    '401 no or unknown token, 403 a read token on a write, 404 not found, 409 refused or a version conflict, 429 over the',
    'rate limit (with Retry-After), 503 ZooKeeper not connected or other writers kept winning (try again). How to run the',
    'server, tokens, TLS and limits: the repository README, "The REST API".',
    '',
  ];
  const byTag = new Map<string, string[]>();
  for (const [path, item] of Object.entries(doc.paths)) {
    for (const method of METHOD_ORDER) {
      const op = item[method];
      if (!op) continue;
      const tag = op.tags?.[0] ?? 'other';
      if (!byTag.has(tag)) byTag.set(tag, []);
      byTag.get(tag)!.push(...renderOperation(method, path, op, used));
    }
  }
  for (const [tag, lines] of byTag) out.push(`## ${tag}`, '', ...lines);
  out.push('## Schemas', '');
  const schemas = doc.components?.schemas ?? {};
  const done = new Set<string>();
  // Rendering a schema can name more schemas: go on until none is left.
  for (let pending = [...used].sort(); pending.length > 0; pending = [...used].filter((n) => !done.has(n)).sort()) {
    for (const name of pending) {
      done.add(name);
      const s = schemas[name];
      if (s) out.push(...renderSchema(name, s, used));
    }
  }
  return `${out.join('\n').replace(/\n{3,}/g, '\n\n').trimEnd()}\n`;
}

/** The OpenAPI document of the routes, without a cluster: the server built over a store it never uses. */
export async function openApiDocument(): Promise<OpenApiDocument> {
  const { buildApi } = await import('./server.ts');
  const { ZkPaths } = await import('../schemas/index.ts');
  const unused = { connectionState: 'disconnected' } as unknown as Parameters<typeof buildApi>[0]['store'];
  const app = await buildApi({ store: unused, paths: new ZkPaths('/virtkeeper'), auth: null, log: false });
  try {
    return app.swagger() as unknown as OpenApiDocument;
  } finally {
    await app.close();
  }
}
