// #/topics?after=&prefix= : one page of topics (GET /api/v1/topics), a name-prefix filter, and
// "Create topic" when actions are enabled.

import { act, cluster, get } from '../api.js';
import { ask, values } from '../dialog.js';
import { badge, bytes, field, h, hash, link, num, pager, provenance, rate, table } from '../dom.js';

const LIMIT = 50;
// The cursor that led to each page, learned while paging forward: "Previous" needs no state in
// the URL, and still works after the back button.
const prevOf = new Map();
const pageKey = (prefix, after) => `${prefix}\u0000${after}`;

export function heading() {
  return 'Topics';
}

export function status(t) {
  const out = [];
  if (t.offline > 0) out.push(badge(`${t.offline} offline`, 'bad'));
  if (t.under_replicated > 0) out.push(badge(`${t.under_replicated} under-replicated`, 'warn'));
  if (t.offline === null || t.under_replicated === null) out.push(badge('unknown', ''));
  if (!out.length) out.push(badge('healthy', 'ok'));
  return out;
}

/** key=value lines (blank lines and # comments skipped) -> {configs} or {error}. */
export function parseConfigs(text) {
  const configs = {};
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i += 1) {
    const line = lines[i].trim();
    if (!line || line.startsWith('#')) continue;
    const eq = line.indexOf('=');
    if (eq <= 0) return { error: `Line ${i + 1} is not key=value.` };
    configs[line.slice(0, eq).trim()] = line.slice(eq + 1).trim();
  }
  return { configs };
}

async function createTopic(ctx, brokers) {
  const name = h('input', {
    name: 'name',
    required: true,
    maxlength: 249,
    pattern: '[a-zA-Z0-9._\\-]+',
    autocomplete: 'off',
    spellcheck: 'false',
  });
  const parts = h('input', { name: 'partitions', type: 'number', min: 1, max: 100000, value: 1, required: true });
  const rf = h('input', { name: 'rf', type: 'number', min: 1, max: Math.max(1, brokers), value: Math.min(3, Math.max(1, brokers)), required: true });
  const configs = h('textarea', { name: 'configs', rows: 3, spellcheck: 'false', placeholder: 'retention.ms=86400000' });
  configs.addEventListener('input', () => configs.setCustomValidity(parseConfigs(configs.value).error || ''));
  const answer = await ask({
    title: 'Create a topic',
    fields: [
      field('Name', name, 'Letters, digits, “.”, “_” and “-”.'),
      h('div', { class: 'field-row' }, field('Partitions', parts), field('Replication factor', rf)),
      field('Configuration (optional)', configs, 'One key=value per line.'),
    ],
    buttons: [{ label: 'Create topic' }],
  });
  if (!answer) return;
  const v = values(answer.form);
  const r = await act(
    'POST',
    ['topics'],
    {
      name: v.name,
      partitions: Number(v.partitions),
      replication_factor: Number(v.rf),
      configs: parseConfigs(v.configs).configs || {},
    },
    `Created topic “${v.name}” with ${v.partitions} partition${v.partitions === '1' ? '' : 's'}.`,
  );
  ctx.reload(r.ok ? null : 'create-topic');
}

export async function render(ctx) {
  const after = ctx.query.get('after') || '';
  const prefix = ctx.query.get('prefix') || '';
  const [page, c] = await Promise.all([get(['topics'], { after, prefix, limit: LIMIT }), cluster()]);
  if (page.next) prevOf.set(pageKey(prefix, page.next), after);

  const input = h('input', { type: 'search', name: 'prefix', value: prefix, autocomplete: 'off', spellcheck: 'false' });
  const filter = h(
    'form',
    {
      class: 'toolbar',
      role: 'search',
      'aria-label': 'Filter topics',
      onsubmit: (ev) => {
        ev.preventDefault();
        ctx.go(hash(['topics'], { prefix: input.value.trim() }));
      },
    },
    field('Name starts with', input),
    h('button', { type: 'submit', class: 'secondary' }, 'Filter'),
    prefix ? link(hash(['topics']), 'Clear filter') : null,
    c.actions_enabled
      ? h(
          'button',
          { type: 'button', class: 'primary push', 'data-key': 'create-topic', onclick: () => createTopic(ctx, (c.brokers || []).length) },
          'Create topic',
        )
      : null,
  );

  const items = page.items || [];
  const rows = items.map((t) => [
    [link(hash(['topics', t.name]), t.name), t.internal ? [' ', badge('internal', '')] : null],
    num(t.partitions),
    num(t.replication_factor),
    status(t),
    bytes(t.size_bytes),
    rate(t.bytes_in_per_s, 'B'),
    rate(t.bytes_out_per_s, 'B'),
    rate(t.messages_in_per_s),
  ]);
  const what = prefix ? `Topics starting with “${prefix}”` : 'Topics';
  const tbl = table({
    caption: `${what}: ${items.length} shown of ${page.total}`,
    columns: [
      { label: 'Name' },
      { label: 'Partitions', num: true },
      { label: 'Replicas', num: true },
      { label: 'Status' },
      { label: 'Size', num: true },
      { label: 'In', num: true },
      { label: 'Out', num: true },
      { label: 'Messages in', num: true },
    ],
    rows,
    rowClass: (i) => (items[i].offline > 0 ? 'row-bad' : items[i].under_replicated > 0 ? 'row-warn' : null),
    empty: prefix ? `No topic starts with “${prefix}”.` : 'There are no topics yet.',
  });

  let prev = null;
  let first = null;
  if (after) {
    const k = pageKey(prefix, after);
    if (prevOf.has(k)) prev = hash(['topics'], { prefix, after: prevOf.get(k) });
    else first = link(hash(['topics'], { prefix }), 'First page');
  }
  const next = page.next ? hash(['topics'], { prefix, after: page.next }) : null;
  return [...provenance(page), filter, tbl, pager('Topic pages', prev, next, first ? [first] : null)];
}
