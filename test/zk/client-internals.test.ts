// drivers/zk/client-internals.ts: the library's error replies are made without a stack trace.
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { describe, it } from 'node:test';
import zookeeper from 'node-zookeeper-client';
import { ZkStore } from '../../drivers/zk/index.ts';

type LibException = Error & { getCode(): number; code: number };
const Exception = zookeeper.Exception as unknown as { create(code: number): LibException; NO_NODE: number; new (...args: never[]): LibException };

describe('the library Exceptions of error replies', () => {
  it('are made without stack frames, with their code, name and class, and leave Error.stackTraceLimit as it was', () => {
    assert.ok(ZkStore, 'drivers/zk is loaded (it patches the library as it loads)');
    const limit = Error.stackTraceLimit;
    const error = Exception.create(Exception.NO_NODE);
    assert.equal(Error.stackTraceLimit, limit);
    assert.ok(error instanceof Exception);
    assert.equal(error.getCode(), Exception.NO_NODE);
    assert.match(error.message, /NO_NODE/);
    assert.doesNotMatch(error.stack ?? '', /\n\s+at /, 'no frame collected');
    // Our own errors keep theirs.
    assert.match(new Error('ours').stack ?? '', /\n\s+at /);
  });

  it('come from the one Exception module every part of the library requires', () => {
    const require = createRequire(import.meta.url);
    assert.equal(require('node-zookeeper-client/lib/Exception.js'), zookeeper.Exception);
  });
});
