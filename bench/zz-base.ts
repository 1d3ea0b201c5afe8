import { spawn } from 'node:child_process';
import { startZooKeeper } from '../test/rig/zookeeper.ts';
import { CLK_TCK, cpuTicks, stopByPid } from './lib/proc.ts';
const zk = await startZooKeeper();
try {
  const code = `const m = await import(${JSON.stringify(new URL('../drivers/zk/index.ts', import.meta.url).href)}); const s = await m.ZkStore.connect({ connectString: process.argv[1], sessionTimeoutMs: 10000 }); setInterval(() => {}, 5000);`;
  const plain = spawn(process.execPath, ['-e', 'setInterval(() => {}, 5000)'], { stdio: 'inherit' });
  const withZk = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', code, zk.connectString], { stdio: 'inherit' });
  await new Promise((r) => setTimeout(r, 5000));
  const a0 = cpuTicks(plain.pid!), b0 = cpuTicks(withZk.pid!);
  await new Promise((r) => setTimeout(r, 30000));
  console.log(`plain node: ${((cpuTicks(plain.pid!) - a0) / CLK_TCK / 30 * 100).toFixed(3)} %, node + ZkStore session: ${((cpuTicks(withZk.pid!) - b0) / CLK_TCK / 30 * 100).toFixed(3)} %`);
  await stopByPid(plain); await stopByPid(withZk);
} finally { await zk.cleanup(); }
