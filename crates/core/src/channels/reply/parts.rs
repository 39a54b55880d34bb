//! A reply cut into parts that each fit one message.
//!
//! Lengths are counted in UTF-16 code units, the way Telegram counts its 4096
//! (an emoji outside the Basic Multilingual Plane is two); for VK and MAX, whose
//! counting is less clearly documented, the same count is the cautious one, since
//! it is never less than the number of characters.
//!
//! A part ends at the last paragraph break that fits, else the last line break,
//! else the last space, but only in the second half of the limit, so that no part
//! but the last is shorter than half a message: a 20,000-character answer takes at
//! most ten Telegram messages. A text with no space for half a message is cut
//! hard, never inside a character and, where it can be helped, not between a
//! character and the marks or joiners that belong to it.

use super::Platform;

/// Splits `text` into parts that each fit one message on `platform`. The parts are
/// the text's own, in order, trimmed at the cuts; none is empty, and a blank text
/// has none. The same text always gives the same parts.
pub fn split_text(platform: Platform, text: &str) -> Vec<String> {
    split(text, platform.max_part_utf16())
}

fn split(text: &str, limit: usize) -> Vec<String> {
    let mut parts = Vec::new();
    let mut rest = text.trim();
    while !rest.is_empty() {
        let fits = prefix_within(rest, limit);
        if fits == rest.len() {
            parts.push(rest.to_owned());
            break;
        }
        // A break right after the longest prefix that fits is as good as one inside it.
        let window = fits + rest[fits..].chars().next().map_or(0, char::len_utf8);
        let cut = soft_cut(&rest[..window], prefix_within(rest, limit / 2)).unwrap_or_else(|| hard_cut(rest, fits));
        let (part, next) = rest.split_at(cut);
        parts.push(part.trim_end().to_owned());
        rest = next.trim_start();
    }
    parts
}

/// The byte length of the longest prefix of `text` within `units` UTF-16 code units.
fn prefix_within(text: &str, units: usize) -> usize {
    let mut used = 0;
    for (at, c) in text.char_indices() {
        used += c.len_utf16();
        if used > units {
            return at;
        }
    }
    text.len()
}

/// The last paragraph break, line break or whitespace that starts in `window` at
/// or after byte `earliest`, in that order of preference.
fn soft_cut(window: &str, earliest: usize) -> Option<usize> {
    let at_or_after = |at: &usize| *at >= earliest && *at > 0;
    window
        .rfind("\n\n")
        .filter(at_or_after)
        .or_else(|| window.rfind('\n').filter(at_or_after))
        .or_else(|| window.char_indices().rev().find(|(at, c)| c.is_whitespace() && at_or_after(at)).map(|(at, _)| at))
}

/// Cuts `text` at byte `fits`, moved back so as not to part a character from the
/// combining marks, joiners or variation selectors that follow it; never at 0.
fn hard_cut(text: &str, fits: usize) -> usize {
    let mut cut = fits;
    while cut > 0 && (starts_attached(&text[cut..]) || text[..cut].ends_with('\u{200D}')) {
        cut = text[..cut].char_indices().next_back().map_or(0, |(at, _)| at);
    }
    if cut > 0 { cut } else { fits.max(text.chars().next().map_or(0, char::len_utf8)) }
}

/// Whether `text` begins with a character that belongs to the one before it.
fn starts_attached(text: &str) -> bool {
    text.chars().next().is_some_and(|c| {
        matches!(c,
            '\u{0300}'..='\u{036F}'          // combining diacritical marks (й as и + ◌̆)
            | '\u{200D}'                     // zero-width joiner
            | '\u{FE00}'..='\u{FE0F}'        // variation selectors
            | '\u{1F3FB}'..='\u{1F3FF}'      // skin tone modifiers
            | '\u{E0020}'..='\u{E007F}'      // tag characters (subdivision flags)
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_short_text_is_one_part_and_a_blank_text_none() {
        assert_eq!(split("  Ответ  ", 10), vec!["Ответ"]);
        assert!(split(" \n ", 10).is_empty());
    }

    #[test]
    fn the_cut_prefers_a_paragraph_then_a_line_then_a_space() {
        assert_eq!(split("aaaa bbbb\n\ncc dd", 12), vec!["aaaa bbbb", "cc dd"]);
        assert_eq!(split("aaaa bbbb\ncc dd ee", 12), vec!["aaaa bbbb", "cc dd ee"]);
        assert_eq!(split("aaaa bbbb cc dd", 12), vec!["aaaa bbbb cc", "dd"]);
    }

    #[test]
    fn a_break_in_the_first_half_is_passed_over_for_a_later_one() {
        assert_eq!(split("a\n\nbbbbbb cc dd", 12), vec!["a\n\nbbbbbb cc", "dd"]);
    }

    #[test]
    fn a_word_longer_than_a_message_is_cut_hard_but_not_inside_a_character() {
        assert_eq!(split("абвгдеёжзий", 4), vec!["абвг", "деёж", "зий"]);
        assert_eq!(split("😀😀😀", 3), vec!["😀", "😀", "😀"]);
    }

    #[test]
    fn a_hard_cut_keeps_joined_emoji_and_marks_together() {
        let family = "👨\u{200D}👩\u{200D}👧";
        let parts = split(&format!("{family}{family}"), 10);
        assert!(parts.iter().all(|part| !part.starts_with('\u{200D}') && !part.ends_with('\u{200D}')), "{parts:?}");
        assert_eq!(split("и\u{0306}и\u{0306}и\u{0306}", 3), vec!["и\u{0306}", "и\u{0306}", "и\u{0306}"]);
    }
}
