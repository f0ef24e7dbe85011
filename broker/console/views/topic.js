// #/topics/<name>?from= : one topic (GET /api/v1/topics/<name>), its configuration, and a page
// of its partitions (GET /api/v1/topics/<name>/partitions). With actions enabled: add
// partitions, set or remove a configuration override, delete the topic.

import { act, cluster, get } from '../api.js';
import { ask, values } from '../dialog.js';
import { badge, bytes, facts, field, h, hash, link, list, num, pager, provenance, table } from '../dom.js';

const LIMIT = 100;

const SOURCES = {
  DYNAMIC_TOPIC_CONFIG: 'topic override',
  DYNAMIC_BROKER_CONFIG: 'broker (dynamic)',
  DYNAMIC_DEFAULT_BROKER_CONFIG: 'cluster default',
  STATIC_BROKER_CONFIG: 'broker (static)',
  DEFAULT_CONFIG: 'default',
};

export function heading(p) {
  return `Topic ${p.name}`;
}

export function crumbs(p) {
  return [
    ['Topics', hash(['topics'])],
    [p.name, hash(['topics', p.name])],
  ];
}

function partitionStatus(p) {
  const out = [];
  if (p.offline) out.push(badge('offline', 'bad'));
  if (p.under_replicated) out.push(badge('under-replicated', 'warn'));
  if ((p.adding && p.adding.length) || (p.removing && p.removing.length)) out.push(badge('reassigning', 'info'));
  if (!out.length) out.push(badge('in sync', 'ok'));
  return out;
}

function replicas(p) {
  const extra = [];
  if (p.adding && p.adding.length) extra.push(h('span', { class: 'muted' }, ` (adding ${list(p.adding)})`));
  if (p.removing && p.removing.length) extra.push(h('span', { class: 'muted' }, ` (removing ${list(p.removing)})`));
  return [list(p.replicas), ...extra];
}

async function addPartitions(ctx, t) {
  const count = h('input', { name: 'count', type: 'number', min: t.partitions + 1, value: t.partitions + 1, required: true });
  const answer = await ask({
    title: `Add partitions to ${t.name}`,
    text: `It has ${t.partitions}. Partitions cannot be removed again, and keys may map to other partitions afterwards.`,
    fields: [field('New partition count', count)],
    buttons: [{ label: 'Add partitions' }],
  });
  if (!answer) return;
  const n = Number(values(answer.form).count);
  const r = await act('POST', ['topics', t.name, 'partitions'], { count: n }, `Topic “${t.name}” now has ${n} partitions.`);
  ctx.reload(r.ok ? null : 'add-partitions');
}

async function editConfig(ctx, t, cfg) {
  const value = h('input', { name: 'value', value: cfg.sensitive ? '' : (cfg.value ?? ''), autocomplete: 'off', spellcheck: 'false' });
  const override = cfg.source === 'DYNAMIC_TOPIC_CONFIG';
  const answer = await ask({
    title: `Set ${cfg.name} on ${t.name}`,
    text: override
      ? 'The topic overrides this setting. Save a new value, or remove the override to fall back to the broker’s value.'
      : `Now ${SOURCES[cfg.source] || cfg.source}. Saving sets an override on this topic.`,
    fields: [field('Value', value)],
    buttons: [...(override ? [{ label: 'Remove override', value: 'delete', danger: true }] : []), { label: 'Save', value: 'set' }],
  });
  if (!answer) return;
  const body = answer.action === 'delete' ? { set: {}, delete: [cfg.name] } : { set: { [cfg.name]: values(answer.form).value }, delete: [] };
  const done =
    answer.action === 'delete' ? `Removed the override of ${cfg.name} on “${t.name}”.` : `Set ${cfg.name}=${body.set[cfg.name]} on “${t.name}”.`;
  await act('POST', ['topics', t.name, 'configs'], body, done);
  ctx.reload(`config:${cfg.name}`);
}

async function deleteTopic(ctx, t) {
  const confirm = h('input', { name: 'confirm', autocomplete: 'off', spellcheck: 'false', required: true });
  const check = () => confirm.setCustomValidity(confirm.value === t.name ? '' : 'Type the topic name exactly.');
  confirm.addEventListener('input', check);
  check();
  const answer = await ask({
    title: `Delete topic ${t.name}?`,
    text: `All ${t.partitions} partitions and their records are deleted on every broker. This cannot be undone.`,
    fields: [field('Type the topic name to confirm', confirm)],
    buttons: [{ label: 'Delete topic', danger: true }],
  });
  if (!answer) return;
  const r = await act('DELETE', ['topics', t.name], undefined, `Deleted topic “${t.name}”.`);
  if (r.ok) ctx.go(hash(['topics']));
  else ctx.reload('delete-topic');
}

function configTable(ctx, t, actions) {
  const configs = (t.configs || []).slice().sort((a, b) => a.name.localeCompare(b.name));
  const columns = [{ label: 'Name' }, { label: 'Value' }, { label: 'Source' }];
  if (actions) columns.push({ label: 'Action' });
  const rows = configs.map((cfg) => {
    let value;
    if (cfg.sensitive) value = h('span', { class: 'muted' }, '(hidden)');
    else if (cfg.value === null || cfg.value === undefined) value = h('span', { class: 'muted' }, '(not set)');
    else if (cfg.value === '') value = h('span', { class: 'muted' }, '(empty)');
    else value = h('code', null, cfg.value);
    const source = cfg.source === 'DYNAMIC_TOPIC_CONFIG' ? badge(SOURCES[cfg.source], 'info') : SOURCES[cfg.source] || cfg.source;
    const row = [h('code', null, cfg.name), value, [source, cfg.read_only ? [' ', badge('read-only', '')] : null]];
    if (actions) {
      row.push(
        cfg.read_only
          ? ''
          : h(
              'button',
              { type: 'button', class: 'link', 'data-key': `config:${cfg.name}`, onclick: () => editConfig(ctx, t, cfg) },
              'Edit',
              h('span', { class: 'vh' }, ` ${cfg.name}`),
            ),
      );
    }
    return row;
  });
  const overrides = configs.filter((c) => c.source === 'DYNAMIC_TOPIC_CONFIG').length;
  return table({
    caption: `Configuration: ${configs.length} settings, ${overrides} overridden on this topic`,
    columns,
    rows,
    empty: 'No configuration was returned.',
  });
}

export async function render(ctx) {
  const name = ctx.params.name;
  const from = Math.max(0, Number.parseInt(ctx.query.get('from') || '0', 10) || 0);
  const [t, parts, c] = await Promise.all([
    get(['topics', name]),
    get(['topics', name, 'partitions'], { from, limit: LIMIT }),
    cluster(),
  ]);
  const actions = c.actions_enabled;

  const tools = h(
    'div',
    { class: 'toolbar' },
    link(hash(['topics', name, 'messages']), 'Browse messages'),
    actions
      ? h(
          'div',
          { class: 'push actions' },
          h('button', { type: 'button', class: 'secondary', 'data-key': 'add-partitions', onclick: () => addPartitions(ctx, t) }, 'Add partitions'),
          h('button', { type: 'button', class: 'danger', 'data-key': 'delete-topic', onclick: () => deleteTopic(ctx, t) }, 'Delete topic'),
        )
      : null,
  );

  const summary = facts([
    ['Topic ID', h('code', null, t.id)],
    ['Partitions', num(t.partitions)],
    ['Replication factor', num(t.replication_factor)],
    t.internal ? ['Internal', badge('internal', '')] : null,
  ]);

  const items = parts.items || [];
  const rows = items.map((p) => [
    link(hash(['topics', name, 'messages'], { partition: p.partition }), String(p.partition)),
    p.leader === null || p.leader < 0 ? badge('none', 'bad') : String(p.leader),
    num(p.leader_epoch),
    replicas(p),
    list(p.isr),
    partitionStatus(p),
    num(p.log_start),
    num(p.hw),
    num(p.leo),
    bytes(p.size_bytes),
  ]);
  const last = items.length ? items[items.length - 1].partition : from;
  const partTable = table({
    caption: items.length
      ? `Partitions ${items[0].partition}–${last} of ${parts.total} (the number opens its messages)`
      : `Partitions: none from ${from}`,
    columns: [
      { label: 'Partition', num: true },
      { label: 'Leader', num: true },
      { label: 'Leader epoch', num: true },
      { label: 'Replicas' },
      { label: 'In-sync replicas' },
      { label: 'Status' },
      { label: 'Log start', num: true },
      { label: 'High watermark', num: true },
      { label: 'Log end', num: true },
      { label: 'Size', num: true },
    ],
    rows,
    rowClass: (i) => (items[i].offline ? 'row-bad' : items[i].under_replicated ? 'row-warn' : null),
    empty: 'No partitions on this page.',
  });
  const prev = from > 0 ? hash(['topics', name], { from: Math.max(0, from - LIMIT) || null }) : null;
  const next = parts.next !== null && parts.next !== undefined ? hash(['topics', name], { from: parts.next }) : null;

  return [
    ...provenance(parts),
    tools,
    summary,
    h('section', { 'aria-labelledby': 'parts-h' }, h('h2', { id: 'parts-h' }, 'Partitions'), partTable, pager('Partition pages', prev, next)),
    h('section', { 'aria-labelledby': 'cfg-h' }, h('h2', { id: 'cfg-h' }, 'Configuration'), configTable(ctx, t, actions)),
  ];
}
