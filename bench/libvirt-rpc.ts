// Median latency of DOMAIN_GET_STATE over virtkeeper's RPC client against a `virsh domstate`
// process, both talking to the same private libvirtd (test driver). DESIGN §6 target: ≥ 100×.

import { spawnSync } from 'node:child_process';
import { LibvirtConnection } from '../drivers/libvirt/index.ts';
import { startLibvirtd } from '../test/rig/libvirtd.ts';

const RPC_CALLS = 2000;
const RPC_WARMUP = 200;
const VIRSH_RUNS = 30;
const PIPELINED = 2000;

const quantile = (xs: number[], q: number): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))]!;
};
const ms = (ns: bigint): number => Number(ns) / 1e6;
const fmt = (x: number): string => x.toFixed(3);

const lv = await startLibvirtd({ name: 'vk-bench' });
let conn: LibvirtConnection | undefined;
try {
  conn = await LibvirtConnection.open({ target: { path: lv.socketPath }, uri: 'test:///default' });
  const name = 'bench-vm';
  const dom = await conn.domainDefineXmlFlags(
    `<domain type='test'><name>${name}</name><memory unit='MiB'>64</memory><os><type>hvm</type></os></domain>`,
  );
  await conn.domainCreate(dom);

  for (let i = 0; i < RPC_WARMUP; i++) await conn.domainGetState(dom);
  const rpc: number[] = [];
  for (let i = 0; i < RPC_CALLS; i++) {
    const t0 = process.hrtime.bigint();
    const st = await conn.domainGetState(dom);
    rpc.push(ms(process.hrtime.bigint() - t0));
    if (st.stateName !== 'running') throw new Error(`unexpected state ${st.stateName}`);
  }

  const t0 = process.hrtime.bigint();
  await Promise.all(Array.from({ length: PIPELINED }, () => conn!.domainGetState(dom)));
  const pipelinedMs = ms(process.hrtime.bigint() - t0);

  const uri = lv.virshUri('test');
  const virsh: number[] = [];
  for (let i = 0; i < VIRSH_RUNS; i++) {
    const v0 = process.hrtime.bigint();
    const r = spawnSync('virsh', ['-c', uri, 'domstate', name], { encoding: 'utf8' });
    virsh.push(ms(process.hrtime.bigint() - v0));
    if (r.status !== 0 || !r.stdout.includes('running')) throw new Error(`virsh failed: ${r.stderr || r.stdout}`);
  }

  const rpcMedian = quantile(rpc, 0.5);
  const virshMedian = quantile(virsh, 0.5);
  const ratio = virshMedian / rpcMedian;
  console.log(`DOMAIN_GET_STATE over RPC client: median ${fmt(rpcMedian)} ms, p99 ${fmt(quantile(rpc, 0.99))} ms (${RPC_CALLS} sequential calls)`);
  console.log(`  pipelined: ${PIPELINED} concurrent calls in ${fmt(pipelinedMs)} ms (${Math.round(PIPELINED / (pipelinedMs / 1000))} calls/s)`);
  console.log(`virsh domstate process:           median ${fmt(virshMedian)} ms, p99 ${fmt(quantile(virsh, 0.99))} ms (${VIRSH_RUNS} runs)`);
  console.log(`ratio virsh / RPC: ${ratio.toFixed(1)}× (target ≥ 100×)`);
  console.log(
    JSON.stringify({
      bench: 'libvirt-rpc',
      rpc_median_ms: Number(rpcMedian.toFixed(4)),
      virsh_median_ms: Number(virshMedian.toFixed(3)),
      ratio: Number(ratio.toFixed(1)),
    }),
  );
} finally {
  await conn?.close();
  await lv.cleanup();
}
