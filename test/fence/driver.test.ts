// The fence driver (drivers/fence/) against real ipmi_sim BMCs (test/rig/bmc.ts, two for the file:
// hv1 behaves, hv2 is made to misbehave): status reads "on"; powerOff is verified off and the BMC's
// power hook saw the change; powerOn brings it back; a wrong password is FenceAuthFailed at once,
// with the password nowhere in the error, its message or the argv (also read from /proc/PID/cmdline
// of a running ipmitool, whose environ holds it as IPMI_PASSWORD instead); "off does not take" is
// FenceNotVerified after the verify timeout; a dead BMC is FenceUnreachable within timeoutMs ×
// attempts; cipher suite 17 (ipmitool's default, which ipmi_sim refuses) is FenceCommandFailed at
// once; the two BMCs hold distinct UDP ports, each bound by its own PID. The command fencer: exit
// 0, a non-zero exit, a timeout (its process group killed). The ipmitool output parser and the
// failure texts are tested first on captured output.
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { createCommandFencer, createIpmiFencer, FenceError, ipmitoolArgv, ipmiSettings, parsePowerStatus, sessionFailureReason, type FenceErrorReason } from '../../drivers/fence/index.ts';
import { udpBoundBy } from '../../drivers/launch/bmc.ts';
import { bmcInstalled, startBmcRig, type BmcEvent, type BmcRig } from '../rig/bmc.ts';
import { waitFor } from '../rig/wait.ts';

async function rejectsWith(reason: FenceErrorReason, call: () => Promise<unknown>): Promise<{ ms: number; error: FenceError }> {
  const t0 = Date.now();
  let error: FenceError | undefined;
  await assert.rejects(call, (e: unknown) => {
    assert.ok(e instanceof FenceError, `not a FenceError: ${String(e)}`);
    assert.equal(e.reason, reason, e.message);
    error = e;
    return true;
  });
  return { ms: Date.now() - t0, error: error! };
}

/** The secret appears nowhere in what the error carries. */
function assertNoSecret(e: FenceError, secret: string): void {
  for (const [what, text] of [['message', e.message], ['stack', e.stack ?? ''], ['command', JSON.stringify(e.command ?? [])], ['JSON', JSON.stringify(e)]] as const) {
    assert.ok(!text.includes(secret), `the password is in the error's ${what}: ${text}`);
  }
}

describe('ipmitool output (captured from ipmitool 1.8.19 against ipmi_sim)', () => {
  it('reads the power state case-insensitively (PVC compared "Chassis power is off" and missed ipmitool\'s "Chassis Power is off")', () => {
    assert.equal(parsePowerStatus('Chassis Power is on\n'), 'on');
    assert.equal(parsePowerStatus('Chassis Power is off\n'), 'off');
    assert.equal(parsePowerStatus('Chassis power is off'), 'off');
    assert.equal(parsePowerStatus('power is off'), 'off');
    assert.equal(parsePowerStatus('CHASSIS POWER IS OFF\r\n'), 'off');
    assert.equal(parsePowerStatus('  Chassis Power is  On  '), 'on');
  });

  it('says nothing for output that is not a status, or says both', () => {
    assert.equal(parsePowerStatus('Chassis Power Control: Down/Off\n'), undefined);
    assert.equal(parsePowerStatus('Chassis Power Control: Up/On\n'), undefined);
    assert.equal(parsePowerStatus(''), undefined);
    assert.equal(parsePowerStatus('Chassis Power is offline'), undefined);
    assert.equal(parsePowerStatus('Chassis Power is on\nChassis Power is off\n'), undefined);
  });

  it('tells session failures apart from -v stderr', () => {
    assert.equal(sessionFailureReason('Loading IANA PEN Registry...\n> RAKP 2 HMAC is invalid\nError: Unable to establish IPMI v2 / RMCP+ session\n'), 'FenceAuthFailed');
    assert.equal(sessionFailureReason('Loading IANA PEN Registry...\nRAKP 2 message indicates an error : unauthorized name\nError: Unable to establish IPMI v2 / RMCP+ session\n'), 'FenceAuthFailed');
    assert.equal(sessionFailureReason('Loading IANA PEN Registry...\nGet Auth Capabilities error\nError issuing Get Channel Authentication Capabilities request\nError: Unable to establish IPMI v2 / RMCP+ session\n'), 'FenceUnreachable');
    assert.equal(sessionFailureReason('Error in open session response message : invalid authentication algorithm\n\nError: Unable to establish IPMI v2 / RMCP+ session\n'), 'FenceCommandFailed');
    assert.equal(sessionFailureReason('Error: Unable to establish IPMI v2 / RMCP+ session\n'), undefined);
  });

  it('builds an argv with -E and without the password; refuses bad options without showing the password', () => {
    const s = ipmiSettings({ host: '192.0.2.13', port: 6230, user: 'admin', password: 'Pw-on-no-argv', timeoutMs: 5000 });
    const argv = ipmitoolArgv(s, ['chassis', 'power', 'status']);
    assert.deepEqual(argv, ['/usr/bin/ipmitool', '-I', 'lanplus', '-C', '3', '-H', '192.0.2.13', '-p', '6230', '-U', 'admin', '-E', '-N', '2', '-R', '1', 'chassis', 'power', 'status']);
    assert.ok(!argv.join(' ').includes('Pw-on-no-argv'));
    assert.throws(() => ipmiSettings({ host: '-oops', user: 'admin', password: 'x' }), /host/);
    assert.throws(() => ipmiSettings({ host: 'h', user: 'admin', password: 'a-password-longer-than-20' }), (e: Error) => /password/.test(e.message) && !e.message.includes('a-password-longer'));
    assert.throws(() => ipmiSettings({ host: 'h', user: 'admin', password: 'x', cipherSuite: 18 }), /cipherSuite/);
  });
});

describe('IPMI fencer against ipmi_sim', { skip: bmcInstalled() }, () => {
  let hv1: BmcRig;
  let hv2: BmcRig;
  const hooked: BmcEvent[] = [];

  before(async () => {
    [hv1, hv2] = await Promise.all([startBmcRig({ name: 'hv1' }), startBmcRig({ name: 'hv2', password: 'hv2-Secret' })]);
    hv1.onPowerChange((e) => hooked.push(e));
  });
  after(async () => {
    await Promise.all([hv1?.cleanup(), hv2?.cleanup()]);
  });

  it('reads "on"', async () => {
    assert.equal(await createIpmiFencer(hv1.fenceOptions()).status(), 'on');
  });

  it('powerOff: off, verified by a status read, and the power hook saw it', async () => {
    const bmc = createIpmiFencer({ ...hv1.fenceOptions(), verifyTimeoutMs: 5000 });
    const r = await bmc.powerOff();
    assert.ok(r.statusReads >= 1 && r.attempts === 1, JSON.stringify(r));
    assert.equal(hv1.power(), 'off');
    await waitFor('the power hook', () => hooked.some((e) => e.what === 'power' && e.value === 0 && !e.ignored), 2000);
    assert.equal(await bmc.status(), 'off');
    // Off again when already off: still a verified off (real BMCs accept it too).
    await bmc.powerOff();
  });

  it('powerOn: on again', async () => {
    const bmc = createIpmiFencer(hv1.fenceOptions());
    await bmc.powerOn();
    assert.equal(await bmc.status(), 'on');
    await waitFor('the power-on hook', () => hooked.some((e) => e.value === 1), 2000);
    assert.deepEqual(hv1.events().map((e) => `${e.what} ${e.value}`), ['power 0', 'power 0', 'power 1']);
  });

  it('a wrong password: FenceAuthFailed at once, not retried, and the password shown nowhere', async () => {
    const wrong = 'Wr0ng-Pass!x';
    const { ms, error } = await rejectsWith('FenceAuthFailed', () => createIpmiFencer({ ...hv1.fenceOptions(), password: wrong, timeoutMs: 5000, retries: 3 }).powerOff());
    // Not retried, and not waited out: well under one attempt's timeout (a bound, not a benchmark).
    assert.ok(ms < 5000, `took ${ms} ms`);
    assert.equal(error.attempts, 1);
    assert.match(error.message, /refused the user or password/);
    assertNoSecret(error, wrong);
    assertNoSecret(error, hv1.password);
    assert.equal(hv1.power(), 'on', 'a refused session powered nothing off');
  });

  it('a cipher suite the BMC does not offer (17, ipmitool\'s default): FenceCommandFailed at once, not retried', async () => {
    const { ms, error } = await rejectsWith('FenceCommandFailed', () => createIpmiFencer({ ...hv1.fenceOptions(), cipherSuite: 17, retries: 3 }).status());
    assert.ok(ms < 5000, `took ${ms} ms`);
    assert.equal(error.attempts, 1);
    assert.match(error.message, /cipher suite 17 refused by the BMC.*invalid authentication algorithm/);
  });

  it('the rig\'s BMCs hold distinct UDP ports, each bound by its own ipmi_sim', () => {
    assert.notEqual(hv1.port, hv2.port);
    assert.ok(udpBoundBy(hv1.pid!, hv1.address, hv1.port));
    assert.ok(!udpBoundBy(hv1.pid!, hv2.address, hv2.port), 'hv1 does not hold hv2\'s port');
  });

  it('"off does not take": FenceNotVerified after the verify timeout', async () => {
    hv2.ignorePowerOff(true);
    try {
      const { ms, error } = await rejectsWith('FenceNotVerified', () => createIpmiFencer({ ...hv2.fenceOptions(), verifyTimeoutMs: 1000, verifyIntervalMs: 100 }).powerOff());
      // It waited out the verify window (not a fast failure); timers may fire a few ms early or late.
      assert.ok(ms >= 900 && ms < 8000, `took ${ms} ms`);
      assert.match(error.message, /still says "on"/);
      assertNoSecret(error, hv2.password);
      assert.equal(hv2.power(), 'on');
      assert.deepEqual(hv2.events().map((e) => e.ignored), [true]);
    } finally {
      hv2.ignorePowerOff(false);
    }
  });

  it('a dead BMC: FenceUnreachable within timeoutMs × attempts; the running ipmitool has the password in its environment, not its argv', async () => {
    await hv2.kill();
    const opts = { ...hv2.fenceOptions(), timeoutMs: 1500, retries: 1 };
    const seen: { cmdline: string; environ: string }[] = [];
    let watching = true;
    const watch = (async () => {
      while (watching) {
        for (const pid of readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
          try {
            const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
            const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
            if (ppid !== process.pid || !stat.includes('(ipmitool)')) continue;
            seen.push({ cmdline: readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' '), environ: readFileSync(`/proc/${pid}/environ`, 'utf8') });
          } catch {
            // gone meanwhile
          }
        }
        await new Promise((r) => setTimeout(r, 50));
      }
    })();
    try {
      const { ms, error } = await rejectsWith('FenceUnreachable', () => createIpmiFencer(opts).status());
      // The timeouts hold (with room for a loaded machine), and the retry really waited.
      assert.ok(ms <= opts.timeoutMs * (opts.retries + 1) + 4000, `took ${ms} ms`);
      assert.ok(ms >= opts.timeoutMs, `took only ${ms} ms`);
      assert.equal(error.attempts, 2);
      assertNoSecret(error, opts.password);
    } finally {
      watching = false;
      await watch;
    }
    assert.ok(seen.length > 0, 'no running ipmitool was seen');
    for (const p of seen) {
      assert.match(p.cmdline, /ipmitool .* -E /);
      assert.ok(!p.cmdline.includes(opts.password), `password on the command line: ${p.cmdline}`);
      assert.ok(p.environ.split('\0').includes(`IPMI_PASSWORD=${opts.password}`), 'IPMI_PASSWORD not in the environment');
    }
    await hv2.restart();
    assert.equal(await createIpmiFencer(hv2.fenceOptions()).status(), 'on');
  });
});

describe('command fencer', () => {
  it('exit 0: fenced, with the node in VK_FENCE_NODE', async () => {
    const r = await createCommandFencer({ command: 'test "$VK_FENCE_NODE" = hv3', node: 'hv3', timeoutMs: 5000 }).fence();
    assert.equal(r.attempts, 1);
    await createCommandFencer({ command: ['/bin/true'], node: 'hv3' }).fence();
  });

  it('a non-zero exit: FenceCommandFailed with its stderr, after the retries', async () => {
    const { error } = await rejectsWith('FenceCommandFailed', () => createCommandFencer({ command: ['/bin/sh', '-c', 'echo "PDU says no" >&2; exit 3'], node: 'hv3', retries: 1 }).fence());
    assert.match(error.message, /exit status 3: PDU says no \(attempt 2 of 2\)/);
    assert.equal(error.attempts, 2);
  });

  it('a program that cannot be run: FenceCommandFailed', async () => {
    await rejectsWith('FenceCommandFailed', () => createCommandFencer({ command: ['/nonexistent/fence'], node: 'hv3' }).fence());
  });

  it('still running after timeoutMs: FenceTimeout, its process group killed', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'vk-fence-cmd-'));
    try {
      const pidFile = join(dir, 'pid');
      const { ms } = await rejectsWith('FenceTimeout', () => createCommandFencer({ command: `sleep 30 & echo $! > ${pidFile}; wait`, node: 'hv3', timeoutMs: 300 }).fence());
      assert.ok(ms >= 300 && ms < 5000, `took ${ms} ms`);
      const child = Number(readFileSync(pidFile, 'utf8').trim());
      await waitFor(`the fence command's sleep (${child}) to be gone`, () => {
        try {
          const st = readFileSync(`/proc/${child}/stat`, 'utf8');
          return st.slice(st.lastIndexOf(')') + 2).startsWith('Z'); // killed, not reaped yet
        } catch {
          return true;
        }
      }, 2000);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('inherits no secret of this process: only PATH, HOME, LANG and its own env', async () => {
    process.env.IPMI_PASSWORD = 'leak-check';
    try {
      await createCommandFencer({ command: 'test -z "$IPMI_PASSWORD" && test "$TOKEN" = t0k', node: 'hv3', env: { TOKEN: 't0k' } }).fence();
    } finally {
      delete process.env.IPMI_PASSWORD;
    }
  });
});
