// The governor's office dashboard: every municipality in scope side by side for
// a chosen period (received, unread, overdue, median hours to reading and to
// resolution), sortable, with Chart.js charts, and a click through to that
// municipality's overdue appeals. The numbers are the API's `dashboard`, as is.

import { ApiError, request } from './api.js';
import { currentRoute, explain, formatNumber, h, href, inputField, message, replace, selectField } from './ui.js';

const PERIODS = [['30', 'Последние 30 дней'], ['7', 'Последние 7 дней'], ['90', 'Последние 90 дней'],
  ['365', 'Последний год'], ['all', 'За всё время'], ['custom', 'Свои даты']];

/** The table's columns: the field, its heading, and whether it is a number to sort by. */
const COLUMNS = [
  ['name', 'Муниципалитет'],
  ['total', 'Поступило'],
  ['received', 'Не прочитано'],
  ['overdue', 'Просрочено'],
  ['seenOverdue', 'Не прочитано в срок'],
  ['resolved', 'Решено'],
  ['medianHoursToSeen', 'Медиана до прочтения, ч'],
  ['medianHoursToResolve', 'Медиана до решения, ч'],
];

const COLOURS = { unread: '#c0392b', seen: '#e0a100', resolved: '#2e7d32', toSeen: '#1f4e8c', toResolve: '#7b4fa0' };

/** Hours to a tenth, as the table shows them; null stays null (nothing to measure). */
function tenths(hours) {
  return hours === null ? null : Math.round(hours * 10) / 10;
}

/** The period's bounds as RFC 3339 instants (`to` exclusive), from the address. */
function period(params) {
  const chosen = params.get('period') ?? (params.get('from') || params.get('to') ? 'custom' : '30');
  if (chosen === 'all') return { chosen, from: null, to: null };
  if (chosen === 'custom') {
    const day = (value, plus) => {
      if (!value) return null;
      const at = new Date(`${value}T00:00:00`);
      at.setDate(at.getDate() + plus);
      return at.toISOString();
    };
    return { chosen, from: day(params.get('from'), 0), to: day(params.get('to'), 1) };
  }
  const from = new Date();
  from.setHours(0, 0, 0, 0);
  from.setDate(from.getDate() - Number(chosen) + 1);
  return { chosen, from: from.toISOString(), to: null };
}

export function show(main, route) {
  const params = route.params;
  const { chosen } = period(params);
  const form = h('form', { class: 'filters', id: 'dashboard-period', 'aria-label': 'Период' },
    h('div', { class: 'filter-row' },
      selectField('period', 'Период (по дате поступления)', PERIODS, chosen),
      h('div', { class: 'custom-dates', hidden: chosen !== 'custom' },
        inputField('from', 'С', { type: 'date', value: params.get('from') ?? '' }),
        inputField('to', 'По', { type: 'date', value: params.get('to') ?? '' }),
        h('button', { type: 'submit' }, 'Показать'))));
  const results = h('div', { id: 'dashboard-results', 'aria-busy': 'true' }, h('p', {}, 'Загрузка…'));
  replace(main, h('div', { class: 'page-head' }, h('h1', {}, 'Сводка по муниципалитетам')), form, results);
  let charts = [];
  let dashboard = null;

  const setAddress = (changes) => {
    const next = { ...Object.fromEntries(currentRoute().params), ...changes };
    history.replaceState(null, '', href(['dashboard'], next));
  };
  const draw = () => {
    for (const chart of charts) chart.destroy();
    charts = render(results, dashboard, currentRoute().params, (key) => {
      const current = currentRoute().params;
      const descending = current.get('sort') === key ? current.get('dir') !== 'desc' : key !== 'name';
      setAddress({ sort: key, dir: descending ? 'desc' : 'asc' });
      draw();
    });
  };
  const load = async () => {
    results.setAttribute('aria-busy', 'true');
    const { from, to } = period(currentRoute().params);
    try {
      dashboard = (await request('Dashboard', { from, to })).dashboard;
      draw();
    } catch (error) {
      replace(results, message('error', error instanceof ApiError ? explain(error) : String(error)));
    }
    results.setAttribute('aria-busy', 'false');
  };
  form.elements.period.addEventListener('change', (event) => {
    const custom = event.target.value === 'custom';
    form.querySelector('.custom-dates').hidden = !custom;
    if (!custom) {
      setAddress({ period: event.target.value, from: '', to: '' });
      load();
    }
  });
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const [from, to] = [form.elements.from.value, form.elements.to.value];
    if (from && to && from > to) {
      replace(results, message('error', 'Дата «С» позже даты «По»: поменяйте их местами.'));
      return;
    }
    setAddress({ period: 'custom', from, to });
    load();
  });
  load();
  return () => {
    for (const chart of charts) chart.destroy();
  };
}

function sorted(rows, params) {
  const key = params.get('sort') ?? 'overdue';
  const direction = params.get('dir') === 'asc' ? 1 : -1;
  const value = (row) => (key === 'name' ? row.municipality.name : row[key]);
  return [...rows].sort((a, b) => {
    const [x, y] = [value(a), value(b)];
    if (x === y) return a.municipality.name.localeCompare(b.municipality.name, 'ru');
    if (x === null) return 1;
    if (y === null) return -1;
    return (typeof x === 'string' ? x.localeCompare(y, 'ru') : x - y) * direction;
  });
}

/** Renders the totals, the table and the charts; returns the charts. */
function render(results, dashboard, params, sortBy) {
  const { from, to } = period(params);
  const rows = sorted(dashboard.municipalities, params);
  /** The inbox of one municipality's appeals of the period, narrowed by `filter`. */
  const appealsOf = (code, filter = {}) => href(['inbox'], { m: code, from, to, ...filter });
  /** The cells that open the appeals they count, and how. */
  const opens = { overdue: { overdue: '1' }, received: { status: 'RECEIVED' }, resolved: { status: 'RESOLVED' } };
  const cell = (row, key, label) => {
    const value = formatNumber(row[key]);
    if (!opens[key] || !row[key]) return value;
    return h('a', { href: appealsOf(row.municipality.code, opens[key]), 'aria-label': `${value}: ${label.toLowerCase()}, ${row.municipality.name}` },
      value);
  };
  const sortKey = params.get('sort') ?? 'overdue';
  const ascending = params.get('dir') === 'asc';
  const totals = h('ul', { class: 'totals', id: 'dashboard-totals' },
    [['total', 'Поступило'], ['received', 'Не прочитано'], ['overdue', 'Просрочено'], ['seenOverdue', 'Не прочитано в срок'],
      ['resolved', 'Решено']].map(([key, label]) => h('li', { 'data-key': key },
      h('span', { class: 'total-value' }, formatNumber(dashboard[key])), h('span', { class: 'total-label' }, label))));
  // On a phone the table is one card per municipality, with no headings to press.
  const order = h('div', { class: 'phone-only' }, selectField('dashboard-sort', 'Упорядочить по',
    COLUMNS.map(([key, label]) => [key, label]), sortKey, { onchange: (event) => sortBy(event.target.value) }));
  const table = h('div', { class: 'table-scroll', tabindex: '0', role: 'region', 'aria-label': 'Таблица по муниципалитетам' },
    h('table', { id: 'dashboard-table' },
      h('caption', {}, 'Заголовок столбца упорядочивает по нему; название муниципалитета и числа непрочитанных, просроченных и решённых открывают эти обращения.'),
      h('thead', {}, h('tr', {}, COLUMNS.map(([key, label]) => h('th', {
        scope: 'col', 'aria-sort': key === sortKey ? (ascending ? 'ascending' : 'descending') : undefined,
      }, h('button', { type: 'button', class: 'sort', 'data-sort': key, onclick: () => sortBy(key) }, label,
        key === sortKey ? (ascending ? ' ▲' : ' ▼') : ''))))),
      h('tbody', {}, rows.map((row) => h('tr', { 'data-code': row.municipality.code },
        h('th', { scope: 'row' }, row.total
          ? h('a', { href: appealsOf(row.municipality.code) }, row.municipality.name) : row.municipality.name),
        COLUMNS.slice(1).map(([key, label]) => h('td', { 'data-key': key, 'data-label': label }, cell(row, key, label))))))));
  const statusCanvas = h('canvas', { id: 'chart-statuses', role: 'img',
    'aria-label': 'Обращения по муниципалитетам: не прочитано, прочитано, решено. Те же числа — в таблице выше.' });
  const medianCanvas = h('canvas', { id: 'chart-medians', role: 'img',
    'aria-label': 'Медиана часов до прочтения и до решения по муниципалитетам. Те же числа — в таблице выше.' });
  const height = `${80 + rows.length * 34}px`;
  const statusBox = h('div', { class: 'chart-box' }, statusCanvas);
  const medianBox = h('div', { class: 'chart-box' }, medianCanvas);
  statusBox.style.height = height;
  medianBox.style.height = height;
  replace(results, totals, order, table,
    h('section', { class: 'card', 'aria-labelledby': 'chart-statuses-title' },
      h('h2', { id: 'chart-statuses-title' }, 'Состояние обращений'), statusBox,
      h('p', { class: 'hint' }, 'Полоса открывает эти обращения муниципалитета; то же — ссылками в таблице.')),
    h('section', { class: 'card', 'aria-labelledby': 'chart-medians-title' },
      h('h2', { id: 'chart-medians-title' }, 'Скорость работы, часов (медиана)'), medianBox));
  const labels = rows.map((row) => row.municipality.name);
  const common = {
    indexAxis: 'y',
    responsive: true,
    maintainAspectRatio: false,
    animation: false,
    plugins: { legend: { position: 'bottom' } },
  };
  /** A click on a bar opens the appeals it counts. */
  const opening = (filters) => (_event, elements) => {
    if (elements.length === 0) return;
    const [{ index, datasetIndex }] = elements;
    location.hash = appealsOf(rows[index].municipality.code, filters[datasetIndex]);
  };
  const { Chart } = globalThis;
  return [
    new Chart(statusCanvas, {
      type: 'bar',
      data: {
        labels,
        datasets: [
          { label: 'Не прочитано', data: rows.map((row) => row.received), backgroundColor: COLOURS.unread },
          { label: 'Прочитано', data: rows.map((row) => row.seen), backgroundColor: COLOURS.seen },
          { label: 'Решено', data: rows.map((row) => row.resolved), backgroundColor: COLOURS.resolved },
        ],
      },
      options: {
        ...common,
        onClick: opening([{ status: 'RECEIVED' }, { status: 'SEEN' }, { status: 'RESOLVED' }]),
        scales: { x: { stacked: true, beginAtZero: true }, y: { stacked: true } },
      },
    }),
    new Chart(medianCanvas, {
      type: 'bar',
      data: {
        labels,
        datasets: [
          { label: 'До прочтения', data: rows.map((row) => tenths(row.medianHoursToSeen)), backgroundColor: COLOURS.toSeen },
          { label: 'До решения', data: rows.map((row) => tenths(row.medianHoursToResolve)), backgroundColor: COLOURS.toResolve },
        ],
      },
      options: {
        ...common,
        onClick: opening([{}, {}]),
        scales: { x: { beginAtZero: true, ticks: { callback: (value) => formatNumber(value) } } },
      },
    }),
  ];
}
