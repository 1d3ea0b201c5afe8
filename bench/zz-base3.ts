import { spawn } from 'node:child_process';
import { startZooKeeper } from '../test/rig/zookeeper.ts';
import { CLK_TCK, cpuTicks, stopByPid } from './lib/proc.ts';
const zk = await startZooKeeper();
try {
  const rawCode = (t: number) => `const z = (await import('node-zookeeper-client')).default; const c = z.createClient(process.argv[1], { sessionTimeout: ${t} }); c.connect(); c.once('connected', () => console.log('${t}: negotiated', c.getSessionTimeout ? c.getSessionTimeout() : '?')); setInterval(() => {}, 5000);`;
  const procs = {
    plain: spawn(process.execPath, ['-e', 'setInterval(() => {}, 5000)'], { stdio: 'inherit' }),
    raw4000: spawn(process.execPath, ['--input-type=module', '-e', rawCode(4000), zk.connectString], { stdio: 'inherit' }),
    rawprof: spawn(process.execPath, ['--cpu-prof', '--cpu-prof-dir=/tmp/prof2', '--input-type=module', '-e', rawCode(4000) + 'setTimeout(() => process.exit(0), 30000);', zk.connectString], { stdio: 'inherit' }),
  };
  await new Promise((r) => setTimeout(r, 5000));
  const t0 = Object.fromEntries(Object.entries(procs).map(([k, p]) => [k, cpuTicks(p.pid!)]));
  await new Promise((r) => setTimeout(r, 24000));
  for (const [k, p] of Object.entries(procs)) console.log(`${k}: ${((cpuTicks(p.pid!) - t0[k]!) / CLK_TCK / 24 * 100).toFixed(3)} %`);
  await new Promise((r) => setTimeout(r, 2000));
  for (const p of Object.values(procs)) await stopByPid(p);
} finally { await zk.cleanup(); }
