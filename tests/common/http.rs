//! A Rust HTTP client for the HTTP door tests (hyper's client), and a
//! checker of answers against the OpenAPI document in `api/openapi.json`.

use std::collections::BTreeMap;

use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::Value as Json;

/// One answer, read in full.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: BTreeMap<String, Vec<String>>,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn json(&self) -> Json {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(name)
            .and_then(|v| v.first())
            .map(String::as_str)
    }
}

/// Sends one request with hyper's client and waits for the whole answer.
pub fn request(method: &str, url: &str, headers: &[(&str, &str)], body: Vec<u8>) -> Answer {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let client = Client::builder(TokioExecutor::new()).build_http::<Full<bytes::Bytes>>();
        let mut builder = hyper::Request::builder().method(method).uri(url);
        for (k, v) in headers {
            builder = builder.header(*k, *v);
        }
        let request = builder.body(Full::new(bytes::Bytes::from(body))).unwrap();
        let response =
            tokio::time::timeout(std::time::Duration::from_secs(120), client.request(request))
                .await
                .expect("an answer within 2 minutes")
                .expect("the request goes through");
        let status = response.status().as_u16();
        let mut map: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (k, v) in response.headers() {
            map.entry(k.as_str().to_string())
                .or_default()
                .push(v.to_str().unwrap_or_default().to_string());
        }
        let body = response
            .into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec();
        Answer {
            status,
            headers: map,
            body,
        }
    })
}

/// The OpenAPI document, and a check of real answers against it: the
/// operation must document the status, the content type, and a schema the
/// body satisfies (types, required keys, no undocumented keys, enums).
pub struct OpenApi {
    doc: Json,
}

impl OpenApi {
    pub fn load() -> OpenApi {
        let text =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/api/openapi.json"))
                .unwrap();
        OpenApi {
            doc: serde_json::from_str(&text).unwrap(),
        }
    }

    pub fn doc(&self) -> &Json {
        &self.doc
    }

    /// Checks `answer` as the answer of `method` on the documented `path`
    /// (a template such as `/api/{file_type}`).
    pub fn check(&self, method: &str, path: &str, answer: &Answer) {
        let operation = &self.doc["paths"][path][method.to_ascii_lowercase()];
        assert!(operation.is_object(), "{method} {path} is not documented");
        let status = answer.status.to_string();
        let response = &operation["responses"][&status];
        assert!(
            response.is_object(),
            "{method} {path}: status {status} is not documented (body: {})",
            answer.text()
        );
        let content_type = answer
            .header("content-type")
            .unwrap_or_default()
            .split(';')
            .next()
            .unwrap()
            .trim()
            .to_string();
        let media = &response["content"][&content_type];
        assert!(
            media.is_object(),
            "{method} {path} {status}: content type '{content_type}' is not documented"
        );
        if content_type == "application/json" {
            let mut errors = Vec::new();
            self.validate(&media["schema"], &answer.json(), "$", &mut errors);
            assert!(
                errors.is_empty(),
                "{method} {path} {status}: the answer does not match the document:\n{}\n{}",
                errors.join("\n"),
                answer.text()
            );
        }
        for (name, _) in response["headers"].as_object().into_iter().flatten() {
            assert!(
                answer.header(&name.to_ascii_lowercase()).is_some(),
                "{method} {path} {status}: documented header {name} missing"
            );
        }
    }

    fn resolve<'a>(&'a self, schema: &'a Json) -> &'a Json {
        match schema["$ref"].as_str() {
            Some(r) => {
                let name = r.trim_start_matches("#/components/schemas/");
                &self.doc["components"]["schemas"][name]
            }
            None => schema,
        }
    }

    /// A JSON Schema subset: what the document uses.
    pub fn validate(&self, schema: &Json, value: &Json, at: &str, errors: &mut Vec<String>) {
        let schema = self.resolve(schema);
        if value.is_null() {
            let typed = !schema["type"].is_null()
                || schema["allOf"].is_array()
                || schema["oneOf"].is_array();
            if typed && schema["nullable"] != Json::Bool(true) {
                errors.push(format!("{at}: null, but not nullable"));
            }
            return;
        }
        if let Some(all) = schema["allOf"].as_array() {
            for s in all {
                self.validate(s, value, at, errors);
            }
        }
        if let Some(one) = schema["oneOf"].as_array() {
            let matching = one
                .iter()
                .filter(|s| {
                    let mut e = Vec::new();
                    self.validate(s, value, at, &mut e);
                    e.is_empty()
                })
                .count();
            if matching != 1 {
                errors.push(format!(
                    "{at}: matches {matching} of the oneOf schemas, not one"
                ));
            }
        }
        if let Some(t) = schema["type"].as_str() {
            let ok = match t {
                "object" => value.is_object(),
                "array" => value.is_array(),
                "string" => value.is_string(),
                "integer" => value.is_i64() || value.is_u64(),
                "number" => value.is_number(),
                "boolean" => value.is_boolean(),
                _ => false,
            };
            if !ok {
                errors.push(format!("{at}: expected {t}, got {value}"));
                return;
            }
        }
        if let Some(allowed) = schema["enum"].as_array()
            && !allowed.contains(value)
        {
            errors.push(format!("{at}: {value} is not one of {allowed:?}"));
        }
        if let Some(min) = schema["minimum"].as_i64()
            && value.as_i64().is_some_and(|v| v < min)
        {
            errors.push(format!("{at}: {value} is below {min}"));
        }
        if let Some(object) = value.as_object() {
            for key in schema["required"].as_array().into_iter().flatten() {
                let key = key.as_str().unwrap();
                if !object.contains_key(key) {
                    errors.push(format!("{at}: required key '{key}' missing"));
                }
            }
            let properties = schema["properties"].as_object();
            for (key, v) in object {
                match properties.and_then(|p| p.get(key)) {
                    Some(s) => self.validate(s, v, &format!("{at}.{key}"), errors),
                    None => match &schema["additionalProperties"] {
                        Json::Bool(false) => errors.push(format!("{at}: undocumented key '{key}'")),
                        s @ Json::Object(_) => self.validate(s, v, &format!("{at}.{key}"), errors),
                        _ => {}
                    },
                }
            }
        }
        if let Some(items) = value.as_array() {
            for (i, v) in items.iter().enumerate() {
                self.validate(&schema["items"], v, &format!("{at}[{i}]"), errors);
            }
        }
    }
}
