// `vk daemon` as a child process, for tests that must SIGKILL a daemon (a crash) or run it as the
// CLI does (the command line is the launcher's, drivers/launch/daemon.ts, as the sandbox's). Used
// by the cluster rig (./cluster.ts). Every process started here is signalled by its PID.
import type { ChildProcess } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { stringify as toYaml } from 'yaml';
import { daemonArgv } from '../../drivers/launch/daemon.ts';
import { childRunning, spawnAttached } from '../../drivers/launch/process.ts';
import type { DaemonConfig } from '../../daemon/config.ts';
import type { ZkStore } from '../../drivers/zk/index.ts';
import { ZkPaths } from '../../schemas/index.ts';
import { waitFor } from './wait.ts';

const paths = new ZkPaths();

export interface SpawnDaemonOptions {
  /** The node's name (its alive znode, its config and log file names). */
  name: string;
  config: DaemonConfig;
  /** Folder for `<name>.yaml` and `<name>-daemon.log`. */
  work: string;
  /** Where to watch for the node's alive znode. */
  store: ZkStore;
  readyTimeoutMs: number;
}

/** The daemon's log so far (`<work>/<name>-daemon.log`), or '' when there is none. */
export function daemonLog(work: string, name: string): string {
  try {
    return readFileSync(join(work, `${name}-daemon.log`), 'utf8');
  } catch {
    return '';
  }
}

const exited = (child: ChildProcess): boolean => !childRunning(child);

/**
 * Writes the config (log level VK_TEST_LOG, else the config's unless it is the rig's 'silent', else warn) and starts `vk daemon --config` with its
 * output in the log file; `onSpawn` sees the child at once (so a caller can record it before the
 * wait). Resolves once the node holds a fresh alive znode: a new session, and (a crashed
 * predecessor's) old one has expired. Rejects at once if the child exits meanwhile.
 */
export async function spawnDaemonProcess(o: SpawnDaemonOptions, onSpawn?: (child: ChildProcess) => void): Promise<ChildProcess> {
  const before = (await o.store.exists(paths.nodeAlive(o.name)))?.ephemeralOwner ?? null;
  const file = join(o.work, `${o.name}.yaml`);
  // VK_TEST_LOG wins; a level the test asked for (anything but the rig's default 'silent') next; else warn.
  const logLevel = process.env.VK_TEST_LOG ?? (o.config.logLevel === 'silent' ? 'warn' : o.config.logLevel);
  writeFileSync(file, toYaml({ ...o.config, logLevel }));
  // SIGKILLed with this process, however it ends (a bench interrupted by SIGTERM runs no exit hooks for children it forgot).
  const child = spawnAttached({ argv: daemonArgv(file), logFile: join(o.work, `${o.name}-daemon.log`) }, { pdeathsig: 'SIGKILL' });
  onSpawn?.(child);
  const outcome = await waitFor(
    `vk daemon ${o.name} up`,
    async () => {
      if (exited(child)) return 'exited';
      const owner = (await o.store.exists(paths.nodeAlive(o.name)))?.ephemeralOwner ?? null;
      return owner !== null && owner !== before ? 'up' : undefined;
    },
    o.readyTimeoutMs,
    () => daemonLog(o.work, o.name).slice(-3000),
  );
  if (outcome === 'exited') {
    throw new Error(`vk daemon for ${o.name} exited (${child.exitCode ?? child.signalCode}) during start:\n${daemonLog(o.work, o.name).slice(-3000)}`);
  }
  return child;
}

/** SIGKILL by PID (a crash); resolves once the child has exited. */
export async function killDaemonProcess(child: ChildProcess | undefined): Promise<void> {
  if (!child || exited(child)) return;
  const gone = new Promise((r) => child.once('exit', r));
  process.kill(child.pid!, 'SIGKILL');
  await gone;
}

/** SIGTERM by PID, SIGKILL after 10 s; resolves once the child has exited. */
export async function stopDaemonProcess(child: ChildProcess | undefined): Promise<void> {
  if (!child || exited(child)) return;
  const gone = new Promise((r) => child.once('exit', r));
  process.kill(child.pid!, 'SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
  await gone;
  clearTimeout(timer);
}
