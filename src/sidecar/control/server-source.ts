import type { Logger } from '../../obs/log.js';
import type { CertificateBundle } from '../../pki/certificate-bundle.js';
import { BaseSource, type CertificateSource } from '../../pki/certificate-source.js';
import { createCsr } from '../../pki/csr.js';
import { generateLeafKey } from '../../pki/keys.js';
import { Backoff } from './backoff.js';
import { bundleFromAnswer } from './enroll.js';
import { refusalMessage, type ServerClient } from './server-client.js';

/**
 * The certificate of a connected sidecar, signed by the control plane. Renewal, at about
 * half-life with jitter, generates a new key and sends a CSR authenticated by the current
 * certificate (`POST /v1/renew`); a failed renewal is retried with backoff while the
 * current certificate lasts. Each new certificate is handed to `persist` (the state
 * folder) before it is published.
 */
export class ServerIssuedSource extends BaseSource implements CertificateSource {
  readonly kind = 'control-plane';
  readonly #client: ServerClient;
  readonly #persist: (bundle: CertificateBundle) => Promise<void>;
  readonly #log: Logger;
  readonly #backoff = new Backoff({ baseMs: 1000, maxMs: 60_000 });
  readonly #initial: CertificateBundle;
  #timer: NodeJS.Timeout | null = null;
  #stopped = false;

  constructor(options: { initial: CertificateBundle; client: ServerClient; persist: (bundle: CertificateBundle) => Promise<void>; log: Logger }) {
    super();
    this.#initial = options.initial;
    this.#client = options.client;
    this.#persist = options.persist;
    this.#log = options.log;
  }

  start(): Promise<void> {
    this.publish(this.#initial);
    this.#scheduleFor(this.#initial);
    return Promise.resolve();
  }

  stop(): void {
    this.#stopped = true;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
  }

  /** Renews now (also what the timer does). */
  async renew(): Promise<void> {
    const current = this.get();
    try {
      const key = await generateLeafKey();
      const answer = await this.#client.call('POST', '/v1/renew', { body: { csr: createCsr(key.privateKey, current.spiffeId) } });
      if (answer.status !== 200) throw new Error(`the server refused the renewal: ${refusalMessage(answer)}`);
      const bundle = bundleFromAnswer(answer.json ?? {}, key.keyPem, current.spiffeId);
      await this.#persist(bundle);
      if (this.#stopped) return;
      this.#backoff.reset();
      this.publish(bundle);
      this.#log.info({ serial: bundle.serial, notAfter: bundle.notAfter.toISOString() }, 'certificate renewed by the server');
      this.#scheduleFor(bundle);
    } catch (err) {
      this.failed();
      const retry = this.#backoff.next();
      this.#log.error({ error: (err as Error).message, retryInMs: retry, expiresAt: current.notAfter.toISOString() }, 'certificate renewal failed; the current certificate stays in use');
      this.#schedule(retry);
    }
  }

  /** Half-life (with jitter) of the certificate's own lifetime, counted from its notBefore. */
  #scheduleFor(bundle: CertificateBundle): void {
    const lifetime = bundle.notAfter.getTime() - bundle.notBefore.getTime();
    const at = bundle.notBefore.getTime() + lifetime * (0.45 + 0.1 * Math.random());
    this.#schedule(Math.max(0, at - Date.now()));
  }

  #schedule(ms: number): void {
    if (this.#stopped) return;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = setTimeout(() => void this.renew(), Math.min(ms, 2 ** 31 - 1));
    this.#timer.unref();
  }
}
