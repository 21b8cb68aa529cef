import type { TopologyName } from '../topologies/types.js';
import { TOPOLOGY_NAMES } from '../topologies/types.js';
import { ratio, type Agg } from './stats.js';

/** One column of a results table: a metric key and how to print it. */
export interface Column {
  readonly key: string;
  readonly label: string;
  /** Decimals (default 0). */
  readonly digits?: number;
  /** Add a "÷ direct" column after this one (each topology's median over direct's). */
  readonly vsDirect?: boolean;
  /** Include in the weft / nginx and weft / HAProxy rows (default true). */
  readonly ratios?: boolean;
}

/** Aggregated metrics of one topology in one table. */
export type RowValues = Readonly<Record<string, Agg | null>>;

/** A results table: one row per topology, then the ratio rows. */
export interface TableSpec {
  readonly id: string;
  readonly title: string;
  readonly columns: readonly Column[];
  readonly rows: Readonly<Partial<Record<TopologyName, RowValues>>>;
  readonly notes?: readonly string[];
}

/** `12,345` / `12.3`. */
export function formatNumber(v: number, digits = 0): string {
  if (!Number.isFinite(v)) return '—';
  return v.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

/** `0.62x`. */
export function formatRatio(r: number | null): string {
  return r === null || !Number.isFinite(r) ? '—' : `${r.toFixed(2)}x`;
}

function cell(a: Agg | null | undefined, digits: number): string {
  if (!a) return '—';
  const m = formatNumber(a.median, digits);
  if (a.n < 2 || a.min === a.max) return m;
  return `${m} (${formatNumber(a.min, digits)}–${formatNumber(a.max, digits)})`;
}

/** Renders a table as markdown: `| direct | … |` rows for every topology, then ratio rows. */
export function renderTable(t: TableSpec): string {
  const header: string[] = ['topology'];
  for (const c of t.columns) {
    header.push(c.label);
    if (c.vsDirect) header.push('÷ direct');
  }
  const lines = [`| ${header.join(' | ')} |`, `|${header.map((_, i) => (i === 0 ? '---' : '---:')).join('|')}|`];
  const direct = t.rows.direct;
  for (const name of TOPOLOGY_NAMES) {
    const row = t.rows[name];
    const cells: string[] = [name];
    for (const c of t.columns) {
      cells.push(cell(row?.[c.key], c.digits ?? 0));
      if (c.vsDirect) cells.push(formatRatio(ratio(row?.[c.key]?.median, direct?.[c.key]?.median)));
    }
    lines.push(`| ${cells.join(' | ')} |`);
  }
  for (const [label, other] of [
    ['weft / nginx', 'nginx'],
    ['weft / haproxy', 'haproxy'],
  ] as const) {
    const cells: string[] = [`*${label}*`];
    for (const c of t.columns) {
      cells.push(c.ratios === false ? '' : formatRatio(ratio(t.rows.weft?.[c.key]?.median, t.rows[other]?.[c.key]?.median)));
      if (c.vsDirect) cells.push('');
    }
    lines.push(`| ${cells.join(' | ')} |`);
  }
  let text = `#### ${t.title}\n\n${lines.join('\n')}\n`;
  if (t.notes && t.notes.length > 0) text += `\n${t.notes.map((n) => `- ${n}`).join('\n')}\n`;
  return text;
}

/** Everything the report document shows. */
export interface ReportInput {
  readonly title: string;
  readonly command: string;
  readonly env: import('./env.js').MachineInfo;
  readonly pinning: string;
  readonly settings: readonly string[];
  readonly topologies: readonly string[];
  readonly goals: readonly import('./goals.js').GoalResult[];
  readonly scenarios: readonly import('../scenarios/common.js').ScenarioResult[];
  readonly failures: readonly { readonly scenario: string; readonly error: string }[];
  readonly elapsedS: number;
}

/** The machine and versions table (also pasted into docs/performance.md). */
export function renderMachine(env: import('./env.js').MachineInfo, pinning: string): string {
  const rows: [string, string][] = [
    ['date', env.date],
    ['CPU', `${env.cpuModel}, ${env.cores} cores`],
    ['memory', `${env.memoryGiB} GiB`],
    ['kernel', env.kernel],
    ['Node', `${env.node} (bundled OpenSSL ${env.nodeOpenssl}; runs weft)`],
    ['OpenSSL', `${env.openssl} (system; nginx and HAProxy link it)`],
    ['nginx', env.nginx],
    ['HAProxy', env.haproxy],
    ['wrk', env.wrk],
    ['weft', `commit ${env.weftCommit}`],
    ['clock ticks', `${env.clkTck}/s (CPU time resolution ${(1000 / env.clkTck).toFixed(0)} ms per process)`],
    ['pinning', pinning],
  ];
  return `| | |\n|---|---|\n${rows.map(([k, v]) => `| ${k} | ${v.replace(/\|/g, '\\|')} |`).join('\n')}\n`;
}

/** The goals table. */
export function renderGoals(goals: readonly import('./goals.js').GoalResult[]): string {
  const lines = ['| goal | target | measured | |', '|---|---|---|---|'];
  for (const g of goals) lines.push(`| ${g.goal} | ${g.target} | ${g.measured} | ${g.met === null ? 'not measured' : g.met ? 'met' : '**missed**'} |`);
  return `${lines.join('\n')}\n`;
}

/** The whole report.md. */
export function renderReport(r: ReportInput): string {
  const parts: string[] = [];
  parts.push(`# ${r.title}\n`);
  parts.push(`\`${r.command}\` — finished in ${Math.round(r.elapsedS)} s.\n`);
  parts.push(`![weft / nginx and weft / HAProxy ratios](chart.svg)\n`);
  parts.push(`## Machine and versions\n\n${renderMachine(r.env, r.pinning)}`);
  parts.push(`## Settings\n\n${r.settings.map((s) => `- ${s}`).join('\n')}\n`);
  parts.push(`## Topologies\n\n${r.topologies.map((s) => `- ${s}`).join('\n')}\n`);
  parts.push(`## Goals of issue 3 (medians of this run)\n\n${renderGoals(r.goals)}`);
  if (r.failures.length > 0) {
    parts.push(`## Failures\n\n${r.failures.map((f) => `- **${f.scenario}**: ${f.error.replace(/\n/g, '\n  ')}`).join('\n')}\n`);
  }
  for (const s of r.scenarios) {
    parts.push(`## ${s.title}\n\n${s.intro}\n`);
    for (const t of s.tables) parts.push(renderTable(t));
    if (s.notes.length > 0) parts.push(`Notes:\n\n${s.notes.map((n) => `- ${n}`).join('\n')}\n`);
  }
  return parts.join('\n');
}
