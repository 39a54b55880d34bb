// The auditor's view: an appeal's history with its hash chain verified by the
// server (`verifyAudit`) and the verdict shown, and the region-wide
// verification, which walks every appeal in scope a page at a time.

import { ApiError, appealByNumber, request } from './api.js';
import { fetchAppeal } from './appeal.js';
import {
  EVENT, ROLE, STATUS, busy, explain, go, h, href, inputField, message, notFound, replace, time,
} from './ui.js';

/** Appeals verified at once during the region-wide verification. */
const AT_ONCE = 4;

export function show(main, route) {
  const id = route.path[1];
  const lookup = h('form', { class: 'filters', id: 'audit-lookup', role: 'search', 'aria-label': 'Найти обращение' },
    h('div', { class: 'search-row' },
      inputField('audit-number', 'Номер обращения', { autocomplete: 'off', placeholder: 'TOMSK-2026-000042', required: true }),
      h('button', { type: 'submit', class: 'primary' }, 'Проверить')));
  const feedback = h('div', {});
  const single = h('div', { id: 'audit-appeal' });
  const region = regionSection();
  replace(main, h('div', { class: 'page-head' }, h('h1', {}, 'Аудит истории обращений')),
    h('p', {}, 'Каждое событие истории связано с предыдущим хешем SHA-256; сервер проверяет цепочку, её привязку к обращению и, если у него есть ключ аудита, печати.'),
    lookup, feedback, single, region.element);
  lookup.addEventListener('submit', async (event) => {
    event.preventDefault();
    replace(feedback);
    await busy(lookup.querySelector('button'), async () => {
      try {
        const { number, id } = await appealByNumber(lookup.elements['audit-number'].value);
        if (id) {
          go(['audit', id]);
        } else {
          replace(single);
          replace(feedback, message('error', notFound(number)));
        }
      } catch (error) {
        replace(feedback, message('error', error instanceof ApiError ? explain(error) : String(error)));
      }
    });
  });
  if (id) verifyOne(single, id);
  return region.stop;
}

function verdict(result) {
  if (result.ok) {
    return message('ok', h('strong', {}, 'Цепочка цела. '),
      `Проверено событий: ${result.eventsChecked}. `,
      result.sealed ? 'Печати проверены ключом аудита.' : 'Проверены только хеши: на сервере нет ключа аудита, поэтому правка с пересчётом всех хешей не была бы видна.');
  }
  return message('error', h('strong', {}, 'Цепочка нарушена'),
    result.brokenAtSeq ? ` на событии № ${result.brokenAtSeq}` : '', `. ${result.reason ?? ''}`);
}

async function verifyOne(target, id) {
  replace(target, h('p', {}, 'Проверка…'));
  try {
    const [appeal, { verifyAudit }] = await Promise.all([fetchAppeal(id), request('VerifyAudit', { appealId: id })]);
    if (!appeal) {
      replace(target, message('error', 'Обращение не найдено или вам недоступно.'));
      return;
    }
    replace(target, h('section', { class: 'card', 'aria-labelledby': 'audit-title' },
      h('h2', { id: 'audit-title' }, h('a', { href: href(['appeal', appeal.id]) }, `Обращение № ${appeal.number}`),
        ` · ${STATUS[appeal.status]}`),
      h('div', { id: 'audit-verdict' }, verdict(verifyAudit)),
      h('div', { class: 'table-scroll', tabindex: '0', role: 'region', 'aria-label': 'История с хешами' },
        h('table', { id: 'audit-history' },
          h('thead', {}, h('tr', {}, ['№', 'Когда', 'Событие', 'Кто', 'Хеш'].map((label) => h('th', { scope: 'col' }, label)))),
          h('tbody', {}, appeal.history.map((event) => h('tr', {
            class: verifyAudit.brokenAtSeq === event.seq ? 'is-broken' : undefined,
          },
          h('td', {}, event.seq), h('td', {}, time(event.at)), h('td', {}, EVENT[event.kind] ?? event.kind),
          h('td', {}, event.actor ? `${event.actor.name} (${ROLE[event.actor.role] ?? event.actor.role})` : 'система'),
          h('td', {}, h('code', { title: event.hash }, `${event.hash.slice(0, 12)}…`)))))))));
  } catch (error) {
    replace(target, message('error', error instanceof ApiError ? explain(error) : String(error)));
  }
}

/** `call`, again after a pause while the server says the rate limit is reached. */
async function patiently(call) {
  for (let attempt = 1; ; attempt += 1) {
    try {
      return await call();
    } catch (error) {
      if (!(error instanceof ApiError) || error.code !== 'RATE_LIMITED' || attempt === 10) throw error;
      await new Promise((resolve) => setTimeout(resolve, 1000));
    }
  }
}

/** The region-wide verification: its section, and how to stop it. */
function regionSection() {
  const progress = h('progress', { id: 'region-progress', max: 1, value: 0, hidden: true });
  const status = h('p', { id: 'region-status', role: 'status' });
  const broken = h('ul', { id: 'region-broken', class: 'plain' });
  const start = h('button', { type: 'button', class: 'primary', id: 'verify-region' }, 'Проверить все обращения');
  const stop = h('button', { type: 'button', id: 'stop-region', hidden: true }, 'Остановить');
  let stopped = false;
  stop.addEventListener('click', () => {
    stopped = true;
  });
  start.addEventListener('click', async () => {
    stopped = false;
    start.disabled = true;
    stop.hidden = false;
    progress.hidden = false;
    replace(broken);
    let checked = 0;
    let failed = 0;
    let unsealed = 0;
    let after = null;
    try {
      do {
        const { appeals } = await patiently(() => request('Inbox', { first: 100, after }));
        progress.max = Math.max(appeals.totalCount, 1);
        const queue = appeals.edges.map((edge) => edge.node);
        const worker = async () => {
          for (let node = queue.shift(); node && !stopped; node = queue.shift()) {
            const { verifyAudit } = await patiently(() => request('VerifyAudit', { appealId: node.id }));
            checked += 1;
            if (!verifyAudit.sealed) unsealed += 1;
            if (!verifyAudit.ok) {
              failed += 1;
              broken.append(h('li', {}, h('a', { href: href(['audit', node.id]) }, `№ ${node.number}`),
                `: событие № ${verifyAudit.brokenAtSeq ?? '?'} — ${verifyAudit.reason ?? ''}`));
            }
            progress.value = checked;
            status.textContent = `Проверено ${checked} из ${appeals.totalCount}, нарушений: ${failed}`;
          }
        };
        await Promise.all(Array.from({ length: AT_ONCE }, worker));
        after = appeals.pageInfo.hasNextPage ? appeals.pageInfo.endCursor : null;
      } while (after && !stopped);
      const hashesOnly = unsealed > 0 ? ` Без ключа аудита на сервере проверены только хеши (${unsealed}).` : '';
      status.textContent = `${stopped ? 'Остановлено' : 'Готово'}: проверено ${checked}, ${failed === 0 ? 'все цепочки целы' : `нарушений: ${failed}`}.${hashesOnly}`;
    } catch (error) {
      status.textContent = `Проверка прервана на ${checked}-м обращении: ${error instanceof ApiError ? explain(error) : error}`;
    }
    start.disabled = false;
    stop.hidden = true;
  });
  const element = h('section', { class: 'card', 'aria-labelledby': 'region-title' },
    h('h2', { id: 'region-title' }, 'Проверка всех обращений'),
    h('p', {}, 'Проверяет цепочку каждого обращения, доступного вашей роли, по очереди; страницу можно не закрывать до конца проверки.'),
    h('div', { class: 'button-row' }, start, stop), progress, status, broken);
  return { element, stop: () => { stopped = true; } };
}
