//! Fuzzing the edges where untrusted input enters the domain: every parser and
//! the command path take arbitrary input, hostile Unicode included, and answer
//! with a value or a typed error, never a panic; whatever they accept keeps its
//! invariant. Bounded by the case count (`PROPTEST_CASES` raises it for a longer
//! run); CI runs the default.

use chrono::{DateTime, TimeDelta, Utc};
use proptest::prelude::*;

use appeals_core::text::{
    AppealText, Category, Contact, ExternalId, MunicipalityCode, NoteText, PersonName, Reason, ResponseText, parse_tags,
};
use appeals_core::{
    Appeal, AppealId, Channel, Command, DeadlinePolicy, ExtensionDays, MunicipalityId, Outcome, PolicyDuration,
    Priority, Role, Status, Submission, UserId, replay,
};

/// Strings that stress text handling: zero-width and bidirectional marks,
/// combining characters, emoji, NUL and other controls, SQL and JSON fragments,
/// and very long runs.
fn hostile_text() -> impl Strategy<Value = String> {
    let pieces = prop_oneof![
        Just("\u{200B}".to_owned()),
        Just("\u{200F}".to_owned()),
        Just("\u{202E}".to_owned()),
        Just("\u{FEFF}".to_owned()),
        Just("e\u{0301}\u{0301}\u{0301}".to_owned()),
        Just("👩‍👩‍👧‍👦".to_owned()),
        Just("\0".to_owned()),
        Just("\u{7}\u{1b}[31m".to_owned()),
        Just("'; DROP TABLE appeal; --".to_owned()),
        Just("\"}]}".to_owned()),
        Just("%_\\".to_owned()),
        Just("Яма на дороге".to_owned()),
        Just(" \t\n".to_owned()),
        "\\PC{0,40}",
        any::<String>(),
        Just("я".repeat(5_001)),
        Just("x".repeat(20_001)),
    ];
    proptest::collection::vec(pieces, 0..6).prop_map(|parts| parts.concat())
}

/// A parsed value, when accepted, is trimmed, non-empty, within `max` characters
/// and free of control characters other than line breaks and tabs.
fn check_accepted(raw: &str, accepted: Option<&str>, max: usize) {
    let Some(value) = accepted else { return };
    assert_eq!(value, value.trim(), "{raw:?} was accepted untrimmed");
    assert!(!value.is_empty(), "{raw:?} was accepted empty");
    assert!(value.chars().count() <= max, "{raw:?} was accepted over {max} characters");
    assert!(
        !value.chars().any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t')),
        "{raw:?} was accepted with a control character"
    );
}

fn at(seconds: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_780_000_000 + seconds, 0).unwrap_or_default()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn every_text_parser_accepts_only_what_keeps_its_invariant(raw in hostile_text()) {
        check_accepted(&raw, AppealText::parse(&raw).ok().as_ref().map(AppealText::as_str), AppealText::MAX_CHARS);
        check_accepted(&raw, ResponseText::parse(&raw).ok().as_ref().map(ResponseText::as_str), ResponseText::MAX_CHARS);
        check_accepted(&raw, Reason::parse(&raw).ok().as_ref().map(Reason::as_str), Reason::MAX_CHARS);
        check_accepted(&raw, NoteText::parse(&raw).ok().as_ref().map(NoteText::as_str), NoteText::MAX_CHARS);
        check_accepted(&raw, PersonName::parse(&raw).ok().as_ref().map(PersonName::as_str), PersonName::MAX_CHARS);
        check_accepted(&raw, Contact::parse(&raw).ok().as_ref().map(Contact::as_str), Contact::MAX_CHARS);
        check_accepted(&raw, ExternalId::parse(&raw).ok().as_ref().map(ExternalId::as_str), ExternalId::MAX_CHARS);
        check_accepted(&raw, Category::parse(&raw).ok().as_ref().map(Category::as_str), Category::MAX_CHARS);
        if let Ok(code) = MunicipalityCode::parse(&raw) {
            prop_assert!(code.as_str().chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'));
        }
        let _ = parse_tags(&[raw.as_str(), raw.as_str()]);
    }

    #[test]
    fn identifiers_enums_roles_and_durations_never_panic_on_garbage(raw in hostile_text()) {
        let _ = raw.parse::<AppealId>();
        let _ = raw.parse::<UserId>();
        let _ = raw.parse::<Status>();
        let _ = raw.parse::<Outcome>();
        let _ = raw.parse::<Channel>();
        let _ = Role::parse_loose(&raw);
        if let Ok(duration) = raw.parse::<PolicyDuration>() {
            prop_assert!(duration.as_time_delta() > TimeDelta::zero());
        }
    }

    #[test]
    fn the_command_path_answers_every_input_with_a_result(
        texts in proptest::collection::vec(hostile_text(), 8),
        picks in proptest::collection::vec((0usize..6, any::<i32>(), -5i64..40, any::<bool>()), 1..24),
    ) {
        let policy = DeadlinePolicy::default();
        let Ok(text) = AppealText::parse(&texts[0]).or_else(|_| AppealText::parse("fallback")) else {
            return Err(TestCaseError::fail("a literal text parses"));
        };
        let submission = Submission { channel: Channel::Vk, external_id: None, author_name: None, author_contact: None, text };
        let id = AppealId::generate();
        let received = Appeal::receive(id, "X-1".to_owned(), MunicipalityId::generate(), submission, None, at(0), &policy);
        let mut appeal = received.appeal;
        let mut events = vec![received.event.record(id, 1, "")];
        let actor = UserId::generate();
        for (step, (kind, version, days, own_id)) in picks.into_iter().enumerate() {
            let raw = &texts[step % texts.len()];
            // Inputs that do not parse are refused before the state machine sees them.
            let command = match kind {
                0 => Command::MarkSeen,
                1 => match NoteText::parse(raw) { Ok(text) => Command::AddNote { text }, Err(_) => continue },
                2 => match (ExtensionDays::parse(days, &policy), Reason::parse(raw)) {
                    (Ok(days), Ok(reason)) => Command::ExtendDeadline { days, reason },
                    _ => continue,
                },
                3 => match ResponseText::parse(raw) {
                    Ok(response) => Command::Resolve {
                        outcome: if own_id { Outcome::Duplicate } else { Outcome::Declined },
                        response,
                        duplicate_of: own_id.then_some(id),
                    },
                    Err(_) => continue,
                },
                4 => match Reason::parse(raw) { Ok(reason) => Command::Reopen { reason }, Err(_) => continue },
                _ => Command::Triage { priority: Some(Priority::Urgent), category: Category::parse(raw).ok(), tags: parse_tags(&[raw]).ok() },
            };
            let expected = if command.changes_version() { Some(if version % 3 == 0 { version } else { appeal.version }) } else { None };
            let before = appeal.clone();
            match appeal.apply(&command, actor, at(60 * (step as i64 + 1)), expected) {
                Ok(applied) => {
                    let seq = i32::try_from(events.len() + 1).unwrap_or(i32::MAX);
                    let previous = events.last().map(|event| event.hash.clone()).unwrap_or_default();
                    events.push(applied.event.record(id, seq, &previous));
                    appeal = applied.appeal;
                }
                Err(_) => prop_assert_eq!(&appeal, &before, "a refused command changed the appeal"),
            }
        }
        prop_assert_eq!(replay(&events).ok(), Some(appeal), "the history replays to the appeal");
    }
}
