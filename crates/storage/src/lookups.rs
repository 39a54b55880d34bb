//! What the store remembers between requests, so that a request does not ask
//! the database again what it already knows:
//!
//! - **Municipalities** never change once created (nothing renames or deletes
//!   one), so all of them are read once and kept. A code or id not among them is
//!   looked up again (another process may have created it), so a new
//!   municipality is seen at once; an unknown code costs what it cost before.
//! - **Users by token**, until revoked. A revocation through this store forgets
//!   the user at once. On PostgreSQL the revocation is also announced
//!   (`NOTIFY appeals_user_revoked`), and every store listening on the same
//!   database forgets the user too (`announcements`); while its listener is not connected (at
//!   start, or after the connection broke and before it is back), a store keeps
//!   nothing and asks the database every time, so no revocation is ever missed.
//!   On SQLite the store is the only writer (one server process per file), so
//!   its own revocations are all there are.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};

use appeals_core::{MunicipalityId, UserId};

use crate::directory::{Municipality, User};

/// The most users kept; past it the cache starts again empty.
const MAX_USERS: usize = 10_000;

/// Every municipality, by code and by id.
#[derive(Debug, Default)]
struct Municipalities {
    by_code: HashMap<String, Municipality>,
    by_id: HashMap<MunicipalityId, Municipality>,
}

/// The store's memory; shared by its clones.
#[derive(Debug)]
pub(crate) struct Lookups {
    municipalities: RwLock<Option<Arc<Municipalities>>>,
    users: RwLock<HashMap<String, User>>,
    /// Whether users may be kept: always on SQLite; on PostgreSQL only while the
    /// revocation listener is connected.
    users_trusted: AtomicBool,
    /// Counts the revocations heard (and every loss of trust): a user read from
    /// the database is kept only if none came while it was read, as the one that
    /// came may be its own.
    revocations: AtomicU64,
}

impl Lookups {
    pub(crate) fn new(users_trusted: bool) -> Lookups {
        Lookups {
            municipalities: RwLock::new(None),
            users: RwLock::new(HashMap::new()),
            users_trusted: AtomicBool::new(users_trusted),
            revocations: AtomicU64::new(0),
        }
    }

    pub(crate) fn municipality_by_code(&self, code: &str) -> Option<Municipality> {
        self.municipalities().and_then(|all| all.by_code.get(code).cloned())
    }

    pub(crate) fn municipality_by_id(&self, id: MunicipalityId) -> Option<Municipality> {
        self.municipalities().and_then(|all| all.by_id.get(&id).cloned())
    }

    /// Every municipality, by code; `None` until they have been read.
    pub(crate) fn all_municipalities(&self) -> Option<Vec<Municipality>> {
        let all = self.municipalities()?;
        let mut list: Vec<Municipality> = all.by_code.values().cloned().collect();
        list.sort_by(|a, b| a.code.cmp(&b.code));
        Some(list)
    }

    /// Keeps `all`, every municipality there is.
    pub(crate) fn remember_municipalities(&self, all: &[Municipality]) {
        let municipalities = Municipalities {
            by_code: all.iter().map(|m| (m.code.clone(), m.clone())).collect(),
            by_id: all.iter().map(|m| (m.id, m.clone())).collect(),
        };
        *self.municipalities.write().unwrap_or_else(PoisonError::into_inner) = Some(Arc::new(municipalities));
    }

    fn municipalities(&self) -> Option<Arc<Municipalities>> {
        self.municipalities.read().unwrap_or_else(PoisonError::into_inner).clone()
    }

    pub(crate) fn user(&self, digest: &str) -> Option<User> {
        if !self.users_trusted.load(Ordering::Acquire) {
            return None;
        }
        self.users.read().unwrap_or_else(PoisonError::into_inner).get(digest).cloned()
    }

    /// The revocations heard so far; taken before a user is read from the
    /// database and passed to [`Lookups::remember_user`].
    pub(crate) fn revocations(&self) -> u64 {
        self.revocations.load(Ordering::Acquire)
    }

    /// Keeps `user`, read from the database when [`Lookups::revocations`] was
    /// `seen`, unless a revocation has been heard since.
    pub(crate) fn remember_user(&self, digest: String, user: &User, seen: u64) {
        if !self.users_trusted.load(Ordering::Acquire) {
            return;
        }
        let mut users = self.users.write().unwrap_or_else(PoisonError::into_inner);
        // Checked under the lock that forgetting takes too.
        if self.revocations.load(Ordering::Acquire) != seen {
            return;
        }
        if users.len() >= MAX_USERS {
            users.clear();
        }
        users.insert(digest, user.clone());
    }

    /// Forgets `id`'s token: it was revoked.
    pub(crate) fn forget_user(&self, id: UserId) {
        let mut users = self.users.write().unwrap_or_else(PoisonError::into_inner);
        self.revocations.fetch_add(1, Ordering::AcqRel);
        users.retain(|_, user| user.id != id);
    }

    /// Starts or stops keeping users; stopping forgets every one, since a
    /// revocation may pass unheard meanwhile.
    pub(crate) fn trust_users(&self, trusted: bool) {
        let mut users = self.users.write().unwrap_or_else(PoisonError::into_inner);
        self.revocations.fetch_add(1, Ordering::AcqRel);
        self.users_trusted.store(trusted, Ordering::Release);
        users.clear();
    }
}
