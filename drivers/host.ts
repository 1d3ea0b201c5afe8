// The host itself as the keepalive sees it: memory from /proc/meminfo and the one-minute load average.
import { readFileSync } from 'node:fs';
import { loadavg } from 'node:os';

export interface HostMemory {
  totalKiB: number;
  /** What new guests can still get without swapping: MemAvailable (or an estimate on kernels without it). */
  availableKiB: number;
}

export interface HostSample {
  memory: HostMemory;
  /** One-minute load average. */
  load: number;
}

/** Parses /proc/meminfo text. Throws when MemTotal is missing. */
export function parseMeminfo(text: string): HostMemory {
  const fields = new Map<string, number>();
  for (const line of text.split('\n')) {
    const m = /^([A-Za-z0-9_()]+):\s+(\d+)(?:\s+kB)?\s*$/.exec(line);
    if (m) fields.set(m[1]!, Number(m[2]));
  }
  const totalKiB = fields.get('MemTotal');
  if (totalKiB === undefined) throw new Error('no MemTotal in /proc/meminfo');
  // MemAvailable appeared in Linux 3.14; before it, free + page cache is the usual estimate.
  const availableKiB =
    fields.get('MemAvailable') ?? (fields.get('MemFree') ?? 0) + (fields.get('Buffers') ?? 0) + (fields.get('Cached') ?? 0);
  return { totalKiB, availableKiB: Math.min(availableKiB, totalKiB) };
}

/**
 * A synchronous read: /proc/meminfo is made in memory by the kernel, so it cannot block, and the
 * thread pool's four round trips (open, stat, read, close) would wake the daemon four times more
 * at every keepalive.
 */
export async function readMeminfo(path = '/proc/meminfo'): Promise<HostMemory> {
  return parseMeminfo(readFileSync(path, 'utf8'));
}

export function loadAverage1(): number {
  return Math.max(0, loadavg()[0] ?? 0);
}

export async function readHost(meminfoPath?: string): Promise<HostSample> {
  return { memory: await readMeminfo(meminfoPath), load: loadAverage1() };
}
