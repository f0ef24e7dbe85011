// An inline SVG sparkline (no script or style inside it, so the CSP holds), named for screen
// readers, with the samples themselves in a <details> table.

import { h, num, numText, table, time } from './dom.js';

const SVG = 'http://www.w3.org/2000/svg';

function svg(tag, attrs) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  return el;
}

/** sparkline([[ts_ms, value], ...], label): an <svg role="img"> of the values, min..max. */
export function sparkline(samples, label, { width = 120, height = 24 } = {}) {
  const vs = samples.map((s) => s[1]);
  const min = Math.min(...vs);
  const max = Math.max(...vs);
  const span = max - min || 1;
  const x = (i) => 1 + (i * (width - 2)) / Math.max(1, vs.length - 1);
  const y = (v) => height - 2 - ((v - min) * (height - 4)) / span;
  const root = svg('svg', { viewBox: `0 0 ${width} ${height}`, width, height, role: 'img', 'aria-label': label, class: 'spark' });
  const title = svg('title', {});
  title.textContent = label;
  const points = vs.map((v, i) => `${x(i).toFixed(1)},${y(v).toFixed(1)}`).join(' ');
  root.append(
    title,
    svg('polyline', { points, class: 'spark-line' }),
    svg('circle', { cx: x(vs.length - 1).toFixed(1), cy: y(vs[vs.length - 1]).toFixed(1), r: 2, class: 'spark-dot' }),
  );
  return root;
}

/** The lag history of a group: sparkline plus its samples, or a note while there are too few. */
export function lagHistory(history, what) {
  const samples = (history && history.samples) || [];
  if (samples.length < 2) {
    return h('span', { class: 'muted' }, samples.length ? 'one sample so far' : 'no samples yet');
  }
  const minutes = Math.max(1, Math.round((samples[samples.length - 1][0] - samples[0][0]) / 60000));
  const label = `${what} over the last ${minutes} min: ${numText(samples[0][1])} → ${numText(samples[samples.length - 1][1])}`;
  return h(
    'div',
    { class: 'history' },
    sparkline(samples, label),
    h(
      'details',
      { 'data-key': `details:${what}` },
      h('summary', { 'data-key': `summary:${what}` }, `${samples.length} samples`),
      table({
        caption: label,
        columns: [{ label: 'Time' }, { label: what, num: true }],
        rows: samples.slice().reverse().map(([ts, v]) => [time(ts), num(v)]),
      }),
    ),
  );
}
