import { WeftError } from './errors.js';

const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/**
 * Parses a duration such as `500ms`, `20s`, `5m`, `24h`, `1.5h` or `7d` into milliseconds.
 * Several parts may be joined (`1h30m`). Throws WEFT_E_DURATION on anything else.
 */
export function parseDuration(text: string): number {
  const input = text.trim();
  let total = 0;
  let rest = input;
  if (rest === '') throw badDuration(text);
  while (rest !== '') {
    const m = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)/.exec(rest);
    if (!m) throw badDuration(text);
    total += Number(m[1]) * (UNITS[m[2]!] ?? 0);
    rest = rest.slice(m[0].length);
  }
  return Math.round(total);
}

/** Formats milliseconds as the shortest exact duration string (`90000` → `90s`). */
export function formatDuration(ms: number): string {
  for (const unit of ['d', 'h', 'm', 's'] as const) {
    const size = UNITS[unit]!;
    if (ms >= size && ms % size === 0) return `${ms / size}${unit}`;
  }
  return `${ms}ms`;
}

function badDuration(text: string): WeftError {
  return new WeftError(
    'WEFT_E_DURATION',
    `"${text}" is not a duration: write a number and a unit, e.g. 500ms, 20s, 5m, 24h or 1h30m`,
  );
}

/** Rounds milliseconds to one unit for people: `45s`, `3m`, `2h`, `4d` (under 1.5 of a unit: the smaller one). */
export function formatApproxDuration(ms: number): string {
  const s = Math.max(0, ms) / 1000;
  if (s < 90) return `${Math.round(s)}s`;
  if (s < 90 * 60) return `${Math.round(s / 60)}m`;
  if (s < 36 * 3600) return `${Math.round(s / 3600)}h`;
  return `${Math.round(s / 86_400)}d`;
}
