// The daemon's fullResyncEvery setting (daemon/config.ts, `vk daemon --full-resync-every`): a default,
// a file value, a flag that wins over both, and bad values refused naming the field or flag.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { loadDaemonConfig } from '../../daemon/config.ts';
import { VK } from '../cli/helpers.ts';

const base = { node: 'hv1', zk: '127.0.0.1:2181' };

describe('daemon config: fullResyncEvery', () => {
  it('defaults to 10; a config file sets it; a flag wins over the file', () => {
    assert.equal(loadDaemonConfig(undefined, {}, base).fullResyncEvery, 10);
    const dir = mkdtempSync(join(tmpdir(), 'vk-config-'));
    try {
      const file = join(dir, 'daemon.yaml');
      writeFileSync(file, 'fullResyncEvery: 1\n');
      assert.equal(loadDaemonConfig(file, {}, base).fullResyncEvery, 1);
      assert.equal(loadDaemonConfig(file, {}, { ...base, fullResyncEvery: 4 }).fullResyncEvery, 4);
      writeFileSync(file, 'fullResyncEvery: 0\n');
      assert.throws(() => loadDaemonConfig(file, {}, base), /fullResyncEvery/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('`vk daemon --full-resync-every` refuses a value that is no whole number, with exit code 2, naming the flag', () => {
    const r = spawnSync(process.execPath, [VK, 'daemon', '--node', 'hv1', '--zk', '127.0.0.1:1', '--full-resync-every', 'often'], { encoding: 'utf8', timeout: 30_000 });
    assert.equal(r.status, 2, r.stderr);
    assert.match(r.stderr, /--full-resync-every/);
    assert.match(r.stderr, /often/);
  });
});
