//! Municipalities and users: the directory the administrators keep, and the
//! lookup of a user by API token. Whether the caller may change the directory is
//! the API's question (the command line is trusted); these functions only write.
//!
//! A token is 256 random bits, shown once when the user is created; only its
//! SHA-256 digest is stored. For a secret of that strength a fast digest is the
//! right choice: a password hash such as argon2 would cost ~0.1 s per request and
//! add nothing against guessing.

use appeals_core::text::{MunicipalityCode, MunicipalityName, PersonName};
use appeals_core::{Actor, InvalidInput, MunicipalityId, Role, UserId};
use chrono::{DateTime, Utc};
use sea_orm::ActiveValue::Set;
use sea_orm::prelude::Uuid;
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, QueryFilter, QueryOrder, Statement,
    TransactionTrait, TryInsertResult,
};
use sha2::{Digest, Sha256};

use crate::Store;
use crate::entity::{app_user, municipality};
use crate::error::{Result, StorageError};

/// A municipality: public to every authenticated user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Municipality {
    pub id: MunicipalityId,
    pub code: String,
    pub name: String,
}

/// A user of the API: a person or a service such as an intake bot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: UserId,
    pub name: String,
    pub role: Role,
    pub municipality_id: Option<MunicipalityId>,
    pub revoked_at: Option<DateTime<Utc>>,
}

impl User {
    /// The user as an actor in `appeals-core`'s permission checks.
    pub fn actor(&self) -> Actor {
        Actor { user_id: self.id, role: self.role, municipality_id: self.municipality_id }
    }
}

/// A freshly issued API token. Shown once; only its digest is stored.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(String);

impl Token {
    fn generate() -> Self {
        let secret: [u8; 32] = rand::random();
        Token(format!("apl_{}", hex::encode(secret)))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(…)")
    }
}

/// The stored form of a token.
pub fn token_digest(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

impl Store {
    /// Every municipality, by code. Read once, then remembered: a municipality
    /// never changes once created.
    pub async fn municipalities(&self) -> Result<Vec<Municipality>> {
        match self.lookups().all_municipalities() {
            Some(all) => Ok(all),
            None => self.read_municipalities().await,
        }
    }

    /// Reads every municipality from the database, and remembers them.
    async fn read_municipalities(&self) -> Result<Vec<Municipality>> {
        let rows = municipality::Entity::find().order_by_asc(municipality::Column::Code).all(self.db()).await?;
        let all: Vec<Municipality> = rows.into_iter().map(Municipality::from).collect();
        self.lookups().remember_municipalities(&all);
        Ok(all)
    }

    pub async fn municipality_by_code(&self, code: &MunicipalityCode) -> Result<Option<Municipality>> {
        if let Some(known) = self.lookups().municipality_by_code(code.as_str()) {
            return Ok(Some(known));
        }
        // Not among those remembered: perhaps created since, by another process.
        let all = self.read_municipalities().await?;
        Ok(all.into_iter().find(|municipality| municipality.code == code.as_str()))
    }

    /// The municipality with `code`, or `Invalid` on `municipalityCode` (the
    /// client sees `VALIDATION`: "no municipality `code`") when there is none.
    pub async fn known_municipality(&self, code: &MunicipalityCode) -> Result<Municipality> {
        self.municipality_by_code(code)
            .await?
            .ok_or_else(|| InvalidInput::new("municipalityCode", format!("no municipality `{code}`")).into())
    }

    pub async fn municipalities_by_ids(&self, ids: &[MunicipalityId]) -> Result<Vec<Municipality>> {
        let lookups = self.lookups();
        let known: Option<Vec<Municipality>> = ids.iter().map(|id| lookups.municipality_by_id(*id)).collect();
        if let Some(known) = known {
            return Ok(known);
        }
        let all = self.read_municipalities().await?;
        Ok(all.into_iter().filter(|municipality| ids.contains(&municipality.id)).collect())
    }

    /// Creates a municipality; its code must be new (`VALIDATION` otherwise).
    pub async fn create_municipality(&self, code: MunicipalityCode, name: MunicipalityName) -> Result<Municipality> {
        let row = municipality::ActiveModel {
            id: Set(Uuid::now_v7()),
            code: Set(code.as_str().to_owned()),
            name: Set(name.as_str().to_owned()),
            created_at: Set(self.now()),
        };
        let inserted = municipality::Entity::insert(row)
            .on_conflict(OnConflict::column(municipality::Column::Code).do_nothing().to_owned())
            .exec_with_returning(self.db())
            .await;
        match inserted {
            Ok(row) => {
                self.read_municipalities().await?;
                Ok(row.into())
            }
            Err(sea_orm::DbErr::RecordNotInserted | sea_orm::DbErr::RecordNotFound(_)) => {
                Err(InvalidInput::new("code", format!("the municipality `{code}` already exists")).into())
            }
            Err(error) => Err(error.into()),
        }
    }

    /// Creates a user and issues its token. Assistants and heads name their
    /// municipality; no other role may.
    pub async fn create_user(
        &self,
        name: PersonName,
        role: Role,
        municipality_code: Option<&MunicipalityCode>,
    ) -> Result<(User, Token)> {
        let municipality_id = match (role.belongs_to_municipality(), municipality_code) {
            (true, Some(code)) => Some(self.known_municipality(code).await?.id),
            (true, None) => {
                return Err(InvalidInput::new("municipalityCode", format!("a {role} belongs to a municipality")).into());
            }
            (false, Some(_)) => {
                return Err(InvalidInput::new(
                    "municipalityCode",
                    format!("a {role} does not belong to a municipality"),
                )
                .into());
            }
            (false, None) => None,
        };
        let token = Token::generate();
        let row = app_user::ActiveModel {
            id: Set(Uuid::now_v7()),
            name: Set(name.as_str().to_owned()),
            role: Set(role.as_str().to_owned()),
            municipality_id: Set(municipality_id.map(|id| id.as_uuid())),
            token_digest: Set(token_digest(token.expose())),
            created_at: Set(self.now()),
            revoked_at: Set(None),
        };
        let user = row.insert(self.db()).await?.try_into()?;
        Ok((user, token))
    }

    /// The active (not revoked) user that holds `token`, if any. Remembered
    /// until revoked (see `lookups`); an unknown token is asked about every time.
    pub async fn user_by_token(&self, token: &str) -> Result<Option<User>> {
        let digest = token_digest(token);
        if let Some(user) = self.user_lookups().user(&digest) {
            return Ok(Some(user));
        }
        let seen = self.user_lookups().revocations();
        let row = app_user::Entity::find()
            .filter(app_user::Column::TokenDigest.eq(digest.as_str()))
            .filter(app_user::Column::RevokedAt.is_null())
            .one(self.db())
            .await?;
        let user = row.map(User::try_from).transpose()?;
        if let Some(user) = &user {
            self.user_lookups().remember_user(digest, user, seen);
        }
        Ok(user)
    }

    pub async fn user(&self, id: UserId) -> Result<Option<User>> {
        let row = app_user::Entity::find_by_id(id.as_uuid()).one(self.db()).await?;
        row.map(User::try_from).transpose()
    }

    pub async fn users_by_ids(&self, ids: &[UserId]) -> Result<Vec<User>> {
        let ids: Vec<Uuid> = ids.iter().map(|id| id.as_uuid()).collect();
        let rows = app_user::Entity::find().filter(app_user::Column::Id.is_in(ids)).all(self.db()).await?;
        rows.into_iter().map(User::try_from).collect()
    }

    /// Revokes a user: its token stops working from the next request on.
    /// Revoking twice keeps the first time.
    pub async fn revoke_user(&self, id: UserId) -> Result<User> {
        let txn = self.db().begin().await?;
        app_user::Entity::update_many()
            .col_expr(app_user::Column::RevokedAt, Expr::value(self.now()))
            .filter(app_user::Column::Id.eq(id.as_uuid()))
            .filter(app_user::Column::RevokedAt.is_null())
            .exec(&txn)
            .await?;
        if txn.get_database_backend() == DbBackend::Postgres {
            // Every store on this database forgets the user as this commits.
            let announce = Statement::from_sql_and_values(
                DbBackend::Postgres,
                "SELECT pg_notify($1, $2)",
                [crate::announcements::REVOCATIONS.into(), id.as_uuid().to_string().into()],
            );
            txn.execute_raw(announce).await?;
        }
        // Forgotten before the commit (so that no request reading the user now
        // keeps it) and after it (so that none read before the commit is kept).
        self.lookups().forget_user(id);
        txn.commit().await?;
        self.lookups().forget_user(id);
        self.announcements().revoked(crate::Revocation::User(id));
        self.user(id).await?.ok_or(StorageError::NotFound)
    }
}

/// Whether an insert that may have hit `ON CONFLICT DO NOTHING` inserted its row.
pub(crate) fn inserted<T>(result: TryInsertResult<T>) -> Option<T> {
    match result {
        TryInsertResult::Inserted(value) => Some(value),
        TryInsertResult::Empty | TryInsertResult::Conflicted => None,
    }
}
