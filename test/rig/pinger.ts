// A 25 ms pinger in a namespace (iputils ping -D -O), counting per window the echo requests that
// got no reply from the target: lost, or answered by an ICMP error ("unreachable", "TTL
// exceeded") instead. Used by the primary hand-over test and bench/handover. Its process is ended
// by PID.
import { spawn, type ChildProcess } from 'node:child_process';

export interface PingWindow {
  /** Sequence numbers sent in the window. */
  sent: number;
  /** Of those, the ones with no echo reply from the target. */
  lost: number;
  lostSeqs: number[];
  /** ICMP errors received for those (unreachable, TTL exceeded). */
  errors: number;
}

export class Pinger {
  private readonly child: ChildProcess;
  private buffer = '';
  /** seq → time (ms, from ping's -D stamp) of its first echo reply. */
  private readonly replies = new Map<number, number>();
  private readonly errorSeqs = new Set<number>();
  private maxSeq = 0;
  private readonly waiters = new Set<() => void>();

  constructor(
    readonly netns: string,
    readonly target: string,
    intervalS = 0.025,
  ) {
    this.child = spawn('ip', ['netns', 'exec', netns, 'ping', '-n', '-D', '-O', '-i', String(intervalS), '-W', '1', target], { stdio: ['ignore', 'pipe', 'ignore'] });
    this.child.stdout!.setEncoding('utf8');
    this.child.stdout!.on('data', (chunk: string) => this.onData(chunk));
  }

  private onData(chunk: string): void {
    this.buffer += chunk;
    const lines = this.buffer.split('\n');
    this.buffer = lines.pop() ?? '';
    for (const line of lines) {
      const seq = Number(/icmp_seq=(\d+)/.exec(line)?.[1] ?? NaN);
      if (!Number.isInteger(seq)) continue;
      this.maxSeq = Math.max(this.maxSeq, seq);
      const stamp = Number(/^\[(\d+\.\d+)\]/.exec(line)?.[1] ?? NaN) * 1000;
      if (line.includes(`bytes from ${this.target}:`)) {
        if (!this.replies.has(seq)) this.replies.set(seq, stamp);
      } else if (/^\[[\d.]+\] From /.test(line)) this.errorSeqs.add(seq);
    }
    for (const w of this.waiters) w();
  }

  /** The highest sequence number seen so far (sent or answered). */
  get seq(): number {
    return this.maxSeq;
  }

  /** Resolves once `n` more replies arrived (the path works), or rejects after timeoutMs. */
  async replying(n = 3, timeoutMs = 10_000): Promise<void> {
    const start = this.replies.size;
    await new Promise<void>((resolve, reject) => {
      const check = () => {
        if (this.replies.size >= start + n) {
          this.waiters.delete(check);
          clearTimeout(timer);
          resolve();
        }
      };
      const timer = setTimeout(() => {
        this.waiters.delete(check);
        reject(new Error(`ping ${this.target} from ${this.netns}: fewer than ${n} replies in ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiters.add(check);
      check();
    });
  }

  /** The sequence numbers in (fromSeq, toSeq] and which of them got no reply. */
  window(fromSeq: number, toSeq: number): PingWindow {
    const lostSeqs: number[] = [];
    let errors = 0;
    for (let s = fromSeq + 1; s <= toSeq; s++) {
      if (!this.replies.has(s)) lostSeqs.push(s);
      if (this.errorSeqs.has(s)) errors++;
    }
    return { sent: Math.max(0, toSeq - fromSeq), lost: lostSeqs.length, lostSeqs, errors };
  }

  /** The longest time without replies among seqs in (fromSeq, toSeq]: last reply before → first after (ms). */
  longestGapMs(fromSeq: number, toSeq: number): number {
    const stamps = [...this.replies.entries()].filter(([s]) => s > fromSeq && s <= toSeq).sort((a, b) => a[0] - b[0]).map(([, t]) => t);
    let gap = 0;
    for (let i = 1; i < stamps.length; i++) gap = Math.max(gap, stamps[i]! - stamps[i - 1]!);
    return gap;
  }

  /** ISO time of the last reply to a seq below `seq` (diagnostics). */
  lastReplyBefore(seq: number): string | undefined {
    const t = [...this.replies.entries()].filter(([s]) => s < seq).map(([, t]) => t).sort((a, b) => b - a)[0];
    return t === undefined ? undefined : new Date(t).toISOString();
  }

  /** ISO time of the first reply to a seq above `seq` (diagnostics). */
  firstReplyAfter(seq: number): string | undefined {
    const t = [...this.replies.entries()].filter(([s]) => s > seq).map(([, t]) => t).sort((a, b) => a - b)[0];
    return t === undefined ? undefined : new Date(t).toISOString();
  }

  stop(): void {
    if (this.child.exitCode === null && this.child.signalCode === null && this.child.pid !== undefined) process.kill(this.child.pid, 'SIGKILL');
  }
}
