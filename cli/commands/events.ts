// `vk events [-w] [--node N] [--vm V] [--limit N] [-o json|yaml]`: the cluster's events log
// (/events, core/events.ts), oldest first: one line per event, `TIME  KIND  NODE/VM  MESSAGE`.
// -w prints the events already there, then each new one as it is appended, until Ctrl-C.
// -o json prints a JSON array (with -w: one JSON object per line, as they come); -o yaml a list
// (with -w: one YAML document per event).
import { Option, type Command } from 'commander';
import { followEvents, listEvents, type EventEntry, type EventFilter } from '../../core/events.ts';
import { assertName } from '../../schemas/index.ts';
import { parsePositiveInt, withCluster } from '../connect.ts';
import { println, toJson, toYaml } from '../output.ts';

interface EventsFlags {
  watch?: boolean;
  node?: string;
  vm?: string;
  limit?: number;
  output?: 'json' | 'yaml';
}

const WIDTH = { at: 24, kind: 20, subject: 16 };

/** NODE/VM: `hv1/web1`, `hv1`, `-/web1`, or `-`. */
function subjectOf(e: EventEntry['event']): string {
  if (e.vm !== undefined) return `${e.node ?? '-'}/${e.vm}`;
  return e.node ?? '-';
}

function row(cells: [string, string, string, string]): string {
  const [at, kind, subject, message] = cells;
  return `${at.padEnd(WIDTH.at)}  ${kind.padEnd(WIDTH.kind)}  ${subject.padEnd(WIDTH.subject)}  ${message}`.trimEnd();
}

export const EVENTS_HEADER = row(['TIME', 'KIND', 'NODE/VM', 'MESSAGE']);

/** One readable line (fixed widths, so lines printed as they come stay aligned). */
export function eventLine(entry: EventEntry): string {
  const e = entry.event;
  return row([e.at, e.kind, subjectOf(e), e.message]);
}

/** An event as -o json|yaml prints it: its sequence number, then its fields. */
export function eventJson(entry: EventEntry) {
  return { seq: entry.seq, ...entry.event };
}

export function registerEvents(program: Command): void {
  program
    .command('events')
    .description('show the cluster events log (fences, lost nodes, recoveries, migrations, maintenance), oldest first')
    .option('-w, --watch', 'after the events already there, print each new one as it comes (Ctrl-C to stop)')
    .option('--node <name>', 'only events about this node')
    .option('--vm <name>', 'only events about this VM')
    .option('--limit <count>', 'only the last COUNT events (of those that match)', parsePositiveInt)
    .addOption(new Option('-o, --output <format>', 'json or yaml (with -w: one JSON object per line, one YAML document per event)').choices(['json', 'yaml']))
    .action(async (flags: EventsFlags, cmd: Command) => {
      const filter: EventFilter = {
        ...(flags.node !== undefined && { node: assertName(flags.node, '--node') }),
        ...(flags.vm !== undefined && { vm: assertName(flags.vm, '--vm') }),
      };
      await withCluster(cmd, async ({ store, paths }) => {
        if (!flags.watch) {
          const entries = await listEvents(store, paths, { ...filter, ...(flags.limit !== undefined && { limit: flags.limit }) });
          if (flags.output === 'json') process.stdout.write(toJson(entries.map(eventJson)));
          else if (flags.output === 'yaml') process.stdout.write(toYaml(entries.map(eventJson)));
          else {
            println(EVENTS_HEADER);
            for (const entry of entries) println(eventLine(entry));
          }
          return;
        }
        const print = (entry: EventEntry) => {
          if (flags.output === 'json') process.stdout.write(`${JSON.stringify(eventJson(entry))}\n`);
          else if (flags.output === 'yaml') process.stdout.write(`---\n${toYaml(eventJson(entry))}`);
          else println(eventLine(entry));
        };
        if (!flags.output) println(EVENTS_HEADER);
        await new Promise<void>((resolve, reject) => {
          const subscription = followEvents(store, paths, { ...filter, backlog: flags.limit ?? Number.MAX_SAFE_INTEGER }).subscribe({ next: print, error: reject, complete: resolve });
          const stop = () => {
            subscription.unsubscribe();
            resolve();
          };
          process.once('SIGINT', stop);
          process.once('SIGTERM', stop);
        });
      });
    });
}
