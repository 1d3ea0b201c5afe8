// `vk daemon`: run the node's reconcile daemon (or, with --dry-run, print what it would do and exit).
// The controllers are imported inside the action, so other vk commands do not pay for loading them.
import type { Command } from 'commander';
import type { DaemonOverrides } from '../../daemon/config.ts';
import { ValidationError } from '../../schemas/index.ts';

interface DaemonFlags {
  node?: string;
  config?: string;
  zk?: string;
  root?: string;
  auth?: string;
  libvirtSocket?: string;
  libvirtUri?: string;
  keepaliveMs?: string;
  resyncMs?: string;
  fullResyncEvery?: string;
  concurrency?: string;
  logLevel?: string;
  network?: boolean;
  frr?: boolean;
  primary?: boolean;
  dryRun?: boolean;
}

function toInt(flag: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  if (!/^\d+$/.test(value)) throw new ValidationError(flag, value, 'must be a whole number');
  return Number(value);
}

function overridesFrom(f: DaemonFlags): DaemonOverrides {
  const o: DaemonOverrides = {};
  if (f.node !== undefined) o.node = f.node;
  if (f.zk !== undefined) o.zk = f.zk;
  if (f.root !== undefined) o.root = f.root;
  if (f.auth !== undefined) o.auth = f.auth;
  if (f.libvirtSocket !== undefined) o.libvirtSocket = f.libvirtSocket;
  if (f.libvirtUri !== undefined) o.libvirtUri = f.libvirtUri;
  if (f.logLevel !== undefined) o.logLevel = f.logLevel;
  if (f.network === false) o.network = false;
  if (f.frr === false) o.frr = false;
  if (f.primary === false) o.primary = false;
  const keepaliveMs = toInt('--keepalive-ms', f.keepaliveMs);
  const resyncMs = toInt('--resync-ms', f.resyncMs);
  const fullResyncEvery = toInt('--full-resync-every', f.fullResyncEvery);
  const concurrency = toInt('--concurrency', f.concurrency);
  if (keepaliveMs !== undefined) o.keepaliveMs = keepaliveMs;
  if (resyncMs !== undefined) o.resyncMs = resyncMs;
  if (fullResyncEvery !== undefined) o.fullResyncEvery = fullResyncEvery;
  if (concurrency !== undefined) o.concurrency = concurrency;
  return o;
}

export function registerDaemon(program: Command): void {
  program
    .command('daemon')
    .description('run the reconcile daemon of one hypervisor')
    .option('--node <name>', 'this hypervisor\'s node name (env VK_NODE)')
    .option('--config <file>', 'YAML config file (flags and env override it)')
    .option('--libvirt-socket <path>', 'libvirtd unix socket (env VK_LIBVIRT_SOCKET)')
    .option('--libvirt-uri <uri>', 'libvirt connection URI, e.g. qemu:///system (env VK_LIBVIRT_URI)')
    .option('--keepalive-ms <ms>', 'node status interval (default: the cluster config\'s keepaliveIntervalMs, 5000)')
    .option('--resync-ms <ms>', 'periodic resync interval (default 60000)')
    .option('--full-resync-every <n>', 'one periodic resync in n looks at every VM, settled or not (default 10; 1: every one)')
    .option('--concurrency <n>', 'VMs reconciled at once (default 8)')
    .option('--log-level <level>', 'fatal|error|warn|info|debug|trace|silent (env VK_LOG_LEVEL)')
    .option('--no-network', "leave this node's links alone (no bridges, VXLANs or vLANs made or repaired)")
    .option('--no-frr', "leave this node's FRR alone (its config is not rendered, reloaded or checked)")
    .option('--no-primary', 'never become the primary coordinator (no gateways, no DHCP/DNS on this node)')
    .option('--dry-run', 'print what this node would do now, one action per line, and change nothing')
    .action(async (_opts: DaemonFlags, cmd: Command) => {
      // --zk, --root and --auth are the program's global options (env VK_ZK, VK_ROOT, VK_AUTH).
      const flags = cmd.optsWithGlobals<DaemonFlags>();
      const { envOverrides, loadDaemonConfig } = await import('../../daemon/config.ts');
      const { planNode, startDaemon } = await import('../../daemon/daemon.ts');
      const { createLogger } = await import('../../controllers/logger.ts');
      let cfg;
      try {
        cfg = loadDaemonConfig(flags.config, envOverrides(process.env), overridesFrom(flags));
      } catch (error) {
        if (!(error instanceof ValidationError)) throw error;
        console.error(`vk daemon: ${error.message}`);
        process.exitCode = 2;
        return;
      }
      if (flags.dryRun) {
        const lines = await planNode(cfg, createLogger({ level: 'warn', node: cfg.node }));
        for (const line of lines) console.log(line);
        if (lines.length === 0) console.log(`${cfg.node}: nothing to do`);
        return;
      }
      const daemon = await startDaemon(cfg);
      let stopping = false;
      const stop = () => {
        if (stopping) return;
        stopping = true;
        daemon.stop().then(
          () => process.exit(0),
          (error: unknown) => {
            daemon.log.error({ err: error }, 'shutdown failed');
            process.exit(1);
          },
        );
      };
      process.on('SIGTERM', stop);
      process.on('SIGINT', stop);
    });
}
