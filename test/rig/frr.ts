// FRR (zebra + bgpd) for tests, started by the launcher the sandbox uses too
// (drivers/launch/frr.ts): one temp dir per node owned by user frr, the daemons daemonized in the
// node's network namespace under its hostname. The daemons are not our children (they fork off),
// so every PID started here is recorded (with its start time) and killed with SIGKILL by cleanup()
// or, failing that, when the process exits; the temp dirs go too.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FrrLocation } from '../../drivers/frr/types.ts';
import { frrInstalled, frrLocation, frrLogTail, startFrr, stopFrr, type FrrHandle } from '../../drivers/launch/frr.ts';
import { isAlive, type ProcRef } from '../../drivers/launch/process.ts';
import { cleanupAtExit } from './exit.ts';

export { frrInstalled };

export interface StartFrrNodeOptions {
  /** The hostname of the daemons' UTS namespace. */
  name: string;
  /**
   * The node's network namespace; absent = this process's, which FRR then shares: a reload() there
   * changes this namespace's IP forwarding unless the config states it.
   */
  netns?: string;
  /** Written to D/frr.conf (owned by frr) and loaded with `vtysh -b` once the daemons serve. */
  config?: string;
  /** Per daemon, ms (default 15 s). */
  readyTimeoutMs?: number;
}

export interface FrrNode {
  readonly name: string;
  readonly netns: string | undefined;
  /** Temp dir: frr.conf, vtysh.conf, the vty sockets, pid files and logs. */
  readonly dir: string;
  /** The running daemons, undefined while stopped. */
  readonly handle: FrrHandle | undefined;
  readonly running: boolean;
  /** For createFrrDriver: this node's dir, hostname = name. */
  location(opts?: { timeoutMs?: number; hostname?: string | null }): FrrLocation;
  /** zebra.log, bgpd.log and what the launchers printed. */
  logTail(lines?: number): string;
  /** Starts zebra and bgpd; loads D/frr.conf when it exists unless loadConfig is false. */
  start(opts?: { loadConfig?: boolean }): Promise<void>;
  /** SIGKILL to both daemons, waiting until they are gone. */
  stop(): Promise<void>;
  /** stop() then start(opts): a restarted FRR, which reads D/frr.conf as on boot unless loadConfig is false. */
  restart(opts?: { loadConfig?: boolean }): Promise<void>;
  /** Stops the daemons and removes the temp dir. Idempotent. */
  cleanup(): Promise<void>;
}

/** Every daemon started here and not yet seen gone. */
const started = new Set<ProcRef>();
const dirs = new Set<string>();

function cleanupSync(): void {
  for (const ref of [...started]) {
    if (isAlive(ref)) {
      try {
        process.kill(ref.pid, 'SIGKILL');
      } catch {
        // gone meanwhile
      }
    }
    started.delete(ref);
  }
  for (const dir of [...dirs]) {
    rmSync(dir, { recursive: true, force: true });
    dirs.delete(dir);
  }
}

class FrrRig implements FrrNode {
  readonly name: string;
  readonly netns: string | undefined;
  readonly dir: string;
  private readonly readyTimeoutMs: number;
  private current: FrrHandle | undefined;
  private cleaned = false;

  constructor(opts: StartFrrNodeOptions) {
    this.name = opts.name;
    this.netns = opts.netns;
    this.readyTimeoutMs = opts.readyTimeoutMs ?? 15_000;
    cleanupAtExit(cleanupSync);
    this.dir = mkdtempSync(join(tmpdir(), `vk-frr-${opts.name}-`));
    dirs.add(this.dir);
    if (opts.config !== undefined) writeFileSync(join(this.dir, 'frr.conf'), opts.config, { mode: 0o640 });
  }

  get handle(): FrrHandle | undefined {
    return this.current;
  }

  get running(): boolean {
    return this.current !== undefined && (isAlive(this.current.zebra) || isAlive(this.current.bgpd));
  }

  location(opts: { timeoutMs?: number; hostname?: string | null } = {}): FrrLocation {
    return frrLocation(this.dir, opts.hostname === null ? undefined : (opts.hostname ?? this.name), opts.timeoutMs ?? 10_000);
  }

  logTail(lines = 20): string {
    return [frrLogTail(this.dir, 'zebra', lines), frrLogTail(this.dir, 'bgpd', lines)].filter((s) => s !== '').join('\n');
  }

  async start(opts: { loadConfig?: boolean } = {}): Promise<void> {
    if (this.cleaned) throw new Error(`FRR ${this.name} was cleaned up`);
    if (this.running) throw new Error(`FRR ${this.name} is already running (zebra ${this.current!.zebraPid}, bgpd ${this.current!.bgpdPid})`);
    const h = await startFrr({
      hostname: this.name,
      ...(this.netns !== undefined ? { netns: this.netns } : {}),
      dir: this.dir,
      loadConfig: opts.loadConfig ?? true,
      readyTimeoutMs: this.readyTimeoutMs,
    });
    started.add(h.zebra);
    started.add(h.bgpd);
    this.current = h;
  }

  async stop(): Promise<void> {
    const h = this.current;
    if (!h) return;
    await stopFrr(h);
    started.delete(h.zebra);
    started.delete(h.bgpd);
    this.current = undefined;
  }

  async restart(opts: { loadConfig?: boolean } = {}): Promise<void> {
    await this.stop();
    await this.start(opts);
  }

  async cleanup(): Promise<void> {
    if (this.cleaned) return;
    await this.stop();
    this.cleaned = true;
    rmSync(this.dir, { recursive: true, force: true });
    dirs.delete(this.dir);
  }
}

/** A node's FRR, started (with its config loaded when given one). */
export async function startFrrNode(opts: StartFrrNodeOptions): Promise<FrrNode> {
  const why = frrInstalled();
  if (why) throw new Error(`FRR is not usable here: ${why}`);
  const rig = new FrrRig(opts);
  try {
    await rig.start();
  } catch (err) {
    await rig.cleanup();
    throw err;
  }
  return rig;
}

/**
 * Resolves once every node's zebra knows, for `vni`, every other node as a remote VTEP (EVPN has
 * converged: broadcast and unknown unicast reach every node), or rejects after timeoutMs.
 */
export async function evpnConverged(nodes: ReadonlyArray<{ node: FrrNode; address: string }>, vni: number, timeoutMs = 30_000): Promise<void> {
  const { execFile } = await import('node:child_process');
  const vteps = (n: FrrNode) =>
    new Promise<string[]>((resolve) =>
      execFile('vtysh', ['--vty_socket', n.dir, '-c', 'show evpn vni json'], { encoding: 'utf8' }, (err, out) => {
        if (err) return resolve([]);
        try {
          resolve([...((JSON.parse(out) as Record<string, { remoteVteps?: string[] }>)[String(vni)]?.remoteVteps ?? [])].sort());
        } catch {
          resolve([]);
        }
      }),
    );
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const got = await Promise.all(nodes.map((n) => vteps(n.node)));
    const ok = nodes.every((n, i) => got[i]!.join() === nodes.filter((o) => o !== n).map((o) => o.address).sort().join());
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`EVPN did not converge for VNI ${vni} within ${timeoutMs} ms: ${nodes.map((n, i) => `${n.node.name}: [${got[i]!.join(', ')}]`).join('; ')}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}
