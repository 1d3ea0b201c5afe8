// Helpers of the sandbox end-to-end tests: run `vk`, run lines of shell as a user would paste
// them (one shell, one after the other), parse the README tour, and look for anything a sandbox
// left behind.
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, readlinkSync, realpathSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { isAlive, missingPackages, netnsWithPrefix, readState, type ProcRef, type SandboxState } from '../../drivers/sandbox/index.ts';
import { pidsIn } from '../../drivers/launch/netns.ts';
import { isZombie, procState, refOf } from '../../drivers/launch/process.ts';
import { qemuProcs } from '../../drivers/sandbox/node.ts';

export const REPO = fileURLToPath(new URL('../../', import.meta.url)).replace(/\/$/, '');
export const VK = join(REPO, 'cli', 'vk.mjs');

/** Why the sandbox cannot run here, or undefined when it can. */
export function cannotRun(): string | undefined {
  if (process.getuid?.() !== 0) return 'not root (the sandbox makes network and mount namespaces)';
  const r = spawnSync('ip', ['netns', 'list'], { stdio: 'ignore' });
  if (r.status !== 0) return '`ip netns` is not usable here';
  const missing = missingPackages();
  if (missing.length > 0 && spawnSync('bash', [join(REPO, 'test/rig/install-deps.sh')], { stdio: 'inherit' }).status !== 0) {
    return `missing Debian packages ${missing.join(' ')}`;
  }
  return undefined;
}

/** A fresh directory for one sandbox, short enough for unix socket paths. */
export function sandboxDir(tag: string): string {
  return realpathSync(mkdtempSync(join(tmpdir(), `vksb-${tag}-`)));
}

/** The environment of a test's commands: nothing of the caller's VK_* leaks in. */
export function cleanEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('VK_') && k !== 'INIT_CWD'));
  return { ...env, NO_COLOR: '1', ...extra };
}

export interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

export function run(argv: string[], opts: { env?: NodeJS.ProcessEnv; cwd?: string; timeoutMs?: number } = {}): Promise<Run> {
  return new Promise((resolve) => {
    const child = spawn(argv[0]!, argv.slice(1), { env: opts.env ?? cleanEnv(), cwd: opts.cwd ?? REPO, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (c: string) => (stdout += c));
    child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 300_000);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

export function vk(args: string[], opts: { env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): Promise<Run> {
  return run([process.execPath, VK, ...args], opts);
}

// ------------------------------------------------------------------------------- shell sessions

export interface ShellLine {
  /** The command as written. */
  command: string;
  /** Exit code it must have. */
  expectExit: number;
  /** Where it came from (README line number, or the up output). */
  where: string;
}

export interface LineResult {
  line: ShellLine;
  code: number | undefined;
  output: string;
}

const MARK = '@@vk-line-done';

/**
 * Runs the lines in one bash, one after the other, as if pasted into a terminal: what one line
 * exports the next one sees. Each line's exit code and output are recorded separately.
 */
export async function runSession(lines: readonly ShellLine[], opts: { env: NodeJS.ProcessEnv; cwd?: string; timeoutMs?: number }): Promise<LineResult[]> {
  const script = lines.map((l, i) => `${l.command}\n__rc=$?; printf '\\n${MARK} %d %d\\n' ${i} "$__rc"`).join('\n') + '\n';
  const r = await run(['bash', '--noprofile', '--norc', '-c', script], { env: opts.env, cwd: opts.cwd ?? REPO, timeoutMs: opts.timeoutMs ?? 900_000 });
  const results: LineResult[] = [];
  let rest = `${r.stdout}`;
  for (let i = 0; i < lines.length; i++) {
    const m = new RegExp(`\\n?${MARK} ${i} (\\d+)\\n`).exec(rest);
    if (!m) {
      results.push({ line: lines[i]!, code: undefined, output: `${rest}\n[stderr]\n${r.stderr}` });
      break;
    }
    results.push({ line: lines[i]!, code: Number(m[1]), output: rest.slice(0, m.index) });
    rest = rest.slice(m.index + m[0].length);
  }
  return results;
}

/** A readable account of a session, for assertion messages and the test log. */
export function describeSession(results: readonly LineResult[]): string {
  return results
    .map((r) => `$ ${r.line.command}   [${r.line.where}] → exit ${r.code ?? 'none (session ended)'}${r.code !== r.line.expectExit ? ` (expected ${r.line.expectExit})` : ''}\n${r.output.trimEnd()}`)
    .join('\n');
}

// ------------------------------------------------------------------------------ README's tour

export interface TourLine extends ShellLine {
  needsQemu: boolean;
}

/** The end of the command: the first ` # ` outside quotes (a comment), if any. */
function splitComment(line: string): { command: string; comment: string } {
  let quote: string | undefined;
  for (let i = 0; i < line.length; i++) {
    const c = line[i]!;
    if (quote) {
      if (c === quote) quote = undefined;
      else if (c === '\\' && quote === '"') i++;
    } else if (c === "'" || c === '"') {
      quote = c;
    } else if (c === '#' && (i === 0 || /\s/.test(line[i - 1]!))) {
      return { command: line.slice(0, i).trimEnd(), comment: line.slice(i + 1).trim() };
    }
  }
  return { command: line.trimEnd(), comment: '' };
}

/**
 * The commands of the README's "Five-minute tour": every line of every ```sh block between that
 * heading and the next `## ` heading. A trailing comment `# exit N…` gives the expected exit
 * code (default 0); `# needs --qemu` marks commands that need the sandbox's QEMU mode.
 */
export function parseTour(readme: string): TourLine[] {
  const lines = readme.split('\n');
  const start = lines.findIndex((l) => /^## Five-minute tour/.test(l));
  if (start < 0) throw new Error('README.md has no "## Five-minute tour" section');
  const out: TourLine[] = [];
  let inBlock = false;
  for (let i = start + 1; i < lines.length; i++) {
    const l = lines[i]!;
    if (!inBlock && /^## /.test(l)) break;
    if (/^```/.test(l)) {
      inBlock = !inBlock && /^```(sh|bash|shell)\s*$/.test(l);
      continue;
    }
    if (!inBlock || l.trim() === '' || l.trim().startsWith('#')) continue;
    const { command, comment } = splitComment(l);
    const exit = /^exit (\d+)/.exec(comment);
    out.push({ command, expectExit: exit ? Number(exit[1]) : 0, needsQemu: /needs --qemu/.test(comment), where: `README.md:${i + 1}` });
  }
  return out;
}

export function readmeTour(): TourLine[] {
  return parseTour(readFileSync(join(REPO, 'README.md'), 'utf8'));
}

// --------------------------------------------------------------------------- `up` output lines

/** The commands `vk sandbox up` printed: the export line, the next commands, then the clean-up. */
export function printedCommands(upOutput: string): ShellLine[] {
  const lines = upOutput.split('\n');
  const next = lines.findIndex((l) => l.startsWith('Next, in this shell:'));
  const done = lines.findIndex((l) => l.startsWith('When you are done:'));
  if (next < 0 || done < 0) throw new Error(`no next commands in:\n${upOutput}`);
  const pick = (from: number, to: number): string[] => lines.slice(from, to).filter((l) => l.startsWith('  ')).map((l) => l.trim());
  const end = lines.findIndex((l, i) => i > done + 1 && l.trim() !== '' && !l.startsWith('  '));
  return [...pick(next + 1, done), ...pick(done + 1, end < 0 ? lines.length : end)].map((command) => ({ command, expectExit: 0, where: 'printed by up' }));
}

// ------------------------------------------------------------------------------------ leftovers

export interface Footprint {
  procs: Array<{ what: string; ref: ProcRef }>;
  netns: string[];
  prefix: string;
  dir: string;
}

/** Everything a running sandbox consists of, read before `down`: its processes and everything in its namespaces. */
export function footprint(dir: string): Footprint {
  const state: SandboxState | undefined = readState(dir);
  if (!state) throw new Error(`no sandbox state in ${dir}`);
  const procs: Footprint['procs'] = [];
  if (state.zookeeper.proc) procs.push({ what: 'ZooKeeper', ref: state.zookeeper.proc });
  if (state.api?.proc) procs.push({ what: 'vk api', ref: state.api.proc });
  for (const n of state.nodes) {
    if (n.libvirtd) procs.push({ what: `libvirtd ${n.name}`, ref: n.libvirtd });
    if (n.holder) procs.push({ what: `test-driver holder ${n.name}`, ref: n.holder });
    if (n.daemon) procs.push({ what: `vk daemon ${n.name}`, ref: n.daemon });
    if (n.frr) procs.push({ what: `FRR zebra ${n.name}`, ref: n.frr.zebra }, { what: `FRR bgpd ${n.name}`, ref: n.frr.bgpd });
    for (const q of qemuProcs(n)) procs.push({ what: `QEMU on ${n.name}`, ref: q });
    // A short-lived child (an `ip` or `vtysh` a daemon ran) may exit between the listing and the read: it left nothing.
    for (const pid of pidsIn(n.netns)) {
      const ref = refOf(pid);
      if (ref) procs.push({ what: `pid ${pid} in ${n.netns}`, ref });
    }
  }
  return { procs, netns: [state.fabric.netns, ...state.nodes.map((n) => n.netns)], prefix: state.prefix, dir };
}

/** What of a footprint is still there: running processes, namespaces, mounts. Empty when clean. */
export function leftovers(fp: Footprint): string[] {
  const left: string[] = [];
  for (const p of fp.procs) if (isAlive(p.ref)) left.push(`process ${p.what} (pid ${p.ref.pid}) still running`);
  for (const ns of netnsWithPrefix(fp.prefix)) left.push(`network namespace ${ns} still exists`);
  // Any running process whose command line or working directory is in the sandbox directory.
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    if (procState(Number(entry)) === 'Z') continue;
    try {
      const cmdline = readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0').join(' ');
      let cwd = '';
      try {
        cwd = readlinkSync(`/proc/${entry}/cwd`);
      } catch {
        // a kernel thread, or gone
      }
      if (cmdline.includes(fp.dir) || cwd.startsWith(fp.dir)) left.push(`process ${entry} runs in or from ${fp.dir}: ${cmdline.slice(0, 200)}`);
    } catch {
      // gone
    }
  }
  const mounts = readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .filter((l) => l.includes(fp.dir) || l.includes(`/run/netns/${fp.prefix}`));
  for (const m of mounts) left.push(`mount still there: ${m}`);
  return left;
}

/** Processes of the footprint left as zombies (exited, not reaped by their parent, e.g. a PID 1 that never reaps). */
export function zombies(fp: Footprint): number {
  return fp.procs.filter((p) => isZombie(p.ref)).length;
}
