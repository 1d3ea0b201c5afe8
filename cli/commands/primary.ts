// `vk node primary NAME [--wait] [--timeout S] [-o json|yaml]`: ask for a planned hand-over of the
// primary coordinator role to NAME (DESIGN §4 "Primary coordinator"). The CLI only asks: one
// compare-and-set of /config/primary adding `request: {to, at}`; the coordinators' daemons run the
// phases (gateways → release → dhcp → primary) and write the outcome to `last`. --wait follows the
// record and prints each phase as it is seen.
import { performance } from 'node:perf_hooks';
import { Option, type Command } from 'commander';
import type { Cluster } from '../connect.ts';
import { parseSeconds, withCluster } from '../connect.ts';
import { CliError } from '../errors.ts';
import { println, toJson, toYaml } from '../output.ts';
import { handoverOf, handoverPhaseText, phaseText } from '../primary.ts';
import { handoverRequest, requestPrimary, type Asked } from '../../core/node.ts';
import { followUntil } from '../wait.ts';
import type { DataState } from '../../drivers/zk/index.ts';
import { assertName, decodePrimaryRecord, ValidationError, type PrimaryPhase, type PrimaryRecord } from '../../schemas/index.ts';

export const DEFAULT_PRIMARY_WAIT_SECONDS = 60;

interface PrimaryFlags {
  wait?: boolean;
  timeout?: number;
  output?: 'json' | 'yaml';
}

/** Re-exported for the CLI's tests: the edit lives in core/node.ts with the write it serves. */
export { handoverRequest, type Asked };

export function registerPrimary(node: Command): void {
  node
    .command('primary')
    .description(
      'make a coordinator the primary (a planned hand-over: it adds the gateways before the old primary drops them; DHCP moves last)',
    )
    .argument('<name>', 'coordinator node name')
    .addOption(new Option('--wait', 'follow the hand-over phase by phase until NAME is primary (exit 1 if it is refused, rolled back or times out)'))
    .addOption(new Option('--timeout <seconds>', `with --wait: give up after this long (default ${DEFAULT_PRIMARY_WAIT_SECONDS})`).argParser(parseSeconds))
    .addOption(new Option('-o, --output <format>', 'print /config/primary (as written, or as it ended with --wait) as json or yaml').choices(['json', 'yaml']))
    .action(async (nameText: string, flags: PrimaryFlags, cmd: Command) => {
      const name = assertName(nameText, 'node');
      // With -o the record is stdout's only content; the sentences go to stderr.
      const say = flags.output ? (line: string) => process.stderr.write(`${line}\n`) : println;
      const print = (record: PrimaryRecord) => {
        if (flags.output === 'json') process.stdout.write(toJson(record));
        else if (flags.output === 'yaml') process.stdout.write(toYaml(record));
      };
      await withCluster(cmd, async (cluster) => {
        const { asked: kind, record } = await requestPrimary(cluster, name);
        const startedMs = performance.now();
        if (kind === 'already') {
          const pending = record.request ? `; note: a hand-over to ${record.request.to} is requested (at ${record.request.at})` : '';
          say(`${name} is already the primary coordinator (term ${record.term})${pending}`);
          print(record);
          return;
        }
        if (kind === 'pending') say(`hand-over to ${name} already requested at ${record.request!.at} (primary now: ${record.node})`);
        else say(`hand-over to ${name} requested (primary now: ${record.node})`);
        if (!flags.wait) {
          print(record);
          return;
        }
        const follow = { name, requestAt: record.request!.at, lastBefore: JSON.stringify(record.last ?? null), startedMs };
        const outcome = await followHandover(cluster, follow, flags.timeout ?? DEFAULT_PRIMARY_WAIT_SECONDS, say);
        if (outcome.record) print(outcome.record);
        if (outcome.error) throw outcome.error;
        say(outcome.summary!);
      });
    });
}

interface Follow {
  name: string;
  /** request.at of the request followed: the request is gone once no request carries it. */
  requestAt: string;
  /** record.last when the request was made (JSON): a different `last` is this request's outcome. */
  lastBefore: string;
  startedMs: number;
}

interface Outcome {
  /** The last record seen (printed with -o). */
  record: PrimaryRecord | null;
  summary?: string;
  error?: CliError;
}

/**
 * Follows /config/primary (a level-triggered watch: a phase shorter than a read may be skipped,
 * so the phases the record's `steps` — or, once it ended, `last.steps` — list are printed too)
 * until NAME is primary, the request ends otherwise, or the timeout.
 */
async function followHandover(cluster: Cluster, f: Follow, timeoutSeconds: number, say: (line: string) => void): Promise<Outcome> {
  const { store, paths } = cluster;
  const timeoutMs = Math.round(timeoutSeconds * 1000);
  const printed = new Set<PrimaryPhase>();
  const elapsed = () => Math.round(performance.now() - f.startedMs);
  const line = (phase: PrimaryPhase, text: string) => {
    printed.add(phase);
    say(`${`+${elapsed()}`.padStart(7)} ms  ${phase.padEnd(8)}   ${text}`);
  };
  let last: { record: PrimaryRecord } | { problem: string } | null = null;

  const evaluate = (record: PrimaryRecord): Outcome | null => {
    const ours = record.request?.to === f.name && record.request.at === f.requestAt;
    const outcome = record.last !== undefined && JSON.stringify(record.last) !== f.lastBefore ? record.last : undefined;
    // The hand-over's ends, for phases known only from the steps.
    const h = handoverOf(record);
    const from = h?.from ?? outcome?.from ?? '?';
    const to = h?.to ?? outcome?.to ?? f.name;
    const steps = record.phase === 'primary' && outcome ? outcome.steps : record.steps;
    for (const step of steps) {
      if (step.phase !== 'primary' && !printed.has(step.phase)) line(step.phase, handoverPhaseText(step.phase, from, to));
    }
    if (h && !printed.has(h.phase)) line(h.phase, phaseText(record));
    if (record.node === f.name && record.phase === 'primary') {
      line('primary', phaseText(record));
      const took = `${elapsed()} ms`;
      const via = outcome?.from && outcome.from !== f.name ? ` from ${outcome.from}` : '';
      return { record, summary: `hand-over${via} to ${f.name} completed in ${took}: ${f.name} is primary (term ${record.term})` };
    }
    if (ours || record.phase !== 'primary' || !outcome) return null;
    // The request is gone and the record says how it ended.
    if (printed.size > 0) line('primary', `${phaseText(record)}${outcome.result === 'rolledBack' ? ' (rolled back)' : ''}`);
    if (outcome.to === f.name && (outcome.result === 'refused' || outcome.result === 'rolledBack')) {
      const what = outcome.result === 'refused' ? 'refused' : 'rolled back';
      return { record, error: new CliError(`hand-over to ${f.name} ${what}: ${outcome.message} (${record.node} is primary)`) };
    }
    return {
      record,
      error: new CliError(
        `hand-over to ${f.name} did not happen: the last change of primary was ${outcome.result} ${outcome.from ?? '-'} → ${outcome.to ?? '-'}: ${outcome.message} (${record.node} is primary)`,
      ),
    };
  };

  const stuck = (): string => {
    if (last === null) return `/config/primary is gone`;
    if ('problem' in last) return `/config/primary cannot be read (${last.problem})`;
    const record = last.record;
    const h = handoverOf(record);
    if (h) return `stuck in phase ${h.phase} since ${record.since} (${phaseText(record)})`;
    if (record.request?.to === f.name && record.request.at === f.requestAt) {
      return `the request is still pending: ${record.node} (primary, term ${record.term}) has not begun the hand-over (is its daemon running?)`;
    }
    return `${record.node} is primary and the request is gone without an outcome`;
  };

  return followUntil<DataState, Outcome>(store.watchData(paths.primary), {
    timeoutMs,
    closed: `stopped following ${paths.primary}: the connection to ZooKeeper closed`,
    onValue: (state) => {
      if (state.kind !== 'data') {
        last = null;
        return undefined;
      }
      let record: PrimaryRecord;
      try {
        record = decodePrimaryRecord(state.data);
      } catch (error) {
        if (!(error instanceof ValidationError)) throw error;
        last = { problem: error.message };
        return undefined;
      }
      last = { record };
      return evaluate(record) ?? undefined;
    },
    onTimeout: () => {
      const record = last !== null && 'record' in last ? last.record : null;
      return { record, error: new CliError(`timed out after ${timeoutMs / 1000}s waiting for ${f.name} to become primary: ${stuck()}`) };
    },
  });
}
