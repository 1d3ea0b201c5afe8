// The events log (core/events.ts, DESIGN §3 /events) and its CLI: appendEvent validates, numbers
// by ZooKeeper's sequence and trims to the last `max`; listEvents filters and skips what it cannot
// read; followEvents sees each new event once; `vk events [-w]` prints them. Real vk, real
// ZooKeeper.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { firstValueFrom, take, toArray } from 'rxjs';
import { appendEvent, eventSeq, followEvents, listEvents, type EventEntry } from '../../core/events.ts';
import { ZkStore } from '../../drivers/zk/index.ts';
import { ValidationError, ZkPaths, type ClusterEventInput } from '../../schemas/index.ts';
import { startZooKeeper, type ZkServer } from '../rig/zookeeper.ts';
import { vkFor, type Vk } from './helpers.ts';

const root = '/evt';
const paths = new ZkPaths(root);
let server: ZkServer;
let store: ZkStore;
let vk: Vk;

const T = (s: number) => new Date(Date.UTC(2026, 0, 1, 0, 0, s)).toISOString();
const ev = (over: Partial<ClusterEventInput> = {}): ClusterEventInput => ({ at: T(0), kind: 'fence.started', by: 'hv1', message: 'm', ...over });

async function eventChildren(p: ZkPaths = paths): Promise<string[]> {
  return (await store.children(p.events)) ?? [];
}

/** A fresh log under its own root (each test its own, so they do not see each other's events). */
let logCount = 0;
function freshPaths(): ZkPaths {
  return new ZkPaths(`/log${++logCount}`);
}

before(async () => {
  server = await startZooKeeper();
  store = await ZkStore.connect({ connectString: server.connectString, sessionTimeoutMs: 10_000 });
  vk = vkFor(server.connectString, root);
});

after(async () => {
  await store?.close();
  await server?.cleanup();
});

describe('core/events: append, trim, list, follow', () => {
  test('appendEvent validates before writing, makes /events, and numbers events by ZooKeeper sequence', async () => {
    const p = freshPaths();
    await assert.rejects(appendEvent(store, p, ev({ kind: 'Fence started' })), (e: unknown) => e instanceof ValidationError && e.field === 'event.kind');
    await assert.rejects(appendEvent(store, p, ev({ message: 'two\nlines' })), (e: unknown) => e instanceof ValidationError && e.field === 'event.message');
    assert.equal(await store.exists(p.root), null, 'nothing written, not even the parents');
    await assert.rejects(appendEvent(store, p, ev(), { max: 0 }), TypeError);

    const a = await appendEvent(store, p, ev({ node: 'hv3' }));
    const b = await appendEvent(store, p, ev({ kind: 'fence.succeeded', level: 'ipmi' }));
    assert.equal(a.seq, 0);
    assert.equal(a.name, 'e-0000000000');
    assert.equal(b.seq, 1);
    assert.deepEqual(b.event, { at: T(0), kind: 'fence.succeeded', by: 'hv1', level: 'ipmi', message: 'm' });
    assert.deepEqual(await eventChildren(p), ['e-0000000000', 'e-0000000001']);
    assert.equal((await store.get(`${p.events}/e-0000000000`))!.data.toString(), '{"at":"2026-01-01T00:00:00.000Z","kind":"fence.started","by":"hv1","node":"hv3","message":"m"}');
    assert.equal(eventSeq('e-0000000042'), 42);
    assert.equal(eventSeq('e-42'), undefined);
    assert.equal(eventSeq('lock-0000000001'), undefined);
  });

  test('the log keeps the last `max` events; a child someone else deleted is no error', async () => {
    const p = freshPaths();
    for (let i = 0; i < 7; i++) await appendEvent(store, p, ev({ message: `n${i}` }), { max: 3 });
    assert.deepEqual(await eventChildren(p), ['e-0000000004', 'e-0000000005', 'e-0000000006']);
    assert.deepEqual((await listEvents(store, p)).map((e) => e.event.message), ['n4', 'n5', 'n6']);
    // A trim that did not happen (say its connection dropped) is made up by the next append.
    await store.create(`${p.events}/e-`, JSON.stringify(ev({ message: 'n7' })), { mode: 'persistent_sequential' });
    await store.create(`${p.events}/e-`, JSON.stringify(ev({ message: 'n8' })), { mode: 'persistent_sequential' });
    // Another appender already took the oldest: NoNode while trimming is fine.
    await store.delete(`${p.events}/e-0000000004`, 0);
    const last = await appendEvent(store, p, ev({ message: 'n9' }), { max: 3 });
    assert.equal(last.seq, 9);
    assert.deepEqual(await eventChildren(p), ['e-0000000007', 'e-0000000008', 'e-0000000009']);
    // Several appenders at once: each event lands once, and the log ends at most `max` long.
    await Promise.all(Array.from({ length: 10 }, (_, i) => appendEvent(store, p, ev({ message: `c${i}` }), { max: 4 })));
    const left = await eventChildren(p);
    assert.deepEqual(left, ['e-0000000016', 'e-0000000017', 'e-0000000018', 'e-0000000019']);
  });

  test('listEvents: oldest first, the last `limit`, by node and by VM; unreadable children skipped', async () => {
    const p = freshPaths();
    await appendEvent(store, p, ev({ kind: 'node.lost', node: 'hv3', message: 'hv3 lost' }));
    await appendEvent(store, p, ev({ kind: 'vm.recovered', node: 'hv3', vm: 'web1', message: 'web1 on hv2' }));
    await store.create(`${p.events}/e-`, 'not an event', { mode: 'persistent_sequential' });
    await store.create(`${p.events}/stray`, '{}');
    await appendEvent(store, p, ev({ kind: 'migration.completed', node: 'hv1', vm: 'web2', message: 'web2 hv1 → hv2' }));
    await appendEvent(store, p, ev({ kind: 'vm.notRecovered', node: 'hv3', vm: 'db1', message: 'local disk' }));
    const msgs = (list: EventEntry[]) => list.map((e) => e.event.message);
    assert.deepEqual(msgs(await listEvents(store, p)), ['hv3 lost', 'web1 on hv2', 'web2 hv1 → hv2', 'local disk']);
    // The unreadable e-…02 is skipped; `stray` took a number of the parent's counter (3) without being an event.
    assert.deepEqual((await listEvents(store, p)).map((e) => e.seq), [0, 1, 4, 5]);
    assert.deepEqual(msgs(await listEvents(store, p, { limit: 2 })), ['web2 hv1 → hv2', 'local disk']);
    assert.deepEqual(msgs(await listEvents(store, p, { node: 'hv3' })), ['hv3 lost', 'web1 on hv2', 'local disk']);
    assert.deepEqual(msgs(await listEvents(store, p, { node: 'hv3', limit: 1 })), ['local disk']);
    assert.deepEqual(msgs(await listEvents(store, p, { vm: 'web1' })), ['web1 on hv2']);
    assert.deepEqual(msgs(await listEvents(store, p, { node: 'hv1', vm: 'web1' })), []);
    assert.deepEqual(await listEvents(store, freshPaths()), [], 'no log yet: no events');
  });

  test('listEvents --limit reads back in chunks until enough match (far more events than a chunk)', async () => {
    const p = freshPaths();
    await appendEvent(store, p, ev({ node: 'hv9', message: 'old hv9' }));
    await Promise.all(Array.from({ length: 250 }, (_, i) => appendEvent(store, p, ev({ node: 'hv1', message: `x${i}` }))));
    await appendEvent(store, p, ev({ node: 'hv9', message: 'new hv9' }));
    assert.deepEqual((await listEvents(store, p, { node: 'hv9' })).map((e) => e.event.message), ['old hv9', 'new hv9']);
    assert.deepEqual((await listEvents(store, p, { node: 'hv9', limit: 1 })).map((e) => e.seq), [251]);
    assert.equal((await listEvents(store, p)).length, 252);
  });

  test('followEvents: the backlog, then each new event once, in order, filtered; a log made again is followed', async () => {
    const p = freshPaths();
    // Before any log exists: everything appended later is new.
    const firstTwo = firstValueFrom(followEvents(store, p).pipe(take(2), toArray()));
    await new Promise((r) => setTimeout(r, 200));
    await appendEvent(store, p, ev({ message: 'first' }));
    await appendEvent(store, p, ev({ message: 'second' }));
    assert.deepEqual((await firstTwo).map((e) => [e.seq, e.event.message]), [[0, 'first'], [1, 'second']]);

    const seen: EventEntry[] = [];
    const sub = followEvents(store, p, { node: 'hv3', backlog: 1 }).subscribe((e) => seen.push(e));
    await appendEvent(store, p, ev({ node: 'hv2', message: 'not hv3' }));
    for (let i = 0; i < 5; i++) await appendEvent(store, p, ev({ node: 'hv3', message: `hv3 #${i}` }));
    await waitUntil(() => seen.length >= 5, 'five hv3 events');
    // The log goes and comes back (numbered from 0 again): its events are new.
    await store.deleteRecursive(p.events);
    await appendEvent(store, p, ev({ node: 'hv3', message: 'after the reset' }));
    await waitUntil(() => seen.some((e) => e.event.message === 'after the reset'), 'the event of the new log');
    sub.unsubscribe();
    assert.deepEqual(
      seen.map((e) => e.event.message),
      ['hv3 #0', 'hv3 #1', 'hv3 #2', 'hv3 #3', 'hv3 #4', 'after the reset'],
      'no backlog matched hv3 at the start; each event once; the other node filtered out',
    );
    assert.equal(seen.at(-1)!.seq, 0);

    // `after`: what was appended since a listing.
    const listed = await listEvents(store, p);
    await appendEvent(store, p, ev({ message: 'since' }));
    const since = await firstValueFrom(followEvents(store, p, { after: listed.at(-1)!.seq }));
    assert.equal(since.event.message, 'since');
  });
});

async function waitUntil(check: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('vk events', () => {
  before(async () => {
    await appendEvent(store, paths, ev({ at: T(1), kind: 'node.lost', by: 'hv1', node: 'hv3', message: 'hv3 is lost: its session ended 5 s ago' }));
    await appendEvent(store, paths, ev({ at: T(2), kind: 'fence.succeeded', by: 'hv1', node: 'hv3', level: 'ipmi', message: 'hv3 powered off' }));
    await appendEvent(store, paths, ev({ at: T(3), kind: 'vm.recovered', by: 'hv1', node: 'hv3', vm: 'web1', message: 'web1 started on hv2' }));
    await appendEvent(store, paths, ev({ at: T(4), kind: 'migration.completed', by: 'hv2', vm: 'db1', message: 'db1 hv2 → hv1' }));
  });

  test('one line per event, oldest first: TIME  KIND  NODE/VM  MESSAGE', async () => {
    const run = await vk('events');
    assert.equal(run.code, 0, run.stderr);
    assert.equal(
      run.stdout,
      [
        'TIME                      KIND                  NODE/VM           MESSAGE',
        '2026-01-01T00:00:01.000Z  node.lost             hv3               hv3 is lost: its session ended 5 s ago',
        '2026-01-01T00:00:02.000Z  fence.succeeded       hv3               hv3 powered off',
        '2026-01-01T00:00:03.000Z  vm.recovered          hv3/web1          web1 started on hv2',
        '2026-01-01T00:00:04.000Z  migration.completed   -/db1             db1 hv2 → hv1',
        '',
      ].join('\n'),
    );
  });

  test('--node, --vm, --limit; -o json is an array with seq; -o yaml a list', async () => {
    const [node, vm, limit, json, yaml] = await Promise.all([
      vk('events', '--node', 'hv3', '--limit', '2'),
      vk('events', '--vm', 'db1'),
      vk('events', '--limit', '1'),
      vk('events', '-o', 'json', '--node', 'hv3'),
      vk('events', '-o', 'yaml', '--limit', '1'),
    ]);
    for (const r of [node, vm, limit, json, yaml]) assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(node.stdout.trimEnd().split('\n').slice(1).map((l) => l.split(/ {2,}/)[1]), ['fence.succeeded', 'vm.recovered']);
    assert.match(vm.stdout, /^2026-01-01T00:00:04.000Z {2}migration\.completed {3}-\/db1 /m);
    assert.equal(vm.stdout.trimEnd().split('\n').length, 2);
    assert.equal(limit.stdout.trimEnd().split('\n').length, 2);
    assert.match(limit.stdout, /migration\.completed/);
    assert.deepEqual(JSON.parse(json.stdout), [
      { seq: 0, at: T(1), kind: 'node.lost', by: 'hv1', node: 'hv3', message: 'hv3 is lost: its session ended 5 s ago' },
      { seq: 1, at: T(2), kind: 'fence.succeeded', by: 'hv1', node: 'hv3', level: 'ipmi', message: 'hv3 powered off' },
      { seq: 2, at: T(3), kind: 'vm.recovered', by: 'hv1', node: 'hv3', vm: 'web1', message: 'web1 started on hv2' },
    ]);
    assert.equal(yaml.stdout, `- at: ${T(4)}\n  by: hv2\n  kind: migration.completed\n  message: db1 hv2 → hv1\n  seq: 3\n  vm: db1\n`);
  });

  test('bad flags: exit 2 naming them, before connecting', async () => {
    const bad = vkFor('127.0.0.1:1', root);
    const [node, limit] = await Promise.all([bad('events', '--node', 'HV3'), bad('events', '--limit', '0')]);
    assert.equal(node.code, 2);
    assert.match(node.stderr, /^vk: --node: invalid name "HV3": /);
    assert.equal(limit.code, 2);
    assert.match(limit.stderr, /--limit.*must be a positive integer/);
    const empty = await vkFor(server.connectString, '/no-events-here')('events', '-o', 'json');
    assert.equal(empty.code, 0, empty.stderr);
    assert.equal(empty.stdout, '[]\n');
  });

  test('-w: the last --limit events, then each new one as it is appended, until SIGINT (exit 0)', async () => {
    const watch = vk.start('events', '-w', '--limit', '1', '--node', 'hv3');
    await watch.until(/vm\.recovered/);
    await appendEvent(store, paths, ev({ at: T(5), kind: 'fence.failed', node: 'hv2', level: 'ipmi', message: 'not about hv3' }));
    await appendEvent(store, paths, ev({ at: T(6), kind: 'node.lost', node: 'hv3', message: 'hv3 lost again' }));
    await watch.until(/hv3 lost again\n/);
    watch.child.kill('SIGINT');
    const run = await watch.done;
    assert.equal(run.code, 0, run.stderr);
    assert.deepEqual(run.stdout.trimEnd().split('\n').map((l) => l.split(/ {2,}/)[1]), ['KIND', 'vm.recovered', 'node.lost']);

    const json = vk.start('events', '-w', '-o', 'json', '--vm', 'web9');
    await new Promise((r) => setTimeout(r, 1500));
    await appendEvent(store, paths, ev({ at: T(7), kind: 'vm.notRecovered', node: 'hv3', vm: 'web9', message: 'no target' }));
    await json.until(/no target/);
    json.child.kill('SIGTERM');
    const out = await json.done;
    assert.equal(out.code, 0, out.stderr);
    assert.deepEqual(
      out.stdout.trimEnd().split('\n').map((l) => JSON.parse(l) as { kind: string; seq: number }),
      [{ seq: 6, at: T(7), kind: 'vm.notRecovered', by: 'hv1', node: 'hv3', vm: 'web9', message: 'no target' }],
      'one JSON object per line',
    );
  });
});
