//! `/v1/embeddings` with the real default model, in process: llama.cpp's vectors in both
//! encodings, and bad input refused naming the field.

use gateway::registry::DEFAULT_MODEL_ID;
use serde_json::{json, Value};

use crate::inference::app;

#[derive(serde::Deserialize)]
struct GoldenEmbedding {
    input: String,
    embedding: Vec<f32>,
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    dot / (a.iter().map(|x| x * x).sum::<f32>().sqrt()
        * b.iter().map(|y| y * y).sum::<f32>().sqrt())
}

fn floats(v: &Value) -> Vec<f32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect()
}

/// llama.cpp's embeddings of the same model (engine/tests/golden): cosine above 0.999 for
/// every input, as floats and as base64; token ids give the same vector as their text.
#[actix_web::test]
async fn embeddings_match_llama_cpp_in_both_encodings() {
    let (app, key) = app().await;
    let golden: Vec<GoldenEmbedding> = serde_json::from_str(include_str!(
        "../../../engine/tests/golden/smollm2-135m-instruct-q4_1.embeddings.json"
    ))
    .unwrap();
    let inputs: Vec<&str> = golden.iter().map(|g| g.input.as_str()).collect();
    let body = app
        .post(
            "/v1/embeddings",
            Some(&key),
            json!({"model": DEFAULT_MODEL_ID, "input": inputs}),
        )
        .await
        .expect(200);
    assert_eq!(body["object"], "list");
    assert_eq!(body["model"], DEFAULT_MODEL_ID);
    let data = body["data"].as_array().unwrap();
    assert_eq!(data.len(), golden.len());
    for (i, (d, g)) in data.iter().zip(&golden).enumerate() {
        assert_eq!(d["object"], "embedding");
        assert_eq!(d["index"], i);
        let v = floats(&d["embedding"]);
        assert_eq!(v.len(), 576);
        let c = cosine(&v, &g.embedding);
        assert!(c > 0.999, "{:?}: cosine {c}", g.input);
    }
    let tokens = body["usage"]["prompt_tokens"].as_u64().unwrap();
    assert!(tokens > 5);
    assert_eq!(body["usage"]["total_tokens"], tokens);

    let b64 = app
        .post(
            "/v1/embeddings",
            Some(&key),
            json!({"model": DEFAULT_MODEL_ID, "input": inputs[0], "encoding_format": "base64"}),
        )
        .await
        .expect(200);
    use base64::Engine as _;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(b64["data"][0]["embedding"].as_str().unwrap())
        .unwrap();
    let decoded: Vec<f32> = bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    assert_eq!(decoded, floats(&data[0]["embedding"]));

    let ids = app
        .post(
            "/v1/tokenize",
            Some(&key),
            json!({"model": DEFAULT_MODEL_ID, "prompt": inputs[0]}),
        )
        .await
        .expect(200);
    let by_ids = app
        .post(
            "/v1/embeddings",
            Some(&key),
            json!({"model": DEFAULT_MODEL_ID, "input": ids["tokens"]}),
        )
        .await
        .expect(200);
    assert_eq!(
        floats(&by_ids["data"][0]["embedding"]),
        floats(&data[0]["embedding"])
    );
}

#[actix_web::test]
async fn embeddings_refuse_bad_input_naming_the_field() {
    let (app, key) = app().await;
    let post = |body: Value| app.post("/v1/embeddings", Some(&key), body);
    let m = DEFAULT_MODEL_ID;
    post(json!({"model": m, "input": "hi", "encoding_format": "int8"}))
        .await
        .expect_error(400, Some("encoding_format"));
    post(json!({"model": m, "input": "hi", "dimensions": 8}))
        .await
        .expect_error(400, Some("dimensions"));
    post(json!({"model": m, "input": []}))
        .await
        .expect_error(400, Some("input"));
    post(json!({"model": m, "input": [[]]}))
        .await
        .expect_error(400, Some("input"));
    post(json!({"model": m, "input": [99999999]}))
        .await
        .expect_error(400, Some("input"));
    post(json!({"model": "nope", "input": "hi"}))
        .await
        .expect_error(404, None);
    let ok = post(json!({"model": m, "input": "hi", "dimensions": 576}))
        .await
        .expect(200);
    assert_eq!(ok["data"][0]["embedding"].as_array().unwrap().len(), 576);
}
