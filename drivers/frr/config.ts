// confDir/frr.conf for the FRR driver: read it (undefined when there is none) and replace it
// atomically: write confDir/frr.conf.tmp (mode 0640, owned like confDir, so FRR's user reads it
// as on a Debian host: /etc/frr is frr:frr and frr.conf frr:frr 0640), fsync, rename over.
import { chown, open, readFile, rename, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { FrrError, type FrrLocation } from './types.ts';

export const CONFIG_MODE = 0o640;

/** Rejects with FrrCommandFailed when `work` takes longer than timeoutMs (a file system that hangs). */
function bounded<T>(what: string, timeoutMs: number, work: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new FrrError('FrrCommandFailed', `${what}: not done within ${timeoutMs} ms`)), timeoutMs);
  });
  return Promise.race([work, timeout]).finally(() => clearTimeout(timer));
}

const failed = (what: string, e: unknown): FrrError => new FrrError('FrrCommandFailed', `${what}: ${(e as Error).message}`);

export function readConfig(location: FrrLocation): Promise<string | undefined> {
  const file = join(location.confDir, 'frr.conf');
  return bounded(
    `reading ${file}`,
    location.timeoutMs,
    readFile(file, 'utf8').catch((e: NodeJS.ErrnoException) => {
      if (e.code === 'ENOENT') return undefined;
      throw failed(`reading ${file}`, e);
    }),
  );
}

async function write(location: FrrLocation, text: string): Promise<void> {
  const file = join(location.confDir, 'frr.conf');
  const tmp = `${file}.tmp`;
  const what = `writing ${file}`;
  try {
    const owner = await stat(location.confDir);
    const fh = await open(tmp, 'w', CONFIG_MODE);
    try {
      await fh.chmod(CONFIG_MODE); // the mode of open() applies only to a new file, and under the umask
      await fh.writeFile(text, 'utf8');
      await fh.sync();
    } finally {
      await fh.close();
    }
    await chown(tmp, owner.uid, owner.gid);
    await rename(tmp, file);
  } catch (e) {
    await unlink(tmp).catch(() => undefined);
    throw failed(what, e);
  }
}

export function writeConfig(location: FrrLocation, text: string): Promise<void> {
  return bounded(`writing ${join(location.confDir, 'frr.conf')}`, location.timeoutMs, write(location, text));
}
