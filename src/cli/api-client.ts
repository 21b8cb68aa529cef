import { readFile } from 'node:fs/promises';
import { request } from 'node:https';
import { join } from 'node:path';
import { WeftError } from '../errors.js';

/** The flags every operator command takes to reach the control plane API. */
export const CLIENT_FLAGS = {
  server: { type: 'string' },
  data: { type: 'string' },
  'admin-token-file': { type: 'string' },
  'ca-file': { type: 'string' },
} as const;

export const CLIENT_USAGE = `  --server URL           the control plane API (default https://127.0.0.1:8443)   WEFT_SERVER
  --data DIR             read the admin token and CA bundle from a server data folder
  --admin-token-file F   the admin token (or WEFT_ADMIN_TOKEN)
  --ca-file F            the trust bundle to verify the server with (or WEFT_CA_FILE)`;

/** An answer from the API. */
export interface ApiAnswer {
  readonly status: number;
  readonly json: Record<string, unknown>;
}

/** Calls the control plane with the admin token, verifying the server with the CA bundle. */
export class ApiClient {
  readonly #base: URL;
  readonly #token: string;
  readonly #ca: string;

  private constructor(base: URL, token: string, ca: string) {
    this.#base = base;
    this.#token = token;
    this.#ca = ca;
  }

  static async fromFlags(values: { server?: string; data?: string; 'admin-token-file'?: string; 'ca-file'?: string }): Promise<ApiClient> {
    const serverText = values.server ?? process.env['WEFT_SERVER'] ?? 'https://127.0.0.1:8443';
    let base: URL;
    try {
      base = new URL(serverText);
    } catch {
      throw new WeftError('WEFT_E_USAGE', `--server "${serverText}" is not a URL; write for example https://127.0.0.1:8443`);
    }
    if (base.protocol !== 'https:') throw new WeftError('WEFT_E_USAGE', `--server must be an https:// URL (the API is served over TLS), not ${serverText}`);
    const tokenFile = values['admin-token-file'] ?? (values.data !== undefined ? join(values.data, 'admin-token') : undefined);
    const caFile = values['ca-file'] ?? process.env['WEFT_CA_FILE'] ?? (values.data !== undefined ? join(values.data, 'ca', 'bundle.pem') : undefined);
    const token = tokenFile !== undefined ? (await readInput(tokenFile, 'the admin token')).trim() : process.env['WEFT_ADMIN_TOKEN'];
    if (token === undefined || token === '') throw new WeftError('WEFT_E_USAGE', 'the admin token is needed: --data DIR, --admin-token-file FILE or WEFT_ADMIN_TOKEN');
    if (caFile === undefined) throw new WeftError('WEFT_E_USAGE', 'the CA bundle is needed to verify the server: --data DIR, --ca-file FILE or WEFT_CA_FILE');
    return new ApiClient(base, token, await readInput(caFile, 'the CA bundle'));
  }

  call(method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<ApiAnswer> {
    const url = new URL(path, this.#base);
    return new Promise((resolve, reject) => {
      const req = request(url, { method, ca: this.#ca, headers: { 'content-type': 'application/json', authorization: `Bearer ${this.#token}`, ...headers } }, (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (text += c));
        res.on('end', () => {
          try {
            resolve({ status: res.statusCode ?? 0, json: JSON.parse(text) as Record<string, unknown> });
          } catch {
            reject(new WeftError('WEFT_E_SERVER', `the server answered ${res.statusCode ?? 0} with something that is not JSON`));
          }
        });
      });
      req.on('error', (err) => reject(new WeftError('WEFT_E_SERVER', `cannot reach the server at ${url.origin}: ${err.message}`)));
      req.end(body === undefined ? undefined : JSON.stringify(body));
    });
  }
}

/** The server's error message from an answer, with its problems one per line when it has them. */
export function refusal(answer: ApiAnswer): WeftError {
  const error = answer.json['error'] as { code?: string; message?: string } | undefined;
  return new WeftError(error?.code ?? 'WEFT_E_SERVER', `the server refused: ${error?.message ?? `HTTP ${answer.status}`}`);
}

async function readInput(file: string, what: string): Promise<string> {
  try {
    return await readFile(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new WeftError('WEFT_E_USAGE', `cannot read ${what} from ${file} (${code ?? (err as Error).message}); check --data, --admin-token-file or --ca-file`);
  }
}
