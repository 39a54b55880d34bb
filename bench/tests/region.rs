//! The generated region is what the live path would have written: every imported
//! appeal's history verifies, the mix of statuses is there, and registration goes
//! on after the imported numbers. On SQLite, and on PostgreSQL where
//! `APPEALS_TEST_POSTGRES_URL` names a server.

use appeals_bench::region;
use appeals_core::text::{AppealText, MunicipalityCode};
use appeals_core::{Actor, Channel, Role, Status, Submission};
use appeals_storage::import::ImportedAppeal;
use appeals_storage::testing::{Backend, ThrowawayDatabase};
use appeals_storage::{AppealFilter, PoolSettings, StorageError, Store};
use chrono::{Datelike, TimeZone, Utc};

const APPEALS: usize = 600;

async fn open(backend: Backend) -> Option<(ThrowawayDatabase, Store)> {
    let db = ThrowawayDatabase::create(backend).await?;
    let store = Store::open(&db.url, PoolSettings::default()).await.expect("the throwaway database opens");
    Some((db, store))
}

async fn imported_appeals_verify_and_registration_goes_on_after_them(backend: Backend) {
    let Some((_db, store)) = open(backend).await else { return };
    let region = region::load(&store, APPEALS, 42).await.expect("the region loads");
    assert_eq!(region.appeals, APPEALS);
    assert!(region.events > APPEALS * 2, "histories were imported: {} events", region.events);

    let summary = store.verify_all().await.expect("the audit runs");
    assert_eq!(summary.first_failure, None, "every imported chain verifies");
    assert_eq!(summary.appeals_checked, APPEALS as u64);
    assert_eq!(summary.events_checked, region.events as u64);
    for id in region.sample.iter().take(50) {
        let report = store.verify_appeal(*id).await.expect("the audit runs").expect("the appeal exists");
        assert!(report.ok(), "appeal {} breaks at {:?}", report.number, report.broken);
    }

    let governor = Actor { user_id: region.cast.governor.id, role: Role::GovernorOffice, municipality_id: None };
    let scope = governor.scope(appeals_core::Operation::ReadAppeals).expect("the governor reads everything");
    for status in [Status::Received, Status::Seen, Status::Resolved] {
        let filter = AppealFilter { status: Some(status), ..AppealFilter::default() };
        let page = store.list_appeals(scope, &filter, 1, None).await.expect("the list loads");
        let share = page.total_count as f64 / APPEALS as f64;
        assert!((0.08..0.7).contains(&share), "{status}: {share:.2} of the appeals");
    }
    let unread = AppealFilter { status: Some(Status::Received), ..AppealFilter::default() };
    let page = store.list_appeals(scope, &unread, 1, None).await.expect("the list loads");
    assert_eq!(page.total_count, region.unread.len() as u64, "the region knows every unread appeal");

    // A live submission to Tomsk takes the number after Tomsk's last imported one.
    let intake = Actor { user_id: region.cast.intake.id, role: Role::Intake, municipality_id: None };
    let submission = Submission {
        channel: Channel::Web,
        external_id: None,
        author_name: None,
        author_contact: None,
        text: AppealText::parse("Яма на дороге у дома 5").expect("a text"),
    };
    let tomsk = MunicipalityCode::parse("tomsk").expect("a code");
    let submitted = store.submit(&intake, &tomsk, submission).await.expect("a live submission is accepted");
    let year = submitted.appeal.received_at.year();
    let this_year = AppealFilter {
        municipality_code: Some(tomsk),
        received_from: Utc.with_ymd_and_hms(year, 1, 1, 0, 0, 0).single(),
        ..AppealFilter::default()
    };
    let registered = store.list_appeals(scope, &this_year, 1, None).await.expect("the list loads").total_count;
    assert_eq!(
        submitted.appeal.number,
        format!("TOMSK-{year}-{registered:06}"),
        "the live number follows Tomsk's {} imported appeals of this year",
        registered - 1
    );
}

async fn an_import_with_a_broken_history_changes_nothing(backend: Backend) {
    let Some((_db, store)) = open(backend).await else { return };
    let region = region::load(&store, 100, 7).await.expect("the region loads");
    let appeal = store.appeal(region.sample[0]).await.expect("readable").expect("present");
    let mut renumbered = appeal.clone();
    renumbered.id = appeals_core::AppealId::generate();
    renumbered.number = "TOMSK-2099-000001".to_owned();
    renumbered.external_id = None;
    let without_history = ImportedAppeal { appeal: renumbered, events: Vec::new() };
    let refused = store.import_appeals(&[without_history]).await;
    assert!(matches!(refused, Err(StorageError::Invalid(_))), "{refused:?}");
    assert_eq!(store.verify_all().await.expect("the audit runs").appeals_checked, 100);
}

mod sqlite {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn imported_appeals_verify_and_registration_goes_on_after_them() {
        super::imported_appeals_verify_and_registration_goes_on_after_them(Backend::Sqlite).await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_import_with_a_broken_history_changes_nothing() {
        super::an_import_with_a_broken_history_changes_nothing(Backend::Sqlite).await
    }
}

mod postgres {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn imported_appeals_verify_and_registration_goes_on_after_them() {
        super::imported_appeals_verify_and_registration_goes_on_after_them(Backend::Postgres).await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_import_with_a_broken_history_changes_nothing() {
        super::an_import_with_a_broken_history_changes_nothing(Backend::Postgres).await
    }
}
