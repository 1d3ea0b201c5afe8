// Digest ACLs against a real ZooKeeper: writes without the credentials are refused (NoAuthError);
// reads are allowed with 'digest-world-read' and refused with 'digest-private'.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { NoAuthError, ZkStore, digestId } from '../../drivers/zk/index.ts';
import { isPrivateTo, isSecretTo, openAclSession, PERM, secretAcl } from '../../drivers/zk/acl.ts';
import { startZooKeeper, type ZkServer } from '../rig/zookeeper.ts';
import { next } from './helpers.ts';

let server: ZkServer;
const stores: ZkStore[] = [];
const alice = { user: 'alice', password: 's3cret' };

async function connect(opts: Partial<Parameters<typeof ZkStore.connect>[0]> = {}): Promise<ZkStore> {
  const s = await ZkStore.connect({ connectString: server.connectString, sessionTimeoutMs: 4000, ...opts });
  stores.push(s);
  return s;
}

before(async () => {
  server = await startZooKeeper();
});

after(async () => {
  for (const s of stores) await s.close();
  await server?.cleanup();
});

describe('digest ACLs', () => {
  it('digest id is user:base64(sha1(user:password))', () => {
    // ZooKeeper's DigestAuthenticationProvider.generateDigest("super:test")
    assert.equal(digestId('super', 'test'), 'super:D/InIHSb7yEEbrWz8b9l71RjZJU=');
  });

  it("'digest-world-read': anyone reads, only the owner writes", async () => {
    const owner = await connect({ auth: alice, acl: 'digest-world-read' });
    const anon = await connect();
    const stranger = await connect({ auth: { user: 'alice', password: 'wrong' } });
    await owner.create('/pub', 'hello');
    await owner.create('/pub/child', 'c');

    assert.equal((await anon.get('/pub'))?.data.toString(), 'hello');
    assert.deepEqual(await anon.children('/pub'), ['child']);
    const seen = await next(anon.watchData('/pub'), () => true, 5000, 'anon watch');
    assert.equal(seen.kind, 'data');

    for (const s of [anon, stranger]) {
      await assert.rejects(s.set('/pub', 'defaced', 0), (e: unknown) => e instanceof NoAuthError && e.path === '/pub' && e.reason === 'NoAuth');
      await assert.rejects(s.create('/pub/intruder', 'x'), NoAuthError);
      await assert.rejects(s.delete('/pub/child', 0), NoAuthError);
      await assert.rejects(s.multi([{ op: 'set', path: '/pub', data: 'x', version: 0 }]), (e: unknown) => e instanceof Error && (e as { cause?: unknown }).cause instanceof NoAuthError);
    }
    assert.equal((await owner.get('/pub'))?.data.toString(), 'hello');
    const st = await owner.set('/pub', 'updated', 0);
    assert.equal(st.version, 1);
  });

  it("'digest-private': others cannot even read", async () => {
    const owner = await connect({ auth: alice, acl: 'digest-private' });
    const anon = await connect();
    await owner.create('/priv', 'secret', { parents: true });
    assert.equal((await owner.get('/priv'))?.data.toString(), 'secret');
    await assert.rejects(anon.get('/priv'), NoAuthError);
    await assert.rejects(anon.children('/priv'), NoAuthError);
    await assert.rejects(anon.set('/priv', 'x', 0), NoAuthError);
    await assert.rejects(next(anon.watchData('/priv'), () => true, 5000, 'watch error'), NoAuthError);
    // exists() needs no permission in ZooKeeper
    assert.ok(await anon.exists('/priv'));
  });

  it("the default with auth is 'digest-private'; without auth 'open'", async () => {
    const owner = await connect({ auth: alice });
    const anon = await connect();
    await owner.create('/default-acl', 'x');
    await assert.rejects(anon.get('/default-acl'), NoAuthError);
    await anon.create('/open-node', 'x');
    await owner.set('/open-node', 'y', 0);
    await assert.rejects(ZkStore.connect({ connectString: server.connectString, acl: 'digest-private' }), TypeError);
  });

  it("create's acl option: one znode private under a store whose default lets world read; its ancestors keep the default", async () => {
    const owner = await connect({ auth: alice, acl: 'digest-world-read' });
    const anon = await connect();
    await owner.create('/one-secret/inner/pw', 'hunter2', { parents: true, acl: 'digest-private' });
    assert.equal((await owner.get('/one-secret/inner/pw'))?.data.toString(), 'hunter2');
    await assert.rejects(anon.get('/one-secret/inner/pw'), NoAuthError);
    assert.deepEqual(await anon.children('/one-secret/inner'), ['pw'], 'the parents made for it have the store ACL (world read)');
    const session = await openAclSession(server.connectString, alice, 5000);
    try {
      const acl = (await session.get('/one-secret/inner/pw'))!.acl;
      assert.deepEqual(acl, secretAcl(alice));
      assert.ok(isSecretTo(acl, alice));
      const parentAcl = (await session.get('/one-secret/inner'))!.acl;
      assert.ok(isPrivateTo(parentAcl, alice) && !isSecretTo(parentAcl, alice), 'world READ: private, not secret');
    } finally {
      session.close();
    }
    assert.ok(!isSecretTo(secretAcl(alice), { user: 'alice', password: 'other' }));
    assert.ok(!isSecretTo([], alice));
    assert.ok(isSecretTo([...secretAcl(alice), { perms: 0, scheme: 'world', id: 'anyone' }], alice), 'an entry with no permission grants nothing');
    assert.ok(!isSecretTo([...secretAcl(alice), { perms: PERM.READ, scheme: 'world', id: 'anyone' }], alice));
    // Without auth there is no digest to give it: refused before anything is sent.
    await assert.rejects(anon.create('/no-secret', 'x', { acl: 'digest-private' }), TypeError);
    assert.equal(await anon.exists('/no-secret'), null);
    await anon.create('/explicit-open', 'x', { acl: 'open' });
    await owner.set('/explicit-open', 'y', 0);
  });

  it('credentials survive a reconnection', async () => {
    const owner = await connect({ auth: alice, acl: 'digest-private', sessionTimeoutMs: 8000 });
    await owner.create('/reauth', 'v0');
    await server.kill();
    await next(owner.connectionState$, (s) => s === 'suspended', 10000, 'suspended');
    await server.start();
    await next(owner.connectionState$, (s) => s === 'connected', 10000, 'connected');
    await owner.set('/reauth', 'v1', 0);
    assert.equal((await owner.get('/reauth'))?.data.toString(), 'v1');
  });
});
