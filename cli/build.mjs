// Bundles the vk CLI (and daemon) into one ESM file, so a running daemon carries no TypeScript
// loader: tsx's off-thread loader alone costs ~35 MB of RSS per process. Run by `npm ci` (prepare).
import { build } from 'esbuild';

await build({
  entryPoints: [new URL('./main.ts', import.meta.url).pathname],
  outfile: new URL('./vk.bundle.mjs', import.meta.url).pathname,
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'esm',
  packages: 'external',
  sourcemap: 'linked',
  logLevel: 'warning',
});
