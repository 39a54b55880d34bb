//! The keyed seal over the hash chain. The chain itself ([`crate::events`]) is
//! plain SHA-256, which anyone can recompute: it shows accidental change, and a
//! deliberate edit by someone who then fails to rewrite every later hash and the
//! anchor. A seal is an HMAC-SHA256, under a key the database does not hold, of an
//! event's place and hash, or of the anchor (the last `seq` and hash that the
//! appeal row says its history ends with). Without the key nobody can make a seal
//! verify, so an edited and re-chained history, or one cut short with its anchor
//! rewritten, is caught by whoever holds the key.
//!
//! Each seal's input starts with its own label, so an event's seal can never
//! pass for an anchor's (an attacker cutting the last event off would otherwise
//! reuse the seal of the event before it). Seals are compared in constant time.

use std::fmt;
use std::sync::Arc;

use hmac::{Hmac, Mac};
use sha2::Sha256;
use thiserror::Error;

use crate::events::{ChainAnchor, RecordedEvent};
use crate::id::AppealId;

type HmacSha256 = Hmac<Sha256>;

/// The secret behind the seals. Cheap to clone; its bytes never appear in
/// `Debug` output (there is no `Display`), so it cannot reach a log by accident.
#[derive(Clone)]
pub struct AuditKey {
    secret: Arc<[u8]>,
}

/// A key that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum InvalidAuditKey {
    #[error("the audit key is not hexadecimal (write it as 64 or more hex digits, e.g. from `openssl rand -hex 32`)")]
    NotHex,
    #[error(
        "the audit key holds {0} bytes; it must hold at least {min} bytes of secret material \
         (64 or more hex digits, e.g. from `openssl rand -hex 32`)",
        min = AuditKey::MIN_BYTES
    )]
    TooShort(usize),
    #[error("the audit key repeats one byte; it must be random secret material (e.g. from `openssl rand -hex 32`)")]
    NotSecret,
}

impl AuditKey {
    /// The least secret material accepted, in bytes: HMAC-SHA256's own block of
    /// security.
    pub const MIN_BYTES: usize = 32;

    /// A key written as hexadecimal digits (surrounding whitespace ignored), as
    /// `APPEALS_AUDIT_KEY` holds it.
    pub fn from_hex(text: &str) -> Result<AuditKey, InvalidAuditKey> {
        let bytes = hex::decode(text.trim()).map_err(|_| InvalidAuditKey::NotHex)?;
        AuditKey::from_bytes(&bytes)
    }

    /// A key read from a file: hexadecimal text (whitespace around it ignored),
    /// or else the file's raw bytes.
    pub fn from_file_contents(contents: &[u8]) -> Result<AuditKey, InvalidAuditKey> {
        match std::str::from_utf8(contents).map(str::trim) {
            Ok(text) if !text.is_empty() && text.bytes().all(|b| b.is_ascii_hexdigit()) => AuditKey::from_hex(text),
            _ => AuditKey::from_bytes(contents),
        }
    }

    /// A key of raw secret bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<AuditKey, InvalidAuditKey> {
        if bytes.len() < AuditKey::MIN_BYTES {
            return Err(InvalidAuditKey::TooShort(bytes.len()));
        }
        if bytes.iter().all(|&b| b == bytes[0]) {
            return Err(InvalidAuditKey::NotSecret);
        }
        Ok(AuditKey { secret: Arc::from(bytes) })
    }

    /// A short public name for the key (an HMAC of a fixed label, so it reveals
    /// nothing of the key), for logs: two processes showing the same fingerprint
    /// use the same key.
    pub fn fingerprint(&self) -> String {
        let mut fingerprint = self.mac("appeals-audit-key-fingerprint-v1\n");
        fingerprint.truncate(16);
        fingerprint
    }

    /// The seal of an event: its appeal, its `seq` and its hash (which covers
    /// everything the event says and the hash before it).
    pub fn seal_event(&self, event: &RecordedEvent) -> String {
        self.mac(&event_input(event))
    }

    /// Whether `seal` is the event's seal under this key (in constant time).
    pub fn event_seal_verifies(&self, event: &RecordedEvent, seal: &str) -> bool {
        self.verifies(&event_input(event), seal)
    }

    /// The seal of an appeal's anchor: where its history ends.
    pub fn seal_anchor(&self, appeal_id: AppealId, anchor: ChainAnchor<'_>) -> String {
        self.mac(&anchor_input(appeal_id, anchor))
    }

    /// Whether `seal` is the anchor's seal under this key (in constant time).
    pub fn anchor_seal_verifies(&self, appeal_id: AppealId, anchor: ChainAnchor<'_>, seal: &str) -> bool {
        self.verifies(&anchor_input(appeal_id, anchor), seal)
    }

    fn hmac(&self, input: &str) -> HmacSha256 {
        // HMAC takes a key of any length; `new_from_slice` cannot fail for it.
        let mut mac = <HmacSha256 as Mac>::new_from_slice(&self.secret).unwrap_or_else(|_| unreachable!());
        mac.update(input.as_bytes());
        mac
    }

    fn mac(&self, input: &str) -> String {
        hex::encode(self.hmac(input).finalize().into_bytes())
    }

    fn verifies(&self, input: &str, seal: &str) -> bool {
        let Ok(claimed) = hex::decode(seal) else { return false };
        self.hmac(input).verify_slice(&claimed).is_ok()
    }
}

impl fmt::Debug for AuditKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AuditKey(<redacted>)")
    }
}

/// The fields are fixed-form (a UUID, a number, 64 hex digits), so newlines
/// separate them unambiguously.
fn event_input(event: &RecordedEvent) -> String {
    format!("appeals-event-seal-v1\n{}\n{}\n{}", event.appeal_id, event.seq, event.hash)
}

fn anchor_input(appeal_id: AppealId, anchor: ChainAnchor<'_>) -> String {
    format!("appeals-anchor-seal-v1\n{appeal_id}\n{}\n{}", anchor.seq, anchor.hash)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

    #[test]
    fn keys_are_read_from_hex_or_raw_bytes_and_short_ones_are_refused() {
        assert!(AuditKey::from_hex(KEY).is_ok());
        assert!(AuditKey::from_hex(&format!("  {KEY}\n")).is_ok(), "whitespace around the digits");
        assert_eq!(AuditKey::from_hex(&KEY[..62]).err(), Some(InvalidAuditKey::TooShort(31)));
        assert_eq!(AuditKey::from_hex("not a key").err(), Some(InvalidAuditKey::NotHex));
        assert_eq!(AuditKey::from_hex(&"0".repeat(64)).err(), Some(InvalidAuditKey::NotSecret));
        let from_file = AuditKey::from_file_contents(format!("{KEY}\n").as_bytes()).expect("a hex file");
        let from_env = AuditKey::from_hex(KEY).expect("hex");
        assert_eq!(from_file.fingerprint(), from_env.fingerprint(), "a hex file is the same key as the hex text");
        let raw: Vec<u8> = (0u8..32).collect();
        assert!(AuditKey::from_file_contents(&raw).is_ok(), "32 raw bytes");
        assert_eq!(AuditKey::from_file_contents(&raw[..20]).err(), Some(InvalidAuditKey::TooShort(20)));
        assert_eq!(AuditKey::from_file_contents(b"abcdef\n").err(), Some(InvalidAuditKey::TooShort(3)));
        let message = InvalidAuditKey::TooShort(3).to_string();
        assert!(message.contains("at least 32 bytes"), "the message says what is needed: {message}");
    }

    /// A sealed history of three events: received, a note, seen.
    fn sealed_history(key: &AuditKey) -> (AppealId, Vec<RecordedEvent>, Vec<String>, String) {
        use crate::appeal::{Appeal, Channel, Submission};
        use crate::id::{MunicipalityId, UserId};
        use crate::text::{AppealText, NoteText};
        use crate::transition::{Applied, Command};

        let (id, head, at) = (AppealId::generate(), UserId::generate(), chrono::Utc::now());
        let submission = Submission {
            channel: Channel::Web,
            external_id: None,
            author_name: None,
            author_contact: None,
            text: AppealText::parse("Яма").unwrap(),
        };
        let policy = crate::deadline::DeadlinePolicy::default();
        let Applied { appeal, event } =
            Appeal::receive(id, "T-2026-000001".into(), MunicipalityId::generate(), submission, None, at, &policy);
        let mut events = vec![event.record(id, 1, "")];
        let note = Command::AddNote { text: NoteText::parse("Позвонили").unwrap() };
        let Applied { appeal, event } = appeal.apply(&note, head, at, None).unwrap();
        events.push(event.record(id, 2, &events[0].hash));
        let Applied { event, .. } = appeal.apply(&Command::MarkSeen, head, at, Some(appeal.version)).unwrap();
        events.push(event.record(id, 3, &events[1].hash));
        let seals = events.iter().map(|event| key.seal_event(event)).collect();
        let anchor = key.seal_anchor(id, ChainAnchor { seq: 3, hash: &events[2].hash });
        (id, events, seals, anchor)
    }

    #[test]
    fn sealed_chains_verify_only_under_their_key_and_only_as_sealed() {
        use crate::events::{ANCHOR_SEAL_BROKEN, EVENT_SEAL_BROKEN, EVENT_SEAL_MISSING, Seals, verify_sealed_chain};

        let key = AuditKey::from_hex(KEY).unwrap();
        let (id, events, seals, anchor_seal) = sealed_history(&key);
        let check = |key: &AuditKey, events: &[RecordedEvent], seals: &[Option<&str>], anchor: Option<&str>| {
            let last = events.last().unwrap();
            let seals = Seals { key, events: seals, anchor };
            verify_sealed_chain(id, events, ChainAnchor { seq: last.seq, hash: &last.hash }, seals)
                .map_err(|broken| (broken.seq, broken.reason))
        };
        let all: Vec<Option<&str>> = seals.iter().map(|seal| Some(seal.as_str())).collect();
        assert_eq!(check(&key, &events, &all, Some(&anchor_seal)), Ok(3), "as sealed");

        // Rewritten and re-chained with plain SHA-256, as anyone can.
        let mut forged = events.clone();
        forged[1].note = Some("Ничего не делали".into());
        forged[1].hash = forged[1].expected_hash(&forged[0].hash);
        forged[2].hash = forged[2].expected_hash(&forged[1].hash);
        let forged_anchor = key.seal_anchor(id, ChainAnchor { seq: 3, hash: &forged[2].hash });
        assert_eq!(check(&key, &forged, &all, Some(&forged_anchor)), Err((2, EVENT_SEAL_BROKEN)), "re-chained");

        let other = AuditKey::from_hex(&KEY.replace('0', "9")).unwrap();
        assert_eq!(check(&other, &events, &all, Some(&anchor_seal)), Err((1, EVENT_SEAL_BROKEN)), "another key");
        let mut missing = all.clone();
        missing[2] = None;
        assert_eq!(check(&key, &events, &missing, Some(&anchor_seal)), Err((3, EVENT_SEAL_MISSING)), "no seal");
        assert_eq!(check(&key, &events, &all, None), Err((3, ANCHOR_SEAL_BROKEN)), "no anchor seal");
        // Cut short: the seal of event 2 cannot stand in for the anchor's.
        assert_eq!(check(&key, &events[..2], &all[..2], all[1]), Err((2, ANCHOR_SEAL_BROKEN)), "cut short");
    }

    #[test]
    fn a_key_never_shows_in_debug_output() {
        let key = AuditKey::from_hex(KEY).expect("a key");
        let shown = format!("{key:?} {:?}", Some(key.clone()));
        assert!(!shown.contains("00112233") && !shown.contains("17, 34"), "{shown}");
        assert!(shown.contains("redacted"), "{shown}");
    }
}
