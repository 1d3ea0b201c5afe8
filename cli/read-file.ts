// Reading files people name (manifests, a VM's xmlFile, vk vm define's XML, plan files) without
// letting a path make vk read what it should not: every read is capped (/dev/zero must not grow
// vk to gigabytes), and a manifest's xmlFile must be a regular file inside the manifest's
// directory (a manifest cannot make vk read /etc/shadow). Errors say why a file was refused and
// never quote what it holds.
import { closeSync, constants, fstatSync, openSync, readSync, realpathSync } from 'node:fs';
import { sep } from 'node:path';
import { ValidationError } from '../schemas/index.ts';
import { usageError } from './errors.ts';

/** A file vk will not read, and why (the reason never quotes the file's content). */
export class FileRefused extends Error {
  readonly reason: string;
  constructor(reason: string) {
    super(reason);
    this.name = 'FileRefused';
    this.reason = reason;
  }
}

function why(error: unknown): FileRefused {
  const code = (error as NodeJS.ErrnoException).code;
  switch (code) {
    case 'ENOENT':
      return new FileRefused('no such file');
    case 'EISDIR':
      return new FileRefused('is a directory');
    case 'EACCES':
    case 'EPERM':
      return new FileRefused('permission denied');
    case 'ELOOP':
      return new FileRefused('too many levels of symbolic links');
    default:
      return new FileRefused(`cannot read it (${code ?? (error as Error).message})`);
  }
}

function sizeRefusal(bytes: number | string, maxBytes: number, what: string): FileRefused {
  return new FileRefused(`is ${bytes} bytes, larger than the limit of ${maxBytes >= 1024 ? `${maxBytes / 1024} KiB (${maxBytes} bytes)` : `${maxBytes} bytes`} for ${what}`);
}

/** Reads at most maxBytes from an open descriptor; more than that is a refusal. */
function readCapped(fd: number, maxBytes: number, what: string): string {
  const buffer = Buffer.alloc(Math.min(maxBytes + 1, 1 << 20));
  const chunks: Buffer[] = [];
  let total = 0;
  for (;;) {
    let n: number;
    try {
      n = readSync(fd, buffer, 0, buffer.length, null);
    } catch (error) {
      // A non-blocking descriptor (stdin, often) with nothing yet: wait a little and read again.
      if ((error as NodeJS.ErrnoException).code === 'EAGAIN') {
        Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 10);
        continue;
      }
      throw why(error);
    }
    if (n === 0) break;
    total += n;
    if (total > maxBytes) throw sizeRefusal(`more than ${maxBytes}`, maxBytes, what);
    chunks.push(Buffer.from(buffer.subarray(0, n)));
  }
  return Buffer.concat(chunks, total).toString('utf8');
}

/**
 * The text of a file named on the command line (a manifest, a plan, vk vm define's XML): any kind
 * of file (`-f /dev/stdin` works), of at most maxBytes. A refusal is bad input (exit 2):
 * `<file>: cannot read it: <why>`.
 */
export function readNamedFile(path: string, maxBytes: number, what: string): string {
  try {
    return readFileCapped(path, maxBytes, what);
  } catch (error) {
    if (error instanceof FileRefused) throw usageError(`${path}: cannot read it: ${error.reason}`);
    throw error;
  }
}

/**
 * The text on standard input (`-f -`), of at most maxBytes; a refusal is bad input (exit 2). Read
 * from descriptor 0 itself: a socket on stdin (what a parent process's pipe often is) cannot be
 * opened as /dev/stdin.
 */
export function readStdin(maxBytes: number, what: string): string {
  try {
    return readCapped(0, maxBytes, what);
  } catch (error) {
    if (error instanceof FileRefused) throw usageError(`(stdin): cannot read it: ${error.reason}`);
    throw error;
  }
}

/** The text of `path` (any kind of file), refused when it holds more than maxBytes. */
function readFileCapped(path: string, maxBytes: number, what: string): string {
  let fd: number;
  try {
    fd = openSync(path, constants.O_RDONLY);
  } catch (error) {
    throw why(error);
  }
  try {
    return readCapped(fd, maxBytes, what);
  } finally {
    closeSync(fd);
  }
}

/**
 * The text of `path`, which must resolve (symbolic links followed) to a regular file inside
 * `directory`, of at most maxBytes. Devices, FIFOs and sockets are refused without reading them.
 */
export function readRegularFileWithin(path: string, directory: string, maxBytes: number, what: string): string {
  let real: string;
  let base: string;
  try {
    base = realpathSync(directory);
    real = realpathSync(path);
  } catch (error) {
    throw why(error);
  }
  if (!real.startsWith(base.endsWith(sep) ? base : base + sep)) throw new FileRefused("is outside the manifest's directory");
  let fd: number;
  try {
    // O_NONBLOCK: opening a FIFO must not wait for a writer; O_NOFOLLOW: no link swapped in since realpath.
    fd = openSync(real, constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOFOLLOW);
  } catch (error) {
    throw why(error);
  }
  try {
    const stat = fstatSync(fd);
    if (!stat.isFile()) throw new FileRefused('is not a regular file');
    if (stat.size > maxBytes) throw sizeRefusal(stat.size, maxBytes, what);
    return readCapped(fd, maxBytes, what);
  } finally {
    closeSync(fd);
  }
}

/** Runs `fn` (a check of a file's content), dropping the values from its validation errors: they would quote the file. */
export function withoutFileContent<T>(fn: () => T): T {
  try {
    return fn();
  } catch (error) {
    if (error instanceof ValidationError) throw ValidationError.fromIssues(error.issues.map((issue) => ({ ...issue, showValue: false })));
    throw error;
  }
}
