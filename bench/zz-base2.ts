import { spawn } from 'node:child_process';
import { startZooKeeper } from '../test/rig/zookeeper.ts';
import { CLK_TCK, cpuTicks, stopByPid } from './lib/proc.ts';
const zk = await startZooKeeper();
try {
  const mk = (opts: string) => `const m = await import(${JSON.stringify(new URL('../drivers/zk/index.ts', import.meta.url).href)}); const s = await m.ZkStore.connect({ connectString: process.argv[1], ${opts} }); setInterval(() => {}, 5000);`;
  const rawCode = `const z = (await import('node-zookeeper-client')).default; const c = z.createClient(process.argv[1], { sessionTimeout: 10000 }); c.connect(); setInterval(() => {}, 5000);`;
  const procs = {
    zkstore: spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', mk('sessionTimeoutMs: 10000'), zk.connectString], { stdio: 'inherit' }),
    raw: spawn(process.execPath, ['--input-type=module', '-e', rawCode, zk.connectString], { stdio: 'inherit', cwd: process.cwd() }),
    tsxOnly: spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', 'setInterval(() => {}, 5000)'], { stdio: 'inherit' }),
  };
  await new Promise((r) => setTimeout(r, 5000));
  const t0 = Object.fromEntries(Object.entries(procs).map(([k, p]) => [k, cpuTicks(p.pid!)]));
  await new Promise((r) => setTimeout(r, 30000));
  for (const [k, p] of Object.entries(procs)) console.log(`${k}: ${((cpuTicks(p.pid!) - t0[k]!) / CLK_TCK / 30 * 100).toFixed(3)} %`);
  for (const p of Object.values(procs)) await stopByPid(p);
} finally { await zk.cleanup(); }
