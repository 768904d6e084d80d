//! Pronunciation dictionaries (API.md §7): golden requests for the four operations,
//! the spec's JSON examples, the zod error body and validation.

mod common;

use common::{
    CANARY_KEY, USER_AGENT, api, body_text, config, header_pairs, json_response, prepared,
    response, validation,
};
use http::Method;
use proptest::prelude::*;
use smallest_core::dicts::{
    CreateDict, DeleteDict, DeletedDict, ListDicts, PronunciationDict, PronunciationItem,
    UpdateDict,
};
use smallest_core::{ApiErrorKind, Endpoint, Error};

const URI: &str = "https://api.smallest.ai/waves/v1/pronunciation-dicts";
const ID: &str = "64f1234567890abcdef12345";

fn headers(json: bool) -> Vec<(String, String)> {
    let mut all = vec![
        ("authorization".to_owned(), format!("Bearer {CANARY_KEY}")),
        ("user-agent".to_owned(), USER_AGENT.to_owned()),
        ("x-source".to_owned(), "smallest-rs".to_owned()),
    ];
    if json {
        all.push(("content-type".to_owned(), "application/json".to_owned()));
    }
    all.sort();
    all
}

fn mysql() -> PronunciationItem {
    PronunciationItem::new("mysql", "my-sequel").unwrap()
}

// ---------------------------------------------------------------------------
// Golden requests
// ---------------------------------------------------------------------------

#[test]
fn list_request() {
    let http = prepared(&ListDicts);
    assert_eq!(http.method(), Method::GET);
    assert_eq!(http.uri(), URI);
    assert_eq!(header_pairs(&http), headers(false));
    assert!(http.headers()["authorization"].is_sensitive());
    assert!(http.body().is_empty());
}

#[test]
fn create_request_spec_example() {
    let http = prepared(&CreateDict::new([mysql()]));
    assert_eq!(http.method(), Method::POST);
    assert_eq!(http.uri(), URI);
    assert_eq!(header_pairs(&http), headers(true));
    assert_eq!(
        body_text(&http),
        r#"{"items":[{"word":"mysql","pronunciation":"my-sequel"}]}"#
    );
}

#[test]
fn create_request_keeps_order_case_and_escapes() {
    let request = CreateDict::default()
        .item("MySQL", "my-sequel")
        .item("say \"hi\"", "sey\\hai")
        .item(" é ", "ay");
    assert_eq!(
        body_text(&prepared(&request)),
        r#"{"items":[{"word":"MySQL","pronunciation":"my-sequel"},{"word":"say \"hi\"","pronunciation":"sey\\hai"},{"word":" é ","pronunciation":"ay"}]}"#
    );
}

#[test]
fn update_request_spec_example() {
    let http = prepared(&UpdateDict::new(ID, [mysql()]));
    assert_eq!(http.method(), Method::PUT);
    assert_eq!(http.uri(), URI);
    assert_eq!(header_pairs(&http), headers(true));
    assert_eq!(
        body_text(&http),
        r#"{"id":"64f1234567890abcdef12345","items":[{"word":"mysql","pronunciation":"my-sequel"}]}"#
    );
}

#[test]
fn update_request_may_empty_the_dictionary() {
    let http = prepared(&UpdateDict::new(ID, []));
    assert_eq!(
        body_text(&http),
        r#"{"id":"64f1234567890abcdef12345","items":[]}"#
    );
    let http = prepared(&UpdateDict::new(ID, []).item("nginx", "engine-x"));
    assert_eq!(
        body_text(&http),
        r#"{"id":"64f1234567890abcdef12345","items":[{"word":"nginx","pronunciation":"engine-x"}]}"#
    );
}

#[test]
fn delete_request_has_a_json_body() {
    let http = prepared(&DeleteDict::new(ID));
    assert_eq!(http.method(), Method::DELETE);
    assert_eq!(http.uri(), URI);
    assert_eq!(header_pairs(&http), headers(true));
    assert_eq!(body_text(&http), r#"{"id":"64f1234567890abcdef12345"}"#);
}

// ---------------------------------------------------------------------------
// Responses
// ---------------------------------------------------------------------------

#[test]
fn list_response_spec_example() {
    let body = r#"[{"id":"64f1234567890abcdef12345","items":[{"word":"mysql","pronunciation":"my-sequel"}],"createdAt":"2023-09-01T12:00:00.000Z"}]"#;
    let dicts = ListDicts
        .from_http_response(json_response(200, body))
        .unwrap();
    assert_eq!(dicts.len(), 1);
    let d: &PronunciationDict = &dicts[0];
    assert_eq!(d.id, ID);
    assert_eq!(d.items, [mysql()]);
    assert_eq!(d.created_at.as_deref(), Some("2023-09-01T12:00:00.000Z"));
    // Serializes back to the wire shape.
    assert_eq!(
        serde_json::to_value(d).unwrap(),
        serde_json::from_str::<serde_json::Value>(&body[1..body.len() - 1]).unwrap()
    );
}

#[test]
fn list_response_empty_and_malformed() {
    assert!(
        ListDicts
            .from_http_response(json_response(200, " []"))
            .unwrap()
            .is_empty()
    );
    for bad in ["{}", r#"{"data":[]}"#, "null", "", r#"[{"items":[]}]"#] {
        let err = ListDicts
            .from_http_response(json_response(200, bad))
            .unwrap_err();
        assert!(
            matches!(
                err,
                Error::Decode {
                    what: "dictionary list",
                    ..
                }
            ),
            "{bad}: {err:?}"
        );
    }
}

#[test]
fn create_response_is_the_dictionary() {
    let body = r#"{"id":"64f1234567890abcdef12345","items":[{"word":"mysql","pronunciation":"my-sequel"}],"createdAt":"2023-09-01T12:00:00.000Z"}"#;
    let d = CreateDict::new([mysql()])
        .from_http_response(json_response(200, body))
        .unwrap();
    assert_eq!(d.id, ID);
    assert_eq!(d.items, [mysql()]);
    assert_eq!(d.created_at.as_deref(), Some("2023-09-01T12:00:00.000Z"));
}

#[test]
fn update_response_has_no_created_at() {
    let body = r#"{"id":"64f1234567890abcdef12345","items":[{"word":"mysql","pronunciation":"my-sequel"},{"word":"nginx","pronunciation":"engine-x"}]}"#;
    let d = UpdateDict::new(ID, [mysql()])
        .from_http_response(json_response(200, body))
        .unwrap();
    assert_eq!(d.id, ID);
    assert_eq!(d.items.len(), 2);
    assert_eq!(d.items[1].word, "nginx");
    assert_eq!(d.items[1].pronunciation, "engine-x");
    assert_eq!(d.created_at, None);
    let json = serde_json::to_value(&d).unwrap();
    assert!(json.get("createdAt").is_none());
}

#[test]
fn delete_response_spec_example_and_tolerance() {
    let d = DeleteDict::new(ID)
        .from_http_response(json_response(
            200,
            r#"{"id":"64f1234567890abcdef12345","deleted":true}"#,
        ))
        .unwrap();
    assert_eq!((d.id.as_str(), d.deleted), (ID, true), "{d:?}");
    let _: &DeletedDict = &d;
    // `deleted: false` is reported as such.
    let d = DeleteDict::new(ID)
        .from_http_response(json_response(200, r#"{"id":"x","deleted":false}"#))
        .unwrap();
    assert_eq!((d.id.as_str(), d.deleted), ("x", false));
    // A bare success answer names the requested id.
    let d = DeleteDict::new(ID)
        .from_http_response(json_response(200, "{}"))
        .unwrap();
    assert_eq!((d.id.as_str(), d.deleted), (ID, true));
    let err = DeleteDict::new(ID)
        .from_http_response(json_response(200, ""))
        .unwrap_err();
    assert!(matches!(
        err,
        Error::Decode {
            what: "dictionary deletion",
            ..
        }
    ));
}

#[test]
fn validation_error_body_keeps_the_issue_path() {
    let body = r#"{"error":"Invalid request body","details":[{"code":"invalid_type","expected":"string","received":"undefined","path":["items",0,"word"],"message":"Required"}]}"#;
    let e = api(CreateDict::new([mysql()]).from_http_response(json_response(400, body)));
    assert_eq!(e.status(), 400);
    assert_eq!(*e.kind(), ApiErrorKind::InvalidRequest);
    assert_eq!(e.issues().len(), 1);
    assert_eq!(e.issues()[0].path, "items.0.word");
    assert_eq!(e.issues()[0].code.as_deref(), Some("invalid_type"));
    assert_eq!(e.issues()[0].message, "Required");
    assert_eq!(e.message(), "Invalid request body: items.0.word: Required");
    assert_eq!(e.raw_body(), body.as_bytes());
}

#[test]
fn other_error_bodies() {
    let e = api(ListDicts.from_http_response(json_response(401, r#"{"error":"Unauthorized"}"#)));
    assert!(e.is_auth());
    assert_eq!(*e.kind(), ApiErrorKind::Unauthorized);
    let e = api(UpdateDict::new(ID, [])
        .from_http_response(json_response(500, r#"{"error":"Internal server error"}"#)));
    assert_eq!(*e.kind(), ApiErrorKind::Server);
    assert_eq!(e.message(), "Internal server error");
    let e = api(DeleteDict::new(ID).from_http_response(response(404, &[], b"Not Found")));
    assert_eq!(*e.kind(), ApiErrorKind::NotFound);
}

// ---------------------------------------------------------------------------
// Validation
// ---------------------------------------------------------------------------

#[test]
fn item_new_requires_both_strings_and_keeps_them_verbatim() {
    let v = PronunciationItem::new("", "x").unwrap_err();
    assert_eq!(v.field(), "word");
    assert!(v.allowed().contains("at least one character"));
    let v = PronunciationItem::new("x", "").unwrap_err();
    assert_eq!(v.field(), "pronunciation");
    let item = PronunciationItem::new(" MySQL ", " my sequel ").unwrap();
    assert_eq!(item.word, " MySQL ");
    assert_eq!(item.pronunciation, " my sequel ");
}

#[test]
fn create_needs_at_least_one_item() {
    let v = validation(CreateDict::new([]).to_http_request(&config()));
    assert_eq!(v.field(), "items");
    assert!(v.allowed().contains("at least one"), "{}", v.allowed());
}

#[test]
fn empty_item_strings_are_refused_with_the_server_path() {
    let v = validation(
        CreateDict::new([mysql()])
            .item("", "x")
            .to_http_request(&config()),
    );
    assert_eq!(v.field(), "items.1.word");
    let v = validation(
        UpdateDict::new(ID, [])
            .item("w", "")
            .to_http_request(&config()),
    );
    assert_eq!(v.field(), "items.0.pronunciation");
}

#[test]
fn ids_must_not_be_empty() {
    for bad in ["", "   "] {
        let v = validation(UpdateDict::new(bad, [mysql()]).to_http_request(&config()));
        assert_eq!(v.field(), "id");
        let v = validation(DeleteDict::new(bad).to_http_request(&config()));
        assert_eq!(v.field(), "id");
        assert!(v.allowed().contains("64f1234567890abcdef12345"));
    }
}

// ---------------------------------------------------------------------------
// Properties
// ---------------------------------------------------------------------------

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn dict_parsers_never_panic(body in prop::collection::vec(any::<u8>(), 0..512), status in 100u16..600) {
        let r = || response(status, &[], &body);
        let _ = ListDicts.from_http_response(r());
        let _ = CreateDict::new([]).from_http_response(r());
        let _ = UpdateDict::new("x", []).from_http_response(r());
        let _ = DeleteDict::new("x").from_http_response(r());
    }

    #[test]
    fn dict_parsers_never_panic_on_dict_like_json(
        id in prop_oneof![Just("null".to_owned()), Just("1".to_owned()), ".{0,8}".prop_map(|s| serde_json::to_string(&s).unwrap())],
        items in prop_oneof![Just("null".to_owned()), Just("[null,1,{}]".to_owned()), Just("{}".to_owned()), Just(r#"[{"word":null,"pronunciation":2}]"#.to_owned())],
    ) {
        let one = format!(r#"{{"id":{id},"items":{items},"createdAt":{id},"deleted":{id}}}"#);
        let _ = ListDicts.from_http_response(json_response(200, &format!("[{one}]")));
        let _ = CreateDict::new([]).from_http_response(json_response(200, &one));
        let _ = DeleteDict::new("x").from_http_response(json_response(200, &one));
    }

    #[test]
    fn create_body_round_trips_or_names_the_empty_field(
        pairs in prop::collection::vec((".{0,6}", ".{0,6}"), 0..5),
    ) {
        let request = pairs
            .iter()
            .fold(CreateDict::default(), |r, (w, p)| r.item(w.clone(), p.clone()));
        match request.to_http_request(&config()) {
            Ok(http) => {
                let back: serde_json::Value = serde_json::from_slice(http.body()).unwrap();
                let items = back["items"].as_array().unwrap();
                prop_assert_eq!(items.len(), pairs.len());
                for (item, (w, p)) in items.iter().zip(&pairs) {
                    prop_assert_eq!(item["word"].as_str().unwrap(), w.as_str());
                    prop_assert_eq!(item["pronunciation"].as_str().unwrap(), p.as_str());
                }
            }
            Err(Error::Validation(v)) => {
                if pairs.is_empty() {
                    prop_assert_eq!(v.field(), "items");
                } else {
                    let (i, (w, _)) = pairs
                        .iter()
                        .enumerate()
                        .find(|(_, (w, p))| w.is_empty() || p.is_empty())
                        .unwrap();
                    let name = if w.is_empty() { "word" } else { "pronunciation" };
                    prop_assert_eq!(v.field(), format!("items.{i}.{name}"));
                }
            }
            Err(other) => prop_assert!(false, "unexpected {:?}", other),
        }
    }
}
