// The console's frame: sign-in, the header with who is signed in, the sections
// each role has, and the route (the part of the address after `#`) that picks
// the page. Each page is a module whose `show(main, route)` renders into
// <main> and returns a function that stops what it started (subscriptions).

import { ApiError, request, session, signIn, signOut, whenSignedOut } from './api.js';
import { ROLE, currentRoute, explain, go, h, href, inputField, message, replace } from './ui.js';
import * as inbox from './inbox.js';
import * as appeal from './appeal.js';
import * as dashboard from './dashboard.js';
import * as audit from './audit.js';
import * as intake from './intake.js';

const main = document.getElementById('main');
const nav = document.getElementById('nav');
const who = document.getElementById('who');

/** The sections of each role, the first its home. */
const SECTIONS = {
  ASSISTANT: ['inbox', 'dashboard', 'new'],
  HEAD: ['inbox', 'dashboard', 'new'],
  GOVERNOR_OFFICE: ['dashboard', 'inbox', 'new'],
  AUDITOR: ['audit', 'inbox', 'dashboard'],
  INTAKE: ['new'],
  ADMIN: ['admin'],
};

const SECTION_TITLES = {
  inbox: 'Обращения', dashboard: 'Сводка', new: 'Новое обращение', audit: 'Аудит', admin: 'Администрирование',
};

const PAGES = { inbox, appeal, dashboard, audit, new: intake };

let stopPage = () => {};
let signInNotice = null;

whenSignedOut((reason) => {
  signOut();
  signInNotice = reason;
  if (currentRoute().path[0] === 'sign-in') render();
  else go(['sign-in']);
});

function sections() {
  return SECTIONS[session.me?.role] ?? [];
}

function renderHeader() {
  const current = currentRoute().path[0];
  replace(nav, session.me
    ? h('ul', {}, sections().map((section) => h('li', {},
      h('a', { href: href([section]), 'aria-current': section === current ? 'page' : undefined }, SECTION_TITLES[section]))))
    : null);
  if (!session.me) {
    replace(who);
    return;
  }
  const { name, role, municipality } = session.me;
  replace(who,
    h('span', { class: 'who', id: 'signed-in-as' },
      h('strong', {}, name), ' · ', ROLE[role] ?? role, municipality ? ` · ${municipality.name}` : ''),
    h('button', { type: 'button', class: 'quiet', id: 'sign-out', onclick: () => {
      signOut();
      signInNotice = 'Вы вышли. Токен стёрт из этой вкладки.';
      go(['sign-in']);
    } }, 'Выйти'));
}

function showSignIn() {
  const notice = signInNotice;
  signInNotice = null;
  const feedback = h('div', { id: 'sign-in-feedback' }, notice ? message('info', notice) : null);
  const form = h('form', { class: 'card narrow', id: 'sign-in-form', 'aria-labelledby': 'sign-in-title' },
    h('h1', { id: 'sign-in-title' }, 'Вход в консоль обращений'),
    h('p', {}, 'Вставьте токен доступа, который вам выдал администратор. Токен хранится только в этой вкладке браузера и стирается, когда вы её закроете или нажмёте «Выйти».'),
    inputField('token', 'Токен доступа', { type: 'password', autocomplete: 'off', required: true, spellcheck: 'false' }),
    feedback,
    h('button', { type: 'submit', class: 'primary' }, 'Войти'));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const token = form.elements.token.value.trim();
    const button = form.querySelector('button');
    button.disabled = true;
    try {
      const { me } = await request('Me', {}, token);
      signIn(token, me);
      const wanted = sessionStorage.getItem('appeals.after-sign-in');
      sessionStorage.removeItem('appeals.after-sign-in');
      location.hash = wanted ?? href([sections()[0]]);
    } catch (error) {
      replace(feedback, message('error', error instanceof ApiError ? explain(error) : String(error)));
      form.elements.token.focus();
    } finally {
      button.disabled = false;
    }
  });
  replace(main, form);
  form.elements.token.focus();
  return () => {};
}

function showAdmin() {
  replace(main, h('section', { class: 'card' },
    h('h1', {}, 'Администрирование'),
    h('p', {}, 'Муниципалитеты, пользователи, каналы и тексты ответов настраиваются командами сервера (appeals user add, appeals channel set…) или мутациями GraphQL в GraphiQL.'),
    h('p', {}, h('a', { href: '/graphql' }, 'Открыть GraphiQL'))));
  return () => {};
}

function showNotFound() {
  replace(main, h('section', { class: 'card' }, h('h1', {}, 'Такой страницы нет'),
    h('p', {}, h('a', { href: href([sections()[0]]) }, 'На главную'))));
  return () => {};
}

/** The signed-in user, from the token this tab kept, or null. */
async function restoreSession() {
  if (session.me || !session.token) return session.me;
  try {
    const { me } = await request('Me');
    session.me = me;
  } catch (error) {
    if (error instanceof ApiError && error.code === 'UNAUTHENTICATED') {
      signOut();
      signInNotice = 'Сеанс завершён: ваш токен больше не действует. Войдите снова.';
    } else {
      replace(main, message('error', explain(error)));
      throw error;
    }
  }
  return session.me;
}

async function render() {
  stopPage();
  stopPage = () => {};
  const route = currentRoute();
  const me = await restoreSession();
  renderHeader();
  if (!me) {
    if (route.path[0] && route.path[0] !== 'sign-in') sessionStorage.setItem('appeals.after-sign-in', location.hash);
    document.title = 'Вход · Обращения';
    stopPage = showSignIn();
    return;
  }
  const [section] = route.path;
  if (!section || section === 'sign-in') {
    go([sections()[0]]);
    return;
  }
  document.title = `${SECTION_TITLES[section] ?? 'Обращение'} · Обращения`;
  const page = section === 'admin' ? { show: showAdmin } : PAGES[section];
  stopPage = page ? page.show(main, route) ?? (() => {}) : showNotFound();
}

document.getElementById('skip').addEventListener('click', (event) => {
  event.preventDefault();
  main.focus();
});
window.addEventListener('hashchange', () => {
  render();
  main.focus({ preventScroll: true });
});
render();
