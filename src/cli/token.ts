import { readFile } from 'node:fs/promises';
import { request } from 'node:https';
import { join } from 'node:path';
import { WeftError } from '../errors.js';
import { parseFlags, requiredFlag } from './args.js';

const USAGE = `Usage: weft token create --service NAME [flags]

  --service NAME         the service the token enrolls (required)
  --namespace NS         its namespace (default default)
  --ttl DURATION         how long the token is valid (default 1h)
  --uses N               how many enrollments it allows (default 1; 0 = unlimited)
  --server URL           the control plane API (default https://127.0.0.1:8443)   WEFT_SERVER
  --data DIR             read the admin token and CA bundle from a server data folder
  --admin-token-file F   the admin token (or WEFT_ADMIN_TOKEN)
  --ca-file F            the trust bundle to verify the server with (or WEFT_CA_FILE)

Prints the token on stdout. See docs/control-plane.md.`;

/** `weft token create`: asks the control plane for a join token. */
export async function tokenCommand(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub === undefined || sub === '--help' || sub === '-h') {
    process.stdout.write(`${USAGE}\n`);
    return sub === undefined ? 2 : 0;
  }
  if (sub !== 'create') throw new WeftError('WEFT_E_USAGE', `unknown token command "${sub}" (see \`weft token --help\`)`);
  const { values } = parseFlags('token create', rest, {
    service: { type: 'string' },
    namespace: { type: 'string', default: 'default' },
    ttl: { type: 'string', default: '1h' },
    uses: { type: 'string', default: '1' },
    server: { type: 'string' },
    data: { type: 'string' },
    'admin-token-file': { type: 'string' },
    'ca-file': { type: 'string' },
    help: { type: 'boolean', short: 'h', default: false },
  });
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  const service = requiredFlag('token create', values.service, '--service', 'the service the token enrolls');
  const uses = Number(values.uses);
  if (!Number.isInteger(uses) || uses < 0) throw new WeftError('WEFT_E_USAGE', '--uses must be a whole number (0 = unlimited)');
  const server = new URL(values.server ?? process.env['WEFT_SERVER'] ?? 'https://127.0.0.1:8443');
  const tokenFile = values['admin-token-file'] ?? (values.data !== undefined ? join(values.data, 'admin-token') : undefined);
  const caFile = values['ca-file'] ?? process.env['WEFT_CA_FILE'] ?? (values.data !== undefined ? join(values.data, 'ca', 'bundle.pem') : undefined);
  const adminToken = tokenFile !== undefined ? (await readInput(tokenFile, 'the admin token')).trim() : process.env['WEFT_ADMIN_TOKEN'];
  if (adminToken === undefined || adminToken === '') throw new WeftError('WEFT_E_USAGE', 'the admin token is needed: --data DIR, --admin-token-file FILE or WEFT_ADMIN_TOKEN');
  if (caFile === undefined) throw new WeftError('WEFT_E_USAGE', 'the CA bundle is needed to verify the server: --data DIR, --ca-file FILE or WEFT_CA_FILE');
  const ca = await readInput(caFile, 'the CA bundle');
  const body = JSON.stringify({ service, namespace: values.namespace, ttl: values.ttl, uses: uses === 0 ? null : uses });
  const answer = await post(new URL('/v1/tokens', server), body, { authorization: `Bearer ${adminToken}` }, ca);
  if (answer.status !== 201) {
    const message = (answer.json as { error?: { message?: string } }).error?.message ?? `HTTP ${answer.status}`;
    throw new WeftError('WEFT_E_SERVER', `the server refused: ${message}`);
  }
  const created = answer.json as { token: string; spiffeId: string; expiresAt: string };
  process.stdout.write(`${created.token}\n`);
  process.stderr.write(`join token for ${created.spiffeId}, valid until ${created.expiresAt}\n`);
  return 0;
}

async function readInput(file: string, what: string): Promise<string> {
  try {
    return await readFile(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new WeftError('WEFT_E_USAGE', `cannot read ${what} from ${file} (${code ?? (err as Error).message}); check --data, --admin-token-file or --ca-file`);
  }
}

function post(url: URL, body: string, headers: Record<string, string>, ca: string): Promise<{ status: number; json: unknown }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: 'POST', ca, headers: { 'content-type': 'application/json', ...headers } }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (text += c));
      res.on('end', () => {
        try {
          resolve({ status: res.statusCode ?? 0, json: JSON.parse(text) });
        } catch {
          reject(new WeftError('WEFT_E_SERVER', `the server answered ${res.statusCode ?? 0} with something that is not JSON`));
        }
      });
    });
    req.on('error', (err) => reject(new WeftError('WEFT_E_SERVER', `cannot reach the server at ${url.origin}: ${err.message}`)));
    req.end(body);
  });
}
