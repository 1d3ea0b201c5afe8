// The RBD test guest (test/rig/rbd-guest.ts) without Ceph: the boot sector's shape (512 bytes,
// signature 55 AA at 510, the boot line in it), the padded image, the counter and serial-log
// readers, and the libvirt XML. Then, when QEMU is installed, the real thing on a local raw file
// instead of an RBD image: SeaBIOS boots it from virtio-blk, it prints its boot line and its writes
// on COM1, the counter lands in sector 1 of the file, and a second boot carries on from it.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import {
  RBD_GUEST_BOOT_LINE,
  RBD_GUEST_IMAGE_BYTES,
  RBD_GUEST_MAGIC,
  rbdGuestBootSector,
  rbdGuestImage,
  rbdGuestXml,
  readCounter,
  serialProgress,
} from '../rig/rbd-guest.ts';
import { waitFor } from '../rig/wait.ts';

const QEMU = '/usr/bin/qemu-system-x86_64';

describe('rbd guest image', () => {
  it('is a 512-byte boot sector with the signature 55 AA at 510', () => {
    const s = rbdGuestBootSector();
    assert.equal(s.length, 512);
    assert.equal(s[510], 0x55);
    assert.equal(s[511], 0xaa);
    assert.equal(s.readUInt16LE(510), 0xaa55);
    assert.equal(s[0], 0xfa, 'starts with cli');
    assert.ok(s.includes(Buffer.from(`${RBD_GUEST_BOOT_LINE}\r\n\0`, 'latin1')), 'carries its boot line');
    assert.ok(rbdGuestBootSector().equals(s), 'deterministic');
  });

  it('pads to a disk image whose sector 1 is empty (no counter yet)', () => {
    const img = rbdGuestImage();
    assert.equal(img.length, RBD_GUEST_IMAGE_BYTES);
    assert.ok(img.subarray(0, 512).equals(rbdGuestBootSector()));
    assert.ok(img.subarray(512).every((b) => b === 0));
    assert.equal(readCounter(img), undefined);
    assert.equal(rbdGuestImage(4096).length, 4096);
    assert.throws(() => rbdGuestImage(512), /at least 1024/);
    assert.throws(() => rbdGuestImage(1000), /multiple of 512/);
  });

  it('reads the counter from sector 1', () => {
    const img = rbdGuestImage(2048);
    img.write(RBD_GUEST_MAGIC, 512, 'latin1');
    img.writeUInt32LE(0x12345678, 516);
    assert.equal(readCounter(img), 0x12345678);
    assert.equal(readCounter(img.subarray(0, 1000)), undefined);
  });

  it('reads the serial log', () => {
    const log = `SeaBIOS noise\r\n${RBD_GUEST_BOOT_LINE}\r\nw00000001\r\nw0000000A\r\nE00000080\r\n${RBD_GUEST_BOOT_LINE}\r\nw0000000B\r\nw0000`;
    assert.deepEqual(serialProgress(log), { boots: 2, writes: [1, 10, 11], errors: [0x80] });
    assert.deepEqual(serialProgress(''), { boots: 0, writes: [], errors: [] });
  });

  it('makes a domain whose only disk is the RBD image, without auth', () => {
    const xml = rbdGuestXml({ name: 'g1', image: 'rbd/g1', monitors: [{ host: '198.51.100.254' }], serialLog: '/tmp/g1.serial' });
    assert.match(xml, /<domain type='qemu'>/);
    assert.match(xml, /<disk type='network' device='disk'>/);
    assert.match(xml, /<driver name='qemu' type='raw' cache='none'\/>/);
    assert.match(xml, /<source protocol='rbd' name='rbd\/g1'><host name='198\.51\.100\.254' port='3300'\/><\/source>/);
    assert.match(xml, /<target dev='vda' bus='virtio'\/>/);
    assert.match(xml, /<serial type='file'><source path='\/tmp\/g1\.serial' append='on'\/>/);
    assert.doesNotMatch(xml, /<auth|<interface|<graphics/);
    assert.equal(xml.match(/<disk /g)?.length, 1);

    const ide = rbdGuestXml({ name: 'g2', image: 'p/i', monitors: [], cephConf: '/tmp/c.conf', bus: 'ide', memoryMiB: 64 });
    assert.match(ide, /<source protocol='rbd' name='p\/i'><config file='\/tmp\/c\.conf'\/><\/source>/);
    assert.match(ide, /<target dev='hda' bus='ide'\/>/);
    assert.match(ide, /<memory unit='MiB'>64<\/memory>/);
    assert.match(ide, /<serial type='pty'>/);

    assert.throws(() => rbdGuestXml({ name: 'x', image: 'noslash', monitors: [{ host: '198.51.100.254' }] }), /POOL\/IMAGE/);
    assert.throws(() => rbdGuestXml({ name: 'x', image: 'p/i', monitors: [] }), /no monitors/);
  });
});

describe('rbd guest under QEMU (local raw file, no Ceph)', { skip: existsSync(QEMU) ? false : `${QEMU} is missing`, timeout: 60_000 }, () => {
  let dir = '';
  let disk = '';
  let qemu: ChildProcess | undefined;

  /** Boots the disk: the serial log's path and the QEMU process. */
  const boot = (n: number): { log: string; child: ChildProcess } => {
    const log = join(dir, `serial-${n}.log`);
    writeFileSync(log, '');
    const argv = ['-machine', 'pc', '-m', '64', '-display', 'none', '-nodefaults', '-no-user-config', '-serial', `file:${log}`];
    const child = spawn(QEMU, [...argv, '-drive', `file=${disk},if=virtio,format=raw`], { stdio: 'ignore' });
    qemu = child;
    return { log, child };
  };

  /** SIGKILL by PID, then wait for the exit. */
  const kill = async (child: ChildProcess): Promise<void> => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGKILL');
    await exited;
  };

  after(async () => {
    if (qemu) await kill(qemu);
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('boots from virtio-blk, prints its writes and keeps its counter in sector 1 across boots', async () => {
    dir = mkdtempSync(join(tmpdir(), 'vk-rbd-guest-'));
    disk = join(dir, 'disk.img');
    writeFileSync(disk, rbdGuestImage());
    const first = boot(1);
    const p1 = await waitFor('two writes on the first boot', () => {
      const p = serialProgress(readFileSync(first.log, 'latin1'));
      return p.writes.length >= 2 ? p : undefined;
    }, 30_000, () => readFileSync(first.log, 'latin1'));
    await kill(first.child);
    assert.equal(p1.boots, 1);
    assert.deepEqual(p1.writes.slice(0, 2), [1, 2]);
    assert.deepEqual(p1.errors, []);
    const onDisk = readCounter(readFileSync(disk));
    assert.ok(onDisk !== undefined && onDisk >= p1.writes.at(-1)!, `counter on disk ${onDisk} after writes ${p1.writes.join(',')}`);

    const second = boot(2);
    const p2 = await waitFor('a write on the second boot', () => {
      const p = serialProgress(readFileSync(second.log, 'latin1'));
      return p.writes.length >= 1 ? p : undefined;
    }, 30_000, () => readFileSync(second.log, 'latin1'));
    await kill(second.child);
    assert.equal(p2.writes[0], onDisk + 1, 'the second boot carries on from the counter on disk');
  });
});
