import { WeftError } from '../errors.js';

/** One thing wrong with a configuration: where it is and what to do about it. */
export interface ConfigProblem {
  /** Dotted path of the field, e.g. `upstreams.0.listen` (empty for the whole document). */
  readonly path: string;
  readonly message: string;
  /** `file:line:column` when the field came from a file, else the flag or variable that set it. */
  readonly source?: string;
}

/**
 * Invalid configuration. Carries every problem found, so the user can fix them all in one
 * go; the running configuration (if any) is left untouched by whoever threw this.
 */
export class ConfigError extends WeftError {
  readonly problems: readonly ConfigProblem[];

  constructor(problems: readonly ConfigProblem[]) {
    super('WEFT_E_CONFIG', formatProblems(problems));
    this.name = 'ConfigError';
    this.problems = problems;
  }
}

/** Renders problems one per line, prefixed with their source and path. */
export function formatProblems(problems: readonly ConfigProblem[]): string {
  const head = `invalid configuration (${problems.length} problem${problems.length === 1 ? '' : 's'}):`;
  const lines = problems.map((p) => {
    const where = [p.source, p.path].filter((s) => s !== undefined && s !== '').join(' ');
    return `  - ${where === '' ? '' : `${where}: `}${p.message}`;
  });
  return [head, ...lines].join('\n');
}
