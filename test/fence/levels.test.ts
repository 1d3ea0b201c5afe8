// The fence levels (reconcilers/fence/execute.ts runLevels) against real components: one ipmi_sim
// BMC for the file (test/rig/bmc.ts), the real drivers wired as daemon/daemon.ts fenceOptions wires
// them (powerOff = createIpmiFencer(…).powerOff() then powerOn() when powerOnAfter, runCommand =
// createCommandFencer(…).fence()), and a coordinator without Ceph access (storage false, the
// blocklist calls throwing, breakLocks resolving to nothing). Cases: ipmi verified off (and the
// BMC's own events log shows it), a refused password then a command level that works, a command
// that fails, every level failing in order, storage without Ceph access, no settings, a dead BMC.
// E1: a level succeeds only when its driver call resolved. E2: the password is in no result, no
// onAction line and no log line. Every result is a valid FenceResult (what the record stores).
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { pino } from 'pino';
import { createLogger } from '../../controllers/logger.ts';
import { createCommandFencer, createIpmiFencer } from '../../drivers/fence/index.ts';
import { IPMITOOL } from '../../drivers/launch/bmc.ts';
import { blocklistEntry, runLevels, type FenceEffects, type LevelsOutcome } from '../../reconcilers/fence/execute.ts';
import { decodeNodeFence, FenceResultSchema, type NodeFence, type NodeFenceInput } from '../../schemas/index.ts';
import { bmcInstalled, startBmcRig, type BmcRig } from '../rig/bmc.ts';
import { waitFor } from '../rig/wait.ts';

const NOW = new Date('2026-03-01T12:00:00.000Z');
const now = (): Date => NOW;
const PASSWORD = 'Lv-S3cret-Pw';
const WRONG = 'Wr0ng-Lv-Pw!';

interface Rig extends FenceEffects {
  actions: string[];
  logLines: string[];
  /** Calls of the blocklist and lock functions (none is expected: this coordinator has no Ceph). */
  cephCalls: string[];
}

/** FenceEffects exactly as daemon/daemon.ts fenceOptions builds them for a daemon with rbd.enabled false. */
function effects(): Rig {
  const actions: string[] = [];
  const logLines: string[] = [];
  const cephCalls: string[] = [];
  return {
    async powerOff(s) {
      const bmc = createIpmiFencer({ host: s.host, port: s.port, user: s.user, password: s.password, cipherSuite: s.cipherSuite, timeoutMs: s.timeoutMs, retries: s.retries, verifyTimeoutMs: s.verifyTimeoutMs, ipmitool: IPMITOOL });
      await bmc.powerOff();
      if (s.powerOnAfter) await bmc.powerOn();
    },
    async runCommand(s, node) {
      await createCommandFencer({ command: s.argv ?? s.shell!, node, timeoutMs: s.timeoutMs, retries: s.retries, ...(s.env ? { env: s.env } : {}) }).fence();
    },
    storage: false,
    async blocklistAdd(address) {
      cephCalls.push(`add ${address}`);
      throw new Error('no Ceph access (rbd.enabled is false)');
    },
    async blocklistRemove(address) {
      cephCalls.push(`rm ${address}`);
      throw new Error('no Ceph access (rbd.enabled is false)');
    },
    async breakLocks(image) {
      cephCalls.push(`locks ${image}`);
      return [];
    },
    log: pino({ level: 'trace' }, { write: (line: string) => void logLines.push(line) }),
    onAction: (line) => void actions.push(line),
    actions,
    logLines,
    cephCalls,
  };
}

const settings = (s: NodeFenceInput): NodeFence => decodeNodeFence(s);

/** E2 and the record's schema: no secret anywhere, every result storable. */
function check(outcome: LevelsOutcome, fx: Rig, secrets: readonly string[]): void {
  for (const r of outcome.results) FenceResultSchema.parse(r);
  for (const r of outcome.results) {
    assert.equal(r.at, NOW.toISOString());
    assert.ok(Number.isInteger(r.ms) && r.ms >= 0, `ms ${r.ms}`);
  }
  const texts = { outcome: JSON.stringify(outcome), actions: JSON.stringify(fx.actions), log: fx.logLines.join('') };
  for (const secret of secrets) for (const [what, text] of Object.entries(texts)) assert.ok(!text.includes(secret), `a password is in the ${what}: ${text}`);
  assert.deepEqual(fx.cephCalls, [], 'no Ceph call from a coordinator without Ceph access');
}

const shape = (o: LevelsOutcome): string[] => o.results.map((r) => `${r.level}:${r.ok ? 'ok' : r.reason}`);

describe('blocklistEntry', () => {
  it('IPv4: ADDR:0/0 (every client from the address)', () => {
    assert.equal(blocklistEntry('192.0.2.7'), '192.0.2.7:0/0');
    assert.equal(blocklistEntry('10.0.0.1'), '10.0.0.1:0/0');
  });

  it('IPv6: bracketed, [ADDR]:0/0', () => {
    assert.equal(blocklistEntry('2001:db8::7'), '[2001:db8::7]:0/0');
    assert.equal(blocklistEntry('fd00:0:0:0:0:0:0:1'), '[fd00:0:0:0:0:0:0:1]:0/0');
    assert.equal(blocklistEntry('::1'), '[::1]:0/0');
  });

  it('IPv6 with an embedded IPv4 part (schemas/fence.ts accepts it as storage.address): bracketed too', () => {
    assert.equal(blocklistEntry('::ffff:192.0.2.7'), '[::ffff:192.0.2.7]:0/0');
    assert.equal(blocklistEntry('64:ff9b::192.0.2.7'), '[64:ff9b::192.0.2.7]:0/0');
  });
});

describe('runLevels without any BMC', () => {
  it('no settings at all (null, or an empty object): no level, no result, nothing done', async () => {
    for (const s of [null, settings({})]) {
      const fx = effects();
      const outcome = await runLevels('hv3', s, '192.0.2.3', fx, now);
      assert.deepEqual(outcome, { level: undefined, results: [] });
      assert.deepEqual(fx.actions, []);
      check(outcome, fx, []);
    }
  });

  it('command [/bin/true]: level command, one ok result', async () => {
    const fx = effects();
    const outcome = await runLevels('hv3', settings({ command: { argv: ['/bin/true'] } }), undefined, fx, now);
    assert.equal(outcome.level, 'command');
    assert.deepEqual(shape(outcome), ['command:ok']);
    assert.equal(outcome.results[0]!.message, 'the fence command exited 0');
    assert.deepEqual(fx.actions, ['fence hv3: command succeeded: the fence command exited 0']);
    check(outcome, fx, []);
  });

  it('command [/bin/false]: fails (FenceCommandFailed, exit status 1), no level', async () => {
    const fx = effects();
    const outcome = await runLevels('hv3', settings({ command: { argv: ['/bin/false'] } }), undefined, fx, now);
    assert.equal(outcome.level, undefined);
    assert.deepEqual(shape(outcome), ['command:FenceCommandFailed']);
    assert.equal(outcome.results[0]!.ok, false);
    assert.match(outcome.results[0]!.message, /\/bin\/false: exit status 1/);
    assert.match(fx.actions[0]!, /^fence hv3: command failed \(FenceCommandFailed\): /);
    assert.equal(fx.logLines.length, 1, 'one warning per failed level');
    assert.match(fx.logLines[0]!, /"level":40,/);
    assert.equal(JSON.parse(fx.logLines[0]!).msg, 'fence hv3: command failed');
    check(outcome, fx, []);
  });

  it('the warning of a failed level is a warn line in the daemon\'s log format', async () => {
    const lines: string[] = [];
    const fx = { ...effects(), log: createLogger({ level: 'debug', destination: { write: (l: string) => void lines.push(l) } }) };
    await runLevels('hv3', settings({ command: { argv: ['/bin/false'] } }), undefined, fx, now);
    assert.equal(lines.length, 1);
    const line = JSON.parse(lines[0]!) as Record<string, unknown>;
    assert.equal(line.level, 'warn', lines[0]);
    assert.equal(line.msg, 'fence hv3: command failed');
  });

  it('the command gets the node as VK_FENCE_NODE and its env (real wiring)', async () => {
    const fx = effects();
    const outcome = await runLevels('hv7', settings({ command: { shell: 'test "$VK_FENCE_NODE" = hv7 && test "$PDU_TOKEN" = t0k-Abc', env: { PDU_TOKEN: 't0k-Abc' } } }), undefined, fx, now);
    assert.equal(outcome.level, 'command');
    check(outcome, fx, ['t0k-Abc']);
  });

  it('storage configured, but this coordinator has no Ceph access: StorageUnavailable, no level, no blocklist', async () => {
    for (const [s, published] of [
      [settings({ storage: {} }), '192.0.2.3'],
      [settings({ storage: { address: '192.0.2.9', ttlS: 3600 } }), undefined],
      [settings({ storage: {} }), undefined],
    ] as const) {
      const fx = effects();
      const outcome = await runLevels('hv3', s, published, fx, now);
      assert.equal(outcome.level, undefined);
      assert.ok(!('blocklist' in outcome), JSON.stringify(outcome));
      assert.deepEqual(shape(outcome), ['storage:StorageUnavailable']);
      assert.match(outcome.results[0]!.message, /no Ceph access/);
      check(outcome, fx, []);
    }
  });

  it('an env secret a failing command prints is not in the result (E2)', async () => {
    const fx = effects();
    const token = 'tok-Very-Secret-42';
    const outcome = await runLevels('hv3', settings({ command: { shell: 'echo "PDU refused token $PDU_TOKEN" >&2; exit 2', env: { PDU_TOKEN: token } } }), undefined, fx, now);
    assert.deepEqual(shape(outcome), ['command:FenceCommandFailed']);
    check(outcome, fx, [token]);
  });
});

const noBmc = bmcInstalled();
if (noBmc) console.error(`!!! SKIPPING runLevels against a real BMC: ${noBmc} (test/rig/install-deps.sh installs openipmi) !!!`);

describe('runLevels against a real BMC (ipmi_sim)', { skip: noBmc ?? false }, () => {
  let bmc: BmcRig;

  before(async () => {
    bmc = await startBmcRig({ name: 'levels', password: PASSWORD });
  });
  after(async () => {
    await bmc?.cleanup();
  });

  const ipmi = (o: Partial<NonNullable<NodeFenceInput['ipmi']>> = {}): NonNullable<NodeFenceInput['ipmi']> => ({
    host: bmc.address,
    port: bmc.port,
    user: bmc.user,
    password: bmc.password,
    cipherSuite: 3,
    timeoutMs: 5000,
    retries: 1,
    verifyTimeoutMs: 5000,
    ...o,
  });
  const powerOn = async (): Promise<void> => {
    const fencer = createIpmiFencer(bmc.fenceOptions());
    await fencer.powerOn();
    assert.equal(await fencer.status(), 'on');
  };
  const offs = (): number => bmc.events().filter((e) => e.what === 'power' && e.value === 0).length;

  it('ipmi succeeds: level ipmi, one ok result, the later levels not tried, the BMC off and its events log shows the off', async () => {
    assert.equal(bmc.power(), 'on');
    const before = bmc.events().length;
    const fx = effects();
    const outcome = await runLevels('hv3', settings({ ipmi: ipmi(), command: { argv: ['/bin/false'] }, storage: {} }), '192.0.2.3', fx, now);
    assert.equal(outcome.level, 'ipmi');
    assert.deepEqual(shape(outcome), ['ipmi:ok']);
    assert.equal(outcome.results[0]!.message, `power off verified through ${bmc.address}:${bmc.port}`);
    assert.ok(!('blocklist' in outcome));
    assert.equal(bmc.power(), 'off');
    await waitFor('the off in the BMC events log', () => bmc.events().slice(before).some((e) => e.what === 'power' && e.value === 0 && !e.ignored), 2000);
    assert.deepEqual(fx.actions, [`fence hv3: ipmi succeeded: power off verified through ${bmc.address}:${bmc.port}`]);
    assert.deepEqual(fx.logLines, []);
    check(outcome, fx, [PASSWORD]);
    await powerOn();
  });

  it('ipmi with powerOnAfter (the daemon\'s wiring): off, verified, then on again', async () => {
    const before = bmc.events().length;
    const fx = effects();
    const outcome = await runLevels('hv3', settings({ ipmi: ipmi({ powerOnAfter: true }) }), undefined, fx, now);
    assert.equal(outcome.level, 'ipmi');
    assert.deepEqual(shape(outcome), ['ipmi:ok']);
    await waitFor('off then on in the BMC events log', () => bmc.events().slice(before).filter((e) => e.what === 'power').length >= 2, 2000);
    assert.deepEqual(bmc.events().slice(before).map((e) => `${e.what} ${e.value}`), ['power 0', 'power 1']);
    assert.equal(bmc.power(), 'on');
    check(outcome, fx, [PASSWORD]);
  });

  it('a wrong password: ipmi FenceAuthFailed, then command [/bin/true] succeeds: level command, results in order; the BMC untouched', async () => {
    const offsBefore = offs();
    const fx = effects();
    const outcome = await runLevels('hv3', settings({ ipmi: ipmi({ password: WRONG, retries: 3 }), command: { argv: ['/bin/true'] } }), undefined, fx, now);
    assert.equal(outcome.level, 'command');
    assert.deepEqual(shape(outcome), ['ipmi:FenceAuthFailed', 'command:ok']);
    assert.equal(outcome.results[0]!.ok, false);
    assert.match(outcome.results[0]!.message, /refused the user or password/);
    assert.match(outcome.results[0]!.message, /\(attempt 1 of 4\)$/, 'a refused password is not retried');
    assert.deepEqual(fx.actions.map((a) => a.split(':')[1]!.trim()), ['ipmi failed (FenceAuthFailed)', 'command succeeded']);
    assert.equal(bmc.power(), 'on');
    assert.equal(offs(), offsBefore);
    check(outcome, fx, [WRONG, PASSWORD]);
  });

  it('every level fails: ipmi (wrong password), command [/bin/false], storage (no Ceph) — tried in that order, no level', async () => {
    const fx = effects();
    const outcome = await runLevels('hv3', settings({ storage: {}, command: { argv: ['/bin/false'] }, ipmi: ipmi({ password: WRONG }) }), '192.0.2.3', fx, now);
    assert.equal(outcome.level, undefined);
    assert.deepEqual(shape(outcome), ['ipmi:FenceAuthFailed', 'command:FenceCommandFailed', 'storage:StorageUnavailable']);
    assert.ok(!('blocklist' in outcome));
    assert.equal(fx.actions.length, 3);
    assert.equal(fx.logLines.length, 3);
    assert.equal(bmc.power(), 'on');
    check(outcome, fx, [WRONG, PASSWORD]);
  });

  it('a dead BMC: FenceUnreachable within its timeout, and the command level still runs', async () => {
    await bmc.kill();
    const fx = effects();
    const t0 = Date.now();
    const outcome = await runLevels('hv3', settings({ ipmi: ipmi({ timeoutMs: 300, retries: 0 }), command: { argv: ['/bin/true'] } }), undefined, fx, now);
    const ms = Date.now() - t0;
    assert.equal(outcome.level, 'command');
    assert.deepEqual(shape(outcome), ['ipmi:FenceUnreachable', 'command:ok']);
    assert.match(outcome.results[0]!.message, /did not answer/);
    assert.ok(ms < 4000, `took ${ms} ms`);
    assert.ok(outcome.results[0]!.ms >= 250, `ipmi gave up after ${outcome.results[0]!.ms} ms`);
    check(outcome, fx, [PASSWORD]);
    const alone = await runLevels('hv3', settings({ ipmi: ipmi({ timeoutMs: 300, retries: 0 }) }), undefined, effects(), now);
    assert.equal(alone.level, undefined);
    assert.deepEqual(shape(alone), ['ipmi:FenceUnreachable']);
  });
});
