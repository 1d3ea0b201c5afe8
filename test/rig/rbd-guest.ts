// A QEMU guest whose only disk is an RBD image (DESIGN §5 "QEMU with RBD disks"), built at test
// time with no downloads and no assembler: a 512-byte x86 boot sector, assembled below byte by
// byte, that SeaBIOS boots from the disk (virtio-blk or IDE). It
//
//   1. prints "vk-rbd-guest: booted" on COM1 (port 0x3f8; a `<serial type='file'>` makes it a file),
//   2. reads sector 1 (LBA 1, BIOS int 13h AH=02h); if it starts with "VKRB" the counter after it
//      carries on from there (a guest restarted elsewhere continues where the last write left off),
//      otherwise sector 1 is zeroed and stamped "VKRB",
//   3. forever: increments the 32-bit little-endian counter at bytes 4..7 of sector 1, writes the
//      sector back (int 13h AH=03h), prints "w" + the counter in 8 hex digits ("w0000002A"), or
//      "E" + the BIOS status (AH) in 8 hex digits when the write fails, then waits 0.5 s (int 15h
//      AH=86h, which halts the CPU meanwhile: an idle TCG guest costs little).
//
// librbd takes the image's exclusive lock on the first write, so a running guest holds it within
// about a second of boot, and after a live migration the target's first write moves it there.
// rbdGuestImage() pads the sector to a disk image (`rbd import` it); readCounter() reads the
// counter from the image's bytes (`rbd export POOL/IMAGE -`); serialProgress() reads the console
// log; rbdGuestXml() is the libvirt domain.

/** The stamp at the start of sector 1 ("VKRB"). */
export const RBD_GUEST_MAGIC = 'VKRB';
/** Seconds between writes. */
export const RBD_GUEST_WRITE_PERIOD_S = 0.5;
/** The line the guest prints once booted (before its first write). */
export const RBD_GUEST_BOOT_LINE = 'vk-rbd-guest: booted';
/** Default disk image size: 1 MiB (the BIOS needs sector 1 inside the disk; the rest is zeros). */
export const RBD_GUEST_IMAGE_BYTES = 1024 * 1024;

const LOAD_ADDRESS = 0x7c00;
/** The sector buffer (0000:8000), just above the boot sector. */
const BUFFER = 0x8000;

/** A tiny 16-bit emitter: bytes, labels, and fix-ups for rel8/rel16 jumps and absolute addresses. */
class Asm {
  private readonly out: number[] = [];
  private readonly labels = new Map<string, number>();
  private readonly fixups: Array<{ at: number; label: string; kind: 'rel8' | 'rel16' | 'abs16' }> = [];

  /** Raw bytes. */
  b(...bytes: number[]): this {
    for (const x of bytes) {
      if (!Number.isInteger(x) || x < 0 || x > 0xff) throw new Error(`not a byte: ${x}`);
      this.out.push(x);
    }
    return this;
  }

  /** A 16-bit little-endian immediate. */
  w(x: number): this {
    return this.b(x & 0xff, (x >> 8) & 0xff);
  }

  /** A 32-bit little-endian immediate. */
  d(x: number): this {
    return this.w(x & 0xffff).w((x >>> 16) & 0xffff);
  }

  label(name: string): this {
    if (this.labels.has(name)) throw new Error(`label ${name} defined twice`);
    this.labels.set(name, this.out.length);
    return this;
  }

  /** The 8-bit displacement of a short jump/jcc/loop to `label` (the last byte of the instruction). */
  rel8(label: string): this {
    this.fixups.push({ at: this.out.length, label, kind: 'rel8' });
    return this.b(0);
  }

  /** The 16-bit displacement of a near call to `label` (the last two bytes of the instruction). */
  rel16(label: string): this {
    this.fixups.push({ at: this.out.length, label, kind: 'rel16' });
    return this.w(0);
  }

  /** The address (segment 0) of `label` once loaded at 0000:7C00. */
  abs16(label: string): this {
    this.fixups.push({ at: this.out.length, label, kind: 'abs16' });
    return this.w(0);
  }

  /** A NUL-terminated ASCII string. */
  asciz(s: string): this {
    return this.b(...Buffer.from(s, 'latin1'), 0);
  }

  /** The boot sector: code, zeros up to byte 510, then the signature 55 AA. */
  sector(): Buffer {
    if (this.out.length > 510) throw new Error(`boot code is ${this.out.length} bytes, more than 510`);
    const buf = Buffer.alloc(512);
    Buffer.from(this.out).copy(buf);
    for (const f of this.fixups) {
      const target = this.labels.get(f.label);
      if (target === undefined) throw new Error(`undefined label ${f.label}`);
      if (f.kind === 'rel8') {
        const disp = target - (f.at + 1);
        if (disp < -128 || disp > 127) throw new Error(`short jump to ${f.label} out of range (${disp})`);
        buf.writeInt8(disp, f.at);
      } else if (f.kind === 'rel16') {
        buf.writeInt16LE(target - (f.at + 2), f.at);
      } else {
        buf.writeUInt16LE(LOAD_ADDRESS + target, f.at);
      }
    }
    buf[510] = 0x55;
    buf[511] = 0xaa;
    return buf;
  }
}

/**
 * The 512-byte boot sector (see the header). Each line is one instruction, in GNU as syntax; the
 * output was checked byte for byte against `as --32` + `ld --oformat binary -Ttext 0x7c00`.
 */
export function rbdGuestBootSector(): Buffer {
  const magic = Buffer.from(RBD_GUEST_MAGIC, 'latin1').readUInt32LE(0);
  const a = new Asm();
  a.b(0xfa); //                                       cli
  a.b(0x31, 0xc0); //                                 xor   %ax,%ax
  a.b(0x8e, 0xd8); //                                 mov   %ax,%ds
  a.b(0x8e, 0xc0); //                                 mov   %ax,%es
  a.b(0x8e, 0xd0); //                                 mov   %ax,%ss
  a.b(0xbc).w(LOAD_ADDRESS); //                       mov   $0x7c00,%sp
  a.b(0xfb); //                                       sti
  a.b(0xfc); //                                       cld
  a.b(0x88, 0x16).abs16('drive'); //                  mov   %dl,drive        (the BIOS boot drive)
  a.b(0xbe).abs16('msg_boot'); //                     mov   $msg_boot,%si
  a.b(0xe8).rel16('puts'); //                         call  puts
  a.b(0xb8).w(0x0201); //                             mov   $0x0201,%ax      (read 1 sector)
  a.b(0xe8).rel16('disk'); //                         call  disk
  a.b(0x72).rel8('fresh'); //                         jc    fresh
  a.b(0x66, 0x81, 0x3e).w(BUFFER).d(magic); //        cmpl  $"VKRB",buf
  a.b(0x74).rel8('loop'); //                          je    loop
  a.label('fresh');
  a.b(0xbf).w(BUFFER); //                             mov   $buf,%di
  a.b(0xb9).w(256); //                                mov   $256,%cx
  a.b(0x31, 0xc0); //                                 xor   %ax,%ax
  a.b(0xf3, 0xab); //                                 rep stosw
  a.b(0x66, 0xc7, 0x06).w(BUFFER).d(magic); //        movl  $"VKRB",buf
  a.label('loop');
  a.b(0x66, 0xff, 0x06).w(BUFFER + 4); //             incl  buf+4
  a.b(0xb8).w(0x0301); //                             mov   $0x0301,%ax      (write 1 sector)
  a.b(0xe8).rel16('disk'); //                         call  disk
  a.b(0x72).rel8('error'); //                         jc    error
  a.b(0xb0, 0x77); //                                 mov   $'w',%al
  a.b(0xe8).rel16('putc'); //                         call  putc
  a.b(0x66, 0xa1).w(BUFFER + 4); //                   mov   buf+4,%eax
  a.b(0xe8).rel16('puthex32'); //                     call  puthex32
  a.b(0xeb).rel8('newline'); //                       jmp   newline
  a.label('error');
  a.b(0x88, 0xe3); //                                 mov   %ah,%bl          (BIOS status)
  a.b(0xb0, 0x45); //                                 mov   $'E',%al
  a.b(0xe8).rel16('putc'); //                         call  putc
  a.b(0x66, 0x0f, 0xb6, 0xc3); //                     movzbl %bl,%eax
  a.b(0xe8).rel16('puthex32'); //                     call  puthex32
  a.label('newline');
  a.b(0xbe).abs16('msg_nl'); //                       mov   $msg_nl,%si
  a.b(0xe8).rel16('puts'); //                         call  puts
  const waitUs = Math.round(RBD_GUEST_WRITE_PERIOD_S * 1e6);
  a.b(0xb4, 0x86); //                                 mov   $0x86,%ah        (wait CX:DX µs)
  a.b(0xb9).w(waitUs >>> 16); //                      mov   $hi,%cx
  a.b(0xba).w(waitUs & 0xffff); //                    mov   $lo,%dx
  a.b(0xcd, 0x15); //                                 int   $0x15
  a.b(0xeb).rel8('loop'); //                          jmp   loop

  // disk: AX = function and count; cylinder 0, head 0, sector 2 (= LBA 1) of the boot drive, ES:BX = buf.
  a.label('disk');
  a.b(0xb9).w(0x0002); //                             mov   $0x0002,%cx
  a.b(0x30, 0xf6); //                                 xor   %dh,%dh
  a.b(0x8a, 0x16).abs16('drive'); //                  mov   drive,%dl
  a.b(0xbb).w(BUFFER); //                             mov   $buf,%bx
  a.b(0xcd, 0x13); //                                 int   $0x13
  a.b(0xc3); //                                       ret

  // puthex32: EAX as 8 hex digits.
  a.label('puthex32');
  a.b(0xb9).w(8); //                                  mov   $8,%cx
  a.label('hex_digit');
  a.b(0x66, 0xc1, 0xc0, 0x04); //                     rol   $4,%eax
  a.b(0x66, 0x50); //                                 push  %eax
  a.b(0x24, 0x0f); //                                 and   $0xf,%al
  a.b(0x04, 0x30); //                                 add   $'0',%al
  a.b(0x3c, 0x39); //                                 cmp   $'9',%al
  a.b(0x76).rel8('hex_put'); //                       jbe   hex_put
  a.b(0x04, 0x07); //                                 add   $7,%al           ('A'..'F')
  a.label('hex_put');
  a.b(0xe8).rel16('putc'); //                         call  putc
  a.b(0x66, 0x58); //                                 pop   %eax
  a.b(0xe2).rel8('hex_digit'); //                     loop  hex_digit
  a.b(0xc3); //                                       ret

  // puts: the NUL-terminated string at DS:SI.
  a.label('puts');
  a.b(0xac); //                                       lodsb
  a.b(0x84, 0xc0); //                                 test  %al,%al
  a.b(0x74).rel8('puts_end'); //                      jz    puts_end
  a.b(0xe8).rel16('putc'); //                         call  putc
  a.b(0xeb).rel8('puts'); //                          jmp   puts
  a.label('puts_end');
  a.b(0xc3); //                                       ret

  // putc: AL to COM1, once its transmit holding register is empty (LSR bit 5).
  a.label('putc');
  a.b(0x52); //                                       push  %dx
  a.b(0x50); //                                       push  %ax
  a.b(0xba).w(0x3fd); //                              mov   $0x3fd,%dx
  a.label('putc_wait');
  a.b(0xec); //                                       in    (%dx),%al
  a.b(0xa8, 0x20); //                                 test  $0x20,%al
  a.b(0x74).rel8('putc_wait'); //                     jz    putc_wait
  a.b(0x58); //                                       pop   %ax
  a.b(0xba).w(0x3f8); //                              mov   $0x3f8,%dx
  a.b(0xee); //                                       out   %al,(%dx)
  a.b(0x5a); //                                       pop   %dx
  a.b(0xc3); //                                       ret

  a.label('msg_boot').asciz(`${RBD_GUEST_BOOT_LINE}\r\n`);
  a.label('msg_nl').asciz('\r\n');
  a.label('drive').b(0);
  return a.sector();
}

/** The disk image: the boot sector, then zeros up to `bytes` (a multiple of 512, at least 1024). */
export function rbdGuestImage(bytes = RBD_GUEST_IMAGE_BYTES): Buffer {
  if (!Number.isInteger(bytes) || bytes < 1024 || bytes % 512 !== 0) throw new Error(`image size ${bytes}: want a multiple of 512, at least 1024`);
  const image = Buffer.alloc(bytes);
  rbdGuestBootSector().copy(image);
  return image;
}

/** The write counter in an image's bytes (at least its first 1024), or undefined before the first write. */
export function readCounter(image: Buffer): number | undefined {
  if (image.length < 1024 || image.toString('latin1', 512, 516) !== RBD_GUEST_MAGIC) return undefined;
  return image.readUInt32LE(516);
}

export interface SerialProgress {
  /** How many times the boot line appears (boots since the log was created). */
  boots: number;
  /** Counter values written, in order. */
  writes: number[];
  /** BIOS status codes of failed writes, in order. */
  errors: number[];
}

/** What the guest printed so far (its serial log's text). */
export function serialProgress(log: string): SerialProgress {
  const p: SerialProgress = { boots: 0, writes: [], errors: [] };
  for (const raw of log.split('\n')) {
    const line = raw.replace(/\r$/, '');
    let m: RegExpExecArray | null;
    if (line.endsWith(RBD_GUEST_BOOT_LINE)) p.boots++;
    else if ((m = /^w([0-9A-F]{8})$/.exec(line))) p.writes.push(Number.parseInt(m[1]!, 16));
    else if ((m = /^E([0-9A-F]{8})$/.exec(line))) p.errors.push(Number.parseInt(m[1]!, 16));
  }
  return p;
}

export interface RbdGuestXmlOptions {
  name: string;
  /** "POOL/IMAGE". */
  image: string;
  /** Monitor addresses (msgr2: port 3300); may be empty when `cephConf` names them (mon host). */
  monitors: ReadonlyArray<{ host: string; port?: number }>;
  /** The guest's COM1 goes to this file (appended to, so a migration's target carries on in it). */
  serialLog?: string;
  /** A ceph.conf for librbd (`<config file=…/>`; libvirt ≥ 7.1); none by default. */
  cephConf?: string;
  /** virtio (default) or ide: SeaBIOS boots from either. */
  bus?: 'virtio' | 'ide';
  /** Default 128. */
  memoryMiB?: number;
}

const xmlAttr = (s: string): string => s.replace(/&/g, '&amp;').replace(/'/g, '&apos;').replace(/</g, '&lt;').replace(/"/g, '&quot;');

/**
 * A TCG domain whose only disk is the RBD image, with no `<auth>` (the test Ceph runs auth none:
 * librados then offers "cephx, none" and the monitor picks none) and no conf file unless given
 * (librados then looks at $CEPH_CONF and /etc/ceph/ceph.conf and goes on without one). No
 * graphics, no network, no balloon; COM1 to a file when `serialLog` is given (a path as libvirtd
 * and QEMU see it), else to a pty.
 */
export function rbdGuestXml(o: RbdGuestXmlOptions): string {
  if (!/^[^/@\s]+\/[^/@\s]+$/.test(o.image)) throw new Error(`image ${JSON.stringify(o.image)}: want POOL/IMAGE`);
  if (o.monitors.length === 0 && !o.cephConf) throw new Error('no monitors and no ceph.conf');
  const bus = o.bus ?? 'virtio';
  const hosts = o.monitors.map((m) => `<host name='${xmlAttr(m.host)}' port='${m.port ?? 3300}'/>`).join('');
  const config = o.cephConf ? `<config file='${xmlAttr(o.cephConf)}'/>` : '';
  const serial = o.serialLog
    ? `<serial type='file'><source path='${xmlAttr(o.serialLog)}' append='on'/><target port='0'/></serial>`
    : `<serial type='pty'><target port='0'/></serial>`;
  return `<domain type='qemu'>
  <name>${xmlAttr(o.name)}</name>
  <memory unit='MiB'>${o.memoryMiB ?? 128}</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64' machine='pc'>hvm</type><boot dev='hd'/></os>
  <on_poweroff>destroy</on_poweroff><on_reboot>restart</on_reboot><on_crash>destroy</on_crash>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <disk type='network' device='disk'>
      <driver name='qemu' type='raw' cache='none'/>
      <source protocol='rbd' name='${xmlAttr(o.image)}'>${hosts}${config}</source>
      <target dev='${bus === 'virtio' ? 'vda' : 'hda'}' bus='${bus}'/>
    </disk>
    ${serial}
    <video><model type='none'/></video>
    <memballoon model='none'/>
  </devices>
</domain>`;
}
