// fence: what the IPMI fence level costs against a real BMC simulator (ipmi_sim on loopback,
// test/rig/bmc.ts): the BMC's start, one `ipmitool … chassis power status` round trip through the
// driver (process start included), a full verified power off (off + status reads until "off",
// power back on between rounds, not timed), the power hook's delay after the off, and the time a
// wrong password and a dead BMC take to be reported (FenceAuthFailed / FenceUnreachable).
// Usage: npm run bench -- fence [ROUNDS]   (default 20)
import { createIpmiFencer, FenceError } from '../drivers/fence/index.ts';
import { startBmcRig, type BmcEvent } from '../test/rig/bmc.ts';
import { describe, nsToMs, round3, summarize } from './lib/stats.ts';

const ROUNDS = Number(process.argv[2] ?? 20);
const now = (): bigint => process.hrtime.bigint();

const t0 = now();
const bmc = await startBmcRig({ name: 'bench' });
const startMs = nsToMs(now() - t0);
try {
  const rss = Number(/VmRSS:\s+(\d+)/.exec((await import('node:fs')).readFileSync(`/proc/${bmc.pid}/status`, 'utf8'))?.[1] ?? NaN) / 1024;
  console.log(`ipmi_sim ready in ${round3(startMs)} ms (bound and answering), RSS ${round3(rss)} MiB`);
  const f = createIpmiFencer({ ...bmc.fenceOptions(), verifyIntervalMs: 50 });
  const status: number[] = [];
  for (let i = 0; i < ROUNDS * 2; i++) {
    const t = now();
    await f.status();
    status.push(nsToMs(now() - t));
  }
  const st = summarize(status);
  console.log(describe('status round trip', st));

  let lastOff: BmcEvent | undefined;
  bmc.onPowerChange((e) => {
    if (e.value === 0) lastOff = e;
  });
  const off: number[] = [];
  const hook: number[] = [];
  for (let i = 0; i < ROUNDS; i++) {
    lastOff = undefined;
    const startedAt = Date.now();
    const t = now();
    await f.powerOff();
    off.push(nsToMs(now() - t));
    const hooked = lastOff as BmcEvent | undefined;
    if (hooked) hook.push(hooked.at - startedAt);
    await f.powerOn();
  }
  const o = summarize(off);
  console.log(describe('verified power off', o));
  const h = summarize(hook);
  console.log(describe('powerOff() call → BMC set power 0', h));

  const timed = async (fn: () => Promise<unknown>): Promise<{ ms: number; reason: string }> => {
    const t = now();
    try {
      await fn();
      return { ms: nsToMs(now() - t), reason: 'ok' };
    } catch (e) {
      return { ms: nsToMs(now() - t), reason: e instanceof FenceError ? e.reason : String(e) };
    }
  };
  const auth = await timed(() => createIpmiFencer({ ...bmc.fenceOptions(), password: 'wrong-one' }).status());
  console.log(`wrong password: ${auth.reason} in ${round3(auth.ms)} ms`);
  await bmc.kill();
  const dead = await timed(() => createIpmiFencer({ ...bmc.fenceOptions(), timeoutMs: 2000, retries: 1 }).status());
  console.log(`dead BMC (timeoutMs 2000, retries 1): ${dead.reason} in ${round3(dead.ms)} ms`);
  console.log(
    JSON.stringify({
      bench: 'fence',
      rounds: ROUNDS,
      bmc_start_ms: round3(startMs),
      status_p50_ms: round3(st.p50),
      status_p99_ms: round3(st.p99),
      power_off_verified_p50_ms: round3(o.p50),
      power_off_verified_max_ms: round3(o.max),
      auth_failed_ms: round3(auth.ms),
      unreachable_ms: round3(dead.ms),
    }),
  );
} finally {
  await bmc.cleanup();
}
