// Renders a Helm chart without helm (none installs here: Debian has no
// package, npm none that carries the binary, and a download at install time
// fails). What helm itself does, step by step (helm.sh/helm/v3
// pkg/chartutil, pkg/engine):
//
// - values: values.yaml read as YAML (sigs.k8s.io/yaml: numbers become
//   float64), the user's values coalesced over it (maps merged, scalars and
//   lists replaced, null deletes a default), then checked against
//   values.schema.json (helm refuses to render values that fail it);
// - the data: .Values, .Release {Name, Namespace, Service "Helm",
//   IsInstall, IsUpgrade, Revision}, .Chart with Chart.yaml's fields under
//   their Go names (Name, Version, AppVersion, ...), .Capabilities,
//   .Template {Name, BasePath};
// - templates: every file of templates/ is parsed into one template set, so
//   the definitions of the partials (files named _*) are visible from every
//   file; files that are not partials (nor NOTES.txt) are executed, and
//   "<no value>" is removed from the output as helm's engine does.
//
// Execution is Go's own text/template (Go's standard library compiled to
// WebAssembly: @evertdespiegeleer/go-template), with Go's builtin functions
// only: Sprig and helm's own functions (toYaml, include, required, ...) are
// not there, and the chart uses none of them, so what renders here renders
// the same under helm. The package runs templates with missingkey=error,
// which is `helm template --strict`: a missing key is an error, where plain
// helm prints nothing. What this does not check of helm: `helm lint`'s own
// rules, and functions the chart does not use.
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import Ajv from 'ajv';
import { parseDocs, type Doc } from './validate';

type Values = Record<string, unknown>;

export interface Chart {
  dir: string;
  meta: Record<string, unknown>;
  values: Values;
  schema?: object;
  templates: { name: string; text: string }[];
}

export function loadChart(dir: string): Chart {
  const tdir = join(dir, 'templates');
  const schemaFile = join(dir, 'values.schema.json');
  let schema: object | undefined;
  try {
    schema = JSON.parse(readFileSync(schemaFile, 'utf8'));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  return {
    dir,
    meta: parseYaml(readFileSync(join(dir, 'Chart.yaml'), 'utf8'), { version: '1.1' }),
    values: parseYaml(readFileSync(join(dir, 'values.yaml'), 'utf8'), { version: '1.1' }) ?? {},
    schema,
    templates: readdirSync(tdir).sort().map((name) => ({ name, text: readFileSync(join(tdir, name), 'utf8') })),
  };
}

const isMap = (v: unknown): v is Values => typeof v === 'object' && v !== null && !Array.isArray(v);

/** helm's coalesce: `over` wins; maps merge; a null in `over` deletes the default. */
export function coalesce(base: Values, over: Values): Values {
  const out: Values = { ...base };
  for (const [k, v] of Object.entries(over)) {
    if (v === null) delete out[k];
    else if (isMap(v) && isMap(out[k])) out[k] = coalesce(out[k] as Values, v);
    else out[k] = v;
  }
  return out;
}

/** Chart.yaml's keys as helm's chart.Metadata exposes them to templates. */
function chartObject(meta: Record<string, unknown>): Record<string, unknown> {
  const names: Record<string, string> = { apiVersion: 'APIVersion', appVersion: 'AppVersion', kubeVersion: 'KubeVersion' };
  return Object.fromEntries(Object.entries(meta).map(([k, v]) => [names[k] ?? k[0].toUpperCase() + k.slice(1), v]));
}

export class ValuesError extends Error {}

let goTemplate: Promise<{ parse: (t: string, v: unknown) => Promise<string> }> | undefined;
function engine() {
  // An ES module: a real dynamic import (tsc would turn import() into require()).
  goTemplate ??= new Function('s', 'return import(s)')('@evertdespiegeleer/go-template');
  return goTemplate!;
}

export interface RenderOptions {
  name: string;
  namespace: string;
  values?: Values;
}

/** The chart's manifests as helm template would print them, parsed; throws ValuesError for values the schema refuses. */
export async function renderChart(chart: Chart, o: RenderOptions): Promise<Doc[]> {
  const values = coalesce(chart.values, JSON.parse(JSON.stringify(o.values ?? {})));
  if (chart.schema) {
    const check = new Ajv({ allErrors: true, strict: false }).compile(chart.schema);
    if (!check(values)) {
      throw new ValuesError(`values don't meet the specifications of the schema: ${(check.errors ?? []).map((e) => `${e.instancePath || '/'} ${e.message}`).join('; ')}`);
    }
  }
  const chartName = String(chart.meta.name);
  const data = {
    Values: values,
    Release: { Name: o.name, Namespace: o.namespace, Service: 'Helm', IsInstall: true, IsUpgrade: false, Revision: 1 },
    Chart: chartObject(chart.meta),
    Capabilities: { KubeVersion: { Version: 'v1.33.0', Major: '1', Minor: '33' }, APIVersions: [] },
    Template: { Name: '', BasePath: `${chartName}/templates` },
  };
  const partials = chart.templates.filter((t) => t.name.startsWith('_')).map((t) => t.text).join('\n');
  const { parse } = await engine();
  // One template set per file: the partials' {{define}}s first. Their text
  // outside the definitions would be output with each file, which helm
  // never does: it must be blank.
  const stray = await parse(partials, data);
  if (stray.trim() !== '') throw new Error(`the partials print text outside their definitions: ${JSON.stringify(stray.trim().slice(0, 80))}`);
  const docs: Doc[] = [];
  for (const t of chart.templates) {
    if (t.name.startsWith('_') || t.name === 'NOTES.txt') continue;
    data.Template.Name = `${chartName}/templates/${t.name}`;
    const out = (await parse(`${partials}${t.text}`, data)).split('<no value>').join('');
    docs.push(...parseDocs(out, `${chartName}/templates/${t.name}`));
  }
  return docs;
}
