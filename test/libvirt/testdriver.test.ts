// The client against a real private libvirtd running the test driver (test:///default), with one
// connection held open for the whole file (the test driver's state resets when the last one closes).

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { filter, firstValueFrom, type Observable, take, timeout, toArray } from 'rxjs';
import {
  DomainState,
  ErrorCode,
  isLibvirtError,
  LibvirtConnection,
  LibvirtConnectionError,
  LibvirtError,
  ListDomainsFlags,
  MemoryStatTag,
  type ConnectionState,
  type LifecycleEvent,
} from '../../drivers/libvirt/index.ts';
import { startLibvirtd, type Libvirtd } from '../rig/libvirtd.ts';
import { waitFor } from '../rig/wait.ts';

const xml = (name: string): string =>
  `<domain type='test'><name>${name}</name><memory unit='MiB'>64</memory><vcpu>1</vcpu><os><type arch='x86_64'>hvm</type></os></domain>`;

/** Resolves with the next lifecycle event of `name`; subscribe before acting. */
function nextEvent(events: Observable<LifecycleEvent>, name: string, ms = 10_000): Promise<LifecycleEvent> {
  return firstValueFrom(
    events.pipe(
      filter((e) => e.domain.name === name),
      timeout(ms),
    ),
  );
}

function waitState(conn: LibvirtConnection, state: ConnectionState, ms = 20_000): Promise<ConnectionState> {
  return firstValueFrom(
    conn.state$.pipe(
      filter((s) => s === state),
      timeout(ms),
    ),
  );
}

describe('libvirt client against libvirtd (test driver)', { timeout: 120_000 }, () => {
  let lv: Libvirtd;
  let conn: LibvirtConnection;

  before(async () => {
    lv = await startLibvirtd({ name: 'vk-testdrv' });
    conn = await LibvirtConnection.open({
      target: { path: lv.socketPath },
      uri: 'test:///default',
      reconnect: { initialDelayMs: 50, maxDelayMs: 500 },
    });
  });

  after(async () => {
    await conn?.close();
    await lv?.cleanup();
  });

  it('opens the connection and reads host facts', async () => {
    assert.equal(conn.state, 'connected');
    assert.equal(await conn.connectGetHostname(), 'vk-testdrv'); // the rig's UTS namespace
    const node = await conn.nodeGetInfo();
    assert.equal(node.cpus, 16); // the test driver's fixed host
    assert.ok(node.memoryKiB > 0);
    const all = await conn.connectListAllDomains();
    assert.deepEqual(
      all.map((d) => d.name),
      ['test'],
    );
  });

  it('define → start → suspend → resume → shutdown → start → destroy → undefine, one lifecycle event per step', async () => {
    const name = 'life1';
    const seen: LifecycleEvent[] = [];
    const sub = conn.lifecycle$.pipe(filter((e) => e.domain.name === name)).subscribe((e) => seen.push(e));
    try {
      // NUM_OF_DOMAINS counts the active domains (running or paused), as the active listing does.
      const active = await conn.connectNumOfDomains();
      assert.equal(active, (await conn.connectListAllDomains(ListDomainsFlags.ACTIVE)).length);
      let ev = nextEvent(conn.lifecycle$, name);
      const d = await conn.domainDefineXmlFlags(xml(name));
      assert.equal(await conn.connectNumOfDomains(), active, 'a defined domain is not active');
      assert.equal(d.name, name);
      assert.equal(d.id, -1);
      assert.equal((await ev).eventName, 'defined');
      assert.deepEqual(await conn.domainGetState(d), { state: DomainState.SHUTOFF, reason: 0, stateName: 'shutoff' });
      assert.equal(await conn.domainIsActive(d), false);

      ev = nextEvent(conn.lifecycle$, name);
      await conn.domainCreate(d);
      assert.equal((await ev).eventName, 'started');
      assert.equal((await conn.domainGetState(d)).stateName, 'running');
      assert.equal(await conn.domainIsActive(d), true);
      assert.equal(await conn.domainIsPersistent(d), true);
      assert.equal(await conn.connectNumOfDomains(), active + 1);
      const info = await conn.domainGetInfo(d);
      assert.equal(info.stateName, 'running');
      assert.equal(info.maxMemKiB, 64 * 1024);
      assert.equal(info.nrVirtCpu, 1);

      ev = nextEvent(conn.lifecycle$, name);
      await conn.domainSuspend(d);
      assert.equal((await ev).eventName, 'suspended');
      assert.equal((await conn.domainGetState(d)).stateName, 'paused');
      assert.equal(await conn.connectNumOfDomains(), active + 1, 'a paused domain is active');

      ev = nextEvent(conn.lifecycle$, name);
      await conn.domainResume(d);
      assert.equal((await ev).eventName, 'resumed');

      ev = nextEvent(conn.lifecycle$, name);
      await conn.domainShutdown(d);
      assert.deepEqual([(await ev).eventName, (await ev).detailName], ['stopped', 'shutdown']);
      assert.equal((await conn.domainGetState(d)).stateName, 'shutoff');
      assert.equal(await conn.connectNumOfDomains(), active);

      ev = nextEvent(conn.lifecycle$, name);
      const started = await conn.domainCreateWithFlags(d);
      assert.ok(started.id > 0, 'a running domain has an id');
      assert.equal((await ev).eventName, 'started');

      ev = nextEvent(conn.lifecycle$, name);
      await conn.domainDestroyFlags(d);
      assert.deepEqual([(await ev).eventName, (await ev).detailName], ['stopped', 'destroyed']);

      ev = nextEvent(conn.lifecycle$, name);
      await conn.domainUndefineFlags(d);
      assert.equal((await ev).eventName, 'undefined');
      await assert.rejects(conn.domainLookupByUuid(d.uuid), (e) => e instanceof LibvirtError && e.code === ErrorCode.NO_DOMAIN);

      assert.deepEqual(
        seen.map((e) => `${e.eventName}/${e.detailName}`),
        ['defined/added', 'started/booted', 'suspended/paused', 'resumed/unpaused', 'stopped/shutdown', 'started/booted', 'stopped/destroyed', 'undefined/removed'],
      );
      for (const e of seen) assert.equal(e.domain.uuid, d.uuid);
    } finally {
      sub.unsubscribe();
    }
  });

  it('looking up a missing domain fails with LibvirtError code 42 (NoDomain)', async () => {
    await assert.rejects(conn.domainLookupByName('no-such-domain'), (e) => {
      assert.ok(e instanceof LibvirtError);
      assert.equal(e.code, 42);
      assert.equal(e.reason, 'NoDomain');
      assert.equal(e.procedure, 'DOMAIN_LOOKUP_BY_NAME');
      return true;
    });
  });

  it('reads memory stats, and reports an unsupported call as a typed LibvirtError', async () => {
    const test = await conn.domainLookupByName('test');
    const stats = await conn.domainMemoryStats(test, 16);
    const balloon = stats.find((s) => s.tag === MemoryStatTag.ACTUAL_BALLOON);
    assert.ok(balloon && balloon.value > 0n, JSON.stringify(stats, (_, v) => (typeof v === 'bigint' ? String(v) : v)));
    await assert.rejects(conn.domainGetJobStats(test), (e) => e instanceof LibvirtError && e.code === ErrorCode.NO_SUPPORT);
    assert.ok(isLibvirtError(await conn.domainLookupByName('nope').catch((e: unknown) => e), ErrorCode.NO_DOMAIN));
  });

  it('answers 100 concurrent calls on one connection, each matched to its domain', async () => {
    const names = Array.from({ length: 100 }, (_, i) => `conc${String(i).padStart(3, '0')}`);
    const defined = await Promise.all(names.map((n) => conn.domainDefineXmlFlags(xml(n))));
    assert.ok(conn.peakPendingCalls >= 100, `peak in-flight calls ${conn.peakPendingCalls}`);
    assert.deepEqual(
      defined.map((d) => d.name),
      names,
    );
    assert.equal(new Set(defined.map((d) => d.uuid)).size, 100);
    // Start the even ones so that states differ per domain.
    await Promise.all(defined.filter((_, i) => i % 2 === 0).map((d) => conn.domainCreate(d)));

    const answers = await Promise.all(
      defined.map(async (d, i) => {
        const [byName, byUuid, state, desc] = await Promise.all([
          conn.domainLookupByName(names[i]!),
          conn.domainLookupByUuid(d.uuid),
          conn.domainGetState(d),
          conn.domainGetXmlDesc(d),
        ]);
        return { i, byName, byUuid, state, desc };
      }),
    );
    for (const { i, byName, byUuid, state, desc } of answers) {
      const d = defined[i]!;
      assert.equal(byName.uuid, d.uuid);
      assert.equal(byUuid.name, names[i]);
      assert.equal(state.state, i % 2 === 0 ? DomainState.RUNNING : DomainState.SHUTOFF, `state of ${names[i]}`);
      assert.ok(desc.includes(`<name>${names[i]}</name>`), `XML of ${names[i]}`);
      assert.ok(desc.includes(d.uuid));
    }
    const listed = await conn.connectListAllDomains();
    assert.equal(listed.filter((d) => d.name.startsWith('conc')).length, 100);

    await Promise.all(defined.filter((_, i) => i % 2 === 0).map((d) => conn.domainDestroy(d)));
    await Promise.all(defined.map((d) => conn.domainUndefineFlags(d)));
  });

  it('keepalive: libvirtd answers our PINGs, and a hung libvirtd is detected and reconnected to', async () => {
    const ka = await LibvirtConnection.open({
      target: { path: lv.socketPath },
      uri: 'test:///default',
      keepalive: { intervalMs: 100, count: 10 },
      lifecycleEvents: false,
      handshakeTimeoutMs: 2000,
      reconnect: { initialDelayMs: 50, maxDelayMs: 200 },
    });
    try {
      // Idle: we PING after 100 ms of silence and libvirtd must answer.
      await waitFor('two PONGs', () => (ka.keepaliveStats?.pongsReceived ?? 0) >= 2, 10_000, () => `PONGs: ${JSON.stringify(ka.keepaliveStats)}`, 50);
      assert.equal(ka.connectCount, 1);

      // Hung (SIGSTOP): the socket stays open but nothing answers, so keepalive must drop it.
      const down = waitState(ka, 'disconnected');
      lv.freeze();
      const stuck = ka.connectGetHostname();
      await assert.rejects(stuck, (e) => e instanceof LibvirtConnectionError && /keepalive/.test(e.message));
      await down;
      const up = waitState(ka, 'connected');
      lv.thaw();
      await up;
      assert.equal(await ka.connectGetHostname(), 'vk-testdrv');
      assert.ok(ka.connectCount >= 2);
    } finally {
      lv.thaw();
      await ka.close();
    }
  });

  it('a killed libvirtd fails pending calls with LibvirtConnectionError; a restarted one is reconnected and events flow again', async () => {
    const events: LifecycleEvent[] = [];
    const sub = conn.lifecycle$.subscribe((e) => events.push(e)); // one subscription across the outage
    try {
      const before = conn.connectCount;
      const disconnected = waitState(conn, 'disconnected');

      // Freeze libvirtd so the calls are certainly in flight when it dies.
      lv.freeze();
      const pending = [
        conn.domainLookupByName('test'),
        conn.connectListAllDomains(),
        conn.connectGetHostname(),
        conn.domainDefineXmlFlags(xml('lost')),
      ];
      const settled = Promise.allSettled(pending);
      assert.equal(conn.pendingCalls, pending.length);
      await lv.kill();
      const results = await settled;
      for (const r of results) {
        assert.equal(r.status, 'rejected');
        assert.ok(r.status === 'rejected' && r.reason instanceof LibvirtConnectionError, `got ${r.status === 'rejected' ? String(r.reason) : 'a value'}`);
      }
      await disconnected;
      await assert.rejects(conn.connectGetHostname(), LibvirtConnectionError); // during the outage

      const reconnected = waitState(conn, 'connected');
      await lv.start();
      await reconnected;
      assert.equal(conn.connectCount, before + 1);

      const ev = nextEvent(conn.lifecycle$, 'after-restart');
      const d = await conn.domainDefineXmlFlags(xml('after-restart'));
      assert.equal((await ev).eventName, 'defined');
      assert.ok(events.some((e) => e.domain.name === 'after-restart' && e.eventName === 'defined'), 'the long-lived subscription saw it too');
      assert.deepEqual(
        (await conn.connectListAllDomains()).map((x) => x.name).sort(),
        ['after-restart', 'test'], // a fresh test driver, plus our new domain
      );
      await conn.domainUndefineFlags(d);
    } finally {
      sub.unsubscribe();
      lv.thaw();
    }
  });

  it('close() ends state$ in closed and later calls fail with LibvirtConnectionError', async () => {
    const other = await LibvirtConnection.open({ target: { path: lv.socketPath }, uri: 'test:///default' });
    const states = firstValueFrom(other.state$.pipe(take(2), toArray()));
    await other.close();
    assert.deepEqual(await states, ['connected', 'closed']);
    await assert.rejects(other.connectGetHostname(), LibvirtConnectionError);
    assert.equal(await conn.connectGetHostname(), 'vk-testdrv', 'the other connection is unaffected');
  });
});
