// Test rig: a real throwaway Ceph 16 (one monitor, one memstore OSD, auth none), started by the
// launcher the sandbox shares (drivers/launch/ceph.ts) in a temp dir, on loopback or inside a
// namespace the caller made (on an address it added there). The daemons are our children under
// `setpriv --pdeathsig SIGKILL`; every PID started here is also recorded and SIGKILLed by
// cleanup() or, failing that, when the process exits, and the temp dirs go too (VK_KEEP_TMP=1
// keeps them). Start one per test file: it costs about a second and two processes.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { run } from '../../drivers/exec/run.ts';
import { cephInstalled, cephLogTail, DEFAULT_MON_PORT, killCephSync, RBD, startCeph, type CephCluster, type CephHandle } from '../../drivers/launch/ceph.ts';
import { childRunning } from '../../drivers/launch/process.ts';
import { choosePort } from '../../drivers/launch/zookeeper.ts';
import { waitFor } from './wait.ts';
import { cleanupAtExit } from './exit.ts';

export { cephInstalled };

export interface CephRigOptions {
  /** The namespace to run in (default: this process's, on 127.0.0.1 and a free port from 3300 on). */
  netns?: string;
  /** The monitor's address (default 127.0.0.1); inside a namespace it must be there already. */
  address?: string;
  port?: number;
  pool?: string;
  /** Each start step as it ends (drivers/launch/ceph.ts). */
  trace?: (step: string, ms: number) => void;
}

export interface CephRig extends CephCluster {
  /** The temp dir holding everything. */
  readonly dir: string;
  readonly netns: string | undefined;
  /** `rbd create --size SIZE_MIB IMAGE` ("POOL/IMAGE"), from the Ceph's namespace. */
  createImage(image: string, sizeMiB?: number): Promise<void>;
  /** The daemons' logs, for a failing assertion's message. */
  logTail(lines?: number): string;
  /** stop(), then the temp dir goes. Idempotent. */
  cleanup(): Promise<void>;
}

/** Handles of clusters not cleaned up yet (their refs change when the monitor restarts). */
const live = new Set<CephCluster>();
const dirs = new Set<string>();

function cleanupSync(): void {
  for (const c of live) killCephSync(c.handle);
  live.clear();
  if (!process.env.VK_KEEP_TMP) for (const d of dirs) rmSync(d, { recursive: true, force: true });
  dirs.clear();
}

export async function startCephRig(o: CephRigOptions = {}): Promise<CephRig> {
  const problem = cephInstalled();
  if (problem) throw new Error(`test rig: ${problem} (test/rig/install-deps.sh installs them)`);
  cleanupAtExit(cleanupSync);
  const dir = mkdtempSync(join(tmpdir(), 'vk-ceph-'));
  dirs.add(dir);
  const address = o.address ?? '127.0.0.1';
  const port = o.port ?? (o.netns === undefined && address === '127.0.0.1' ? await choosePort(DEFAULT_MON_PORT) : DEFAULT_MON_PORT);
  let cluster: CephCluster;
  try {
    cluster = await startCeph({ dir, address, port, ...(o.netns !== undefined ? { netns: o.netns } : {}), ...(o.pool !== undefined ? { pool: o.pool } : {}), ...(o.trace ? { trace: o.trace } : {}) });
  } catch (err) {
    if (!process.env.VK_KEEP_TMP) rmSync(dir, { recursive: true, force: true });
    dirs.delete(dir);
    throw err;
  }
  live.add(cluster);
  const h: CephHandle = cluster.handle;
  const inNs = (argv: string[]): string[] => (o.netns === undefined ? argv : ['ip', 'netns', 'exec', o.netns, ...argv]);
  let cleaned = false;
  return {
    dir,
    netns: o.netns,
    conf: cluster.conf,
    monAddress: cluster.monAddress,
    pool: cluster.pool,
    get pids() {
      return cluster.pids;
    },
    get handle() {
      return cluster.handle;
    },
    stop: () => cluster.stop(),
    stopMonitor: () => cluster.stopMonitor(),
    startMonitor: (timeoutMs?: number) => cluster.startMonitor(timeoutMs),
    async createImage(image, sizeMiB = 8) {
      const argv = inNs([RBD, '-c', h.conf, '--client_mount_timeout=5', 'create', '--size', String(sizeMiB), image]);
      const r = await run(argv, 15_000);
      if (r.code !== 0) throw new Error(`${argv.join(' ')}: exit ${r.code}${r.timedOut ? ' (timed out)' : ''}: ${r.stderr.trim()}`);
    },
    logTail: (lines = 15) => cephLogTail(dir, lines),
    async cleanup() {
      if (cleaned) return;
      cleaned = true;
      await cluster.stop();
      live.delete(cluster);
      if (!process.env.VK_KEEP_TMP) rmSync(dir, { recursive: true, force: true });
      dirs.delete(dir);
    },
  };
}

/** Holds librbd's exclusive lock of an image as QEMU would (python3-rbd, a dependency of ceph-common). */
const HOLDER = [
  'import rados, rbd, sys',
  'conf, pool, name = sys.argv[1:4]',
  'cluster = rados.Rados(conffile=conf)',
  'cluster.connect(timeout=10)',
  'ioctx = cluster.open_ioctx(pool)',
  'image = rbd.Image(ioctx, name)',
  'image.lock_acquire(rbd.RBD_LOCK_MODE_EXCLUSIVE)',
  'print("held", flush=True)',
  'sys.stdin.read()',
  'image.close(); ioctx.close(); cluster.shutdown()',
].join('\n');

export interface ImageHolder {
  readonly pid: number;
  /** Closes the image (stdin's end), SIGKILL by PID if it has not exited within 5 s. */
  release(): Promise<void>;
}

/**
 * A client in `netns` (or ours) that opens POOL/IMAGE and takes its exclusive lock, as a running
 * QEMU does: the image then has a watcher and an "auto …" lock with that namespace's address.
 */
export async function holdExclusiveLock(o: { conf: string; image: string; netns?: string }): Promise<ImageHolder> {
  const [pool, name] = o.image.split('/');
  const argv = ['/usr/bin/setpriv', '--pdeathsig', 'SIGKILL', '--', ...(o.netns === undefined ? [] : ['ip', 'netns', 'exec', o.netns]), '/usr/bin/python3', '-c', HOLDER, o.conf, pool!, name!];
  const child = spawn(argv[0]!, argv.slice(1), { stdio: ['pipe', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.on('data', (c: Buffer) => (out += c.toString('utf8')));
  child.stderr.on('data', (c: Buffer) => (err += c.toString('utf8')));
  const exited = new Promise<void>((res) => child.once('exit', () => res()));
  const kill = (): void => {
    if (child.pid !== undefined && childRunning(child)) process.kill(child.pid, 'SIGKILL');
  };
  try {
    await waitFor(`the holder of ${o.image} to take its lock`, () => {
      if (!childRunning(child)) throw new Error(`holder exited (${child.exitCode}): ${err.trim()}`);
      return out.includes('held');
    }, 20_000, () => err.trim());
  } catch (e) {
    kill();
    throw e;
  }
  return {
    pid: child.pid!,
    async release() {
      child.stdin.end();
      const timer = setTimeout(kill, 5000);
      await exited;
      clearTimeout(timer);
    },
  };
}
