/**
 * Regular expressions of route matches (`type: RegularExpression`). They are JavaScript
 * RegExp syntax, always matched against the whole value (anchored), and compiled once per
 * configuration. The schema calls `regexProblem` so that a bad pattern is refused when the
 * route is applied, never found at request time.
 *
 * Two families of constructs are refused, because they are the ones that turn a regex
 * engine with backtracking into a CPU sink fed by request data, and because RE2 (what most
 * Gateway API implementations use) does not have them either:
 *
 * - lookarounds (`(?=`, `(?!`, `(?<=`, `(?<!`) and backreferences (`\1`, `\k<name>`);
 * - nested unbounded quantifiers, such as `(a+)+`, `(a*)*` or `(?:x+y*){2,}`.
 */

/** What is wrong with a route regex, or null when it compiles and is allowed. */
export function regexProblem(source: string): string | null {
  try {
    new RegExp(source);
  } catch (err) {
    // V8: "Invalid regular expression: /SOURCE/flags: Reason"; the pattern is quoted by the caller.
    const reason = (err as Error).message.replace(/^Invalid regular expression: \/.*\/[a-z]*: /s, '');
    return `invalid regular expression: ${reason.charAt(0).toLowerCase()}${reason.slice(1)}`;
  }
  return constructProblem(source);
}

/** Compiles a pattern checked by `regexProblem` into an anchored RegExp (whole-value match). */
export function compileRouteRegex(source: string): RegExp {
  // The pattern alone compiled (regexProblem): wrapping it in a group keeps its meaning.
  return new RegExp(`^(?:${source})$`);
}

const META = new Set('\\^$.|?*+()[]{}');

/**
 * A literal every value the (anchored) pattern matches starts with, for a cheap
 * `startsWith` before the regex runs: the plain characters at the start of the pattern,
 * less the last one when a `?`, `*` or `{` makes it optional. Empty when the pattern has a
 * `|` anywhere (an alternation may bypass it).
 */
export function regexLiteralPrefix(source: string): string {
  if (source.includes('|')) return '';
  let i = source.startsWith('^') ? 1 : 0;
  const from = i;
  while (i < source.length && !META.has(source[i]!)) i++;
  const next = source[i];
  const end = next === '?' || next === '*' || next === '{' ? i - 1 : i;
  return source.slice(from, Math.max(from, end));
}

/** Escapes a literal for use inside a RegExp. */
export function escapeRegex(literal: string): string {
  return literal.replace(/[\\^$.*+?()[\]{}|/-]/g, '\\$&');
}

interface Group {
  /** The group holds an unbounded quantifier (`*`, `+`, `{n,}`, `{n,m}` with m > 1). */
  unbounded: boolean;
}

function constructProblem(source: string): string | null {
  const stack: Group[] = [{ unbounded: false }];
  let inClass = false;
  for (let i = 0; i < source.length; i++) {
    const c = source[i]!;
    if (c === '\\') {
      const next = source[i + 1] ?? '';
      if (!inClass && (/[1-9]/.test(next) || (next === 'k' && source[i + 2] === '<'))) {
        return 'backreferences (\\1, \\k<name>) are not supported: match the value without them';
      }
      i++;
      continue;
    }
    if (inClass) {
      if (c === ']') inClass = false;
      continue;
    }
    if (c === '[') {
      inClass = true;
      // `[]` and `[^]` are complete classes in JavaScript; a `]` right after `[` or `[^` closes it.
      continue;
    }
    if (c === '(') {
      if (/^\(\?(=|!|<=|<!)/.test(source.slice(i, i + 4))) {
        return 'lookarounds ((?=, (?!, (?<=, (?<!) are not supported: match the value without them';
      }
      stack.push({ unbounded: false });
      continue;
    }
    const quantifier = unboundedQuantifierAt(source, i);
    if (c === ')') {
      const group = stack.pop()!;
      const after = unboundedQuantifierAt(source, i + 1);
      if (group.unbounded && after) {
        return 'nested repetition such as (a+)+ can take exponential time on some inputs: rewrite it without a repeated group that itself repeats';
      }
      const parent = stack[stack.length - 1]!;
      parent.unbounded ||= group.unbounded || after;
      continue;
    }
    if (quantifier) stack[stack.length - 1]!.unbounded = true;
  }
  return null;
}

/** Whether an unbounded quantifier (`*`, `+`, `{n,}`, `{n,m}` with m > 1) starts at `i`. */
function unboundedQuantifierAt(source: string, i: number): boolean {
  const c = source[i];
  if (c === '*' || c === '+') return true;
  if (c !== '{') return false;
  const m = /^\{(\d+)(,(\d*))?\}/.exec(source.slice(i, i + 24));
  if (m === null) return false;
  if (m[2] === undefined) return Number(m[1]) > 1;
  return m[3] === '' || Number(m[3]) > 1;
}
