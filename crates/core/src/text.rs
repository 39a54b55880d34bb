//! Parsed input values. Each is a newtype with a private field whose only
//! constructor enforces the invariant: trimmed, non-empty, within its length limit,
//! and free of control characters (PostgreSQL cannot store NUL, and no citizen's
//! text needs a bell or an escape sequence). Lengths count characters, not bytes.
//!
//! Texts people write (appeals, notes, reasons, responses, names, contacts,
//! categories, tags) are also NFC-normalised, so that two texts a reader sees as
//! the same (`й` typed as one character, or as `и` and a combining breve) are
//! stored the same; otherwise a text stays as written, `ё` included. An
//! [`ExternalId`] is a channel's opaque identifier and is kept byte for byte.

use std::fmt;

use serde::{Deserialize, Serialize};
use thiserror::Error;
use unicode_normalization::UnicodeNormalization;

/// Input that does not satisfy a value's rules. Clients see `VALIDATION`.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{field}: {problem}")]
pub struct InvalidInput {
    pub field: &'static str,
    pub problem: String,
}

impl InvalidInput {
    pub fn new(field: &'static str, problem: impl Into<String>) -> Self {
        Self { field, problem: problem.into() }
    }
}

/// How a text's characters are kept.
#[derive(Clone, Copy)]
enum Form {
    /// NFC, the composed form: what people write.
    Composed,
    /// As given: identifiers that are compared byte for byte.
    Verbatim,
}

/// The NFC (composed) form of `text`. Most text is NFC already (everything
/// read back from the database is), which a quick check tells without
/// composing it again.
pub fn normalize(text: &str) -> String {
    match unicode_normalization::is_nfc_quick(text.chars()) {
        unicode_normalization::IsNormalized::Yes => text.to_owned(),
        _ => text.nfc().collect(),
    }
}

/// Trims `raw`, brings it to `form`, and checks it is non-empty, at most
/// `max_chars` long, and has no control characters other than line breaks and tabs.
fn bounded(field: &'static str, raw: &str, max_chars: usize, form: Form) -> Result<String, InvalidInput> {
    let trimmed = match form {
        Form::Composed => normalize(raw.trim()),
        Form::Verbatim => raw.trim().to_owned(),
    };
    if trimmed.chars().all(is_invisible) {
        return Err(InvalidInput::new(field, "must not be empty"));
    }
    let length = trimmed.chars().count();
    if length > max_chars {
        return Err(InvalidInput::new(field, format!("must be at most {max_chars} characters, got {length}")));
    }
    if let Some(bad) = trimmed.chars().find(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t')) {
        return Err(InvalidInput::new(field, format!("must not contain the control character U+{:04X}", bad as u32)));
    }
    Ok(trimmed)
}

/// Characters that show nothing: whitespace, zero-width spaces and joiners,
/// directional marks, the word joiner and the byte-order mark. A text made only of
/// them is empty to a reader.
fn is_invisible(c: char) -> bool {
    c.is_whitespace()
        || matches!(c, '\u{00AD}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{2064}' | '\u{FEFF}')
}

macro_rules! bounded_text {
    ($(#[$meta:meta])* $name:ident, $field:literal, $max:expr, $form:expr) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// The longest accepted value, in characters.
            pub const MAX_CHARS: usize = $max;

            pub fn parse(raw: &str) -> Result<Self, InvalidInput> {
                bounded($field, raw, Self::MAX_CHARS, $form).map(Self)
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = InvalidInput;

            fn try_from(raw: String) -> Result<Self, Self::Error> {
                Self::parse(&raw)
            }
        }

        impl From<$name> for String {
            fn from(value: $name) -> String {
                value.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

bounded_text!(
    /// The citizen's appeal itself.
    AppealText, "text", 20_000, Form::Composed
);
bounded_text!(
    /// What the citizen was told, or why no answer was owed.
    ResponseText, "response", 20_000, Form::Composed
);
bounded_text!(
    /// Why a deadline was extended or an appeal reopened.
    Reason, "reason", 20_000, Form::Composed
);
bounded_text!(
    /// An internal note on an appeal.
    NoteText, "text", 5_000, Form::Composed
);
bounded_text!(
    /// A person's name: an appeal's author or a user.
    PersonName, "name", 200, Form::Composed
);
bounded_text!(
    /// How to reach an appeal's author (a phone, an address, a handle).
    Contact, "authorContact", 200, Form::Composed
);
bounded_text!(
    /// The channel's own id of a message, which makes submission idempotent.
    ExternalId, "externalId", 200, Form::Verbatim
);
bounded_text!(
    /// A municipality's display name.
    MunicipalityName, "name", 200, Form::Composed
);
bounded_text!(
    /// A triage category, free text chosen by the assistants.
    Category, "category", 100, Form::Composed
);
bounded_text!(
    /// A triage tag.
    Tag, "tags", 50, Form::Composed
);

/// At most this many tags on one appeal.
pub const MAX_TAGS: usize = 20;

/// Parses a list of tags: each one trimmed and bounded, duplicates dropped (the
/// first occurrence keeps its place), at most [`MAX_TAGS`].
pub fn parse_tags<S: AsRef<str>>(raw: &[S]) -> Result<Vec<Tag>, InvalidInput> {
    let mut tags: Vec<Tag> = Vec::with_capacity(raw.len());
    for item in raw {
        let tag = Tag::parse(item.as_ref())?;
        if !tags.contains(&tag) {
            tags.push(tag);
        }
    }
    if tags.len() > MAX_TAGS {
        return Err(InvalidInput::new("tags", format!("at most {MAX_TAGS} tags")));
    }
    Ok(tags)
}

/// A municipality's code, such as `tomsk`: lowercase Latin letters, digits and
/// hyphens, starting with a letter, at most 64 characters. Input is accepted in
/// any case and stored in lowercase.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct MunicipalityCode(String);

impl MunicipalityCode {
    pub const MAX_CHARS: usize = 64;

    pub fn parse(raw: &str) -> Result<Self, InvalidInput> {
        let code = raw.trim().to_ascii_lowercase();
        let well_formed = code.len() <= Self::MAX_CHARS
            && code.starts_with(|c: char| c.is_ascii_lowercase())
            && code.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if well_formed {
            Ok(Self(code))
        } else {
            Err(InvalidInput::new(
                "municipalityCode",
                "must be 1 to 64 Latin letters, digits or hyphens, starting with a letter",
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for MunicipalityCode {
    type Error = InvalidInput;

    fn try_from(raw: String) -> Result<Self, Self::Error> {
        Self::parse(&raw)
    }
}

impl From<MunicipalityCode> for String {
    fn from(value: MunicipalityCode) -> String {
        value.0
    }
}

impl fmt::Display for MunicipalityCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Folds text for case-insensitive substring search, the same for stored texts
/// and for what is searched for: NFC, Unicode lowercase (so that `Яма` and `яма`
/// fold alike on every database, whatever its collation), then `ё` as `е` (after
/// lowercasing, so `Ё` too), as Russian readers treat them.
///
/// The migration that refolds stored texts (`appeals-migrations`) repeats these
/// lines; a storage test checks that the two agree.
pub fn fold_for_search(text: &str) -> String {
    let lowercase = text.nfc().collect::<String>().to_lowercase();
    lowercase.nfc().map(|c| if c == 'ё' { 'е' } else { c }).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(raw: &str, expected: Result<&str, &str>) {
        let got = AppealText::parse(raw);
        match expected {
            Ok(value) => assert_eq!(got.as_ref().map(AppealText::as_str), Ok(value), "input {raw:?}"),
            Err(fragment) => {
                let error = got.expect_err(&format!("input {raw:?} should be refused"));
                assert!(error.problem.contains(fragment), "input {raw:?}: {error}");
            }
        }
    }

    #[test]
    fn appeal_text_is_trimmed_and_bounded() {
        check("  Яма на дороге \n", Ok("Яма на дороге"));
        check("", Err("empty"));
        check(" \t\n ", Err("empty"));
        check(&"я".repeat(20_000), Ok(&"я".repeat(20_000)));
        check(&"я".repeat(20_001), Err("at most 20000"));
        check("bad\0byte", Err("U+0000"));
        check("\u{200B}\u{200F}\u{FEFF} ", Err("empty"));
        check("\u{200F}שלום", Ok("\u{200F}שלום"));
        check("line one\nline two\ttab", Ok("line one\nline two\ttab"));
    }

    #[test]
    fn municipality_codes_are_lowercased_and_well_formed() {
        assert_eq!(MunicipalityCode::parse(" Tomsk ").unwrap().as_str(), "tomsk");
        assert!(MunicipalityCode::parse("zato-seversk2").is_ok());
        for bad in ["", "1tomsk", "томск", "tom sk", &"a".repeat(65)] {
            assert!(MunicipalityCode::parse(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn tags_are_deduplicated_and_limited() {
        let tags = parse_tags(&["дороги", " дороги ", "ЖКХ"]).unwrap();
        assert_eq!(tags.iter().map(Tag::as_str).collect::<Vec<_>>(), ["дороги", "ЖКХ"]);
        let many: Vec<String> = (0..21).map(|i| format!("t{i}")).collect();
        assert!(parse_tags(&many).is_err());
        assert!(parse_tags(&[""]).is_err());
    }

    #[test]
    fn search_folding_handles_cyrillic() {
        assert_eq!(fold_for_search("Яма на ДОРОГЕ"), "яма на дороге");
    }

    /// `й` and `ё` composed (one character each) and decomposed (a base letter
    /// and a combining mark).
    const NFC_TEXT: &str = "Жёлтый подъезд, ЁЛКА";
    const NFD_TEXT: &str = "Же\u{0308}лтыи\u{0306} подъезд, Е\u{0308}ЛКА";

    #[test]
    fn texts_people_write_are_stored_composed() {
        assert_ne!(NFC_TEXT, NFD_TEXT, "the two spellings differ byte for byte");
        let cases: [(&str, String, &str); 6] = [
            ("appeal text", AppealText::parse(NFD_TEXT).unwrap().into(), NFC_TEXT),
            ("note", NoteText::parse(NFD_TEXT).unwrap().into(), NFC_TEXT),
            ("response", ResponseText::parse(NFD_TEXT).unwrap().into(), NFC_TEXT),
            ("name", PersonName::parse(" Андре\u{0301}й\n").unwrap().into(), "Андре\u{0301}й"),
            ("tag", parse_tags(&["е\u{0308}лка", "ёлка"]).unwrap().remove(0).into(), "ёлка"),
            ("composed input", AppealText::parse(NFC_TEXT).unwrap().into(), NFC_TEXT),
        ];
        for (case, got, expected) in cases {
            assert_eq!(got, expected, "{case}");
        }
        assert_eq!(parse_tags(&["е\u{0308}лка", "ёлка"]).unwrap().len(), 1, "two spellings of one tag are one tag");
        assert_eq!(AppealText::parse("Ёлка").unwrap().as_str(), "Ёлка", "ё stays ё in the stored text");
        assert_eq!(ExternalId::parse("e\u{0301}").unwrap().as_str(), "e\u{0301}", "external ids are kept as given");
        // The limit counts the composed characters: 20,000 decomposed `й` are
        // 40,000 code points but 20,000 characters.
        assert!(AppealText::parse(&"и\u{0306}".repeat(20_000)).is_ok(), "the limit counts composed characters");
    }

    #[test]
    fn search_folding_composes_lowercases_and_reads_yo_as_ye() {
        let cases = [
            (NFC_TEXT, "желтый подъезд, елка"),
            (NFD_TEXT, "желтый подъезд, елка"),
            ("ЁЖ", "еж"),
            ("Е\u{0308}Ж", "еж"),
            ("е", "е"),
            ("100% _X_", "100% _x_"),
        ];
        for (text, folded) in cases {
            assert_eq!(fold_for_search(text), folded, "folding {text:?}");
        }
        assert_eq!(fold_for_search("й"), fold_for_search("и\u{0306}"), "й in either form");
        assert_ne!(fold_for_search("й"), fold_for_search("и"), "й is not и");
    }
}
