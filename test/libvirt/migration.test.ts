// Live migration of a diskless TCG guest between two private libvirtds in separate network
// namespaces joined by a veth pair (198.51.100.1 ↔ 198.51.100.2), then an aborted migration.

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { filter, firstValueFrom, timeout } from 'rxjs';
import {
  DomainState,
  ErrorCode,
  JobType,
  LibvirtConnection,
  LibvirtError,
  migrateParams,
  MigrateFlags,
  type Domain,
  type LifecycleEvent,
} from '../../drivers/libvirt/index.ts';
import { ensureLibvirtInstalled, guestXml, qemuAvailable, startLibvirtd, type Libvirtd } from '../rig/libvirtd.ts';
import { createNetnsPair, netnsSupported, type NetnsPair } from '../rig/netns.ts';
import { waitFor } from '../rig/wait.ts';


const P2P_LIVE = MigrateFlags.LIVE | MigrateFlags.PEER2PEER | MigrateFlags.PERSIST_DEST | MigrateFlags.UNDEFINE_SOURCE;

function nextEvent(conn: LibvirtConnection, name: string, eventName: string, ms = 60_000): Promise<LifecycleEvent> {
  return firstValueFrom(
    conn.lifecycle$.pipe(
      filter((e) => e.domain.name === name && e.eventName === eventName),
      timeout(ms),
    ),
  );
}

async function assertAbsent(conn: LibvirtConnection, name: string): Promise<void> {
  await assert.rejects(conn.domainLookupByName(name), (e) => e instanceof LibvirtError && e.code === ErrorCode.NO_DOMAIN);
  assert.ok(!(await conn.connectListAllDomains()).some((d) => d.name === name), `${name} still listed`);
}

test('QEMU live migration between two private libvirtds', { timeout: 240_000 }, async (t) => {
  ensureLibvirtInstalled();
  if (!qemuAvailable()) {
    console.error('!!! SKIPPING QEMU migration test: /usr/bin/qemu-system-x86_64 is missing (install qemu-system-x86) !!!');
    t.skip('qemu-system-x86_64 missing');
    return;
  }
  if (!netnsSupported()) {
    console.error('!!! SKIPPING QEMU migration test: `ip netns` is not usable here (needs root and iproute2) !!!');
    t.skip('ip netns unavailable');
    return;
  }

  const work = mkdtempSync(join(tmpdir(), 'vk-migration-'));
  const blob = join(work, 'ram.bin');
  writeFileSync(blob, randomBytes(8 * 1024 * 1024));
  let pair: NetnsPair | undefined;
  let hva: Libvirtd | undefined;
  let hvb: Libvirtd | undefined;
  let ca: LibvirtConnection | undefined;
  let cb: LibvirtConnection | undefined;
  try {
    pair = createNetnsPair();
    [hva, hvb] = await Promise.all([startLibvirtd({ name: 'hva', netns: pair.a.ns }), startLibvirtd({ name: 'hvb', netns: pair.b.ns })]);
    const open = (lv: Libvirtd): Promise<LibvirtConnection> =>
      LibvirtConnection.open({ target: { path: lv.socketPath }, uri: 'qemu:///system' }, 30_000);
    [ca, cb] = await Promise.all([open(hva), open(hvb)]);
    const a = ca;
    const b = cb;
    assert.equal(await a.connectGetHostname(), 'hva');
    assert.equal(await b.connectGetHostname(), 'hvb');

    const name = 'mig1';
    const onA = await a.domainDefineXmlFlags(guestXml(name, blob));
    await a.domainCreate(onA);
    assert.equal((await a.domainGetState(onA)).state, DomainState.RUNNING);

    await t.test('live-migrates with PERFORM3_PARAMS; the guest ends running on the destination only', async () => {
      const startedOnB = nextEvent(b, name, 'started');
      const stoppedOnA = nextEvent(a, name, 'stopped');
      await a.domainMigratePerform3Params(onA, `qemu+tcp://${pair!.b.addr}/system`, migrateParams({ uri: `tcp://${pair!.b.addr}` }), P2P_LIVE, {
        timeoutMs: 120_000,
      });
      const onB = await b.domainLookupByName(name);
      assert.equal(onB.uuid, onA.uuid);
      assert.equal((await b.domainGetState(onB)).state, DomainState.RUNNING);
      assert.equal((await startedOnB).detailName, 'migrated');
      assert.equal((await stoppedOnA).detailName, 'migrated');
      await assertAbsent(a, name);
    });

    await t.test('a 1 MiB/s migration seen running through GET_JOB_STATS is aborted with ABORT_JOB', async () => {
      const onB: Domain = await b.domainLookupByName(name);
      const migration = b
        .domainMigratePerform3Params(onB, `qemu+tcp://${pair!.a.addr}/system`, migrateParams({ uri: `tcp://${pair!.a.addr}`, bandwidthMiBs: 1 }), P2P_LIVE, {
          timeoutMs: 120_000,
        })
        .then(
          () => 'completed' as const,
          (e: unknown) => e,
        );

      // Poll the job on the same connection the migrate call is blocking.
      let polls = 0;
      await waitFor(
        'the migration job running',
        async () => {
          const job = await b.domainGetJobStats(onB);
          polls++;
          return (job.type === JobType.UNBOUNDED || job.type === JobType.BOUNDED) && Number(job.stats['memory_processed'] ?? 0) > 0;
        },
        10_000,
        () => `after ${polls} polls`,
      );
      assert.equal(await b.domainMigrateGetMaxSpeed(onB), 1n, 'the bandwidth parameter reached QEMU');
      await b.domainMigrateSetMaxDowntime(onB, 300);

      await b.domainAbortJob(onB);
      const outcome = await migration;
      assert.ok(outcome instanceof LibvirtError, `migration should fail after the abort, got ${String(outcome)}`);
      assert.equal(outcome.code, ErrorCode.OPERATION_ABORTED);

      assert.equal((await b.domainGetState(onB)).state, DomainState.RUNNING);
      await assertAbsent(a, name);
      const after = await b.domainGetJobStats(onB);
      assert.equal(after.type, JobType.NONE);
    });

    await b.domainDestroy(await b.domainLookupByName(name));
  } finally {
    await ca?.close();
    await cb?.close();
    await hva?.cleanup();
    await hvb?.cleanup();
    pair?.cleanup();
    rmSync(work, { recursive: true, force: true });
  }
});
