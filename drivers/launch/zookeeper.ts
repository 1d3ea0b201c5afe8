// How to run a ZooKeeper server of the Debian package on 127.0.0.1 (DESIGN §5): write its zoo.cfg
// and log4j.properties into a directory, the JVM's command line, and how to tell that it serves.
// The sandbox (drivers/sandbox/zookeeper.ts) starts it detached; the test rig
// (test/rig/zookeeper.ts) starts standalone servers and ensembles attached, under pdeathsig.
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { createConnection, createServer, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import { tailFile, waitServing, type LaunchSpec } from './process.ts';

export const JAVA = '/usr/bin/java';
const SHARE = '/usr/share/java';
export const ZK_JAR = `${SHARE}/zookeeper.jar`;
export const ZK_HOST = '127.0.0.1';

/** Resolves true when nothing listens on 127.0.0.1:port and we could bind it. */
export function portFree(port: number): Promise<boolean> {
  return new Promise((res) => {
    const s = createServer();
    s.once('error', () => res(false));
    s.listen({ port, host: ZK_HOST, exclusive: true }, () => s.close(() => res(true)));
  });
}

/** Distinct free loopback ports, all held open until every one is allocated. */
export async function freePorts(n: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from({ length: n }, () => new Promise<ReturnType<typeof createServer>>((res, rej) => {
      const s = createServer();
      s.once('error', rej);
      s.listen(0, ZK_HOST, () => res(s));
    })),
  );
  const ports = servers.map((s) => (s.address() as AddressInfo).port);
  await Promise.all(servers.map((s) => new Promise<void>((res) => s.close(() => res()))));
  return ports;
}

/** `preferred` if free, else the next free one of the 50 after it, else any free port. */
export async function choosePort(preferred: number): Promise<number> {
  for (let p = preferred; p < preferred + 50; p++) if (await portFree(p)) return p;
  return (await freePorts(1))[0]!;
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

/** Serving: ruok answers imok (the process runs) and srvr reports a mode (it has a quorum / is standalone). */
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

export interface ZkQuorum {
  /** This server's id (its myid). */
  id: number;
  servers: ReadonlyArray<{ id: number; quorumPort: number; electionPort: number }>;
}

export interface ZkConfig {
  clientPort: number;
  tickTime: number;
  minSessionTimeoutMs: number;
  maxSessionTimeoutMs: number;
  forceSync: boolean;
  /** Keep this many snapshots and purge every `intervalHours`; without it autopurge is off. */
  autopurge?: { snapRetainCount: number; intervalHours: number };
  /** preAllocSize in KiB (ZooKeeper's default when absent). */
  preAllocKiB?: number;
  /** A member of an ensemble on loopback; standalone without it. */
  quorum?: ZkQuorum;
  /** A comment line at the top of zoo.cfg. */
  comment?: string;
}

export interface ZkFiles {
  dir: string;
  dataDir: string;
  cfgFile: string;
  /** What the server logs (log4j). */
  logFile: string;
  /** The JVM's stdout and stderr. */
  outFile: string;
}

/** The files of a server whose config, data and logs live in `dir`. */
export function zkFiles(dir: string): ZkFiles {
  return { dir, dataDir: join(dir, 'data'), cfgFile: join(dir, 'zoo.cfg'), logFile: join(dir, 'zookeeper.log'), outFile: join(dir, 'stdout.log') };
}

/** Writes zoo.cfg, log4j.properties (and myid in an ensemble) under dir, with dir/data as dataDir. */
export function writeZooKeeperConfig(dir: string, c: ZkConfig): ZkFiles {
  const f = zkFiles(dir);
  mkdirSync(f.dataDir, { recursive: true });
  const cfg = [
    ...(c.comment ? [`# ${c.comment}`] : []),
    `tickTime=${c.tickTime}`,
    'initLimit=10',
    'syncLimit=5',
    `dataDir=${f.dataDir}`,
    `clientPort=${c.clientPort}`,
    `clientPortAddress=${ZK_HOST}`,
    `minSessionTimeout=${c.minSessionTimeoutMs}`,
    `maxSessionTimeout=${c.maxSessionTimeoutMs}`,
    'admin.enableServer=false',
    '4lw.commands.whitelist=*',
    'maxClientCnxns=0',
    `forceSync=${c.forceSync ? 'yes' : 'no'}`,
    ...(c.preAllocKiB !== undefined ? [`preAllocSize=${c.preAllocKiB}`] : []),
    ...(c.autopurge ? [`autopurge.snapRetainCount=${c.autopurge.snapRetainCount}`, `autopurge.purgeInterval=${c.autopurge.intervalHours}`] : ['autopurge.purgeInterval=0']),
  ];
  if (c.quorum) {
    for (const s of c.quorum.servers) cfg.push(`server.${s.id}=${ZK_HOST}:${s.quorumPort}:${s.electionPort}`);
    cfg.push('standaloneEnabled=false', 'quorumListenOnAllIPs=false', 'cnxTimeout=500');
    writeFileSync(join(f.dataDir, 'myid'), `${c.quorum.id}\n`);
  }
  writeFileSync(f.cfgFile, cfg.join('\n') + '\n');
  writeFileSync(join(dir, 'log4j.properties'), zkLog4jProperties(f.logFile));
  return f;
}

/** The JVM running the server configured in f.dir (writeZooKeeperConfig first). */
export function zooKeeperCommand(f: ZkFiles): LaunchSpec {
  return {
    argv: [
      JAVA,
      '-Xms32m', '-Xmx256m', '-XX:+UseSerialGC', '-XX:-UsePerfData', '-Djava.awt.headless=true',
      `-Dlog4j.configuration=file:${join(f.dir, 'log4j.properties')}`,
      '-Dzookeeper.jmx.log4j.disable=true',
      `-Dzookeeper.log.dir=${f.dir}`,
      '-cp', zkClasspath(f.dir),
      'org.apache.zookeeper.server.quorum.QuorumPeerMain', f.cfgFile,
    ],
    logFile: f.outFile,
    cwd: f.dir,
  };
}

export interface ZkWait {
  what?: string;
  /** Undefined while the JVM lives; else how it ended. */
  exited: () => string | undefined;
  timeoutMs: number;
  pollMs: number;
}

/** Resolves once the server on `port` serves (zkServing); throws when it exits first or in time. */
export function waitZooKeeper(f: ZkFiles, port: number, w: ZkWait): Promise<void> {
  return waitServing({
    what: `${w.what ?? 'ZooKeeper'} on ${ZK_HOST}:${port}`,
    exited: w.exited,
    serving: () => zkServing(port),
    timeoutMs: w.timeoutMs,
    pollMs: w.pollMs,
    logs: () => [tailFile(f.outFile, 30), tailFile(f.logFile, 30)].filter((s) => s !== '').join('\n'),
  });
}
