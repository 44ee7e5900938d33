// Small SVG line plots for benchmark results: log x-axis (rule counts) or
// linear x-axis (time series), linear or log y-axis, one line per series,
// optional labelled vertical marks. No dependencies, so the plots are
// produced wherever the benchmark runs.

export interface Series {
  name: string;
  points: { x: number; y: number; dashed?: boolean }[];
}

export interface PlotOptions {
  title: string;
  xLabel: string;
  yLabel: string;
  logY?: boolean;
  /** Linear x-axis from 0 (time series); the default is log x for rule counts. */
  linearX?: boolean;
  /** Vertical lines at these x values (e.g. events on a time axis). */
  marks?: { x: number; label: string }[];
  /** false: each series as one polyline without point markers (long time series; a smaller file). */
  dots?: boolean;
  width?: number;
  height?: number;
}

const COLORS = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b', '#e377c2', '#17becf', '#7f7f7f', '#bcbd22'];

function fmt(v: number): string {
  const a = Math.abs(v);
  if (a >= 1e9) return `${+(v / 1e9).toPrecision(3)}G`;
  if (a >= 1e6) return `${+(v / 1e6).toPrecision(3)}M`;
  if (a >= 1e3) return `${+(v / 1e3).toPrecision(3)}k`;
  return `${+v.toPrecision(3)}`;
}

function niceStep(raw: number): number {
  const p = 10 ** Math.floor(Math.log10(raw > 0 ? raw : 1));
  const f = raw / p;
  return (f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10) * p;
}

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;');

export function svgPlot(series: Series[], o: PlotOptions): string {
  const W = o.width ?? 760;
  const H = o.height ?? 440;
  const L = 80, R = 190, T = 40, B = 55;
  const okX = (x: number) => (o.linearX ? Number.isFinite(x) && x >= 0 : x > 0);
  const pts = series.flatMap((s) => s.points).filter((p) => okX(p.x) && Number.isFinite(p.y) && (!o.logY || p.y > 0));
  if (pts.length === 0) return `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}"><text x="20" y="40">${esc(o.title)}: no data</text></svg>`;
  const lx = (x: number) => (o.linearX ? x : Math.log10(x));
  const ly = (y: number) => (o.logY ? Math.log10(y) : y);
  // Linear x: ticks every `step` (1, 2 or 5 times a power of ten, about 10 ticks).
  const xMax = Math.max(...pts.map((p) => p.x), ...(o.marks ?? []).map((m) => m.x));
  const step = o.linearX ? niceStep(xMax / 10) : 1;
  let x0 = o.linearX ? 0 : Math.floor(Math.min(...pts.map((p) => lx(p.x))));
  let x1 = o.linearX ? Math.ceil(xMax / step) * step : Math.ceil(Math.max(...pts.map((p) => lx(p.x))));
  if (x1 === x0) x1 = x0 + step;
  let y0 = o.logY ? Math.floor(Math.min(...pts.map((p) => ly(p.y)))) : 0;
  let y1 = o.logY ? Math.ceil(Math.max(...pts.map((p) => ly(p.y)))) : Math.max(...pts.map((p) => p.y)) * 1.1;
  if (y1 <= y0) y1 = y0 + 1;
  if (!o.logY && y0 > 0) y0 = 0;
  x0 = Math.min(x0, 0);
  const px = (x: number) => L + ((lx(x) - x0) / (x1 - x0)) * (W - L - R);
  const py = (y: number) => H - B - ((ly(y) - y0) / (y1 - y0)) * (H - T - B);
  const out: string[] = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="sans-serif" font-size="12">`);
  out.push(`<rect width="${W}" height="${H}" fill="white"/>`);
  out.push(`<text x="${W / 2 - R / 2}" y="22" text-anchor="middle" font-size="15">${esc(o.title)}</text>`);
  for (let k = 0; x0 + k * step <= x1 + 1e-9; k++) {
    const e = x0 + k * step;
    const x = L + ((e - x0) / (x1 - x0)) * (W - L - R);
    out.push(`<line x1="${x}" y1="${T}" x2="${x}" y2="${H - B}" stroke="#ddd"/>`);
    out.push(`<text x="${x}" y="${H - B + 16}" text-anchor="middle">${fmt(o.linearX ? e : 10 ** e)}</text>`);
  }
  const ticks = o.logY ? Array.from({ length: y1 - y0 + 1 }, (_, i) => 10 ** (y0 + i)) : Array.from({ length: 6 }, (_, i) => (y1 * i) / 5);
  for (const t of ticks) {
    const y = py(t);
    out.push(`<line x1="${L}" y1="${y}" x2="${W - R}" y2="${y}" stroke="#ddd"/>`);
    out.push(`<text x="${L - 6}" y="${y + 4}" text-anchor="end">${fmt(t)}</text>`);
  }
  out.push(`<rect x="${L}" y="${T}" width="${W - L - R}" height="${H - T - B}" fill="none" stroke="#444"/>`);
  out.push(`<text x="${(L + W - R) / 2}" y="${H - 12}" text-anchor="middle">${esc(o.xLabel)}</text>`);
  out.push(`<text x="16" y="${(T + H - B) / 2}" text-anchor="middle" transform="rotate(-90 16 ${(T + H - B) / 2})">${esc(o.yLabel)}</text>`);
  series.forEach((s, i) => {
    const c = COLORS[i % COLORS.length];
    const ps = s.points.filter((p) => okX(p.x) && Number.isFinite(p.y) && (!o.logY || p.y > 0)).sort((a, b) => a.x - b.x);
    if (o.dots === false) {
      const xy = ps.map((p) => `${px(p.x).toFixed(1)},${py(p.y).toFixed(1)}`).join(' ');
      out.push(`<polyline points="${xy}" fill="none" stroke="${c}" stroke-width="1.5"/>`);
    }
    for (let k = 1; k < ps.length && o.dots !== false; k++) {
      const dash = ps[k].dashed || ps[k - 1].dashed ? ' stroke-dasharray="5,4"' : '';
      out.push(`<line x1="${px(ps[k - 1].x)}" y1="${py(ps[k - 1].y)}" x2="${px(ps[k].x)}" y2="${py(ps[k].y)}" stroke="${c}" stroke-width="2"${dash}/>`);
    }
    for (const p of o.dots === false ? [] : ps) out.push(`<circle cx="${px(p.x)}" cy="${py(p.y)}" r="3" fill="${p.dashed ? 'white' : c}" stroke="${c}"/>`);
    const ly2 = T + 10 + i * 18;
    out.push(`<line x1="${W - R + 12}" y1="${ly2}" x2="${W - R + 32}" y2="${ly2}" stroke="${c}" stroke-width="2"/>`);
    out.push(`<text x="${W - R + 38}" y="${ly2 + 4}">${esc(s.name)}</text>`);
  });
  (o.marks ?? []).forEach((m, i) => {
    if (!okX(m.x)) return;
    const x = px(m.x);
    out.push(`<line x1="${x}" y1="${T}" x2="${x}" y2="${H - B}" stroke="#000" stroke-width="1.5" stroke-dasharray="6,3"/>`);
    out.push(`<text x="${x + 4}" y="${T + 14 + i * 14}">${esc(m.label)}</text>`);
  });
  out.push('</svg>');
  return out.join('\n');
}
