//! Migrations and the directory: the seeded municipalities, opening a database
//! twice, users and their tokens.

use appeals_core::text::MunicipalityName;
use appeals_core::{Role, UserId};
use appeals_storage::directory::token_digest;
use appeals_storage::testing::{Backend, POSTGRES_URL_VARIABLE, ThrowawayDatabase, on_both_databases};
use sea_orm::ConnectionTrait;

use crate::support::{Region, code, days, name, open_store, outcome, web};

on_both_databases!(
    migrations_seed_the_twenty_municipalities_of_the_tomsk_region,
    opening_a_migrated_database_again_changes_nothing,
    users_belong_to_a_municipality_exactly_when_their_role_does,
    a_token_finds_its_user_until_the_user_is_revoked,
    tokens_are_stored_only_as_digests,
    a_new_municipality_is_created_once_and_takes_part_in_everything,
    stores_opening_one_fresh_database_at_once_migrate_it_once,
    a_throwaway_database_is_gone_once_dropped,
    a_statement_outliving_the_pools_statement_timeout_is_cancelled,
);

const TOMSK_REGION: [&str; 20] = [
    "aleksandrovsky",
    "asinovsky",
    "bakcharsky",
    "chainsky",
    "kargasoksky",
    "kedrovy",
    "kolpashevsky",
    "kozhevnikovsky",
    "krivosheinsky",
    "molchanovsky",
    "parabelsky",
    "pervomaisky",
    "seversk",
    "shegarsky",
    "strezhevoy",
    "teguldetsky",
    "tomsk",
    "tomsky",
    "verkhneketsky",
    "zyryansky",
];

async fn migrations_seed_the_twenty_municipalities_of_the_tomsk_region(backend: Backend) {
    let Some(db) = ThrowawayDatabase::create(backend).await else { return };
    let store = open_store(&db).await;
    let municipalities = store.municipalities().await.expect("municipalities can be read");
    let codes: Vec<&str> = municipalities.iter().map(|m| m.code.as_str()).collect();
    assert_eq!(codes, TOMSK_REGION, "the seeded codes, in order of code");
    for (raw, expected_name) in
        [("tomsk", "Город Томск"), ("seversk", "ЗАТО Северск"), ("kedrovy", "Городской округ Кедровый")]
    {
        let found = store.municipality_by_code(&code(raw)).await.expect("a municipality can be read");
        assert_eq!(found.map(|m| m.name), Some(expected_name.to_owned()), "the name of `{raw}`");
    }
    assert_eq!(store.municipality_by_code(&code("atlantis")).await.expect("a lookup"), None, "an unknown code");
    let ids: Vec<_> = municipalities.iter().map(|m| m.id).collect();
    let mut by_ids = store.municipalities_by_ids(&ids).await.expect("municipalities by id");
    by_ids.sort_by(|a, b| a.code.cmp(&b.code));
    assert_eq!(by_ids, municipalities, "looking the municipalities up by id finds the same twenty");
}

async fn opening_a_migrated_database_again_changes_nothing(backend: Backend) {
    let Some(region) = Region::open(backend).await else { return };
    let first = region.submit("tomsk", "Нет отопления в доме").await;
    let municipalities = region.store.municipalities().await.expect("municipalities can be read");
    let migrations = region.number("SELECT COUNT(*) FROM seaql_migrations").await;
    let listed = i64::try_from(<appeals_migrations::Migrator as appeals_migrations::MigratorTrait>::migrations().len())
        .expect("a few migrations");
    assert_eq!(migrations, listed, "every migration is recorded once");

    let again = open_store(&region.db).await.with_clock(region.clock.clone());
    assert_eq!(
        again.municipalities().await.expect("municipalities"),
        municipalities,
        "the municipalities, ids included"
    );
    assert_eq!(region.number("SELECT COUNT(*) FROM seaql_migrations").await, migrations, "migrations recorded");
    assert_eq!(region.number("SELECT COUNT(*) FROM municipality").await, 20, "municipality rows");
    assert_eq!(again.appeal(first.id).await.expect("an appeal can be read"), Some(first.clone()), "the earlier appeal");
    let second = region.submit_via(&again, "tomsk", web("Нет горячей воды")).await;
    assert_eq!(
        second.number.rsplit('-').next(),
        Some("000002"),
        "the registration counter survives reopening: {} after {}",
        second.number,
        first.number
    );
}

async fn users_belong_to_a_municipality_exactly_when_their_role_does(backend: Backend) {
    let Some(region) = Region::open(backend).await else { return };
    let users_before = region.number("SELECT COUNT(*) FROM app_user").await;
    let cases: [(&str, Role, Option<&str>, &str); 12] = [
        ("a head of Tomsk", Role::Head, Some("tomsk"), "Ok"),
        ("an assistant of Kedrovy", Role::Assistant, Some("KEDROVY"), "Ok"),
        ("a governor's officer", Role::GovernorOffice, None, "Ok"),
        ("an auditor", Role::Auditor, None, "Ok"),
        ("an administrator", Role::Admin, None, "Ok"),
        ("an intake bot", Role::Intake, None, "Ok"),
        ("a head without a municipality", Role::Head, None, "Invalid(municipalityCode)"),
        ("an assistant without a municipality", Role::Assistant, None, "Invalid(municipalityCode)"),
        ("an auditor of Tomsk", Role::Auditor, Some("tomsk"), "Invalid(municipalityCode)"),
        ("a governor's officer of Tomsk", Role::GovernorOffice, Some("tomsk"), "Invalid(municipalityCode)"),
        ("an intake bot of Seversk", Role::Intake, Some("seversk"), "Invalid(municipalityCode)"),
        ("a head of an unknown municipality", Role::Head, Some("atlantis"), "Invalid(municipalityCode)"),
    ];
    let mut created = 0;
    for (case, role, municipality, expected) in cases {
        let result = region.store.create_user(name(case), role, municipality.map(code).as_ref()).await;
        assert_eq!(outcome(&result), expected, "{case}");
        let Ok((user, _token)) = result else { continue };
        created += 1;
        let expected_municipality = match municipality {
            Some(raw) => {
                Some(region.store.municipality_by_code(&code(raw)).await.expect("a lookup").expect("known").id)
            }
            None => None,
        };
        assert_eq!(
            (user.name.as_str(), user.role, user.municipality_id),
            (case, role, expected_municipality),
            "{case}"
        );
        assert_eq!(user.revoked_at, None, "{case}: a new user is active");
        let actor = user.actor();
        assert_eq!(
            (actor.user_id, actor.role, actor.municipality_id),
            (user.id, role, expected_municipality),
            "{case}"
        );
        assert_eq!(region.store.user(user.id).await.expect("a user can be read"), Some(user), "{case}: read back");
    }
    assert_eq!(
        region.number("SELECT COUNT(*) FROM app_user").await,
        users_before + created,
        "refused users wrote nothing"
    );
}

async fn a_token_finds_its_user_until_the_user_is_revoked(backend: Backend) {
    let Some(region) = Region::open(backend).await else { return };
    let store = &region.store;
    let (head, head_token) = store.create_user(name("Глава"), Role::Head, Some(&code("tomsk"))).await.expect("a head");
    let (auditor, auditor_token) = store.create_user(name("Аудитор"), Role::Auditor, None).await.expect("an auditor");
    assert_ne!(head_token.expose(), auditor_token.expose(), "two users get two tokens");

    let lookup = async |token: &str| store.user_by_token(token).await.expect("a token lookup");
    assert_eq!(lookup(head_token.expose()).await, Some(head.clone()), "the head's token");
    assert_eq!(lookup(auditor_token.expose()).await, Some(auditor.clone()), "the auditor's token");
    assert_eq!(lookup(&head_token.expose().to_uppercase()).await, None, "the head's token in capitals");
    assert_eq!(lookup(&format!("{}0", head_token.expose())).await, None, "the head's token with a digit more");
    assert_eq!(lookup("").await, None, "an empty token");
    assert_eq!(lookup(&token_digest(head_token.expose())).await, None, "the stored digest used as a token");

    region.advance(days(1));
    let revoked_at = region.now();
    let revoked = store.revoke_user(head.id).await.expect("revoking the head");
    assert_eq!(revoked.revoked_at, Some(revoked_at), "the revocation time");
    assert_eq!(lookup(head_token.expose()).await, None, "the revoked head's token");
    assert_eq!(lookup(auditor_token.expose()).await, Some(auditor), "the auditor's token after the head's revocation");

    region.advance(days(1));
    let again = store.revoke_user(head.id).await.expect("revoking the head again");
    assert_eq!(again.revoked_at, Some(revoked_at), "revoking twice keeps the first time");
    assert_eq!(outcome(&store.revoke_user(UserId::generate()).await), "NotFound", "revoking an unknown user");
}

async fn tokens_are_stored_only_as_digests(backend: Backend) {
    let Some(region) = Region::open(backend).await else { return };
    let (_user, token) =
        region.store.create_user(name("Пётр Токенов"), Role::Assistant, Some(&code("seversk"))).await.expect("a user");
    let secret = token.expose();
    assert!(secret.len() >= 64, "a token carries at least 256 bits in hex: {} characters", secret.len());
    assert!(!format!("{token:?}").contains(secret), "debug output hides the token");

    let stored = region.strings("SELECT token_digest FROM app_user WHERE name = 'Пётр Токенов'").await;
    assert_eq!(stored, [token_digest(secret)], "the row keeps the SHA-256 digest of the token");
    assert_ne!(stored[0], secret, "the row does not keep the token");
    assert!(
        stored[0].len() == 64 && stored[0].chars().all(|c| c.is_ascii_hexdigit()),
        "the digest is 64 hex digits: {}",
        stored[0]
    );
    let everything = region.strings("SELECT name || ' ' || role || ' ' || token_digest FROM app_user").await;
    let hex_secret = secret.trim_start_matches("apl_");
    assert!(everything.iter().all(|row| !row.contains(hex_secret)), "no user row contains the secret: {everything:?}");
}

async fn a_new_municipality_is_created_once_and_takes_part_in_everything(backend: Backend) {
    let Some(region) = Region::open(backend).await else { return };
    let store = &region.store;
    let display = |raw: &str| MunicipalityName::parse(raw).expect("a municipality name");
    let created = store.create_municipality(code("Zato-Test"), display("Тестовый округ")).await.expect("a new code");
    assert_eq!((created.code.as_str(), created.name.as_str()), ("zato-test", "Тестовый округ"), "the new municipality");
    let again = store.create_municipality(code("zato-test"), display("Другое имя")).await;
    assert_eq!(outcome(&again), "Invalid(code)", "the same code again");
    let seeded = store.create_municipality(code("tomsk"), display("Ещё один Томск")).await;
    assert_eq!(outcome(&seeded), "Invalid(code)", "a seeded code");

    let all = store.municipalities().await.expect("municipalities");
    assert_eq!(all.len(), 21, "twenty seeded and one new");
    assert_eq!(all.iter().find(|m| m.code == "zato-test"), Some(&created), "the new one is listed once, unchanged");
    let head = region.user("Глава тестового округа", Role::Head, Some("zato-test")).await;
    assert_eq!(head.municipality_id, Some(created.id), "a head of the new municipality");
    let appeal = region.submit("zato-test", "Первое обращение").await;
    assert_eq!(appeal.number, "ZATO-TEST-2026-000001", "the new municipality numbers its appeals");
    let seen = region.apply(&head, &appeal, appeals_core::Command::MarkSeen).await;
    assert_eq!(seen.version, 2, "its head reads its appeals");
    let dashboard = store.dashboard(appeals_core::Scope::Everywhere, &Default::default()).await.expect("the dashboard");
    assert_eq!(dashboard.municipalities.len(), 21, "the dashboard has a row for it");
    let counted = dashboard.municipalities.iter().find(|stats| stats.municipality.id == created.id).map(|s| s.counts);
    assert_eq!(counted.map(|counts| (counts.total, counts.seen)), Some((1, 1)), "its appeal is counted, as read");
}

async fn stores_opening_one_fresh_database_at_once_migrate_it_once(backend: Backend) {
    let Some(db) = ThrowawayDatabase::create(backend).await else { return };
    let url = db.url.clone();
    let opened = crate::support::race(4, |_| {
        let url = url.clone();
        async move { appeals_storage::Store::open(&url, appeals_storage::PoolSettings::default()).await }
    })
    .await;
    for (i, store) in opened.iter().enumerate() {
        let store = store.as_ref().unwrap_or_else(|error| panic!("store {i} failed to open: {error}"));
        let codes = store.municipalities().await.expect("municipalities");
        assert_eq!(codes.len(), 20, "store {i} sees the twenty municipalities once");
    }
}

async fn a_throwaway_database_is_gone_once_dropped(backend: Backend) {
    let Some(db) = ThrowawayDatabase::create(backend).await else { return };
    let store = open_store(&db).await;
    store.municipalities().await.expect("the database is usable");
    // The store's pool stays open on purpose: the database goes all the same.
    let url = db.url.clone();
    drop(db);
    match backend {
        Backend::Sqlite => {
            let path = url.trim_start_matches("sqlite://").split('?').next().expect("a path").to_owned();
            for suffix in ["", "-wal", "-shm"] {
                let file = format!("{path}{suffix}");
                assert!(!std::path::Path::new(&file).exists(), "{file} is removed");
            }
        }
        Backend::Postgres => {
            let server = std::env::var(POSTGRES_URL_VARIABLE).expect("the PostgreSQL server");
            let name = url.rsplit('/').next().expect("a database name");
            let admin = sea_orm::Database::connect(server.as_str()).await.expect("the server");
            let sql = format!("SELECT COUNT(*) FROM pg_database WHERE datname = '{name}'");
            let row = admin
                .query_one_raw(sea_orm::Statement::from_string(admin.get_database_backend(), sql))
                .await
                .expect("a query")
                .expect("a row");
            assert_eq!(row.try_get_by_index::<i64>(0).expect("a count"), 0, "the database {name} is dropped");
            let _ = admin.close().await;
        }
    }
}

/// A pool opened with a statement timeout makes PostgreSQL cancel a statement
/// that outlives it (the server sets it to the request timeout); SQLite has no
/// such setting, and the pool opens there all the same.
async fn a_statement_outliving_the_pools_statement_timeout_is_cancelled(backend: Backend) {
    let Some(db) = ThrowawayDatabase::create(backend).await else { return };
    let settings = appeals_storage::PoolSettings {
        statement_timeout: Some(std::time::Duration::from_millis(200)),
        ..appeals_storage::PoolSettings::default()
    };
    let pool = appeals_storage::database::connect(&db.url, settings).await.expect("the pool opens");
    if backend == Backend::Postgres {
        let started = std::time::Instant::now();
        let slept = pool.execute_unprepared("SELECT pg_sleep(5)").await;
        assert!(slept.is_err(), "the statement is cancelled");
        assert!(started.elapsed() < std::time::Duration::from_secs(2), "cancelled at once: {:?}", started.elapsed());
        pool.execute_unprepared("SELECT 1").await.expect("the pool goes on serving");
    } else {
        pool.execute_unprepared("SELECT 1").await.expect("the pool opens on SQLite");
    }
}

/// Two stores on one PostgreSQL database, as two replicas are: a user one store
/// remembers is forgotten by it as soon as the other revokes it, so the token
/// stops working everywhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revocation_through_one_store_is_heard_by_every_store_on_postgres() {
    let Some(database) = ThrowawayDatabase::create(Backend::Postgres).await else { return };
    let here = open_store(&database).await;
    let there = open_store(&database).await;
    let (user, token) = here.create_user(name("Глава"), Role::Head, Some(&code("tomsk"))).await.expect("a head");
    // Each store is listening once it keeps users; until then it asks every time.
    for _ in 0..3 {
        assert_eq!(here.user_by_token(token.expose()).await.expect("a lookup"), Some(user.clone()));
        assert_eq!(there.user_by_token(token.expose()).await.expect("a lookup"), Some(user.clone()));
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let statements = here.statements_executed();
    assert_eq!(here.user_by_token(token.expose()).await.expect("a lookup"), Some(user.clone()));
    assert_eq!(here.statements_executed(), statements, "a known token is answered from memory");

    there.revoke_user(user.id).await.expect("revoked over there");
    assert_eq!(there.user_by_token(token.expose()).await.expect("a lookup"), None, "at once where it was revoked");
    let revoked = std::time::Instant::now();
    while here.user_by_token(token.expose()).await.expect("a lookup").is_some() {
        assert!(revoked.elapsed() < std::time::Duration::from_secs(2), "the other store still accepts the token");
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
}
