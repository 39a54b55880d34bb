//! The events of every appeal in one order: positions handed out in commit
//! order with no gaps, read back in pages, per municipality, and followers woken
//! by commits through any store; and a schema newer than the binary refused.

use std::collections::HashMap;
use std::time::Duration;

use appeals_storage::testing::{Backend, on_both_databases};
use appeals_storage::{FollowedEvent, PoolSettings, Store};
use sea_orm::{ConnectionTrait, Database};

use crate::support::{Region, hours, note, race};

on_both_databases!(
    concurrent_writers_get_dense_positions_in_the_order_of_each_appeals_history,
    events_after_a_position_come_in_pages_and_per_municipality,
    a_follower_is_woken_by_a_commit_through_another_store,
    events_stored_before_positions_existed_are_numbered_by_the_migration,
    a_database_migrated_by_a_newer_binary_is_refused_naming_both_versions,
);

/// Every event after `after`, read in pages of `page`.
async fn all_after(
    store: &Store,
    after: i64,
    municipality: Option<appeals_core::MunicipalityId>,
    page: u64,
) -> Vec<FollowedEvent> {
    let mut events = Vec::new();
    let mut position = after;
    loop {
        let next = store.events_after(position, municipality, page).await.expect("events can be read");
        let Some(last) = next.last() else { return events };
        position = last.event.position;
        events.extend(next);
    }
}

async fn concurrent_writers_get_dense_positions_in_the_order_of_each_appeals_history(backend: Backend) {
    let Some(region) = Region::open(backend).await else { return };
    let appeals = [region.submit("tomsk", "Яма на дороге").await, region.submit("seversk", "Нет света").await];
    // Eight writers at once, each adding notes (which take no version, so
    // none is refused) to both appeals and submitting new ones.
    let written = race(8, |writer| {
        let store = region.store.clone();
        let assistants = [region.tomsk_assistant, region.seversk_assistant];
        let intake = region.intake;
        let appeals = appeals.clone();
        async move {
            let mut count = 0;
            for round in 0..6 {
                let which = (writer + round) % 2;
                let command = note(&format!("заметка {writer}-{round}"));
                store
                    .execute_command(&assistants[which], appeals[which].id, &command, None)
                    .await
                    .expect("a note is added");
                let code = appeals_core::text::MunicipalityCode::parse("tomsk").expect("a code");
                store.submit(&intake, &code, crate::support::web("Ещё одно обращение")).await.expect("a submission");
                count += 2;
            }
            count
        }
    })
    .await;
    let expected = 2 + written.iter().sum::<usize>();

    let events = all_after(&region.store, 0, None, 7).await;
    let positions: Vec<i64> = events.iter().map(|event| event.event.position).collect();
    assert_eq!(positions, (1..=expected as i64).collect::<Vec<_>>(), "positions 1, 2, 3… with no gap");
    assert_eq!(region.store.last_event_position().await.expect("the last position"), expected as i64);
    let mut last_seq: HashMap<appeals_core::AppealId, i32> = HashMap::new();
    for event in &events {
        let previous = last_seq.insert(event.event.event.appeal_id, event.event.event.seq).unwrap_or(0);
        assert_eq!(event.event.event.seq, previous + 1, "each appeal's events in the order of its history");
    }
    let history = region.store.history(appeals[0].id).await.expect("a history");
    assert!(history.windows(2).all(|pair| pair[0].position < pair[1].position), "a history's positions ascend");
}

async fn events_after_a_position_come_in_pages_and_per_municipality(backend: Backend) {
    let Some(region) = Region::open(backend).await else { return };
    let tomsk = region.submit("tomsk", "Яма на дороге").await;
    let seversk = region.submit("seversk", "Нет света").await;
    region.apply(&region.tomsk_assistant, &tomsk, note("позвонить")).await;
    region.apply(&region.seversk_assistant, &seversk, note("уточнить адрес")).await;

    let everything = all_after(&region.store, 0, None, 1).await;
    assert_eq!(everything.len(), 4, "two registrations and two notes");
    let page = region.store.events_after(1, None, 2).await.expect("a page");
    assert_eq!(page.iter().map(|event| event.event.position).collect::<Vec<_>>(), [2, 3], "two events after the first");
    assert_eq!(region.store.events_after(4, None, 10).await.expect("an empty page"), [], "nothing after the last");

    let only_tomsk = all_after(&region.store, 0, Some(tomsk.municipality_id), 1).await;
    assert_eq!(only_tomsk.len(), 2, "Tomsk's registration and note");
    assert!(
        only_tomsk
            .iter()
            .all(|event| event.event.event.appeal_id == tomsk.id && event.municipality_id == tomsk.municipality_id)
    );
    let seversk_events: Vec<_> = everything.iter().filter(|event| event.event.event.appeal_id == seversk.id).collect();
    assert!(
        seversk_events.iter().all(|event| event.municipality_id == seversk.municipality_id),
        "each event's municipality"
    );
}

async fn a_follower_is_woken_by_a_commit_through_another_store(backend: Backend) {
    let Some(region) = Region::open(backend).await else { return };
    // On SQLite one process serves a file: the store wakes its own followers.
    // On PostgreSQL a second store, as another server would, wakes them too.
    let other = match backend {
        Backend::Postgres => Store::open(&region.db.url, PoolSettings::default()).await.expect("a second store"),
        Backend::Sqlite => region.store.clone(),
    };
    let mut wakeups = region.store.follow_events();
    // Until the listener is connected, a commit may go unheard (the feed then
    // finds it on its timer): wait for the first wake-up, the listener's own.
    if backend == Backend::Postgres {
        tokio::time::timeout(Duration::from_secs(10), wakeups.changed())
            .await
            .expect("the listener connects")
            .expect("open");
    }
    for round in 0..3 {
        wakeups.borrow_and_update();
        let appeal = region.submit_via(&other, "tomsk", crate::support::web(&format!("Обращение {round}"))).await;
        tokio::time::timeout(Duration::from_secs(5), wakeups.changed())
            .await
            .unwrap_or_else(|_| panic!("round {round}: no wake-up within 5 s of a commit through another store"))
            .expect("the store is open");
        let last = region.store.last_event_position().await.expect("the last position");
        let events = region.store.events_after(last - 1, None, 10).await.expect("the new event");
        assert_eq!(events[0].event.event.appeal_id, appeal.id, "round {round}: the event woken for");
    }
}

async fn events_stored_before_positions_existed_are_numbered_by_the_migration(backend: Backend) {
    use appeals_migrations::{Migrator, MigratorTrait};
    let Some(region) = Region::open(backend).await else { return };
    let first = region.submit("tomsk", "Яма на дороге").await;
    region.advance(hours(1));
    let second = region.submit("seversk", "Нет света").await;
    region.advance(hours(1));
    region.apply(&region.tomsk_assistant, &first, note("позвонить")).await;
    region.advance(hours(1));
    region.apply(&region.seversk_assistant, &second, note("уточнить")).await;

    // Back to the schema before positions, and forward again.
    let connection = Database::connect(region.db.url.as_str()).await.expect("a connection for the migration");
    Migrator::down(&connection, Some(1)).await.expect("the positions are dropped");
    let columns = match backend {
        Backend::Postgres => {
            "SELECT COUNT(*) FROM information_schema.columns WHERE table_name = 'appeal_event' AND column_name = 'position'"
        }
        Backend::Sqlite => "SELECT COUNT(*) FROM pragma_table_info('appeal_event') WHERE name = 'position'",
    };
    assert_eq!(region.number(columns).await, 0, "no positions before the migration");
    appeals_storage::database::migrate(&connection, &region.db.url).await.expect("migrating again");
    let _ = connection.close().await;

    let events = all_after(&region.store, 0, None, 100).await;
    let order: Vec<(appeals_core::AppealId, i32)> =
        events.iter().map(|event| (event.event.event.appeal_id, event.event.event.seq)).collect();
    assert_eq!(order, [(first.id, 1), (second.id, 1), (first.id, 2), (second.id, 2)], "numbered in the order of time");
    assert_eq!(events.iter().map(|event| event.event.position).collect::<Vec<_>>(), [1, 2, 3, 4]);
    // And the next event written takes the next position.
    region.apply(&region.tomsk_assistant, &first, note("перезвонить")).await;
    assert_eq!(region.store.last_event_position().await.expect("the last position"), 5);
}

async fn a_database_migrated_by_a_newer_binary_is_refused_naming_both_versions(backend: Backend) {
    let Some(region) = Region::open(backend).await else { return };
    let future = "m20991231_000099_change_the_future";
    region.execute(&format!("INSERT INTO seaql_migrations (version, applied_at) VALUES ('{future}', 0)")).await;
    let refused = match Store::open(&region.db.url, PoolSettings::default()).await {
        Ok(_) => panic!("a binary older than the schema started"),
        Err(error) => error.to_string(),
    };
    let ours = appeals_storage::database::schema_version();
    assert!(refused.contains(future) && refused.contains(&ours), "both versions named: {refused}");
    // Nothing was changed: the newer binary's row is still there.
    let connection = Database::connect(region.db.url.as_str()).await.expect("a connection");
    let statement = sea_orm::Statement::from_string(
        connection.get_database_backend(),
        format!("SELECT COUNT(*) FROM seaql_migrations WHERE version = '{future}'"),
    );
    let row = connection.query_one_raw(statement).await.expect("a count").expect("a row");
    assert_eq!(row.try_get_by_index::<i64>(0).expect("a number"), 1);
    let _ = connection.close().await;
}
