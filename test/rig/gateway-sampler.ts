// Reads every node's gateway address every `everyMs` (50 by default) and the primary record around
// each read: two nodes holding a gateway at once is a violation unless the record was in a
// make-before-break phase (gateways, release) before or after the read.
//
// Two holders in one sample are proved, not inferred from reads that ran side by side (three `ip`
// processes on a loaded machine can run far apart): the nodes are read one after the other, and a
// node seen holding is read again after the last other holder was seen. Still holding then, its
// address was there across the other's read, so both held it at that instant. Every sample with
// two holders is kept with its reads (time, remaining lifetime) so a failure can be explained.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import type { ZkStore } from '../../drivers/zk/index.ts';
import { decodePrimaryRecord, type ZkPaths } from '../../schemas/index.ts';

const run = promisify(execFile);

export interface GatewayRead {
  node: string;
  /** Date.now() when the read was started and when its answer came. */
  from: number;
  to: number;
  /** The address's remaining valid lifetime in seconds (undefined: not held). */
  validS?: number;
}

export interface GatewaySample {
  at: number;
  holders: string[];
  phases: string[];
  /** Every read of this sample, in order (the confirming re-reads last). */
  reads?: GatewayRead[];
}

export class GatewaySampler {
  readonly samples: GatewaySample[] = [];
  /** Proved: two nodes held the address at one instant outside a hand-over. */
  readonly violations: GatewaySample[] = [];
  /** Two holders seen in one sample, whether proved or not (with their reads, for the log). */
  readonly suspects: GatewaySample[] = [];
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

  private async read(node: string): Promise<GatewayRead> {
    const from = Date.now();
    try {
      const { stdout } = await run('ip', ['-n', this.nodes.get(node)!, '-j', 'addr', 'show', 'dev', this.device]);
      const links = JSON.parse(stdout) as Array<{ addr_info?: Array<{ local?: string; valid_life_time?: number }> }>;
      const a = links.flatMap((l) => l.addr_info ?? []).find((x) => x.local === this.address);
      return { node, from, to: Date.now(), ...(a ? { validS: a.valid_life_time ?? Infinity } : {}) };
    } catch {
      return { node, from, to: Date.now() }; // no such device
    }
  }

  private async tick(): Promise<void> {
    if (this.busy) return;
    this.busy = true;
    try {
      const before = await this.phase();
      const reads: GatewayRead[] = [];
      for (const node of this.nodes.keys()) reads.push(await this.read(node));
      const seen = reads.filter((r) => r.validS !== undefined);
      // Each holder but the last is read again: still there after the last holder's read, it held
      // the address at the same instant as that one.
      const proved = new Set<string>();
      if (seen.length > 1) {
        const last = seen.at(-1)!;
        for (const r of seen.slice(0, -1)) {
          const again = await this.read(r.node);
          reads.push(again);
          if (again.validS !== undefined) proved.add(r.node).add(last.node);
        }
      }
      const after = await this.phase();
      const s: GatewaySample = { at: Date.now(), holders: seen.map((r) => r.node), phases: [before, after] };
      this.samples.push(s);
      const handover = s.phases.some((p) => p === 'gateways' || p === 'release');
      if (seen.length > 1 && !handover) {
        this.suspects.push({ ...s, reads });
        if (proved.size > 1) this.violations.push({ ...s, holders: [...proved], reads });
      }
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
