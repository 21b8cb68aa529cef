import { parseArgs } from 'node:util';
import { parseDuration } from '../duration.js';
import { WeftError } from '../errors.js';

/**
 * Flag parsing shared by the CLI commands: node:util's parseArgs in strict mode, with its
 * errors turned into WEFT_E_USAGE messages that name the flag and point at `--help`.
 * `command` is how the help is reached, e.g. `ca init` or `token create`.
 */

type Options = NonNullable<NonNullable<Parameters<typeof parseArgs>[0]>['options']>;

export function parseFlags<O extends Options>(command: string, args: string[], options: O, allowPositionals = false) {
  try {
    return parseArgs({ args, options, strict: true, allowPositionals });
  } catch (err) {
    const code = (err as { code?: string }).code;
    const name = /'([^']+)'/.exec((err as Error).message)?.[1];
    const message =
      code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION'
        ? `unknown flag ${name ?? ''}`
        : code === 'ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL'
          ? `unexpected argument "${name ?? ''}"`
          : code === 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE'
            ? `${/--[\w-]+/.exec((err as Error).message)?.[0] ?? 'a flag'} ${
                /does not take/.test((err as Error).message) ? 'does not take a value' : 'needs a value'
              }`
            : (err as Error).message;
    throw usageError(command, message);
  }
}

export function usageError(command: string, message: string): WeftError {
  return new WeftError('WEFT_E_USAGE', `${message} (see \`weft ${command} --help\`)`);
}

export function requiredFlag(command: string, value: string | undefined, flag: string, what: string): string {
  if (value === undefined || value === '') throw usageError(command, `${flag} is required: ${what}`);
  return value;
}

export function durationFlag(flag: string, value: string | undefined): number {
  try {
    return parseDuration(value ?? '');
  } catch (err) {
    throw new WeftError('WEFT_E_USAGE', `${flag}: ${(err as Error).message}`);
  }
}
