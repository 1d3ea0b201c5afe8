// How to run a throwaway Ceph 16 for the test rig and the sandbox (DESIGN §5 "Ceph 16"): one
// monitor "a" (msgr2 only) and one OSD on memstore, auth none, everything under one directory
// (./ceph-config.ts has the layout and both ceph.conf texts), optionally inside a network
// namespace so that clients in other namespaces on the same bridge reach it:
//
//   ceph-authtool + monmaptool + ceph-mon --mkfs      ceph-osd --mkfs --no-mon-config   (in parallel)
//   [ip netns exec NS] ceph-mon -f -i a
//   ceph osd new UUID 0 → [ip netns exec NS] ceph-osd -f -i 0      ceph osd pool create POOL 8
//   rbd pool init POOL                                               (usable: a PG of POOL is active)
//
// The address must exist in the namespace already (the caller adds it); the launcher sets the
// namespace's lo up (a fresh namespace has it down, and the OSD and the setup calls reach the
// monitor's own address through it: without lo they hang until their timeout). The daemons run in the
// foreground (-f), attached under `setpriv --pdeathsig SIGKILL` (the rig) or detached in their
// own session (the sandbox, whose state file keeps the CephHandle); either way they are known by
// PID and start time (ProcRef) and ended with SIGKILL by those, never by name. Nothing here
// removes a file: the caller owns the directory.
import { randomUUID } from 'node:crypto';
import { accessSync, constants, existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { howItEnded, remaining, run, shown } from '../exec/run.ts';
import { cephFiles, checkCephAddress, checkDir, checkPool, clientConfig, DEFAULT_MON_PORT, DEFAULT_POOL, MON_ID, monHost, OSD_ID, serverConfig, type CephFiles } from './ceph-config.ts';
import { allThreadsGone, childRunning, isAlive, killProcess, refOf, sleep, spawnAttached, spawnDetached, tailFile, type LaunchSpec, type ProcRef } from './process.ts';

export { cephFiles, DEFAULT_MON_PORT, DEFAULT_POOL } from './ceph-config.ts';

export const CEPH_MON = '/usr/bin/ceph-mon';
export const CEPH_OSD = '/usr/bin/ceph-osd';
export const CEPH = '/usr/bin/ceph';
export const RBD = '/usr/bin/rbd';
const CEPH_AUTHTOOL = '/usr/bin/ceph-authtool';
const MONMAPTOOL = '/usr/bin/monmaptool';

const NETNS_NAME = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,254}$/;
/** PGs of the pool: few, so that they peer fast. */
const PG_NUM = 8;

/** Why Ceph cannot be run here, or undefined when it can (Debian packages ceph-mon, ceph-osd, ceph-common). */
export function cephInstalled(): string | undefined {
  for (const f of [CEPH_MON, CEPH_OSD, CEPH, RBD, CEPH_AUTHTOOL, MONMAPTOOL]) {
    try {
      accessSync(f, constants.X_OK);
    } catch {
      return `${f} is missing or not executable (Debian packages ceph-mon, ceph-osd, ceph-common)`;
    }
  }
  return undefined;
}

export interface StartCephOptions {
  /** Everything goes under here (made if missing; it must not hold a monitor store yet). */
  dir: string;
  /** Run the daemons (and the setup calls) inside this network namespace. */
  netns?: string;
  /** The monitor's and the OSD's IPv4 address, e.g. 127.0.0.1 or an address of the namespace. */
  address: string;
  /** The monitor's msgr2 port (default 3300). */
  port?: number;
  /** The RBD pool to create and `rbd pool init` (default rbd). */
  pool?: string;
  /** The sandbox: daemons in their own session, outliving this process. Default: attached, under pdeathsig. */
  detached?: boolean;
  /** For the whole start (default 30 s). */
  readyTimeoutMs?: number;
  /** Told each step as it ends, with the ms since the start (for measurements). */
  trace?: (step: string, ms: number) => void;
}

/** A started Ceph, JSON-serializable (the sandbox keeps it in its state file). */
export interface CephHandle {
  dir: string;
  netns?: string;
  address: string;
  port: number;
  pool: string;
  /** The clients' ceph.conf. */
  conf: string;
  /** "ADDRESS:PORT": the monitor, speaking msgr2 only. */
  monAddress: string;
  detached: boolean;
  mon: ProcRef;
  osd: ProcRef;
}

export interface CephCluster {
  readonly conf: string;
  readonly monAddress: string;
  readonly pool: string;
  /** The daemons' PIDs now (the monitor's changes with startMonitor). */
  readonly pids: { mon: number; osd: number };
  /** A copy of the current handle. */
  readonly handle: CephHandle;
  /** SIGKILL to both daemons by PID; resolves when every thread is gone. Removes no file. */
  stop(): Promise<void>;
  /** SIGKILL to the monitor alone (its store stays): clients find no monitor. */
  stopMonitor(): Promise<void>;
  /** Starts the monitor again on its store; resolves once an `rbd ls` of the pool answers. */
  startMonitor(timeoutMs?: number): Promise<void>;
}

/** argv inside the namespace (`ip netns exec NS …` execs in place: the PID stays the program's). */
function inNs(netns: string | undefined, argv: readonly string[]): string[] {
  return netns === undefined ? [...argv] : ['ip', 'netns', 'exec', netns, ...argv];
}

/** The daemons' logs, last lines, for an error. */
export function cephLogTail(dir: string, lines = 15): string {
  const f = cephFiles(dir);
  return [`mon.${MON_ID}.out`, `mon.${MON_ID}.log`, `osd.${OSD_ID}.out`, `osd.${OSD_ID}.log`]
    .map((name) => {
      const t = tailFile(join(f.logDir, name), lines);
      return t === '' ? '' : `--- ${name}\n${t}`;
    })
    .filter((s) => s !== '')
    .join('\n');
}

/** One setup command, bounded; throws with its stderr when it fails. */
async function step(argv: readonly string[], timeoutMs: number, trace?: () => void): Promise<string> {
  const o = await run(argv, timeoutMs);
  trace?.();
  if (o.code === 0) return o.stdout;
  throw new Error(`${shown(argv)}: ${howItEnded(o, timeoutMs)}: ${`${o.stderr}\n${o.stdout}`.trim().slice(-1500)}`);
}

const monArgv = (f: CephFiles, netns: string | undefined): string[] => inNs(netns, [CEPH_MON, '-f', '-i', MON_ID, '-c', f.serverConf]);
const osdArgv = (f: CephFiles, netns: string | undefined): string[] => inNs(netns, [CEPH_OSD, '-f', '-i', String(OSD_ID), '--no-mon-config', '-c', f.serverConf]);

interface Started {
  ref: ProcRef;
  /** Undefined while it runs; else how it ended. */
  exited: () => string | undefined;
}

function spawnDaemon(argv: string[], logFile: string, detached: boolean): Started {
  const spec: LaunchSpec = { argv, logFile };
  if (detached) {
    const ref = spawnDetached(spec);
    return { ref, exited: () => (isAlive(ref) ? undefined : 'exited') };
  }
  const child = spawnAttached(spec, { pdeathsig: 'SIGKILL' });
  let failed: string | undefined;
  child.on('error', (e) => (failed = `could not be started: ${e.message}`));
  const ref = (child.pid !== undefined ? refOf(child.pid) : undefined) ?? { pid: child.pid ?? -1, startTime: -1 };
  return {
    ref,
    exited: () => failed ?? (childRunning(child) ? undefined : `exited (${child.exitCode ?? child.signalCode})`),
  };
}

/** Rejects as soon as one of the daemons ends (checked every 50 ms) until `settle` is called. */
function watchDaemons(daemons: ReadonlyArray<{ what: string; started: () => Started | undefined }>): { died: Promise<never>; settle(): void } {
  let timer: NodeJS.Timeout | undefined;
  const died = new Promise<never>((_, reject) => {
    timer = setInterval(() => {
      for (const d of daemons) {
        const how = d.started()?.exited();
        if (how !== undefined) {
          clearInterval(timer);
          reject(new Error(`${d.what} ${how} during start`));
        }
      }
    }, 50);
  });
  died.catch(() => undefined);
  return { died, settle: () => clearInterval(timer) };
}

/** `rbd ls POOL` through the clients' config: the monitor answers and the pool's PG is active. */
async function poolAnswers(h: Pick<CephHandle, 'netns' | 'conf' | 'pool'>, timeoutMs: number): Promise<boolean> {
  const mountS = Math.max(1, Math.ceil(timeoutMs / 1000));
  const o = await run(inNs(h.netns, [RBD, '-c', h.conf, `--client_mount_timeout=${mountS}`, 'ls', h.pool]), timeoutMs);
  return o.code === 0;
}

/** Makes the directories and writes both configs; the fsid is new. */
function prepare(f: CephFiles, address: { address: string; port: number }): string {
  if (existsSync(join(f.monData, 'store.db'))) throw new Error(`${f.dir} holds a monitor store already: start a throwaway Ceph in a fresh directory`);
  for (const d of [f.dir, f.serverDir, f.monData, f.osdData, f.runDir, f.logDir]) mkdirSync(d, { recursive: true });
  const fsid = randomUUID();
  writeFileSync(f.serverConf, serverConfig(f, fsid, address));
  writeFileSync(f.conf, clientConfig(fsid, address));
  return fsid;
}

/** Starts the monitor and the OSD, creates and initializes the pool; on failure kills what it started. */
export async function startCeph(o: StartCephOptions): Promise<CephCluster> {
  const problem = cephInstalled();
  if (problem) throw new Error(`cannot start Ceph: ${problem}`);
  const dir = checkDir(o.dir);
  const address = { address: o.address, port: o.port ?? DEFAULT_MON_PORT };
  checkCephAddress(address);
  const pool = checkPool(o.pool ?? DEFAULT_POOL);
  if (o.netns !== undefined && !NETNS_NAME.test(o.netns)) throw new TypeError(`invalid network namespace name ${JSON.stringify(o.netns)}`);
  const detached = o.detached ?? false;
  const t0 = Date.now();
  const deadline = t0 + (o.readyTimeoutMs ?? 30_000);
  const done = (name: string) => (): void => o.trace?.(name, Date.now() - t0);
  const f = cephFiles(dir);
  const fsid = prepare(f, address);
  const osdUuid = randomUUID();
  // Every client call may wait for the monitor as long as the start may still take.
  const mount = (): string => `--client_mount_timeout=${Math.max(1, Math.ceil(remaining(deadline) / 1000))}`;
  const client = (args: string[]): string[] => inNs(o.netns, [CEPH, '-c', f.conf, mount(), ...args]);

  let mon: Started | undefined;
  let osd: Started | undefined;
  const watch = watchDaemons([
    { what: `ceph-mon of ${dir}`, started: () => mon },
    { what: `ceph-osd of ${dir}`, started: () => osd },
  ]);
  const guarded = <T>(p: Promise<T>): Promise<T> => Promise.race([p, watch.died]);
  try {
    if (o.netns !== undefined) await step(['ip', '-n', o.netns, 'link', 'set', 'lo', 'up'], remaining(deadline));
    await Promise.all([
      (async () => {
        await step([CEPH_AUTHTOOL, '--create-keyring', f.keyring, '--gen-key', '-n', 'mon.', '--cap', 'mon', 'allow *'], remaining(deadline), done('keyring'));
        await step([MONMAPTOOL, '--create', '--addv', MON_ID, `[${monHost(address)}]`, '--fsid', fsid, f.monmap], remaining(deadline), done('monmap'));
        await step([CEPH_MON, '--mkfs', '-i', MON_ID, '--monmap', f.monmap, '--keyring', f.keyring, '-c', f.serverConf], remaining(deadline), done('mon mkfs'));
      })(),
      step([CEPH_OSD, '--mkfs', '-i', String(OSD_ID), '--osd-uuid', osdUuid, '--no-mon-config', '-c', f.serverConf], remaining(deadline), done('osd mkfs')),
    ]);
    mon = spawnDaemon(monArgv(f, o.netns), join(f.logDir, `mon.${MON_ID}.out`), detached);
    await guarded(
      Promise.all([
        (async () => {
          // The first call waits (client_mount_timeout) for the monitor to listen and form its quorum of one.
          await step(client(['osd', 'new', osdUuid, String(OSD_ID)]), remaining(deadline), done('osd new'));
          osd = spawnDaemon(osdArgv(f, o.netns), join(f.logDir, `osd.${OSD_ID}.out`), detached);
        })(),
        step(client(['osd', 'pool', 'create', pool, String(PG_NUM)]), remaining(deadline), done('pool create')),
      ]),
    );
    // Writes the pool's rbd_info object: returns once a PG of the pool is active on the OSD. The
    // write is sent before the OSD is up; librados then asks for a newer map only at its next
    // tick (objecter_tick_interval, 5 s by default, which was most of the start time).
    const init = [RBD, '-c', f.conf, mount(), '--objecter_tick_interval=0.1', 'pool', 'init', pool];
    await guarded(step(inNs(o.netns, init), remaining(deadline), done('pool init')));
  } catch (err) {
    watch.settle();
    await Promise.all([mon && killProcess(mon.ref), osd && killProcess(osd.ref)]);
    const message = err instanceof Error ? err.message : String(err);
    throw new Error(`Ceph in ${dir} did not start: ${message}\n${cephLogTail(dir)}`);
  }
  watch.settle();
  return cephCluster({
    dir,
    ...(o.netns !== undefined ? { netns: o.netns } : {}),
    ...address,
    pool,
    conf: f.conf,
    monAddress: `${address.address}:${address.port}`,
    detached,
    mon: mon.ref,
    osd: osd!.ref,
  });
}

/** The cluster of a handle (from startCeph, or recorded by the sandbox). */
export function cephCluster(recorded: CephHandle): CephCluster {
  const h: CephHandle = { ...recorded };
  const f = cephFiles(h.dir);
  return {
    conf: h.conf,
    monAddress: h.monAddress,
    pool: h.pool,
    get pids() {
      return { mon: h.mon.pid, osd: h.osd.pid };
    },
    get handle() {
      return { ...h };
    },
    stop: () => stopCeph(h),
    async stopMonitor() {
      await killProcess(h.mon);
      if (!allThreadsGone(h.mon)) throw new Error(`ceph-mon ${h.mon.pid} survived SIGKILL`);
    },
    async startMonitor(timeoutMs = 30_000) {
      if (isAlive(h.mon)) throw new Error(`ceph-mon of ${h.dir} runs already (pid ${h.mon.pid})`);
      const deadline = Date.now() + timeoutMs;
      const mon = spawnDaemon(monArgv(f, h.netns), join(f.logDir, `mon.${MON_ID}.out`), h.detached);
      h.mon = mon.ref;
      while (Date.now() < deadline) {
        const how = mon.exited();
        if (how !== undefined) throw new Error(`ceph-mon of ${h.dir} ${how} during restart:\n${cephLogTail(h.dir)}`);
        if (await poolAnswers(h, Math.min(remaining(deadline), 5000))) return;
        await sleep(50);
      }
      await killProcess(h.mon);
      throw new Error(`ceph-mon of ${h.dir} restarted but the pool did not answer within ${timeoutMs} ms:\n${cephLogTail(h.dir)}`);
    },
  };
}

/** SIGKILL to both daemons (by PID and start time) and wait until every thread is gone. */
export async function stopCeph(h: Pick<CephHandle, 'mon' | 'osd'>): Promise<void> {
  await Promise.all([killProcess(h.osd), killProcess(h.mon)]);
  for (const ref of [h.osd, h.mon]) if (!allThreadsGone(ref)) throw new Error(`Ceph process ${ref.pid} survived SIGKILL`);
}

/** For exit handlers: SIGKILL to both, no waiting. */
export function killCephSync(h: Pick<CephHandle, 'mon' | 'osd'>): void {
  for (const ref of [h.osd, h.mon]) {
    if (!isAlive(ref)) continue;
    try {
      process.kill(ref.pid, 'SIGKILL');
    } catch {
      // gone meanwhile
    }
  }
}
