//! The word search's analyser: the terms an appeal's text is indexed under, and
//! the parsed query that is matched against them.
//!
//! `AppealFilter.search` is a word search as Russian readers expect it: every word
//! of the query must occur in some form (`ямы`, `яму` and `ямой` find `яма`;
//! `освещения` finds `освещение`), `ё` equals `е`, case does not matter, and a word
//! ending in `*` matches as a prefix. Both databases (SQLite's FTS5 and
//! PostgreSQL's `tsvector`) store the terms this module makes and search for the
//! terms it parses, and neither applies rules of its own, so the answer is the
//! same on both; that is why everything here is pure and deterministic.
//!
//! The rules, the same for texts and for queries:
//!
//! 1. **Folding.** NFC, Unicode lowercase, `ё` as `е` ([`fold_for_search`]), then
//!    the combining marks that remain after NFC are dropped: the stress mark in
//!    `ударе́ние` goes, while `й` is one composed letter by then and stays `й`.
//! 2. **Words** are the maximal runs of alphanumeric characters
//!    ([`char::is_alphanumeric`]) of the folded text. Everything else (spaces,
//!    punctuation, hyphens, quotes, emoji) separates words, so `из-за` is two
//!    words and `COVID-19` is `covid` and `19`.
//! 3. **Latin look-alikes.** In a word with at least one Cyrillic letter, the
//!    Latin letters that look like Russian ones (`a e o p c y x k m t h b`, and
//!    `ë` as `е`) are read as those Russian letters, so `нa` typed with a Latin
//!    `a` is `на`. A word with no Cyrillic letter stays as typed.
//! 4. **Stemming**, with Snowball's stemmers: a word with a Cyrillic letter by the
//!    Russian one, a word whose letters are all Latin by the English one; any other
//!    word (digits only, other scripts, Latin mixed with another script) is kept
//!    as it is.
//! 5. **Stop words**, Snowball's Russian and English lists (as NLTK keeps them;
//!    the Russian one is PostgreSQL's) read by these same rules, are neither
//!    indexed nor searched for.
//! 6. **Queries** are read into words as texts are. A word immediately followed
//!    by `*` is a prefix: folded and read as in rules 1 and 3 but not stemmed, at
//!    least two characters long, and allowed even when it is a stop word (`по*`
//!    finds `повод`). A `*` anywhere else separates words. Other words match by
//!    their stem. Repeated terms count once; at most [`MAX_QUERY_WORDS`] terms
//!    remain after stop words and repeats are dropped, and a query is at most
//!    [`MAX_SEARCH_CHARS`] characters, with no control characters other than line
//!    breaks and tabs. A query left with no term is refused.
//! 7. **Index terms**: for every word that is not a stop word, its stem, and
//!    [`WORD_MARK`] followed by the folded word, so that a prefix is matched against
//!    whole words only and never against stems. The terms are distinct and sorted
//!    by bytes; each is non-empty and, after the mark, only alphanumeric, which
//!    storage relies on when it joins terms with spaces and quotes them in FTS5 and
//!    `tsquery` syntax. A term is at most [`MAX_TERM_CHARS`] characters long after
//!    the mark: a longer stem is left out and a longer word is kept by its start.
//!    No query can tell, since none has a word that long (rule 6), and it keeps
//!    every term within PostgreSQL's limit on a lexeme (2047 bytes), which a
//!    pasted run of letters or a base64 blob in an appeal would otherwise exceed.
//!
//! A prefix is matched against words as written, so `дорог*` finds `дороги` and
//! `дорогами`, while `дорога*` finds `дорогами` (which starts with `дорога`) but
//! not `дороги`.

use std::borrow::Cow;
use std::collections::HashSet;
use std::sync::LazyLock;

use rust_stemmers::{Algorithm, Stemmer};
use stop_words::Language;
use unicode_normalization::char::is_combining_mark;

use crate::text::{InvalidInput, fold_for_search, normalize};

/// The mark that starts a surface-form term, so a prefix matches whole words and never stems.
pub const WORD_MARK: char = '>';

/// At most this many terms in one query, after stop words and repeats are
/// dropped: every term is one more condition for the database to check.
pub const MAX_QUERY_WORDS: usize = 8;

/// The longest accepted query, in characters (composed, as in [`crate::text`]).
pub const MAX_SEARCH_CHARS: usize = 200;

/// The longest index term, in characters after the [`WORD_MARK`]: twice the
/// longest query, so that no query word (whose folding may lengthen it a little)
/// can tell a term was cut; at most four bytes a character, a term stays well
/// within PostgreSQL's 2047 bytes a lexeme.
pub const MAX_TERM_CHARS: usize = 2 * MAX_SEARCH_CHARS;

/// The shortest prefix, in characters: a one-letter prefix matches most of the
/// index and tells the reader nothing.
const MIN_PREFIX_CHARS: usize = 2;

/// The field named in the errors of a query.
const FIELD: &str = "search";

/// A parsed word query: every term must match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WordQuery {
    /// Non-empty, distinct, in the order the query first names them.
    terms: Vec<QueryTerm>,
}

/// One condition of a [`WordQuery`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueryTerm {
    /// A whole word: matches a stored term equal to its stem.
    Exact(String),
    /// `word*`: matches a stored term starting with [`WORD_MARK`] and the folded
    /// prefix. Holds the term prefix including the leading [`WORD_MARK`].
    Prefix(String),
}

/// The terms an appeal's text is indexed under: for every word, its stem (plain)
/// and its folded surface form (prefixed with [`WORD_MARK`]), distinct, sorted.
pub fn index_terms(text: &str) -> Vec<String> {
    let folded = fold(text);
    let mut terms = Vec::new();
    for token in tokens(&folded) {
        let word = read_look_alikes(token.word);
        if is_stop_word(&word) {
            continue;
        }
        let stem = stem(&word);
        if stem.chars().count() <= MAX_TERM_CHARS {
            terms.push(stem);
        }
        terms.push(surface_term(at_most(&word, MAX_TERM_CHARS)));
    }
    terms.sort_unstable();
    terms.dedup();
    terms
}

impl WordQuery {
    /// Reads a query by the rules in the [module documentation](self). Errors
    /// name the field `search`.
    pub fn parse(raw: &str) -> Result<WordQuery, InvalidInput> {
        let raw = bounded_query(raw)?;
        let folded = fold(&raw);
        let mut terms: Vec<QueryTerm> = Vec::new();
        let mut saw_a_word = false;
        for token in tokens(&folded) {
            saw_a_word = true;
            let Some(term) = query_term(&token)? else { continue };
            if !terms.contains(&term) {
                terms.push(term);
            }
        }
        if terms.is_empty() {
            let problem = if saw_a_word {
                "has only common words (stop words) that are not indexed"
            } else {
                "has no words to search for"
            };
            return Err(InvalidInput::new(FIELD, problem));
        }
        if terms.len() > MAX_QUERY_WORDS {
            return Err(InvalidInput::new(
                FIELD,
                format!("must have at most {MAX_QUERY_WORDS} different words, got {}", terms.len()),
            ));
        }
        Ok(WordQuery { terms })
    }

    /// The terms, every one of which must match.
    pub fn terms(&self) -> &[QueryTerm] {
        &self.terms
    }

    /// The plain-scan rule: whether a text whose index_terms are `terms` (sorted,
    /// as [`index_terms`] returns them) matches.
    pub fn matches(&self, terms: &[String]) -> bool {
        self.terms.iter().all(|term| term.is_in(terms))
    }
}

impl QueryTerm {
    /// Whether this term matches one of `sorted`, which must be sorted by bytes.
    /// The terms starting with a prefix sort together, from the first term not
    /// less than the prefix, so one binary search answers either kind.
    fn is_in(&self, sorted: &[String]) -> bool {
        match self {
            QueryTerm::Exact(stem) => sorted.binary_search_by(|term| term.as_str().cmp(stem)).is_ok(),
            QueryTerm::Prefix(prefix) => {
                let first = sorted.partition_point(|term| term.as_str() < prefix.as_str());
                sorted.get(first).is_some_and(|term| term.starts_with(prefix.as_str()))
            }
        }
    }
}

/// Rules 1 and 2: a word of the folded text, and whether a `*` follows it.
struct Token<'a> {
    word: &'a str,
    starred: bool,
}

/// Snowball's stemmers, created once: each is a pointer to its algorithm.
static RUSSIAN: LazyLock<Stemmer> = LazyLock::new(|| Stemmer::create(Algorithm::Russian));
static ENGLISH: LazyLock<Stemmer> = LazyLock::new(|| Stemmer::create(Algorithm::English));

/// Snowball's Russian and English stop-word lists as NLTK keeps them (the
/// `stop-words` crate): the Russian list is the one PostgreSQL ships for its
/// `russian` configuration, 151 words; the English one is Snowball's with the
/// halves of contractions added. They are read by the rules a text is read by, so
/// an entry with an apostrophe (`aren't`) reads as two words (`aren`, `t`), both
/// on the list anyway.
static STOP_WORDS: LazyLock<HashSet<String>> = LazyLock::new(|| {
    [Language::Russian, Language::English]
        .into_iter()
        .flat_map(|language| stop_words::lookup(language).unwrap_or_default())
        .flat_map(|entry| {
            let folded = fold(entry);
            tokens(&folded).map(|token| read_look_alikes(token.word).into_owned()).collect::<Vec<_>>()
        })
        .collect()
});

/// Rule 1. Dropping a mark can leave side by side two characters that NFC
/// composes (Hangul jamo), so the result is composed once more; that keeps folding
/// idempotent, and a word taken from a folded text reads the same as a query.
fn fold(text: &str) -> String {
    let without_marks: String = fold_for_search(text).chars().filter(|c| !is_combining_mark(*c)).collect();
    normalize(&without_marks)
}

/// Rule 2, on folded text. Each piece `split_inclusive` yields is a word followed
/// by at most one separator, which tells whether the word is starred.
fn tokens(folded: &str) -> impl Iterator<Item = Token<'_>> {
    folded.split_inclusive(|c: char| !c.is_alphanumeric()).filter_map(|piece| {
        let word = piece.strip_suffix(|c: char| !c.is_alphanumeric()).unwrap_or(piece);
        (!word.is_empty()).then(|| Token { word, starred: piece.ends_with('*') })
    })
}

/// Rule 3: a word with a Cyrillic letter has its Latin look-alikes read as Cyrillic.
fn read_look_alikes(word: &str) -> Cow<'_, str> {
    if word.chars().any(is_cyrillic) && word.chars().any(|c| cyrillic_look_alike(c).is_some()) {
        Cow::Owned(word.chars().map(|c| cyrillic_look_alike(c).unwrap_or(c)).collect())
    } else {
        Cow::Borrowed(word)
    }
}

/// The Russian letter a lowercase Latin letter is mistaken for, if any. `ë` reads
/// as `е` because `ё` does (rule 1).
fn cyrillic_look_alike(c: char) -> Option<char> {
    let cyrillic = match c {
        'a' => 'а',
        'b' => 'в',
        'c' => 'с',
        'e' | 'ë' => 'е',
        'h' => 'н',
        'k' => 'к',
        'm' => 'м',
        'o' => 'о',
        'p' => 'р',
        't' => 'т',
        'x' => 'х',
        'y' => 'у',
        _ => return None,
    };
    Some(cyrillic)
}

/// A letter of the Cyrillic script: the Cyrillic, Cyrillic Supplement,
/// Extended-C and Extended-B blocks (Extended-A holds only combining marks,
/// which folding drops).
fn is_cyrillic(c: char) -> bool {
    matches!(c, '\u{0400}'..='\u{052F}' | '\u{1C80}'..='\u{1C8F}' | '\u{A640}'..='\u{A69F}') && c.is_alphabetic()
}

/// A letter of the Latin script, lowercase as folding leaves it: ASCII, Latin-1,
/// Latin Extended-A and -B, IPA extensions and Latin Extended Additional.
fn is_latin(c: char) -> bool {
    matches!(c, 'a'..='z' | '\u{00DF}'..='\u{00FF}' | '\u{0100}'..='\u{02AF}' | '\u{1E00}'..='\u{1EFF}')
        && c.is_alphabetic()
}

/// Rule 5, on a word already folded and read for look-alikes.
fn is_stop_word(word: &str) -> bool {
    STOP_WORDS.contains(word)
}

/// Rule 4. Snowball only removes or rewrites endings, so a stem is never longer
/// than its word nor empty; should it ever come back empty, the word stands for it.
fn stem(word: &str) -> String {
    let stemmed = if word.chars().any(is_cyrillic) {
        RUSSIAN.stem(word)
    } else if word.chars().any(char::is_alphabetic) && word.chars().filter(|c| c.is_alphabetic()).all(is_latin) {
        ENGLISH.stem(word)
    } else {
        Cow::Borrowed(word)
    };
    if stemmed.is_empty() { word.to_owned() } else { stemmed.into_owned() }
}

/// The first `max_chars` characters of `word`.
fn at_most(word: &str, max_chars: usize) -> &str {
    word.char_indices().nth(max_chars).map_or(word, |(end, _)| &word[..end])
}

/// Rule 7's surface-form term of a folded word.
fn surface_term(word: &str) -> String {
    let mut term = String::with_capacity(WORD_MARK.len_utf8() + word.len());
    term.push(WORD_MARK);
    term.push_str(word);
    term
}

/// Rule 6's bounds on the raw query: composed, at most [`MAX_SEARCH_CHARS`]
/// characters, no control characters but line breaks and tabs (which separate
/// words like spaces, and come with pasted text).
fn bounded_query(raw: &str) -> Result<String, InvalidInput> {
    let composed = normalize(raw);
    let length = composed.chars().count();
    if length > MAX_SEARCH_CHARS {
        return Err(InvalidInput::new(FIELD, format!("must be at most {MAX_SEARCH_CHARS} characters, got {length}")));
    }
    if let Some(bad) = composed.chars().find(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t')) {
        return Err(InvalidInput::new(FIELD, format!("must not contain the control character U+{:04X}", bad as u32)));
    }
    Ok(composed)
}

/// Rule 6 for one word of the query: its term, or `None` for a stop word.
fn query_term(token: &Token<'_>) -> Result<Option<QueryTerm>, InvalidInput> {
    let word = read_look_alikes(token.word);
    if token.starred {
        if word.chars().count() < MIN_PREFIX_CHARS {
            return Err(InvalidInput::new(FIELD, format!("`{word}*`: a prefix needs at least two letters")));
        }
        return Ok(Some(QueryTerm::Prefix(surface_term(&word))));
    }
    if is_stop_word(&word) {
        return Ok(None);
    }
    Ok(Some(QueryTerm::Exact(stem(&word))))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// Whether `query` finds `text`, for a query that must parse.
    fn finds(query: &str, text: &str) -> bool {
        let parsed = WordQuery::parse(query).unwrap_or_else(|error| panic!("query {query:?} should parse: {error}"));
        parsed.matches(&index_terms(text))
    }

    /// Each row: a query, a text, and whether the query finds the text.
    fn check(rows: &[(&str, &str, bool)]) {
        for &(query, text, expected) in rows {
            assert_eq!(finds(query, text), expected, "query {query:?} on text {text:?}");
        }
    }

    /// The problem `query` is refused for.
    fn refusal(query: &str) -> String {
        match WordQuery::parse(query) {
            Ok(parsed) => panic!("query {query:?} should be refused, got {parsed:?}"),
            Err(error) => {
                assert_eq!(error.field, "search", "query {query:?}");
                error.problem
            }
        }
    }

    #[test]
    fn any_form_of_a_word_finds_any_other() {
        let text = "Большая яма во дворе, нет освещение";
        check(&[
            ("яма", text, true),
            ("ямы", text, true),
            ("яму", text, true),
            ("ямой", text, true),
            ("Яма", text, true),
            ("ЯМА", text, true),
            ("освещения", text, true),
            ("освещением", text, true),
            ("двор", text, true),
            ("ямами", "ЯМА", true),
            ("лужа", text, false),
        ]);
    }

    #[test]
    fn yo_is_ye_and_either_spelling_finds_the_other() {
        check(&[
            ("ёлка", "упала елка", true),
            ("елка", "упала ёлка", true),
            ("ЁЛКИ", "упала елка", true),
            ("желтый", "Жёлтый подъезд", true),
        ]);
    }

    #[test]
    fn decomposed_letters_and_stress_marks_read_as_composed_letters() {
        check(&[
            ("е\u{0308}лка", "ёлка", true),
            ("елка", "Е\u{0308}ЛКА", true),
            ("желтыи\u{0306}", "жёлтый", true),
            ("жёлтый", "Же\u{0308}лтыи\u{0306}", true),
            ("ударе\u{0301}ние", "ударение", true),
            ("ударение", "Ударе\u{0301}ние", true),
        ]);
        assert_eq!(index_terms("и\u{0306}од"), index_terms("йод"), "decomposed й is й");
        assert_ne!(index_terms("йод"), index_terms("иод"), "й is not и");
    }

    #[test]
    fn latin_look_alikes_in_a_cyrillic_word_read_as_cyrillic() {
        check(&[
            ("дoрoгa", "разбитая дорога", true),
            ("дорога", "разбитая дoрoгa", true),
            ("ЯMA", "яма", true),
            ("xop", "хор", false),
        ]);
        assert!(index_terms("нa").is_empty(), "`нa` with a Latin `a` is the stop word `на`");
        assert!(refusal("нa").contains("stop words"));
    }

    #[test]
    fn latin_words_are_stemmed_as_english() {
        check(&[
            ("covid", "Вакцина от COVID-19", true),
            ("19", "Вакцина от COVID-19", true),
            ("lights", "street light is broken", true),
            ("light", "the lights are off", true),
            ("Lighting", "the lights are off", true),
            ("lamp", "the lights are off", false),
        ]);
    }

    #[test]
    fn punctuation_around_a_word_does_not_matter() {
        check(&[
            ("яма", "яма,", true),
            ("яма", "«яма»", true),
            ("яма", "(ямы)", true),
            ("яма", "…яма!!!", true),
            ("из-за ямы", "из за ям", true),
        ]);
    }

    #[test]
    fn a_prefix_matches_the_start_of_a_word_as_written() {
        check(&[
            ("дорог*", "дорогами", true),
            ("дорог*", "дороги", true),
            // `дорогами` starts with `дорога`; `дороги` does not.
            ("дорога*", "дорогами", true),
            ("дорога*", "дороги", false),
            ("осв*", "Освещение", true),
            ("по*", "повод", true),
            ("рог*", "дорога", false),
            ("яма*", "яма", true),
            ("ЁЛ*", "елка", true),
            ("дoр*", "дорога", true),
            ("co*", "COVID-19", true),
        ]);
    }

    #[test]
    fn every_word_of_a_query_must_match() {
        let text = "Яма во дворе дома";
        check(&[
            ("яма двор", text, true),
            ("яма дорога", text, false),
            ("двор* ям*", text, true),
            ("двор* дорог*", text, false),
            ("яма во дворе", text, true),
        ]);
    }

    #[test]
    fn stems_are_snowballs() {
        let rows = [
            ("дорогами", [">дорогами", "дорог"]),
            ("яма", [">яма", "ям"]),
            ("ямой", [">ямой", "ям"]),
            ("освещения", [">освещения", "освещен"]),
            ("освещение", [">освещение", "освещен"]),
            ("ЁЛКА", [">елка", "елк"]),
            ("lights", [">lights", "light"]),
        ];
        for (text, expected) in rows {
            assert_eq!(index_terms(text), expected, "text {text:?}");
        }
        assert_eq!(index_terms("Яма, яма и ЯМЫ"), [">яма", ">ямы", "ям"], "distinct and sorted by bytes");
        assert_eq!(index_terms("COVID-19"), ["19", ">19", ">covid", "covid"]);
    }

    #[test]
    fn a_word_too_long_for_a_lexeme_is_indexed_by_its_start() {
        let long = "я".repeat(MAX_TERM_CHARS + 100);
        let start = format!("{WORD_MARK}{}", "я".repeat(MAX_TERM_CHARS));
        assert_eq!(index_terms(&format!("{long} яма")), [">яма".to_owned(), start, "ям".to_owned()], "no stem for it");
        let at_the_limit = "я".repeat(MAX_TERM_CHARS);
        assert_eq!(index_terms(&at_the_limit).len(), 2, "a word of {MAX_TERM_CHARS} characters keeps its stem");
        for term in index_terms(&"QUJD".repeat(600)) {
            assert!(term.len() <= 2047, "a term of {} bytes", term.len());
        }
        check(&[
            (&format!("{}*", "я".repeat(MAX_SEARCH_CHARS - 1)), &long, true),
            (&format!("{}*", "я".repeat(MAX_SEARCH_CHARS - 2) + "ю"), &long, false),
            ("яма", &long, false),
        ]);
    }

    #[test]
    fn stop_words_are_not_indexed() {
        assert!(index_terms("и в на не что").is_empty());
        assert!(index_terms("the of and").is_empty());
        assert!(index_terms("aren't").is_empty(), "both halves of a contraction are stop words");
        assert_eq!(index_terms("яма на дороге"), [">дороге", ">яма", "дорог", "ям"]);
        check(&[("яма на", "яма", true), ("яма и дорога", "дорога, яма", true)]);
    }

    #[test]
    fn queries_without_a_word_to_search_for_are_refused() {
        let rows = [
            ("", "no words"),
            ("   \n\t", "no words"),
            ("?!… — «»", "no words"),
            ("*", "no words"),
            ("\u{0301}", "no words"),
            ("и в на", "stop words"),
            ("The", "stop words"),
            ("я*", "at least two letters"),
            ("яма д*", "at least two letters"),
            ("яма дорога двор фонарь лифт мусор улица подъезд крыша", "at most 8"),
            ("яма\u{0007}", "U+0007"),
        ];
        for (query, fragment) in rows {
            let problem = refusal(query);
            assert!(problem.contains(fragment), "query {query:?}: {problem}");
        }
        let too_long = "яма ".repeat(50) + "я";
        assert!(refusal(&too_long).contains("at most 200 characters"));
    }

    #[test]
    fn queries_keep_one_copy_of_each_term() {
        let query = WordQuery::parse("яма ЯМЫ ямой дорог* дорог* и").unwrap();
        assert_eq!(query.terms(), [QueryTerm::Exact("ям".into()), QueryTerm::Prefix(">дорог".into())]);
        let eight_words = "яма дорога двор фонарь лифт мусор улица подъезд ямы ямой";
        assert_eq!(WordQuery::parse(eight_words).unwrap().terms().len(), 8, "repeats do not count");
        assert!(WordQuery::parse("яма\nдорога\tдвор").is_ok(), "line breaks and tabs separate words");
        assert!(WordQuery::parse(&("яма ".repeat(49) + "ям")).is_ok(), "200 characters are accepted");
    }

    #[test]
    fn a_star_elsewhere_separates_words() {
        let query = WordQuery::parse("*яма**дорога").unwrap();
        assert_eq!(query.terms(), [QueryTerm::Prefix(">яма".into()), QueryTerm::Exact("дорог".into())]);
    }

    #[test]
    fn both_stop_word_lists_are_loaded() {
        for word in ["и", "на", "еще", "the", "aren"] {
            assert!(is_stop_word(word), "{word:?} should be a stop word");
        }
        assert!(!is_stop_word("яма"));
    }

    /// Text of the kinds residents write, and the kinds that trip analysers:
    /// Cyrillic in both cases with `ё` and `й`, Latin, digits, punctuation, quotes,
    /// stars, combining marks, and a few letters of other scripts.
    fn resident_text() -> impl Strategy<Value = String> {
        "[а-яёА-ЯЁa-zA-Z0-9 ,.!?*«»()\\-\n\u{0300}-\u{036F}ßéΣσ東京]{0,80}"
    }

    /// Every word of `text` as index_terms reads it.
    fn read_words(text: &str) -> Vec<String> {
        let folded = fold(text);
        tokens(&folded).map(|token| read_look_alikes(token.word).into_owned()).collect()
    }

    proptest! {
        #[test]
        fn index_terms_are_sorted_distinct_and_safe_to_quote(text in prop_oneof![resident_text(), any::<String>()]) {
            let terms = index_terms(&text);
            prop_assert!(terms.windows(2).all(|pair| pair[0] < pair[1]), "sorted and distinct: {terms:?}");
            for term in &terms {
                let body = term.strip_prefix(WORD_MARK).unwrap_or(term);
                prop_assert!(!body.is_empty(), "empty term in {terms:?}");
                prop_assert!(body.chars().all(char::is_alphanumeric), "term {term:?}");
            }
        }

        #[test]
        fn every_word_of_a_text_finds_the_text(text in resident_text()) {
            let terms = index_terms(&text);
            for word in read_words(&text) {
                match WordQuery::parse(&word) {
                    Ok(query) => prop_assert!(query.matches(&terms), "word {word:?} of {text:?}"),
                    Err(error) => prop_assert!(is_stop_word(&word), "word {word:?} refused: {error}"),
                }
                if word.chars().count() >= MIN_PREFIX_CHARS {
                    let prefix = format!("{word}*");
                    prop_assert!(WordQuery::parse(&prefix).unwrap().matches(&terms) || is_stop_word(&word));
                }
            }
        }

        #[test]
        fn folding_is_idempotent(text in prop_oneof![resident_text(), any::<String>()]) {
            let once = fold(&text);
            prop_assert_eq!(fold(&once), once.clone());
        }

        #[test]
        fn parsing_never_panics(raw in prop_oneof![resident_text(), any::<String>()]) {
            let _ = WordQuery::parse(&raw);
        }
    }
}
