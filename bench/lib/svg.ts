import type { ChartMetric } from './goals.js';

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

const MIN = 1 / 8;
const MAX = 32;

/**
 * A horizontal bar chart of weft / nginx and weft / HAProxy ratios on a log scale
 * (1/8x … 32x): each bar grows from parity (1x, the dashed line) to the ratio, a red tick
 * marks the issue's goal where there is one. Plain SVG, no library.
 */
export function barChart(metrics: readonly ChartMetric[], subtitle: string): string {
  const labelW = 250;
  const plotW = 500;
  const rightW = 40;
  const top = 70;
  const rowH = 36;
  const barH = 12;
  const width = labelW + plotW + rightW;
  const height = top + metrics.length * rowH + 34;
  const span = Math.log2(MAX) - Math.log2(MIN);
  const x = (v: number) => labelW + ((Math.log2(Math.min(MAX, Math.max(MIN, v))) - Math.log2(MIN)) / span) * plotW;
  const one = x(1);
  const out: string[] = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="12">`);
  out.push(`<rect width="100%" height="100%" fill="#fff"/>`);
  out.push(`<text x="10" y="20" font-size="15" font-weight="bold">weft relative to nginx and HAProxy (same run, medians, log scale)</text>`);
  out.push(`<text x="10" y="38" fill="#555">${esc(subtitle)}</text>`);
  out.push(`<rect x="10" y="48" width="10" height="10" fill="#2b6cb0"/><text x="24" y="57">weft / nginx</text>`);
  out.push(`<rect x="120" y="48" width="10" height="10" fill="#dd8a2b"/><text x="134" y="57">weft / HAProxy</text>`);
  out.push(`<line x1="250" y1="53" x2="264" y2="53" stroke="#c00" stroke-width="3"/><text x="268" y="57">goal for weft / nginx (issue 3)</text>`);
  for (let e = Math.log2(MIN); e <= Math.log2(MAX); e++) {
    const v = 2 ** e;
    const gx = x(v);
    out.push(`<line x1="${gx.toFixed(1)}" y1="${top - 6}" x2="${gx.toFixed(1)}" y2="${height - 28}" stroke="${v === 1 ? '#333' : '#e4e4e4'}"${v === 1 ? ' stroke-dasharray="4 3"' : ''}/>`);
    out.push(`<text x="${gx.toFixed(1)}" y="${height - 14}" text-anchor="middle" fill="#555">${v >= 1 ? v : `1/${1 / v}`}x</text>`);
  }
  metrics.forEach((m, i) => {
    const y = top + i * rowH;
    out.push(`<text x="${labelW - 8}" y="${y + 12}" text-anchor="end">${esc(m.label)}</text>`);
    out.push(`<text x="${labelW - 8}" y="${y + 26}" text-anchor="end" fill="#777" font-size="10">${m.better} is better for weft</text>`);
    const bar = (v: number | null, dy: number, color: string) => {
      if (v === null || !Number.isFinite(v) || v <= 0) {
        out.push(`<text x="${(one + 4).toFixed(1)}" y="${y + dy + 10}" fill="#999" font-size="10">n/a</text>`);
        return;
      }
      const vx = x(v);
      const left = Math.min(one, vx);
      const w = Math.max(1.5, Math.abs(vx - one));
      out.push(`<rect x="${left.toFixed(1)}" y="${y + dy}" width="${w.toFixed(1)}" height="${barH}" fill="${color}"/>`);
      const clip = v > MAX ? ' ›' : v < MIN ? ' ‹' : '';
      const label = `${v.toFixed(2)}x${clip}`;
      out.push(
        vx >= one || left - labelW < 44
          ? `<text x="${(vx >= one ? one + w + 4 : one + 4).toFixed(1)}" y="${y + dy + 10}" font-size="10">${label}</text>`
          : `<text x="${(left - 4).toFixed(1)}" y="${y + dy + 10}" font-size="10" text-anchor="end">${label}</text>`,
      );
    };
    bar(m.nginx, 2, '#2b6cb0');
    bar(m.haproxy, 2 + barH + 2, '#dd8a2b');
    if (m.goal !== null) {
      const gx = x(m.goal);
      out.push(`<line x1="${gx.toFixed(1)}" y1="${y - 1}" x2="${gx.toFixed(1)}" y2="${y + barH + 5}" stroke="#c00" stroke-width="3"/>`);
    }
  });
  out.push('</svg>');
  return `${out.join('\n')}\n`;
}
