// Registering an appeal that came by phone, in person, by post or by e-mail:
// `submitAppeal`, for the roles that may (intake, the governor's office, and
// assistants and heads for their own municipality).

import { ApiError, municipalities, request, session } from './api.js';
import { CHANNEL, busy, explain, formValues, h, href, inputField, message, replace, selectField, textField } from './ui.js';

/** Channels a person registers by hand; messengers' appeals arrive by their webhooks. */
const BY_HAND = ['PHONE', 'IN_PERSON', 'POST', 'EMAIL', 'WEB'];

export function show(main) {
  const own = session.me.municipality;
  const municipality = own
    ? h('p', {}, `Муниципалитет: ${own.name}`)
    : selectField('intake-municipality', 'Муниципалитет', [['', 'Загрузка…']], '', { required: true });
  const feedback = h('div', { id: 'intake-feedback', tabindex: '-1' });
  const form = h('form', { class: 'card narrow', id: 'intake-form', 'aria-labelledby': 'intake-title' },
    h('h1', { id: 'intake-title' }, 'Новое обращение'),
    municipality,
    selectField('intake-channel', 'Как поступило', BY_HAND.map((channel) => [channel, CHANNEL[channel]]), 'PHONE'),
    inputField('intake-author', 'Автор (ФИО)', { autocomplete: 'off', maxlength: 200 }),
    inputField('intake-contact', 'Как связаться с автором', { autocomplete: 'off', maxlength: 200 }),
    textField('intake-text', 'Текст обращения', { required: true, rows: 8, maxlength: 20000 }),
    feedback,
    h('button', { type: 'submit', class: 'primary' }, 'Зарегистрировать'));
  replace(main, form);
  if (!own) {
    municipalities().then((list) => replace(form.elements['intake-municipality'],
      h('option', { value: '' }, 'Выберите…'), list.map(({ code, name }) => h('option', { value: code }, name))))
      .catch((error) => replace(feedback, message('error', explain(error))));
  }
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const values = formValues(form);
    const input = {
      municipalityCode: own ? own.code : values['intake-municipality'],
      channel: values['intake-channel'],
      text: values['intake-text'].trim(),
    };
    if (values['intake-author'].trim()) input.authorName = values['intake-author'].trim();
    if (values['intake-contact'].trim()) input.authorContact = values['intake-contact'].trim();
    await busy(form.querySelector('button[type=submit]'), async () => {
      try {
        const { submitAppeal } = await request('SubmitAppeal', { input });
        const readable = session.me.role !== 'INTAKE';
        form.reset();
        replace(feedback, message('ok', `Зарегистрировано обращение № ${submitAppeal.appeal.number}. `,
          readable ? h('a', { href: href(['appeal', submitAppeal.appeal.id]) }, 'Открыть') : null));
      } catch (error) {
        replace(feedback, message('error', error instanceof ApiError ? explain(error) : String(error)));
      }
      feedback.focus();
    });
  });
  return () => {};
}
