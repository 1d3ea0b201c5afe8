// Process identity and state from /proc (drivers/launch/process.ts), on real processes this test
// starts: a shell that leaves its background child unreaped (it execs a sleep, which never waits),
// so the child becomes a zombie of a parent the test holds and then ends by PID.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { describe, it } from 'node:test';
import { isAlive, isZombie, procState, refOf } from '../../drivers/launch/process.ts';
import { waitFor } from '../rig/wait.ts';

describe('process state from /proc', () => {
  it('a running process is alive and no zombie; once it exits unreaped it is a zombie, not alive; once reaped it is gone', async () => {
    const parent = spawn('sh', ['-c', 'sleep 0.3 & echo $!; exec sleep 30'], { stdio: ['ignore', 'pipe', 'inherit'] });
    try {
      const [line] = (await once(parent.stdout!, 'data')) as [Buffer];
      const pid = Number(line.toString().trim());
      const ref = refOf(pid);
      assert.ok(ref, `the background sleep (pid ${pid}) is readable`);
      assert.equal(isAlive(ref), true);
      assert.equal(isZombie(ref), false);
      assert.match(procState(pid) ?? '', /^[RSD]$/);

      await waitFor('the background sleep to exit', () => procState(pid) === 'Z', 5_000);
      assert.equal(isZombie(ref), true);
      assert.equal(isAlive(ref), false);
      // The same PID with another start time is another process: not this zombie.
      assert.equal(isZombie({ pid, startTime: ref.startTime + 1 }), false);

      parent.kill('SIGKILL');
      await once(parent, 'exit');
      // Orphaned, the zombie is reaped by init (or the nearest subreaper).
      await waitFor('the zombie to be reaped', () => procState(pid) === undefined || !isZombie(ref), 5_000);
      assert.equal(isAlive(ref), false);
    } finally {
      if (parent.exitCode === null && parent.signalCode === null) parent.kill('SIGKILL');
    }
  });

  it('a PID that does not exist has no state and is neither alive nor a zombie', () => {
    const pid = 2 ** 22 + 1; // above pid_max's largest value
    assert.equal(procState(pid), undefined);
    assert.equal(refOf(pid), undefined);
    assert.equal(isZombie({ pid, startTime: 1 }), false);
    assert.equal(isAlive({ pid, startTime: 1 }), false);
  });
});
