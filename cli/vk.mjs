#!/usr/bin/env node
// Entry for the `vk` binary: TypeScript sources run through tsx's loader, so no build step is needed.
import { register } from 'tsx/esm/api';
register();
await import('./main.ts');
