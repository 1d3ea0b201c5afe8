// Percentiles and rounding shared by the benchmarks.

export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * (sorted.length - 1)))]!;
}

export interface Summary {
  n: number;
  p50: number;
  p90: number;
  p99: number;
  max: number;
  mean: number;
}

export function summarize(xs: number[]): Summary {
  const s = [...xs].sort((a, b) => a - b);
  return {
    n: s.length,
    p50: percentile(s, 50),
    p90: percentile(s, 90),
    p99: percentile(s, 99),
    max: s[s.length - 1] ?? NaN,
    mean: s.reduce((a, b) => a + b, 0) / (s.length || 1),
  };
}

export const round3 = (x: number): number => Math.round(x * 1000) / 1000;

export function nsToMs(ns: bigint): number {
  return Number(ns) / 1e6;
}

export function describe(label: string, s: Summary): string {
  return `${label.padEnd(34)} n=${s.n}  p50=${round3(s.p50)} ms  p90=${round3(s.p90)} ms  p99=${round3(s.p99)} ms  max=${round3(s.max)} ms`;
}
