// README.md's five-minute tour, executed as written: every command of the tour's ```sh blocks,
// in order, in one bash at the top of the repository (as if pasted into a terminal), with the
// exit code the README states (`# exit N`, else 0). The tour starts the sandbox itself
// (`npm run sandbox`) and ends with `vk sandbox down`; VK_SANDBOX_DIR sends it to a temporary
// directory. Run twice: on the test driver, skipping the lines marked `# needs --qemu`, and with
// VK_SANDBOX_QEMU=1 (real QEMU guests), running all of them.
import assert from 'node:assert/strict';
import { existsSync, rmSync } from 'node:fs';
import { test } from 'node:test';
import { readState } from '../../drivers/sandbox/index.ts';
import { stopSandbox } from '../../drivers/sandbox/sandbox.ts';
import { cannotRun, cleanEnv, describeSession, leftovers, readmeTour, runSession, sandboxDir, type Footprint } from './helpers.ts';
import { netnsWithPrefix, prefixFor } from '../../drivers/sandbox/index.ts';

const why = cannotRun();

async function tour(t: import('node:test').TestContext, qemu: boolean): Promise<void> {
  const all = readmeTour();
  const skipped = qemu ? [] : all.filter((l) => l.needsQemu);
  if (skipped.length > 0) {
    const msg = `!!! README tour on the test driver: SKIPPING ${skipped.length} line(s) marked "needs --qemu" (the QEMU run of this file covers them):\n${skipped.map((l) => `!!!   ${l.command}   [${l.where}]`).join('\n')}`;
    console.error(msg);
    t.diagnostic(msg);
  }
  const lines = all.filter((l) => qemu || !l.needsQemu);
  const dir = sandboxDir(qemu ? 'tourq' : 'tour');
  const env = cleanEnv({ VK_SANDBOX_DIR: dir, ...(qemu ? { VK_SANDBOX_QEMU: '1' } : {}) });
  try {
    const results = await runSession(lines, { env, timeoutMs: 1_500_000 });
    const account = describeSession(results);
    t.diagnostic(`${results.length} commands run, ${results.filter((r) => r.code === r.line.expectExit).length} with the expected exit code`);
    assert.equal(results.length, lines.length, `the tour ended early:\n${account}`);
    const failed = results.filter((r) => r.code !== r.line.expectExit);
    assert.deepEqual(
      failed.map((r) => `${r.line.where}: ${r.line.command} → exit ${r.code}, expected ${r.line.expectExit}`),
      [],
      `README tour commands that did not work as written:\n${account}`,
    );
    // The tour's last command is `vk sandbox down`: nothing of the sandbox is left.
    assert.ok(!existsSync(`${dir}/sandbox.json`));
    const fp: Footprint = { procs: [], netns: [], prefix: prefixFor(dir), dir };
    assert.deepEqual(leftovers(fp), []);
  } finally {
    if (readState(dir)) await stopSandbox(dir);
    for (const ns of netnsWithPrefix(prefixFor(dir))) console.error(`!!! left behind: ${ns}`);
    rmSync(dir, { recursive: true, force: true });
  }
}

test('README tour on the test driver', { timeout: 1_800_000, skip: why }, async (t) => {
  await tour(t, false);
});

test('README tour with QEMU guests (vk sandbox up --qemu)', { timeout: 1_800_000, skip: why ?? (existsSync('/usr/bin/qemu-system-x86_64') ? undefined : 'qemu-system-x86_64 missing') }, async (t) => {
  await tour(t, true);
});
