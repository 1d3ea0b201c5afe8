// The double-run sampler: looks at every hypervisor every few milliseconds and reports any instant
// the guest ran on two at once, the switch-overs between hosts and the outages. Used by the
// migration and ownership tests and by bench/storm; the hypervisors are whatever `where` asks.
//
// A sample is two rounds of reads, the second started once every read of the first has answered,
// and a host counts as running only when both of its reads say so. One round alone reports hand-
// overs that never overlapped: A's read answered just before A stopped, B's just after B started
// (a load-dependent skew). With two rounds a reported pair is a real overlap: B running in round 1
// means B started before round 1 ended, A running in round 2 means A still ran after round 2
// began, so both ran at once in between. An overlap shorter than a sample can go unseen.
export interface SamplerOptions {
  everyMs?: number;
  /** Gaps where the guest runs nowhere are expected (a shutdown migration), not violations. */
  allowDowntime?: boolean;
}

export interface Sample {
  t: number;
  states: Record<string, string | null>;
}

export interface SamplerReport {
  samples: number;
  /** Samples with the guest running (not paused) on two hypervisors or more. */
  doubleRunning: Sample[];
  /** Gaps where it ran nowhere and came back on the same host (or never came back). */
  outages: Array<{ fromMs: number; toMs: number | null; host: string | null }>;
  /**
   * Switch-overs: ran on A, then (possibly) nowhere for `absentSamples` samples, then on B.
   * `boundMs` is the time between the last sample on A and the first on B: an upper bound of
   * the downtime at the sampler's resolution.
   */
  switchOvers: Array<{ from: string; to: string; absentSamples: number; boundMs: number }>;
  /** Every host the guest was ever seen running on, in order of first appearance. */
  ranOn: string[];
}

/**
 * Looks at every hypervisor every `everyMs` (default 100): the guest must never run on two at
 * once, and never be absent from all of them while it should run — except across a switch-over
 * (running on A, gap, running on B), which is reported with its downtime. Starts counting once
 * the guest is first seen running.
 */
export class Sampler {
  private readonly samples: Sample[] = [];
  private timer: NodeJS.Timeout;
  private busy = false;

  constructor(
    /** Per hypervisor, the guest's libvirt state there (null: absent). */
    private readonly where: (vm: string) => Promise<Record<string, string | null>>,
    private readonly vm: string,
    private readonly o: SamplerOptions,
  ) {
    this.timer = setInterval(() => this.tick(), o.everyMs ?? 100);
    void this.tick();
  }

  private async tick(): Promise<void> {
    if (this.busy) return;
    this.busy = true;
    try {
      const t = performance.now();
      const first = await this.where(this.vm);
      const second = await this.where(this.vm);
      const states = Object.fromEntries(Object.entries(second).map(([host, state]) => [host, state === 'running' && first[host] !== 'running' ? 'starting' : state]));
      this.samples.push({ t, states });
    } finally {
      this.busy = false;
    }
  }

  /** Samples so far with the guest running on two hypervisors or more. */
  doubleRunsSoFar(): number {
    return this.samples.filter((s) => Object.values(s.states).filter((v) => v === 'running').length > 1).length;
  }

  /** Hosts where the guest runs in the latest sample. */
  latest(): string[] {
    const s = this.samples.at(-1);
    return s ? Object.keys(s.states).filter((k) => s.states[k] === 'running') : [];
  }

  async stop(): Promise<SamplerReport> {
    clearInterval(this.timer);
    while (this.busy) await new Promise((r) => setTimeout(r, 10));
    await this.tick();
    return analyse(this.samples, this.o.allowDowntime ?? false);
  }
}

export function analyse(samples: Sample[], allowDowntime: boolean): SamplerReport {
  const report: SamplerReport = { samples: samples.length, doubleRunning: [], outages: [], switchOvers: [], ranOn: [] };
  let last: { host: string; t: number } | null = null;
  let gapFrom: number | null = null;
  let absent = 0;
  for (const s of samples) {
    const running = Object.keys(s.states).filter((k) => s.states[k] === 'running');
    for (const h of running) if (!report.ranOn.includes(h)) report.ranOn.push(h);
    if (running.length > 1) report.doubleRunning.push(s);
    if (running.length === 0) {
      if (last && gapFrom === null) gapFrom = s.t;
      if (last) absent++;
      continue;
    }
    const host = running[0]!;
    if (last && host !== last.host) {
      report.switchOvers.push({ from: last.host, to: host, absentSamples: absent, boundMs: Math.round(s.t - last.t) });
    } else if (gapFrom !== null && !allowDowntime) {
      report.outages.push({ fromMs: Math.round(gapFrom), toMs: Math.round(s.t), host });
    }
    gapFrom = null;
    absent = 0;
    last = { host, t: s.t };
  }
  if (gapFrom !== null && !allowDowntime) report.outages.push({ fromMs: Math.round(gapFrom), toMs: null, host: null });
  return report;
}
