// What every page shares: building the DOM (only ever as text, never as HTML:
// an appeal's text is whatever a resident wrote), the Russian names of the API's
// values, dates, and the explanation of each error code.

/** An element: `h('a', { href: '#/inbox', class: 'link' }, 'Обращения', child)`. */
export function h(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith('on') && typeof value === 'function') {
      element.addEventListener(name.slice(2), value);
    } else if (name === 'class') {
      element.className = value;
    } else if (name === 'for') {
      element.htmlFor = value;
    } else if (['value', 'checked', 'selected', 'disabled', 'required', 'hidden'].includes(name)) {
      element[name] = value;
    } else {
      element.setAttribute(name, value === true ? '' : String(value));
    }
  }
  append(element, children);
  return element;
}

function append(element, children) {
  for (const child of children) {
    if (child === undefined || child === null || child === false) continue;
    if (Array.isArray(child)) append(element, child);
    else element.append(child instanceof Node ? child : String(child));
  }
}

/** Replaces what `element` holds. */
export function replace(element, ...children) {
  element.replaceChildren();
  append(element, children);
}

/** A labelled `<select>`: `options` are [value, label] pairs; '' is "any". */
export function selectField(id, label, options, selected, attributes = {}) {
  return h('div', { class: 'field' },
    h('label', { for: id }, label),
    h('select', { id, name: id, ...attributes },
      options.map(([value, text]) => h('option', { value, selected: value === (selected ?? '') }, text))));
}

/** A labelled `<input>`. */
export function inputField(id, label, attributes = {}) {
  return h('div', { class: 'field' }, h('label', { for: id }, label), h('input', { id, name: id, ...attributes }));
}

/** A labelled `<textarea>`. */
export function textField(id, label, attributes = {}) {
  return h('div', { class: 'field' }, h('label', { for: id }, label), h('textarea', { id, name: id, rows: 4, ...attributes }));
}

export const STATUS = { RECEIVED: 'Не прочитано', SEEN: 'Прочитано', RESOLVED: 'Решено' };
export const PRIORITY = { LOW: 'Низкий', NORMAL: 'Обычный', HIGH: 'Высокий', URGENT: 'Срочный' };
export const CHANNEL = {
  TELEGRAM: 'Telegram', VK: 'ВКонтакте', MAX: 'MAX', EMAIL: 'Эл. почта', WEB: 'Сайт',
  PHONE: 'Телефон', IN_PERSON: 'Лично', POST: 'Почта',
};
export const ROLE = {
  INTAKE: 'Регистратор', ASSISTANT: 'Помощник главы', HEAD: 'Глава', GOVERNOR_OFFICE: 'Аппарат губернатора',
  AUDITOR: 'Аудитор', ADMIN: 'Администратор',
};
export const EVENT = {
  RECEIVED: 'Поступило', TRIAGED: 'Разобрано', NOTE_ADDED: 'Заметка', SEEN: 'Прочитано главой',
  DEADLINE_EXTENDED: 'Срок продлён', RESOLVED: 'Решено', REOPENED: 'Возобновлено',
  RESIDENT_MESSAGE: 'Житель написал ещё',
};
export const OUTCOME = {
  SATISFIED: 'Удовлетворено', EXPLAINED: 'Разъяснено', DECLINED: 'Отказано', REDIRECTED: 'Перенаправлено',
  DUPLICATE: 'Дубликат', NO_ANSWER_REQUIRED: 'Ответ не требуется',
};
export const REPLY_KIND = { ACKNOWLEDGEMENT: 'О регистрации', SEEN_NOTICE: 'О прочтении главой', ANSWER: 'Ответ' };
export const REPLY_STATUS = { PENDING: 'В очереди', SENT: 'Доставлено', FAILED: 'Не доставлено' };
export const ATTACHMENT = { PHOTO: 'Фото', DOCUMENT: 'Документ', LOCATION: 'Место на карте', OTHER: 'Другое' };

/** `[value, label]` pairs of one of the maps above, after an "any" option. */
export function choices(map, anyLabel) {
  const pairs = Object.entries(map);
  return anyLabel === undefined ? pairs : [['', anyLabel], ...pairs];
}

const dateTime = new Intl.DateTimeFormat('ru-RU', { dateStyle: 'medium', timeStyle: 'short' });
const dateOnly = new Intl.DateTimeFormat('ru-RU', { dateStyle: 'medium' });
const number = new Intl.NumberFormat('ru-RU', { maximumFractionDigits: 1 });

/** `<time>` of an RFC 3339 instant, in the browser's time zone. */
export function time(iso, withTime = true) {
  if (!iso) return '—';
  const at = new Date(iso);
  return h('time', { datetime: iso }, (withTime ? dateTime : dateOnly).format(at));
}

export function formatNumber(value) {
  return value === null || value === undefined ? '—' : number.format(value);
}

/** A small coloured label; `kind` names its colour in the stylesheet. */
export function badge(text, kind) {
  return h('span', { class: `badge badge-${kind}` }, text);
}

export function statusBadge(status) {
  return badge(STATUS[status] ?? status, status.toLowerCase());
}

/**
 * A registration number as a person may type or copy it (`№ tomsk-2026-000042`),
 * as the API spells it (`TOMSK-2026-000042`); null when `text` is not one.
 */
export function registrationNumber(text) {
  const number = text.replace(/^\s*№\s*/, '').trim().toUpperCase();
  return /^[A-Z][A-Z0-9_]*-\d{4}-\d{6}$/.test(number) ? number : null;
}

/** That no appeal numbered `number` is within the caller's reach. */
export function notFound(number) {
  return `Обращения № ${number} нет или оно вам недоступно.`;
}

/** What an error from the API means to the person at the console, in Russian. */
export function explain(error) {
  const detail = error.message ? ` (${error.message})` : '';
  switch (error.code) {
    case 'UNAUTHENTICATED': return 'Токен не действует: он неверен, истёк или отозван.';
    case 'FORBIDDEN': return 'Вашей роли это действие не разрешено.';
    case 'NOT_FOUND': return 'Обращение не найдено или вам недоступно.';
    case 'VALIDATION': return `Данные не приняты${detail}.`;
    case 'INVALID_TRANSITION': return `В нынешнем состоянии обращения так нельзя${detail}.`;
    case 'VERSION_CONFLICT': return 'Обращение успели изменить.';
    case 'RATE_LIMITED': return 'Слишком много запросов подряд: подождите несколько секунд и повторите.';
    case 'SERVICE_UNAVAILABLE': return 'Сервер перегружен или база данных недоступна: повторите чуть позже.';
    case 'NETWORK': return 'Нет связи с сервером: проверьте сеть и повторите.';
    default: return `Не получилось${detail}.`;
  }
}

/** A message box: `kind` is `error`, `ok` or `info`; errors are announced at once. */
export function message(kind, ...children) {
  return h('div', { class: `message message-${kind}`, role: kind === 'error' ? 'alert' : 'status' }, ...children);
}

/** Runs `action` with `button` disabled, so one click sends one request. */
export async function busy(button, action) {
  button.disabled = true;
  button.setAttribute('aria-busy', 'true');
  try {
    return await action();
  } finally {
    button.disabled = false;
    button.removeAttribute('aria-busy');
  }
}

/** The values of a form's named fields. */
export function formValues(form) {
  return Object.fromEntries(new FormData(form).entries());
}

/** The route in the address: `#/appeal/42?x=1` is `{ path: ['appeal', '42'], params }`. */
export function currentRoute() {
  const hash = location.hash.replace(/^#\/?/, '');
  const [path, query] = hash.split('?', 2);
  return { path: path.split('/').filter(Boolean).map(decodeURIComponent), params: new URLSearchParams(query ?? '') };
}

/** The address of a route, with the parameters that are set. */
export function href(path, params = {}) {
  const query = new URLSearchParams();
  for (const [name, value] of Object.entries(params)) {
    if (value !== undefined && value !== null && value !== '') query.set(name, value);
  }
  const text = query.toString();
  return `#/${path.map(encodeURIComponent).join('/')}${text ? `?${text}` : ''}`;
}

export function go(path, params) {
  location.hash = href(path, params);
}
