import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { decodeNetworkSpec, encodeNetworkSpec, networkMtuProblem, networkVniProblem, parseCidr } from '../../schemas/index.ts';
import { at, expectInvalid, fieldTests } from './helpers.ts';

const MANAGED = { type: 'managed', gateway4: '192.0.2.1/24' } as const;
const DHCP = { start: '192.0.2.100', end: '192.0.2.200' };

describe('NetworkSpec fields', () => {
  fieldTests('NetworkSpec', (v) => decodeNetworkSpec(v), MANAGED, 'spec.', [
    { field: 'type', good: ['managed'], bad: ['vxlan', 'Managed', 0] },
    { field: 'description', good: ['', 'client network 100'], bad: ['a\u0000b', 'tab\there', 'x'.repeat(257), 3] },
    { field: 'mtu', good: [576, 1500, 9000, 9216], bad: [575, 9217, 1500.5, '1500', -1] },
    {
      field: 'gateway4',
      good: ['192.0.2.1/24', '198.51.100.254/24', '10.0.0.1/8', '192.0.2.7/32'],
      bad: [
        '192.0.2.1',
        '192.0.2.0/24',
        '192.0.2.255/24',
        '300.1.1.1/24',
        '192.0.2.1/33',
        '192.0.2.1/024',
        '192.0.2.01/24',
        '2001:db8::1/64',
        '192.0.2.1/',
      ],
    },
    {
      field: 'gateway6',
      good: ['2001:db8::1/64', 'fd00::1/48'],
      bad: ['192.0.2.1/24', '2001:db8::1/129', 'fe80::1%eth0/64', '2001:db8::1', 'gggg::1/64'],
    },
    {
      field: 'dhcp4',
      good: [DHCP, { start: '192.0.2.2', end: '192.0.2.2' }],
      bad: [
        at({ ...DHCP, start: 'x' }, 'dhcp4.start', 'x'),
        at({ ...DHCP, end: '192.0.2.256' }, 'dhcp4.end', '192.0.2.256'),
        at({ start: '192.0.2.100', end: '192.0.2.50' }, 'dhcp4.end', '192.0.2.50'),
        at({ start: '192.0.2.100', end: '192.0.3.10' }, 'dhcp4.end', '192.0.3.10'),
        at({ start: '198.51.100.1', end: '198.51.100.9' }, 'dhcp4.start', '198.51.100.1'),
        at({ start: '192.0.2.1', end: '192.0.2.9' }, 'dhcp4.start', '192.0.2.1'),
        at({ start: '192.0.2.2' }, 'dhcp4.end', undefined),
      ],
    },
  ]);
});

describe('NetworkSpec', () => {
  test('fills defaults', () => {
    assert.deepEqual(decodeNetworkSpec({ type: 'bridged' }), { type: 'bridged', description: '', mtu: 1500 });
  });

  test('a managed network defaults to MTU 1450: the default clusterMtu 1500 minus the VXLAN overhead', () => {
    assert.equal(decodeNetworkSpec({ type: 'managed' }).mtu, 1450);
    assert.equal(decodeNetworkSpec({ type: 'managed', mtu: 9000 }).mtu, 9000);
  });

  test('VNI range per type: bridged 1-4094 (a vLAN id), managed 1-16777215', () => {
    for (const vni of [1, 4094, '100']) assert.equal(networkVniProblem('bridged', vni), undefined, String(vni));
    for (const vni of [0, 4095, 16777215, '4095', '0100', 1.5]) assert.match(networkVniProblem('bridged', vni) ?? '', /from 1 to 4094/, String(vni));
    for (const vni of [1, 4095, 16777215]) assert.equal(networkVniProblem('managed', vni), undefined, String(vni));
    for (const vni of [0, 16777216, -1]) assert.match(networkVniProblem('managed', vni) ?? '', /from 1 to 16777215/, String(vni));
  });

  test('MTU rules against the cluster config: bridged <= bridgeMtu, managed <= clusterMtu - 50', () => {
    const limits = { bridgeMtu: 9000, clusterMtu: 1500 };
    assert.equal(networkMtuProblem('bridged', 9000, limits), undefined);
    assert.match(networkMtuProblem('bridged', 9001, limits) ?? '', /at most 9000: the cluster config's bridgeMtu \(9000\)/);
    assert.equal(networkMtuProblem('managed', 1450, limits), undefined);
    assert.match(networkMtuProblem('managed', 1451, limits) ?? '', /at most 1450: the cluster config's clusterMtu \(1500\) - 50/);
  });

  test('type is required', () => {
    expectInvalid(() => decodeNetworkSpec({ mtu: 1500 }), 'spec.type');
  });

  test('a bridged network accepts no gateway or DHCP', () => {
    expectInvalid(() => decodeNetworkSpec({ type: 'bridged', gateway4: '192.0.2.1/24' }), 'spec.gateway4', '192.0.2.1/24');
    expectInvalid(() => decodeNetworkSpec({ type: 'bridged', gateway6: '2001:db8::1/64' }), 'spec.gateway6', '2001:db8::1/64');
    expectInvalid(() => decodeNetworkSpec({ type: 'bridged', dhcp4: DHCP }), 'spec.dhcp4', DHCP);
  });

  test('DHCP needs a gateway4 subnet', () => {
    expectInvalid(() => decodeNetworkSpec({ type: 'managed', dhcp4: DHCP }), 'spec.dhcp4.start', DHCP.start);
  });

  test('unknown fields are named, also inside dhcp4', () => {
    expectInvalid(() => decodeNetworkSpec({ ...MANAGED, vlan: 100 }), 'spec.vlan');
    expectInvalid(() => decodeNetworkSpec({ ...MANAGED, dhcp4: { ...DHCP, lease: 60 } }), 'spec.dhcp4.lease');
  });

  test('encoding is stable across key order and omitted defaults', () => {
    const a = encodeNetworkSpec({ type: 'managed', gateway4: '192.0.2.1/24', dhcp4: DHCP });
    const b = encodeNetworkSpec({ dhcp4: { end: DHCP.end, start: DHCP.start }, mtu: 1450, gateway4: '192.0.2.1/24', description: '', type: 'managed' });
    assert.equal(a, b);
  });

  test('parseCidr splits address, prefix and family', () => {
    assert.deepEqual(parseCidr('192.0.2.1/24'), { address: '192.0.2.1', prefix: 24, family: 4 });
    assert.deepEqual(parseCidr('2001:db8::1/64'), { address: '2001:db8::1', prefix: 64, family: 6 });
    assert.equal(parseCidr('192.0.2.1'), undefined);
    assert.equal(parseCidr('192.0.2.1/33'), undefined);
  });
});
