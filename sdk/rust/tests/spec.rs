//! The client's paths and types against `openapi/openapi.json`: every operation it calls is
//! documented, every response type reads a minimal instance of its schema (only the required
//! fields, nullable ones null), and every request type sends only documented fields.

use serde_json::{json, Map, Value};
use starfire_sdk::*;

fn spec() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../openapi/openapi.json");
    serde_json::from_str(&std::fs::read_to_string(path).expect("openapi/openapi.json")).unwrap()
}

fn schema<'a>(spec: &'a Value, name: &str) -> &'a Value {
    let s = &spec["components"]["schemas"][name];
    assert!(s.is_object(), "no schema {name} in the spec");
    s
}

fn resolve<'a>(spec: &'a Value, s: &'a Value) -> &'a Value {
    match s.get("$ref").and_then(Value::as_str) {
        Some(r) => schema(spec, r.trim_start_matches("#/components/schemas/")),
        None => s,
    }
}

/// A minimal instance of a schema.
fn instance(spec: &Value, s: &Value) -> Value {
    let s = resolve(spec, s);
    for key in ["oneOf", "anyOf"] {
        if let Some(variants) = s.get(key).and_then(Value::as_array) {
            if variants.iter().any(|v| v["type"] == "null") {
                return Value::Null;
            }
            return instance(spec, &variants[0]);
        }
    }
    if let Some(all) = s.get("allOf").and_then(Value::as_array) {
        let mut out = Map::new();
        for part in all {
            if let Value::Object(o) = instance(spec, part) {
                out.extend(o);
            }
        }
        return Value::Object(out);
    }
    let ty = match &s["type"] {
        Value::Array(types) => {
            if types.iter().any(|t| t == "null") {
                return Value::Null;
            }
            types[0].as_str().unwrap_or("object").to_owned()
        }
        Value::String(t) => t.clone(),
        _ if s.get("properties").is_some() => "object".into(),
        _ => "string".into(),
    };
    match ty.as_str() {
        "object" => {
            let mut out = Map::new();
            for name in s["required"].as_array().into_iter().flatten() {
                let name = name.as_str().unwrap();
                out.insert(name.into(), instance(spec, &s["properties"][name]));
            }
            Value::Object(out)
        }
        "array" => json!([instance(spec, &s["items"])]),
        "integer" => json!(1),
        "number" => json!(1.5),
        "boolean" => json!(true),
        _ => s["enum"].get(0).cloned().unwrap_or(json!("x")),
    }
}

/// The field names a struct reads, as its `Deserialize` derive declares them to serde (before
/// any data is read): a deserializer that only answers `deserialize_struct`, with the names.
fn fields_of<T: serde::de::DeserializeOwned>() -> Vec<&'static str> {
    use serde::de::Visitor;

    #[derive(Debug)]
    struct Fields(Vec<&'static str>);
    impl std::fmt::Display for Fields {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "fields {:?}", self.0)
        }
    }
    impl std::error::Error for Fields {}
    impl serde::de::Error for Fields {
        fn custom<M: std::fmt::Display>(_: M) -> Self {
            Fields(Vec::new())
        }
    }
    struct Probe;
    impl<'de> serde::Deserializer<'de> for Probe {
        type Error = Fields;
        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Fields> {
            Err(Fields(Vec::new()))
        }
        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _: &'static str,
            fields: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, Fields> {
            Err(Fields(fields.to_vec()))
        }
        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
            option unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier
            ignored_any
        }
    }
    match T::deserialize(Probe) {
        Err(Fields(fields)) => fields,
        Ok(_) => Vec::new(),
    }
}

/// Whether an object schema (or one of the parts of its `allOf`) has the property `field`.
fn documents(spec: &Value, s: &Value, field: &str) -> bool {
    let s = resolve(spec, s);
    s["properties"].get(field).is_some()
        || s["allOf"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|part| documents(spec, part, field))
}

/// `T` reads a minimal instance of the schema `name`, and every field it reads is one the
/// schema documents (so an optional field cannot be misspelt into never being read).
fn reads<T: serde::de::DeserializeOwned>(spec: &Value, name: &str) {
    let s = schema(spec, name);
    let value = instance(spec, s);
    if let Err(e) = serde_json::from_value::<T>(value.clone()) {
        panic!("{name}: the Rust type does not read {value}: {e}");
    }
    let fields = fields_of::<T>();
    assert!(!fields.is_empty(), "{name}: the Rust type is not a struct");
    for field in fields {
        assert!(
            documents(spec, s, field),
            "{name}: the Rust type reads '{field}', which the spec does not document"
        );
    }
}

fn sends<T: serde::Serialize>(spec: &Value, name: &str, full: &T) {
    let s = schema(spec, name);
    let sent = serde_json::to_value(full).unwrap();
    for key in sent.as_object().unwrap().keys() {
        assert!(
            s["properties"].get(key).is_some(),
            "{name}: the client sends '{key}', which the spec does not document"
        );
    }
    for required in s["required"].as_array().into_iter().flatten() {
        assert!(
            sent.get(required.as_str().unwrap()).is_some(),
            "{name}: the client cannot send the required '{required}'"
        );
    }
}

#[test]
fn every_operation_is_documented() {
    let spec = spec();
    for (method, path) in OPERATIONS {
        assert!(
            spec["paths"][path][method].is_object(),
            "{method} {path} is not in openapi/openapi.json"
        );
    }
}

#[test]
fn response_types_read_their_schemas() {
    let spec = spec();
    reads::<ChatCompletion>(&spec, "ChatCompletion");
    reads::<ApiKey>(&spec, "ApiKeyObject");
    reads::<CreatedApiKey>(&spec, "CreatedApiKey");
    reads::<List<ApiKey>>(&spec, "ApiKeyList");
    reads::<Project>(&spec, "ProjectObject");
    reads::<List<Project>>(&spec, "ProjectList");
    reads::<Deleted>(&spec, "DeletedObject");
    reads::<ErrorBody>(&spec, "ErrorBody");
    reads::<UsagePage<CompletionsUsage>>(&spec, "UsagePage_CompletionsUsageResult");
    reads::<UsagePage<CostResult>>(&spec, "UsagePage_CostResult");
    reads::<Credits>(&spec, "CreditsObject");
    reads::<WsTicket>(&spec, "WsTicket");
}

#[test]
fn nested_response_types_read_their_schemas() {
    let spec = spec();
    reads::<ChatChoice>(&spec, "ChatChoice");
    reads::<ChatCompletionChunk>(&spec, "ChatCompletionChunk");
    reads::<ChunkChoice>(&spec, "ChatChunkChoice");
    reads::<ChunkDelta>(&spec, "ChatDelta");
    reads::<AssistantMessage>(&spec, "AssistantMessage");
    reads::<ToolCall>(&spec, "ToolCallObject");
    reads::<FunctionCall>(&spec, "FunctionCallObject");
    reads::<ToolCallDelta>(&spec, "ToolCallDelta");
    reads::<FunctionCallDelta>(&spec, "FunctionCallDelta");
    reads::<Usage>(&spec, "UsageObject");
    reads::<ErrorObject>(&spec, "ErrorObject");
    reads::<KeyLimits>(&spec, "KeyLimits");
    reads::<UsageBucket<CompletionsUsage>>(&spec, "UsageBucket_CompletionsUsageResult");
    reads::<CompletionsUsage>(&spec, "CompletionsUsageResult");
    reads::<UsageBucket<CostResult>>(&spec, "UsageBucket_CostResult");
    reads::<CostResult>(&spec, "CostResult");
    reads::<CostAmount>(&spec, "CostAmount");
    reads::<CreditEntry>(&spec, "CreditEntryObject");
}

#[test]
fn billing_and_budget_types_read_their_schemas() {
    let spec = spec();
    reads::<Balance>(&spec, "BalanceObject");
    reads::<LedgerEntry>(&spec, "LedgerEntryObject");
    reads::<List<LedgerEntry>>(&spec, "LedgerEntryList");
    reads::<Invoice>(&spec, "InvoiceObject");
    reads::<InvoiceLine>(&spec, "InvoiceLineObject");
    reads::<List<Invoice>>(&spec, "InvoiceList");
    reads::<Price>(&spec, "PriceObject");
    reads::<List<Price>>(&spec, "PriceList");
    reads::<Budget>(&spec, "BudgetObject");
    reads::<TopUp>(&spec, "TopUpObject");
    reads::<List<TopUp>>(&spec, "TopUpList");
    sends(
        &spec,
        "TopUpCreate",
        &TopUpCreate {
            amount_micros: 5_000_000,
            success_url: Some("https://example.com/ok".into()),
            cancel_url: Some("https://example.com/no".into()),
        },
    );
}

#[test]
fn deployment_types_read_and_send_their_schemas() {
    let spec = spec();
    reads::<Deployment>(&spec, "DeploymentObject");
    reads::<List<Deployment>>(&spec, "DeploymentList");
    reads::<ReplicaRange>(&spec, "ReplicaRange");
    reads::<DeploymentEvent>(&spec, "DeploymentEventObject");
    reads::<DeploymentEventList>(&spec, "DeploymentEventList");
    let create = DeploymentCreate {
        name: "my-llm".into(),
        model: "m".into(),
        replicas: Some(ReplicaRange { min: 1, max: 2 }),
        hardware: Some("cpu".into()),
        kv_cache_memory: Some(1 << 26),
        max_model_len: Some(2048),
        overflow: Some("shared".into()),
    };
    sends(&spec, "DeploymentCreate", &create);
    sends(&spec, "ReplicaRange", &ReplicaRange::exactly(2));
    sends(
        &spec,
        "DeploymentUpdate",
        &DeploymentUpdate {
            replicas: ReplicaRange::exactly(2),
        },
    );
    // Left out, the optional fields are not sent at all (the server's defaults apply).
    let minimal = DeploymentCreate {
        name: "my-llm".into(),
        model: "m".into(),
        ..Default::default()
    };
    sends(&spec, "DeploymentCreate", &minimal);
    assert_eq!(
        serde_json::to_value(&minimal).unwrap(),
        json!({"name": "my-llm", "model": "m"})
    );
}

#[test]
fn request_types_send_documented_fields() {
    let spec = spec();
    let chat = ChatCompletionRequest {
        model: "m".into(),
        messages: vec![ChatMessage::user("hi")],
        max_tokens: Some(1),
        temperature: Some(0.5),
        top_p: Some(0.5),
        seed: Some(1),
        stop: Some(vec!["x".into()]),
        stream: Some(true),
        response_format: Some(ResponseFormat::JsonObject),
        tools: Some(vec![Tool {
            kind: "function".into(),
            function: FunctionDefinition {
                name: "f".into(),
                description: Some("d".into()),
                parameters: Some(serde_json::json!({"type": "object"})),
                strict: Some(true),
            },
        }]),
        tool_choice: Some(ToolChoice::Required),
        parallel_tool_calls: Some(false),
    };
    sends(&spec, "ChatCompletionRequest", &chat);
    sends(&spec, "ChatTool", &chat.tools.as_ref().unwrap()[0]);
    sends(
        &spec,
        "FunctionDefinition",
        &chat.tools.as_ref().unwrap()[0].function,
    );
    let message = ChatMessage {
        tool_calls: Some(vec![ToolCall {
            id: "c".into(),
            kind: "function".into(),
            function: FunctionCall {
                name: "f".into(),
                arguments: "{}".into(),
            },
        }]),
        ..ChatMessage::tool("c", "x")
    };
    sends(&spec, "ChatMessageIn", &message);
    let format = JsonSchemaFormat {
        name: "n".into(),
        description: Some("d".into()),
        schema: Some(serde_json::json!({"type": "object"})),
        strict: Some(true),
    };
    sends(&spec, "JsonSchemaFormat", &format);
    let key = ApiKeyCreate {
        name: "k".into(),
        scopes: Some(vec!["inference".into()]),
        expires_at: Some(1),
        limits: Some(KeyLimits {
            rpm: Some(1),
            tpm: Some(1),
            concurrency: Some(1),
        }),
    };
    sends(&spec, "ApiKeyCreate", &key);
    sends(&spec, "KeyLimits", key.limits.as_ref().unwrap());
    let update = ApiKeyUpdate {
        name: Some("k".into()),
        limits: Some(KeyLimits::default()),
    };
    sends(&spec, "ApiKeyUpdate", &update);
    sends(&spec, "ProjectCreate", &ProjectCreate { name: "p".into() });
    sends(&spec, "BudgetUpdate", &BudgetUpdate { limit_micros: 1 });
    let project = ProjectUpdate {
        name: Some("p".into()),
        limits: Some(KeyLimits::default()),
        allowed_origins: Some(vec!["https://demo.example".into()]),
    };
    sends(&spec, "ProjectUpdate", &project);
}

#[test]
fn the_checker_catches_a_type_that_does_not_fit() {
    // A type that demands a field the spec does not require must fail to read.
    #[derive(serde::Deserialize, Debug)]
    #[allow(dead_code)]
    struct Wrong {
        id: String,
        not_in_the_spec: String,
    }
    let spec = spec();
    let value = instance(&spec, schema(&spec, "ProjectObject"));
    assert!(serde_json::from_value::<Wrong>(value).is_err());
}

#[test]
fn the_checker_catches_an_undocumented_optional_field() {
    // An optional field reads any instance, but its name must still be in the schema.
    #[derive(serde::Deserialize, Debug)]
    #[allow(dead_code)]
    struct Misspelt {
        id: String,
        #[serde(rename = "archived")]
        archived_at: Option<i64>,
    }
    assert_eq!(fields_of::<Misspelt>(), ["id", "archived"]);
    let spec = spec();
    let caught = std::panic::catch_unwind(|| reads::<Misspelt>(&spec, "ProjectObject"));
    assert!(caught.is_err());
    reads::<Project>(&spec, "ProjectObject");
}
