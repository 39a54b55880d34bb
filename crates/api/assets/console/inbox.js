// The inbox: the appeals in the caller's scope, newest first, with filters, the
// word search and pages of 25; new appeals appear as they are committed, heard
// through the subscription.

import {
  ApiError, appealByNumber, municipalities, onConnection, request, session, subscribeToEvents,
} from './api.js';
import {
  CHANNEL, PRIORITY, STATUS, badge, choices, currentRoute, explain, go, h, href, inputField, message, notFound,
  registrationNumber, replace, selectField, statusBadge, time,
} from './ui.js';

const PAGE_SIZE = 25;

/** The filters the address carries, by their names there. */
const FILTERS = ['status', 'priority', 'channel', 'overdue', 'seenOverdue', 'm', 'q', 'from', 'to'];

function regional() {
  return !session.me.municipality;
}

/** The API's filter from the address's parameters. */
function apiFilter(params) {
  const filter = {};
  if (params.get('status')) filter.status = params.get('status');
  if (params.get('priority')) filter.priority = params.get('priority');
  if (params.get('channel')) filter.channel = params.get('channel');
  if (params.get('overdue') === '1') filter.overdue = true;
  if (params.get('seenOverdue') === '1') filter.seenOverdue = true;
  if (params.get('m')) filter.municipalityCode = params.get('m');
  if (params.get('q')) filter.search = params.get('q');
  if (params.get('from')) filter.receivedFrom = params.get('from');
  if (params.get('to')) filter.receivedTo = params.get('to');
  return filter;
}

export function show(main, route) {
  const params = route.params;
  const live = h('span', { class: 'live', id: 'live-state' }, 'Подключение…');
  const announcer = h('div', { class: 'announcer', role: 'status', 'aria-live': 'polite', id: 'inbox-news' });
  const results = h('div', { id: 'inbox-results', 'aria-busy': 'true' }, h('p', {}, 'Загрузка…'));
  const form = filtersForm(params);
  replace(main,
    h('div', { class: 'page-head' }, h('h1', {}, 'Обращения'), live),
    form, announcer, results);

  /** Appeals announced live since the page opened, to mark in the list. */
  const fresh = new Set();
  let loading = null;
  let again = false;

  async function load() {
    if (loading) {
      again = true;
      return loading;
    }
    loading = (async () => {
      do {
        again = false;
        const current = currentRoute().params;
        try {
          const data = await request('Inbox', {
            filter: apiFilter(current), first: PAGE_SIZE, after: current.get('after') || null,
          });
          renderResults(results, data.appeals, current, fresh);
        } catch (error) {
          replace(results, message('error', error instanceof ApiError ? explain(error) : String(error)));
        }
        results.setAttribute('aria-busy', 'false');
      } while (again);
      loading = null;
    })();
    return loading;
  }

  form.addEventListener('change', () => applyFilters(form, load));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    // A registration number opens that appeal; anything else is a word search.
    if (!registrationNumber(form.elements.q.value)) {
      applyFilters(form, load);
      return;
    }
    try {
      const { number, id } = await appealByNumber(form.elements.q.value);
      if (id) go(['appeal', id]);
      else replace(results, message('error', notFound(number)));
    } catch (error) {
      replace(results, message('error', error instanceof ApiError ? explain(error) : String(error)));
    }
  });

  let reloadSoon = null;
  const scheduleReload = () => {
    clearTimeout(reloadSoon);
    reloadSoon = setTimeout(load, 150);
  };
  const stopListening = subscribeToEvents(params.get('m') || null, (event) => {
    const onFirstPage = !currentRoute().params.get('after');
    if (event.kind === 'RECEIVED') {
      fresh.add(event.appealId);
      announcer.textContent = `Новое обращение № ${event.appeal?.number ?? ''}`;
      if (onFirstPage) scheduleReload();
    } else if (results.querySelector(`[data-id="${CSS.escape(event.appealId)}"]`)) {
      scheduleReload();
    }
  });
  const stopWatching = onConnection((up, reconnected) => {
    live.textContent = up ? 'Новые обращения появляются сами' : 'Нет связи: переподключение…';
    live.classList.toggle('live-down', !up);
    if (reconnected) scheduleReload();
  });
  load();
  if (regional()) fillMunicipalities(form, params.get('m'));
  return () => {
    clearTimeout(reloadSoon);
    stopListening();
    stopWatching();
  };
}

function filtersForm(params) {
  const yes = [['', 'Все'], ['1', 'Просроченные']];
  return h('form', { class: 'filters', id: 'inbox-filters', role: 'search', 'aria-label': 'Фильтры обращений' },
    h('div', { class: 'search-row' },
      inputField('q', 'Поиск по словам или номеру обращения', {
        type: 'search', value: params.get('q') ?? '', placeholder: 'яма двор, освещ* или TOMSK-2026-000042',
        autocomplete: 'off',
      }),
      h('button', { type: 'submit', class: 'primary' }, 'Найти')),
    h('div', { class: 'filter-row' },
      selectField('status', 'Статус', choices(STATUS, 'Все'), params.get('status')),
      selectField('priority', 'Приоритет', choices(PRIORITY, 'Все'), params.get('priority')),
      selectField('channel', 'Канал', choices(CHANNEL, 'Все'), params.get('channel')),
      selectField('overdue', 'Срок ответа', yes, params.get('overdue')),
      regional()
        ? selectField('m', 'Муниципалитет', [['', 'Все'], ...(params.get('m') ? [[params.get('m'), params.get('m')]] : [])],
          params.get('m'))
        : null),
    params.get('from') || params.get('to')
      ? h('p', { class: 'period-note' }, 'Поступившие ', params.get('from') ? ['с ', time(params.get('from'), false), ' '] : '',
        params.get('to') ? ['до ', time(params.get('to'), false)] : '', ' · ',
        h('a', { href: href(['inbox'], { ...Object.fromEntries(params), from: '', to: '', after: '' }) }, 'за всё время'))
      : null);
}

async function fillMunicipalities(form, selected) {
  let list;
  try {
    list = await municipalities();
  } catch {
    return;
  }
  replace(form.elements.m, h('option', { value: '' }, 'Все'),
    list.map(({ code, name }) => h('option', { value: code, selected: code === selected }, name)));
}

/** Puts the form's filters into the address (back to the first page) and reloads. */
function applyFilters(form, load) {
  const current = currentRoute().params;
  const next = {};
  for (const name of FILTERS) {
    const field = form.elements[name];
    next[name] = field ? field.value.trim() : current.get(name);
  }
  history.replaceState(null, '', href(['inbox'], next));
  load();
}

function renderResults(results, connection, params, fresh) {
  const { totalCount, pageInfo, edges } = connection;
  const after = params.get('after');
  const count = h('p', { class: 'count', id: 'inbox-count' }, `Найдено: ${totalCount}`);
  if (edges.length === 0) {
    replace(results, count, h('p', { class: 'empty' }, after ? 'На этой странице ничего нет.' : 'Обращений с такими условиями нет.'));
    return;
  }
  const showMunicipality = regional();
  const list = h('ul', { class: 'appeal-list', id: 'appeal-list' }, edges.map(({ node }) => h('li', {
    class: `appeal-item${node.overdue ? ' is-overdue' : ''}${fresh.has(node.id) ? ' is-new' : ''}`,
    'data-id': node.id,
  },
  h('a', { href: href(['appeal', node.id]), class: 'appeal-link' },
    h('span', { class: 'appeal-number' }, `№ ${node.number}`),
    ' ', statusBadge(node.status),
    node.priority !== 'NORMAL' ? [' ', badge(PRIORITY[node.priority], `priority-${node.priority.toLowerCase()}`)] : null,
    fresh.has(node.id) ? [' ', badge('новое', 'new')] : null),
  h('p', { class: 'appeal-text' }, node.text),
  h('p', { class: 'appeal-meta' },
    showMunicipality ? [node.municipality.name, ' · '] : null,
    CHANNEL[node.channel] ?? node.channel, ' · ', node.authorName ?? 'автор не указан', ' · поступило ', time(node.receivedAt)),
  h('p', { class: 'appeal-due' },
    node.status === 'RESOLVED' ? 'Решено' : ['Ответ до ', time(node.dueAt, false), node.deadlineExtended ? ' (продлён)' : ''],
    node.overdue ? [' ', badge('Просрочено', 'overdue')] : null,
    node.seenOverdue ? [' ', badge('Не прочитано в срок', 'overdue')] : null))));
  const pages = h('nav', { class: 'pager', 'aria-label': 'Страницы' },
    after ? h('a', { href: href(['inbox'], { ...Object.fromEntries(params), after: '' }) }, '« В начало') : null,
    pageInfo.hasNextPage
      ? h('a', { href: href(['inbox'], { ...Object.fromEntries(params), after: pageInfo.endCursor }), id: 'next-page' }, 'Следующие »')
      : null);
  replace(results, count, list, pages);
}
