// The gateway lines and DHCP servers a node's duties imply (reconcilers/primary/local.ts), G1–G4.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { desiredDhcp, desiredGateways, gatewayTiming, planGateways, RENEW_WITHIN_MS, renewLines, renewPass, type NetworkView } from '../../reconcilers/primary/local.ts';
import { decodeNetworkSpec, gatewayMac } from '../../schemas/index.ts';

const ready = (node: string) => ({ nodes: { [node]: { ready: true, observedGeneration: 0, updatedAt: '2026-12-04T12:00:00.000Z' } } });
const nets: NetworkView[] = [
  { vni: 200, spec: decodeNetworkSpec({ type: 'managed', gateway4: '203.0.113.1/24', dhcp4: { start: '203.0.113.100', end: '203.0.113.199' }, domain: 'tenant.example' }), status: ready('hv1') },
  { vni: 300, spec: decodeNetworkSpec({ type: 'managed', gateway4: '198.51.100.129/25' }), status: ready('hv1') },
  { vni: 400, spec: decodeNetworkSpec({ type: 'managed', gateway4: '192.0.2.1/24' }), status: ready('hv2') },
  { vni: 500, spec: decodeNetworkSpec({ type: 'managed' }), status: ready('hv1') },
  { vni: 10, spec: decodeNetworkSpec({ type: 'bridged' }), status: ready('hv1') },
];

describe('gateways', () => {
  it('G4: a managed network with gateway4 whose links are ready here', () => {
    const d = desiredGateways(nets, 'hv1');
    assert.deepEqual(d.map((g) => g.vni), [200, 300]);
    assert.deepEqual(d[0], { vni: 200, device: 'vkgw200', bridge: 'vkbr200', mac: '02:76:6b:00:00:c8', address: '203.0.113.1', prefixLength: 24 });
    assert.equal(gatewayMac(16_777_215), '02:76:6b:ff:ff:ff');
  });

  it('DHCP/DNS runs for a network with a range or a domain', () => {
    const w = desiredDhcp(nets, desiredGateways(nets, 'hv1'));
    assert.deepEqual(w, [{ vni: 200, interface: 'vkgw200', address: '203.0.113.1', prefixLength: 24, range: { start: '203.0.113.100', end: '203.0.113.199' }, domain: 'tenant.example' }]);
  });

  it('G2/G3: adds missing ones with a lifetime and announces them; renews present ones; removes the rest', () => {
    const d = desiredGateways(nets, 'hv1');
    const p = planGateways(d, [], 4245, 3);
    assert.deepEqual(p.lines.slice(0, 4), [
      'link add vkgw200 link vkbr200 address 02:76:6b:00:00:c8 group 4245 type macvlan mode bridge',
      'link set dev vkgw200 addrgenmode none',
      'address add 203.0.113.1/24 dev vkgw200 valid_lft 3 preferred_lft 3',
      'link set dev vkgw200 up',
    ]);
    assert.deepEqual(p.announce.map((g) => g.vni), [200, 300]);
    const observed = [
      { name: 'vkgw200', link: 'vkbr200', mac: '02:76:6b:00:00:c8', up: true, kind: 'macvlan', addresses: [{ address: '203.0.113.1', prefixLength: 24, validS: 2 }] },
      { name: 'vkgw300', link: 'vkbr300', mac: '02:76:6b:00:01:2c', up: false, kind: 'macvlan', addresses: [{ address: '198.51.100.1', prefixLength: 24, validS: 2 }] },
      { name: 'vkgw999', link: 'vkbr999', mac: '02:76:6b:00:03:e7', up: true, kind: 'macvlan', addresses: [] },
    ];
    const q = planGateways(d, observed, 4245, 3);
    assert.deepEqual(q.lines, [
      'link del dev vkgw999',
      'address change 203.0.113.1/24 dev vkgw200 valid_lft 3 preferred_lft 3',
      'link set dev vkgw300 up',
      'address del 198.51.100.1/24 dev vkgw300',
      'address add 198.51.100.129/25 dev vkgw300 valid_lft 3 preferred_lft 3',
    ]);
    assert.deepEqual(q.announce.map((g) => g.vni), [300]);
    assert.deepEqual(planGateways([], observed, 4245, 3).lines, ['link del dev vkgw200', 'link del dev vkgw300', 'link del dev vkgw999']);
    const wrongMac = planGateways(d.slice(0, 1), [{ ...observed[0]!, mac: '02:00:00:00:00:01' }], 4245, 3);
    assert.equal(wrongMac.lines[0], 'link del dev vkgw200');
    assert.equal(wrongMac.lines[1], 'link add vkgw200 link vkbr200 address 02:76:6b:00:00:c8 group 4245 type macvlan mode bridge');
    assert.deepEqual(renewLines(d.slice(0, 1), 3), ['address change 203.0.113.1/24 dev vkgw200 valid_lft 3 preferred_lft 3']);
    // A renewal changes only addresses that are there: vkgw300's address lapsed (a change would re-create it).
    const r = renewPass(d, observed, 3);
    assert.deepEqual(r.lines, ['address change 203.0.113.1/24 dev vkgw200 valid_lft 3 preferred_lft 3']);
    assert.deepEqual(r.missing.map((g) => g.vni), [300]);
    assert.deepEqual(renewPass(d, [], 3), { lines: [], missing: d });
  });

  it('the address lifetime (plus the kernel\'s up to 1 s of rounding and the renewal\'s delay) stays under the session timeout', () => {
    assert.deepEqual(gatewayTiming(4000), { lifetimeS: 1, renewMs: 250, landByMs: 2000, startByMs: 1000 });
    assert.deepEqual(gatewayTiming(10_000), { lifetimeS: 4, renewMs: 1000, landByMs: 5000, startByMs: 2500 });
    for (const t of [3000, 4000, 6000, 10_000, 30_000]) {
      const { lifetimeS, renewMs, landByMs, startByMs } = gatewayTiming(t);
      // The in-process check comes first; the `ip` process's own bound leaves it as long again to land.
      assert.ok(startByMs >= RENEW_WITHIN_MS && startByMs * 2 <= landByMs, `session ${t}: start by ${startByMs}, land by ${landByMs}`);
      assert.ok(lifetimeS * 1000 + 1000 + RENEW_WITHIN_MS + 500 <= t, `session ${t}: lifetime ${lifetimeS}`);
      assert.ok(renewMs * 3 <= lifetimeS * 1000, `session ${t}: renew every ${renewMs}`);
      // A write landing at landByMs after its read was sent is gone (lifetime + rounding) by T.
      assert.equal(landByMs + lifetimeS * 1000 + 1000, t);
      assert.ok(landByMs >= 2 * RENEW_WITHIN_MS, `session ${t}: a write has ${landByMs} ms to land`);
    }
  });
});
