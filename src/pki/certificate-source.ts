import { watchFile, unwatchFile } from 'node:fs';
import type { Logger } from '../obs/log.js';
import { WatchedValue, type Watch } from '../watch.js';
import { WeftError } from '../errors.js';
import { certificateBundleFromLeaf, type CertificateBundle } from './certificate-bundle.js';
import { readPemInput, splitPemCertificates } from './pem.js';
import { issueLeaf, type IssueLeafOptions, type Issuer } from './issuer.js';
import { certificateInfo, leafMatchesKey, verifyChain } from './verify.js';

/**
 * Where a sidecar's certificate comes from: a watched CertificateBundle. `start` loads the
 * first one (and throws a WeftError the user can act on if it cannot); after that the
 * source keeps the value fresh by itself until `stop`.
 */
export interface CertificateSource extends Watch<CertificateBundle> {
  start(): Promise<void>;
  stop(): void;
  /** Registers a listener for renewal outcomes (metrics, logs). */
  onRenewal(fn: RenewalListener): void;
  /** `self-issued` or `files`, for /certs. */
  readonly kind: string;
}

/** Called after every renewal or reload attempt. */
export type RenewalListener = (result: 'renewed' | 'error', bundle: CertificateBundle | null) => void;

/** Fraction of the lifetime after which a certificate is renewed: about half-life, with jitter. */
export function renewalDelay(lifetimeMs: number, random: () => number = Math.random): number {
  return Math.round(lifetimeMs * (0.45 + 0.1 * random()));
}

export abstract class BaseSource {
  #value: WatchedValue<CertificateBundle> | null = null;
  protected readonly listeners: RenewalListener[] = [];

  get(): CertificateBundle {
    if (this.#value === null) throw new Error('certificate source not started');
    return this.#value.get();
  }

  subscribe(fn: (value: CertificateBundle) => void): () => void {
    if (this.#value === null) throw new Error('certificate source not started');
    return this.#value.subscribe(fn);
  }

  /** Registers a listener for renewal outcomes (metrics, logs). */
  onRenewal(fn: RenewalListener): void {
    this.listeners.push(fn);
  }

  protected publish(bundle: CertificateBundle): void {
    if (this.#value === null) this.#value = new WatchedValue(bundle);
    else this.#value.set(bundle);
    for (const fn of this.listeners) fn('renewed', bundle);
  }

  protected failed(): void {
    for (const fn of this.listeners) fn('error', null);
  }
}

/**
 * Signs its own short-lived certificate with an intermediate CA held by the sidecar
 * (injected by the platform, e.g. from Vault), and renews it at about half-life with
 * jitter. A failed renewal is retried with backoff while the current certificate lasts.
 */
export class SelfIssuingSource extends BaseSource implements CertificateSource {
  readonly kind = 'self-issued';
  readonly #issuer: Issuer;
  readonly #spiffeId: string;
  readonly #ttlMs: number;
  readonly #hostNames: IssueLeafOptions['hostNames'];
  readonly #log: Logger;
  #timer: NodeJS.Timeout | null = null;
  #failures = 0;
  #stopped = false;

  constructor(options: { issuer: Issuer; spiffeId: string; ttlMs: number; log: Logger; hostNames?: IssueLeafOptions['hostNames'] }) {
    super();
    this.#issuer = options.issuer;
    this.#spiffeId = options.spiffeId;
    this.#ttlMs = options.ttlMs;
    this.#log = options.log;
    this.#hostNames = options.hostNames;
  }

  async start(): Promise<void> {
    const bundle = await this.#issue();
    this.publish(bundle);
    this.#schedule(renewalDelay(bundle.notAfter.getTime() - Date.now()));
  }

  stop(): void {
    this.#stopped = true;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
  }

  async #issue(): Promise<CertificateBundle> {
    const hostNames = this.#hostNames !== undefined ? { hostNames: this.#hostNames } : {};
    return certificateBundleFromLeaf(await issueLeaf(this.#issuer, { spiffeId: this.#spiffeId, ttlMs: this.#ttlMs, ...hostNames }), this.#issuer);
  }

  #schedule(ms: number): void {
    if (this.#stopped) return;
    // setTimeout fires at once for delays above 2^31-1 ms (about 24.8 days): cap it.
    this.#timer = setTimeout(() => void this.#renew(), Math.min(ms, 2 ** 31 - 1));
    this.#timer.unref();
  }

  async #renew(): Promise<void> {
    try {
      const bundle = await this.#issue();
      if (this.#stopped) return;
      this.#failures = 0;
      this.publish(bundle);
      this.#log.info({ serial: bundle.serial, notAfter: bundle.notAfter.toISOString() }, 'certificate renewed');
      this.#schedule(renewalDelay(bundle.notAfter.getTime() - Date.now()));
    } catch (err) {
      this.#failures++;
      this.failed();
      const retry = Math.min(30_000, 1000 * 2 ** Math.min(this.#failures, 5));
      this.#log.error({ err, retryInMs: retry }, 'certificate renewal failed');
      this.#schedule(retry);
    }
  }
}

/**
 * Certificate, key and trust bundle from files written by someone else (cert-manager,
 * Vault agent, SPIRE helper). The files are watched: a complete, valid new set replaces
 * the current one; an invalid or half-written set is ignored (and logged) until it is
 * complete.
 */
export class FileSource extends BaseSource implements CertificateSource {
  readonly kind = 'files';
  readonly #paths: { cert: string; key: string; bundle: string };
  readonly #expectedId: string;
  readonly #log: Logger;
  #watching = false;
  #reloading: Promise<void> = Promise.resolve();

  constructor(options: { cert: string; key: string; bundle: string; expectedSpiffeId: string; log: Logger }) {
    super();
    this.#paths = { cert: options.cert, key: options.key, bundle: options.bundle };
    this.#expectedId = options.expectedSpiffeId;
    this.#log = options.log;
  }

  async start(): Promise<void> {
    this.publish(await this.#load());
    this.#watching = true;
    for (const path of Object.values(this.#paths)) {
      watchFile(path, { interval: 500, persistent: false }, () => {
        this.#reloading = this.#reloading.then(() => this.#reload());
      });
    }
  }

  stop(): void {
    if (!this.#watching) return;
    this.#watching = false;
    for (const path of Object.values(this.#paths)) unwatchFile(path);
  }

  async #reload(): Promise<void> {
    try {
      const bundle = await this.#load();
      if (bundle.serial === this.get().serial && bundle.bundlePem === this.get().bundlePem) return;
      this.publish(bundle);
      this.#log.info({ serial: bundle.serial, notAfter: bundle.notAfter.toISOString() }, 'certificate files reloaded');
    } catch (err) {
      this.failed();
      this.#log.warn({ err: (err as Error).message }, 'certificate files changed but are not usable yet; keeping the current certificate');
    }
  }

  async #load(): Promise<CertificateBundle> {
    const [chainPem, keyPem, bundlePem] = await Promise.all([
      readPemInput(this.#paths.cert),
      readPemInput(this.#paths.key),
      readPemInput(this.#paths.bundle),
    ]);
    return validateCertificateFiles({ chainPem, keyPem, bundlePem, expectedSpiffeId: this.#expectedId, paths: this.#paths });
  }
}

/**
 * Checks a certificate set before it is used: the key matches the leaf, the chain verifies
 * against the bundle now, and the leaf carries the expected SPIFFE ID.
 */
export function validateCertificateFiles(input: {
  chainPem: string;
  keyPem: string;
  bundlePem: string;
  expectedSpiffeId: string;
  paths: { cert: string; key: string; bundle: string };
}): CertificateBundle {
  const certs = splitPemCertificates(input.chainPem);
  const leafPem = certs[0]!;
  const info = certificateInfo(leafPem);
  const { paths } = input;
  const verdict = verifyChain({ certPems: certs, bundlePems: splitPemCertificates(input.bundlePem) });
  if (!verdict.ok) {
    throw new WeftError('WEFT_E_CERT_UNTRUSTED', `${paths.cert} does not verify against ${paths.bundle}: ${verdict.reason}; renew it or fix the trust bundle`);
  }
  if (!leafMatchesKey(leafPem, input.keyPem)) {
    throw new WeftError('WEFT_E_CERT_KEY_MISMATCH', `${paths.key} is not the private key of ${paths.cert}; give the key the certificate was issued for`);
  }
  if (info.spiffeIds.length !== 1 || info.spiffeIds[0] !== input.expectedSpiffeId) {
    throw new WeftError(
      'WEFT_E_CERT_IDENTITY',
      `${paths.cert} is for ${info.spiffeIds.join(', ') || 'no SPIFFE ID'}, but this sidecar is ${input.expectedSpiffeId}; fix service/namespace/trustDomain or issue a certificate for it`,
    );
  }
  return {
    keyPem: input.keyPem,
    chainPem: input.chainPem,
    bundlePem: input.bundlePem,
    spiffeId: input.expectedSpiffeId,
    serial: info.serial,
    notBefore: info.notBefore,
    notAfter: info.notAfter,
  };
}
