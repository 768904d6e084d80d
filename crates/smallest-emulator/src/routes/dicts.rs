//! `GET`, `POST`, `PUT` and `DELETE /waves/v1/pronunciation-dicts` (API.md §7): per-key
//! pronunciation dictionaries. The id travels in the JSON body, also for `DELETE`.
//!
//! Validation answers `400 {"error":"Invalid request body","details":[zod issues]}`; an id the key
//! does not own answers `404 {"error":"Dictionary not found"}`. `PUT` replaces the items (API.md §11
//! #40 leaves merge-or-replace open; replace is the judged reading).

use http::{Method, Response, StatusCode};
use serde::Serialize;
use serde_json::{Map, Value, json};

use super::Ctx;
use crate::auth::Caller;
use crate::body::{Body, ReadError};
use crate::errors;
use crate::library::{Dict, Item};

/// Largest JSON body read.
const MAX_JSON_BYTES: usize = 1024 * 1024;

/// One zod issue, fields in zod's order.
#[derive(Debug, Serialize)]
#[serde(untagged)]
enum Issue {
    InvalidType {
        code: &'static str,
        expected: &'static str,
        received: &'static str,
        path: Vec<Value>,
        message: String,
    },
    TooSmall {
        code: &'static str,
        minimum: u64,
        #[serde(rename = "type")]
        kind: &'static str,
        inclusive: bool,
        exact: bool,
        path: Vec<Value>,
        message: String,
    },
}

fn type_name(v: Option<&Value>) -> &'static str {
    match v {
        None => "undefined",
        Some(Value::Null) => "null",
        Some(Value::Bool(_)) => "boolean",
        Some(Value::Number(_)) => "number",
        Some(Value::String(_)) => "string",
        Some(Value::Array(_)) => "array",
        Some(Value::Object(_)) => "object",
    }
}

fn invalid_type(path: Vec<Value>, expected: &'static str, got: Option<&Value>) -> Issue {
    let received = type_name(got);
    Issue::InvalidType {
        code: "invalid_type",
        expected,
        received,
        path,
        message: if got.is_none() {
            "Required".to_owned()
        } else {
            format!("Expected {expected}, received {received}")
        },
    }
}

fn too_small(path: Vec<Value>, kind: &'static str) -> Issue {
    let message = match kind {
        "array" => "Array must contain at least 1 element(s)",
        _ => "String must contain at least 1 character(s)",
    };
    Issue::TooSmall {
        code: "too_small",
        minimum: 1,
        kind,
        inclusive: true,
        exact: false,
        path,
        message: message.to_owned(),
    }
}

/// A non-empty string at `obj[field]`.
fn nonempty_string(
    obj: &Map<String, Value>,
    field: &str,
    path: &[Value],
    issues: &mut Vec<Issue>,
) -> Option<String> {
    let mut path = path.to_vec();
    path.push(Value::from(field));
    match obj.get(field) {
        Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
        Some(Value::String(_)) => {
            issues.push(too_small(path, "string"));
            None
        }
        other => {
            issues.push(invalid_type(path, "string", other));
            None
        }
    }
}

/// `items`: an array of `{word, pronunciation}` (at least `min_items` of them).
fn items(obj: &Map<String, Value>, min_items: usize, issues: &mut Vec<Issue>) -> Option<Vec<Item>> {
    let path = vec![Value::from("items")];
    let list = match obj.get("items") {
        Some(Value::Array(list)) => list,
        other => {
            issues.push(invalid_type(path, "array", other));
            return None;
        }
    };
    let before = issues.len();
    let mut out = Vec::with_capacity(list.len());
    for (i, entry) in list.iter().enumerate() {
        let at = vec![Value::from("items"), Value::from(i)];
        let Value::Object(entry) = entry else {
            issues.push(invalid_type(at, "object", Some(entry)));
            continue;
        };
        let word = nonempty_string(entry, "word", &at, issues);
        let pronunciation = nonempty_string(entry, "pronunciation", &at, issues);
        if let (Some(word), Some(pronunciation)) = (word, pronunciation) {
            out.push(Item {
                word,
                pronunciation,
            });
        }
    }
    if list.len() < min_items {
        issues.push(too_small(path, "array"));
    }
    (issues.len() == before).then_some(out)
}

/// The body as an object; an absent body reads as `{}` (like a JSON body parser).
fn object(body: &Value, issues: &mut Vec<Issue>) -> Option<Map<String, Value>> {
    match body {
        Value::Object(obj) => Some(obj.clone()),
        other => {
            issues.push(invalid_type(Vec::new(), "object", Some(other)));
            None
        }
    }
}

#[derive(Serialize)]
struct InvalidBody<'a> {
    error: &'static str,
    details: &'a [Issue],
}

fn invalid_body(issues: &[Issue]) -> Response<Body> {
    errors::json(
        StatusCode::BAD_REQUEST,
        &InvalidBody {
            error: "Invalid request body",
            details: issues,
        },
    )
}

fn not_found() -> Response<Body> {
    errors::json(
        StatusCode::NOT_FOUND,
        &json!({ "error": "Dictionary not found" }),
    )
}

/// A dictionary as the API shows it (`createdAt` left out of `PUT` answers).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct DictOut<'a> {
    id: &'a str,
    items: &'a [Item],
    #[serde(skip_serializing_if = "Option::is_none")]
    created_at: Option<&'a str>,
}

impl<'a> From<&'a Dict> for DictOut<'a> {
    fn from(d: &'a Dict) -> Self {
        DictOut {
            id: &d.id,
            items: &d.items,
            created_at: Some(&d.created_at),
        }
    }
}

#[derive(Serialize)]
struct Deleted<'a> {
    id: &'a str,
    deleted: bool,
}

/// Reads the JSON body (`{}` when empty).
async fn read_json(ctx: &mut Ctx<'_>) -> Result<Value, Response<Body>> {
    if ctx
        .content_length()
        .is_some_and(|n| n > MAX_JSON_BYTES as u64)
    {
        return Err(errors::json_body_too_large(MAX_JSON_BYTES));
    }
    let raw = match ctx.body.read_to_limit(MAX_JSON_BYTES).await {
        Ok(raw) => raw,
        Err(ReadError::TooLarge) => return Err(errors::json_body_too_large(MAX_JSON_BYTES)),
        Err(ReadError::Broken) => {
            return Err(errors::json(
                StatusCode::BAD_REQUEST,
                &json!({ "error": "The request body could not be read." }),
            ));
        }
    };
    if raw.iter().all(u8::is_ascii_whitespace) {
        return Ok(Value::Object(Map::new()));
    }
    serde_json::from_slice(&raw).map_err(|e| {
        errors::json(
            StatusCode::BAD_REQUEST,
            &json!({
                "error": "Invalid request body",
                "message": format!("The request body is not valid JSON: {e}."),
            }),
        )
    })
}

/// Every method on `/waves/v1/pronunciation-dicts`.
pub(super) async fn handle(ctx: &mut Ctx<'_>, caller: &Caller) -> Response<Body> {
    let method = ctx.parts.method.clone();
    if method == Method::GET {
        let dicts = ctx.state.library.dicts(caller.key());
        let out: Vec<DictOut<'_>> = dicts.iter().map(DictOut::from).collect();
        return errors::json(StatusCode::OK, &out);
    }
    if ![Method::POST, Method::PUT, Method::DELETE].contains(&method) {
        return errors::method_not_allowed(&method, ctx.parts.uri.path(), "GET, POST, PUT, DELETE");
    }
    let body = match read_json(ctx).await {
        Ok(body) => body,
        Err(resp) => return resp,
    };
    let library = &ctx.state.library;
    let key = caller.key();
    let mut issues = Vec::new();
    let obj = object(&body, &mut issues).unwrap_or_default();
    match method {
        Method::POST => {
            let items = if issues.is_empty() {
                items(&obj, 1, &mut issues)
            } else {
                None
            };
            match items {
                Some(items) => {
                    let dict = library.create_dict(key, items);
                    errors::json(StatusCode::OK, &DictOut::from(&dict))
                }
                None => invalid_body(&issues),
            }
        }
        Method::PUT => {
            let (id, items) = if issues.is_empty() {
                (
                    nonempty_string(&obj, "id", &[], &mut issues),
                    items(&obj, 0, &mut issues),
                )
            } else {
                (None, None)
            };
            match (id, items) {
                (Some(id), Some(items)) if issues.is_empty() => {
                    if library.update_dict(key, &id, items.clone()) {
                        let out = DictOut {
                            id: &id,
                            items: &items,
                            created_at: None,
                        };
                        errors::json(StatusCode::OK, &out)
                    } else {
                        not_found()
                    }
                }
                _ => invalid_body(&issues),
            }
        }
        _ => {
            let id = if issues.is_empty() {
                nonempty_string(&obj, "id", &[], &mut issues)
            } else {
                None
            };
            match id {
                Some(id) if library.delete_dict(key, &id) => errors::json(
                    StatusCode::OK,
                    &Deleted {
                        id: &id,
                        deleted: true,
                    },
                ),
                Some(_) => not_found(),
                None => invalid_body(&issues),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn issues_of(body: Value, min: usize) -> Value {
        let mut issues = Vec::new();
        let obj = object(&body, &mut issues).unwrap_or_default();
        if issues.is_empty() {
            let _ = items(&obj, min, &mut issues);
        }
        serde_json::to_value(&issues).unwrap_or_default()
    }

    #[test]
    fn zod_issues() {
        assert_eq!(
            issues_of(json!({"items": [{"pronunciation": "x"}]}), 1),
            json!([{"code":"invalid_type","expected":"string","received":"undefined","path":["items",0,"word"],"message":"Required"}])
        );
        assert_eq!(
            issues_of(json!({"items": []}), 1),
            json!([{"code":"too_small","minimum":1,"type":"array","inclusive":true,"exact":false,"path":["items"],"message":"Array must contain at least 1 element(s)"}])
        );
        assert_eq!(issues_of(json!({"items": []}), 0), json!([]));
        let v = issues_of(json!({"items": [{"word": "", "pronunciation": 3}, 7]}), 1);
        assert_eq!(v[0]["code"], "too_small");
        assert_eq!(v[0]["path"], json!(["items", 0, "word"]));
        assert_eq!(v[1]["message"], "Expected string, received number");
        assert_eq!(v[2]["path"], json!(["items", 1]));
        assert_eq!(v[2]["expected"], "object");
        assert_eq!(
            issues_of(json!([1]), 1)[0]["message"],
            "Expected object, received array"
        );
        assert_eq!(issues_of(json!({}), 1)[0]["path"], json!(["items"]));
        // Field order as zod emits it.
        let text = serde_json::to_string(&{
            let mut i = Vec::new();
            let _ = items(&Map::new(), 1, &mut i);
            i
        })
        .unwrap_or_default();
        assert!(text.starts_with(r#"[{"code":"invalid_type","expected":"array","received":"undefined","path":["items"],"message":"Required"}"#), "{text}");
    }
}
