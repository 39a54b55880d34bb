//! The texts a resident receives (spec, "Channels": Russian by default and
//! configurable). A template is plain text with placeholders: `{number}` (the
//! appeal's registration number), `{due_date}` (the date an answer is due) and, in
//! an answer only, `{response}` (the official's answer).

use crate::vocabulary;

vocabulary!(
    /// Which reply a resident gets, and when.
    ReplyKind {
        /// When the appeal is registered: its number and the date an answer is due.
        Acknowledgement => "ACKNOWLEDGEMENT",
        /// When the head reads it.
        SeenNotice => "SEEN_NOTICE",
        /// When it is resolved: the response.
        Answer => "ANSWER",
    }
);

/// The longest template, in characters.
pub const MAX_TEMPLATE_CHARS: usize = 2000;

const NUMBER: &str = "number";
const DUE_DATE: &str = "due_date";
const RESPONSE: &str = "response";

/// The text a reply of `kind` has unless a municipality configured its own.
pub fn default_template(kind: ReplyKind) -> &'static str {
    match kind {
        ReplyKind::Acknowledgement => {
            "Ваше обращение зарегистрировано под номером {number}. Ответ будет дан не позднее {due_date}."
        }
        ReplyKind::SeenNotice => "Ваше обращение {number} прочитано главой.",
        ReplyKind::Answer => "Ответ на ваше обращение {number}:\n\n{response}",
    }
}

/// Fills in `{number}`, `{due_date}` and `{response}`. Anything else in braces is
/// left as it is, and a value is never read as a template itself (a response that
/// mentions `{number}` keeps it).
pub fn render(template: &str, number: &str, due_date: &str, response: &str) -> String {
    let mut rendered = String::with_capacity(template.len() + number.len() + due_date.len() + response.len());
    let mut rest = template;
    while let Some((before, name, after)) = next_placeholder(rest) {
        rendered.push_str(before);
        match name {
            NUMBER => rendered.push_str(number),
            DUE_DATE => rendered.push_str(due_date),
            RESPONSE => rendered.push_str(response),
            unknown => {
                rendered.push('{');
                rendered.push_str(unknown);
                rendered.push('}');
            }
        }
        rest = after;
    }
    rendered.push_str(rest);
    rendered
}

/// Checks a template an admin configures for `kind`: not blank, at most
/// [`MAX_TEMPLATE_CHARS`] characters, no control characters but line breaks and
/// tabs, only the placeholders that kind can fill, and, for an answer, the
/// `{response}` itself. The error says what is wrong, in a sentence.
pub fn validate_template(kind: ReplyKind, template: &str) -> Result<(), String> {
    if template.trim().is_empty() {
        return Err("the template must not be empty".to_owned());
    }
    let length = template.chars().count();
    if length > MAX_TEMPLATE_CHARS {
        return Err(format!("the template must be at most {MAX_TEMPLATE_CHARS} characters, got {length}"));
    }
    if let Some(bad) = template.chars().find(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t')) {
        return Err(format!("the template must not contain the control character U+{:04X}", bad as u32));
    }
    let known = placeholders(kind);
    let mut rest = template;
    while let Some((_, name, after)) = next_placeholder(rest) {
        if !known.contains(&name) {
            let listed = known.iter().map(|name| format!("{{{name}}}")).collect::<Vec<_>>().join(", ");
            return Err(format!("{{{name}}} is not a placeholder of {kind}; it may use {listed}"));
        }
        rest = after;
    }
    if kind == ReplyKind::Answer && !template.contains("{response}") {
        return Err("an ANSWER template must contain {response}".to_owned());
    }
    Ok(())
}

/// The placeholders a reply of `kind` can fill: the response exists only once the
/// appeal is resolved.
fn placeholders(kind: ReplyKind) -> &'static [&'static str] {
    match kind {
        ReplyKind::Acknowledgement | ReplyKind::SeenNotice => &[NUMBER, DUE_DATE],
        ReplyKind::Answer => &[NUMBER, DUE_DATE, RESPONSE],
    }
}

/// The first `{name}` in `text` whose name is letters, digits and `_`: the text
/// before it, the name, and the text after it. Braces around anything else are
/// text.
fn next_placeholder(text: &str) -> Option<(&str, &str, &str)> {
    let mut from = 0;
    while let Some(open) = text[from..].find('{').map(|at| from + at) {
        let inside = &text[open + 1..];
        let name_length = inside.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(inside.len());
        if name_length > 0 && inside[name_length..].starts_with('}') {
            return Some((&text[..open], &inside[..name_length], &inside[name_length + 1..]));
        }
        from = open + 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_default_template_is_valid_for_its_kind() {
        for kind in ReplyKind::ALL {
            assert_eq!(validate_template(*kind, default_template(*kind)), Ok(()), "{kind}");
        }
    }

    #[test]
    fn rendering_fills_the_known_placeholders_once_and_leaves_the_rest() {
        let rendered =
            render("№{number} до {due_date}: {response} {unknown} {not a name} {", "А-17", "01.02.2026", "{number}");
        assert_eq!(rendered, "№А-17 до 01.02.2026: {number} {unknown} {not a name} {");
    }

    #[test]
    fn the_default_acknowledgement_reads_as_a_sentence() {
        let rendered = render(default_template(ReplyKind::Acknowledgement), "ТМ-2026-000017", "15.03.2026", "");
        assert_eq!(
            rendered,
            "Ваше обращение зарегистрировано под номером ТМ-2026-000017. Ответ будет дан не позднее 15.03.2026."
        );
    }

    #[test]
    fn invalid_templates_are_refused_with_the_reason() {
        let long = "я".repeat(MAX_TEMPLATE_CHARS + 1);
        let rows: &[(ReplyKind, &str, &str)] = &[
            (ReplyKind::SeenNotice, "  \n", "must not be empty"),
            (ReplyKind::SeenNotice, &long, "at most 2000 characters, got 2001"),
            (ReplyKind::SeenNotice, "Обращение {number}\u{7}", "control character U+0007"),
            (ReplyKind::Acknowledgement, "Обращение {nomer}", "{nomer} is not a placeholder of ACKNOWLEDGEMENT"),
            (ReplyKind::Acknowledgement, "Ответ: {response}", "{response} is not a placeholder of ACKNOWLEDGEMENT"),
            (ReplyKind::Answer, "Обращение {number} рассмотрено.", "must contain {response}"),
        ];
        for (kind, template, expected) in rows {
            let error = validate_template(*kind, template).expect_err(expected);
            assert!(error.contains(expected), "row {expected:?}: got {error:?}");
        }
    }

    #[test]
    fn braces_that_are_not_placeholders_are_allowed() {
        assert_eq!(validate_template(ReplyKind::Answer, "{response} {} { x } {{"), Ok(()));
    }
}
