//! Who may do what: the product's permission table as one pure function.
//!
//! | operation                                  | INTAKE | ASSISTANT | HEAD | GOVERNOR_OFFICE | AUDITOR | ADMIN |
//! |--------------------------------------------|--------|-----------|------|-----------------|---------|-------|
//! | submit an appeal                           | all    | own       | own  | all             | -       | -     |
//! | read appeals, history, dashboard           | -      | own       | own  | all             | all     | -     |
//! | triage, add a note, extend the deadline    | -      | own       | own  | -               | -       | -     |
//! | mark seen                                  | -      | -         | own  | -               | -       | -     |
//! | resolve                                    | -      | own       | own  | -               | -       | -     |
//! | reopen                                     | -      | -         | own  | all             | -       | -     |
//! | manage users and municipalities            | -      | -         | -    | -               | -       | yes   |
//!
//! A role that may never perform an operation is [`AccessDenied::Forbidden`]. A role
//! that may, acting on an appeal of another municipality, is
//! [`AccessDenied::NotFound`]: an appeal outside one's scope is indistinguishable
//! from one that does not exist. Submitting to another municipality is `Forbidden`,
//! since municipalities are public and appeals are not.

use thiserror::Error;

use crate::id::{MunicipalityId, UserId};
use crate::text::InvalidInput;
use crate::transition::Command;
use crate::vocabulary;

vocabulary!(
    /// A user's one role.
    Role {
        Intake => "INTAKE",
        Assistant => "ASSISTANT",
        Head => "HEAD",
        GovernorOffice => "GOVERNOR_OFFICE",
        Auditor => "AUDITOR",
        Admin => "ADMIN",
    }
);

impl Role {
    /// Whether a user of this role belongs to exactly one municipality.
    pub fn belongs_to_municipality(self) -> bool {
        matches!(self, Role::Assistant | Role::Head)
    }

    /// Parses a role as people type it on a command line: any case, `-` for `_`
    /// (`governor-office`, `Head`).
    pub fn parse_loose(raw: &str) -> Result<Role, InvalidInput> {
        raw.trim().to_ascii_uppercase().replace('-', "_").parse()
    }
}

/// Something a user may try to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operation {
    SubmitAppeal,
    /// Read appeals, their history, and the dashboard.
    ReadAppeals,
    TriageAppeal,
    AddNote,
    ExtendDeadline,
    MarkSeen,
    ResolveAppeal,
    ReopenAppeal,
    /// Queue a reply to a resident again after its delivery failed.
    ResendReply,
    /// Create municipalities and users, revoke users, configure channels.
    ManageDirectory,
}

impl Operation {
    pub const ALL: &'static [Operation] = &[
        Operation::SubmitAppeal,
        Operation::ReadAppeals,
        Operation::TriageAppeal,
        Operation::AddNote,
        Operation::ExtendDeadline,
        Operation::MarkSeen,
        Operation::ResolveAppeal,
        Operation::ReopenAppeal,
        Operation::ResendReply,
        Operation::ManageDirectory,
    ];
}

impl Command {
    /// The operation a command needs permission for.
    pub fn operation(&self) -> Operation {
        match self {
            Command::Triage { .. } => Operation::TriageAppeal,
            Command::AddNote { .. } => Operation::AddNote,
            Command::MarkSeen => Operation::MarkSeen,
            Command::ExtendDeadline { .. } => Operation::ExtendDeadline,
            Command::Resolve { .. } => Operation::ResolveAppeal,
            Command::Reopen { .. } => Operation::ReopenAppeal,
        }
    }
}

/// How far a role reaches for one operation: one cell of the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reach {
    Never,
    OwnMunicipality,
    Everywhere,
}

/// The permission table, row by row.
pub fn reach(role: Role, operation: Operation) -> Reach {
    use Operation as Op;
    use Reach::{Everywhere as All, Never as No, OwnMunicipality as Own};
    use Role::*;
    match (operation, role) {
        (Op::SubmitAppeal, Intake | GovernorOffice) => All,
        (Op::SubmitAppeal, Assistant | Head) => Own,
        (Op::SubmitAppeal, Auditor | Admin) => No,

        (Op::ReadAppeals, Assistant | Head) => Own,
        (Op::ReadAppeals, GovernorOffice | Auditor) => All,
        (Op::ReadAppeals, Intake | Admin) => No,

        (Op::TriageAppeal | Op::AddNote | Op::ExtendDeadline, Assistant | Head) => Own,
        (Op::TriageAppeal | Op::AddNote | Op::ExtendDeadline, Intake | GovernorOffice | Auditor | Admin) => No,

        (Op::MarkSeen, Head) => Own,
        (Op::MarkSeen, Intake | Assistant | GovernorOffice | Auditor | Admin) => No,

        (Op::ResolveAppeal, Assistant | Head) => Own,
        (Op::ResolveAppeal, Intake | GovernorOffice | Auditor | Admin) => No,

        (Op::ReopenAppeal, Head) => Own,
        (Op::ReopenAppeal, GovernorOffice) => All,
        (Op::ReopenAppeal, Intake | Assistant | Auditor | Admin) => No,

        (Op::ResendReply, Assistant | Head) => Own,
        (Op::ResendReply, Intake | GovernorOffice | Auditor | Admin) => No,

        (Op::ManageDirectory, Admin) => All,
        (Op::ManageDirectory, Intake | Assistant | Head | GovernorOffice | Auditor) => No,
    }
}

/// The authenticated user on whose behalf a request runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Actor {
    pub user_id: UserId,
    pub role: Role,
    /// Set exactly for the roles that [belong to a municipality](Role::belongs_to_municipality).
    pub municipality_id: Option<MunicipalityId>,
}

/// Why an actor may not do something. Clients see `FORBIDDEN` or `NOT_FOUND`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum AccessDenied {
    /// The role may never do this.
    #[error("your role may not do this")]
    Forbidden,
    /// The target is outside the actor's scope, and so, as far as the actor can
    /// tell, does not exist.
    #[error("not found")]
    NotFound,
}

/// The municipalities an actor's operation reaches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    Everywhere,
    Municipality(MunicipalityId),
}

impl Scope {
    pub fn contains(self, municipality_id: MunicipalityId) -> bool {
        match self {
            Scope::Everywhere => true,
            Scope::Municipality(own) => own == municipality_id,
        }
    }
}

impl Actor {
    /// Where `operation` reaches for this actor, or `Forbidden` if nowhere.
    pub fn scope(&self, operation: Operation) -> Result<Scope, AccessDenied> {
        match (reach(self.role, operation), self.municipality_id) {
            (Reach::Everywhere, _) => Ok(Scope::Everywhere),
            (Reach::OwnMunicipality, Some(own)) => Ok(Scope::Municipality(own)),
            // A municipal role without a municipality reaches nothing; storage never
            // creates such a user, but a stray row must not widen anyone's reach.
            (Reach::OwnMunicipality, None) | (Reach::Never, _) => Err(AccessDenied::Forbidden),
        }
    }
}

/// May `actor` perform `operation` on something of `municipality` (an appeal's, or
/// the one a submission is addressed to)?
pub fn authorize(actor: &Actor, operation: Operation, municipality: MunicipalityId) -> Result<(), AccessDenied> {
    let scope = actor.scope(operation)?;
    if scope.contains(municipality) {
        Ok(())
    } else if operation == Operation::SubmitAppeal {
        Err(AccessDenied::Forbidden)
    } else {
        Err(AccessDenied::NotFound)
    }
}
