// `vk api`: serve the REST API (api/) on --listen until SIGINT/SIGTERM; `vk api token`: make a new
// bearer token. The server is imported inside the action, so other vk commands do not load Fastify.
//
// Invariant: without a credential (--token-file, --zk-tokens or --client-ca) the server listens on
// a loopback address only, unless --insecure.
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { Option, type Command } from 'commander';
import { newToken, readTokenFile, SCOPES, type Scope, type TokenSet } from '../../api/auth.ts';
import { listApiTokens, revokeApiToken, storeApiToken } from '../../core/api-tokens.ts';
import { createSecureContext } from 'node:tls';
import { ValidationError } from '../../schemas/index.ts';
import { withCluster } from '../connect.ts';
import { usageError } from '../errors.ts';
import { println } from '../output.ts';

interface ApiFlags {
  listen: string;
  tokenFile?: string;
  zkTokens?: boolean;
  tlsCert?: string;
  tlsKey?: string;
  clientCa?: string;
  clientCertScope?: Scope;
  rateLimit: number;
  insecure?: boolean;
  logLevel?: string;
}

/** A file a flag names, read now: a usage error (exit 2) naming the flag when it cannot be. */
function flagFile(flag: string, file: string): Buffer {
  try {
    return readFileSync(file);
  } catch (error) {
    throw usageError(`${flag}: cannot read ${file}: ${(error as Error).message}`);
  }
}

function parseRate(text: string): number {
  const n = Number(text);
  if (!/^[0-9]+$/.test(text) || !Number.isSafeInteger(n)) throw usageError(`--rate-limit: invalid value ${JSON.stringify(text)}: must be requests per second per client (an integer; 0: no limit)`);
  return n;
}

/** ADDR:PORT ([v6]:PORT for IPv6); a bad one is a usage error naming --listen. */
export function parseListen(text: string): { host: string; port: number } {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:\s]+)):([0-9]{1,5})$/.exec(text);
  const host = m?.[1] ?? m?.[2];
  const port = Number(m?.[3]);
  if (!m || host === undefined || !(port >= 0 && port <= 65535) || (m[1] !== undefined && isIP(m[1]) !== 6)) {
    throw usageError(`--listen: invalid value ${JSON.stringify(text)}: must be ADDR:PORT, e.g. 127.0.0.1:8086 or [::1]:8086`);
  }
  return { host, port };
}

export function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || (isIP(host) === 4 && host.startsWith('127.'));
}

export function registerApi(program: Command): void {
  const api = program
    .command('api')
    .description('serve the REST API (routes, tokens and errors: README "API"; OpenAPI at /openapi.json)')
    .option('--listen <addr:port>', 'address and port to listen on', '127.0.0.1:8086')
    .option('--token-file <file>', 'bearer tokens, one a line: sha256hex scope name (vk api token makes one)')
    .option('--zk-tokens', 'also the tokens stored in ZooKeeper (vk api token --store), followed as they change')
    .option('--tls-cert <file>', 'serve HTTPS with this certificate (PEM; with --tls-key)')
    .option('--tls-key <file>', 'the private key of --tls-cert (PEM)')
    .option('--client-ca <file>', 'require client certificates signed by this CA (PEM); without tokens, a verified certificate is the credential')
    .addOption(new Option('--client-cert-scope <scope>', 'with --client-ca and no tokens: the scope a client certificate gets').choices(SCOPES).default('admin'))
    .option('--rate-limit <n>', 'requests per second per client (token, certificate or address), bursts of twice that; 0: no limit', parseRate, 100)
    .option('--insecure', 'allow listening on a non-loopback address without any credential')
    .addOption(new Option('--log-level <level>', 'request log level').choices(['debug', 'info', 'warn', 'error']).default('info'))
    .action(async (flags: ApiFlags, cmd: Command) => {
      const { host, port } = parseListen(flags.listen);
      let tokens: TokenSet | null = null;
      if (flags.tokenFile !== undefined) {
        try {
          tokens = readTokenFile(flags.tokenFile);
        } catch (error) {
          if (error instanceof ValidationError) throw usageError(`--token-file: ${error.message}`);
          throw usageError(`--token-file: cannot read ${flags.tokenFile}: ${(error as Error).message}`);
        }
        if (tokens.size === 0 && !flags.zkTokens) throw usageError(`--token-file: ${flags.tokenFile} holds no token; make one with vk api token`);
      }
      if ((flags.tlsCert === undefined) !== (flags.tlsKey === undefined)) throw usageError('--tls-cert and --tls-key go together');
      if (flags.clientCa !== undefined && flags.tlsCert === undefined) throw usageError('--client-ca needs --tls-cert and --tls-key (client certificates are a TLS feature)');
      const https = flags.tlsCert !== undefined && flags.tlsKey !== undefined
        ? { cert: flagFile('--tls-cert', flags.tlsCert), key: flagFile('--tls-key', flags.tlsKey), ...(flags.clientCa !== undefined && { ca: flagFile('--client-ca', flags.clientCa) }) }
        : undefined;
      if (https) {
        try {
          createSecureContext({ cert: https.cert, key: https.key, ...(https.ca && { ca: https.ca }) });
        } catch (error) {
          throw usageError(`--tls-cert/--tls-key${https.ca ? '/--client-ca' : ''}: not a usable certificate and key: ${(error as Error).message}`);
        }
      }
      const credential = tokens !== null || flags.zkTokens === true || https?.ca !== undefined;
      if (!credential && !isLoopback(host) && !flags.insecure) {
        throw usageError(`--listen: ${host} is not a loopback address and no credential is required (--token-file, --zk-tokens or --client-ca): anyone who reaches it could change the cluster; give one, or --insecure to do it anyway`);
      }
      const { buildApi } = await import('../../api/server.ts');
      await withCluster(cmd, async (cluster) => {
        const { ZkTokens, eitherTokens } = await import('../../api/tokens.ts');
        const zkTokens = flags.zkTokens ? new ZkTokens(cluster.store, cluster.paths, { info: () => undefined, error: (_o: object, m: string) => void process.stderr.write(`vk api: ${m}\n`) }) : undefined;
        const auth = zkTokens && tokens ? eitherTokens(tokens, zkTokens) : (zkTokens ?? tokens);
        const app = await buildApi({
          store: cluster.store,
          paths: cluster.paths,
          auth,
          connectString: cluster.connectString,
          ...(cluster.auth && { zkAuth: cluster.auth }),
          ...(https && { https }),
          ...(flags.clientCertScope && { clientCertScope: flags.clientCertScope }),
          ...(flags.rateLimit > 0 && { rateLimit: { perSecond: flags.rateLimit, burst: 2 * flags.rateLimit } }),
          log: { level: flags.logLevel ?? 'info' },
        });
        const address = await app.listen({ host, port });
        const how = [tokens ? `${tokens.size} token${tokens.size === 1 ? '' : 's'} from ${flags.tokenFile}` : '', zkTokens ? `tokens from ${cluster.paths.apiTokens}` : '', https?.ca ? 'client certificates' : ''].filter(Boolean);
        process.stderr.write(`vk api: listening on ${address} (${how.length > 0 ? how.join(', ') : 'no auth'}${flags.rateLimit > 0 ? `; at most ${flags.rateLimit} requests/s per client` : ''})\n`);
        await new Promise<void>((resolve) => {
          process.once('SIGINT', resolve);
          process.once('SIGTERM', resolve);
        });
        zkTokens?.stop();
        await app.close();
      });
    });

  api
    .command('reference')
    .description('print the API reference page (Markdown, from the OpenAPI document; the repository keeps it as api/README.md)')
    .action(async () => {
      const { openApiDocument, renderReference } = await import('../../api/reference.ts');
      process.stdout.write(renderReference(await openApiDocument()));
    });

  api
    .command('token')
    .description('make a new random bearer token: prints the token (shown only here) and its line for the token file; --store keeps it in ZooKeeper')
    .addOption(new Option('--scope <scope>', 'read (GET only) or admin (everything)').choices(SCOPES).default('read'))
    .requiredOption('--name <name>', 'who or what uses it (shown in the request log)')
    .option('--store', 'store it in ZooKeeper for every vk api --zk-tokens (only its hash is stored)')
    .action(async (flags: { scope: Scope; name: string; store?: boolean }, cmd: Command) => {
      const made = newToken(flags.scope, flags.name);
      if (flags.store) {
        await withCluster(cmd, (cluster) => storeApiToken(cluster, made.line));
        println(`token: ${made.token}`);
        println(`stored: ${flags.name} (${flags.scope}); revoke it with vk api revoke ${flags.name}`);
        return;
      }
      println(`token: ${made.token}`);
      println(`line:  ${made.line}`);
    });

  api
    .command('tokens')
    .description('list the tokens stored in ZooKeeper (names and scopes)')
    .action(async (_flags: unknown, cmd: Command) => {
      const list = await withCluster(cmd, (cluster) => listApiTokens(cluster));
      if (list.length === 0) println('no tokens stored');
      for (const t of list) println(`${t.name.padEnd(24)} ${t.scope}`);
    });

  api
    .command('revoke')
    .description('remove a stored token: every vk api --zk-tokens refuses it from then on')
    .argument('<name>', 'the token\'s name')
    .action(async (name: string, _flags: unknown, cmd: Command) => {
      await withCluster(cmd, (cluster) => revokeApiToken(cluster, name));
      println(`revoked: ${name}`);
    });
}
