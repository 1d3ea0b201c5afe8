import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { describe, test } from 'node:test';
import { parseDomainXml, parseVmXml, ValidationError, xmlHash } from '../../schemas/index.ts';
import { expectInvalid } from './helpers.ts';

const FULL = `<?xml version="1.0" encoding="UTF-8"?>
<!-- a comment -->
<domain type='kvm'>
  <name>web1</name>
  <uuid>C7A5FDBD-EDAF-9455-926A-D65C16DB1809</uuid>
  <memory unit='MiB'>512</memory>
  <currentMemory unit='MiB'>512</currentMemory>
  <vcpu placement='static'>2</vcpu>
  <devices>
    <disk type='network' device='disk'>
      <source protocol='rbd' name='vms/web1_disk0'><host name='192.0.2.10' port='6789'/></source>
      <target dev='vda' bus='virtio'/>
    </disk>
    <disk type='file' device='cdrom'><source file='/srv/iso/debian.iso'/></disk>
    <disk type='network' device='disk'><source protocol='rbd' name='vms/web1_disk1'/></disk>
    <interface type='bridge'><source bridge='vmbr100'/><model type='virtio'/></interface>
    <interface type='network'><source network='default'/></interface>
    <interface type='bridge'><source bridge='vmbr200'/></interface>
    <interface type='bridge'><source bridge='vmbr100'/></interface>
    <serial type='pty'><log file='/var/log/libvirt/web1.log' append='off'/></serial>
    <console type='pty'/>
  </devices>
</domain>`;

/** A minimal domain with `inner` in place of the usual children. */
const domain = (inner: string, attrs = `type='kvm'`) => `<domain ${attrs}>${inner}</domain>`;
const NAME_MEM = '<name>vm1</name><memory>1048576</memory>';

describe('parseDomainXml', () => {
  test('reads everything virtkeeper needs', () => {
    assert.deepEqual(parseDomainXml(FULL), {
      name: 'web1',
      uuid: 'c7a5fdbd-edaf-9455-926a-d65c16db1809',
      memoryKiB: 512 * 1024,
      vcpus: 2,
      bridges: ['vmbr100', 'vmbr200'],
      rbd: ['vms/web1_disk0', 'vms/web1_disk1'],
      otherDisks: [],
      serialLog: '/var/log/libvirt/web1.log',
      type: 'kvm',
    });
  });

  test('otherDisks: writable non-RBD disks (what a storage fence cannot cover); cdroms, read-only disks and RBD disks are not', () => {
    const info = parseDomainXml(
      domain(`${NAME_MEM}<devices>
        <disk type='file' device='disk'><source file='/var/lib/vk/db.img'/><target dev='vdb'/></disk>
        <disk type='block' device='lun'><source dev='/dev/sdx'/><target dev='sda'/></disk>
        <disk type='file' device='disk'><source file='/srv/ro.img'/><target dev='vdc'/><readonly/></disk>
        <disk type='file' device='cdrom'><source file='/srv/a.iso'/><target dev='hdc'/></disk>
        <disk type='network' device='disk'><source protocol='rbd' name='p/i'/><target dev='vda'/></disk>
        <disk type='network' device='disk'><source protocol='iscsi' name='iqn.x/1'/><target dev='vdd'/></disk>
      </devices>`),
    );
    assert.deepEqual(info.otherDisks, ['vdb (file /var/lib/vk/db.img)', 'sda (block /dev/sdx)', 'vdd (network iqn.x/1)']);
    assert.deepEqual(info.rbd, ['p/i']);
  });

  test('a single device reads like a list of one', () => {
    const info = parseDomainXml(
      domain(`${NAME_MEM}<devices><interface type='bridge'><source bridge='br0'/></interface><disk type='network'><source protocol='rbd' name='p/i'/></disk></devices>`),
    );
    assert.deepEqual(info.bridges, ['br0']);
    assert.deepEqual(info.rbd, ['p/i']);
  });

  test('defaults: no uuid, one vCPU, no devices', () => {
    const info = parseDomainXml(domain(NAME_MEM, `type='test'`));
    assert.equal(info.uuid, undefined);
    assert.equal(info.vcpus, 1);
    assert.equal(info.memoryKiB, 1048576);
    assert.deepEqual(info.bridges, []);
    assert.deepEqual(info.rbd, []);
    assert.equal(info.serialLog, undefined);
    assert.equal(info.type, 'test');
  });

  test('takes the log of a <console> when no <serial> has one', () => {
    const xml = domain(`${NAME_MEM}<devices><serial type='pty'/><console type='pty'><log file='/var/log/vm1.log'/></console></devices>`);
    assert.equal(parseDomainXml(xml).serialLog, '/var/log/vm1.log');
  });

  const units: [string, string, number][] = [
    ['b', '1048576', 1024],
    ['bytes', '1000', 1],
    ['KB', '1024', 1000],
    ['k', '2048', 2048],
    ['KiB', '2048', 2048],
    ['MB', '1', 977],
    ['M', '256', 262144],
    ['MiB', '256', 262144],
    ['GB', '1', 976563],
    ['G', '2', 2097152],
    ['GiB', '2', 2097152],
    ['TiB', '1', 1073741824],
  ];
  for (const [unit, amount, kib] of units) {
    test(`memory ${amount} ${unit} is ${kib} KiB`, () => {
      assert.equal(parseDomainXml(domain(`<name>vm1</name><memory unit='${unit}'>${amount}</memory>`)).memoryKiB, kib);
    });
  }

  test('memory without a unit is in KiB and may be padded with spaces', () => {
    assert.equal(parseDomainXml(domain('<name>vm1</name><memory> 4096 </memory>')).memoryKiB, 4096);
  });

  test("'--' inside a comment is rejected, as libvirt's parser does", () => {
    const bad = `<domain type='test'><!-- a -- b --><name>vm1</name><memory>1024</memory></domain>`;
    assert.throws(() => parseDomainXml(bad), (e: unknown) => e instanceof ValidationError && e.field === 'xml' && /'--' is not allowed inside a comment/.test(e.message));
    assert.throws(() => parseDomainXml(`<domain type='test'><!-- ends with ---><name>vm1</name><memory>1</memory></domain>`), ValidationError);
    assert.equal(parseDomainXml(`<domain type='test'><!-- a - b --><name>vm1</name><memory>1</memory></domain>`).name, 'vm1');
  });

  test('memory -1 is rejected, naming the field and the value', () => {
    const error = expectInvalid(() => parseDomainXml(domain('<name>vm1</name><memory>-1</memory>')), 'xml/domain/memory', '-1');
    assert.match(error.message, /positive integer/);
  });

  for (const bad of ['0', '1.5', 'lots', '']) {
    test(`memory ${JSON.stringify(bad)} is rejected`, () => {
      expectInvalid(() => parseDomainXml(domain(`<name>vm1</name><memory>${bad}</memory>`)), 'xml/domain/memory', bad);
    });
  }

  test('an unknown memory unit is rejected', () => {
    expectInvalid(() => parseDomainXml(domain(`<name>vm1</name><memory unit='furlongs'>1</memory>`)), 'xml/domain/memory/@unit', 'furlongs');
  });

  test('missing memory is rejected', () => {
    expectInvalid(() => parseDomainXml(domain('<name>vm1</name>')), 'xml/domain/memory');
  });

  for (const bad of ['0', '-2', 'two', '1.5']) {
    test(`vcpu ${JSON.stringify(bad)} is rejected`, () => {
      expectInvalid(() => parseDomainXml(domain(`${NAME_MEM}<vcpu>${bad}</vcpu>`)), 'xml/domain/vcpu', bad);
    });
  }

  test('malformed XML is rejected with line and column', () => {
    const xml = `<domain type='kvm'>\n  <name>web1</nam>\n</domain>`;
    const error = expectInvalid(() => parseDomainXml(xml), 'xml', '<name>web1</nam>');
    assert.match(error.message, /malformed XML at line 2, column \d+/);
    assert.match(error.message, /closing tag/);
  });

  test('an unclosed document is rejected', () => {
    const error = expectInvalid(() => parseDomainXml(`<domain type='kvm'><name>web1</name>`), 'xml');
    assert.match(error.message, /malformed XML at line 1/);
  });

  test('text that is not XML at all is rejected', () => {
    expectInvalid(() => parseDomainXml('name: web1'), 'xml');
    expectInvalid(() => parseDomainXml(''), 'xml');
  });

  test('a DOCTYPE (entity expansion) is refused', () => {
    const xml = `<!DOCTYPE domain [<!ENTITY n "web1">]>\n<domain type='kvm'><name>&n;</name><memory>1</memory></domain>`;
    const error = expectInvalid(() => parseDomainXml(xml), 'xml');
    assert.match(error.message, /DOCTYPE/);
  });

  test('the root must be <domain>', () => {
    expectInvalid(() => parseDomainXml(`<network><name>x</name></network>`), 'xml', '<network>');
    expectInvalid(() => parseDomainXml(`<domain type='kvm'/><domain type='kvm'/>`), 'xml');
  });

  test('XML with no name is rejected', () => {
    const error = expectInvalid(() => parseDomainXml(domain('<memory>1024</memory>')), 'xml/domain/name');
    assert.match(error.message, /no <name>/);
  });

  test('character references are decoded as libvirt does', () => {
    assert.equal(parseDomainXml(domain('<name>&#119;eb&#x31;</name><memory>1</memory>')).name, 'web1');
    expectInvalid(() => parseDomainXml(domain('<name>a&amp;b</name><memory>1</memory>')), 'xml/domain/name', 'a&b');
    expectInvalid(() => parseDomainXml(domain('<name>web&#47;1</name><memory>1</memory>')), 'xml/domain/name', 'web/1');
  });

  test('control characters, raw or as references, are malformed XML', () => {
    for (const [name, shown] of [['web&#7;1', '&#7;'], ['web&#x0;1', '&#x0;'], ['web\u00071', '\u0007']]) {
      const error = expectInvalid(() => parseDomainXml(domain(`<name>${name}</name><memory>1</memory>`)), 'xml', shown);
      assert.match(error.message, /malformed XML at line 1, column 29/);
    }
  });

  test('entities other than the five predefined are refused', () => {
    const error = expectInvalid(() => parseDomainXml(domain('<name>web&nbsp;1</name><memory>1</memory>')), 'xml', '&nbsp;');
    assert.match(error.message, /undefined entity/);
  });

  test('two names are rejected', () => {
    expectInvalid(() => parseDomainXml(domain('<name>a</name><name>b</name><memory>1</memory>')), 'xml/domain/name');
  });

  for (const bad of ['web/1', '..', 'Web1', 'a'.repeat(64), ' web1', 'web\u00a01']) {
    test(`the domain name ${JSON.stringify(bad)} is rejected`, () => {
      const error = expectInvalid(
        () => parseDomainXml(domain(`<name>${bad}</name><memory>1</memory>`)),
        'xml/domain/name',
        bad,
      );
      assert.match(error.message, /invalid name/);
    });
  }

  test('uuid must be 8-4-4-4-12 hex', () => {
    for (const bad of ['c7a5fdbdedaf9455926ad65c16db1809', 'c7a5fdbd-edaf-9455-926a-d65c16db180', 'z7a5fdbd-edaf-9455-926a-d65c16db1809']) {
      expectInvalid(() => parseDomainXml(domain(`${NAME_MEM}<uuid>${bad}</uuid>`)), 'xml/domain/uuid', bad);
    }
  });

  test('the domain type is required and checked', () => {
    expectInvalid(() => parseDomainXml(`<domain>${NAME_MEM}</domain>`), 'xml/domain/@type');
    expectInvalid(() => parseDomainXml(domain(NAME_MEM, `type='K V M'`)), 'xml/domain/@type', 'K V M');
  });

  test('a bridge interface needs a valid bridge name', () => {
    expectInvalid(
      () => parseDomainXml(domain(`${NAME_MEM}<devices><interface type='bridge'/></devices>`)),
      'xml/domain/devices/interface[1]/source/@bridge',
    );
    expectInvalid(
      () => parseDomainXml(domain(`${NAME_MEM}<devices><interface type='network'/><interface type='bridge'><source bridge='br/0'/></interface></devices>`)),
      'xml/domain/devices/interface[2]/source/@bridge',
      'br/0',
    );
  });

  test("an RBD disk needs a 'pool/image' name", () => {
    expectInvalid(
      () => parseDomainXml(domain(`${NAME_MEM}<devices><disk type='network'><source protocol='rbd' name='justimage'/></disk></devices>`)),
      'xml/domain/devices/disk[1]/source/@name',
      'justimage',
    );
    expectInvalid(
      () => parseDomainXml(domain(`${NAME_MEM}<devices><disk type='network'><source protocol='rbd'/></disk></devices>`)),
      'xml/domain/devices/disk[1]/source/@name',
    );
  });

  test('network disks of other protocols are not RBD', () => {
    const xml = domain(`${NAME_MEM}<devices><disk type='network'><source protocol='iscsi' name='iqn.2024-01.x:t/1'/></disk></devices>`);
    assert.deepEqual(parseDomainXml(xml).rbd, []);
  });

  test('a serial log must be an absolute path', () => {
    expectInvalid(
      () => parseDomainXml(domain(`${NAME_MEM}<devices><serial type='pty'><log file='vm1.log'/></serial></devices>`)),
      'xml/domain/devices/serial[1]/log/@file',
      'vm1.log',
    );
  });

  test('the field prefix is configurable', () => {
    expectInvalid(() => parseDomainXml('<domain', 'spec.xml'), 'spec.xml');
  });
});

describe('parseVmXml', () => {
  test('accepts a domain named after its VM', () => {
    assert.equal(parseVmXml(FULL, 'web1').name, 'web1');
  });
  test('rejects a domain named otherwise', () => {
    const error = expectInvalid(() => parseVmXml(FULL, 'web2'), 'xml/domain/name', 'web1');
    assert.match(error.message, /"web2"/);
  });
});

describe('xmlHash', () => {
  test('is the sha256 hex of the text', () => {
    assert.equal(xmlHash('abc'), 'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
    assert.equal(xmlHash(FULL), createHash('sha256').update(FULL).digest('hex'));
  });
  test('changes with any change to the XML', () => {
    assert.notEqual(xmlHash(FULL), xmlHash(FULL.replace('512', '513')));
  });
});
