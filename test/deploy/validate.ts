// Validation of Kubernetes manifests without a cluster (deploy/, the
// rendered Helm chart), with validators generated from the Kubernetes
// OpenAPI schema, never by matching strings:
//
// 1. schema: each object against kubernetes-models' validator for its
//    apiVersion/kind (ajv code generated from the Kubernetes OpenAPI
//    definitions, Kubernetes 1.33 API: types, required fields, enums,
//    formats such as int-or-string and quantities). An apiVersion/kind it
//    does not know is an error, not a pass.
// 2. strict fields: what kubectl --validate=strict and the API server's
//    strict field validation refuse and the OpenAPI validator lets through,
//    a field the schema does not have (a typo such as `livenesProbe`). Each
//    object is type-checked by the TypeScript compiler as an object literal
//    of kubernetes-models' interface for its kind (the same definitions as
//    TypeScript types), so an unknown property anywhere is an "excess
//    property" error, and a wrong type one more.
// 3. the one custom resource, Multus' NetworkAttachmentDefinition
//    (k8s.cni.cncf.io/v1): the openAPIV3Schema of the CRD Multus installs
//    (multus-cni deployments/multus-daemonset.yml: spec.config, a string),
//    strict; its metadata as ObjectMeta like any object; and spec.config as
//    what it carries, a CNI network configuration (CNI spec: cniVersion,
//    name, type) with the plugin's own required keys (host-device: a
//    device selector; macvlan: master and mode).
// 4. the pod's k8s.v1.cni.cncf.io/networks annotation as the Network
//    Plumbing Working Group's network selection elements (a JSON list of
//    {name, namespace?, interface?, ...}).
//
// YAML is read as YAML 1.1, as Kubernetes (sigs.k8s.io/yaml, go-yaml v2)
// reads it: `defaultMode: 0440` is octal there.
import { readFileSync, readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import Ajv from 'ajv';
import * as ts from 'typescript';

export interface Doc {
  /** Where it came from: file, or chart template, and document index. */
  source: string;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  obj: any;
}

/** Every non-empty YAML document of `text`. */
export function parseDocs(text: string, source: string): Doc[] {
  const out: Doc[] = [];
  parseAllDocuments(text, { version: '1.1' }).forEach((d, i) => {
    if (d.errors.length) throw new Error(`${source}#${i}: ${d.errors[0].message}`);
    const obj = d.toJS({ maxAliasCount: 100 });
    if (obj !== null && obj !== undefined) out.push({ source: `${source}#${i}`, obj });
  });
  return out;
}

/** The documents of every .yaml file in `dir`, in file name order. */
export function loadDir(dir: string): Doc[] {
  return readdirSync(dir).filter((f) => /\.ya?ml$/.test(f)).sort().flatMap((f) => parseDocs(readFileSync(join(dir, f), 'utf8'), f));
}

const MODELS = dirname(require.resolve('kubernetes-models/package.json'));

/** kubernetes-models' module path for an apiVersion and kind: `apps/v1/DaemonSet`, `v1/ConfigMap`. */
function modelPath(apiVersion: string, kind: string): string {
  return `${apiVersion}/${kind}`;
}

const NAD = 'k8s.cni.cncf.io/v1/NetworkAttachmentDefinition';

// The CRD's openAPIV3Schema (multus-cni, deployments/multus-daemonset.yml),
// with unknown fields refused as strict field validation does.
const nadSchema = {
  type: 'object',
  required: ['apiVersion', 'kind', 'metadata', 'spec'],
  additionalProperties: false,
  properties: {
    apiVersion: { type: 'string', const: 'k8s.cni.cncf.io/v1' },
    kind: { type: 'string', const: 'NetworkAttachmentDefinition' },
    metadata: { type: 'object' },
    spec: { type: 'object', additionalProperties: false, properties: { config: { type: 'string' } } },
  },
};

// CNI spec (SPEC.md, network configuration) and the reference plugins' docs.
const cniSchema = {
  type: 'object',
  required: ['cniVersion', 'name', 'type'],
  properties: {
    cniVersion: { type: 'string', pattern: '^\\d+\\.\\d+\\.\\d+$' },
    name: { type: 'string', pattern: '^[A-Za-z0-9][A-Za-z0-9_.\\-]*$' },
    type: { type: 'string', minLength: 1 },
    ipam: { type: 'object' },
  },
  allOf: [
    {
      if: { properties: { type: { const: 'host-device' } } },
      then: {
        properties: { device: { type: 'string', minLength: 1 }, hwaddr: { type: 'string' }, kernelpath: { type: 'string' }, pciBusID: { type: 'string' } },
        anyOf: [{ required: ['device'] }, { required: ['hwaddr'] }, { required: ['kernelpath'] }, { required: ['pciBusID'] }],
      },
    },
    {
      if: { properties: { type: { const: 'macvlan' } } },
      then: {
        required: ['master'],
        properties: { master: { type: 'string', minLength: 1 }, mode: { enum: ['bridge', 'private', 'vepa', 'passthru', 'source'] }, mtu: { type: 'integer' } },
      },
    },
  ],
};

// Network Plumbing WG multi-net spec v1.3, 4.1.2 network selection element.
const selectionSchema = {
  type: 'array',
  items: {
    type: 'object',
    required: ['name'],
    additionalProperties: false,
    properties: {
      name: { type: 'string', minLength: 1 },
      namespace: { type: 'string' },
      interface: { type: 'string', pattern: '^[^\\s/:]{1,15}$' },
      ips: { type: 'array', items: { type: 'string' } },
      mac: { type: 'string' },
      'infiniband-guid': { type: 'string' },
      'default-route': { type: 'array', items: { type: 'string' } },
      portMappings: { type: 'array' },
      bandwidth: { type: 'object' },
      'cni-args': { type: 'object' },
    },
  },
};

const ajv = new Ajv({ allErrors: true, strict: false });
const checkNad = ajv.compile(nadSchema);
const checkCni = ajv.compile(cniSchema);
const checkSelection = ajv.compile(selectionSchema);
const ajvText = (errs: typeof checkNad.errors) => (errs ?? []).map((e) => `${e.instancePath || '/'} ${e.message}`).join('; ');

// eslint-disable-next-line @typescript-eslint/no-explicit-any
function metaValidate(meta: any): string[] {
  // kubernetes-models' own ObjectMeta validator (from @kubernetes-models/apimachinery).
  const p = require.resolve('@kubernetes-models/apimachinery/_schemas/IoK8sApimachineryPkgApisMetaV1ObjectMeta', { paths: [MODELS] });
  const v = require(p).validate;
  if (v(meta)) return [];
  return (v.errors as { instancePath: string; message?: string; keyword: string; params: unknown }[])
    .map((e) => `/metadata${e.instancePath} ${e.message ?? `${e.keyword} ${JSON.stringify(e.params)}`}`);
}

/** 1 and 3: the schema validators, object by object. */
function schemaProblems(d: Doc): string[] {
  const { apiVersion, kind } = d.obj ?? {};
  if (typeof apiVersion !== 'string' || typeof kind !== 'string') return [`${d.source}: no apiVersion/kind`];
  const path = modelPath(apiVersion, kind);
  if (path === NAD) {
    const out: string[] = [];
    if (!checkNad(d.obj)) out.push(`${d.source} ${kind}: ${ajvText(checkNad.errors)}`);
    out.push(...metaValidate(d.obj.metadata).map((e) => `${d.source} ${kind}: ${e}`));
    const config = d.obj.spec?.config;
    if (typeof config === 'string') {
      let cni: unknown;
      try {
        cni = JSON.parse(config);
      } catch (err) {
        out.push(`${d.source} ${kind}: spec.config is not JSON: ${(err as Error).message}`);
      }
      if (cni !== undefined && !checkCni(cni)) out.push(`${d.source} ${kind}: spec.config: ${ajvText(checkCni.errors)}`);
    }
    return out;
  }
  let Model;
  try {
    Model = require(`kubernetes-models/${path}`)[kind];
  } catch {
    return [`${d.source}: no schema for ${apiVersion} ${kind}`];
  }
  if (!Model) return [`${d.source}: no schema for ${apiVersion} ${kind}`];
  try {
    new Model(d.obj).validate();
    return [];
  } catch (err) {
    const errs = (err as { errors?: { instancePath: string; message: string }[] }).errors;
    return errs ? errs.map((e) => `${d.source} ${kind}: ${e.instancePath || '/'} ${e.message}`) : [`${d.source} ${kind}: ${(err as Error).message}`];
  }
}

/** 4: the Multus annotation of every pod template. */
function annotationProblems(d: Doc): string[] {
  const ann = d.obj?.spec?.template?.metadata?.annotations?.['k8s.v1.cni.cncf.io/networks'];
  if (ann === undefined) return [];
  let sel: unknown;
  try {
    sel = JSON.parse(ann);
  } catch (err) {
    return [`${d.source}: k8s.v1.cni.cncf.io/networks is not JSON: ${(err as Error).message}`];
  }
  return checkSelection(sel) ? [] : [`${d.source}: k8s.v1.cni.cncf.io/networks: ${ajvText(checkSelection.errors)}`];
}

/** 2: every object as a literal of its kubernetes-models interface, type-checked by tsc. */
function strictProblems(docs: Doc[]): string[] {
  const lines: string[] = ["import type { IConfigMap } from 'kubernetes-models/v1/ConfigMap';", 'type ObjectMeta = NonNullable<IConfigMap[\'metadata\']>;'];
  const spans: { from: number; to: number; source: string }[] = [];
  let n = 0;
  const imports = new Set<string>();
  for (const d of docs) {
    const { apiVersion, kind } = d.obj ?? {};
    if (typeof apiVersion !== 'string' || typeof kind !== 'string' || !/^[A-Za-z0-9]+$/.test(kind)) continue;
    const path = modelPath(apiVersion, kind);
    const from = lines.length;
    let decl: string;
    if (path === NAD) {
      // The CRD's only typed part is spec.config (checked above); its metadata is ObjectMeta.
      decl = `export const o${n}: ObjectMeta = ${JSON.stringify(d.obj.metadata ?? {}, null, 2)};`;
    } else {
      const alias = `I${n}`;
      imports.add(`import type { I${kind} as ${alias} } from 'kubernetes-models/${path}';`);
      decl = `export const o${n}: ${alias} = ${JSON.stringify(d.obj, null, 2)};`;
    }
    lines.push(...decl.split('\n'));
    spans.push({ from, to: lines.length, source: `${d.source} ${kind}` });
    n++;
  }
  const head = [...imports];
  const text = [...head, ...lines].join('\n');
  const shift = head.length;
  const file = join(__dirname, '__manifests__.ts');
  const options: ts.CompilerOptions = {
    noEmit: true, strict: true, skipLibCheck: true, types: [], target: ts.ScriptTarget.ES2022,
    module: ts.ModuleKind.CommonJS, moduleResolution: ts.ModuleResolutionKind.Node10,
  };
  const host = ts.createCompilerHost(options);
  const getSourceFile = host.getSourceFile.bind(host);
  host.getSourceFile = (f, lang, ...rest) => (f === file ? ts.createSourceFile(f, text, lang) : getSourceFile(f, lang, ...rest));
  const fileExists = host.fileExists.bind(host);
  host.fileExists = (f) => f === file || fileExists(f);
  const program = ts.createProgram([file], options, host);
  const out: string[] = [];
  for (const diag of ts.getPreEmitDiagnostics(program)) {
    const msg = ts.flattenDiagnosticMessageText(diag.messageText, ' ');
    if (!diag.file || diag.file.fileName !== file || diag.start === undefined) {
      out.push(`type check: ${msg}`);
      continue;
    }
    const line = diag.file.getLineAndCharacterOfPosition(diag.start).line - shift;
    const span = spans.find((s) => line >= s.from && line < s.to);
    out.push(`${span?.source ?? 'manifest'}: ${msg} (near ${diag.file.text.split('\n')[line + shift].trim().slice(0, 80)})`);
  }
  return out;
}

/** Every problem of the documents; empty when all validate. */
export function validateDocs(docs: Doc[]): string[] {
  return [...docs.flatMap((d) => [...schemaProblems(d), ...annotationProblems(d)]), ...strictProblems(docs)];
}
