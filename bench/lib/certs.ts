import { execFile } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';

const execFileP = promisify(execFile);

/** One service's certificate files, as every peer needs them. */
export interface ServiceCert {
  /** Leaf + intermediate chain (PEM). */
  readonly cert: string;
  /** Private key (PEM). */
  readonly key: string;
  /** Chain followed by the key in one file (HAProxy's `crt`). */
  readonly combined: string;
  readonly spiffeId: string;
}

/** The CA folder and the certificates every topology uses. */
export interface BenchCerts {
  /** `weft ca init` folder (sidecars self-issue from it). */
  readonly caDir: string;
  /** Trust bundle: the root certificate. */
  readonly bundle: string;
  readonly trustDomain: string;
  readonly web: ServiceCert;
  readonly api: ServiceCert;
}

/**
 * Creates a CA with `weft ca init` and issues `web` and `api` certificates with `weft ca issue`
 * (24 h) into `dir`, plus the combined cert+key files HAProxy wants.
 */
export async function makeCerts(dir: string, weftMain: string, trustDomain = 'example.org'): Promise<BenchCerts> {
  const caDir = join(dir, 'ca');
  const weft = (args: string[]) => execFileP(process.execPath, [weftMain, ...args], { timeout: 60_000 });
  await weft(['ca', 'init', '--out', caDir, '--trust-domain', trustDomain]);
  const issue = async (service: string): Promise<ServiceCert> => {
    const out = join(dir, service);
    await weft(['ca', 'issue', '--issuer', caDir, '--service', service, '--ttl', '24h', '--out', out]);
    const cert = join(out, 'cert.pem');
    const key = join(out, 'key.pem');
    const combined = join(out, 'combined.pem');
    const text = `${(await readFile(cert, 'utf8')).trimEnd()}\n${(await readFile(key, 'utf8')).trimEnd()}\n`;
    await writeFile(combined, text, { mode: 0o600 });
    return { cert, key, combined, spiffeId: `spiffe://${trustDomain}/ns/default/svc/${service}` };
  };
  const [web, api] = [await issue('web'), await issue('api')];
  return { caDir, bundle: join(caDir, 'bundle.pem'), trustDomain, web, api };
}
