// #/topics/<name>/messages?partition=&offset=|timestamp=&limit=&format= : records of one
// partition (GET /api/v1/topics/<name>/messages), read from its leader. With neither offset nor
// timestamp it shows the newest page. Keys, values and headers are client data: text only.

import { get } from '../api.js';
import { badge, bytesText, field, h, hash, link, localInputValue, numText, pager, table, time } from '../dom.js';

const FORMATS = [
  ['auto', 'Automatic (JSON, text or hex)'],
  ['text', 'Text (UTF-8)'],
  ['json', 'JSON, indented'],
  ['hex', 'Hex'],
];
const DEFAULT_LIMIT = 20;

export function heading(p) {
  return `Messages in ${p.name}`;
}

export function crumbs(p) {
  return [
    ['Topics', hash(['topics'])],
    [p.name, hash(['topics', p.name])],
    ['Messages', hash(['topics', p.name, 'messages'])],
  ];
}

function intParam(q, key) {
  const v = q.get(key);
  if (v === null || v === '' || !/^-?\d+$/.test(v)) return null;
  return Number(v);
}

/** A key, value or header value: {encoding, data, size, truncated} or null. */
function payload(p, format, what) {
  if (p === null || p === undefined) return h('span', { class: 'muted' }, 'null');
  // A long value scrolls in a box of its own; focusable, so the keyboard can scroll it too.
  const long = p.data.length > 600;
  const body = h(
    'pre',
    { class: `data enc-${p.encoding}${long ? ' long' : ''}`, tabindex: long ? 0 : null, role: long ? 'region' : null, 'aria-label': long ? what : null },
    p.data,
  );
  const notes = [];
  // A badge where the encoding is not the obvious one: JSON or hex chosen by "auto", or hex
  // where text or JSON was asked for (bytes that are not UTF-8). Text needs none.
  if (p.encoding !== 'text' && p.encoding !== format) notes.push(badge(p.encoding, 'info'));
  if (p.truncated) notes.push(badge(`cut at ${bytesText(p.data.length)} of ${bytesText(p.size)}`, 'warn'));
  return notes.length ? [h('div', { class: 'payload-notes' }, notes), body] : body;
}

function headers(list, format) {
  if (!list || !list.length) return h('span', { class: 'muted' }, 'none');
  return h(
    'dl',
    { class: 'headers' },
    list.map((x) => h('div', null, h('dt', null, x.key), h('dd', null, payload(x.value, format, `header ${x.key}`)))),
  );
}

function form(ctx, s) {
  const name = ctx.params.name;
  const partition = h('input', { type: 'number', name: 'partition', min: 0, max: s.partitions - 1, value: s.partition, required: true });
  const mode = h(
    'select',
    { name: 'mode' },
    [
      ['newest', 'the newest records'],
      ['offset', 'an offset'],
      ['timestamp', 'a time'],
    ].map(([v, l]) => h('option', { value: v, selected: v === s.mode }, l)),
  );
  const offset = h('input', { type: 'number', name: 'offset', min: 0, value: s.offset ?? '' });
  const when = h('input', { type: 'datetime-local', name: 'when', step: 1, value: s.timestamp !== null ? localInputValue(s.timestamp) : '' });
  const offsetField = field('Offset', offset);
  const whenField = field('Time (your local time)', when);
  const limit = h('input', { type: 'number', name: 'limit', min: 1, max: 100, value: s.limit, required: true });
  const format = h('select', { name: 'format' }, FORMATS.map(([v, l]) => h('option', { value: v, selected: v === s.format }, l)));
  const sync = () => {
    offsetField.hidden = mode.value !== 'offset';
    offset.required = mode.value === 'offset';
    whenField.hidden = mode.value !== 'timestamp';
    when.required = mode.value === 'timestamp';
  };
  mode.addEventListener('change', sync);
  sync();
  return h(
    'form',
    {
      class: 'toolbar browse',
      'aria-label': 'Choose records',
      onsubmit: (ev) => {
        ev.preventDefault();
        const q = { partition: partition.value, limit: limit.value, format: format.value };
        if (mode.value === 'offset') q.offset = offset.value;
        if (mode.value === 'timestamp') q.timestamp = new Date(when.value).getTime();
        ctx.go(hash(['topics', name, 'messages'], q));
      },
    },
    field('Partition', partition, `0 to ${s.partitions - 1}`),
    field('Start at', mode),
    offsetField,
    whenField,
    field('Records', limit),
    field('Show as', format),
    h('button', { type: 'submit', class: 'primary' }, 'Show'),
  );
}

export async function render(ctx) {
  const name = ctx.params.name;
  const q = ctx.query;
  const limit = Math.min(100, Math.max(1, intParam(q, 'limit') ?? DEFAULT_LIMIT));
  const format = FORMATS.some(([v]) => v === q.get('format')) ? q.get('format') : 'auto';
  const partition = Math.max(0, intParam(q, 'partition') ?? 0);
  let offset = intParam(q, 'offset');
  const timestamp = offset === null ? intParam(q, 'timestamp') : null;
  const mode = offset !== null ? 'offset' : timestamp !== null ? 'timestamp' : 'newest';

  const t = await get(['topics', name]);
  const state = { partitions: t.partitions, partition, offset, timestamp, limit, format, mode };
  const out = [form(ctx, state)];
  if (partition >= t.partitions) {
    out.push(h('p', { class: 'notice warn' }, `The topic has partitions 0 to ${t.partitions - 1}.`));
    return out;
  }
  // Without an offset or a time the leader answers the newest records (ending at its HW).
  const query = { partition, limit, format };
  if (offset !== null) query.offset = offset;
  else if (timestamp !== null) query.timestamp = timestamp;
  const m = await get(['topics', name, 'messages'], query);
  if (mode === 'newest') {
    offset = m.from;
    state.offset = offset;
  }
  const items = m.items || [];

  const where = `partition ${partition} (log start ${numText(m.log_start)}, high watermark ${numText(m.hw)})`;
  const caption = items.length
    ? `Offsets ${items[0].offset}–${items[items.length - 1].offset} of ${where}`
    : `No records from ${mode === 'timestamp' ? 'that time' : `offset ${offset}`} in ${where}`;
  const tbl = table({
    caption,
    columns: [
      { label: 'Offset', num: true },
      { label: 'Timestamp', cls: 'col-time' },
      { label: 'Key', cls: 'col-key' },
      { label: 'Value', cls: 'col-value' },
      { label: 'Headers', cls: 'col-headers' },
    ],
    rows: items.map((r) => [
      String(r.offset),
      time(r.timestamp),
      payload(r.key, format, `key at offset ${r.offset}`),
      payload(r.value, format, `value at offset ${r.offset}`),
      headers(r.headers, format),
    ]),
    empty: m.hw !== null && m.hw <= (m.log_start ?? 0) ? 'This partition holds no records.' : 'Nothing at this position yet.',
  });

  const nav = (extra) => hash(['topics', name, 'messages'], { partition, limit, format, ...extra });
  const links = [];
  const first = items.length ? items[0].offset : (offset ?? m.next_offset);
  const logStart = m.log_start ?? 0;
  if (first !== null && first > logStart) links.push(link(nav({ offset: Math.max(logStart, first - limit) }), '← Older'));
  if (m.next_offset !== null && m.hw !== null && m.next_offset < m.hw) links.push(link(nav({ offset: m.next_offset }), 'Newer →'));
  if (mode !== 'newest') links.push(link(nav({}), 'Newest'));
  links.push(link(nav({ offset: logStart }), 'Oldest'));
  out.push(tbl, pager('Record pages', null, null, links));
  return out;
}
