// The bench side of bench/react's child processes (react-daemon.ts, react-bare.ts): spawned with
// the daemon's V8 flags, spoken to over IPC. A reactor says { ready } once up, { floorSeen, t }
// whenever the floor znode's data reaches its ZooKeeper session, and answers { cmd, id } with
// { id, ... } (settle: its work for the last write is done; stop: it has closed everything).
import { spawn, type ChildProcess } from 'node:child_process';
import { DAEMON_NODE_FLAGS } from '../../drivers/launch/daemon.ts';
import { stopByPid } from './proc.ts';
import type { ReactorMark } from './reactor-child.ts';

export type ReactorReply = { id: number; marks?: ReactorMark[] };
type FromReactor = { ready: true } | { floorSeen: number; t: string } | ReactorReply;

export interface Reactor {
  readonly child: ChildProcess;
  ask(cmd: 'settle' | 'stop'): Promise<ReactorReply>;
  /** Resolves to the time (process.hrtime) the floor znode's version `version` or later reaches the reactor. */
  floorSeen(version: number): Promise<bigint>;
  /** Ends the process by PID if it still runs. */
  kill(): Promise<void>;
}

/** Starts `script` (a .ts file run with tsx) with `args`; resolves once it says it is ready. */
export async function spawnReactor(repo: string, script: string, args: string[]): Promise<Reactor> {
  const child = spawn(process.execPath, [...DAEMON_NODE_FLAGS, '--import', 'tsx', script, ...args], {
    cwd: repo,
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    env: { ...process.env, NODE_OPTIONS: '' },
  });
  let exited: Error | undefined;
  const replies = new Map<number, { resolve: (m: ReactorReply) => void; reject: (e: Error) => void }>();
  let floorWaiter: { version: number; resolve: (t: bigint) => void } | undefined;
  let ready!: () => void;
  const up = new Promise<void>((r) => (ready = r));
  child.on('message', (m: FromReactor) => {
    if ('ready' in m) ready();
    else if ('floorSeen' in m) {
      if (floorWaiter && m.floorSeen >= floorWaiter.version) {
        const w = floorWaiter;
        floorWaiter = undefined;
        w.resolve(BigInt(m.t));
      }
    } else {
      replies.get(m.id)?.resolve(m);
      replies.delete(m.id);
    }
  });
  const gone = new Promise<never>((_, reject) =>
    child.once('exit', (code, signal) => {
      exited = new Error(`${script} exited (code ${code}, signal ${signal})`);
      for (const r of replies.values()) r.reject(exited);
      reject(exited);
    }),
  );
  gone.catch(() => undefined);
  let lastId = 0;
  const reactor: Reactor = {
    child,
    ask: (cmd) =>
      new Promise((resolve, reject) => {
        if (exited) return reject(exited);
        const id = ++lastId;
        replies.set(id, { resolve, reject });
        child.send({ cmd, id });
      }),
    floorSeen: (version) => new Promise((resolve) => (floorWaiter = { version, resolve })),
    kill: () => stopByPid(child),
  };
  try {
    await Promise.race([up, gone]);
  } catch (error) {
    await reactor.kill();
    throw error;
  }
  return reactor;
}
