//! Puts every object of an answer in the order its selection set names the
//! fields, as the GraphQL specification requires ("Response" / ordered maps).
//!
//! async-graphql resolves a query's fields concurrently and writes each into the
//! answer as it completes, so fields that wait on the database can come back in
//! any order, and the root fields of the merged query root in the order of its
//! parts. This pass walks the answer beside the operation's selection sets
//! (fragments and inline fragments expanded where they stand, a response key
//! placed where it first appears) and rebuilds each object in that order.
//!
//! It walks only what the answer holds, and the answer's depth is bounded by the
//! admitted document's nesting ([`crate::admission`]); fragment spreads are
//! followed at most [`MAX_FRAGMENT_DEPTH`] deep, as admission allows.

use async_graphql::indexmap::IndexMap;
use async_graphql::parser::types::{DocumentOperations, ExecutableDocument, Selection, SelectionSet};
use async_graphql::{Name, Value};

/// How deep fragment spreads are followed (admission refuses deeper chains).
const MAX_FRAGMENT_DEPTH: usize = 16;

/// What an answer is put in order by: the admitted request's document and
/// the name of the operation it runs.
pub struct Order {
    document: Option<ExecutableDocument>,
    operation_name: Option<String>,
}

impl Order {
    /// Taken from an admitted request (its document is parsed already).
    pub fn of(request: &mut async_graphql::Request) -> Order {
        let document = request.parsed_query().ok().cloned();
        Order { document, operation_name: request.operation_name.clone() }
    }

    /// Puts `response`'s data in order.
    pub fn apply(&self, response: &mut async_graphql::Response) {
        if let Some(document) = &self.document {
            reorder(&mut response.data, document, self.operation_name.as_deref());
        }
    }
}

/// Reorders `data`, the answer to `operation_name` of `document`.
pub fn reorder(data: &mut Value, document: &ExecutableDocument, operation_name: Option<&str>) {
    let operation = match (&document.operations, operation_name) {
        (DocumentOperations::Single(operation), _) => operation,
        (DocumentOperations::Multiple(operations), Some(name)) => match operations.get(name) {
            Some(operation) => operation,
            None => return,
        },
        (DocumentOperations::Multiple(operations), None) if operations.len() == 1 => match operations.values().next() {
            Some(operation) => operation,
            None => return,
        },
        (DocumentOperations::Multiple(_), None) => return,
    };
    reorder_value(data, &[&operation.node.selection_set.node], document);
}

fn reorder_value(value: &mut Value, sets: &[&SelectionSet], document: &ExecutableDocument) {
    let mut fields: IndexMap<Name, Vec<&SelectionSet>> = IndexMap::new();
    for set in sets {
        collect(set, document, 0, &mut fields);
    }
    arrange(value, &fields, document);
}

/// Puts `value` (an object, or a list of them) in the order of `fields`,
/// worked out once for every item of a list.
fn arrange(value: &mut Value, fields: &IndexMap<Name, Vec<&SelectionSet>>, document: &ExecutableDocument) {
    match value {
        Value::List(items) => {
            for item in items {
                arrange(item, fields, document);
            }
        }
        Value::Object(object) => {
            let mut ordered = IndexMap::with_capacity(object.len());
            for (key, subsets) in fields {
                // `swap_remove`: constant time; the order is rebuilt here anyway.
                if let Some(mut child) = object.swap_remove(key) {
                    if !subsets.is_empty() {
                        reorder_value(&mut child, subsets, document);
                    }
                    ordered.insert(key.clone(), child);
                }
            }
            // Anything the selection sets do not name (none expected) follows them.
            ordered.extend(std::mem::take(object));
            *object = ordered;
        }
        _ => {}
    }
}

/// The response keys `set` selects, in order, each with the selection sets of
/// its sub-fields (several when the key is selected more than once). A map,
/// so that a selection of thousands of aliases costs as many steps.
fn collect<'a>(
    set: &'a SelectionSet,
    document: &'a ExecutableDocument,
    depth: usize,
    fields: &mut IndexMap<Name, Vec<&'a SelectionSet>>,
) {
    for selection in &set.items {
        match &selection.node {
            Selection::Field(field) => {
                let subsets = fields.entry(field.node.response_key().node.clone()).or_default();
                let subset = &field.node.selection_set.node;
                if !subset.items.is_empty() {
                    subsets.push(subset);
                }
            }
            Selection::InlineFragment(fragment) => {
                if depth < MAX_FRAGMENT_DEPTH {
                    collect(&fragment.node.selection_set.node, document, depth + 1, fields);
                }
            }
            Selection::FragmentSpread(spread) => {
                if depth < MAX_FRAGMENT_DEPTH
                    && let Some(fragment) = document.fragments.get(&spread.node.fragment_name.node)
                {
                    collect(&fragment.node.selection_set.node, document, depth + 1, fields);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use async_graphql::parser::parse_query;
    use serde_json::json;

    use super::*;

    fn reordered(query: &str, operation: Option<&str>, data: serde_json::Value) -> String {
        let document = parse_query(query).expect("a valid query");
        let mut value = Value::from_json(data).expect("JSON");
        reorder(&mut value, &document, operation);
        // Serialized straight from the value, whose maps keep their order
        // (serde_json's own `Value` would sort the keys).
        serde_json::to_string(&value).expect("JSON")
    }

    #[test]
    fn fields_come_back_in_the_order_they_were_asked_for_at_every_level() {
        let query = "{ b: me { name id } a: municipalities { code name } me { id } }";
        let data = json!({ "me": { "id": "1" }, "a": [{ "name": "Томск", "code": "tomsk" }], "b": { "id": "1", "name": "Иван" } });
        assert_eq!(
            reordered(query, None, data),
            r#"{"b":{"name":"Иван","id":"1"},"a":[{"code":"tomsk","name":"Томск"}],"me":{"id":"1"}}"#
        );
    }

    #[test]
    fn fragments_place_their_fields_where_they_are_spread() {
        let query = "query Q { ...Top appeal(id: 1) { ... on Appeal { status } id } } \
                     fragment Top on Query { me { id } }";
        let data = json!({ "appeal": { "id": "7", "status": "SEEN" }, "me": { "id": "1" } });
        assert_eq!(reordered(query, Some("Q"), data), r#"{"me":{"id":"1"},"appeal":{"status":"SEEN","id":"7"}}"#);
    }

    #[test]
    fn a_key_selected_twice_keeps_its_first_place_and_both_selections() {
        let query = "{ me { id } municipalities { code } me { name } }";
        let data = json!({ "municipalities": [], "me": { "name": "Иван", "id": "1" } });
        assert_eq!(reordered(query, None, data), r#"{"me":{"id":"1","name":"Иван"},"municipalities":[]}"#);
    }

    #[test]
    fn a_cycle_of_fragments_does_not_recurse_without_end() {
        // Admission refuses such a document; the walk must still end.
        let query = "{ ...A } fragment A on Query { me { id } ...B } fragment B on Query { ...A }";
        let data = json!({ "me": { "id": "1" } });
        assert_eq!(reordered(query, None, data), r#"{"me":{"id":"1"}}"#);
    }
}
