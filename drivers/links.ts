// Linux links as the reconcilers need them (iproute2 and sysfs). Only what exists so far: whether a
// bridge is present, in the daemon's own network namespace or in a named one (`ip netns`).
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { promisify } from 'node:util';

const run = promisify(execFile);

export async function bridgeExists(name: string, netns?: string): Promise<boolean> {
  if (netns === undefined) {
    try {
      await readFile(`/sys/class/net/${name}/bridge/bridge_id`);
      return true;
    } catch {
      return false;
    }
  }
  try {
    const { stdout } = await run('ip', ['-n', netns, '-d', '-j', 'link', 'show', 'dev', name], { timeout: 5000 });
    const links = JSON.parse(stdout) as Array<{ linkinfo?: { info_kind?: string } }>;
    return links.some((l) => l.linkinfo?.info_kind === 'bridge');
  } catch {
    // `ip` exits non-zero when the device does not exist.
    return false;
  }
}
