// manifests/zookeeper/zoo.cfg, the production ensemble config, forms a quorum as written: the
// three servers run from it on loopback, with only hosts, ports and directories rewritten.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, openSync, closeSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fourLetter, ZK_JAR } from '../../drivers/launch/zookeeper.ts';
import { waitFor } from '../rig/wait.ts';
import { freePorts } from '../rig/zookeeper.ts';
import { REPO } from './helpers.ts';

test('the 3-server ensemble of manifests/zookeeper/zoo.cfg elects a leader and serves', { timeout: 120_000, skip: existsSync(ZK_JAR) ? undefined : 'ZooKeeper is not installed' }, async () => {
  const original = readFileSync(join(REPO, 'manifests/zookeeper/zoo.cfg'), 'utf8');
  const ports = await freePorts(9);
  const work = mkdtempSync(join(tmpdir(), 'vk-zkcfg-'));
  const children: ChildProcess[] = [];
  try {
    for (let id = 1; id <= 3; id++) {
      const dir = join(work, `zk${id}`);
      mkdirSync(join(dir, 'log'), { recursive: true });
      writeFileSync(join(dir, 'myid'), `${id}\n`);
      let cfg = original
        .replace(/^dataDir=.*$/m, `dataDir=${dir}`)
        .replace(/^dataLogDir=.*$/m, `dataLogDir=${dir}/log`)
        .replace(/^clientPort=.*$/m, `clientPort=${ports[id - 1]}\nclientPortAddress=127.0.0.1`)
        .replace(/^forceSync=.*$/m, 'forceSync=no');
      for (let s = 1; s <= 3; s++) {
        cfg = cfg.replace(new RegExp(`^server\\.${s}=.*$`, 'm'), `server.${s}=127.0.0.1:${ports[2 + s]}:${ports[5 + s]}`);
      }
      writeFileSync(join(dir, 'zoo.cfg'), cfg);
      const out = openSync(join(dir, 'out.log'), 'a');
      const child = spawn('/usr/bin/java', ['-Xmx128m', '-XX:+UseSerialGC', '-cp', `${dir}:${ZK_JAR}`, 'org.apache.zookeeper.server.quorum.QuorumPeerMain', join(dir, 'zoo.cfg')], {
        stdio: ['ignore', out, out],
      });
      closeSync(out);
      children.push(child);
    }
    const modes: string[] = [];
    const deadline = Date.now() + 60_000;
    for (let id = 1; id <= 3; id++) {
      const mode = await waitFor(
        `server ${id} to join a quorum`,
        async () => {
          const srvr = await fourLetter(ports[id - 1]!, 'srvr', 1000).catch(() => '');
          const m = /^Mode: (\w+)/m.exec(srvr)?.[1];
          return m === 'leader' || m === 'follower' ? m : undefined;
        },
        deadline - Date.now(),
        () => readFileSync(join(work, `zk${id}`, 'out.log'), 'utf8').slice(-2000),
      );
      modes.push(mode);
    }
    assert.deepEqual(modes.sort(), ['follower', 'follower', 'leader']);
  } finally {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    await Promise.all(children.map((c) => (c.exitCode !== null || c.signalCode !== null ? undefined : new Promise((r) => c.once('exit', r)))));
    rmSync(work, { recursive: true, force: true });
  }
});
