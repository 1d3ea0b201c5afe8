// Test rig: real ZooKeeper servers (Debian package `zookeeper`) on loopback.
//
// - startZooKeeper(): one standalone server on a free 127.0.0.1 port, temp dataDir.
// - startEnsemble(n): n servers on loopback (client, quorum and election ports), one connectString.
//
// Every JVM is started by us and stopped by its PID (SIGTERM, then SIGKILL), never by name.
// Each JVM runs under `setpriv --pdeathsig SIGKILL`, so even a SIGKILLed test process cannot
// leak it; a process 'exit' handler (and SIGINT/SIGTERM/SIGHUP handlers) SIGKILL whatever is
// still running as a second line of defence, and remove the temp dirs not cleaned up (set
// VK_KEEP_TMP=1 to keep them). Logs go to files in the server's temp dir (zookeeper.log).
import { spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { childRunning, spawnAttached } from '../../drivers/launch/process.ts';
import { fourLetter, freePorts, JAVA, waitZooKeeper, writeZooKeeperConfig, ZK_HOST, ZK_JAR, zooKeeperCommand, type ZkQuorum } from '../../drivers/launch/zookeeper.ts';

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

/** Free loopback ports and the four-letter-word command: the launcher's (drivers/launch/zookeeper.ts). */
export { fourLetter, freePorts };

export interface ZkServerOptions {
  /** ZooKeeper tick in ms (default 200, so session timeouts can be short in tests). */
  tickTime?: number;
  /** Default 2 * tickTime (ZooKeeper's own default), set explicitly in zoo.cfg. */
  minSessionTimeoutMs?: number;
  /** Default 60000. */
  maxSessionTimeoutMs?: number;
  /** fsync the transaction log (default false: tests and benches do not need crash durability;
   * a killed JVM still leaves its writes in the page cache, so kill/restart keeps the data). */
  forceSync?: boolean;
  /** Milliseconds to wait for readiness (default 30000). */
  readyTimeoutMs?: number;
}

export interface ZkServer {
  /** `127.0.0.1:<port>` */
  readonly connectString: string;
  readonly port: number;
  /** PID of the running JVM (changes after start()); 0 when not running. */
  readonly pid: number;
  readonly dataDir: string;
  /** Temp dir holding zoo.cfg, log4j.properties, zookeeper.log, stdout/stderr. */
  readonly dir: string;
  readonly logFile: string;
  readonly running: boolean;
  /** SIGTERM by PID, SIGKILL after a grace period; resolves once the process has exited. */
  stop(): Promise<void>;
  /** SIGKILL by PID (keeps dataDir); resolves once the process has exited. */
  kill(): Promise<void>;
  /** (Re)start on the same port and dataDir; resolves once serving. */
  start(): Promise<void>;
  /** SIGSTOP / SIGCONT by PID: a server that keeps its sockets open but never answers (a partition). */
  pause(): void;
  resume(): void;
  /** Send a four-letter command (ruok, srvr, mntr, wchp, cons, …) and return the reply. */
  fourLetter(cmd: string): Promise<string>;
  /** stop() if running, then delete the temp dir. */
  cleanup(): Promise<void>;
}

export interface ZkEnsemble {
  readonly connectString: string;
  readonly members: ZkServer[];
  stop(): Promise<void>;
  cleanup(): Promise<void>;
}

// ---------------------------------------------------------------------------------------------
// process bookkeeping: everything we started, SIGKILLed by PID if we go away

const live = new Set<ChildProcess>();
/** Temp dirs of servers not cleaned up yet: removed at exit too. */
const dirs = new Set<string>();
let handlersInstalled = false;

function killAllNow(): void {
  for (const child of live) {
    if (child.pid !== undefined && child.exitCode === null && child.signalCode === null) {
      try {
        process.kill(child.pid, 'SIGKILL');
      } catch {
        /* already gone */
      }
    }
  }
  live.clear();
  if (!process.env.VK_KEEP_TMP) for (const d of dirs) rmSync(d, { recursive: true, force: true, maxRetries: 2 });
  dirs.clear();
}

function installExitHandlers(): void {
  if (handlersInstalled) return;
  handlersInstalled = true;
  process.on('exit', killAllNow);
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    const onSignal = (): void => {
      killAllNow();
      process.removeListener(sig, onSignal);
      process.kill(process.pid, sig); // re-raise with the default behaviour
    };
    process.on(sig, onSignal);
  }
}

function waitExit(child: ChildProcess, timeoutMs: number): Promise<boolean> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(true);
  return new Promise((res) => {
    const timer = setTimeout(() => {
      child.removeListener('exit', onExit);
      res(false);
    }, timeoutMs);
    const onExit = (): void => {
      clearTimeout(timer);
      res(true);
    };
    child.once('exit', onExit);
  });
}

// ---------------------------------------------------------------------------------------------
// helpers

function ensureInstalled(): void {
  if (existsSync(ZK_JAR) && existsSync(JAVA)) return;
  const r = spawnSync('bash', [join(repoRoot, 'test/rig/install-deps.sh')], { stdio: 'inherit' });
  if (r.status !== 0 || !existsSync(ZK_JAR)) {
    throw new Error(`test rig: ZooKeeper is not installed (${ZK_JAR}) and install-deps.sh failed (status ${r.status})`);
  }
}

interface MemberSpec {
  id: number;
  clientPort: number;
  quorum?: ZkQuorum['servers'];
}

function createServerHandle(spec: MemberSpec, opts: ZkServerOptions): ZkServer {
  const tickTime = opts.tickTime ?? 200;
  const minSession = opts.minSessionTimeoutMs ?? 2 * tickTime;
  const maxSession = opts.maxSessionTimeoutMs ?? 60000;
  const readyTimeoutMs = opts.readyTimeoutMs ?? 30000;
  const dir = mkdtempSync(join(tmpdir(), `vk-zk${spec.id}-`));
  dirs.add(dir);
  installExitHandlers();
  const files = writeZooKeeperConfig(dir, {
    clientPort: spec.clientPort,
    tickTime,
    minSessionTimeoutMs: minSession,
    maxSessionTimeoutMs: maxSession,
    forceSync: opts.forceSync ?? false,
    preAllocKiB: 4096,
    ...(spec.quorum ? { quorum: { id: spec.id, servers: spec.quorum } } : {}),
  });

  let child: ChildProcess | null = null;

  const isRunning = (): boolean => childRunning(child ?? undefined);

  async function start(): Promise<void> {
    if (isRunning()) throw new Error(`ZooKeeper ${spec.id} is already running (pid ${child?.pid})`);
    installExitHandlers();
    const c = spawnAttached(zooKeeperCommand(files), { pdeathsig: 'SIGKILL' });
    child = c;
    live.add(c);
    c.once('exit', () => live.delete(c));
    try {
      await waitZooKeeper(files, spec.clientPort, {
        what: `ZooKeeper ${spec.id}`,
        exited: () => (childRunning(c) ? undefined : `exited (${c.exitCode ?? c.signalCode})`),
        timeoutMs: readyTimeoutMs,
        pollMs: 50,
      });
    } catch (e) {
      await kill();
      throw e;
    }
  }

  async function signalAndWait(sig: NodeJS.Signals, graceMs: number): Promise<void> {
    const c = child;
    if (!c || !isRunning() || c.pid === undefined) return;
    try {
      process.kill(c.pid, 'SIGCONT'); // a paused JVM cannot handle SIGTERM
      process.kill(c.pid, sig);
    } catch {
      /* already gone */
    }
    if (!(await waitExit(c, graceMs)) && sig !== 'SIGKILL') {
      try {
        process.kill(c.pid, 'SIGKILL');
      } catch {
        /* already gone */
      }
      await waitExit(c, 10000);
    } else if (sig === 'SIGKILL') {
      await waitExit(c, 10000);
    }
    live.delete(c);
  }

  const stop = (): Promise<void> => signalAndWait('SIGTERM', 5000);
  const kill = (): Promise<void> => signalAndWait('SIGKILL', 10000);

  const sendSignal = (sig: NodeJS.Signals): void => {
    if (!child || !isRunning() || child.pid === undefined) throw new Error(`ZooKeeper ${spec.id} is not running`);
    process.kill(child.pid, sig);
  };

  return {
    connectString: `${ZK_HOST}:${spec.clientPort}`,
    port: spec.clientPort,
    get pid() {
      return isRunning() ? child?.pid ?? 0 : 0;
    },
    dataDir: files.dataDir,
    dir,
    logFile: files.logFile,
    get running() {
      return isRunning();
    },
    stop,
    kill,
    start,
    pause: () => sendSignal('SIGSTOP'),
    resume: () => sendSignal('SIGCONT'),
    fourLetter: (cmd: string) => fourLetter(spec.clientPort, cmd),
    async cleanup() {
      await stop();
      rmSync(dir, { recursive: true, force: true });
      dirs.delete(dir);
    },
  };
}

/** One standalone ZooKeeper on a free loopback port, serving when the promise resolves. */
export async function startZooKeeper(opts: ZkServerOptions = {}): Promise<ZkServer> {
  ensureInstalled();
  const [clientPort] = await freePorts(1);
  const server = createServerHandle({ id: 1, clientPort: clientPort! }, opts);
  try {
    await server.start();
  } catch (e) {
    await server.cleanup();
    throw e;
  }
  return server;
}

/** n ZooKeeper servers forming one ensemble on loopback; resolves when every member serves. */
export async function startEnsemble(n = 3, opts: ZkServerOptions = {}): Promise<ZkEnsemble> {
  ensureInstalled();
  const ports = await freePorts(3 * n);
  const servers = Array.from({ length: n }, (_, i) => ({
    id: i + 1,
    clientPort: ports[3 * i]!,
    quorumPort: ports[3 * i + 1]!,
    electionPort: ports[3 * i + 2]!,
  }));
  const members = servers.map((s) => createServerHandle({ id: s.id, clientPort: s.clientPort, quorum: servers }, opts));
  try {
    // Start all at once: a member only serves once a quorum exists.
    await Promise.all(members.map((m) => m.start()));
  } catch (e) {
    await Promise.all(members.map((m) => m.cleanup()));
    throw e;
  }
  return {
    connectString: members.map((m) => m.connectString).join(','),
    members,
    async stop() {
      await Promise.all(members.map((m) => m.stop()));
    },
    async cleanup() {
      await Promise.all(members.map((m) => m.cleanup()));
    },
  };
}
