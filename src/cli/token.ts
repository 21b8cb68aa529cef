import { WeftError } from '../errors.js';
import { ApiClient, CLIENT_FLAGS, CLIENT_USAGE, refusal } from './api-client.js';
import { parseFlags, requiredFlag } from './args.js';

const USAGE = `Usage: weft token create --service NAME [flags]
       weft token revoke ID [flags]     (ID: the middle part of wft.ID.SECRET)

  --service NAME         the service the token enrolls (required)
  --namespace NS         its namespace (default default)
  --ttl DURATION         how long the token is valid (default 1h)
  --uses N               how many enrollments it allows (default 1; 0 = unlimited)
${CLIENT_USAGE}

Prints the token on stdout. See docs/control-plane.md.`;

/** `weft token create`: asks the control plane for a join token. */
export async function tokenCommand(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub === undefined || sub === '--help' || sub === '-h') {
    process.stdout.write(`${USAGE}\n`);
    return sub === undefined ? 2 : 0;
  }
  if (sub === 'revoke') return revoke(rest);
  if (sub !== 'create') throw new WeftError('WEFT_E_USAGE', `unknown token command "${sub}" (see \`weft token --help\`)`);
  const { values } = parseFlags('token create', rest, {
    service: { type: 'string' },
    namespace: { type: 'string', default: 'default' },
    ttl: { type: 'string', default: '1h' },
    uses: { type: 'string', default: '1' },
    ...CLIENT_FLAGS,
    help: { type: 'boolean', short: 'h', default: false },
  });
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  const service = requiredFlag('token create', values.service, '--service', 'the service the token enrolls');
  const uses = Number(values.uses);
  if (!Number.isInteger(uses) || uses < 0) throw new WeftError('WEFT_E_USAGE', '--uses must be a whole number (0 = unlimited)');
  const client = await ApiClient.fromFlags(values);
  const answer = await client.call('POST', '/v1/tokens', { service, namespace: values.namespace, ttl: values.ttl, uses: uses === 0 ? null : uses });
  if (answer.status !== 201) throw refusal(answer);
  const created = answer.json as { token: string; spiffeId: string; expiresAt: string };
  process.stdout.write(`${created.token}\n`);
  process.stderr.write(`join token for ${created.spiffeId}, valid until ${created.expiresAt}\n`);
  return 0;
}

async function revoke(argv: string[]): Promise<number> {
  const { values, positionals } = parseFlags('token revoke', argv, { ...CLIENT_FLAGS, help: { type: 'boolean', short: 'h', default: false } }, true);
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  const id = requiredFlag('token revoke', positionals[0], 'ID', 'the token id (wft.ID.SECRET)');
  const tokenId = id.startsWith('wft.') ? (id.split('.')[1] ?? '') : id;
  const client = await ApiClient.fromFlags(values);
  const answer = await client.call('DELETE', `/v1/tokens/${encodeURIComponent(tokenId)}`);
  if (answer.status !== 200) throw refusal(answer);
  process.stdout.write(`join token ${tokenId} revoked\n`);
  return 0;
}
