//! The floor does the same work as the service, only less of it: its reads return
//! what storage's own functions (those the API answers from) return, and its
//! writes make appeals that storage reads back and whose histories verify. On
//! SQLite, and on PostgreSQL where `APPEALS_TEST_POSTGRES_URL` names a server.

use appeals_bench::api::PAGE;
use appeals_bench::floor::{Floor, ListFilter};
use appeals_bench::region;
use appeals_core::search::WordQuery;
use appeals_core::text::{AppealText, MunicipalityCode, ResponseText, fold_for_search};
use appeals_core::{Channel, Operation, Role, Status, Submission};
use appeals_storage::testing::{Backend, ThrowawayDatabase};
use appeals_storage::{AppealFilter, Cursor, DashboardFilter, PoolSettings, Store};

const APPEALS: usize = 300;

async fn the_floor_reads_what_the_service_reads_and_writes_what_it_writes(backend: Backend) {
    let Some(database) = ThrowawayDatabase::create(backend).await else { return };
    let store = Store::open(&database.url, PoolSettings::default()).await.expect("the throwaway database opens");
    let region = region::load(&store, APPEALS, 7).await.expect("the region loads");
    let floor_db = appeals_storage::database::connect(&database.url, PoolSettings::default()).await.expect("a pool");
    let floor = Floor::new(floor_db);
    let governor =
        appeals_core::Actor { user_id: region.cast.governor.id, role: Role::GovernorOffice, municipality_id: None };
    let scope = governor.scope(Operation::ReadAppeals).expect("the governor reads everything");
    let tomsk = region.municipality("tomsk").expect("Tomsk");
    let tomsk_id = region.municipalities[tomsk].id;

    let tomsk_code = || Some(MunicipalityCode::parse("tomsk").expect("a code"));
    let words = |raw: &str| WordQuery::parse(raw).expect("a word query");
    let lists: [(&str, AppealFilter, ListFilter, Option<Cursor>); 9] = [
        ("first page", AppealFilter::default(), ListFilter::Everything, None),
        ("deep page", AppealFilter::default(), ListFilter::Everything, Some(region.middle)),
        (
            "unread in Tomsk",
            AppealFilter {
                municipality_code: Some(MunicipalityCode::parse("tomsk").expect("a code")),
                status: Some(Status::Received),
                ..AppealFilter::default()
            },
            ListFilter::Unread { municipality: tomsk_id.as_uuid() },
            None,
        ),
        (
            "search",
            AppealFilter { text: Some("ЯМА".to_owned()), ..AppealFilter::default() },
            ListFilter::Text { folded: fold_for_search("ЯМА"), municipality: None },
            None,
        ),
        (
            "search in Tomsk",
            AppealFilter {
                text: Some("дорог".to_owned()), municipality_code: tomsk_code(), ..AppealFilter::default()
            },
            ListFilter::Text { folded: fold_for_search("дорог"), municipality: Some(tomsk_id.as_uuid()) },
            None,
        ),
        (
            "a search too short for trigrams",
            AppealFilter { text: Some("Я".to_owned()), ..AppealFilter::default() },
            ListFilter::Text { folded: fold_for_search("Я"), municipality: None },
            None,
        ),
        (
            "words",
            AppealFilter { search: Some(words("ямы дорогой")), ..AppealFilter::default() },
            ListFilter::Words { query: words("ямы дорогой"), municipality: None },
            None,
        ),
        (
            "words in Tomsk",
            AppealFilter {
                search: Some(words("освещ*")), municipality_code: tomsk_code(), ..AppealFilter::default()
            },
            ListFilter::Words { query: words("освещ*"), municipality: Some(tomsk_id.as_uuid()) },
            None,
        ),
        (
            "words past a cursor",
            AppealFilter { search: Some(words("подъезд")), ..AppealFilter::default() },
            ListFilter::Words { query: words("подъезд"), municipality: None },
            Some(region.middle),
        ),
    ];
    for (case, filter, floor_filter, after) in lists {
        let service = store.list_appeals(scope, &filter, PAGE, after).await.expect("the list");
        let fast = floor.page(&floor_filter, after.as_ref()).await.expect("the floor's page");
        let service_ids: Vec<_> = service.appeals.iter().map(|appeal| appeal.id).collect();
        assert_eq!(fast.ids, service_ids, "{case}: the same appeals in the same order");
        assert_eq!(fast.has_next_page, service.has_next_page, "{case}");
        assert_eq!(fast.total, service.total_count, "{case}: the same total");
    }

    for id in region.sample.iter().take(20) {
        let history = store.history(*id).await.expect("the history");
        let seqs: Vec<i32> = history.iter().map(|event| event.event.seq).collect();
        assert_eq!(floor.appeal(*id).await.expect("the floor's appeal"), seqs, "appeal {id}");
    }

    let service = store.dashboard(scope, &DashboardFilter::default()).await.expect("the dashboard");
    assert_eq!(floor.dashboard(None).await.expect("the floor's dashboard"), service);

    // Writes: an appeal registered, read and resolved by the floor is one the
    // service reads back, whose history verifies.
    let submission = Submission {
        channel: Channel::Telegram,
        external_id: None,
        author_name: None,
        author_contact: None,
        text: AppealText::parse("Не горит фонарь у школы").expect("a text"),
    };
    let (id, version) = floor
        .submit((tomsk_id.as_uuid(), "tomsk"), submission, region.cast.intake.id)
        .await
        .expect("the floor registers an appeal");
    let head = region.cast.heads[tomsk].id;
    floor.transition(id, version, head, None).await.expect("the head reads it");
    let response = ResponseText::parse("Фонарь заменят до пятницы").expect("a response");
    floor.transition(id, version + 1, head, Some(response)).await.expect("it is resolved");
    let appeal = store.appeal(id).await.expect("a read").expect("the floor's appeal exists");
    assert_eq!(appeal.status, Status::Resolved);
    assert_eq!(appeal.version, 3);
    let report = store.verify_appeal(id).await.expect("the audit").expect("the appeal");
    assert!(report.ok(), "the floor's history verifies: {:?}", report.broken);
}

mod sqlite {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_floor_reads_what_the_service_reads_and_writes_what_it_writes() {
        super::the_floor_reads_what_the_service_reads_and_writes_what_it_writes(super::Backend::Sqlite).await;
    }
}

mod postgres {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_floor_reads_what_the_service_reads_and_writes_what_it_writes() {
        super::the_floor_reads_what_the_service_reads_and_writes_what_it_writes(super::Backend::Postgres).await;
    }
}
