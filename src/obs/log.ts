import { pino, type Logger } from 'pino';

export type { Logger };

/**
 * The process logger: one JSON object per line on stdout (pino), with an ISO time and
 * the component name. Level from WEFT_LOG_LEVEL (default info).
 */
export function createLogger(component: string): Logger {
  return pino({
    base: { component },
    level: process.env['WEFT_LOG_LEVEL'] ?? 'info',
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label) => ({ level: label }) },
  });
}
