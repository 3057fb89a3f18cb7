/** The latency chart of the bench report: p99 against rate, drawn as SVG by hand. */
import type { BenchReport } from './report-shape.js';

const COLORS: Record<string, string> = {
  'embedded fan-out': '#1f77b4',
  'redis fan-out': '#d62728',
  'baseline fan-out': '#2ca02c',
  'baseline end-to-end': '#74c476',
  'embedded end-to-end http': '#6baed6',
  'embedded end-to-end ws': '#3182bd',
  'embedded end-to-end bulk': '#9ecae1',
  'redis end-to-end http': '#fc9272',
  'redis end-to-end ws': '#de2d26',
  'redis end-to-end bulk': '#fcbba1',
};

const escapeXml = (text: string) =>
  text.replaceAll('&', '&amp;').replaceAll('<', '&lt;').replaceAll('>', '&gt;');

/** p99 latency against rate, log-log, one line per system and phase, the held threshold dashed. */
export function renderLatencySvg(report: BenchReport): string {
  const series: { name: string; points: { rate: number; p99: number; held: boolean }[]; dashed: boolean }[] =
    [];
  for (const s of report.systems) {
    const fan = s.fanout.filter((step) => step.latency.count > 0);
    if (fan.length > 0) {
      series.push({
        name: `${s.system} fan-out`,
        points: fan.map((st) => ({ rate: st.rate, p99: st.latency.p99, held: st.held })),
        dashed: false,
      });
    }
    for (const run of s.e2e) {
      const e2e = run.steps.filter((step) => step.latency.count > 0);
      if (e2e.length === 0) continue;
      series.push({
        name:
          run.transport === 'baseline' ? 'baseline end-to-end' : `${s.system} end-to-end ${run.transport}`,
        points: e2e.map((st) => ({ rate: st.rate, p99: st.latency.p99, held: st.held })),
        dashed: true,
      });
    }
  }
  const width = 820;
  const height = 500;
  const margin = { left: 70, right: 200, top: 40, bottom: 55 };
  const plotW = width - margin.left - margin.right;
  const plotH = height - margin.top - margin.bottom;
  const all = series.flatMap((s) => s.points);
  const threshold = report.options.maxP99Ms;
  const minRate = Math.min(...all.map((p) => p.rate), 100);
  const maxRate = Math.max(...all.map((p) => p.rate), 1_000);
  const minLat = Math.max(0.1, Math.min(...all.map((p) => Math.max(p.p99, 0.1)), 1));
  const maxLat = Math.max(...all.map((p) => p.p99), threshold * 2);
  const x0 = Math.floor(Math.log10(minRate));
  const x1 = Math.ceil(Math.log10(maxRate));
  const y0 = Math.floor(Math.log10(minLat));
  const y1 = Math.ceil(Math.log10(maxLat));
  const sx = (rate: number) => margin.left + ((Math.log10(rate) - x0) / (x1 - x0)) * plotW;
  const sy = (ms: number) =>
    margin.top + plotH - ((Math.log10(Math.max(ms, 10 ** y0)) - y0) / (y1 - y0)) * plotH;
  const parts: string[] = [];
  parts.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="12">`,
    `<rect width="${width}" height="${height}" fill="white"/>`,
    `<text x="${margin.left}" y="22" font-size="15" font-weight="bold">p99 delivery latency vs rate (${report.options.connections} connections, ${report.options.durationS} s steps)</text>`,
  );
  for (let e = x0; e <= x1; e++) {
    for (const m of [1, 2, 5]) {
      const rate = m * 10 ** e;
      if (rate < 10 ** x0 || rate > 10 ** x1) continue;
      const x = sx(rate);
      parts.push(
        `<line x1="${x.toFixed(1)}" y1="${margin.top}" x2="${x.toFixed(1)}" y2="${margin.top + plotH}" stroke="#e5e5e5"/>`,
        `<text x="${x.toFixed(1)}" y="${margin.top + plotH + 16}" text-anchor="middle">${rate >= 1000 ? `${rate / 1000}k` : rate}</text>`,
      );
    }
  }
  for (let e = y0; e <= y1; e++) {
    for (const m of [1, 2, 5]) {
      const ms = m * 10 ** e;
      if (ms < 10 ** y0 || ms > 10 ** y1) continue;
      const y = sy(ms);
      parts.push(
        `<line x1="${margin.left}" y1="${y.toFixed(1)}" x2="${margin.left + plotW}" y2="${y.toFixed(1)}" stroke="#e5e5e5"/>`,
        `<text x="${margin.left - 6}" y="${(y + 4).toFixed(1)}" text-anchor="end">${ms}</text>`,
      );
    }
  }
  parts.push(
    `<rect x="${margin.left}" y="${margin.top}" width="${plotW}" height="${plotH}" fill="none" stroke="#333"/>`,
    `<text x="${margin.left + plotW / 2}" y="${height - 12}" text-anchor="middle">rate (events or tasks per second, log)</text>`,
    `<text transform="translate(16 ${margin.top + plotH / 2}) rotate(-90)" text-anchor="middle">p99 latency, ms (log)</text>`,
    `<line x1="${margin.left}" y1="${sy(threshold).toFixed(1)}" x2="${margin.left + plotW}" y2="${sy(threshold).toFixed(1)}" stroke="#999" stroke-dasharray="6 4"/>`,
    `<text x="${margin.left + 4}" y="${(sy(threshold) - 4).toFixed(1)}" fill="#666">${threshold} ms (held limit)</text>`,
  );
  series.forEach((s, i) => {
    const color = COLORS[s.name] ?? '#555';
    const points = s.points.map((p) => `${sx(p.rate).toFixed(1)},${sy(p.p99).toFixed(1)}`).join(' ');
    parts.push(
      `<polyline points="${points}" fill="none" stroke="${color}" stroke-width="2"${s.dashed ? ' stroke-dasharray="5 3"' : ''}/>`,
    );
    for (const p of s.points) {
      const x = sx(p.rate).toFixed(1);
      const y = sy(p.p99).toFixed(1);
      parts.push(
        p.held
          ? `<circle cx="${x}" cy="${y}" r="3.5" fill="${color}"><title>${escapeXml(s.name)} ${p.rate}/s: p99 ${p.p99} ms</title></circle>`
          : `<circle cx="${x}" cy="${y}" r="4" fill="white" stroke="${color}" stroke-width="2"><title>${escapeXml(s.name)} ${p.rate}/s: p99 ${p.p99} ms (not held)</title></circle>`,
      );
    }
    const ly = margin.top + 14 + i * 20;
    const lx = margin.left + plotW + 16;
    parts.push(
      `<line x1="${lx}" y1="${ly - 4}" x2="${lx + 24}" y2="${ly - 4}" stroke="${color}" stroke-width="2"${s.dashed ? ' stroke-dasharray="5 3"' : ''}/>`,
      `<text x="${lx + 30}" y="${ly}">${escapeXml(s.name)}</text>`,
    );
  });
  const ly = margin.top + 14 + series.length * 20 + 10;
  parts.push(
    `<circle cx="${margin.left + plotW + 28}" cy="${ly - 4}" r="4" fill="white" stroke="#555" stroke-width="2"/>`,
    `<text x="${margin.left + plotW + 46}" y="${ly}">not held (lost or p99 over)</text>`,
    '</svg>',
  );
  return `${parts.join('\n')}\n`;
}
