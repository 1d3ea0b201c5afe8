// The dnsmasq driver (DESIGN §4 "Primary coordinator", §5 "dnsmasq"): one dnsmasq per managed
// network, run by the primary coordinator's daemon on the network's gateway device, serving DHCP
// from the network's range and DNS for its domain, its leases kept outside dnsmasq.
//
//   const dnsmasq = createDnsmasqDriver({ runDir: '/run/virtkeeper/dnsmasq' });
//   await dnsmasq.start({ vni: 200, interface: 'vkgw200', address: '203.0.113.1', prefixLength: 24,
//     range: { start: '203.0.113.100', end: '203.0.113.199' }, domain: 'tenant.example' }, leasesFromZk);
//   const stop = dnsmasq.watchLeases((vni) => queue.add(vni));   // then readLeases(vni) → ZooKeeper
//   await dnsmasq.list();      // [{ vni: 200, pid, specHash }]: compare specHash with specHash(spec)
//   await dnsmasq.stop(200);
//
// Files of VNI n in runDir: dnsmasq-n.pid (written by dnsmasq), dnsmasq-n.log (its log, stdout and
// stderr; the previous one kept as dnsmasq-n.log.1), lease-n.sh (the lease script), leases-n.init
// (what the script prints on `init`), leases-n/<mac> (one lease a file, written by the script).
//
// Invariants:
// D1 A process is only ever signalled by PID, and only while /proc shows it alive with a command
//    line naming this runDir's pidfile of that VNI (or, for what dnsmasq leaves behind, a member of
//    its process group naming the pidfile or the script). Nothing is found or killed by name.
// D2 An instance is what its pidfile names (D1-verified): a new driver object on the same runDir
//    (a restarted daemon) lists, adopts and stops the dnsmasq a previous one started. A pidfile
//    that names no such process is stale and removed by list(), start() and stop().
// D3 dnsmasq runs detached (its own session and process group, stdin /dev/null, stdout and stderr
//    appended to its log): it outlives the daemon, which adopts it again (D2). --keep-in-foreground
//    keeps the spawned PID dnsmasq's own (`ip netns exec` execs in place).
// D4 start() resolves only once dnsmasq itself wrote its pidfile with the spawned PID and that
//    process lives, i.e. its sockets are bound and the init leases read. When dnsmasq exits first,
//    or is not up within timeoutMs (then it is stopped), start() rejects with StartFailed naming
//    the last lines of its log; nothing of it keeps running.
// D5 start() refuses (AlreadyRunning) when the VNI's dnsmasq runs: a changed spec is stop + start.
// D6 The lease dir is level state: after start() it holds exactly the init leases (expired,
//    malformed and out-of-range ones left out), which dnsmasq then re-reports as `old`; afterwards
//    only the lease script writes it, one file per MAC, each written atomically (tmp + mv).
//    readLeases() parses strictly and ignores a malformed file.
// D7 Nothing a DHCP client sends reaches a shell unquoted (script.ts): hostnames, MACs and client
//    ids are checked by the script and again by the parser.
// D8 stop() is SIGTERM, SIGKILL after timeoutMs, and resolves once every thread of dnsmasq and its
//    helper are gone; it is idempotent. start() and stop() are bounded by timeoutMs (each wait).
// D9 Calls of one driver object that touch processes (list, start, stop) run one at a time.
// D10 The driver imports nothing above drivers/: its types are its own (types.ts).
import { accessSync, constants, existsSync, mkdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { isAlive, killProcess, sleep, spawnDetached, stopProcess, tailFile, type ProcRef } from '../launch/process.ts';
import { argvHash, checkedNetns, checkedRunDir, checkedVni, DEFAULT_BINARY, dnsmasqArgv, vniFiles } from './args.ts';
import { findInstance, findInstances, leftovers } from './instances.ts';
import { ipv4ToNumber } from './ipv4.ts';
import { formatLease, initLeases, readLeaseDir, replaceLeaseDir, writeFileAtomic } from './leases.ts';
import { leaseScript } from './script.ts';
import { DnsmasqError, type DnsmasqDriver, type DnsmasqInstance, type DnsmasqLocation, type DnsmasqSpec, type ScriptLease } from './types.ts';
import { watchLeaseDirs } from './watch.ts';

export * from './types.ts';
export { dnsmasqArgv, argvHash, specProblem, vniFiles } from './args.ts';
export { leaseScript, shellQuote } from './script.ts';
export { formatLease, initLeases, parseLeaseFile, parseLeaseLine } from './leases.ts';

export const DEFAULT_TIMEOUT_MS = 5000;
const POLL_MS = 20;
const LOG_LINES = 12;
/** What dnsmasq and its lease script see: nothing of the daemon's environment. */
const ENV: NodeJS.ProcessEnv = { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', LANG: 'C' };

export function createDnsmasqDriver(location: DnsmasqLocation): DnsmasqDriver {
  const runDir = checkedRunDir(location.runDir);
  const netns = location.netns === undefined ? undefined : checkedNetns(location.netns);
  const binary = location.binary ?? DEFAULT_BINARY;
  if (!binary.startsWith('/')) throw new TypeError(`DnsmasqLocation.binary must be an absolute path (got ${JSON.stringify(binary)})`);
  const timeoutMs = location.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  if (!(timeoutMs > 0)) throw new TypeError(`DnsmasqLocation.timeoutMs must be positive (got ${timeoutMs})`);

  // D9: one process-touching call at a time.
  let chain: Promise<unknown> = Promise.resolve();
  const serial = <T>(fn: () => Promise<T>): Promise<T> => {
    const p = chain.then(fn, fn);
    chain = p.catch(() => undefined);
    return p;
  };

  const argvOf = (spec: DnsmasqSpec): string[] => dnsmasqArgv(spec, runDir, binary);
  const logTail = (vni: number): string => tailFile(vniFiles(runDir, vni).logFile, LOG_LINES).trim();
  const marks = (vni: number): string[] => {
    const f = vniFiles(runDir, vni);
    return [`--pid-file=${f.pidFile}`, f.script];
  };

  /** D8: dnsmasq, then what is left of its group (the helper, a script it runs). */
  async function terminate(vni: number, ref: ProcRef): Promise<void> {
    try {
      await stopProcess(ref, timeoutMs);
    } catch (e) {
      throw new DnsmasqError('StopFailed', `dnsmasq for VNI ${vni} (PID ${ref.pid}): ${(e as Error).message}`, vni);
    }
    const deadline = Date.now() + timeoutMs;
    let rest = leftovers(ref.pid, marks(vni));
    while (rest.length > 0 && Date.now() < deadline) {
      await sleep(POLL_MS);
      rest = leftovers(ref.pid, marks(vni));
    }
    for (const r of rest) await killProcess(r);
    rest = leftovers(ref.pid, marks(vni));
    if (rest.length > 0) throw new DnsmasqError('StopFailed', `dnsmasq for VNI ${vni}: PIDs ${rest.map((r) => r.pid).join(', ')} of its group survived SIGKILL`, vni);
  }

  async function start(spec: DnsmasqSpec, leases: readonly ScriptLease[]): Promise<DnsmasqInstance> {
    const argv = argvOf(spec); // TypeError for a bad spec, before anything is touched
    const { vni } = spec;
    const f = vniFiles(runDir, vni);
    const running = findInstance(runDir, vni, true);
    if (running) throw new DnsmasqError('AlreadyRunning', `dnsmasq for VNI ${vni} already runs (PID ${running.ref.pid}); stop it first`, vni);
    try {
      accessSync(binary, constants.X_OK);
    } catch {
      throw new DnsmasqError('StartFailed', `cannot start dnsmasq for VNI ${vni}: ${binary} is missing or not executable (Debian package dnsmasq-base)`, vni);
    }

    mkdirSync(runDir, { recursive: true, mode: 0o755 });
    const range = spec.range ? { first: ipv4ToNumber(spec.range.start)!, last: ipv4ToNumber(spec.range.end)! } : undefined;
    const init = spec.range ? initLeases(leases, Math.floor(Date.now() / 1000), range) : [];
    writeFileAtomic(f.initFile, init.map((l) => `${formatLease(l)}\n`).join(''));
    replaceLeaseDir(f.leaseDir, init);
    writeFileAtomic(f.script, leaseScript({ initFile: f.initFile, leaseDir: f.leaseDir }), 0o755);
    if (existsSync(f.logFile)) renameSync(f.logFile, `${f.logFile}.1`);
    rmSync(f.pidFile, { force: true });

    const full = netns === undefined ? argv : ['ip', 'netns', 'exec', netns, ...argv];
    const ref = spawnDetached({ argv: full, logFile: f.logFile, env: ENV });
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (!isAlive(ref)) {
        // Give a dying dnsmasq's last words a moment to reach the log; what it forked dies with it.
        await sleep(POLL_MS);
        for (const r of leftovers(ref.pid, marks(vni))) await killProcess(r);
        const log = logTail(vni);
        throw new DnsmasqError('StartFailed', `dnsmasq for VNI ${vni} exited during start${log ? `:\n${log}` : ' (its log is empty)'}`, vni, log);
      }
      if (pidFileSays(f.pidFile, ref.pid) && isAlive(ref)) return { vni, pid: ref.pid, specHash: argvHash(argv) };
      if (Date.now() > deadline) {
        await terminate(vni, ref).catch(() => undefined);
        rmSync(f.pidFile, { force: true });
        const log = logTail(vni);
        throw new DnsmasqError('StartFailed', `dnsmasq for VNI ${vni} did not write its pidfile within ${timeoutMs} ms (stopped)${log ? `:\n${log}` : ''}`, vni, log);
      }
      await sleep(POLL_MS);
    }
  }

  async function stop(vni: number): Promise<void> {
    checkedVni(vni);
    const found = findInstance(runDir, vni, true);
    if (found) await terminate(vni, found.ref);
    rmSync(vniFiles(runDir, vni).pidFile, { force: true });
  }

  return {
    list: () => serial(async () => findInstances(runDir, true).map((x) => ({ vni: x.vni, pid: x.ref.pid, specHash: x.specHash }))),
    start: (spec, leases) => serial(() => start(spec, leases)),
    stop: (vni) => serial(() => stop(vni)),
    readLeases: (vni) => readLeaseDir(vniFiles(runDir, checkedVni(vni)).leaseDir),
    watchLeases: (onChange) => watchLeaseDirs(runDir, onChange),
    specHash: (spec) => argvHash(argvOf(spec)),
  };
}

/** The pidfile holds `pid` (dnsmasq writes it once its sockets are bound). */
function pidFileSays(file: string, pid: number): boolean {
  try {
    return readFileSync(file, 'utf8').trim() === String(pid);
  } catch {
    return false;
  }
}
