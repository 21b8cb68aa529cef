import { pino, type Logger } from 'pino';

/** One line of the audit log: an issuance, a refusal, a token created. */
export interface AuditEvent {
  readonly event: 'csr.signed' | 'csr.refused' | 'token.created' | 'token.revoked';
  /** How the caller authenticated: a join token (id only, never the secret), its certificate, or the admin token. */
  readonly via: 'join-token' | 'certificate' | 'admin';
  readonly remote: string | undefined;
  readonly spiffeId?: string;
  readonly serial?: string;
  readonly notAfter?: string;
  readonly tokenId?: string;
  readonly reason?: string;
}

/**
 * The control plane's audit log: JSON lines appended to a file (and never the request
 * body, a key or a token secret). Writes are synchronous: an issuance is on disk before
 * the certificate is returned.
 */
export class AuditLog {
  readonly #log: Logger;
  readonly #file: ReturnType<typeof pino.destination>;

  constructor(path: string) {
    this.#file = pino.destination({ dest: path, mkdir: true, sync: true });
    this.#log = pino({ base: undefined, timestamp: pino.stdTimeFunctions.isoTime }, this.#file);
  }

  close(): void {
    this.#file.end();
  }

  record(event: AuditEvent): void {
    this.#log.info(event);
  }
}
