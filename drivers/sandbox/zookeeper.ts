// The sandbox's ZooKeeper: one standalone server of the Debian package on 127.0.0.1, started
// detached (it outlives `vk sandbox up`), config, data and logs under DIR/zookeeper. The recipe
// (config, command line, readiness) is drivers/launch/zookeeper.ts, shared with the test rig.
import { isAlive, spawnDetached, type ProcRef } from '../launch/process.ts';
import { waitZooKeeper as waitServing, writeZooKeeperConfig, zooKeeperCommand, type ZkFiles } from '../launch/zookeeper.ts';

export { choosePort, fourLetter, portFree, ZK_HOST, zkServing } from '../launch/zookeeper.ts';

export interface ZkLaunch {
  proc: ProcRef;
  files: ZkFiles;
}

/** Writes zoo.cfg and log4j.properties under dir and starts the JVM detached; call waitZooKeeper next. */
export function launchZooKeeper(dir: string, port: number): ZkLaunch {
  const files = writeZooKeeperConfig(dir, {
    comment: 'virtkeeper sandbox: one standalone server on loopback (see manifests/zookeeper/ for production)',
    clientPort: port,
    tickTime: 500,
    minSessionTimeoutMs: 1000,
    maxSessionTimeoutMs: 60000,
    forceSync: false,
    autopurge: { snapRetainCount: 3, intervalHours: 1 },
  });
  return { proc: spawnDetached(zooKeeperCommand(files)), files };
}

export function waitZooKeeper(launch: ZkLaunch, port: number, timeoutMs = 60_000): Promise<void> {
  return waitServing(launch.files, port, { exited: () => (isAlive(launch.proc) ? undefined : 'exited'), timeoutMs, pollMs: 100 });
}
