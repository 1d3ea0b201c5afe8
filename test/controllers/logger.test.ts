import assert from 'node:assert/strict';
import { hostname } from 'node:os';
import { describe, it } from 'node:test';
import { createLogger, forReconcile, forVm, newReconcileId, resolveLevel } from '../../controllers/logger.ts';

function sink() {
  const raw: string[] = [];
  return {
    raw,
    destination: { write: (s: string) => void raw.push(s) },
    lines: () => raw.map((s) => JSON.parse(s) as Record<string, unknown>),
  };
}

describe('logger', () => {
  it('writes one JSON object per line with node, vm and reconcileId', () => {
    const out = sink();
    const log = createLogger({ node: 'hv1', level: 'debug', destination: out.destination });
    const reconcileId = newReconcileId();
    const vmLog = forVm(log, 'web1');
    vmLog.info('vm line');
    forReconcile(vmLog, { reconcileId }).debug({ step: 'define' }, 'reconcile line');
    forReconcile(log, { vm: 'db1', reconcileId }).warn('direct');
    log.info('node line');

    assert.equal(out.raw.length, 4);
    for (const s of out.raw) assert.ok(s.endsWith('\n') && !s.slice(0, -1).includes('\n'), 'one line per record');
    const [a, b, c, d] = out.lines();
    assert.deepEqual({ node: a!['node'], vm: a!['vm'], msg: a!['msg'], level: a!['level'] }, { node: 'hv1', vm: 'web1', msg: 'vm line', level: 'info' });
    assert.deepEqual(
      { node: b!['node'], vm: b!['vm'], reconcileId: b!['reconcileId'], step: b!['step'], level: b!['level'] },
      { node: 'hv1', vm: 'web1', reconcileId, step: 'define', level: 'debug' },
    );
    assert.deepEqual({ node: c!['node'], vm: c!['vm'], reconcileId: c!['reconcileId'], level: c!['level'] }, { node: 'hv1', vm: 'db1', reconcileId, level: 'warn' });
    assert.equal(d!['vm'], undefined);
    assert.equal(d!['reconcileId'], undefined);
    for (const l of [a, b, c, d]) assert.equal(typeof l!['time'], 'number');
  });

  it('forReconcile binds a queue key when given one', () => {
    const out = sink();
    const log = createLogger({ node: 'hv1', destination: out.destination });
    forReconcile(log, { key: 'net/vx100', reconcileId: 'abcd0123' }).info('x');
    const [l] = out.lines();
    assert.equal(l!['key'], 'net/vx100');
    assert.equal(l!['reconcileId'], 'abcd0123');
    assert.equal('vm' in l!, false);
  });

  it('node defaults to the hostname', () => {
    const out = sink();
    createLogger({ destination: out.destination }).info('x');
    assert.equal(out.lines()[0]!['node'], hostname());
  });

  it('level comes from the option, else VK_LOG_LEVEL, else info', () => {
    const saved = process.env['VK_LOG_LEVEL'];
    try {
      delete process.env['VK_LOG_LEVEL'];
      let out = sink();
      let log = createLogger({ node: 'n', destination: out.destination });
      assert.equal(log.level, 'info');
      log.debug('hidden');
      log.info('shown');
      assert.deepEqual(out.lines().map((l) => l['msg']), ['shown']);

      process.env['VK_LOG_LEVEL'] = 'debug';
      out = sink();
      log = createLogger({ node: 'n', destination: out.destination });
      assert.equal(log.level, 'debug');
      log.debug('now shown');
      assert.equal(out.lines().length, 1);

      process.env['VK_LOG_LEVEL'] = 'WARN';
      assert.equal(createLogger({ destination: sink().destination }).level, 'warn');
      assert.equal(createLogger({ level: 'error', destination: sink().destination }).level, 'error', 'option beats env');

      process.env['VK_LOG_LEVEL'] = 'verbose';
      assert.throws(() => createLogger({ destination: sink().destination }), /unknown log level "verbose" \(from VK_LOG_LEVEL\)/);
    } finally {
      if (saved === undefined) delete process.env['VK_LOG_LEVEL'];
      else process.env['VK_LOG_LEVEL'] = saved;
    }
    assert.equal(resolveLevel(undefined, {}), 'info');
    assert.equal(resolveLevel('silent', {}), 'silent');
    assert.throws(() => resolveLevel('loud', {}), /unknown log level "loud"/);
  });

  it('newReconcileId is 8 hex chars and unique', () => {
    const ids = new Set<string>();
    for (let i = 0; i < 100_000; i++) {
      const id = newReconcileId();
      assert.match(id, /^[0-9a-f]{8}$/);
      ids.add(id);
    }
    assert.equal(ids.size, 100_000);
  });
});
