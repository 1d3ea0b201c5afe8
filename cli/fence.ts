// Fencing as the CLI shows and reads it (DESIGN §4 "Fencing and recovery"): the FENCE column of
// `vk get nodes`, the Fence block of `vk describe node`, the maintenance sentences, and the fence
// settings file of `vk node fence set`.
//
// Invariant: nothing here ever prints a secret (ipmi.password, command.env values). Settings are
// shown through formatNodeFence / redactNodeFence only, and a settings file that does not parse
// or validate is refused with the field and the line, never with its text.
import { parseDocument } from 'yaml';
import { NoAuthError, type ZkStore } from '../drivers/zk/index.ts';
import { decodeNodeFence, formatNodeFence, ValidationError, type ClusterConfig, type NodeFence, type NodeFenceStatus, type ZkPaths } from '../schemas/index.ts';
import { usageError, withSource } from './errors.ts';
import { colors, indent } from './output.ts';
import { readNamedFile, readStdin } from './read-file.ts';

// ---------------------------------------------------------------------------------- maintenance

/** What the maintenance flag means for lost nodes, as one sentence. */
export function maintenanceText(config: Pick<ClusterConfig, 'maintenance' | 'fence'>): string {
  if (config.maintenance) return 'maintenance on: lost nodes are reported, not fenced';
  return config.fence.recover ? 'maintenance off: lost nodes are fenced and their VMs recovered' : 'maintenance off: lost nodes are fenced (fence.recover is off: their VMs are not recovered)';
}

// ------------------------------------------------------------------------------------- status

/** FENCE: '-', `lost`, `fencing`, `fenced/ipmi`, `failed×3` (the rounds tried). */
export function fenceCell(fence: NodeFenceStatus | undefined): string {
  if (!fence) return '-';
  switch (fence.state) {
    case 'fenced':
      return fence.level ? `fenced/${fence.level}` : 'fenced';
    case 'failed':
      return colors.red(`failed×${fence.rounds}`);
    case 'lost':
      return colors.red('lost');
    case 'fencing':
      return colors.yellow('fencing');
  }
}

/** How many fence results `vk describe node` lists (the newest). */
export const FENCE_RESULTS_SHOWN = 5;

function field(label: string, value: unknown): string {
  return `${`${label}:`.padEnd(22)}${value === undefined || value === null || value === '' ? '-' : String(value)}`;
}

function oneLine(text: string): string {
  return text.replace(/\n/g, ' ');
}

/** What /nodes/<name>/fence holds, as far as this connection may read it. */
export type FenceSettingsView =
  | { kind: 'none' }
  | { kind: 'settings'; fence: NodeFence }
  | { kind: 'noAuth' }
  | { kind: 'invalid'; problem: string };

/** Reads a node's fence settings for display: never throws for a missing, private or broken znode. */
export async function readFenceSettings(store: ZkStore, paths: ZkPaths, node: string): Promise<FenceSettingsView> {
  let got;
  try {
    got = await store.get(paths.nodeFence(node));
  } catch (error) {
    if (error instanceof NoAuthError) return { kind: 'noAuth' };
    throw error;
  }
  if (!got) return { kind: 'none' };
  try {
    return { kind: 'settings', fence: decodeNodeFence(got.data) };
  } catch (error) {
    // decodeNodeFence's errors show no secret.
    if (error instanceof ValidationError) return { kind: 'invalid', problem: error.message };
    throw error;
  }
}

function settingsLines(view: FenceSettingsView, node: string): string[] {
  switch (view.kind) {
    case 'none':
      return [field('Settings', `none configured (vk node fence set ${node} -f FILE)`)];
    case 'noAuth':
      return [field('Settings', 'not readable (ACL): give the credentials they were set with (--auth)')];
    case 'invalid':
      return [field('Settings', `invalid: ${oneLine(view.problem)}`)];
    case 'settings':
      return ['Settings:', indent(formatNodeFence(view.fence))];
  }
}

function statusLines(f: NodeFenceStatus): string[] {
  const lines = [
    field('State', f.state),
    field('Level', f.level),
    field('By', f.by),
    field('Lost at', f.lostAt),
    field('Fenced at', f.fencedAt),
    field('Rounds', f.rounds),
    field('Next retry', f.nextRetryAt),
    field('Blocklist', f.blocklist ? `${f.blocklist.address} for ${f.blocklist.ttlS} s (vk node ready lifts it)` : undefined),
    field('Message', oneLine(f.message)),
    field('Updated at', f.updatedAt),
    field('Recovered VMs', f.recovered.join(', ')),
  ];
  if (f.notRecovered.length === 0) lines.push(field('Not recovered VMs', undefined));
  else lines.push('Not recovered VMs:', ...f.notRecovered.map((n) => `  ${n.vm}: ${oneLine(n.why)}`));
  const last = f.results.slice(-FENCE_RESULTS_SHOWN);
  if (last.length === 0) lines.push(field('Results', 'none yet'));
  else {
    const shown = f.results.length > last.length ? ` (last ${last.length} of ${f.results.length})` : '';
    lines.push(`Results${shown}:`);
    for (const r of last) {
      const outcome = r.ok ? 'ok' : `failed${r.reason ? ` (${r.reason})` : ''}`;
      lines.push(`  ${r.at}  ${r.level.padEnd(7)}  ${outcome}  ${r.ms} ms  ${oneLine(r.message)}`.trimEnd());
    }
  }
  return lines;
}

/** describe node's Fence block: the fence concern's record (status.fence), the cluster's maintenance flag, the node's settings. */
export function fenceBlock(node: string, status: NodeFenceStatus | undefined, settings: FenceSettingsView, config: ClusterConfig): string[] {
  const lines = status ? statusLines(status) : [field('State', 'none (the node has not been lost)')];
  if (config.maintenance) lines.push(field('Cluster maintenance', 'on: lost nodes are reported, not fenced'));
  lines.push(...settingsLines(settings, node));
  return ['Fence:', indent(lines.join('\n'))];
}

/** The note `vk get nodes` prints under its table, if any. */
export function maintenanceNote(config: ClusterConfig): string | undefined {
  return config.maintenance ? `${maintenanceText(config)} (vk cluster maintenance off ends it)` : undefined;
}

// ------------------------------------------------------------------------------ settings file

/** The largest fence settings file `vk node fence set` reads. */
export const MAX_FENCE_FILE_BYTES = 64 * 1024;

/**
 * Reads, parses (YAML or JSON) and validates a fence settings file (`-`: stdin). Every refusal is
 * bad input (exit 2) naming the file and the field or the line, never quoting the file's text.
 */
export function readFenceFile(file: string): NodeFence {
  const label = file === '-' ? '(stdin)' : file;
  const what = 'a fence settings file';
  const text = file === '-' ? readStdin(MAX_FENCE_FILE_BYTES, what) : readNamedFile(file, MAX_FENCE_FILE_BYTES, what);
  const doc = parseDocument(text, { uniqueKeys: true });
  const problem = doc.errors[0];
  if (problem) {
    // The parser's message may quote the text (a password): its code and place only.
    const at = problem.linePos?.[0];
    throw usageError(`${label}: not valid YAML or JSON (${problem.code}${at ? ` at line ${at.line}, column ${at.col}` : ''})`);
  }
  let value: unknown;
  try {
    value = doc.toJS({ maxAliasCount: 100 });
  } catch {
    throw usageError(`${label}: the YAML cannot be expanded (an alias to nothing, or more than 100 aliases)`);
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    const what = value === null || value === undefined ? 'empty' : Array.isArray(value) ? 'a list' : `a ${typeof value}`;
    throw usageError(`${label}: must be a mapping of fence levels (ipmi, command, storage); it is ${what}`);
  }
  return withSource(label, () => decodeNodeFence(value));
}
