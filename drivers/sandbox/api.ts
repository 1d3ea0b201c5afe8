// The sandbox's REST API server: one `vk api` on 127.0.0.1, started after the daemons, with bearer
// tokens from DIR/api/tokens (made by `vk sandbox up`: one admin token, its hash in that file and
// the token itself in DIR/api/token, both readable by their owner only). Recorded in sandbox.json
// (PID and start time) like every other process, and stopped by PID.
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { join, resolve } from 'node:path';
import { vkArgv } from '../launch/daemon.ts';
import { spawnDetached, isAlive, tailFile, type ProcRef } from '../launch/process.ts';
import { choosePort } from '../launch/zookeeper.ts';
import type { SandboxState } from './state.ts';

export const API_HOST = '127.0.0.1';

export function apiDir(dir: string): string {
  return join(dir, 'api');
}

export function apiLog(state: SandboxState): string {
  return join(apiDir(state.dir), 'api.log');
}

/** The API port this directory prefers (stable across down/up, like ZooKeeper's). */
export function preferredApiPort(dir: string): number {
  const h = createHash('sha256').update(`api:${resolve(dir)}`).digest().readUInt16BE(0);
  return 28600 + (h % 180);
}

/** Writes DIR/api/tokens (the line) and DIR/api/token (the token), both 0600. */
export function writeApiToken(dir: string, token: { token: string; line: string }): void {
  mkdirSync(apiDir(dir), { recursive: true, mode: 0o700 });
  for (const [file, text] of [
    ['tokens', `# vk sandbox: the API's tokens (sha256hex scope name)\n${token.line}\n`],
    ['token', `${token.token}\n`],
  ] as const) {
    const path = join(apiDir(dir), file);
    writeFileSync(path, text, { mode: 0o600 });
    chmodSync(path, 0o600);
  }
}

/** The sandbox's admin token, or undefined when it has none (a sandbox made before the API). */
export function readApiToken(dir: string): string | undefined {
  const file = join(apiDir(dir), 'token');
  return existsSync(file) ? readFileSync(file, 'utf8').trim() : undefined;
}

/** Starts `vk api` (recorded in state.api) and waits until it answers; the caller writes the state. */
export async function startApi(state: SandboxState, timeoutMs = 30_000): Promise<void> {
  const port = state.api?.port ?? (await choosePort(preferredApiPort(state.dir)));
  const url = `http://${API_HOST}:${port}`;
  const proc = spawnDetached({
    argv: vkArgv('api', '--listen', `${API_HOST}:${port}`, '--token-file', join(apiDir(state.dir), 'tokens')),
    logFile: apiLog(state),
    cwd: state.dir,
    env: { ...Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('VK_'))), VK_ZK: state.zookeeper.connectString, NO_COLOR: '1' },
  });
  state.api = { port, url, proc };
  await waitApi(state.api, timeoutMs, apiLog(state));
}

async function waitApi(api: { url: string; proc?: ProcRef }, timeoutMs: number, log: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (!isAlive(api.proc)) throw new Error(`vk api exited:\n${tailFile(log)}`);
    try {
      if ((await fetch(`${api.url}/openapi.json`, { signal: AbortSignal.timeout(1_000) })).ok) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`vk api did not answer on ${api.url} within ${timeoutMs / 1000} s:\n${tailFile(log)}`);
}
