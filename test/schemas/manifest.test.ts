import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  decodeManifest,
  jsonSchemaFor,
  MANIFEST_KINDS,
  manifestKindFrom,
  splitVmManifestSpec,
  ValidationError,
  type VmManifest,
} from '../../schemas/index.ts';
import { expectInvalid } from './helpers.ts';

const XML = `<domain type='kvm'><name>web1</name><memory unit='MiB'>512</memory></domain>`;
const VM = { apiVersion: 'virtkeeper/v1', kind: 'VM', metadata: { name: 'web1' }, spec: { node: 'hv1', xml: XML } };

/** Like expectInvalid, for errors reported from a manifest document: the message starts with where it came from. */
function expectManifestError(doc: unknown, field: string, ...value: [unknown?]): ValidationError {
  const error = expectInvalid(() => decodeManifest(doc, 'web.yaml#2'), field, ...value);
  assert.ok(error.message.startsWith(`web.yaml#2: ${field}: `), error.message);
  assert.equal(error.source, 'web.yaml#2');
  return error;
}

describe('VM manifests', () => {
  test('decodes with defaults and keeps the inline XML', () => {
    const manifest = decodeManifest(VM, 'web.yaml#1') as VmManifest;
    assert.equal(manifest.kind, 'VM');
    assert.equal(manifest.metadata.name, 'web1');
    assert.equal(manifest.spec.xml, XML);
    assert.equal(manifest.spec.state, 'running');
    assert.deepEqual(manifest.spec.meta.nodeLimit, []);
  });

  test('accepts xmlFile instead, and no apiVersion', () => {
    const { apiVersion: _, ...doc } = { ...VM, spec: { node: 'hv1', xmlFile: 'vms/web1.xml' } };
    const manifest = decodeManifest(doc, 'web.yaml#1') as VmManifest;
    assert.equal(manifest.spec.xmlFile, 'vms/web1.xml');
    assert.equal(manifest.spec.xml, undefined);
  });

  test('needs xml or xmlFile', () => {
    const error = expectManifestError({ ...VM, spec: { node: 'hv1' } }, 'spec.xml');
    assert.match(error.message, /xmlFile/);
  });

  test('refuses both xml and xmlFile', () => {
    expectManifestError({ ...VM, spec: { node: 'hv1', xml: XML, xmlFile: 'web1.xml' } }, 'spec.xmlFile', 'web1.xml');
  });

  test('malformed inline XML is reported at spec.xml with the document', () => {
    const error = expectManifestError({ ...VM, spec: { node: 'hv1', xml: '<domain type="kvm"><name>web1</name>' } }, 'spec.xml');
    assert.match(error.message, /malformed XML at line 1/);
  });

  test('inline XML must name the domain after the VM', () => {
    const xml = XML.replace('web1', 'web2');
    expectManifestError({ ...VM, spec: { node: 'hv1', xml } }, 'spec.xml/domain/name', 'web2');
  });

  test('inline XML with no name', () => {
    expectManifestError({ ...VM, spec: { node: 'hv1', xml: `<domain type='kvm'><memory>1</memory></domain>` } }, 'spec.xml/domain/name');
  });

  test('spec fields are validated as in a VmSpec', () => {
    expectManifestError({ ...VM, spec: { ...VM.spec, node: 'hv/1' } }, 'spec.node', 'hv/1');
    expectManifestError({ ...VM, spec: { ...VM.spec, shutdownTimeoutMs: -1 } }, 'spec.shutdownTimeoutMs', -1);
    expectManifestError({ ...VM, spec: { ...VM.spec, meta: { nodeLimit: ['hv2'] } } }, 'spec.node', 'hv1');
    expectManifestError({ ...VM, spec: { ...VM.spec, meta: { nodeLimit: ['hv1', 'hv/2'] } } }, 'spec.meta.nodeLimit[1]', 'hv/2');
    expectManifestError({ ...VM, spec: { ...VM.spec, xmlfile: 'x.xml' } }, 'spec.xmlfile');
  });

  test('metadata.name must be a VM name', () => {
    for (const name of ['web/1', '..', 'Web1', 'a'.repeat(64)]) {
      expectManifestError({ ...VM, metadata: { name } }, 'metadata.name', name);
    }
    expectManifestError({ ...VM, metadata: {} }, 'metadata.name');
    expectManifestError({ ...VM, metadata: { name: 'web1', labels: {} } }, 'metadata.labels');
  });

  test('splitVmManifestSpec separates the stored spec from the XML source', () => {
    const manifest = decodeManifest(VM, 'x') as VmManifest;
    const { spec, xml, xmlFile } = splitVmManifestSpec(manifest.spec);
    assert.equal(xml, XML);
    assert.equal(xmlFile, undefined);
    assert.equal('xml' in spec, false);
    assert.equal(spec.node, 'hv1');
  });
});

describe('other manifests', () => {
  test('a Network is named by its VNI; a YAML number becomes its string', () => {
    const spec = { type: 'bridged' };
    const fromString = decodeManifest({ kind: 'Network', metadata: { name: '100' }, spec }, 'n.yaml#1');
    const fromNumber = decodeManifest({ kind: 'Network', metadata: { name: 100 }, spec }, 'n.yaml#1');
    assert.equal(fromString.metadata.name, '100');
    assert.equal(fromNumber.metadata.name, '100');
    assert.deepEqual(fromNumber, fromString);
  });

  for (const name of ['0', '16777216', 'web1', '007', 0, 16777216, 1.5]) {
    test(`a Network named ${JSON.stringify(name)} is rejected`, () => {
      expectManifestError({ kind: 'Network', metadata: { name }, spec: { type: 'bridged' } }, 'metadata.name', name);
    });
  }

  test("a bridged Network's VNI is a vLAN id (1-4094); a managed one may go to 16777215", () => {
    const error = expectManifestError({ kind: 'Network', metadata: { name: 4095 }, spec: { type: 'bridged' } }, 'metadata.name', 4095);
    assert.match(error.message, /bridged network's VNI is its vLAN id: must be an integer from 1 to 4094/);
    expectManifestError({ kind: 'Network', metadata: { name: '4095' }, spec: { type: 'bridged' } }, 'metadata.name', '4095');
    assert.equal(decodeManifest({ kind: 'Network', metadata: { name: 4094 }, spec: { type: 'bridged' } }, 'n.yaml#1').metadata.name, '4094');
    assert.equal(decodeManifest({ kind: 'Network', metadata: { name: 16777215 }, spec: { type: 'managed' } }, 'n.yaml#1').metadata.name, '16777215');
  });

  test('a Network spec is validated', () => {
    expectManifestError({ kind: 'Network', metadata: { name: '100' }, spec: { type: 'managed', mtu: 100 } }, 'spec.mtu', 100);
    expectManifestError({ kind: 'Network', metadata: { name: '100' } }, 'spec');
  });

  test('a Node spec defaults to ready', () => {
    const manifest = decodeManifest({ kind: 'Node', metadata: { name: 'hv1' } }, 'n.yaml#1');
    assert.deepEqual(manifest.spec, { domainState: 'ready' });
    expectManifestError({ kind: 'Node', metadata: { name: 'hv1' }, spec: { domainState: 'gone' } }, 'spec.domainState', 'gone');
    expectManifestError({ kind: 'Node', metadata: { name: 'hv_1' } }, 'metadata.name', 'hv_1');
  });

  test('a ClusterConfig must be named cluster', () => {
    const manifest = decodeManifest({ kind: 'ClusterConfig', metadata: { name: 'cluster' }, spec: { coordinators: ['hv1'] } }, 'c.yaml#1');
    assert.equal(manifest.kind, 'ClusterConfig');
    assert.equal(manifest.kind === 'ClusterConfig' && manifest.spec.keepaliveIntervalMs, 5000);
    const error = expectManifestError({ kind: 'ClusterConfig', metadata: { name: 'prod' } }, 'metadata.name', 'prod');
    assert.match(error.message, /"cluster"/);
  });

  test('ClusterConfig spec errors name the nested field', () => {
    expectManifestError(
      { kind: 'ClusterConfig', metadata: { name: 'cluster' }, spec: { migration: { maxOutgoing: 0 } } },
      'spec.migration.maxOutgoing',
      0,
    );
  });
});

describe('any manifest', () => {
  test('an unknown kind names the kind and lists the valid ones', () => {
    const error = expectManifestError({ ...VM, kind: 'Vm' }, 'kind', 'Vm');
    assert.match(error.message, /"VM", "Network", "Node", "ClusterConfig"/);
  });

  test('a missing kind is reported', () => {
    const { kind: _, ...doc } = VM;
    expectManifestError(doc, 'kind');
  });

  test('apiVersion must be virtkeeper/v1 when given', () => {
    expectManifestError({ ...VM, apiVersion: 'v1' }, 'apiVersion', 'v1');
  });

  test('an unknown top-level field is named', () => {
    const error = expectManifestError({ ...VM, status: {} }, 'status');
    assert.match(error.message, /unknown field "status"/);
  });

  test('a document that is not a mapping is rejected', () => {
    expectManifestError('kind: VM', '(document)', 'kind: VM');
    expectManifestError([VM], '(document)', [VM]);
    expectManifestError(null, '(document)', null);
  });

  test('manifestKindFrom ignores case', () => {
    assert.equal(manifestKindFrom('vm'), 'VM');
    assert.equal(manifestKindFrom('CLUSTERCONFIG'), 'ClusterConfig');
    assert.equal(manifestKindFrom('network'), 'Network');
    assert.equal(manifestKindFrom('bogus'), undefined);
  });
});

describe('jsonSchemaFor', () => {
  for (const kind of MANIFEST_KINDS) {
    test(`${kind}: a closed JSON Schema for the whole document`, () => {
      const schema = jsonSchemaFor(kind) as {
        $schema: string;
        additionalProperties: boolean;
        required: string[];
        properties: Record<string, { const?: string; additionalProperties?: boolean }>;
      };
      assert.equal(schema.$schema, 'https://json-schema.org/draft/2020-12/schema');
      assert.equal(schema.additionalProperties, false);
      assert.equal(schema.properties.kind?.const, kind);
      assert.equal(schema.properties.metadata?.additionalProperties, false);
      assert.equal(schema.properties.spec?.additionalProperties, false);
      assert.ok(schema.required.includes('kind') && schema.required.includes('metadata'));
      assert.doesNotThrow(() => JSON.stringify(schema));
    });
  }

  test('VM: defaults are optional, node is required, xml/xmlFile are one-of', () => {
    const spec = (jsonSchemaFor('VM') as { properties: { spec: Record<string, unknown> } }).properties.spec as {
      required: string[];
      oneOf: unknown;
      properties: Record<string, { default?: unknown; pattern?: string; properties?: Record<string, unknown> }>;
    };
    assert.deepEqual(spec.required, ['node']);
    assert.deepEqual(spec.oneOf, [{ required: ['xml'] }, { required: ['xmlFile'] }]);
    assert.equal(spec.properties.state?.default, 'running');
    assert.equal(spec.properties.node?.pattern, '^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$');
  });
});
