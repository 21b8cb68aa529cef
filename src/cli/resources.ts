import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { parseYamlDocuments, validateDocument } from '../config/load.js';
import { ConfigError, type ConfigProblem } from '../config/problems.js';
import { MESH_NAMESPACE, RESOURCE_DOCS, RESOURCE_KINDS, resourceValidator } from '../control/resources.js';
import { WeftError } from '../errors.js';
import { ApiClient, CLIENT_FLAGS, CLIENT_USAGE, refusal } from './api-client.js';
import { parseFlags, requiredFlag, usageError } from './args.js';

/**
 * `weft apply -f FILE|DIR`, `weft get KIND [NAME]`, `weft delete KIND NAME`: resources on
 * the control plane. `apply` validates every document of every file first and reports
 * all problems with file:line:col; nothing is sent while one remains.
 */

const APPLY_USAGE = `Usage: weft apply -f FILE|DIR [-f …] [flags]

  -f, --file PATH        a YAML file (several documents separated by ---) or a folder of .yaml/.yml files
${CLIENT_USAGE}`;

const GET_USAGE = `Usage: weft get KIND [NAME] [-n NAMESPACE] [-o yaml|json] [flags]

  KIND                   ${RESOURCE_KINDS.join(', ')}
  -n, --namespace NS     default: default (Mesh: weft-system); without NAME, all namespaces unless given
  -o, --output FORMAT    yaml (default) or json
${CLIENT_USAGE}`;

const DELETE_USAGE = `Usage: weft delete KIND NAME [-n NAMESPACE] [flags]
${CLIENT_USAGE}`;

export async function applyCommand(argv: string[]): Promise<number> {
  const { values } = parseFlags('apply', argv, { file: { type: 'string', short: 'f', multiple: true, default: [] }, ...CLIENT_FLAGS, help: { type: 'boolean', short: 'h', default: false } });
  if (values.help) return usage(APPLY_USAGE);
  if (values.file.length === 0) throw usageError('apply', '-f FILE|DIR is required');
  // The documents as written are sent (the server validates them again, as the authority).
  const resources: unknown[] = [];
  const problems: ConfigProblem[] = [];
  for (const file of await yamlFiles(values.file)) {
    const text = await readFile(file, 'utf8');
    for (const doc of parseYamlDocuments(file, text)) {
      const result = validateDocument(resourceValidator, doc, RESOURCE_DOCS);
      if (Array.isArray(result)) problems.push(...result);
      else resources.push(doc.raw);
    }
  }
  if (problems.length > 0) throw new ConfigError(problems);
  if (resources.length === 0) throw new WeftError('WEFT_E_USAGE', 'no resources in the given files');
  const client = await ApiClient.fromFlags(values);
  const answer = await client.call('POST', '/v1/apply', { resources });
  if (answer.status !== 200) throw refusal(answer);
  for (const a of answer.json['applied'] as { kind: string; namespace: string; name: string; revision: number; created: boolean }[]) {
    process.stdout.write(`${a.kind} ${a.namespace}/${a.name} ${a.created ? 'created' : 'configured'} (revision ${a.revision})\n`);
  }
  return 0;
}

export async function getCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parseFlags(
    'get',
    argv,
    { namespace: { type: 'string', short: 'n' }, output: { type: 'string', short: 'o', default: 'yaml' }, ...CLIENT_FLAGS, help: { type: 'boolean', short: 'h', default: false } },
    true,
  );
  if (values.help) return usage(GET_USAGE);
  const [kind, name, extra] = positionals;
  const k = checkKind('get', kind);
  if (extra !== undefined) throw usageError('get', `unexpected argument "${extra}"`);
  if (values.output !== 'yaml' && values.output !== 'json') throw usageError('get', '-o must be yaml or json');
  const client = await ApiClient.fromFlags(values);
  const path =
    name === undefined
      ? `/v1/resources/${k}${values.namespace !== undefined ? `?namespace=${encodeURIComponent(values.namespace)}` : ''}`
      : `/v1/resources/${k}/${encodeURIComponent(namespaceOf(k, values.namespace))}/${encodeURIComponent(name)}`;
  const answer = await client.call('GET', path);
  if (answer.status !== 200) throw refusal(answer);
  const items = name === undefined ? (answer.json['items'] as Record<string, unknown>[]) : [answer.json];
  const shaped = items.map((r) => ({ kind: r['kind'], metadata: { name: r['name'], namespace: r['namespace'], revision: r['revision'] }, spec: r['spec'] }));
  const out = name === undefined ? shaped : shaped[0];
  process.stdout.write(values.output === 'json' ? `${JSON.stringify(out, null, 2)}\n` : name === undefined ? shaped.map((r) => `---\n${stringify(r)}`).join('') : stringify(out));
  return 0;
}

export async function deleteCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parseFlags('delete', argv, { namespace: { type: 'string', short: 'n' }, ...CLIENT_FLAGS, help: { type: 'boolean', short: 'h', default: false } }, true);
  if (values.help) return usage(DELETE_USAGE);
  const k = checkKind('delete', positionals[0]);
  const name = requiredFlag('delete', positionals[1], 'NAME', 'the resource to delete');
  const client = await ApiClient.fromFlags(values);
  const ns = namespaceOf(k, values.namespace);
  const answer = await client.call('DELETE', `/v1/resources/${k}/${encodeURIComponent(ns)}/${encodeURIComponent(name)}`);
  if (answer.status !== 200) throw refusal(answer);
  process.stdout.write(`${k} ${ns}/${name} deleted\n`);
  return 0;
}

function checkKind(command: string, kind: string | undefined): string {
  if (kind === undefined || !(RESOURCE_KINDS as readonly string[]).includes(kind)) {
    throw usageError(command, `KIND must be one of ${RESOURCE_KINDS.join(', ')}${kind === undefined ? '' : `, not "${kind}"`}`);
  }
  return kind;
}

function namespaceOf(kind: string, namespace: string | undefined): string {
  return kind === 'Mesh' ? MESH_NAMESPACE : (namespace ?? 'default');
}

/** The files behind -f arguments: a file itself, or a folder's .yaml/.yml files in name order. */
async function yamlFiles(paths: readonly string[]): Promise<string[]> {
  const out: string[] = [];
  for (const p of paths) {
    let info;
    try {
      info = await stat(p);
    } catch {
      throw new WeftError('WEFT_E_USAGE', `cannot read ${p}: no such file or folder`);
    }
    if (info.isDirectory()) {
      const names = (await readdir(p)).filter((n) => /\.ya?ml$/.test(n)).sort();
      out.push(...names.map((n) => join(p, n)));
    } else {
      out.push(p);
    }
  }
  return out;
}

function usage(text: string): number {
  process.stdout.write(`${text}\n`);
  return 0;
}

const SERVICES_USAGE = `Usage: weft services [-o table|json] [flags]

The catalog: every service with its instances and their health.
${CLIENT_USAGE}`;

/** `weft services`: the catalog as a table (or JSON). */
export async function servicesCommand(argv: string[]): Promise<number> {
  const { values } = parseFlags('services', argv, { output: { type: 'string', short: 'o', default: 'table' }, ...CLIENT_FLAGS, help: { type: 'boolean', short: 'h', default: false } });
  if (values.help) return usage(SERVICES_USAGE);
  if (values.output !== 'table' && values.output !== 'json') throw usageError('services', '-o must be table or json');
  const client = await ApiClient.fromFlags(values);
  const answer = await client.call('GET', '/v1/catalog/services');
  if (answer.status !== 200) throw refusal(answer);
  type Row = { service: string; namespace: string; passing: number; instances: { address: string; port: number; health: string; reason: string | null; metadata: Record<string, string> }[] };
  const services = answer.json['services'] as Row[];
  if (values.output === 'json') {
    process.stdout.write(`${JSON.stringify(services, null, 2)}\n`);
    return 0;
  }
  const lines = [['SERVICE', 'NAMESPACE', 'HEALTHY', 'INSTANCES']];
  for (const s of services) {
    const instances = s.instances.map((i) => `${i.address}:${i.port} ${i.health}${i.metadata['version'] ? ` (${i.metadata['version']})` : ''}${i.reason ? `: ${i.reason}` : ''}`);
    lines.push([s.service, s.namespace, `${s.passing}/${s.instances.length}`, instances.join(', ')]);
  }
  const widths = lines[0]!.map((_, c) => Math.max(...lines.map((l) => l[c]!.length)));
  process.stdout.write(lines.map((l) => l.map((cell, c) => (c === l.length - 1 ? cell : cell.padEnd(widths[c]!))).join('  ')).join('\n') + '\n');
  return 0;
}
