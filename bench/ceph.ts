// bench/ceph: the throwaway Ceph 16 of the rig and the sandbox (drivers/launch/ceph.ts) and the
// RBD driver's calls on it. `npm run bench -- ceph [ROUNDS]` prints
//
//   - start to usable (`rbd pool init` done), per round and the median, with the steps of the
//     last round; each round is a fresh Ceph in a fabric namespace on 198.51.100.254;
//   - the RSS of ceph-mon and ceph-osd once usable, and after the calls below;
//   - the wall time of one driver call from a node namespace (198.51.100.1): `rbd lock ls` and
//     `rbd status` (median and p90 of 20 each, one at a time), `ceph osd blocklist ls` (of 10);
//   - as its last line, one JSON object with those figures.
import { readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { ip } from '../drivers/launch/netns.ts';
import { createRbdDriver } from '../drivers/rbd/index.ts';
import { cephInstalled, startCephRig, type CephRig } from '../test/rig/ceph.ts';
import { createFabric } from '../test/rig/netns.ts';

const ROUNDS = Number(process.argv[2] ?? 5);
const MON_ADDRESS = '198.51.100.254';

const why = cephInstalled();
if (why) throw new Error(`bench/ceph needs Ceph: ${why}`);

const sorted = (xs: number[]) => [...xs].sort((a, b) => a - b);
const median = (xs: number[]) => sorted(xs)[Math.floor(xs.length / 2)]!;
const p90 = (xs: number[]) => sorted(xs)[Math.min(xs.length - 1, Math.floor(xs.length * 0.9))]!;
const ms = (x: number) => `${x.toFixed(0)} ms`;

function rssKiB(pid: number): number {
  const m = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) : NaN;
}
const rssMiB = (c: CephRig) => ({ mon: rssKiB(c.pids.mon) / 1024, osd: rssKiB(c.pids.osd) / 1024 });
const shownRss = (r: { mon: number; osd: number }) => `ceph-mon ${r.mon.toFixed(1)} MiB + ceph-osd ${r.osd.toFixed(1)} MiB = ${(r.mon + r.osd).toFixed(1)} MiB`;
const round1 = (x: number) => Math.round(x * 10) / 10;

async function timed(n: number, call: () => Promise<unknown>): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    await call();
    out.push(performance.now() - t0);
  }
  return out;
}

const fabric = createFabric(1);
let ceph: CephRig | undefined;
try {
  ip('-n', fabric.fabricNs, 'addr', 'add', `${MON_ADDRESS}/24`, 'dev', 'br0');
  const starts: number[] = [];
  let steps: string[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    await ceph?.cleanup();
    steps = [];
    const t0 = performance.now();
    ceph = await startCephRig({ netns: fabric.fabricNs, address: MON_ADDRESS, trace: (step, at) => steps.push(`${step} ${at}`) });
    starts.push(performance.now() - t0);
  }
  console.log(`start to usable: ${starts.map(ms).join(', ')} (median ${ms(median(starts))})`);
  console.log(`  steps of the last start (ms since its beginning): ${steps.join(', ')}`);
  const rssUsable = rssMiB(ceph!);
  console.log(`RSS once usable: ${shownRss(rssUsable)}`);

  await ceph!.createImage('rbd/bench');
  const rbd = createRbdDriver({ conf: ceph!.conf, netns: fabric.hosts[0]!.ns });
  await rbd.addLock('rbd/bench', 'bench');
  const locks = await timed(20, () => rbd.listLocks('rbd/bench'));
  const status = await timed(20, () => rbd.watchers('rbd/bench'));
  const blocklist = await timed(10, () => rbd.blocklistList());
  console.log(`rbd lock ls (one lock), 20 calls: median ${ms(median(locks))}, p90 ${ms(p90(locks))}`);
  console.log(`rbd status, 20 calls: median ${ms(median(status))}, p90 ${ms(p90(status))}`);
  console.log(`ceph osd blocklist ls, 10 calls: median ${ms(median(blocklist))}, p90 ${ms(p90(blocklist))}`);
  const rssAfter = rssMiB(ceph!);
  console.log(`RSS after the calls: ${shownRss(rssAfter)}`);
  console.log(
    JSON.stringify({
      startMs: starts.map(Math.round),
      startMedianMs: Math.round(median(starts)),
      rssMiB: { usable: { mon: round1(rssUsable.mon), osd: round1(rssUsable.osd) }, afterCalls: { mon: round1(rssAfter.mon), osd: round1(rssAfter.osd) } },
      lockLsMs: { median: round1(median(locks)), p90: round1(p90(locks)) },
      statusMs: { median: round1(median(status)), p90: round1(p90(status)) },
      blocklistLsMs: { median: round1(median(blocklist)), p90: round1(p90(blocklist)) },
    }),
  );
} finally {
  await ceph?.cleanup();
  fabric.cleanup();
}
