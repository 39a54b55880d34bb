// One appeal: its text, author, channel, deadlines, attachments, the replies to
// the resident, the history as a timeline, and exactly the actions the signed-in
// role may take on it now. A command carries the version the page shows; when
// someone changed the appeal meanwhile, the API refuses with VERSION_CONFLICT and
// the page explains what changed, reloads, and keeps what the person typed.

import { ApiError, appealByNumber, request, session, subscribeToEvents } from './api.js';
import {
  ATTACHMENT, CHANNEL, EVENT, OUTCOME, PRIORITY, REPLY_KIND, REPLY_STATUS, ROLE, STATUS, badge, busy, choices,
  explain, formValues, h, href, inputField, message, replace, selectField, statusBadge, textField, time,
} from './ui.js';

/** The most history pages of 100 events read for one page view. */
const HISTORY_PAGES = 50;

/** The appeal with its whole history (a page of 100 events at a time), or null. */
export async function fetchAppeal(id) {
  const { appeal } = await request('Appeal', { id });
  if (!appeal) return null;
  let page = appeal.history;
  for (let pages = 1; page.length === 100 && pages < HISTORY_PAGES; pages += 1) {
    page = (await request('Appeal', { id, historyAfter: page[page.length - 1].seq })).appeal?.history ?? [];
    appeal.history.push(...page);
  }
  return appeal;
}

/** What the signed-in role may do to `appeal` as it stands. */
function allowed(appeal) {
  const { role } = session.me;
  const works = (role === 'ASSISTANT' || role === 'HEAD') && session.me.municipality?.code === appeal.municipality.code;
  const open = appeal.status !== 'RESOLVED';
  return {
    triage: works,
    note: works,
    markSeen: role === 'HEAD' && works && appeal.status === 'RECEIVED',
    extend: works && open && !appeal.deadlineExtended,
    resolve: works && appeal.status === 'SEEN',
    reopen: appeal.status === 'RESOLVED' && ((role === 'HEAD' && works) || role === 'GOVERNOR_OFFICE'),
    resend: works,
    audit: role === 'AUDITOR' || role === 'GOVERNOR_OFFICE',
  };
}

export function show(main, route) {
  const id = route.path[1];
  const notices = h('div', { id: 'appeal-notices', tabindex: '-1' });
  const body = h('div', { id: 'appeal-body', 'aria-busy': 'true' }, h('p', {}, 'Загрузка…'));
  replace(main, notices, body);
  let appeal = null;
  let stopListening = () => {};

  async function reload({ keep = false } = {}) {
    const kept = keep ? keepValues(body) : null;
    appeal = await fetchAppeal(id);
    if (!appeal) {
      replace(body, message('error', 'Обращение не найдено или вам недоступно.'));
      return;
    }
    document.title = `№ ${appeal.number} · Обращения`;
    replace(body, ...renderAppeal(appeal, run));
    body.setAttribute('aria-busy', 'false');
    if (kept) restoreValues(body, kept);
  }

  /** Sends a command; on success reloads, on a conflict explains it. */
  async function run(button, operation, variables, done) {
    await busy(button, async () => {
      try {
        await request(operation, { id: appeal.id, ...variables });
        await reload();
        replace(notices, message('ok', done));
      } catch (error) {
        if (error instanceof ApiError && error.code === 'VERSION_CONFLICT') {
          const before = appeal;
          await reload({ keep: true });
          replace(notices, conflict(before, appeal));
        } else {
          replace(notices, message('error', error instanceof ApiError ? explain(error) : String(error)));
        }
      }
      notices.focus();
      notices.scrollIntoView({ block: 'nearest' });
    });
  }

  reload()
    .then(() => {
      if (!appeal) return;
      stopListening = subscribeToEvents(appeal.municipality.code, (event) => {
        if (event.appealId !== appeal.id || event.actor?.id === session.me.id) return;
        const who = event.actor ? ` (${event.actor.name})` : '';
        replace(notices, message('info', `Обращение только что изменено: ${EVENT[event.kind] ?? event.kind}${who}. `,
          h('button', { type: 'button', class: 'link-button', id: 'refresh-appeal', onclick: async () => {
            replace(notices);
            await reload({ keep: true });
          } }, 'Обновить страницу')));
      });
    })
    .catch((error) => replace(body, message('error', error instanceof ApiError ? explain(error) : String(error))));
  return () => stopListening();
}

function renderAppeal(appeal, run) {
  const can = allowed(appeal);
  return [
    h('div', { class: 'page-head' },
      h('h1', {}, `Обращение № ${appeal.number}`),
      h('p', { class: 'badges' }, statusBadge(appeal.status), ' ', badge(`Приоритет: ${PRIORITY[appeal.priority]}`,
        `priority-${appeal.priority.toLowerCase()}`),
      appeal.overdue ? [' ', badge('Просрочено', 'overdue')] : null,
      appeal.seenOverdue ? [' ', badge('Не прочитано в срок', 'overdue')] : null),
      appeal.status === 'RESOLVED' ? null : h('p', { class: 'hint', id: 'due' },
        appeal.status === 'RECEIVED' ? ['Прочитать до ', time(appeal.seenDueAt, false), ' · '] : null,
        'Ответить до ', time(appeal.dueAt, false))),
    h('section', { class: 'card', 'aria-labelledby': 'appeal-text-title' },
      h('h2', { id: 'appeal-text-title' }, 'Текст обращения'),
      h('p', { class: 'appeal-full-text', id: 'appeal-text' }, appeal.text),
      h('dl', { class: 'facts' },
        fact('Автор', appeal.authorName ?? 'не указан'),
        fact('Связь с автором', appeal.authorContact ?? 'не указана'),
        fact('Муниципалитет', appeal.municipality.name),
        fact('Канал', CHANNEL[appeal.channel] ?? appeal.channel),
        fact('Категория', appeal.category ?? '—'),
        fact('Метки', appeal.tags.length ? appeal.tags.join(', ') : '—'))),
    appeal.resolution ? h('section', { class: 'card', 'aria-labelledby': 'resolution-title' },
      h('h2', { id: 'resolution-title' }, 'Решение'),
      h('dl', { class: 'facts' },
        fact('Итог', OUTCOME[appeal.resolution.outcome]),
        fact('Ответ жителю', appeal.resolution.response),
        appeal.resolution.duplicateOf ? fact('Повторяет', h('a', { href: href(['appeal', appeal.resolution.duplicateOf.id]) },
          `№ ${appeal.resolution.duplicateOf.number}`)) : null,
        fact('Решил', appeal.resolution.resolvedBy.name))) : null,
    actions(appeal, can, run),
    h('section', { class: 'card', 'aria-labelledby': 'deadlines-title' },
      h('h2', { id: 'deadlines-title' }, 'Сроки'),
      h('dl', { class: 'facts', id: 'deadlines' },
        fact('Поступило', time(appeal.receivedAt)),
        fact('Прочитать до', time(appeal.seenDueAt), appeal.seenAt ? ['прочитано ', time(appeal.seenAt)] : null),
        fact('Ответить до', time(appeal.dueAt), appeal.deadlineExtended ? 'срок продлён' : null),
        appeal.resolvedAt ? fact('Решено', time(appeal.resolvedAt)) : null)),
    appeal.attachments.length ? h('section', { class: 'card', 'aria-labelledby': 'attachments-title' },
      h('h2', { id: 'attachments-title' }, 'Вложения'),
      h('ul', { class: 'plain', id: 'attachments' }, appeal.attachments.map((item) => h('li', {},
        h('strong', {}, ATTACHMENT[item.kind] ?? item.kind), ': ',
        item.kind === 'LOCATION' ? `${item.latitude}, ${item.longitude}`
          : [item.fileName ?? item.platformType ?? 'файл', item.mimeType ? ` (${item.mimeType})` : ''],
        ' · ', time(item.receivedAt))))) : null,
    replies(appeal, can, run),
    timeline(appeal),
  ];
}

function fact(term, value, note) {
  return [h('dt', {}, term), h('dd', {}, value, note ? [' · ', note] : null)];
}

function actions(appeal, can, run) {
  const forms = [];
  if (can.markSeen) {
    forms.push(h('div', { class: 'action-main' },
      h('button', { type: 'button', class: 'primary', id: 'mark-seen', onclick: (event) =>
        run(event.currentTarget, 'MarkSeen', { expectedVersion: appeal.version }, 'Отмечено: вы прочитали обращение.') },
      'Я прочитал(а) обращение')));
  }
  if (can.resolve) {
    const form = commandForm('resolve-form', [
      selectField('resolve-outcome', 'Итог', choices(OUTCOME), 'EXPLAINED'),
      textField('resolve-response', 'Ответ жителю', { required: true, maxlength: 10000 }),
      h('div', { id: 'duplicate-field', hidden: true },
        inputField('resolve-duplicate', 'Номер обращения, которое оно повторяет', { autocomplete: 'off' })),
    ], 'Решить обращение', run, {
      operation: 'ResolveAppeal',
      done: 'Обращение решено, ответ отправляется жителю.',
      primary: true,
      variables: async (values, form) => {
        const input = { outcome: values['resolve-outcome'], response: values['resolve-response'].trim() };
        if (input.outcome === 'DUPLICATE') {
          const { id } = await appealByNumber(values['resolve-duplicate']).catch(() => ({ id: null }));
          if (!id) {
            const field = form.querySelector('#resolve-duplicate');
            field.setCustomValidity('Обращение с таким номером не найдено');
            form.reportValidity();
            field.setCustomValidity('');
            return null;
          }
          input.duplicateOf = id;
        }
        return { expectedVersion: appeal.version, input };
      },
    });
    form.elements['resolve-outcome'].addEventListener('change', (event) => {
      form.querySelector('#duplicate-field').hidden = event.target.value !== 'DUPLICATE';
    });
    forms.push(action('Решить', form, true));
  } else if (appeal.status === 'RECEIVED' && can.note) {
    forms.push(h('p', { class: 'hint', id: 'resolve-hint' }, session.me.role === 'HEAD'
      ? 'Решить обращение можно после того, как вы отметите, что прочитали его.'
      : 'Решить обращение можно, когда его прочитает глава.'));
  }
  if (can.triage) {
    forms.push(action('Разобрать: приоритет, категория, метки', commandForm('triage-form', [
      selectField('triage-priority', 'Приоритет', choices(PRIORITY), appeal.priority),
      inputField('triage-category', 'Категория', { value: appeal.category ?? '', maxlength: 100 }),
      inputField('triage-tags', 'Метки через запятую', { value: appeal.tags.join(', ') }),
    ], 'Сохранить разбор', run, {
      operation: 'TriageAppeal',
      done: 'Разбор сохранён.',
      variables: (values) => {
        const input = {
          priority: values['triage-priority'],
          tags: values['triage-tags'].split(',').map((tag) => tag.trim()).filter(Boolean),
        };
        if (values['triage-category'].trim()) input.category = values['triage-category'].trim();
        return { expectedVersion: appeal.version, input };
      },
    })));
  }
  if (can.note) {
    forms.push(action('Заметка', commandForm('note-form', [
      textField('note-text', 'Заметка для коллег (жителю не отправляется)', { required: true, maxlength: 10000 }),
    ], 'Добавить заметку', run, {
      operation: 'AddNote',
      done: 'Заметка добавлена.',
      variables: (values) => ({ text: values['note-text'].trim() }),
    })));
  }
  if (can.extend) {
    forms.push(action('Продлить срок ответа', commandForm('extend-form', [
      inputField('extend-days', 'На сколько дней продлить (один раз, до 30)',
        { type: 'number', min: 1, max: 30, value: 30, required: true }),
      textField('extend-reason', 'Причина продления', { required: true, maxlength: 10000 }),
    ], 'Продлить срок', run, {
      operation: 'ExtendDeadline',
      done: 'Срок ответа продлён.',
      variables: (values) => ({
        expectedVersion: appeal.version, days: Number(values['extend-days']), reason: values['extend-reason'].trim(),
      }),
    })));
  }
  if (can.reopen) {
    forms.push(action('Возобновить', commandForm('reopen-form', [
      textField('reopen-reason', 'Почему обращение возвращается в работу', { required: true, maxlength: 10000 }),
    ], 'Возобновить', run, {
      operation: 'ReopenAppeal',
      done: 'Обращение возвращено в работу.',
      variables: (values) => ({ expectedVersion: appeal.version, reason: values['reopen-reason'].trim() }),
    }), true));
  }
  if (can.audit) {
    forms.push(h('p', {}, h('a', { href: href(['audit', appeal.id]), id: 'audit-link' }, 'Проверить цепочку истории')));
  }
  const title = h('h2', { id: 'actions-title' }, 'Действия');
  if (forms.length === 0) {
    return h('section', { class: 'card', 'aria-labelledby': 'actions-title', id: 'actions' }, title,
      h('p', {}, `Роль «${ROLE[session.me.role]}» может только читать это обращение${appeal.status === 'RESOLVED' ? ', оно решено' : ''}.`));
  }
  return h('section', { class: 'card', 'aria-labelledby': 'actions-title', id: 'actions' }, title, forms);
}

/**
 * A form that sends one command: `variables(values, form)` makes the command's
 * variables of the form's fields (or null, having told the person why, to send
 * nothing), and `done` is what the page says once it succeeded.
 */
function commandForm(id, fields, label, run, { operation, variables, done, primary = false }) {
  const button = h('button', { type: 'submit', class: primary ? 'primary' : undefined }, label);
  const form = h('form', { id }, fields, button);
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const sent = await variables(formValues(form), form);
    if (sent) run(button, operation, sent, done);
  });
  return form;
}

/** One action in a disclosure, open when it is the one expected next. */
function action(summary, form, open = false) {
  return h('details', { class: 'action', open }, h('summary', {}, summary), form);
}

/** Channels the engine answers residents in by itself. */
const MESSENGERS = ['TELEGRAM', 'VK', 'MAX'];

function replies(appeal, can, run) {
  if (appeal.replies.length === 0) {
    return h('section', { class: 'card', 'aria-labelledby': 'replies-title' },
      h('h2', { id: 'replies-title' }, 'Ответы жителю'),
      h('p', { class: 'hint', id: 'no-replies' }, MESSENGERS.includes(appeal.channel)
        ? 'Жителю ничего не отправлялось: обращение зарегистрировано не через канал муниципалитета в мессенджере, или канал не настроен.'
        : `Обращение поступило не через мессенджер (${CHANNEL[appeal.channel] ?? appeal.channel}): ответ жителю передаётся вне системы — по телефону, почтой или лично. Здесь он записан в решении.`));
  }
  return h('section', { class: 'card', 'aria-labelledby': 'replies-title' },
    h('h2', { id: 'replies-title' }, 'Ответы жителю'),
    h('ul', { class: 'plain replies', id: 'replies' }, appeal.replies.map((reply) => h('li', {},
      h('p', {}, h('strong', {}, REPLY_KIND[reply.kind] ?? reply.kind), ' ',
        badge(REPLY_STATUS[reply.status] ?? reply.status, `reply-${reply.status.toLowerCase()}`),
        ' · ', reply.sentAt ? ['отправлено ', time(reply.sentAt)] : ['создано ', time(reply.createdAt)],
        reply.attempts > 1 ? ` · попыток: ${reply.attempts}` : ''),
      h('p', { class: 'reply-text' }, reply.text),
      reply.lastError ? h('p', { class: 'hint' }, `Платформа ответила: ${reply.lastError}`) : null,
      reply.status === 'FAILED' && can.resend
        ? h('button', { type: 'button', class: 'resend', 'data-reply': reply.id, onclick: (event) => run(event.currentTarget, 'ResendReply', { id: reply.id },
          'Ответ снова поставлен в очередь.') }, 'Отправить ещё раз')
        : null))));
}

function timeline(appeal) {
  return h('section', { class: 'card', 'aria-labelledby': 'history-title' },
    h('h2', { id: 'history-title' }, 'История'),
    h('ol', { class: 'timeline', id: 'history' }, appeal.history.map((event) => h('li', { 'data-seq': event.seq },
      h('p', {}, h('strong', {}, EVENT[event.kind] ?? event.kind), ' · ', time(event.at),
        event.actor ? ` · ${event.actor.name} (${ROLE[event.actor.role] ?? event.actor.role})` : ' · система'),
      event.fromStatus && event.toStatus && event.fromStatus !== event.toStatus
        ? h('p', { class: 'hint' }, `${STATUS[event.fromStatus]} → ${STATUS[event.toStatus]}`) : null,
      event.note ? h('p', { class: 'event-note' }, event.note) : null))));
}

/** The explanation of a VERSION_CONFLICT: what changed between `before` and `after`. */
function conflict(before, after) {
  const known = before.history.reduce((last, event) => Math.max(last, event.seq), 0);
  const events = after.history.filter((event) => event.seq > known);
  const fields = [
    ['Статус', STATUS[before.status], STATUS[after.status]],
    ['Приоритет', PRIORITY[before.priority], PRIORITY[after.priority]],
    ['Категория', before.category ?? '—', after.category ?? '—'],
    ['Метки', before.tags.join(', ') || '—', after.tags.join(', ') || '—'],
    ['Ответить до', new Date(before.dueAt).toLocaleDateString('ru-RU'), new Date(after.dueAt).toLocaleDateString('ru-RU')],
  ].filter(([, was, now]) => was !== now);
  return h('div', { class: 'message message-error conflict', role: 'alert', id: 'conflict' },
    h('h2', {}, 'Пока вы смотрели обращение, его изменил другой сотрудник'),
    h('p', {}, 'Ваше действие не выполнено, чтобы не затереть чужую работу. Вот что изменилось:'),
    h('ul', {}, events.map((event) => h('li', {}, time(event.at), ' — ', EVENT[event.kind] ?? event.kind,
      event.actor ? ` (${event.actor.name})` : '', event.note ? `: «${event.note}»` : '')),
    fields.map(([name, was, now]) => h('li', {}, `${name}: было «${was}», стало «${now}»`))),
    h('p', {}, 'Страница обновлена, введённый вами текст сохранён. Проверьте обращение и повторите действие, если оно ещё нужно.'));
}

/**
 * What the person wrote in the page's text boxes (a response, a note, a reason),
 * and which disclosures are open. Choices that show the appeal's own values
 * (priority, category) are not kept: they show the appeal as it now stands.
 */
function keepValues(root) {
  return {
    values: [...root.querySelectorAll('form textarea')].filter((field) => field.value).map((field) => [field.id, field.value]),
    open: [...root.querySelectorAll('details[open] form')].map((form) => form.id),
  };
}

function restoreValues(root, { values, open }) {
  for (const [id, value] of values) {
    const field = root.querySelector(`#${CSS.escape(id)}`);
    if (field) field.value = value;
  }
  for (const id of open) root.querySelector(`#${CSS.escape(id)}`)?.closest('details')?.setAttribute('open', '');
}
