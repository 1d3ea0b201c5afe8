// /nodes/<name>/fence (schemas/fence.ts): defaults, bad values named with field and value, and
// secrets (ipmi.password, command.env values) shown nowhere: not in a validation error (message,
// describeAll, value, JSON), not when JSON text does not parse, not in formatNodeFence.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { decodeNodeFence, encodeNodeFence, formatNodeFence, redactNodeFence, REDACTED, ValidationError } from '../../schemas/index.ts';
import { expectInvalid, fieldTests } from './helpers.ts';

const PW = 'Hunter2-Secret';
const TOKEN = 'tok-4f9a-secret';
const base = { ipmi: { host: '192.0.2.13', user: 'admin', password: PW } };

function assertHidden(err: ValidationError, ...secrets: string[]): void {
  const texts = [err.message, err.describeAll(), JSON.stringify(err.issues), JSON.stringify(err.value), String(err.stack)];
  for (const s of secrets) for (const t of texts) assert.ok(!t.includes(s), `secret shown: ${t}`);
}

function invalid(fn: () => unknown): ValidationError {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof ValidationError, String(e));
    return e;
  }
  assert.fail('no ValidationError');
}

describe('NodeFence fields', () => {
  fieldTests('NodeFence', (v) => decodeNodeFence(v), base, 'fence.', [
    { field: 'ipmi.host', good: ['192.0.2.13', '2001:db8::1', 'bmc-hv3.example.net'], bad: ['-oops', 'a b', '', 'fe80::1%eth0'] },
    { field: 'ipmi.port', good: [623, 1, 65535], bad: [0, 65536, '623', 1.5] },
    { field: 'ipmi.user', good: ['admin', 'ADMIN'], bad: ['', '-x', 'a-user-name-too-long'] },
    { field: 'ipmi.cipherSuite', good: [0, 3, 17], bad: [18, -1, 'three'] },
    { field: 'ipmi.timeoutMs', good: [100, 5000], bad: [99, 0] },
    { field: 'ipmi.retries', good: [0, 5], bad: [-1, 21] },
  ]);
});

describe('NodeFence', () => {
  test('defaults: port 623, cipher suite 3, 5 s × 3, verify 10 s; storage TTL 30 days; command timeout 30 s', () => {
    const f = decodeNodeFence({ ...base, command: { argv: ['/usr/local/bin/pdu-off', 'hv3'] }, storage: {} });
    assert.deepEqual(f.ipmi, { host: '192.0.2.13', port: 623, user: 'admin', password: PW, cipherSuite: 3, timeoutMs: 5000, retries: 2, verifyTimeoutMs: 10_000, powerOnAfter: false });
    assert.deepEqual(f.command, { argv: ['/usr/local/bin/pdu-off', 'hv3'], timeoutMs: 30_000, retries: 0 });
    assert.deepEqual(f.storage, { ttlS: 2_592_000 });
    assert.deepEqual(decodeNodeFence({}), {});
    assert.equal(encodeNodeFence({ storage: { ttlS: 3600 } }), '{"storage":{"ttlS":3600}}');
  });

  test('a command needs exactly one of argv and shell', () => {
    expectInvalid(() => decodeNodeFence({ command: {} }), 'fence.command.argv');
    expectInvalid(() => decodeNodeFence({ command: { argv: ['/bin/true'], shell: 'true' } }), 'fence.command.shell');
    expectInvalid(() => decodeNodeFence({ command: { argv: [] } }), 'fence.command.argv', []);
    assert.equal(decodeNodeFence({ command: { shell: 'pdu-off hv3' } }).command?.shell, 'pdu-off hv3');
  });

  test('an unknown field is named, and a typo of password does not show its value', () => {
    const e = invalid(() => decodeNodeFence({ ipmi: { host: 'h', user: 'u', passwrod: PW } }));
    assert.deepEqual(e.issues.map((i) => i.field).sort(), ['fence.ipmi.password', 'fence.ipmi.passwrod']);
    assert.match(e.describeAll(), /fence\.ipmi\.passwrod: unknown field "passwrod"/);
    assertHidden(e, PW);
  });

  test('a bad password is named but never shown', () => {
    for (const bad of ['a-password-of-more-than-20-bytes', 'line\nbreak', 42]) {
      const e = invalid(() => decodeNodeFence({ ipmi: { ...base.ipmi, password: bad } }));
      assert.equal(e.field, 'fence.ipmi.password');
      assert.equal(e.value, REDACTED);
      assert.match(e.message, /^fence\.ipmi\.password: /);
      if (typeof bad === 'string') assertHidden(e, bad);
    }
  });

  test('an ipmi object that is not an object, or JSON that does not parse: the secret is not quoted', () => {
    const e1 = invalid(() => decodeNodeFence(`{"ipmi":{"host":"h","user":"u","password":"${PW}"`));
    assertHidden(e1, PW, 'Hunter');
    const e2 = invalid(() => decodeNodeFence({ ipmi: [{ password: PW }] }));
    assertHidden(e2, PW);
    const e3 = invalid(() => encodeNodeFence({ ipmi: { ...base.ipmi, host: 'bad host' }, command: { shell: 'x', env: { TOKEN } } }));
    assert.equal(e3.field, 'fence.ipmi.host');
    assertHidden(e3, PW, TOKEN);
  });

  test('command.env: bad names named, values never shown', () => {
    expectInvalid(() => decodeNodeFence({ command: { shell: 'x', env: { 'BAD-NAME': 'v' } } }), 'fence.command.env.BAD-NAME');
    const e = invalid(() => decodeNodeFence({ command: { shell: 'x', env: { TOKEN: `${TOKEN}\u0007` } } }));
    assert.match(e.field, /^fence\.command\.env/);
    assertHidden(e, TOKEN);
  });

  test('formatNodeFence and redactNodeFence show no secret', () => {
    const f = decodeNodeFence({ ...base, command: { shell: 'pdu-off "$VK_FENCE_NODE"', env: { TOKEN } }, storage: { address: '198.51.100.3' } });
    const text = formatNodeFence(f);
    assert.ok(!text.includes(PW) && !text.includes(TOKEN), text);
    assert.match(text, /^ipmi: admin@192\.0\.2\.13:623 cipher suite 3, password <redacted>/);
    assert.match(text, /TOKEN=<redacted>/);
    assert.match(text, /storage: blocklist 198\.51\.100\.3 for 2592000 s/);
    const r = redactNodeFence(f);
    assert.equal(r.ipmi?.password, REDACTED);
    assert.equal(r.command?.env?.TOKEN, REDACTED);
    assert.equal(f.ipmi?.password, PW, 'the original is untouched');
    assert.equal(formatNodeFence(decodeNodeFence({})), 'no fence level configured');
  });
});
