// The sandbox's ZooKeeper: one standalone server of the Debian package on 127.0.0.1, started
// detached (it outlives `vk sandbox up`), config, data and logs under DIR/zookeeper.
// Same start recipe as the test rig (test/rig/zookeeper.ts, DESIGN §5), without its exit handlers.
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { createConnection, createServer } from 'node:net';
import { join } from 'node:path';
import { sleep, spawnDetached, isAlive, tailFile, type ProcRef } from './proc.ts';

const JAVA = '/usr/bin/java';
const SHARE = '/usr/share/java';
const ZK_JAR = `${SHARE}/zookeeper.jar`;
export const ZK_HOST = '127.0.0.1';

/** Resolves true when nothing listens on 127.0.0.1:port and we could bind it. */
export function portFree(port: number): Promise<boolean> {
  return new Promise((res) => {
    const s = createServer();
    s.once('error', () => res(false));
    s.listen({ port, host: ZK_HOST, exclusive: true }, () => s.close(() => res(true)));
  });
}

/** `preferred` if free, else the next free one of the 50 after it, else any free port. */
export async function choosePort(preferred: number): Promise<number> {
  for (let p = preferred; p < preferred + 50; p++) if (await portFree(p)) return p;
  return new Promise((res, rej) => {
    const s = createServer();
    s.once('error', rej);
    s.listen(0, ZK_HOST, () => {
      const addr = s.address();
      s.close(() => res(typeof addr === 'object' && addr ? addr.port : 0));
    });
  });
}

/** A four-letter-word command (ruok, srvr, mntr, …) over TCP. */
export function fourLetter(port: number, cmd: string, timeoutMs = 2000): Promise<string> {
  return new Promise((res, rej) => {
    const sock = createConnection({ host: ZK_HOST, port });
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => {
      sock.destroy();
      rej(new Error(`4lw ${cmd} on ${port}: timeout`));
    }, timeoutMs);
    sock.on('connect', () => sock.write(cmd));
    sock.on('data', (c) => chunks.push(c));
    sock.on('error', (e) => {
      clearTimeout(timer);
      rej(e);
    });
    sock.on('close', () => {
      clearTimeout(timer);
      res(Buffer.concat(chunks).toString('utf8'));
    });
  });
}

/** Serving: ruok answers imok and srvr reports a mode. */
export async function zkServing(port: number): Promise<boolean> {
  try {
    if ((await fourLetter(port, 'ruok', 1000)) !== 'imok') return false;
    return /^Mode: /m.test(await fourLetter(port, 'srvr', 1000));
  } catch {
    return false;
  }
}

/**
 * zookeeper.jar's manifest Class-Path brings slf4j-api, netty, jute, metrics, …; a log4j binding
 * is added so the server logs to our file instead of printing the SLF4J "NOP" warning.
 */
export function zkClasspath(dir: string): string {
  const parts = [dir, ZK_JAR];
  for (const jar of ['slf4j-log4j12.jar', 'log4j-1.2.jar']) if (existsSync(`${SHARE}/${jar}`)) parts.push(`${SHARE}/${jar}`);
  return parts.join(':');
}

/** log4j.properties sending everything the server logs to `logFile`. */
export function zkLog4jProperties(logFile: string): string {
  return [
    'log4j.rootLogger=INFO, F',
    'log4j.appender.F=org.apache.log4j.FileAppender',
    `log4j.appender.F.File=${logFile}`,
    'log4j.appender.F.layout=org.apache.log4j.PatternLayout',
    'log4j.appender.F.layout.ConversionPattern=%d{ISO8601} %-5p [%t:%C{1}@%L] - %m%n',
    '',
  ].join('\n');
}

export interface ZkLaunch {
  proc: ProcRef;
  logFile: string;
}

/** Writes zoo.cfg and log4j.properties under dir and starts the JVM; call waitZooKeeper next. */
export function launchZooKeeper(dir: string, port: number): ZkLaunch {
  const dataDir = join(dir, 'data');
  mkdirSync(dataDir, { recursive: true });
  const logFile = join(dir, 'zookeeper.log');
  const cfgFile = join(dir, 'zoo.cfg');
  writeFileSync(
    cfgFile,
    [
      '# virtkeeper sandbox: one standalone server on loopback (see manifests/zookeeper/ for production)',
      'tickTime=500',
      'initLimit=10',
      'syncLimit=5',
      `dataDir=${dataDir}`,
      `clientPort=${port}`,
      `clientPortAddress=${ZK_HOST}`,
      'minSessionTimeout=1000',
      'maxSessionTimeout=60000',
      'admin.enableServer=false',
      '4lw.commands.whitelist=*',
      'maxClientCnxns=0',
      'forceSync=no',
      'autopurge.snapRetainCount=3',
      'autopurge.purgeInterval=1',
      '',
    ].join('\n'),
  );
  writeFileSync(join(dir, 'log4j.properties'), zkLog4jProperties(logFile));
  const proc = spawnDetached(
    [
      JAVA,
      '-Xms32m', '-Xmx256m', '-XX:+UseSerialGC', '-XX:-UsePerfData', '-Djava.awt.headless=true',
      `-Dlog4j.configuration=file:${join(dir, 'log4j.properties')}`,
      '-Dzookeeper.jmx.log4j.disable=true',
      `-Dzookeeper.log.dir=${dir}`,
      '-cp', zkClasspath(dir),
      'org.apache.zookeeper.server.quorum.QuorumPeerMain', cfgFile,
    ],
    { logFile: join(dir, 'stdout.log'), cwd: dir },
  );
  return { proc, logFile };
}

export async function waitZooKeeper(launch: ZkLaunch, port: number, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (!isAlive(launch.proc)) {
      throw new Error(`ZooKeeper exited during start:\n${tailFile(launch.logFile)}\n${tailFile(join(launch.logFile, '..', 'stdout.log'))}`);
    }
    if (await zkServing(port)) return;
    await sleep(100);
  }
  throw new Error(`ZooKeeper not serving on ${ZK_HOST}:${port} after ${timeoutMs} ms:\n${tailFile(launch.logFile)}`);
}
