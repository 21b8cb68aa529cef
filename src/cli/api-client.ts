import { readFile } from 'node:fs/promises';
import { request } from 'node:https';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';
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
  --ca-file F            the trust bundle to verify the server with (or WEFT_CA_FILE)
  Flags win over variables, which win over ~/.config/weft/cli.yaml (docs/cli.md).`;

/** The operator's defaults file: `$WEFT_CLI_CONFIG`, else `$XDG_CONFIG_HOME/weft/cli.yaml`, else `~/.config/weft/cli.yaml`. */
export function cliConfigPath(env: NodeJS.ProcessEnv = process.env): string {
  return env['WEFT_CLI_CONFIG'] ?? join(env['XDG_CONFIG_HOME'] ?? join(homedir(), '.config'), 'weft', 'cli.yaml');
}

/** What the defaults file may set (every field optional). */
interface CliConfig {
  server?: string;
  data?: string;
  adminToken?: string;
  adminTokenFile?: string;
  caFile?: string;
}

async function readCliConfig(): Promise<CliConfig> {
  const path = cliConfigPath();
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch {
    return {};
  }
  let parsed: unknown;
  try {
    parsed = parseYaml(text);
  } catch (err) {
    throw new WeftError('WEFT_E_USAGE', `${path} is not valid YAML: ${(err as Error).message}`);
  }
  if (parsed === null || parsed === undefined) return {};
  const known = ['server', 'data', 'adminToken', 'adminTokenFile', 'caFile'];
  if (typeof parsed !== 'object' || Array.isArray(parsed) || Object.entries(parsed).some(([k, v]) => !known.includes(k) || typeof v !== 'string')) {
    throw new WeftError('WEFT_E_USAGE', `${path}: expected a mapping of ${known.join(', ')} to strings`);
  }
  return parsed as CliConfig;
}

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
    const file = await readCliConfig();
    const env = process.env;
    const serverText = values.server ?? env['WEFT_SERVER'] ?? file.server ?? 'https://127.0.0.1:8443';
    let base: URL;
    try {
      base = new URL(serverText);
    } catch {
      throw new WeftError('WEFT_E_USAGE', `--server "${serverText}" is not a URL; write for example https://127.0.0.1:8443`);
    }
    if (base.protocol !== 'https:') throw new WeftError('WEFT_E_USAGE', `--server must be an https:// URL (the API is served over TLS), not ${serverText}`);
    // Flags, then variables, then the file; the file's credentials only go to the file's
    // server (or to any server when the file names none).
    const useFile = file.server === undefined || originOf(file.server, cliConfigPath()) === base.origin;
    const fileData = useFile ? file.data : undefined;
    const token =
      values['admin-token-file'] !== undefined
        ? await readToken(values['admin-token-file'])
        : values.data !== undefined
          ? await readToken(join(values.data, 'admin-token'))
          : nonEmpty(env['WEFT_ADMIN_TOKEN']) ??
            (!useFile
              ? undefined
              : file.adminToken ?? (file.adminTokenFile !== undefined ? await readToken(file.adminTokenFile) : fileData !== undefined ? await readToken(join(fileData, 'admin-token')) : undefined));
    const caFile =
      values['ca-file'] ??
      (values.data !== undefined ? join(values.data, 'ca', 'bundle.pem') : undefined) ??
      nonEmpty(env['WEFT_CA_FILE']) ??
      (useFile ? (file.caFile ?? (fileData !== undefined ? join(fileData, 'ca', 'bundle.pem') : undefined)) : undefined);
    if (token === undefined || token === '') throw new WeftError('WEFT_E_USAGE', `the admin token is needed: --data DIR, --admin-token-file FILE, WEFT_ADMIN_TOKEN or ${cliConfigPath()}`);
    if (caFile === undefined) throw new WeftError('WEFT_E_USAGE', `the CA bundle is needed to verify the server: --data DIR, --ca-file FILE, WEFT_CA_FILE or ${cliConfigPath()}`);
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
      req.setTimeout(30_000, () => req.destroy(new Error('no answer within 30 s')));
      req.on('error', (err) => reject(new WeftError('WEFT_E_SERVER', `cannot reach the server at ${url.origin}: ${err.message}`)));
      req.end(body === undefined ? undefined : JSON.stringify(body));
    });
  }
  /**
   * A streaming GET (NDJSON): resolves once the server answered 200 with the body's lines
   * as they come; another status rejects with the server's refusal. No overall timeout:
   * the caller ends it with `close()`.
   */
  stream(path: string): Promise<ApiStream> {
    const url = new URL(path, this.#base);
    return new Promise((resolve, reject) => {
      const req = request(url, { method: 'GET', ca: this.#ca, headers: { accept: 'application/x-ndjson', authorization: `Bearer ${this.#token}` } }, (res) => {
        req.setTimeout(0);
        res.setEncoding('utf8');
        if (res.statusCode !== 200) {
          let text = '';
          res.on('data', (c: string) => (text += c));
          res.on('end', () => {
            let json: Record<string, unknown> = {};
            try {
              json = JSON.parse(text) as Record<string, unknown>;
            } catch {
              // not JSON: the status says it
            }
            reject(refusal({ status: res.statusCode ?? 0, json }));
          });
          return;
        }
        let closed = false;
        const lines = (async function* () {
          let buffered = '';
          try {
            for await (const chunk of res as AsyncIterable<string>) {
              buffered += chunk;
              let nl: number;
              while ((nl = buffered.indexOf('\n')) >= 0) {
                const line = buffered.slice(0, nl);
                buffered = buffered.slice(nl + 1);
                if (line !== '') yield line;
              }
            }
          } catch (err) {
            if (!closed) throw new WeftError('WEFT_E_SERVER', `the stream from ${url.origin} broke: ${(err as Error).message}`);
          }
          if (buffered !== '' && !closed) yield buffered;
        })();
        resolve({
          lines,
          close: () => {
            closed = true;
            req.destroy();
          },
        });
      });
      // Only until the answer starts: a quiet stream is not an error.
      req.setTimeout(30_000, () => req.destroy(new Error('no answer within 30 s')));
      req.on('error', (err) => reject(new WeftError('WEFT_E_SERVER', `cannot reach the server at ${url.origin}: ${err.message}`)));
      req.end();
    });
  }
}

/** A streaming answer: its lines as they come, and how to stop it. */
export interface ApiStream {
  /** Each line of the body (without its newline), as it arrives; ends when the server ends the answer. */
  readonly lines: AsyncIterable<string>;
  /** Ends the call (the server sees the client go). */
  close(): void;
}

/** The server's error message from an answer, with its problems one per line when it has them. */
export function refusal(answer: ApiAnswer): WeftError {
  const error = answer.json['error'] as { code?: string; message?: string } | undefined;
  return new WeftError(error?.code ?? 'WEFT_E_SERVER', `the server refused: ${error?.message ?? `HTTP ${answer.status}`}`);
}

async function readToken(file: string): Promise<string> {
  return (await readInput(file, 'the admin token')).trim();
}

function originOf(url: string, where: string): string {
  try {
    return new URL(url).origin;
  } catch {
    throw new WeftError('WEFT_E_USAGE', `${where}: server "${url}" is not a URL; write for example https://127.0.0.1:8443`);
  }
}

function nonEmpty(value: string | undefined): string | undefined {
  return value === undefined || value === '' ? undefined : value;
}

async function readInput(file: string, what: string): Promise<string> {
  try {
    return await readFile(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new WeftError('WEFT_E_USAGE', `cannot read ${what} from ${file} (${code ?? (err as Error).message}); check --data, --admin-token-file or --ca-file`);
  }
}
