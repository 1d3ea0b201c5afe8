// Helpers for the end-to-end tests of `vk`: run the real binary, look at ZooKeeper directly.
import { spawn, type ChildProcess } from 'node:child_process';
import { cpSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ZkStore } from '../../drivers/zk/index.ts';

export const VK = fileURLToPath(new URL('../../cli/vk.mjs', import.meta.url));
export const FIXTURES = fileURLToPath(new URL('./fixtures/', import.meta.url));

export function fixture(...parts: string[]): string {
  return join(FIXTURES, ...parts);
}

export interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

export interface Vk {
  (...args: string[]): Promise<Run>;
  /** Starts vk without waiting for it (for --wait and log -f). */
  start(...args: string[]): Started;
  env: NodeJS.ProcessEnv;
}

export interface Started {
  child: ChildProcess;
  /** Output so far. */
  readonly stdout: string;
  readonly stderr: string;
  done: Promise<Run>;
  /** Resolves once stdout matches. */
  until(pattern: RegExp, timeoutMs?: number): Promise<void>;
}

/** A vk runner bound to a ZooKeeper and a root (NO_COLOR, not a TTY). */
export function vkFor(connectString: string, root: string, extraEnv: NodeJS.ProcessEnv = {}): Vk {
  const env: NodeJS.ProcessEnv = { ...process.env, VK_ZK: connectString, VK_ROOT: root, NO_COLOR: '1', ...extraEnv };
  delete env.VK_AUTH;
  const start = (...args: string[]): Started => {
    const child = spawn(process.execPath, [VK, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    const waiters: Array<{ pattern: RegExp; resolve: () => void }> = [];
    child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
      stdout += chunk;
      for (const w of [...waiters]) {
        if (w.pattern.test(stdout)) {
          waiters.splice(waiters.indexOf(w), 1);
          w.resolve();
        }
      }
    });
    child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    const done = new Promise<Run>((resolve) =>
      child.on('close', (code) => {
        clearTimeout(timer);
        resolve({ code, stdout, stderr });
      }),
    );
    return {
      child,
      get stdout() {
        return stdout;
      },
      get stderr() {
        return stderr;
      },
      done,
      until(pattern, timeoutMs = 20_000) {
        if (pattern.test(stdout)) return Promise.resolve();
        return new Promise<void>((resolve, reject) => {
          const t = setTimeout(() => reject(new Error(`vk ${args.join(' ')}: no ${pattern} in stdout within ${timeoutMs}ms; stdout=${stdout} stderr=${stderr}`)), timeoutMs);
          waiters.push({
            pattern,
            resolve: () => {
              clearTimeout(t);
              resolve();
            },
          });
          void done.then(() => {
            clearTimeout(t);
            if (!pattern.test(stdout)) reject(new Error(`vk ${args.join(' ')} exited without ${pattern}; stdout=${stdout} stderr=${stderr}`));
          });
        });
      },
    };
  };
  const run = ((...args: string[]) => start(...args).done) as Vk;
  run.start = start;
  run.env = env;
  return run;
}

/** Every znode under `root` (included) with its data version and zxids: equal snapshots = nothing written. */
export async function snapshot(store: ZkStore, root: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  const walk = async (path: string): Promise<void> => {
    const stat = await store.exists(path);
    if (!stat) return;
    out.set(path, `v${stat.version} m${stat.mzxid} p${stat.pzxid} c${stat.cversion}`);
    const children = (await store.children(path)) ?? [];
    await Promise.all(children.map((c) => walk(`${path}/${c}`)));
  };
  await walk(root);
  return out;
}

export async function readJson(store: ZkStore, path: string): Promise<Record<string, unknown> | null> {
  const node = await store.get(path);
  return node ? (JSON.parse(node.data.toString('utf8')) as Record<string, unknown>) : null;
}

/** A copy of a fixture directory in a temp dir, for tests that edit manifests. */
export function copyFixture(name: string): { dir: string; cleanup(): void } {
  const dir = mkdtempSync(join(tmpdir(), 'vk-cli-'));
  cpSync(fixture(name), dir, { recursive: true });
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** stderr as lines, without the trailing newline. */
export function errorLines(run: Run): string[] {
  return run.stderr.trimEnd() === '' ? [] : run.stderr.trimEnd().split('\n');
}
