//! The console (`/`) in a real browser: Debian's Chromium, headless, driven over
//! WebDriver, against the real server on both databases, with every host but
//! 127.0.0.1 unresolvable and every request to anywhere else caught by a
//! recording proxy. Each test ends by checking that nothing was asked of another
//! host and that the page's policy refused nothing. Screenshots of the main pages
//! are kept in `target/screenshots/` (the README's come from there).

use std::time::{Duration, Instant};

use appeals_core::Role;
use appeals_core::text::{MunicipalityCode, PersonName};
use appeals_storage::testing::{Backend, on_both_databases};
use sea_orm::{ConnectionTrait, Database};
use serde_json::{Value, json};

use crate::channels::{Setup, TELEGRAM_PHOTO, example};
use crate::support::browser::Browser;
use crate::support::{TestApp, spawn_app_with};

on_both_databases!(
    each_role_signs_in_to_its_own_sections_and_out_again,
    a_revoked_token_returns_the_person_to_sign_in,
    the_head_marks_seen_and_the_assistant_triages_and_resolves,
    a_version_conflict_is_explained_and_the_page_refreshes,
    the_dashboard_shows_the_apis_numbers_and_leads_to_the_overdue_appeals,
    a_new_appeal_appears_in_the_inbox_within_two_seconds,
    the_auditor_sees_a_verified_chain_and_a_broken_one,
    every_page_fits_a_phone_without_scrolling_sideways,
    the_console_works_against_a_server_that_runs_only_trusted_documents,
    replies_show_their_delivery_a_failed_one_is_sent_again_and_attachments_are_listed,
    a_residents_markup_is_shown_as_text_and_never_runs,
);

const APPEAL: &str = "query($id: ID!) { appeal(id: $id) { status priority category tags version \
    resolution { outcome response } } }";
const MARK_SEEN: &str =
    "mutation($id: ID!, $v: Int!) { markSeen(id: $id, expectedVersion: $v) { appeal { version } } }";
const TRIAGE: &str = "mutation($id: ID!, $v: Int!, $input: TriageAppealInput!) { \
    triageAppeal(id: $id, expectedVersion: $v, input: $input) { appeal { version } } }";
const RESOLVE: &str = "mutation($id: ID!, $v: Int!) { resolveAppeal(id: $id, expectedVersion: $v, \
    input: { outcome: EXPLAINED, response: \"Ответили\" }) { appeal { version } } }";
const SUBMIT: &str = "mutation($input: SubmitAppealInput!) { submitAppeal(input: $input) { appeal { id number } } }";
const ME: &str = "{ me { id name } }";
const CREATE_USER: &str = "mutation($input: CreateUserInput!) { createUser(input: $input) { user { id } token } }";
const REVOKE_USER: &str = "mutation($id: ID!) { revokeUser(id: $id) { user { revoked } } }";
const DASHBOARD: &str = "{ dashboard { total received overdue seenOverdue resolved municipalities { \
    municipality { code name } total received seen resolved overdue seenOverdue medianHoursToSeen medianHoursToResolve } } }";

/// A server on `backend` and its database's URL, or `None` without PostgreSQL.
async fn start(backend: Backend) -> Option<(TestApp, String)> {
    let mut url = String::new();
    let app = spawn_app_with(backend, |config| url.clone_from(&config.database_url)).await?;
    Some((app, url))
}

/// What the API answers, which must hold no error.
async fn data(app: &TestApp, token: &str, query: &str, variables: Value) -> Value {
    let response = app.graphql(Some(token), query, variables).await;
    assert!(response["errors"].is_null(), "{query}: {response}");
    response["data"].clone()
}

async fn appeal(app: &TestApp, token: &str, id: &str) -> Value {
    data(app, token, APPEAL, json!({ "id": id })).await["appeal"].clone()
}

/// A user with a person's name (what the console's header shows), and their token.
async fn person(app: &TestApp, role: Role, municipality: Option<&str>, name: &str) -> String {
    let code = municipality.map(|code| MunicipalityCode::parse(code).expect("a valid code"));
    let name = PersonName::parse(name).expect("a valid name");
    let (_, token) = app.store.create_user(name, role, code.as_ref()).await.expect("the user should be created");
    token.expose().to_owned()
}

/// A resident's message from a messenger, registered as the intake bot does;
/// returns `submitAppeal.appeal`.
async fn from_resident(
    app: &TestApp,
    intake: &str,
    municipality: &str,
    channel: &str,
    author: &str,
    text: &str,
) -> Value {
    let input = json!({ "municipalityCode": municipality, "channel": channel, "authorName": author, "text": text });
    data(app, intake, SUBMIT, json!({ "input": input })).await["submitAppeal"]["appeal"].clone()
}

/// The screenshots the README shows.
const README_SCREENSHOTS: [&str; 4] = ["inbox", "appeal", "dashboard", "appeal-phone"];

/// Saves the page as `target/screenshots/<name>-<database>.png`. With
/// `APPEALS_UPDATE_SCREENSHOTS=1`, SQLite's of [`README_SCREENSHOTS`] also
/// becomes the README's `docs/screenshots/<name>.png`.
async fn screenshot(browser: &Browser, backend: Backend, name: &str) {
    let database = if backend == Backend::Sqlite { "sqlite" } else { "postgres" };
    let path = browser.screenshot(&format!("{name}-{database}")).await;
    let for_readme = backend == Backend::Sqlite && README_SCREENSHOTS.contains(&name);
    if for_readme && std::env::var_os("APPEALS_UPDATE_SCREENSHOTS").is_some() {
        let readme = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs").join("screenshots");
        std::fs::create_dir_all(&readme).expect("docs/screenshots");
        std::fs::copy(&path, readme.join(format!("{name}.png"))).expect("the README's screenshot");
    }
}

/// Signs in with `token` on the console's sign-in page and waits for the header.
async fn sign_in(browser: &Browser, app: &TestApp, token: &str) {
    browser.goto(&format!("{}/", app.address)).await;
    browser.fill("#token", token).await;
    browser.click("#sign-in-form button[type=submit]").await;
    browser.wait_for("#signed-in-as").await;
}

async fn each_role_signs_in_to_its_own_sections_and_out_again(backend: Backend) {
    let Some((app, _)) = start(backend).await else { return };
    let Some(browser) = Browser::start().await else { return };
    let sections = [
        (Role::Assistant, Some("tomsk"), "Помощник главы", vec!["Обращения", "Сводка", "Новое обращение"]),
        (Role::Head, Some("tomsk"), "Глава", vec!["Обращения", "Сводка", "Новое обращение"]),
        (Role::GovernorOffice, None, "Аппарат губернатора", vec!["Сводка", "Обращения", "Новое обращение"]),
        (Role::Auditor, None, "Аудитор", vec!["Аудит", "Обращения", "Сводка"]),
        (Role::Intake, None, "Регистратор", vec!["Новое обращение"]),
        (Role::Admin, None, "Администратор", vec!["Администрирование"]),
    ];
    for (role, municipality, role_name, expected) in sections {
        let token = app.token(role, municipality).await;
        let name = data(&app, &token, ME, json!({})).await["me"]["name"].as_str().expect("a name").to_owned();
        sign_in(&browser, &app, &token).await;
        let header = browser.text("#signed-in-as").await;
        assert!(header.contains(&name) && header.contains(role_name), "{role}: the header says {header:?}");
        if municipality.is_some() {
            assert!(header.contains("Город Томск"), "{role}: the header names no municipality: {header:?}");
        }
        assert_eq!(browser.texts("#nav a").await, expected, "{role}'s sections");
        assert_eq!(
            browser.eval("return sessionStorage.getItem('appeals.token')").await,
            json!(token),
            "the token is kept for the tab's session"
        );
        browser.click("#sign-out").await;
        browser.wait_for_text("#sign-in-feedback", "Вы вышли").await;
        assert_eq!(browser.eval("return sessionStorage.getItem('appeals.token')").await, Value::Null);
    }

    browser.fill("#token", "apl_not_a_token").await;
    browser.click("#sign-in-form button[type=submit]").await;
    browser.wait_for_text("#sign-in-feedback", "Токен не действует").await;
    browser.finish().await;
}

async fn a_revoked_token_returns_the_person_to_sign_in(backend: Backend) {
    let Some((app, _)) = start(backend).await else { return };
    let Some(browser) = Browser::start().await else { return };
    let admin = app.token(Role::Admin, None).await;
    let created = data(
        &app,
        &admin,
        CREATE_USER,
        json!({ "input": { "name": "Анна Помощникова", "role": "ASSISTANT", "municipalityCode": "tomsk" } }),
    )
    .await;
    let token = created["createUser"]["token"].as_str().expect("a token");
    sign_in(&browser, &app, token).await;
    browser.wait_for_text("#live-state", "появляются сами").await;

    data(&app, &admin, REVOKE_USER, json!({ "id": created["createUser"]["user"]["id"] })).await;
    // The open subscription is closed by the server (4403), which signs the
    // person out without waiting for their next click.
    browser.wait_for_text("#sign-in-feedback", "Сеанс завершён").await;
    assert_eq!(browser.eval("return sessionStorage.getItem('appeals.token')").await, Value::Null);
    browser.finish().await;
}

async fn the_head_marks_seen_and_the_assistant_triages_and_resolves(backend: Backend) {
    let Some((app, _)) = start(backend).await else { return };
    let Some(browser) = Browser::start().await else { return };
    let intake = person(&app, Role::Intake, None, "Бот «Открытый Томск»").await;
    let head = person(&app, Role::Head, Some("tomsk"), "Сергей Орлов").await;
    let assistant = person(&app, Role::Assistant, Some("tomsk"), "Анна Соколова").await;
    let text = "Третью неделю не горят фонари на улице Лебедева от дома 7 до остановки. \
                Вечером идти страшно, дети возвращаются из школы в темноте.";
    let id = from_resident(&app, &intake, "tomsk", "TELEGRAM", "Ольга Миронова", text).await["id"]
        .as_str()
        .expect("an id")
        .to_owned();

    sign_in(&browser, &app, &head).await;
    browser.click(&format!("#appeal-list [data-id='{id}'] a")).await;
    browser.wait_for_text("#appeal-text", "не горят фонари").await;
    screenshot(&browser, backend, "appeal-received").await;
    browser.click("#mark-seen").await;
    browser.wait_for_text("#appeal-notices", "прочитали").await;
    assert_eq!(appeal(&app, &head, &id).await["status"], "SEEN");
    browser.click("#sign-out").await;

    sign_in(&browser, &app, &assistant).await;
    browser.goto(&format!("{}/#/appeal/{id}", app.address)).await;
    browser.wait_for("#resolve-form").await;
    assert!(browser.texts("#mark-seen").await.is_empty(), "only the head marks an appeal seen");
    browser.click("#actions details:has(#triage-form) summary").await;
    browser.select("#triage-priority", "HIGH").await;
    browser.fill("#triage-category", "Освещение").await;
    browser.fill("#triage-tags", "фонари, улица Лебедева").await;
    browser.click("#triage-form button[type=submit]").await;
    browser.wait_for_text("#appeal-notices", "Разбор сохранён").await;
    let triaged = appeal(&app, &assistant, &id).await;
    assert_eq!(triaged["priority"], "HIGH");
    assert_eq!(triaged["category"], "Освещение");
    assert_eq!(triaged["tags"], json!(["фонари", "улица Лебедева"]));

    browser.select("#resolve-outcome", "SATISFIED").await;
    browser.fill("#resolve-response", "Фонари починили 5 декабря").await;
    browser.click("#resolve-form button[type=submit]").await;
    browser.wait_for_text("#appeal-notices", "Обращение решено").await;
    let resolved = appeal(&app, &assistant, &id).await;
    assert_eq!(resolved["status"], "RESOLVED");
    assert_eq!(resolved["resolution"], json!({ "outcome": "SATISFIED", "response": "Фонари починили 5 декабря" }));
    browser.wait_for_text("#history", "Решено").await;
    screenshot(&browser, backend, "appeal").await;
    browser.finish().await;
}

async fn a_version_conflict_is_explained_and_the_page_refreshes(backend: Backend) {
    let Some((app, _)) = start(backend).await else { return };
    let Some(browser) = Browser::start().await else { return };
    let intake = app.token(Role::Intake, None).await;
    let head = app.token(Role::Head, Some("tomsk")).await;
    let assistant = app.token(Role::Assistant, Some("tomsk")).await;
    let id = app.submit(&intake, "tomsk", "Сломана скамейка во дворе").await["id"].as_str().expect("an id").to_owned();
    data(&app, &head, MARK_SEEN, json!({ "id": id, "v": 1 })).await;

    sign_in(&browser, &app, &assistant).await;
    browser.goto(&format!("{}/#/appeal/{id}", app.address)).await;
    browser.wait_for("#resolve-form").await;
    browser.fill("#resolve-response", "Скамейку заменят весной").await;
    // A colleague changes the appeal while the page shows version 2.
    data(&app, &head, TRIAGE, json!({ "id": id, "v": 2, "input": { "priority": "URGENT" } })).await;
    browser.click("#resolve-form button[type=submit]").await;

    browser.wait_for("#conflict").await;
    let explanation = browser.text("#conflict").await;
    assert!(explanation.contains("изменил другой сотрудник"), "{explanation}");
    assert!(explanation.contains("Разобрано"), "the colleague's event is named: {explanation}");
    assert!(explanation.contains("Приоритет: было «Обычный», стало «Срочный»"), "{explanation}");
    assert_eq!(appeal(&app, &head, &id).await["status"], "SEEN", "the stale command changed nothing");
    // The page shows the appeal as it now stands, and kept the response typed.
    browser.wait_for_text(".badges", "Срочный").await;
    assert_eq!(
        browser.eval("return document.querySelector('#resolve-response').value").await,
        json!("Скамейку заменят весной")
    );
    screenshot(&browser, backend, "conflict").await;

    browser.click("#resolve-form button[type=submit]").await;
    browser.wait_for_text("#appeal-notices", "Обращение решено").await;
    assert_eq!(appeal(&app, &head, &id).await["resolution"]["response"], "Скамейку заменят весной");
    browser.finish().await;
}

/// Appeals in six municipalities: some read, some resolved, and three made
/// overdue (one in Tomsk, two in Seversk) by moving their deadlines into the past in the database.
async fn seed_region(app: &TestApp, url: &str) -> (String, String) {
    let intake = person(app, Role::Intake, None, "Бот «Открытый Томск»").await;
    let mut overdue = Vec::new();
    let counts =
        [("tomsk", 7), ("seversk", 4), ("tomsky", 3), ("asinovsky", 3), ("kolpashevsky", 2), ("strezhevoy", 1)];
    for (municipality, count) in counts {
        let head = app.token(Role::Head, Some(municipality)).await;
        for n in 0..count {
            let submitted = app.submit(&intake, municipality, &format!("Обращение {n} в {municipality}")).await;
            let id = submitted["id"].as_str().expect("an id").to_owned();
            if n % 2 == 1 {
                data(app, &head, MARK_SEEN, json!({ "id": id, "v": 1 })).await;
                if n == 3 {
                    data(app, &head, RESOLVE, json!({ "id": id, "v": 2 })).await;
                }
            } else if (municipality, n) == ("tomsk", 2) || municipality == "seversk" {
                overdue.push(submitted["number"].as_str().expect("a number").to_owned());
            }
        }
    }
    let database = Database::connect(url).await.expect("the test's database");
    let numbers = overdue.iter().map(|number| format!("'{number}'")).collect::<Vec<_>>().join(", ");
    database
        .execute_unprepared(&format!(
            "UPDATE appeal SET due_at = received_at, seen_due_at = received_at WHERE number IN ({numbers})"
        ))
        .await
        .expect("the deadlines move");
    (intake, person(app, Role::GovernorOffice, None, "Мария Ковалёва").await)
}

async fn the_dashboard_shows_the_apis_numbers_and_leads_to_the_overdue_appeals(backend: Backend) {
    let Some((app, url)) = start(backend).await else { return };
    let Some(browser) = Browser::start().await else { return };
    let (_, governor) = seed_region(&app, &url).await;
    let api = data(&app, &governor, DASHBOARD, json!({})).await["dashboard"].clone();
    assert_eq!(api["overdue"], 3, "the seed made three appeals overdue: {api}");

    sign_in(&browser, &app, &governor).await;
    browser.goto(&format!("{}/#/dashboard?period=all", app.address)).await;
    browser.wait_for("#dashboard-table tbody tr").await;
    browser.wait_for("#chart-statuses").await;
    for key in ["total", "received", "overdue", "seenOverdue", "resolved"] {
        let shown = browser.text(&format!("#dashboard-totals [data-key={key}] .total-value")).await;
        assert_eq!(shown, api[key].to_string(), "the total {key}");
    }
    let rows = api["municipalities"].as_array().expect("municipalities");
    assert_eq!(browser.texts("#dashboard-table tbody tr").await.len(), rows.len(), "a row per municipality");
    for row in rows {
        let code = row["municipality"]["code"].as_str().expect("a code");
        for key in
            ["total", "received", "overdue", "seenOverdue", "resolved", "medianHoursToSeen", "medianHoursToResolve"]
        {
            let shown = browser.text(&format!("#dashboard-table tr[data-code={code}] td[data-key={key}]")).await;
            let expected = match &row[key] {
                Value::Null => "—".to_owned(),
                Value::Number(number) => format_russian(number.as_f64().expect("a number")),
                other => panic!("{key} is {other}"),
            };
            assert_eq!(shown, expected, "{code}'s {key}");
        }
    }
    // Sorted by overdue, most first, by default; a click on a heading sorts by it.
    assert_eq!(browser.text("#dashboard-table tbody tr th").await, "ЗАТО Северск", "first by overdue");
    browser.click("button[data-sort=total]").await;
    browser.wait_for_text("#dashboard-table tbody tr:first-child th", "Город Томск").await;
    screenshot(&browser, backend, "dashboard").await;

    let tomsk = rows.iter().find(|row| row["municipality"]["code"] == "tomsk").expect("Tomsk's row");
    browser.click("#dashboard-table tr[data-code=tomsk] td[data-key=received] a").await;
    browser.wait_for_text("#inbox-count", &format!("Найдено: {}", tomsk["received"])).await;
    assert_eq!(browser.eval("return document.querySelector('#status').value").await, json!("RECEIVED"));
    browser.goto(&format!("{}/#/dashboard?period=all", app.address)).await;
    browser.click("#dashboard-table tr[data-code=seversk] td[data-key=overdue] a").await;
    browser.wait_for("#appeal-list").await;
    browser.wait_for_text("#inbox-count", "Найдено: 2").await;
    assert_eq!(browser.eval("return document.querySelector('#m').value").await, json!("seversk"));
    assert_eq!(browser.eval("return document.querySelector('#overdue').value").await, json!("1"));
    assert!(browser.text("#appeal-list").await.contains("Обращение 0 в seversk"));
    browser.finish().await;
}

/// A number as the console shows it (Russian, at most one decimal).
fn format_russian(value: f64) -> String {
    let rounded = (value * 10.0).round() / 10.0;
    let text = if rounded.fract() == 0.0 { format!("{rounded:.0}") } else { format!("{rounded:.1}").replace('.', ",") };
    let (integer, fraction) = text.split_once(',').map_or((text.as_str(), None), |(i, f)| (i, Some(f)));
    // Intl groups thousands with a no-break space from 10 000 up in Russian.
    let grouped = if integer.len() > 4 {
        let (head, tail) = integer.split_at(integer.len() - 3);
        format!("{head}\u{a0}{tail}")
    } else {
        integer.to_owned()
    };
    fraction.map_or(grouped.clone(), |fraction| format!("{grouped},{fraction}"))
}

async fn a_new_appeal_appears_in_the_inbox_within_two_seconds(backend: Backend) {
    let Some((app, _)) = start(backend).await else { return };
    let Some(browser) = Browser::start().await else { return };
    let intake = person(&app, Role::Intake, None, "Бот «Открытый Томск»").await;
    let assistant = person(&app, Role::Assistant, Some("tomsk"), "Анна Соколова").await;
    let head = person(&app, Role::Head, Some("tomsk"), "Сергей Орлов").await;
    let earlier = [
        (
            "VK",
            "Пётр Иванов",
            "Во дворе дома 15 по улице Нахимова после ремонта теплотрассы осталась яма глубиной полметра.",
        ),
        ("TELEGRAM", "Елена Смирнова", "Прошу установить пешеходный переход у школы № 32: дети перебегают дорогу."),
        ("MAX", "Андрей Кузнецов", "Автобус № 12 по утрам не приходит по расписанию, люди опаздывают на работу."),
    ];
    for (n, (channel, author, text)) in earlier.into_iter().enumerate() {
        let appeal = from_resident(&app, &intake, "tomsk", channel, author, text).await;
        if n == 1 {
            data(&app, &head, MARK_SEEN, json!({ "id": appeal["id"], "v": 1 })).await;
            data(&app, &assistant, TRIAGE, json!({ "id": appeal["id"], "v": 2, "input": { "priority": "HIGH" } }))
                .await;
        }
    }
    sign_in(&browser, &app, &assistant).await;
    browser.wait_for("#appeal-list").await;
    browser.wait_for_text("#live-state", "появляются сами").await;

    let submitted = Instant::now();
    let flooded =
        "Затопило подвал дома 12 на Красноармейской, вода стоит уже второй день. Управляющая компания не отвечает.";
    let id = from_resident(&app, &intake, "tomsk", "VK", "Ольга Миронова", flooded).await["id"]
        .as_str()
        .expect("an id")
        .to_owned();
    browser.wait_for_within(&format!("#appeal-list li.is-new[data-id='{id}']"), Duration::from_secs(2)).await;
    let shown = submitted.elapsed();
    assert_eq!(browser.text("#inbox-count").await, "Найдено: 4");
    assert!(browser.text("#appeal-list li:first-child").await.contains("Затопило подвал"), "newest first");
    // Another municipality's appeal is not the assistant's, and does not appear.
    app.submit(&intake, "seversk", "Чужое обращение").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(browser.text("#inbox-count").await, "Найдено: 4");
    screenshot(&browser, backend, "inbox").await;
    println!("the new appeal was shown {} ms after it was submitted", shown.as_millis());

    // A registration number, as a person copies it, opens that appeal.
    let number = browser.text(&format!("#appeal-list li[data-id='{id}'] .appeal-number")).await;
    browser.fill("#q", &number.to_lowercase()).await;
    browser.click("#inbox-filters button[type=submit]").await;
    browser.wait_for_text("#appeal-text", "Затопило подвал").await;
    browser.finish().await;
}

async fn the_auditor_sees_a_verified_chain_and_a_broken_one(backend: Backend) {
    let Some((app, url)) = start(backend).await else { return };
    let Some(browser) = Browser::start().await else { return };
    let intake = app.token(Role::Intake, None).await;
    let head = app.token(Role::Head, Some("tomsk")).await;
    let auditor = app.token(Role::Auditor, None).await;
    let mut appeals = Vec::new();
    for n in 0..3 {
        let submitted = app.submit(&intake, "tomsk", &format!("Обращение для аудита {n}")).await;
        data(&app, &head, MARK_SEEN, json!({ "id": submitted["id"], "v": 1 })).await;
        appeals.push(submitted);
    }

    sign_in(&browser, &app, &auditor).await;
    browser.wait_for("#audit-lookup").await;
    browser.fill("#audit-number", appeals[0]["number"].as_str().expect("a number")).await;
    browser.click("#audit-lookup button[type=submit]").await;
    browser.wait_for_text("#audit-verdict", "Цепочка цела").await;
    assert!(browser.text("#audit-verdict").await.contains("Проверено событий: 2"));
    assert_eq!(browser.texts("#audit-history tbody tr").await.len(), 2);

    browser.click("#verify-region").await;
    browser.wait_for_text("#region-status", "Готово").await;
    assert!(
        browser.text("#region-status").await.contains("проверено 3, все цепочки целы"),
        "{}",
        browser.text("#region-status").await
    );

    // Someone edits a note in the database behind the engine's back.
    let broken = appeals[1]["number"].as_str().expect("a number");
    let database = Database::connect(&url).await.expect("the test's database");
    database
        .execute_unprepared(&format!(
            "UPDATE appeal_event SET data = REPLACE(data, 'аудита', 'подлога') \
             WHERE seq = 1 AND appeal_id = (SELECT id FROM appeal WHERE number = '{broken}')"
        ))
        .await
        .expect("the tampering");
    browser.click("#verify-region").await;
    browser.wait_for_text("#region-status", "нарушений: 1").await;
    browser.click("#region-broken a").await;
    browser.wait_for_text("#audit-verdict", "Цепочка нарушена на событии № 1").await;
    screenshot(&browser, backend, "audit-broken").await;
    browser.finish().await;
}

async fn every_page_fits_a_phone_without_scrolling_sideways(backend: Backend) {
    let Some((app, url)) = start(backend).await else { return };
    let Some(browser) = Browser::start().await else { return };
    let (intake, governor) = seed_region(&app, &url).await;
    let long = "Длинноеслово".repeat(20);
    let id = app.submit(&intake, "tomsk", &format!("{long} и ссылка example.org/{long}")).await["id"]
        .as_str()
        .expect("an id")
        .to_owned();
    let head = person(&app, Role::Head, Some("tomsk"), "Сергей Орлов").await;
    let text = "На остановке «Площадь Ленина» сломан павильон: выбито стекло, осколки лежат на тротуаре. \
                Прошу убрать осколки и заменить стекло, пока никто не поранился.";
    let broken_stop = from_resident(&app, &intake, "tomsk", "TELEGRAM", "Дмитрий Волков", text).await["id"]
        .as_str()
        .expect("an id")
        .to_owned();
    browser.set_viewport(360, 740).await;

    browser.goto(&format!("{}/", app.address)).await;
    browser.wait_for("#sign-in-form").await;
    fits(&browser, "sign-in").await;
    sign_in(&browser, &app, &head).await;
    browser.wait_for("#appeal-list").await;
    fits(&browser, "the inbox").await;
    screenshot(&browser, backend, "inbox-phone").await;
    browser.goto(&format!("{}/#/appeal/{id}", app.address)).await;
    browser.wait_for("#appeal-text").await;
    fits(&browser, "an appeal with a 240-letter word").await;
    browser.goto(&format!("{}/#/appeal/{broken_stop}", app.address)).await;
    browser.wait_for_text("#appeal-text", "сломан павильон").await;
    fits(&browser, "an appeal").await;
    screenshot(&browser, backend, "appeal-phone").await;
    browser.click("#sign-out").await;

    sign_in(&browser, &app, &governor).await;
    browser.wait_for("#dashboard-table tbody tr").await;
    fits(&browser, "the dashboard").await;
    screenshot(&browser, backend, "dashboard-phone").await;
    browser.goto(&format!("{}/#/new", app.address)).await;
    browser.wait_for("#intake-form").await;
    fits(&browser, "a new appeal").await;
    browser.goto(&format!("{}/#/audit/{id}", app.address)).await;
    browser.wait_for("#audit-verdict").await;
    fits(&browser, "the audit").await;
    browser.finish().await;
}

async fn replies_show_their_delivery_a_failed_one_is_sent_again_and_attachments_are_listed(backend: Backend) {
    let Some(setup) = Setup::start(backend).await else { return };
    let Some(browser) = Browser::start().await else { return };
    let appeals = setup.an_acknowledgement_refused_by_a_blocked_bot().await;
    assert_eq!(appeals[0]["replies"][0]["status"], "FAILED", "{}", appeals[0]);
    let blocked_appeal = appeals[0]["id"].as_str().expect("an id").to_owned();

    sign_in(&browser, &setup.app, &setup.assistant).await;
    browser.goto(&format!("{}/#/appeal/{blocked_appeal}", setup.app.address)).await;
    browser.wait_for_text("#replies", "Не доставлено").await;
    let replies = browser.text("#replies").await;
    assert!(replies.contains("О регистрации") && replies.contains("bot was blocked by the user"), "{replies}");
    browser.click("#replies button.resend").await;
    browser.wait_for_text("#appeal-notices", "снова поставлен в очередь").await;
    assert_eq!(setup.fake.wait_for_delivered(1, Duration::from_secs(15)).await.len(), 1, "the resident got it");
    setup.settled(Duration::from_secs(10)).await;
    // Another address for the same appeal, so the page reads it again.
    browser.goto(&format!("{}/#/appeal/{blocked_appeal}?again", setup.app.address)).await;
    browser.wait_for_text("#replies", "Доставлено").await;
    assert!(browser.texts("#replies button.resend").await.is_empty(), "a delivered reply is not sent again");

    let photo = example(TELEGRAM_PHOTO);
    assert_eq!(setup.hook("telegram", "tomsk", Some("SECRET"), &photo).await.status(), 200);
    let with_photo = setup.appeals(None).await.pop().expect("the appeal with a photo");
    browser.goto(&format!("{}/#/appeal/{}", setup.app.address, with_photo["id"].as_str().expect("an id"))).await;
    browser.wait_for_text("#attachments", "Фото").await;
    browser.finish().await;
}

/// A resident writes whatever they like, markup and script included: the inbox,
/// the appeal and its history show it as the letters it is, and nothing of it
/// runs or loads.
async fn a_residents_markup_is_shown_as_text_and_never_runs(backend: Backend) {
    let Some((app, _)) = start(backend).await else { return };
    let Some(browser) = Browser::start().await else { return };
    let intake = app.token(Role::Intake, None).await;
    let assistant = app.token(Role::Assistant, Some("tomsk")).await;
    let markup =
        "<img src=\"http://203.0.113.9/x.png\" onerror=\"window.ran = 1\"><script>window.ran = 2</script><b>жирный</b>";
    let author = "<i onmouseover=\"window.ran = 3\">Иван</i>";
    let appeal = from_resident(&app, &intake, "tomsk", "TELEGRAM", author, markup).await;
    let id = appeal["id"].as_str().expect("an id");
    data(
        &app,
        &assistant,
        "mutation($id: ID!) { addNote(id: $id, text: \"<u>заметка</u>\") { event { seq } } }",
        json!({ "id": id }),
    )
    .await;

    sign_in(&browser, &app, &assistant).await;
    browser.wait_for_text("#appeal-list", "<script>").await;
    browser.goto(&format!("{}/#/appeal/{id}", app.address)).await;
    browser.wait_for_text("#appeal-text", markup).await;
    assert!(browser.text("#appeal-body").await.contains(author), "the author's name as written");
    browser.wait_for_text("#history", "<u>заметка</u>").await;
    let elements = "return document.querySelectorAll('#main img, #main script, #main b, #main i, #main u').length";
    assert_eq!(browser.eval(elements).await, json!(0), "no element was made of the resident's text");
    assert_eq!(browser.eval("return window.ran ?? null").await, Value::Null, "nothing of it ran");
    browser.finish().await;
}

/// The page is no wider than the phone's 360 px: nothing scrolls sideways.
async fn fits(browser: &Browser, page: &str) {
    let widths =
        browser.eval("return [document.documentElement.scrollWidth, document.documentElement.clientWidth]").await;
    assert_eq!(widths[1], 360, "{page}: the viewport");
    assert!(widths[0].as_u64() <= widths[1].as_u64(), "{page} scrolls sideways: {widths}");
}

async fn the_console_works_against_a_server_that_runs_only_trusted_documents(backend: Backend) {
    let manifest = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("persisted-documents.json");
    let Some(app) = spawn_app_with(backend, |config| {
        config.persisted.trusted_documents =
            Some(appeals_api::persisted::TrustedDocuments::load(&manifest).expect("the project's manifest"));
    })
    .await
    else {
        return;
    };
    let Some(browser) = Browser::start().await else { return };
    let intake = app.token(Role::Intake, None).await;
    let head = app.token(Role::Head, Some("tomsk")).await;
    let refused = app.graphql(Some(&head), "{ me { name role } }", json!({})).await;
    assert_eq!(crate::support::error_code(&refused), Some("PERSISTED_QUERY_NOT_IN_LIST"), "{refused}");
    let submit = std::fs::read_to_string(manifest.with_file_name("documents").join("SubmitAppeal.graphql"))
        .expect("the project's SubmitAppeal document");
    let input = json!({ "municipalityCode": "tomsk", "channel": "WEB", "text": "Обращение при доверенных документах" });
    data(&app, &intake, &submit, json!({ "input": input })).await;

    sign_in(&browser, &app, &head).await;
    browser.wait_for_text("#appeal-list", "при доверенных документах").await;
    browser.wait_for_text("#live-state", "появляются сами").await;
    browser.click("#appeal-list li a").await;
    browser.click("#mark-seen").await;
    browser.wait_for_text("#appeal-notices", "прочитали").await;
    browser.finish().await;
}

/// Through the real router, without a browser: the console's page names only
/// its own files, each served with the caching its URL calls for, and a browser
/// that already holds a file gets `304 Not Modified` for it.
#[tokio::test]
async fn the_console_and_its_files_come_from_the_server_with_caching_headers() {
    let app = crate::support::spawn_app(Backend::Sqlite).await.expect("SQLite needs no configuration");
    let page = app.page("/").await;
    assert_eq!(page.status(), 200, "GET /");
    let header = |response: &reqwest::Response, name: &str| {
        response.headers().get(name).and_then(|value| value.to_str().ok()).unwrap_or_default().to_owned()
    };
    let policy = header(&page, "content-security-policy");
    assert!(policy.starts_with("default-src 'none';") && policy.contains("connect-src 'self'"), "{policy}");
    let html = page.text().await.expect("a page");
    let files: Vec<&str> = html.split('"').filter(|value| value.starts_with("/console/")).collect();
    assert_eq!(files.len(), 5, "the icon, the stylesheet, graphql-ws, Chart.js and main.js: {files:?}");
    for file in files {
        let response = app.get(file).await;
        assert_eq!(response.status(), 200, "GET {file}");
        let versioned = file.contains(|character: char| character.is_ascii_digit());
        let caching = header(&response, "cache-control");
        if versioned {
            assert_eq!(caching, "public, max-age=31536000, immutable", "{file}");
        } else {
            assert_eq!(caching, "no-cache", "{file}");
        }
        let etag = header(&response, "etag");
        let again = app.client.get(format!("{}{file}", app.address)).header("if-none-match", &etag).send().await;
        assert_eq!(again.expect("an answer").status(), 304, "{file} revalidated with {etag}");
    }
    // An encoded slash reaches the handler as the name `../Cargo.toml`; names
    // are looked up among the embedded files, never on the disk.
    assert_eq!(app.get("/console/..%2FCargo.toml").await.status(), 404);
    assert_eq!(app.get("/console/console.rs").await.status(), 404);

    // The worst `If-None-Match`: thousands of tags, none of them the file's, and
    // bytes that are not text. The file is served whole, and the server goes on.
    let flood = format!("{}\"x\"", "W/\"0\", ".repeat(2_000));
    let answered =
        app.client.get(format!("{}/console/main.js", app.address)).header("if-none-match", flood).send().await;
    assert_eq!(answered.expect("an answer").status(), 200, "a flood of tags");
    let bytes = reqwest::header::HeaderValue::from_bytes(b"\"\xff\xfe\"").expect("opaque bytes are a header value");
    let answered =
        app.client.get(format!("{}/console/main.js", app.address)).header("if-none-match", bytes).send().await;
    assert_eq!(answered.expect("an answer").status(), 200, "tags that are not text");
    assert_eq!(app.get("/healthz").await.status(), 200);
}

/// axe-core 4.14.1 (Deque, MPL-2.0; `data/axe-core-4.14.1/`, as npm's tarball
/// has it), run inside the page: the WCAG 2 A and AA rules it can check, among
/// them labels, names, contrast and the document's language.
const AXE: &str = include_str!("data/axe-core-4.14.1/axe.min.js");

/// What axe finds wrong with the page as it stands, one line a rule.
async fn accessibility_violations(browser: &Browser) -> Vec<String> {
    let script = format!(
        "{AXE}\n const results = await axe.run(document, {{ runOnly: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'] }});\n\
         return results.violations.map((rule) => `${{rule.id}} (${{rule.impact}}): ${{rule.help}}: ` +\n\
           rule.nodes.slice(0, 5).map((node) => node.target.join(' ')).join(', '));"
    );
    let found = browser.eval(&script).await;
    found.as_array().expect("a list").iter().map(|line| line.as_str().unwrap_or_default().to_owned()).collect()
}

/// Every page of the console, at a desktop's width and a phone's, with nothing
/// for axe to report: every control labelled, every text readable against its
/// background, the language declared.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_page_passes_the_accessibility_checks() {
    let (app, url) = start(Backend::Sqlite).await.expect("SQLite needs no configuration");
    let Some(browser) = Browser::start().await else { return };
    let (intake, governor) = seed_region(&app, &url).await;
    let head = app.token(Role::Head, Some("tomsk")).await;
    let auditor = app.token(Role::Auditor, None).await;
    let id =
        app.submit(&intake, "tomsk", "Не вывозят мусор третью неделю").await["id"].as_str().expect("an id").to_owned();
    let mut failures = Vec::new();
    for (width, height) in [(1280, 900), (360, 740)] {
        browser.set_viewport(width, height).await;
        let mut check = async |page: &str, ready: &str| {
            browser.wait_for(ready).await;
            for violation in accessibility_violations(&browser).await {
                failures.push(format!("{page} at {width} px: {violation}"));
            }
        };
        browser.goto(&format!("{}/", app.address)).await;
        check("sign-in", "#sign-in-form").await;
        sign_in(&browser, &app, &head).await;
        check("the inbox", "#appeal-list").await;
        browser.goto(&format!("{}/#/appeal/{id}", app.address)).await;
        check("an appeal", "#mark-seen").await;
        browser.click("#actions details:has(#extend-form) summary").await;
        check("an appeal's form", "#extend-form").await;
        browser.goto(&format!("{}/#/new", app.address)).await;
        check("a new appeal", "#intake-form").await;
        browser.click("#sign-out").await;
        sign_in(&browser, &app, &governor).await;
        check("the dashboard", "#dashboard-table tbody tr").await;
        browser.click("#sign-out").await;
        sign_in(&browser, &app, &auditor).await;
        browser.goto(&format!("{}/#/audit/{id}", app.address)).await;
        check("the audit", "#audit-verdict").await;
        browser.click("#sign-out").await;
    }
    assert!(failures.is_empty(), "axe found:\n{}", failures.join("\n"));
    browser.finish().await;
}
