/**
 * An error a user can act on: a stable `code` (WEFT_E_...) for scripts and docs, and a
 * message that says what went wrong and what to do about it.
 */
export class WeftError extends Error {
  readonly code: string;

  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'WeftError';
    this.code = code;
  }
}

/** True when `err` is a WeftError with the given code (or any WeftError when no code is given). */
export function isWeftError(err: unknown, code?: string): err is WeftError {
  return err instanceof WeftError && (code === undefined || err.code === code);
}
