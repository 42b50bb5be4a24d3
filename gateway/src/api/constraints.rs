//! Constraints of request bodies that utoipa has no attribute for, added to the OpenAPI
//! document after it is derived: the items of string arrays, `not`, and fields that must be
//! absent. Each matches what the handler enforces (the contract test checks both ways).

use protocol::MAX_LOGIT_BIAS;
use utoipa::openapi::schema::{AdditionalProperties, ArrayItems, Object, Schema, Type};
use utoipa::openapi::{OpenApi, RefOr};
use utoipa::Number;

use super::cors::{ORIGIN_MAX_LENGTH, ORIGIN_PATTERN};

/// Chat fields accepted by name but refused when given a value (OpenAI's, not supported yet).
const UNSUPPORTED_CHAT_FIELDS: [&str; 7] = [
    "functions",
    "function_call",
    "audio",
    "modalities",
    "prediction",
    "reasoning_effort",
    "web_search_options",
];

pub struct Constraints;

/// The property `name` of the component schema `schema`, when both are there.
fn property<'a>(openapi: &'a mut OpenApi, schema: &str, name: &str) -> Option<&'a mut Schema> {
    let components = openapi.components.as_mut()?;
    let Some(RefOr::T(Schema::Object(object))) = components.schemas.get_mut(schema) else {
        return None;
    };
    match object.properties.get_mut(name)? {
        RefOr::T(schema) => Some(schema),
        RefOr::Ref(_) => None,
    }
}

/// Sets the item schema of the array property `schema.name`.
fn items(openapi: &mut OpenApi, schema: &str, name: &str, item: Object) {
    if let Some(Schema::Array(array)) = property(openapi, schema, name) {
        array.items = ArrayItems::RefOrSchema(Box::new(RefOr::T(Schema::Object(item))));
    }
}

fn string(pattern: Option<&str>, min_length: Option<usize>, max_length: Option<usize>) -> Object {
    let mut item = Object::with_type(Type::String);
    item.pattern = pattern.map(str::to_owned);
    item.min_length = min_length;
    item.max_length = max_length;
    item
}

/// Every alternative of a prompt or input is non-empty: a string has a character, a list an
/// item, and each string or list inside one is non-empty too.
fn non_empty(schema: &mut Schema) {
    match schema {
        Schema::Object(object) if object.schema_type == Type::String.into() => {
            object.min_length = Some(1);
        }
        Schema::Array(array) => {
            array.min_items = Some(1);
            if let ArrayItems::RefOrSchema(item) = &mut array.items {
                if let RefOr::T(item) = item.as_mut() {
                    non_empty(item);
                }
            }
        }
        _ => {}
    }
}

/// Sets the pattern of the items of the array query parameter `name` of `GET path`.
fn query_items(openapi: &mut OpenApi, path: &str, name: &str, pattern: &str) {
    let Some(get) = openapi
        .paths
        .paths
        .get_mut(path)
        .and_then(|p| p.get.as_mut())
    else {
        return;
    };
    for parameter in get.parameters.iter_mut().flatten() {
        if parameter.name == name {
            if let Some(RefOr::T(Schema::Array(array))) = parameter.schema.as_mut() {
                let item = string(Some(pattern), None, None);
                array.items = ArrayItems::RefOrSchema(Box::new(RefOr::T(Schema::Object(item))));
            }
        }
    }
}

impl utoipa::Modify for Constraints {
    fn modify(&self, openapi: &mut OpenApi) {
        // Usage and costs group by these.
        for path in [
            "/v1/organization/usage/completions",
            "/v1/organization/usage/embeddings",
        ] {
            query_items(openapi, path, "group_by", "^(project_id|api_key_id|model)$");
        }
        query_items(
            openapi,
            "/v1/organization/costs",
            "group_by",
            "^(project_id|line_item)$",
        );
        // A prompt or an embedding input is never empty.
        if let Some(RefOr::T(Schema::OneOf(one_of))) = openapi
            .components
            .as_mut()
            .and_then(|c| c.schemas.get_mut("PromptInput"))
        {
            for alternative in &mut one_of.items {
                if let RefOr::T(alternative) = alternative {
                    non_empty(alternative);
                }
            }
        }
        // Browser origins (`cors::origin`).
        for schema in ["ProjectCreate", "ProjectUpdate"] {
            let origin = string(Some(ORIGIN_PATTERN), None, Some(ORIGIN_MAX_LENGTH));
            items(openapi, schema, "allowed_origins", origin);
        }
        // A choice is never empty (the structured-output compiler refuses it).
        for (schema, field) in [
            ("ChatCompletionRequest", "guided_choice"),
            ("CompletionRequest", "guided_choice"),
            ("StructuredOutputs", "choice"),
        ] {
            items(openapi, schema, field, string(None, Some(1), None));
        }
        // `response_format`'s variants refuse unknown fields (serde's tagged enum with
        // `deny_unknown_fields`; utoipa states it only for structs).
        if let Some(RefOr::T(Schema::OneOf(one_of))) = openapi
            .components
            .as_mut()
            .and_then(|c| c.schemas.get_mut("ResponseFormat"))
        {
            for variant in &mut one_of.items {
                if let RefOr::T(Schema::Object(variant)) = variant {
                    variant.additional_properties =
                        Some(Box::new(AdditionalProperties::FreeForm(false)));
                }
            }
        }
        // A stop string has 1 to 256 characters, and there are at most 16 (`SamplingParams`).
        if let Some(RefOr::T(Schema::OneOf(one_of))) = openapi
            .components
            .as_mut()
            .and_then(|c| c.schemas.get_mut("StopSpec"))
        {
            for alternative in &mut one_of.items {
                match alternative {
                    RefOr::T(Schema::Object(one)) => {
                        one.min_length = Some(1);
                        one.max_length = Some(256);
                    }
                    RefOr::T(Schema::Array(many)) => {
                        many.max_items = Some(16);
                        let item = string(None, Some(1), Some(256));
                        many.items =
                            ArrayItems::RefOrSchema(Box::new(RefOr::T(Schema::Object(item))));
                    }
                    _ => {}
                }
            }
        }
        // A logit bias is -100 to 100, of at most `MAX_LOGIT_BIAS` tokens
        // (`sampling::sampling_params`).
        for schema in ["ChatCompletionRequest", "CompletionRequest"] {
            if let Some(Schema::Object(bias)) = property(openapi, schema, "logit_bias") {
                bias.max_properties = Some(MAX_LOGIT_BIAS);
                let mut value = Object::with_type(Type::Number);
                value.minimum = Some(Number::Float(-100.0));
                value.maximum = Some(Number::Float(100.0));
                bias.additional_properties = Some(Box::new(AdditionalProperties::RefOr(RefOr::T(
                    Schema::Object(value),
                ))));
            }
        }
        // An adjustment of zero changes nothing: refused.
        if let Some(Schema::Object(amount)) = property(openapi, "AdjustmentCreate", "amount_micros")
        {
            amount
                .extensions
                .get_or_insert_with(Default::default)
                .insert("not".to_owned(), serde_json::json!({"const": 0}));
        }
        // `echo: true` is not supported (yet): absent, null or false.
        if let Some(Schema::Object(echo)) = property(openapi, "CompletionRequest", "echo") {
            echo.extensions
                .get_or_insert_with(Default::default)
                .insert("not".to_owned(), serde_json::json!({"const": true}));
        }
        // Absent or null only.
        let unsupported = UNSUPPORTED_CHAT_FIELDS
            .iter()
            .map(|field| ("ChatCompletionRequest", *field))
            .chain([
                ("CompletionRequest", "suffix"),
                ("ChatMessageIn", "refusal"),
            ]);
        for (schema, field) in unsupported {
            if let Some(schema) = property(openapi, schema, field) {
                let mut null = Object::with_type(Type::Null);
                null.description = Some("Not supported yet: refused with 400 unless null.".into());
                *schema = Schema::Object(null);
            }
        }
    }
}
