// Test rig: a simulated BMC per simulated node, a real ipmi_sim (drivers/launch/bmc.ts has the
// files and the command) on 127.0.0.1 and a free UDP port, in a temp dir (VK_KEEP_TMP=1 keeps it).
//
// The power hook: ipmi_sim's chassis script records every `set power` in DIR/events; the rig
// polls that file (every 20 ms) and calls the onPowerChange callbacks — there the caller makes the
// simulated node "lose power" (kills its daemon, libvirtd and guests). The events file, with its
// epoch-ms stamps, is the BMC's log (e.g. to prove a fence came before a recovery).
//
// Misbehaviour on demand: kill() SIGKILLs the simulator (a dead BMC; restart() brings it back on
// the same port with the power state kept), setPassword() changes the admin password over IPMI
// (the fence config's one is then wrong), ignorePowerOff(true) makes `set power 0` a no-op that
// ipmitool still reports as done ("off does not take").
//
// Processes are our children under `setpriv --pdeathsig SIGKILL`, ended by PID only (cleanup(),
// or at exit for a rig not cleaned up). Start one per test file; each BMC costs ~10 ms and 2 MB.
import type { ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { run } from '../../drivers/exec/run.ts';
import { bmcInstalled, bmcLaunchSpec, lanConf, bmcPower, freeUdpPort, IPMITOOL, udpBoundBy, writeBmcFiles, type BmcFiles } from '../../drivers/launch/bmc.ts';
import { childRunning, killProcess, refOf, spawnAttached, tailFile } from '../../drivers/launch/process.ts';
import { waitFor } from './wait.ts';

export { bmcInstalled };

export interface BmcEvent {
  /** Epoch ms, as the chassis script stamped it. */
  at: number;
  what: 'power' | 'reset';
  value: 0 | 1;
  /** A `set power 0` while ignorePowerOff was on: nothing changed. */
  ignored: boolean;
}

export interface BmcRigOptions {
  /** For messages and the temp dir's name (default "bmc"). */
  name?: string;
  user?: string;
  password?: string;
  power?: 'on' | 'off';
}

export interface BmcRig {
  readonly name: string;
  readonly address: string;
  readonly port: number;
  readonly user: string;
  /** The password the BMC accepts now. */
  readonly password: string;
  readonly dir: string;
  /** The simulator's PID while it runs. */
  readonly pid: number | undefined;
  /** The power state the BMC holds. */
  power(): 'on' | 'off';
  /** Every set the BMC received, oldest first. */
  events(): BmcEvent[];
  /** Called for each set the BMC receives (ignored ones too); returns an unsubscribe function. */
  onPowerChange(cb: (e: BmcEvent) => void): () => void;
  ignorePowerOff(on: boolean): void;
  /** `user set password 2 NEW` over IPMI (the password through -E). */
  setPassword(password: string): Promise<void>;
  /** SIGKILL the simulator (a dead BMC). */
  kill(): Promise<void>;
  /** Start it again on the same port, same files. */
  restart(): Promise<void>;
  /** What a fence driver needs to reach it. */
  fenceOptions(): { host: string; port: number; user: string; password: string; cipherSuite: number };
  logTail(lines?: number): string;
  cleanup(): Promise<void>;
}

const ADDRESS = '127.0.0.1';
const live = new Map<number, ChildProcess>();
const dirs = new Set<string>();
let hooked = false;

function cleanupSync(): void {
  for (const [pid, child] of live) if (childRunning(child)) try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
  live.clear();
  if (!process.env.VK_KEEP_TMP) for (const d of dirs) rmSync(d, { recursive: true, force: true });
  dirs.clear();
}

function hookExit(): void {
  if (hooked) return;
  hooked = true;
  process.once('exit', cleanupSync);
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.once(sig, () => {
      cleanupSync();
      process.exit(sig === 'SIGINT' ? 130 : 143);
    });
  }
}

function parseEvents(text: string): BmcEvent[] {
  const out: BmcEvent[] = [];
  for (const line of text.split('\n')) {
    const m = /^(\d+) set (power|reset) ([01])( ignored)?$/.exec(line.trim());
    if (m) out.push({ at: Number(m[1]), what: m[2] as 'power' | 'reset', value: Number(m[3]) as 0 | 1, ignored: m[4] !== undefined });
  }
  return out;
}

const ipmiArgs = (port: number, user: string): string[] => [IPMITOOL, '-I', 'lanplus', '-C', '3', '-H', ADDRESS, '-p', String(port), '-U', user, '-E', '-N', '1', '-R', '1'];

/** Starts ipmi_sim for `f` on `port`; resolves once that PID holds the port and answers a status read. */
async function launch(f: BmcFiles, port: number, user: string, password: string, name: string): Promise<ChildProcess> {
  const child = spawnAttached(bmcLaunchSpec(f), { pdeathsig: 'SIGKILL' });
  const pid = child.pid;
  if (pid === undefined) throw new Error(`BMC ${name}: ipmi_sim did not start`);
  live.set(pid, child);
  try {
    await waitFor(`BMC ${name}: ipmi_sim (pid ${pid}) bound to ${ADDRESS}:${port}`, () => {
      if (!childRunning(child)) throw new Error(`ipmi_sim exited (${child.exitCode ?? child.signalCode})`);
      return udpBoundBy(pid, ADDRESS, port);
    }, 5000, () => tailFile(f.logFile), 10);
    await waitFor(`BMC ${name}: a status read`, async () => {
      const r = await run([...ipmiArgs(port, user), 'chassis', 'power', 'status'], 3000, { env: { ...process.env, IPMI_PASSWORD: password } });
      if (r.code !== 0) throw new Error(`ipmitool exit ${r.code}: ${r.stderr.trim()}`);
      return true;
    }, 5000, () => tailFile(f.logFile), 50);
  } catch (err) {
    await killProcess(refOf(pid) ?? { pid, startTime: -1 });
    live.delete(pid);
    throw err;
  }
  return child;
}

export async function startBmcRig(o: BmcRigOptions = {}): Promise<BmcRig> {
  const problem = bmcInstalled();
  if (problem) throw new Error(`test rig: ${problem} (test/rig/install-deps.sh installs them)`);
  hookExit();
  const name = o.name ?? 'bmc';
  const user = o.user ?? 'admin';
  let password = o.password ?? 'secret';
  const dir = mkdtempSync(join(tmpdir(), `vk-${name.replace(/[^A-Za-z0-9_-]/g, '_')}-`));
  dirs.add(dir);
  let child: ChildProcess | undefined;
  let port = 0;
  let f: BmcFiles | undefined;
  // The port is free when chosen but not held: another process may take it before ipmi_sim binds
  // (which ipmi_sim does not report): try a few.
  for (let attempt = 1; ; attempt++) {
    port = await freeUdpPort(ADDRESS);
    f = writeBmcFiles({ dir, address: ADDRESS, port, user, password, power: o.power ?? 'on' });
    try {
      child = await launch(f, port, user, password, name);
      break;
    } catch (err) {
      if (attempt >= 3) {
        if (!process.env.VK_KEEP_TMP) rmSync(dir, { recursive: true, force: true });
        dirs.delete(dir);
        throw err;
      }
    }
  }
  const files = f;
  const listeners = new Set<(e: BmcEvent) => void>();
  let seen = 0;
  const poll = (): void => {
    let events: BmcEvent[];
    try {
      events = parseEvents(readFileSync(files.eventsFile, 'utf8'));
    } catch {
      return;
    }
    for (const e of events.slice(seen)) for (const cb of listeners) cb(e);
    seen = events.length;
  };
  const timer = setInterval(poll, 20);
  timer.unref();
  let cleaned = false;
  const stop = async (): Promise<void> => {
    const c = child;
    child = undefined;
    if (c?.pid === undefined) return;
    const ref = refOf(c.pid);
    if (ref && childRunning(c)) await killProcess(ref);
    live.delete(c.pid);
  };
  return {
    name,
    address: ADDRESS,
    port,
    user,
    get password() {
      return password;
    },
    dir,
    get pid() {
      return child !== undefined && childRunning(child) ? child.pid : undefined;
    },
    power: () => bmcPower(files),
    events: () => parseEvents(readFileSync(files.eventsFile, 'utf8')),
    onPowerChange(cb) {
      listeners.add(cb);
      return () => listeners.delete(cb);
    },
    ignorePowerOff(on) {
      if (on) writeFileSync(files.ignoreOffFile, '');
      else if (existsSync(files.ignoreOffFile)) unlinkSync(files.ignoreOffFile);
    },
    async setPassword(next) {
      // ipmitool reads a new password only from argv or a terminal; this is the rig's throwaway
      // password, so argv it is (the fence driver never does this). lan.conf is rewritten too, so
      // a restart serves the same password whether ipmi_sim's persisted users or lan.conf win.
      const r = await run([...ipmiArgs(port, user), 'user', 'set', 'password', '2', next], 5000, { env: { ...process.env, IPMI_PASSWORD: password } });
      if (r.code !== 0) throw new Error(`BMC ${name}: user set password failed (exit ${r.code}): ${r.stderr.trim()}`);
      writeFileSync(files.lanConf, lanConf(files, { address: ADDRESS, port, user, password: next }), { mode: 0o600 });
      password = next;
    },
    kill: stop,
    async restart() {
      await stop();
      child = await launch(files, port, user, password, name);
    },
    fenceOptions: () => ({ host: ADDRESS, port, user, password, cipherSuite: 3 }),
    logTail: (lines = 20) => tailFile(files.logFile, lines),
    async cleanup() {
      if (cleaned) return;
      cleaned = true;
      clearInterval(timer);
      poll();
      await stop();
      if (!process.env.VK_KEEP_TMP) rmSync(dir, { recursive: true, force: true });
      dirs.delete(dir);
    },
  };
}
