//! The list page: text search in any script, every filter, overdue judged at
//! the time of the query, and keyset pagination that neither skips nor repeats.

use std::collections::BTreeSet;

use appeals_core::{
    Appeal, AppealId, Channel, Command, DeadlinePolicy, Outcome, PolicyDuration, Priority, Scope, Status,
};
use appeals_migrations::{Migrator, MigratorTrait};
use appeals_storage::testing::{Backend, on_both_databases};
use appeals_storage::{AppealFilter, AppealPage, Cursor, Store};
use chrono::TimeDelta;
use sea_orm::Database;

use crate::support::{Region, code, days, hours, ids, outcome, prioritize, resolve, submission, t0};

on_both_databases!(
    text_search_is_case_insensitive_in_cyrillic_and_latin,
    like_wildcards_and_backslashes_in_a_search_are_literal,
    the_list_filters_by_status_channel_priority_and_municipality,
    the_list_filters_by_time_of_receipt,
    overdue_filters_judge_deadlines_fixed_at_receipt_against_the_time_of_the_query,
    keyset_pages_return_every_appeal_once_newest_first,
    pages_neither_skip_nor_repeat_while_new_appeals_arrive,
    a_cursor_survives_its_text_form_and_garbage_does_not_decode,
    text_search_matches_composed_and_decomposed_letters_and_reads_yo_as_ye,
    the_text_migration_refolds_appeals_stored_with_the_old_fold,
);

/// The texts of every appeal within `scope` that match `filter`, checking that
/// the page holds them all and that `totalCount` agrees.
async fn texts(case: &str, store: &Store, scope: Scope, filter: &AppealFilter) -> BTreeSet<String> {
    let page = store
        .list_appeals(scope, filter, 100, None)
        .await
        .unwrap_or_else(|error| panic!("{case}: listing failed: {error}"));
    assert!(!page.has_next_page, "{case}: everything fits on one page");
    assert_eq!(page.total_count, page.appeals.len() as u64, "{case}: totalCount");
    page.appeals.iter().map(|appeal| appeal.text.as_str().to_owned()).collect()
}

fn set(texts: &[&str]) -> BTreeSet<String> {
    texts.iter().map(|text| (*text).to_owned()).collect()
}

fn searching(text: &str) -> AppealFilter {
    AppealFilter { text: Some(text.to_owned()), ..AppealFilter::default() }
}

async fn text_search_is_case_insensitive_in_cyrillic_and_latin(backend: Backend) {
    let Some(region) = Region::open(backend).await else { return };
    let (road, yard, pothole, light, tree) =
        ("Яма на дороге", "ЯМА во дворе", "Pothole on the road", "Свет в подъезде", "Ёлку во дворе не убрали");
    for text in [road, yard, pothole, light, tree] {
        region.submit("tomsk", text).await;
    }
    region.submit("seversk", "Яма у школы").await;
    let tomsk = Scope::Municipality(region.tomsk.id);
    let cases: [(&str, Scope, &str, &[&str]); 15] = [
        ("lowercase Cyrillic", tomsk, "яма", &[road, yard]),
        ("uppercase Cyrillic", tomsk, "ЯМА", &[road, yard]),
        ("mixed-case Cyrillic", tomsk, "яМа", &[road, yard]),
        ("a phrase", tomsk, "Яма на", &[road]),
        ("uppercase Latin", tomsk, "POTHOLE", &[pothole]),
        ("a Latin phrase", tomsk, "pothole ON the", &[pothole]),
        ("the hard sign", tomsk, "ПОДЪЕЗД", &[light]),
        ("ё in lowercase", tomsk, "ёлку", &[tree]),
        ("Ё in capitals", tomsk, "ЁЛКУ", &[tree]),
        ("a common phrase", tomsk, "во дворе", &[yard, tree]),
        ("padding is trimmed", tomsk, "  яма  ", &[road, yard]),
        ("nothing matches", tomsk, "трамвай", &[]),
        ("an empty search is no filter", tomsk, "", &[road, yard, pothole, light, tree]),
        ("blanks are no filter", tomsk, "   ", &[road, yard, pothole, light, tree]),
        ("the region-wide scope", Scope::Everywhere, "яма", &[road, yard, "Яма у школы"]),
    ];
    for (case, scope, text, expected) in cases {
        assert_eq!(texts(case, &region.store, scope, &searching(text)).await, set(expected), "{case}: {text:?}");
    }
    let longest = "я".repeat(200);
    assert_eq!(texts("200 characters", &region.store, tomsk, &searching(&longest)).await, set(&[]), "200 characters");
    let too_long = region.store.list_appeals(tomsk, &searching(&"я".repeat(201)), 10, None).await;
    assert_eq!(outcome(&too_long), "Invalid(text)", "a search of 201 characters");
}

async fn like_wildcards_and_backslashes_in_a_search_are_literal(backend: Backend) {
    let Some(region) = Region::open(backend).await else { return };
    let (percent, roubles, underscore, space, path, plain) = (
        "Скидка 100% на ремонт",
        "Скидка 100 рублей",
        "Поле_ввода сломано",
        "Поле ввода сломано",
        r"Файл C:\Документы\жалоба.doc не открывается",
        "Просто текст",
    );
    for text in [percent, roubles, underscore, space, path, plain] {
        region.submit("tomsk", text).await;
    }
    let cases: [(&str, &str, &[&str]); 11] = [
        ("a percent sign after digits", "100%", &[percent]),
        ("a percent sign alone", "%", &[percent]),
        ("two percent signs", "%%", &[]),
        ("an underscore alone", "_", &[underscore]),
        ("an underscore in a word", "поле_ввода", &[underscore]),
        ("an underscore after digits", "100_", &[]),
        ("a backslash alone", r"\", &[path]),
        ("a path", r"c:\документы\", &[path]),
        ("a backslash before a percent sign", r"100\%", &[]),
        ("an escaped-looking underscore", r"\_", &[]),
        ("a space is a space", "поле ввода", &[space]),
    ];
    for (case, text, expected) in cases {
        let found = texts(case, &region.store, Scope::Everywhere, &searching(text)).await;
        assert_eq!(found, set(expected), "{case}: {text:?}");
    }
}

async fn the_list_filters_by_status_channel_priority_and_municipality(backend: Backend) {
    let Some(region) = Region::open(backend).await else { return };
    let via = async |to: &str, channel: Channel, text: &str| {
        region.submit_via(&region.store, to, submission(channel, None, text)).await
    };
    let a = via("tomsk", Channel::Telegram, "A").await;
    region.apply(&region.tomsk_head, &a, Command::MarkSeen).await;
    let b = via("tomsk", Channel::Vk, "B").await;
    region.apply(&region.tomsk_assistant, &b, prioritize(Priority::High)).await;
    let c = via("tomsk", Channel::Email, "C").await;
    let c = region.apply(&region.tomsk_head, &c, Command::MarkSeen).await;
    region.apply(&region.tomsk_head, &c, resolve(Outcome::Explained, "Разъяснено")).await;
    let d = via("seversk", Channel::Telegram, "D").await;
    region.apply(&region.seversk_assistant, &d, prioritize(Priority::Urgent)).await;
    via("kedrovy", Channel::Phone, "E").await;

    let (all, tomsk) = (Scope::Everywhere, Scope::Municipality(region.tomsk.id));
    let filter = AppealFilter::default;
    let status = |status| AppealFilter { status: Some(status), ..filter() };
    let channel = |channel| AppealFilter { channel: Some(channel), ..filter() };
    let priority = |priority| AppealFilter { priority: Some(priority), ..filter() };
    let municipality = |raw: &str| AppealFilter { municipality_code: Some(code(raw)), ..filter() };
    let cases: Vec<(&str, Scope, AppealFilter, &[&str])> = vec![
        ("no filter, region-wide", all, filter(), &["A", "B", "C", "D", "E"]),
        ("no filter, Tomsk", tomsk, filter(), &["A", "B", "C"]),
        ("RECEIVED, region-wide", all, status(Status::Received), &["B", "D", "E"]),
        ("RECEIVED, Tomsk", tomsk, status(Status::Received), &["B"]),
        ("SEEN", all, status(Status::Seen), &["A"]),
        ("RESOLVED", all, status(Status::Resolved), &["C"]),
        ("TELEGRAM, region-wide", all, channel(Channel::Telegram), &["A", "D"]),
        ("TELEGRAM, Tomsk", tomsk, channel(Channel::Telegram), &["A"]),
        ("PHONE", all, channel(Channel::Phone), &["E"]),
        ("POST", all, channel(Channel::Post), &[]),
        ("HIGH", all, priority(Priority::High), &["B"]),
        ("NORMAL", all, priority(Priority::Normal), &["A", "C", "E"]),
        ("URGENT, region-wide", all, priority(Priority::Urgent), &["D"]),
        ("URGENT, Tomsk", tomsk, priority(Priority::Urgent), &[]),
        ("LOW", all, priority(Priority::Low), &[]),
        ("Seversk, region-wide", all, municipality("seversk"), &["D"]),
        ("SEVERSK in capitals", all, municipality("SEVERSK"), &["D"]),
        ("Tomsk, in Tomsk", tomsk, municipality("tomsk"), &["A", "B", "C"]),
        ("Seversk, out of Tomsk's scope", tomsk, municipality("seversk"), &[]),
        ("a municipality without appeals", all, municipality("asinovsky"), &[]),
        (
            "RECEIVED on TELEGRAM",
            all,
            AppealFilter { status: Some(Status::Received), channel: Some(Channel::Telegram), ..filter() },
            &["D"],
        ),
        (
            "HIGH in Tomsk",
            all,
            AppealFilter { priority: Some(Priority::High), municipality_code: Some(code("tomsk")), ..filter() },
            &["B"],
        ),
        (
            "SEEN in Seversk",
            all,
            AppealFilter { status: Some(Status::Seen), municipality_code: Some(code("seversk")), ..filter() },
            &[],
        ),
    ];
    for (case, scope, filter, expected) in cases {
        assert_eq!(texts(case, &region.store, scope, &filter).await, set(expected), "{case}");
    }
    for (case, scope) in [("an unknown municipality, region-wide", all), ("an unknown municipality, Tomsk", tomsk)] {
        let result = region.store.list_appeals(scope, &municipality("atlantis"), 10, None).await;
        assert_eq!(outcome(&result), "Invalid(municipalityCode)", "{case}");
    }
}

async fn the_list_filters_by_time_of_receipt(backend: Backend) {
    let Some(region) = Region::open(backend).await else { return };
    region.submit("tomsk", "A").await;
    region.advance(hours(1));
    region.submit("tomsk", "B").await;
    region.advance(hours(1));
    region.submit("seversk", "C").await;
    region.advance(TimeDelta::microseconds(1));
    region.submit("tomsk", "D").await;

    let t = |offset: TimeDelta| Some(t0() + offset);
    let between = |from, to| AppealFilter { received_from: from, received_to: to, ..AppealFilter::default() };
    let micro = TimeDelta::microseconds(1);
    let cases: [(&str, AppealFilter, &[&str]); 9] = [
        ("from the second hour, inclusive", between(t(hours(1)), None), &["B", "C", "D"]),
        ("to the third hour, exclusive", between(None, t(hours(2))), &["A", "B"]),
        ("one hour's window", between(t(hours(1)), t(hours(2))), &["B"]),
        ("a microsecond later", between(t(hours(2) + micro), None), &["D"]),
        ("to the very first instant", between(None, t(TimeDelta::zero())), &[]),
        ("from the first instant", between(t(TimeDelta::zero()), None), &["A", "B", "C", "D"]),
        ("after everything", between(t(hours(3)), None), &[]),
        ("an empty window", between(t(hours(1)), t(hours(1))), &[]),
        ("a window backwards", between(t(hours(2)), t(hours(1))), &[]),
    ];
    for (case, filter, expected) in cases {
        assert_eq!(texts(case, &region.store, Scope::Everywhere, &filter).await, set(expected), "{case}");
    }
    let tomsk_window = AppealFilter { municipality_code: Some(code("tomsk")), ..between(t(hours(1)), None) };
    assert_eq!(
        texts("Tomsk's window", &region.store, Scope::Everywhere, &tomsk_window).await,
        set(&["B", "D"]),
        "Tomsk"
    );
}

async fn overdue_filters_judge_deadlines_fixed_at_receipt_against_the_time_of_the_query(backend: Backend) {
    let Some(region) = Region::open(backend).await else { return };
    let duration = |raw: &str| raw.parse::<PolicyDuration>().expect("a duration");
    let hasty =
        DeadlinePolicy { seen_within: duration("1h"), answer_within: duration("2h"), ..DeadlinePolicy::default() };
    let hasty_store = region.store.clone().with_policy(hasty);
    let (head, assistant) = (region.tomsk_head, region.tomsk_assistant);

    region.submit("tomsk", "A").await;
    let b = region.submit("tomsk", "B").await;
    region.apply(&head, &b, Command::MarkSeen).await;
    let c = region.submit("tomsk", "C").await;
    let c = region.apply(&head, &c, Command::MarkSeen).await;
    region.apply(&assistant, &c, resolve(Outcome::Satisfied, "Сделано")).await;
    region.submit_via(&hasty_store, "tomsk", crate::support::web("D")).await;
    let e = region.submit_via(&hasty_store, "tomsk", crate::support::web("E")).await;
    region.apply(&head, &e, Command::MarkSeen).await;
    let everything = set(&["A", "B", "C", "D", "E"]);

    let second = TimeDelta::seconds(1);
    let checkpoints: [(&str, TimeDelta, &[&str], &[&str]); 8] = [
        ("at receipt", TimeDelta::zero(), &[], &[]),
        ("when D's reading is due", hours(1), &[], &[]),
        ("half an hour later", hours(1) + TimeDelta::minutes(30), &["D"], &[]),
        ("when D and E are due", hours(2), &["D"], &[]),
        ("a second after", hours(2) + second, &["D"], &["D", "E"]),
        ("when A's reading is due", days(3), &["D"], &["D", "E"]),
        ("a second after that", days(3) + second, &["A", "D"], &["D", "E"]),
        ("past thirty days", days(30) + second, &["A", "D"], &["A", "B", "D", "E"]),
    ];
    for (case, offset, seen_overdue, overdue) in checkpoints {
        region.clock.set(t0() + offset);
        for (which, store) in
            [("the default policy's store", &region.store), ("the hasty policy's store", &hasty_store)]
        {
            let case = format!("{case}, asking {which}");
            let flag = |seen: Option<bool>, late: Option<bool>| AppealFilter {
                seen_overdue: seen,
                overdue: late,
                ..AppealFilter::default()
            };
            let all = Scope::Everywhere;
            let got = texts(&case, store, all, &flag(Some(true), None)).await;
            assert_eq!(got, set(seen_overdue), "{case}: seenOverdue");
            let got = texts(&case, store, all, &flag(Some(false), None)).await;
            assert_eq!(got, &everything - &set(seen_overdue), "{case}: not seenOverdue");
            let got = texts(&case, store, all, &flag(None, Some(true))).await;
            assert_eq!(got, set(overdue), "{case}: overdue");
            let got = texts(&case, store, all, &flag(None, Some(false))).await;
            assert_eq!(got, &everything - &set(overdue), "{case}: not overdue");
        }
        // The filters agree with the domain's own definitions.
        let now = region.now();
        let page =
            region.store.list_appeals(Scope::Everywhere, &AppealFilter::default(), 100, None).await.expect("list");
        let by_domain = |predicate: fn(&Appeal, chrono::DateTime<chrono::Utc>) -> bool| -> BTreeSet<String> {
            page.appeals.iter().filter(|a| predicate(a, now)).map(|a| a.text.as_str().to_owned()).collect()
        };
        assert_eq!(by_domain(Appeal::is_seen_overdue), set(seen_overdue), "{case}: Appeal::is_seen_overdue");
        assert_eq!(by_domain(Appeal::is_overdue), set(overdue), "{case}: Appeal::is_overdue");
    }
}

/// Pages through everything within `scope`, `size` at a time, via the text form of
/// each cursor; checks `totalCount` on every page.
async fn every_page(case: &str, store: &Store, scope: Scope, size: u64, total: u64) -> Vec<AppealPage> {
    let mut pages: Vec<AppealPage> = Vec::new();
    let mut after: Option<Cursor> = None;
    loop {
        let page = store
            .list_appeals(scope, &AppealFilter::default(), size, after)
            .await
            .unwrap_or_else(|error| panic!("{case}: page {} failed: {error}", pages.len() + 1));
        assert_eq!(page.total_count, total, "{case}: totalCount on page {}", pages.len() + 1);
        let next = page.has_next_page;
        after = page.appeals.last().map(|last| Cursor::decode(&Cursor::of(last).encode()).expect("a cursor decodes"));
        pages.push(page);
        if !next {
            return pages;
        }
        assert!(pages.len() <= 100, "{case}: paging does not end");
    }
}

/// `appeals` newest first, ties broken by the greater id first.
fn newest_first(appeals: &[Appeal]) -> Vec<AppealId> {
    let mut sorted: Vec<&Appeal> = appeals.iter().collect();
    sorted.sort_by_key(|appeal| std::cmp::Reverse((appeal.received_at, appeal.id)));
    sorted.into_iter().map(|appeal| appeal.id).collect()
}

async fn keyset_pages_return_every_appeal_once_newest_first(backend: Backend) {
    let Some(region) = Region::open(backend).await else { return };
    let mut appeals = Vec::new();
    for i in 0..57 {
        // Three appeals share each minute, so ties in receivedAt are the rule.
        if i % 3 == 0 {
            region.advance(TimeDelta::minutes(1));
        }
        let to = if i % 4 == 0 { "seversk" } else { "tomsk" };
        appeals.push(region.submit(to, &format!("Обращение {i}")).await);
    }
    let expected = newest_first(&appeals);

    let pages = every_page("region-wide by 10", &region.store, Scope::Everywhere, 10, 57).await;
    let sizes: Vec<usize> = pages.iter().map(|page| page.appeals.len()).collect();
    assert_eq!(sizes, [10, 10, 10, 10, 10, 7], "region-wide by 10: page sizes");
    let flat: Vec<AppealId> = pages.iter().flat_map(ids).collect();
    assert_eq!(flat, expected, "region-wide by 10: every appeal once, newest first, ties by id");
    assert_eq!(flat.iter().collect::<BTreeSet<_>>().len(), 57, "region-wide by 10: no appeal twice");

    let tomsk_appeals: Vec<Appeal> = appeals.iter().filter(|a| a.municipality_id == region.tomsk.id).cloned().collect();
    let tomsk = Scope::Municipality(region.tomsk.id);
    let total = tomsk_appeals.len() as u64;
    for size in [1, 4, total - 1, total, 100] {
        let case = format!("Tomsk by {size}");
        let pages = every_page(&case, &region.store, tomsk, size, total).await;
        assert_eq!(pages.len() as u64, total.div_ceil(size), "{case}: the number of pages");
        let flat: Vec<AppealId> = pages.iter().flat_map(ids).collect();
        assert_eq!(flat, newest_first(&tomsk_appeals), "{case}: every appeal of Tomsk once, newest first");
    }

    let oldest = appeals.iter().find(|a| Some(a.id) == expected.last().copied()).expect("the oldest");
    let everything = AppealFilter::default();
    let past_the_end = region.store.list_appeals(Scope::Everywhere, &everything, 10, Some(Cursor::of(oldest))).await;
    let past_the_end = past_the_end.expect("a page after the oldest");
    assert_eq!((past_the_end.appeals.len(), past_the_end.has_next_page), (0, false), "after the oldest appeal");
    assert_eq!(past_the_end.total_count, 57, "totalCount after the oldest appeal");
}

async fn pages_neither_skip_nor_repeat_while_new_appeals_arrive(backend: Backend) {
    let Some(region) = Region::open(backend).await else { return };
    let mut originals = Vec::new();
    for i in 0..30 {
        if i % 2 == 0 {
            region.advance(TimeDelta::minutes(1));
        }
        originals.push(region.submit(if i % 3 == 0 { "kedrovy" } else { "tomsk" }, &format!("Старое {i}")).await);
    }
    let mut seen: Vec<AppealId> = Vec::new();
    let mut after: Option<Cursor> = None;
    let mut newcomers = 0;
    for page_number in 1.. {
        let page = region
            .store
            .list_appeals(Scope::Everywhere, &AppealFilter::default(), 7, after)
            .await
            .unwrap_or_else(|error| panic!("page {page_number} failed: {error}"));
        assert_eq!(page.total_count, 30 + newcomers, "page {page_number}: totalCount counts the newcomers too");
        seen.extend(ids(&page));
        if !page.has_next_page {
            break;
        }
        after = page.appeals.last().map(Cursor::of);
        // Three new appeals arrive before the next page is asked for, one of them
        // in the same instant as the one before it.
        for j in 0..3 {
            if j != 2 {
                region.advance(TimeDelta::seconds(10));
            }
            region.submit("tomsk", &format!("Новое {page_number}-{j}")).await;
            newcomers += 1;
        }
        assert!(page_number < 20, "paging does not end");
    }
    assert_eq!(seen, newest_first(&originals), "the pages hold every original appeal once, in order, and no newcomer");
    let first = region.store.list_appeals(Scope::Everywhere, &AppealFilter::default(), 3, None).await.expect("list");
    assert!(first.appeals.iter().all(|a| a.text.as_str().starts_with("Новое")), "a fresh first page shows newcomers");
    assert_eq!(first.total_count, 30 + newcomers, "the fresh first page's totalCount");
}

async fn a_cursor_survives_its_text_form_and_garbage_does_not_decode(backend: Backend) {
    let Some(region) = Region::open(backend).await else { return };
    region.advance(TimeDelta::microseconds(123_457));
    let appeal = region.submit("tomsk", "Курсор").await;
    let cursor = Cursor::of(&appeal);
    assert_eq!(Cursor::decode(&cursor.encode()), Ok(cursor), "a cursor's text form decodes to the cursor");
    assert_eq!(Cursor::decode(&format!(" {} ", cursor.encode())), Ok(cursor), "surrounding blanks are ignored");
    let garbage = [
        ("an empty string", String::new()),
        ("not hex", "not a cursor".to_owned()),
        ("odd hex", "abc".to_owned()),
        ("hex of no separator", hex::encode("1234")),
        ("hex of a bad time", hex::encode(format!("soon/{}", appeal.id))),
        ("hex of a bad id", hex::encode("1700000000000000/not-a-uuid")),
        ("hex of an impossible time", hex::encode(format!("{}/{}", i64::MAX, appeal.id))),
        ("hex of invalid UTF-8", "fffe2f31".to_owned()),
        ("the id alone", appeal.id.to_string()),
    ];
    for (case, text) in garbage {
        let decoded = Cursor::decode(&text);
        assert_eq!(decoded.as_ref().map_err(|error| error.field), Err("after"), "{case}: {text:?}");
    }
}

/// `й` and `ё` each written two ways: composed (one character) and decomposed
/// (a base letter and a combining mark), which read the same.
const COMPOSED_YOT_AND_YO: &str = "Жёлтый подъезд";
const DECOMPOSED_YOT_AND_YO: &str = "Же\u{0308}лтыи\u{0306} подъезд";

async fn text_search_matches_composed_and_decomposed_letters_and_reads_yo_as_ye(backend: Backend) {
    let Some(region) = Region::open(backend).await else { return };
    let decomposed = region.submit("tomsk", &format!("{DECOMPOSED_YOT_AND_YO}, дверь сломана")).await;
    let composed = region.submit("tomsk", &format!("{COMPOSED_YOT_AND_YO}, свет не горит")).await;
    let percent = region.submit("tomsk", "Ёлка: скидка 100% на_ремонт").await;
    assert_eq!(decomposed.text.as_str(), "Жёлтый подъезд, дверь сломана", "a decomposed text is stored composed");
    assert_eq!(region.fetch(decomposed.id).await.text.as_str(), "Жёлтый подъезд, дверь сломана", "and read back so");
    let (broken, dark) = ("Жёлтый подъезд, дверь сломана", "Жёлтый подъезд, свет не горит");
    let both: &[&str] = &[broken, dark];
    let cases: [(&str, &str, &[&str]); 11] = [
        ("composed й and е", "желтый", both),
        ("composed й and ё", "жёлтый", both),
        ("decomposed й and ё", "же\u{0308}лтыи\u{0306}", both),
        ("decomposed й and е", "желтыи\u{0306}", both),
        ("capitals, Ё", "ЖЁЛТЫЙ ПОДЪЕЗД", both),
        ("capitals, decomposed Ё", "ЖЕ\u{0308}ЛТЫЙ", both),
        ("и is not й", "желтыи ", &[]),
        ("Ё at the start, found by е", "елка", &["Ёлка: скидка 100% на_ремонт"]),
        ("a percent sign is literal", "100%", &["Ёлка: скидка 100% на_ремонт"]),
        ("an underscore is literal", "на_ремонт", &["Ёлка: скидка 100% на_ремонт"]),
        ("an underscore is not a wildcard", "на ремонт", &[]),
    ];
    for (case, text, expected) in cases {
        let found = texts(case, &region.store, Scope::Everywhere, &searching(text)).await;
        assert_eq!(found, set(expected), "{case}: {text:?}");
    }
    let folded = region.strings("SELECT text_folded FROM appeal ORDER BY number").await;
    assert_eq!(
        folded,
        ["желтый подъезд, дверь сломана", "желтый подъезд, свет не горит", "елка: скидка 100% на_ремонт"],
        "the stored fold: composed, lowercase, е for ё"
    );
    assert_eq!((composed.version, percent.version), (1, 1), "plain appeals");
}

async fn the_text_migration_refolds_appeals_stored_with_the_old_fold(backend: Backend) {
    let Some(region) = Region::open(backend).await else { return };
    let tree = region.submit("tomsk", "Ёлку во дворе не убрали").await;
    // As the fold before the migration left it: lowercase only, ё kept.
    region
        .execute(&format!("UPDATE appeal SET text_folded = 'ёлку во дворе не убрали' WHERE number = '{}'", tree.number))
        .await;
    assert_eq!(texts("before", &region.store, Scope::Everywhere, &searching("елку")).await, set(&[]), "the old fold");

    let connection = Database::connect(region.db.url.as_str()).await.expect("a connection for the migrator");
    // The text migration and every later one (on empty tables) are undone.
    let since_text = Migrator::migrations()
        .iter()
        .rev()
        .position(|migration| migration.name() == "m20261203_000010_refold_appeal_text")
        .expect("the text migration is listed");
    let steps = u32::try_from(since_text + 1).expect("a few migrations");
    Migrator::down(&connection, Some(steps)).await.expect("undoing the text migration, a no-op");
    Migrator::up(&connection, None).await.expect("applying it again");
    let _ = connection.close().await;
    let found = texts("after", &region.store, Scope::Everywhere, &searching("елку")).await;
    assert_eq!(found, set(&["Ёлку во дворе не убрали"]), "the migration refolded the stored text");
    assert_eq!(region.fetch(tree.id).await, tree, "and changed nothing else");
}

/// The migration that refolds stored texts repeats the domain's fold, since
/// migrations do not depend on the domain; the two must agree.
#[test]
fn the_migrations_search_fold_is_the_domains() {
    let tricky = [
        COMPOSED_YOT_AND_YO,
        DECOMPOSED_YOT_AND_YO,
        "ЁЛКА Ёлка ёлка Е\u{0308}лка",
        "İstanbul ΣΟΦΟΣ straße ǅ",
        "e\u{0301} é \u{212B} Å \u{1E9B}\u{0323}",
        "ё\u{0300} е\u{0308}\u{0301}",
        "100% _ \\ ' \"",
        "\u{200F}שלום \u{FEFF}",
        "😀 Z\u{0351}\u{0344}a\u{036B}l\u{0368}g\u{0343}o",
        "",
    ];
    for text in tricky {
        assert_eq!(
            appeals_migrations::fold_for_search(text),
            appeals_core::text::fold_for_search(text),
            "the two folds differ on {text:?}"
        );
    }
}
