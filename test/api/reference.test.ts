// The API reference page (api/README.md) is generated from the OpenAPI document (vk api reference):
// it must be what the schemas give today, and it must name every route.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { openApiDocument, renderReference } from '../../api/reference.ts';

const PAGE = new URL('../../api/README.md', import.meta.url);

test('api/README.md is the page the schemas give (regenerate: node cli/vk.mjs api reference > api/README.md)', async () => {
  const doc = await openApiDocument();
  const page = renderReference(doc);
  assert.equal(readFileSync(PAGE, 'utf8'), page);
  for (const [path, item] of Object.entries(doc.paths)) {
    for (const method of Object.keys(item)) assert.ok(page.includes(`### ${method.toUpperCase()} ${path}\n`), `${method} ${path} is on the page`);
  }
  // Every schema link points at a schema on the page.
  for (const [, name] of page.matchAll(/\]\(#schema-([a-z0-9]+)\)/g)) assert.ok(page.includes(`<a id="schema-${name}"></a>`), `schema ${name} is on the page`);
});
