//! Documents named by their hash instead of sent in full.
//!
//! - **Automatic persisted queries**, Apollo's protocol: a request carries
//!   `extensions.persistedQuery { version: 1, sha256Hash }`. Without a `query`, the
//!   hash is looked up; an unknown one is `PersistedQueryNotFound`, and the client
//!   sends the query with its hash, which registers it. A query whose SHA-256 is
//!   not the hash it came with is refused and never stored, so no one can make a
//!   hash stand for another document. Registered documents live in a cache bounded
//!   in bytes, least recently used first out.
//! - **Trusted documents**: a manifest `{ "<sha256 hex>": "<document>" }`, as
//!   GraphQL Code Generator's client preset writes `persisted-documents.json`.
//!   With one, the server runs only its documents: asked for by `documentId`
//!   (`sha256:<hex>`), by an APQ hash, or sent in full when the full text's hash is
//!   listed. Anything else is `PERSISTED_QUERY_NOT_IN_LIST`, and APQ registration
//!   is off.
//!
//! A document is registered only after it has passed admission
//! ([`crate::admission`]), so the cache holds nothing the server would refuse.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use lru::LruCache;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::error::{ApiError, ErrorCode};

/// A document's SHA-256.
pub type Hash = [u8; 32];

/// How persisted documents are served.
#[derive(Debug, Clone, Default)]
pub struct PersistedSettings {
    /// The most bytes of documents the APQ cache holds; 0 turns APQ off.
    pub apq_cache_bytes: usize,
    /// The trusted documents' manifest, when the server runs only those.
    pub trusted_documents: Option<TrustedDocuments>,
}

/// A manifest of trusted documents, each checked against its hash.
#[derive(Clone)]
pub struct TrustedDocuments(Arc<HashMap<Hash, Arc<str>>>);

impl std::fmt::Debug for TrustedDocuments {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(formatter, "TrustedDocuments({} documents)", self.0.len())
    }
}

impl TrustedDocuments {
    /// Reads a manifest: a JSON object from hex SHA-256 to document. An entry whose
    /// key is not its document's hash is refused, naming the entry.
    pub fn load(path: &Path) -> Result<TrustedDocuments, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|error| format!("cannot read the trusted documents {}: {error}", path.display()))?;
        Self::parse(&text).map_err(|problem| format!("the trusted documents {}: {problem}", path.display()))
    }

    pub fn parse(text: &str) -> Result<TrustedDocuments, String> {
        let manifest: HashMap<String, String> = serde_json::from_str(text).map_err(|error| {
            format!("not a JSON object from SHA-256 to document ({error}); GraphQL Code Generator's persisted-documents.json is one")
        })?;
        let mut documents = HashMap::with_capacity(manifest.len());
        for (key, document) in manifest {
            let hash = parse_hex(key.strip_prefix("sha256:").unwrap_or(&key))
                .ok_or_else(|| format!("the key {key:?} is not 64 hexadecimal digits"))?;
            if hash != sha256(&document) {
                return Err(format!("the key {key} is not the SHA-256 of its document"));
            }
            async_graphql::parser::parse_query(&document)
                .map_err(|error| format!("the document {key} does not parse: {error}"))?;
            documents.insert(hash, Arc::from(document));
        }
        Ok(TrustedDocuments(Arc::new(documents)))
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// The manifest of `documents`: a JSON object from each one's hex SHA-256 to its
/// text, ordered by hash, one entry a line.
pub fn manifest<'a>(documents: impl IntoIterator<Item = &'a str>) -> String {
    let entries: BTreeMap<String, &str> =
        documents.into_iter().map(|document| (hex::encode(sha256(document)), document)).collect();
    serde_json::to_string_pretty(&entries).unwrap_or_default()
}

/// Reads `.graphql` files, and the `.graphql` files of folders (not their
/// subfolders), in order of their paths: each is one operation, a document of
/// its own. A folder's `fragments/` subfolder holds fragments they share, one
/// per file: each document gets, after its own text, every shared fragment it
/// spreads (directly or through another fragment), in the order of their names.
pub fn read_documents(paths: &[PathBuf]) -> Result<Vec<(PathBuf, String)>, String> {
    let mut files = Vec::new();
    let mut shared = BTreeMap::new();
    for path in paths {
        if !path.is_dir() {
            files.push(path.clone());
            continue;
        }
        files.extend(graphql_files(path)?);
        let fragments = path.join("fragments");
        if fragments.is_dir() {
            for file in graphql_files(&fragments)? {
                // A fragment alone is no executable document: it is parsed with
                // each document that uses it.
                let text = read_document(&file)?;
                let Some(name) = fragment_name(&text) else {
                    return Err(format!("{} does not start `fragment Name on Type`", file.display()));
                };
                shared.insert(name.to_owned(), text);
            }
        }
    }
    files
        .into_iter()
        .map(|path| {
            let document = with_shared_fragments(read_document(&path)?, &shared);
            async_graphql::parser::parse_query(&document)
                .map_err(|error| format!("{} does not parse: {error}", path.display()))?;
            Ok((path, document))
        })
        .collect()
}

fn graphql_files(folder: &Path) -> Result<Vec<PathBuf>, String> {
    let entries = std::fs::read_dir(folder).map_err(|error| format!("cannot read {}: {error}", folder.display()))?;
    let mut found: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|extension| extension == "graphql"))
        .collect();
    found.sort();
    Ok(found)
}

/// `document` as [`read_documents`] makes it of a file, given the text of every
/// shared fragment: for documents the binary carries, such as its console's.
pub fn with_fragments(document: &str, fragments: &[&str]) -> String {
    let shared = fragments
        .iter()
        .filter_map(|fragment| Some((fragment_name(fragment)?.to_owned(), (*fragment).to_owned())))
        .collect();
    with_shared_fragments(document.to_owned(), &shared)
}

/// The name of the fragment that `text` defines: `fragment Name on Type …`.
fn fragment_name(text: &str) -> Option<&str> {
    match text.split_whitespace().collect::<Vec<_>>()[..] {
        ["fragment", name, "on", ..] => Some(name),
        _ => None,
    }
}

fn read_document(path: &Path) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|error| format!("cannot read {}: {error}", path.display()))
}

/// `text` followed by the shared fragments it needs and does not define itself.
fn with_shared_fragments(text: String, shared: &BTreeMap<String, String>) -> String {
    let mut needed = std::collections::BTreeSet::new();
    let mut pending: Vec<String> = spreads(&text);
    while let Some(name) = pending.pop() {
        let defined_here = text.contains(&format!("fragment {name} "));
        if let Some(fragment) = shared.get(&name).filter(|_| !defined_here)
            && needed.insert(name)
        {
            pending.extend(spreads(fragment));
        }
    }
    needed.iter().fold(text, |document, name| format!("{document}\n{}", shared[name]))
}

/// The names of the fragments `text` spreads (`...Name`, not `... on Type`).
fn spreads(text: &str) -> Vec<String> {
    text.split("...")
        .skip(1)
        .filter_map(|rest| {
            let rest = rest.trim_start();
            let end = rest.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(rest.len());
            let name = &rest[..end];
            (!name.is_empty() && name != "on").then(|| name.to_owned())
        })
        .collect()
}

/// What a request names or carries, before it is resolved to a document.
#[derive(Debug, Default)]
pub struct Lookup<'a> {
    pub query: Option<String>,
    /// `documentId`, from the GraphQL over HTTP persisted documents proposal.
    pub document_id: Option<&'a str>,
    /// `extensions.persistedQuery`, when the request has one.
    pub persisted_query: Option<&'a Value>,
}

/// A resolved document, and the hash to register it under once it is admitted.
#[derive(Debug)]
pub struct Resolved {
    pub document: String,
    pub register: Option<Hash>,
}

/// The server's persisted documents: the trusted manifest and the APQ cache.
#[derive(Clone)]
pub struct PersistedDocuments {
    trusted: Option<TrustedDocuments>,
    /// `None` when APQ is off (no budget, or trusted documents only).
    cache: Option<Arc<Mutex<Cache>>>,
}

impl PersistedDocuments {
    pub fn new(settings: &PersistedSettings) -> PersistedDocuments {
        let cache = (settings.trusted_documents.is_none() && settings.apq_cache_bytes > 0)
            .then(|| Arc::new(Mutex::new(Cache::new(settings.apq_cache_bytes))));
        PersistedDocuments { trusted: settings.trusted_documents.clone(), cache }
    }

    /// The document a request runs.
    pub fn resolve(&self, lookup: Lookup<'_>) -> Result<Resolved, ApiError> {
        let apq_hash = lookup.persisted_query.map(apq_hash).transpose()?;
        if let Some(id) = lookup.document_id {
            if lookup.query.is_some() {
                return Err(invalid("send either `documentId` or `query`, not both"));
            }
            let hash = id.strip_prefix("sha256:").and_then(parse_hex).ok_or_else(|| {
                invalid(format!("documentId {id:?} is not `sha256:` followed by 64 hexadecimal digits"))
            })?;
            return self.known(&hash).map(|document| Resolved { document, register: None });
        }
        match (lookup.query, apq_hash) {
            (None, None) => Err(invalid("the request has no `query`")),
            (None, Some(hash)) => {
                if self.trusted.is_none() && self.cache.is_none() {
                    return Err(not_supported());
                }
                self.known(&hash).map(|document| Resolved { document, register: None })
            }
            (Some(query), hash) => {
                let actual = sha256(&query);
                if hash.is_some_and(|hash| hash != actual) {
                    return Err(invalid(
                        "the persisted query's sha256Hash is not the SHA-256 of its query; nothing was stored",
                    ));
                }
                if let Some(trusted) = &self.trusted {
                    if !trusted.0.contains_key(&actual) {
                        return Err(not_in_list());
                    }
                    return Ok(Resolved { document: query, register: None });
                }
                if hash.is_some() && self.cache.is_none() {
                    return Err(not_supported());
                }
                Ok(Resolved { document: query, register: hash })
            }
        }
    }

    /// Keeps an admitted document under its hash, for the APQ requests to come.
    pub fn register(&self, hash: Hash, document: &str) {
        if let Some(cache) = &self.cache {
            cache.lock().unwrap_or_else(PoisonError::into_inner).insert(hash, Arc::from(document));
        }
    }

    /// Whether only trusted documents run.
    pub fn trusted_only(&self) -> bool {
        self.trusted.is_some()
    }

    fn known(&self, hash: &Hash) -> Result<String, ApiError> {
        let found = match (&self.trusted, &self.cache) {
            (Some(trusted), _) => trusted.0.get(hash).cloned(),
            (None, Some(cache)) => cache.lock().unwrap_or_else(PoisonError::into_inner).get(hash),
            (None, None) => None,
        };
        found.map(|document| document.to_string()).ok_or_else(not_found)
    }
}

/// The hash of `extensions.persistedQuery`, whose shape is Apollo's.
fn apq_hash(persisted_query: &Value) -> Result<Hash, ApiError> {
    let Value::Object(fields) = persisted_query else {
        return Err(invalid("extensions.persistedQuery must be an object { version: 1, sha256Hash }"));
    };
    match fields.get("version") {
        Some(Value::Number(version)) if version.as_u64() == Some(1) => {}
        _ => return Err(invalid("extensions.persistedQuery.version must be 1, the only version there is")),
    }
    match fields.get("sha256Hash") {
        Some(Value::String(hex)) => {
            parse_hex(hex).ok_or_else(|| invalid("extensions.persistedQuery.sha256Hash must be 64 hexadecimal digits"))
        }
        _ => Err(invalid("extensions.persistedQuery.sha256Hash must be 64 hexadecimal digits")),
    }
}

pub fn sha256(document: &str) -> Hash {
    Sha256::digest(document.as_bytes()).into()
}

fn parse_hex(text: &str) -> Option<Hash> {
    let mut hash = [0u8; 32];
    hex::decode_to_slice(text, &mut hash).ok()?;
    Some(hash)
}

fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::new(ErrorCode::Validation, message)
}

/// Apollo's clients look for this message, and send the full query when they see it.
fn not_found() -> ApiError {
    ApiError::new(ErrorCode::PersistedQueryNotFound, "PersistedQueryNotFound")
}

fn not_supported() -> ApiError {
    ApiError::new(ErrorCode::PersistedQueryNotSupported, "PersistedQueryNotSupported")
}

fn not_in_list() -> ApiError {
    ApiError::new(
        ErrorCode::PersistedQueryNotInList,
        "this server runs only its trusted documents, and this document is not one of them",
    )
}

/// Documents by hash, at most `budget` bytes of them, the least recently used
/// dropped first.
struct Cache {
    entries: LruCache<Hash, Arc<str>>,
    bytes: usize,
    budget: usize,
}

impl Cache {
    fn new(budget: usize) -> Cache {
        Cache { entries: LruCache::unbounded(), bytes: 0, budget }
    }

    fn get(&mut self, hash: &Hash) -> Option<Arc<str>> {
        self.entries.get(hash).cloned()
    }

    fn insert(&mut self, hash: Hash, document: Arc<str>) {
        if document.len() > self.budget {
            return;
        }
        self.bytes += document.len();
        if let Some(previous) = self.entries.put(hash, document) {
            self.bytes -= previous.len();
        }
        while self.bytes > self.budget {
            match self.entries.pop_lru() {
                Some((_, evicted)) => self.bytes -= evicted.len(),
                None => break,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const QUERY: &str = "{ me { id } }";

    fn apq(hash: &Hash) -> Value {
        serde_json::json!({ "version": 1, "sha256Hash": hex::encode(hash) })
    }

    fn documents(apq_cache_bytes: usize, trusted: Option<&str>) -> PersistedDocuments {
        let trusted_documents = trusted.map(|text| TrustedDocuments::parse(text).unwrap());
        PersistedDocuments::new(&PersistedSettings { apq_cache_bytes, trusted_documents })
    }

    fn code(result: Result<Resolved, ApiError>) -> ErrorCode {
        result.unwrap_err().code
    }

    #[test]
    fn an_unknown_hash_is_not_found_until_its_query_registers_it() {
        let documents = documents(1024, None);
        let hash = sha256(QUERY);
        let by_hash = || documents.resolve(Lookup { persisted_query: Some(&apq(&hash)), ..Lookup::default() });
        assert_eq!(code(by_hash()), ErrorCode::PersistedQueryNotFound);
        let persisted_query = apq(&hash);
        let full = documents
            .resolve(Lookup {
                query: Some(QUERY.to_owned()),
                persisted_query: Some(&persisted_query),
                ..Lookup::default()
            })
            .unwrap();
        assert_eq!(full.register, Some(hash));
        documents.register(hash, &full.document);
        assert_eq!(by_hash().unwrap().document, QUERY);
    }

    #[test]
    fn a_hash_that_is_not_its_querys_is_refused_and_not_stored() {
        let documents = documents(1024, None);
        let other = sha256("{ municipalities { id } }");
        let persisted_query = apq(&other);
        let lie =
            Lookup { query: Some(QUERY.to_owned()), persisted_query: Some(&persisted_query), ..Lookup::default() };
        assert_eq!(code(documents.resolve(lie)), ErrorCode::Validation);
        let later = documents.resolve(Lookup { persisted_query: Some(&persisted_query), ..Lookup::default() });
        assert_eq!(code(later), ErrorCode::PersistedQueryNotFound);
    }

    #[test]
    fn the_cache_keeps_to_its_budget_dropping_the_least_recently_used() {
        let mut cache = Cache::new(10);
        cache.insert([1; 32], Arc::from("aaaa"));
        cache.insert([2; 32], Arc::from("bbbb"));
        assert!(cache.get(&[1; 32]).is_some());
        cache.insert([3; 32], Arc::from("cccc"));
        assert!(cache.get(&[2; 32]).is_none(), "the least recently used goes first");
        assert!(cache.get(&[1; 32]).is_some() && cache.get(&[3; 32]).is_some());
        assert_eq!(cache.bytes, 8);
        cache.insert([4; 32], Arc::from("a document larger than the whole budget"));
        assert!(cache.get(&[4; 32]).is_none());
        assert_eq!(cache.bytes, 8);
    }

    #[test]
    fn with_trusted_documents_only_listed_ones_run() {
        let manifest = serde_json::json!({ hex::encode(sha256(QUERY)): QUERY }).to_string();
        let documents = documents(1024, Some(&manifest));
        let id = format!("sha256:{}", hex::encode(sha256(QUERY)));
        let by_id = documents.resolve(Lookup { document_id: Some(&id), ..Lookup::default() }).unwrap();
        assert_eq!(by_id.document, QUERY);
        let full = documents.resolve(Lookup { query: Some(QUERY.to_owned()), ..Lookup::default() }).unwrap();
        assert_eq!(full.register, None, "nothing is registered in trusted mode");
        let other = Lookup { query: Some("{ municipalities { id } }".to_owned()), ..Lookup::default() };
        assert_eq!(code(documents.resolve(other)), ErrorCode::PersistedQueryNotInList);
        let unknown = format!("sha256:{}", "0".repeat(64));
        assert_eq!(
            code(documents.resolve(Lookup { document_id: Some(&unknown), ..Lookup::default() })),
            ErrorCode::PersistedQueryNotFound
        );
    }

    #[test]
    fn a_manifest_entry_that_is_not_its_documents_hash_is_refused() {
        let wrong = serde_json::json!({ "0".repeat(64): QUERY }).to_string();
        assert!(TrustedDocuments::parse(&wrong).unwrap_err().contains("not the SHA-256"));
        assert!(TrustedDocuments::parse("[]").is_err());
        let short = serde_json::json!({ "abc": QUERY }).to_string();
        assert!(TrustedDocuments::parse(&short).unwrap_err().contains("64 hexadecimal"));
    }

    #[test]
    fn malformed_persisted_queries_and_document_ids_are_validation_errors() {
        let documents = documents(1024, None);
        let version_two = serde_json::json!({ "version": 2, "sha256Hash": hex::encode(sha256(QUERY)) });
        assert_eq!(
            code(documents.resolve(Lookup { persisted_query: Some(&version_two), ..Lookup::default() })),
            ErrorCode::Validation
        );
        assert_eq!(
            code(documents.resolve(Lookup { document_id: Some("md5:abc"), ..Lookup::default() })),
            ErrorCode::Validation
        );
        assert_eq!(code(documents.resolve(Lookup::default())), ErrorCode::Validation);
        let off = super::PersistedDocuments::new(&PersistedSettings::default());
        let persisted_query = apq(&sha256(QUERY));
        assert_eq!(
            code(off.resolve(Lookup { persisted_query: Some(&persisted_query), ..Lookup::default() })),
            ErrorCode::PersistedQueryNotSupported
        );
    }
}
