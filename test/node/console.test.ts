import assert from 'node:assert/strict';
import { appendFile, mkdtemp, rename, rm, truncate, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, afterEach, before, describe, it } from 'node:test';
import { silentLogger } from '../../controllers/logger.ts';
import { FileTailer, type TailChunk } from '../../drivers/console-log.ts';
import {
  appendLines,
  consoleText,
  createConsoleFollower as createFollower,
  trimToBytes,
  type ConsoleEffects,
  type ConsoleFollower,
} from '../../reconcilers/node/console.ts';
import { waitFor } from '../rig/wait.ts';

let dir: string;
let n = 0;
const freshPath = () => join(dir, `serial-${++n}.log`);

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'vk-console-'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('appendLines', () => {
  it('keeps the last maxLines lines', () => {
    const chunk = Array.from({ length: 1500 }, (_, i) => `line ${i}`).join('\n') + '\n';
    const out = appendLines([], chunk);
    assert.equal(out.length, 1000);
    assert.equal(out[0], 'line 500');
    assert.equal(out.at(-1), 'line 1499');

    const buffer = ['a', 'b', 'c'];
    assert.deepEqual(appendLines(buffer, 'd\ne\n', 4), ['b', 'c', 'd', 'e']);
    assert.deepEqual(buffer, ['a', 'b', 'c'], 'the input buffer must not change');
    assert.deepEqual(appendLines(['a', 'b'], 'x\ny\nz\n', 2), ['y', 'z']);
    assert.deepEqual(appendLines(['a', 'b', 'c'], '', 2), ['b', 'c']);
    assert.deepEqual(appendLines(['a'], 'b\n', 0), []);
  });

  it('splits on newlines, drops carriage returns, and counts text after the last newline as a line', () => {
    assert.deepEqual(appendLines([], 'one\r\ntwo\r\n'), ['one', 'two']);
    assert.deepEqual(appendLines(['x'], 'tail'), ['x', 'tail']);
    assert.deepEqual(appendLines([], '\n\n'), ['', '']);
  });

  it('trimToBytes keeps the newest lines whose text fits', () => {
    assert.deepEqual(trimToBytes(['aaaa', 'bb', 'cc'], 5), ['bb', 'cc']);
    assert.deepEqual(trimToBytes(['aaaa', 'bb', 'cc'], 4), ['cc']);
    assert.deepEqual(trimToBytes(['é'], 1), []);
    assert.equal(consoleText(['a', 'b']), 'a\nb');
  });
});

describe('FileTailer', () => {
  const started: FileTailer[] = [];
  afterEach(async () => {
    await Promise.all(started.splice(0).map((t) => t.stop()));
  });
  function tailer(path: string, opts: ConstructorParameters<typeof FileTailer>[2] = {}) {
    const chunks: TailChunk[] = [];
    const t = new FileTailer(path, (c) => chunks.push(c), opts);
    started.push(t);
    return { t, chunks };
  }

  it('reports nothing for an absent file, then the lines appended to it', async () => {
    const path = freshPath();
    const { t, chunks } = tailer(path);
    assert.equal(await t.pollNow(), null);
    await writeFile(path, 'boot 1\nboot 2\n');
    assert.deepEqual(await t.pollNow(), { text: 'boot 1\nboot 2\n', reset: false });
    assert.equal(await t.pollNow(), null, 'nothing new');
    await appendFile(path, 'login:\n');
    assert.deepEqual(await t.pollNow(), { text: 'login:\n', reset: false });
    assert.equal(chunks.length, 2);
    await t.stop();
  });

  it('holds a partial last line until its newline, and a split UTF-8 character until it is whole', async () => {
    const path = freshPath();
    await writeFile(path, 'abc\nhalf');
    const { t } = tailer(path);
    assert.deepEqual(await t.pollNow(), { text: 'abc\n', reset: false });
    await appendFile(path, Buffer.from([0xc3])); // first byte of 'é'
    assert.equal(await t.pollNow(), null);
    await appendFile(path, Buffer.concat([Buffer.from([0xa9]), Buffer.from(' done\n')]));
    assert.deepEqual(await t.pollNow(), { text: 'halfé done\n', reset: false });
    await t.stop();
  });

  it('splits a line that never ends at maxLineLength', async () => {
    const path = freshPath();
    await writeFile(path, 'x'.repeat(10));
    const { t } = tailer(path, { maxLineLength: 4 });
    assert.deepEqual(await t.pollNow(), { text: 'xxxx\nxxxx\n', reset: false });
    await t.stop();
  });

  it('starts again from 0 when the file is truncated (libvirt append=off at domain start)', async () => {
    const path = freshPath();
    await writeFile(path, 'old boot line 1\nold boot line 2\n');
    const { t } = tailer(path);
    await t.pollNow();
    await truncate(path, 0);
    assert.deepEqual(await t.pollNow(), { text: '', reset: true });
    await writeFile(path, 'new\n');
    assert.deepEqual(await t.pollNow(), { text: 'new\n', reset: false });
    await t.stop();
  });

  it('notices a truncation that was followed by more output than it had read', async () => {
    const path = freshPath();
    await writeFile(path, 'short\n');
    const { t } = tailer(path);
    await t.pollNow();
    await writeFile(path, 'a much longer first line of the new boot\n'); // truncate + write, same inode
    assert.deepEqual(await t.pollNow(), { text: 'a much longer first line of the new boot\n', reset: true });
    await t.stop();
  });

  it('starts again when the file is replaced or removed and recreated', async () => {
    const path = freshPath();
    await writeFile(path, 'one\n');
    const { t } = tailer(path);
    await t.pollNow();
    await writeFile(`${path}.new`, 'two\nthree\n');
    await rename(`${path}.new`, path);
    assert.deepEqual(await t.pollNow(), { text: 'two\nthree\n', reset: true });
    await unlink(path);
    assert.equal(await t.pollNow(), null);
    await writeFile(path, 'four\nfive\nsix\n');
    assert.deepEqual(await t.pollNow(), { text: 'four\nfive\nsix\n', reset: true });
    await t.stop();
  });

  it('reads only the last maxCatchUpBytes of a big file, from a line boundary', async () => {
    const path = freshPath();
    await writeFile(path, 'aaaaaaaaaa\nbbbbbbbbbb\ncccc\n');
    const { t } = tailer(path, { maxCatchUpBytes: 8 });
    assert.deepEqual(await t.pollNow(), { text: 'cccc\n', reset: true });
    await t.stop();
  });

  it('check() answers null without a promise while nothing changed, and polls when something did', async () => {
    const path = freshPath();
    const { t } = tailer(path);
    assert.equal(t.check(), null, 'absent file');
    await writeFile(path, 'a\n');
    assert.deepEqual(await t.check(), { text: 'a\n', reset: false });
    assert.equal(t.check(), null, 'unchanged file');
    await appendFile(path, 'b');
    assert.equal(await t.check(), null, 'a partial line: polled, nothing to pass on');
    assert.equal(t.check(), null);
    await truncate(path, 0);
    assert.deepEqual(await t.check(), { text: '', reset: true });
    await unlink(path);
    assert.equal(await t.check(), null);
    await writeFile(path, 'c\n');
    assert.deepEqual(await t.check(), { text: 'c\n', reset: true });
    assert.equal(t.polls, 8);
  });

  it('polls on its own timer once started, and leaves no timer after stop', async () => {
    const path = freshPath();
    const { t, chunks } = tailer(path, { pollMs: 5 });
    t.start();
    await writeFile(path, 'hello\n');
    await waitFor('the line', () => chunks.length > 0, 5_000);
    assert.deepEqual(chunks[0], { text: 'hello\n', reset: false });
    await t.stop();
    assert.deepEqual(process.getActiveResourcesInfo().filter((r) => r === 'Timeout'), [], 'a timer is left after stop');
    const polls = t.polls;
    await appendFile(path, 'after stop\n');
    await new Promise((r) => setTimeout(r, 30));
    assert.equal(t.polls, polls);
    assert.equal(chunks.length, 1);
  });
});

class VersionConflict extends Error {
  readonly reason = 'VersionConflict';
}

/** The console znodes as plain data, with compare-and-set and a write count. */
function consoleCells() {
  const cells = new Map<string, { text: string; version: number }>();
  const state = {
    cells,
    writes: 0,
    reads: 0,
    fx(extra: Partial<ConsoleEffects> = {}): ConsoleEffects {
      return {
        readConsole: async (vm) => {
          state.reads++;
          const c = cells.get(vm);
          return c ? { ...c } : null;
        },
        writeConsole: async (vm, text, version) => {
          const c = cells.get(vm);
          if ((c?.version ?? null) !== version) throw new VersionConflict(`${vm}: expected ${c?.version ?? null}, got ${version}`);
          state.writes++;
          const next = { text, version: c ? c.version + 1 : 0 };
          cells.set(vm, next);
          return next.version;
        },
        log: silentLogger(),
        pollMs: 5,
        ...extra,
      };
    },
  };
  return state;
}

describe('console follower', () => {
  const followers: ConsoleFollower[] = [];
  afterEach(async () => {
    await Promise.all(followers.splice(0).map((f) => f.stop()));
  });
  function createConsoleFollower(fx: ConsoleEffects): ConsoleFollower {
    const f = createFollower(fx);
    followers.push(f);
    return f;
  }

  it('writes the console when lines arrive, and never when nothing changed', async () => {
    const path = freshPath();
    const zk = consoleCells();
    const follower = createConsoleFollower(zk.fx());
    follower.follow('web1', path);
    await follower.syncNow();
    assert.equal(zk.writes, 0, 'an absent file writes nothing');

    await writeFile(path, 'line 1\nline 2\n');
    await waitFor('the first write', () => zk.writes === 1, 5_000);
    assert.equal(zk.cells.get('web1')?.text, 'line 1\nline 2');

    // Nothing appended: several polls on the timer, then several forced ones, and still one write.
    const polls = follower.state('web1')!.polls;
    await waitFor('five more polls', () => follower.state('web1')!.polls >= polls + 5, 5_000);
    for (let i = 0; i < 3; i++) await follower.syncNow('web1');
    assert.equal(zk.writes, 1);

    await appendFile(path, 'partial');
    await follower.syncNow('web1');
    assert.equal(zk.writes, 1, 'a partial line is not written');
    await appendFile(path, ' line 3\n');
    await follower.syncNow('web1');
    assert.equal(zk.writes, 2);
    assert.equal(zk.cells.get('web1')?.text, 'line 1\nline 2\npartial line 3');
    assert.deepEqual(follower.state('web1'), { path, polls: follower.state('web1')!.polls, lines: 3, writes: 2 });
    await follower.stop();
  });

  it('keeps the last maxLines lines and starts over when the file is truncated', async () => {
    const path = freshPath();
    const zk = consoleCells();
    const follower = createConsoleFollower(zk.fx({ maxLines: 2, pollMs: 60_000 }));
    await writeFile(path, 'a\nb\nc\n');
    follower.follow('web1', path);
    await follower.syncNow();
    assert.equal(zk.cells.get('web1')?.text, 'b\nc');
    await truncate(path, 0);
    await follower.syncNow();
    assert.equal(zk.writes, 1, 'a truncation alone writes nothing');
    await writeFile(path, 'new boot\n');
    await follower.syncNow();
    assert.equal(zk.cells.get('web1')?.text, 'new boot');
    assert.equal(zk.writes, 2);
    await follower.stop();
  });

  it('writes nothing when new output leaves the bounded text unchanged', async () => {
    const path = freshPath();
    const zk = consoleCells();
    const follower = createConsoleFollower(zk.fx({ maxLines: 2, pollMs: 60_000 }));
    await writeFile(path, 'tick\ntick\n');
    follower.follow('web1', path);
    await follower.syncNow();
    assert.equal(zk.writes, 1);
    await appendFile(path, 'tick\n');
    await follower.syncNow();
    assert.equal(zk.writes, 1);
    await appendFile(path, 'tock\n');
    await follower.syncNow();
    assert.equal(zk.cells.get('web1')?.text, 'tick\ntock');
    assert.equal(zk.writes, 2);
  });

  it('after a daemon restart over an unchanged file, reads the znode once and writes nothing', async () => {
    const path = freshPath();
    await writeFile(path, 'x\ny\n');
    const zk = consoleCells();
    zk.cells.set('web1', { text: 'x\ny', version: 7 });
    const follower = createConsoleFollower(zk.fx({ pollMs: 60_000 }));
    follower.follow('web1', path);
    await follower.syncNow();
    await follower.syncNow();
    assert.equal(zk.writes, 0);
    assert.equal(zk.reads, 1);
    await follower.stop();
  });

  it('on a version conflict re-reads the version and retries once', async () => {
    const path = freshPath();
    const zk = consoleCells();
    const follower = createConsoleFollower(zk.fx({ pollMs: 60_000 }));
    await writeFile(path, 'one\n');
    follower.follow('web1', path);
    await follower.syncNow();
    assert.equal(zk.cells.get('web1')?.version, 0);
    // Someone else writes the znode: our cached version is stale now.
    zk.cells.set('web1', { text: 'other', version: 1 });
    await appendFile(path, 'two\n');
    await follower.syncNow();
    assert.deepEqual(zk.cells.get('web1'), { text: 'one\ntwo', version: 2 });
    assert.equal(zk.writes, 2);
    await follower.stop();
  });

  it('gives up after the retry also conflicts, and writes again on the next output', async () => {
    const path = freshPath();
    const zk = consoleCells();
    let conflicts = 2;
    const base = zk.fx({ pollMs: 60_000 });
    const follower = createConsoleFollower({
      ...base,
      writeConsole: async (vm, text, version) => {
        if (conflicts > 0) {
          conflicts--;
          throw new VersionConflict('busy');
        }
        return base.writeConsole(vm, text, version);
      },
    });
    await writeFile(path, 'one\n');
    follower.follow('web1', path);
    await follower.syncNow();
    assert.equal(conflicts, 0);
    assert.equal(zk.writes, 0);
    await follower.syncNow();
    assert.equal(zk.writes, 0, 'no new output: no write');
    await appendFile(path, 'two\n');
    await follower.syncNow();
    assert.equal(zk.cells.get('web1')?.text, 'one\ntwo');
    await follower.stop();
  });

  it('follows a new path, unfollows, and stops with nothing left running', async () => {
    const a = freshPath();
    const b = freshPath();
    await writeFile(a, 'from a\n');
    await writeFile(b, 'from b\n');
    const zk = consoleCells();
    const follower = createConsoleFollower(zk.fx());
    follower.follow('web1', a);
    follower.follow('web2', a);
    await follower.syncNow();
    follower.follow('web1', b);
    await follower.syncNow();
    assert.equal(zk.cells.get('web1')?.text, 'from b');
    await follower.unfollow('web2');
    assert.deepEqual(follower.following(), ['web1']);
    await follower.stop();
    assert.deepEqual(follower.following(), []);
    assert.deepEqual(process.getActiveResourcesInfo().filter((r) => r === 'Timeout'), [], 'a timer is left after stop');
    const writes = zk.writes;
    await appendFile(b, 'after stop\n');
    await appendFile(a, 'after stop\n');
    await new Promise((r) => setTimeout(r, 30));
    assert.equal(zk.writes, writes);
    assert.throws(() => follower.follow('web3', a), /stopped/);
  });
});
