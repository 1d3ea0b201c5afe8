// SettledLooks (reconcilers/settled.ts): S1, a look holds only over the very same inputs.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { SettledLooks } from '../../reconcilers/settled.ts';

describe('SettledLooks', () => {
  const spec = { node: 'hv1' };
  const status = { phase: 'Running' };

  it('holds over the same objects and values, in the same order', () => {
    const s = new SettledLooks<string>();
    s.note('web1', [spec, status, 'running:true', 3]);
    assert.equal(s.holds('web1', [spec, status, 'running:true', 3]), true);
  });

  it('S1: an equal copy of an object is a change (the informer replaces what changed)', () => {
    const s = new SettledLooks<string>();
    s.note('web1', [spec, status]);
    assert.equal(s.holds('web1', [spec, { ...status }]), false);
    assert.equal(s.holds('web1', [spec, status, 'extra']), false, 'a longer tuple');
    assert.equal(s.holds('web1', [spec]), false, 'a shorter tuple');
    assert.equal(s.holds('web1', [status, spec]), false, 'another order');
    assert.equal(s.holds('web1', [spec, 'shutoff:true']), false);
  });

  it('never holds without a look, for unknown inputs, or after forget', () => {
    const s = new SettledLooks<string>();
    assert.equal(s.holds('web1', []), false, 'no look was recorded');
    s.note('web1', [spec]);
    assert.equal(s.holds('web1', undefined), false, 'inputs not known now');
    assert.equal(s.holds('web2', [spec]), false, 'another key');
    s.forget('web1');
    assert.equal(s.holds('web1', [spec]), false);
    assert.equal(s.size, 0);
  });

  it('a later look replaces the earlier one', () => {
    const s = new SettledLooks<string>();
    s.note('web1', [spec, 'running:true']);
    s.note('web1', [spec, 'shutoff:true']);
    assert.equal(s.holds('web1', [spec, 'running:true']), false);
    assert.equal(s.holds('web1', [spec, 'shutoff:true']), true);
  });
});
