// The disk of the sandbox's QEMU guests: 1 MiB whose first sector is a boot sector that writes a
// greeting to COM1 and halts with interrupts off (no CPU used). The guests need no OS: they exist
// to be started, stopped and live-migrated, and the greeting gives `vk vm log` something to show.
// Attached read-only, so live migration needs no storage copy (libvirt skips read-only disks in
// its shared-storage check).
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';

/** Where the example manifests' XML expects it, inside a node's mount namespace. */
export const GUEST_IMAGE = '/var/lib/libvirt/images/vk-sandbox-guest.img';
export const GUEST_GREETING = 'virtkeeper sandbox guest: hello from the serial console';

/** 16-bit real-mode code loaded at 0x7C00 (hand-assembled; offsets in the comments). */
function bootSector(message: string): Buffer {
  const msgOffset = 40;
  const code = [
    0xfa, //                  0  cli
    0x31, 0xc0, //            1  xor ax, ax
    0x8e, 0xd8, //            3  mov ds, ax
    0x8e, 0xd0, //            5  mov ss, ax
    0xbc, 0x00, 0x7c, //      7  mov sp, 0x7c00
    0xfc, //                 10  cld
    0xbe, (0x7c00 + msgOffset) & 0xff, (0x7c00 + msgOffset) >> 8, // 11  mov si, msg
    0xac, //                 14  next: lodsb
    0x84, 0xc0, //           15  test al, al
    0x74, 0x12, //           17  jz halt (37)
    0x88, 0xc4, //           19  mov ah, al
    0xba, 0xfd, 0x03, //     21  mov dx, 0x3fd   (line status register)
    0xec, //                 24  wait: in al, dx
    0xa8, 0x20, //           25  test al, 0x20   (transmit holding register empty)
    0x74, 0xfb, //           27  jz wait (24)
    0x88, 0xe0, //           29  mov al, ah
    0xba, 0xf8, 0x03, //     31  mov dx, 0x3f8   (COM1 data)
    0xee, //                 34  out dx, al
    0xeb, 0xe9, //           35  jmp next (14)
    0xf4, //                 37  halt: hlt
    0xeb, 0xfd, //           38  jmp halt (37)
  ];
  if (code.length !== msgOffset) throw new Error(`boot sector code is ${code.length} bytes, expected ${msgOffset}`);
  const text = Buffer.from(`\r\n${message}\r\nno operating system here: the guest halts now\r\n\0`, 'latin1');
  if (msgOffset + text.length > 510) throw new Error('boot sector message too long');
  const sector = Buffer.alloc(512);
  Buffer.from(code).copy(sector, 0);
  text.copy(sector, msgOffset);
  sector[510] = 0x55;
  sector[511] = 0xaa;
  return sector;
}

export function guestImage(): Buffer {
  const disk = Buffer.alloc(1024 * 1024);
  bootSector(GUEST_GREETING).copy(disk, 0);
  return disk;
}

export function writeGuestImage(file: string): void {
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, guestImage());
}
