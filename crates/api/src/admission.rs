//! What a GraphQL document must pass before async-graphql parses, validates or
//! runs it. The server faces the open internet, and async-graphql's parser and
//! validators recurse over the document and expand every fragment spread, so a
//! few kilobytes can overflow a stack (`[[[[…]]]]` two thousand deep) or keep a
//! core busy for hours (fragments that each spread the next ten times). Every
//! check here is linear in the request's size and bounded in depth:
//!
//! 1. [`check_nesting`] scans the text once, without recursion, and refuses
//!    brackets nested deeper than [`DocumentLimits::max_nesting`].
//! 2. The document is parsed (now safe: its nesting is bounded), and
//!    [`expanded_size`] counts the fields it would have with every fragment spread
//!    inlined, remembering each fragment's size, so that a chain of fragments is
//!    measured in the time it takes to read it.
//! 3. [`check_variables`] bounds the nesting of the JSON variables.
//!
//! The cost of what the document asks for (lists multiply) is checked later, at
//! validation, by [`crate::budget`]. A refused document is `VALIDATION`, and the
//! message names the limit.

use async_graphql::parser::types::{ExecutableDocument, Selection, SelectionSet};
use async_graphql::{Name, Positioned, Request, Value, Variables};
use std::collections::HashMap;

use crate::error::{ApiError, ErrorCode};

/// Bounds on a document's shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DocumentLimits {
    /// The deepest nesting of `{`, `[` and `(` in a document's text.
    pub max_nesting: usize,
    /// The most fields a document may have once every fragment is inlined.
    pub max_expanded_fields: usize,
    /// The deepest chain of fragments spreading fragments.
    pub max_fragment_depth: usize,
    /// The deepest nesting of lists and objects in the variables.
    pub max_variables_nesting: usize,
    /// The most operations in one batched request.
    pub max_batch: usize,
}

impl Default for DocumentLimits {
    fn default() -> Self {
        Self {
            max_nesting: 64,
            max_expanded_fields: 10_000,
            max_fragment_depth: 16,
            max_variables_nesting: 32,
            max_batch: 10,
        }
    }
}

impl DocumentLimits {
    /// Checks `request` and hands async-graphql the parsed document, so that it is
    /// parsed once.
    pub fn admit(&self, request: &mut Request) -> Result<(), ApiError> {
        check_nesting(&request.query, self.max_nesting)?;
        check_variables(&request.variables, self.max_variables_nesting)?;
        let document = async_graphql::parser::parse_query(&request.query)
            .map_err(|error| ApiError::new(ErrorCode::Validation, format!("the document does not parse: {error}")))?;
        let fields = expanded_size(&document, self.max_fragment_depth)?;
        if fields > self.max_expanded_fields {
            return Err(refusal(format!(
                "the document has {fields} fields once its fragments are expanded; the limit is {}",
                self.max_expanded_fields
            )));
        }
        request.set_parsed_query(document);
        Ok(())
    }
}

fn refusal(message: String) -> ApiError {
    ApiError::new(ErrorCode::Validation, message)
}

/// Refuses a document whose brackets nest deeper than `max`. Strings, block
/// strings and comments are skipped, so brackets inside them do not count. One
/// pass, no recursion: this runs before anything else looks at the text.
pub fn check_nesting(document: &str, max: usize) -> Result<(), ApiError> {
    let bytes = document.as_bytes();
    let mut depth = 0usize;
    let mut index = 0;
    while index < bytes.len() {
        match bytes[index] {
            b'#' => {
                while index < bytes.len() && bytes[index] != b'\n' && bytes[index] != b'\r' {
                    index += 1;
                }
            }
            b'"' if bytes[index..].starts_with(b"\"\"\"") => {
                index += 3;
                while index < bytes.len() && !bytes[index..].starts_with(b"\"\"\"") {
                    // `\"""` is an escaped delimiter inside a block string.
                    index += if bytes[index..].starts_with(b"\\\"\"\"") { 4 } else { 1 };
                }
                index += 2;
            }
            b'"' => {
                index += 1;
                while index < bytes.len() && bytes[index] != b'"' && bytes[index] != b'\n' {
                    index += if bytes[index] == b'\\' { 2 } else { 1 };
                }
            }
            b'{' | b'[' | b'(' => {
                depth += 1;
                if depth > max {
                    return Err(refusal(format!("the document nests brackets more than {max} deep")));
                }
            }
            b'}' | b']' | b')' => depth = depth.saturating_sub(1),
            _ => {}
        }
        index += 1;
    }
    Ok(())
}

/// Refuses variables whose lists and objects nest deeper than `max`, walking them
/// with an explicit stack.
pub fn check_variables(variables: &Variables, max: usize) -> Result<(), ApiError> {
    let mut stack: Vec<(&Value, usize)> = variables.values().map(|value| (value, 1)).collect();
    while let Some((value, depth)) = stack.pop() {
        if depth > max {
            return Err(refusal(format!("the variables nest lists and objects more than {max} deep")));
        }
        match value {
            Value::List(items) => stack.extend(items.iter().map(|item| (item, depth + 1))),
            Value::Object(fields) => stack.extend(fields.values().map(|field| (field, depth + 1))),
            _ => {}
        }
    }
    Ok(())
}

/// How many fields `document` has with every fragment spread inlined, over all its
/// operations (saturating). Each fragment is measured once; a chain of fragments
/// deeper than `max_fragment_depth`, or a cycle, is refused.
pub fn expanded_size(document: &ExecutableDocument, max_fragment_depth: usize) -> Result<usize, ApiError> {
    let mut sizer = Sizer { document, sizes: HashMap::new(), max_fragment_depth };
    let mut total = 0usize;
    for (_, operation) in document.operations.iter() {
        total = total.saturating_add(sizer.selection_set(&operation.node.selection_set, 0)?);
    }
    Ok(total)
}

struct Sizer<'a> {
    document: &'a ExecutableDocument,
    /// `None` while a fragment is being measured: meeting it again is a cycle.
    sizes: HashMap<&'a Name, Option<usize>>,
    max_fragment_depth: usize,
}

impl<'a> Sizer<'a> {
    /// The recursion follows the document's nesting (bounded by [`check_nesting`])
    /// and the fragment chain (bounded by `max_fragment_depth`).
    fn selection_set(&mut self, set: &'a Positioned<SelectionSet>, fragment_depth: usize) -> Result<usize, ApiError> {
        let mut size = 0usize;
        for selection in &set.node.items {
            let item = match &selection.node {
                Selection::Field(field) => {
                    1usize.saturating_add(self.selection_set(&field.node.selection_set, fragment_depth)?)
                }
                Selection::InlineFragment(inline) => self.selection_set(&inline.node.selection_set, fragment_depth)?,
                Selection::FragmentSpread(spread) => self.fragment(&spread.node.fragment_name.node, fragment_depth)?,
            };
            size = size.saturating_add(item);
        }
        Ok(size)
    }

    fn fragment(&mut self, name: &'a Name, fragment_depth: usize) -> Result<usize, ApiError> {
        match self.sizes.get(name) {
            Some(Some(size)) => return Ok(*size),
            Some(None) => return Err(refusal(format!("the fragment `{name}` spreads itself"))),
            None => {}
        }
        // An unknown fragment is left for validation to report.
        let Some(fragment) = self.document.fragments.get(name) else { return Ok(0) };
        if fragment_depth >= self.max_fragment_depth {
            return Err(refusal(format!("fragments spread fragments more than {} deep", self.max_fragment_depth)));
        }
        self.sizes.insert(name, None);
        let size = self.selection_set(&fragment.node.selection_set, fragment_depth + 1)?;
        self.sizes.insert(name, Some(size));
        Ok(size)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn admit(query: &str) -> Result<(), String> {
        let mut request = Request::new(query);
        DocumentLimits::default().admit(&mut request).map_err(|error| error.message)
    }

    #[test]
    fn nesting_is_counted_outside_strings_and_comments_only() {
        assert!(check_nesting("{ a(x: \"[[[[[[\") }", 3).is_ok());
        assert!(check_nesting("{ a(x: \"\"\"[[[[ \\\"\"\" [[[[\"\"\") }", 3).is_ok());
        assert!(check_nesting("# [[[[[[\n{ a }", 2).is_ok());
        assert!(check_nesting("{ a(x: [[[1]]]) }", 4).is_err());
        assert!(check_nesting("{ a(x: [[1]]) }", 4).is_ok());
    }

    #[test]
    fn a_list_nested_two_thousand_deep_is_refused_before_parsing() {
        let query = format!("{{ a(x: {}1{}) }}", "[".repeat(2_000), "]".repeat(2_000));
        let refused = admit(&query).unwrap_err();
        assert!(refused.contains("more than 64 deep"), "{refused}");
    }

    #[test]
    fn a_chain_of_fragments_is_measured_without_expanding_it() {
        let mut query = String::from("query { ...F0 }\n");
        for level in 0..11 {
            let spreads = vec![format!("...F{}", level + 1); 10].join(" ");
            query.push_str(&format!("fragment F{level} on Query {{ {spreads} }}\n"));
        }
        query.push_str("fragment F11 on Query { me { id } }\n");
        let refused = admit(&query).unwrap_err();
        assert!(refused.contains("once its fragments are expanded"), "{refused}");
    }

    #[test]
    fn fragment_cycles_and_long_chains_are_refused() {
        let cycle = "query { ...A } fragment A on Query { ...B } fragment B on Query { ...A }";
        assert!(admit(cycle).unwrap_err().contains("spreads itself"));
        let mut chain = String::from("query { ...F0 }\n");
        for level in 0..40 {
            chain.push_str(&format!("fragment F{level} on Query {{ ...F{} }}\n", level + 1));
        }
        chain.push_str("fragment F40 on Query { me { id } }");
        assert!(admit(&chain).unwrap_err().contains("more than 16 deep"));
    }

    #[test]
    fn ordinary_documents_pass() {
        admit("query($id: ID!) { appeal(id: $id) { id history { seq } } }").unwrap();
        admit("fragment U on User { id name } query { me { ...U } }").unwrap();
    }

    #[test]
    fn deeply_nested_variables_are_refused() {
        let mut value = serde_json::json!(1);
        for _ in 0..40 {
            value = serde_json::json!([value]);
        }
        let variables = Variables::from_json(serde_json::json!({ "x": value }));
        assert!(check_variables(&variables, 32).is_err());
        let shallow = Variables::from_json(serde_json::json!({ "x": [[1]] }));
        assert!(check_variables(&shallow, 32).is_ok());
    }
}
