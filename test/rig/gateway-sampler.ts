// Reads every node's gateway address every `everyMs` (50 by default) and the primary record around
// each read: two nodes holding a gateway at once is a violation unless the record was in a
// make-before-break phase (gateways, release) before or after the read.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import type { ZkStore } from '../../drivers/zk/index.ts';
import { decodePrimaryRecord, type ZkPaths } from '../../schemas/index.ts';

const run = promisify(execFile);

export interface GatewaySample {
  at: number;
  holders: string[];
  phases: string[];
}

export class GatewaySampler {
  readonly samples: GatewaySample[] = [];
  readonly violations: GatewaySample[] = [];
  private timer: NodeJS.Timeout | undefined;
  private busy = false;

  constructor(
    private readonly store: ZkStore,
    private readonly paths: ZkPaths,
    /** node → its namespace */
    private readonly nodes: ReadonlyMap<string, string>,
    private readonly device: string,
    private readonly address: string,
    everyMs = 50,
  ) {
    this.timer = setInterval(() => void this.tick(), everyMs);
  }

  private async phase(): Promise<string> {
    const got = await this.store.get(this.paths.primary);
    return got ? decodePrimaryRecord(got.data.toString('utf8')).phase : 'none';
  }

  private async holds(ns: string): Promise<boolean> {
    try {
      const { stdout } = await run('ip', ['-n', ns, '-j', 'addr', 'show', 'dev', this.device]);
      const links = JSON.parse(stdout) as Array<{ addr_info?: Array<{ local?: string }> }>;
      return links.some((l) => (l.addr_info ?? []).some((a) => a.local === this.address));
    } catch {
      return false; // no such device
    }
  }

  private async tick(): Promise<void> {
    if (this.busy) return;
    this.busy = true;
    try {
      const before = await this.phase();
      const held = await Promise.all([...this.nodes].map(async ([node, ns]) => ((await this.holds(ns)) ? node : undefined)));
      const after = await this.phase();
      const s: GatewaySample = { at: Date.now(), holders: held.filter((h): h is string => h !== undefined), phases: [before, after] };
      this.samples.push(s);
      const handover = s.phases.some((p) => p === 'gateways' || p === 'release');
      if (s.holders.length > 1 && !handover) this.violations.push(s);
    } catch {
      // ZooKeeper briefly unreachable: skip this sample
    } finally {
      this.busy = false;
    }
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }
}
