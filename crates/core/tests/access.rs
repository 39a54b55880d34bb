//! Who may do what: every cell of the spec's permission table, for the actor's own
//! municipality and for another one, and how roles are typed on a command line.

use uuid::Uuid;

use appeals_core::text::{NoteText, Reason, ResponseText};
use appeals_core::{
    AccessDenied, Actor, Command, DeadlinePolicy, ExtensionDays, MunicipalityId, Operation, Outcome, Reach, Role,
    UserId, authorize, reach,
};

use Cell::{All, Any, No, Own, Yes};

/// One cell of the spec's table, in the spec's own words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cell {
    /// `-`: the role may never do this.
    No,
    /// `own`: only in the actor's municipality.
    Own,
    /// `any municipality` / `any`: submitting anywhere.
    Any,
    /// `all`: every municipality.
    All,
    /// `yes`: the directory, which belongs to no municipality.
    Yes,
}

/// The table's columns, in the spec's order.
const ROLES: [Role; 6] = [Role::Intake, Role::Assistant, Role::Head, Role::GovernorOffice, Role::Auditor, Role::Admin];

/// The spec's permission table, row by row ("Roles and scope").
#[rustfmt::skip]
const TABLE: [(Operation, [Cell; 6]); 10] = [
    //                             INTAKE ASSISTANT HEAD GOVERNOR_OFFICE AUDITOR ADMIN
    (Operation::SubmitAppeal,    [Any,   Own,      Own, Any,            No,     No ]),
    (Operation::ReadAppeals,     [No,    Own,      Own, All,            All,    No ]),
    (Operation::TriageAppeal,    [No,    Own,      Own, No,             No,     No ]),
    (Operation::AddNote,         [No,    Own,      Own, No,             No,     No ]),
    (Operation::ExtendDeadline,  [No,    Own,      Own, No,             No,     No ]),
    (Operation::MarkSeen,        [No,    No,       Own, No,             No,     No ]),
    (Operation::ResolveAppeal,   [No,    Own,      Own, No,             No,     No ]),
    (Operation::ReopenAppeal,    [No,    No,       Own, All,            No,     No ]),
    (Operation::ResendReply,     [No,    Own,      Own, No,             No,     No ]),
    (Operation::ManageDirectory, [No,    No,       No,  No,             No,     Yes]),
];

/// Where the target of an operation lies, seen from the actor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    OwnMunicipality,
    AnotherMunicipality,
}

/// What the spec says a cell means for a target: a role that may never act is
/// forbidden everywhere; one limited to its own municipality finds another's
/// appeals not to exist, except that submitting to another is forbidden outright.
fn expected(operation: Operation, cell: Cell, target: Target) -> Result<(), AccessDenied> {
    match (cell, target) {
        (No, _) => Err(AccessDenied::Forbidden),
        (Any | All | Yes, _) | (Own, Target::OwnMunicipality) => Ok(()),
        (Own, Target::AnotherMunicipality) if operation == Operation::SubmitAppeal => Err(AccessDenied::Forbidden),
        (Own, Target::AnotherMunicipality) => Err(AccessDenied::NotFound),
    }
}

#[test]
fn every_cell_of_the_permission_table_holds_in_the_own_and_in_another_municipality() {
    let mut wrong = Vec::new();
    let mut checked = 0;
    for (operation, cells) in TABLE {
        for (role, cell) in ROLES.into_iter().zip(cells) {
            for (target, municipality) in
                [(Target::OwnMunicipality, own_municipality()), (Target::AnotherMunicipality, another_municipality())]
            {
                let want = expected(operation, cell, target);
                let got = authorize(&actor(role), operation, municipality);
                checked += 1;
                if got != want {
                    wrong.push(format!(
                        "{role} × {operation:?} ({cell:?}) in {target:?}: expected {want:?}, got {got:?}"
                    ));
                }
            }
        }
    }
    assert_eq!(checked, 6 * TABLE.len() * 2);
    assert!(wrong.is_empty(), "cells that disagree with the spec:\n{}", wrong.join("\n"));
}

#[test]
fn the_table_lists_every_operation_once_and_every_role() {
    let listed: Vec<Operation> = TABLE.iter().map(|(operation, _)| *operation).collect();
    assert_eq!(listed, Operation::ALL, "the table's rows are the operations, in order");
    assert_eq!(ROLES.as_slice(), Role::ALL, "the table's columns are the roles, in order");
}

#[test]
fn reach_is_the_table_cell_by_cell() {
    for (operation, cells) in TABLE {
        for (role, cell) in ROLES.into_iter().zip(cells) {
            let want = match cell {
                No => Reach::Never,
                Own => Reach::OwnMunicipality,
                Any | All | Yes => Reach::Everywhere,
            };
            assert_eq!(reach(role, operation), want, "{role} × {operation:?}");
        }
    }
}

#[test]
fn an_assistant_cannot_mark_an_appeal_seen() {
    assert_eq!(
        authorize(&actor(Role::Assistant), Operation::MarkSeen, own_municipality()),
        Err(AccessDenied::Forbidden)
    );
}

#[test]
fn an_appeal_of_another_municipality_looks_as_if_it_did_not_exist() {
    for operation in [Operation::ReadAppeals, Operation::AddNote, Operation::MarkSeen, Operation::ReopenAppeal] {
        assert_eq!(
            authorize(&actor(Role::Head), operation, another_municipality()),
            Err(AccessDenied::NotFound),
            "a head's {operation:?} elsewhere"
        );
    }
}

#[test]
fn submitting_to_another_municipality_is_forbidden_rather_than_hidden() {
    for role in [Role::Assistant, Role::Head] {
        assert_eq!(
            authorize(&actor(role), Operation::SubmitAppeal, another_municipality()),
            Err(AccessDenied::Forbidden),
            "{role}"
        );
    }
}

#[test]
fn a_municipal_role_without_a_municipality_reaches_nothing() {
    for role in [Role::Assistant, Role::Head] {
        let stray = Actor { user_id: user_id(), role, municipality_id: None };
        for operation in Operation::ALL {
            assert_eq!(
                authorize(&stray, *operation, own_municipality()),
                Err(AccessDenied::Forbidden),
                "{role} without a municipality × {operation:?}"
            );
        }
    }
}

#[test]
fn each_command_asks_for_the_permission_of_its_operation() {
    let policy = DeadlinePolicy::default();
    let cases = [
        (Command::Triage { priority: None, category: None, tags: None }, Operation::TriageAppeal),
        (Command::AddNote { text: NoteText::parse("заметка").expect("a valid note") }, Operation::AddNote),
        (Command::MarkSeen, Operation::MarkSeen),
        (
            Command::ExtendDeadline {
                days: ExtensionDays::parse(5, &policy).expect("a valid extension"),
                reason: Reason::parse("нужно время").expect("a valid reason"),
            },
            Operation::ExtendDeadline,
        ),
        (
            Command::Resolve {
                outcome: Outcome::Explained,
                response: ResponseText::parse("разъяснено").expect("a valid response"),
                duplicate_of: None,
            },
            Operation::ResolveAppeal,
        ),
        (Command::Reopen { reason: Reason::parse("ответ неполный").expect("a valid reason") }, Operation::ReopenAppeal),
    ];
    for (command, operation) in cases {
        assert_eq!(command.operation(), operation, "{}", command.name());
    }
}

#[test]
fn only_assistants_and_heads_belong_to_a_municipality() {
    for role in Role::ALL {
        let expected = matches!(role, Role::Assistant | Role::Head);
        assert_eq!(role.belongs_to_municipality(), expected, "{role}");
    }
}

#[test]
fn roles_are_read_in_any_case_with_hyphens_for_underscores() {
    let cases: &[(&str, Option<Role>)] = &[
        ("governor-office", Some(Role::GovernorOffice)),
        ("governor_office", Some(Role::GovernorOffice)),
        ("Governor-Office", Some(Role::GovernorOffice)),
        ("GOVERNOR_OFFICE", Some(Role::GovernorOffice)),
        ("Head", Some(Role::Head)),
        ("head", Some(Role::Head)),
        ("INTAKE", Some(Role::Intake)),
        ("assistant", Some(Role::Assistant)),
        ("Auditor", Some(Role::Auditor)),
        ("admin", Some(Role::Admin)),
        ("  head  ", Some(Role::Head)),
        ("", None),
        ("   ", None),
        ("boss", None),
        ("heads", None),
        ("governor office", None),
        ("governoroffice", None),
        ("governor—office", None),
        ("глава", None),
    ];
    for (raw, expected) in cases {
        let parsed = Role::parse_loose(raw);
        assert_eq!(parsed.as_ref().ok(), expected.as_ref(), "{raw:?} parsed as {parsed:?}");
    }
}

#[test]
fn every_role_reads_back_from_its_contract_name_typed_loosely() {
    for role in Role::ALL {
        let typed = role.as_str().to_lowercase().replace('_', "-");
        assert_eq!(Role::parse_loose(&typed), Ok(*role), "{typed:?}");
    }
}

/// An actor of `role`, placed in the own municipality when the role belongs to one.
fn actor(role: Role) -> Actor {
    let municipality_id = role.belongs_to_municipality().then(own_municipality);
    Actor { user_id: user_id(), role, municipality_id }
}

fn own_municipality() -> MunicipalityId {
    MunicipalityId::from_uuid(Uuid::from_u128(0x70))
}

fn another_municipality() -> MunicipalityId {
    MunicipalityId::from_uuid(Uuid::from_u128(0x71))
}

fn user_id() -> UserId {
    UserId::from_uuid(Uuid::from_u128(0x5e))
}
