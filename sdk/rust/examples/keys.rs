//! Creates a project and an API key with an admin key (STARFIRE_API_KEY=sf-admin-...), uses the
//! new key, reads the usage it made back, then revokes it.
use starfire_sdk::{ApiKeyCreate, ChatCompletionRequest, ChatMessage, Client, UsageQuery};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), starfire_sdk::Error> {
    let admin = Client::from_env()?;
    let project = admin.create_project("quickstart").await?;
    let key = admin
        .create_api_key(
            &project.id,
            &ApiKeyCreate {
                name: "my first key".into(),
                ..Default::default()
            },
        )
        .await?;
    println!("created {} {}", key.id, key.redacted_value);

    let client = Client::new(&key.value, admin.base_url());
    let answer = client
        .chat_completion(ChatCompletionRequest {
            model: "smollm2-135m-instruct".into(),
            messages: vec![ChatMessage::user("Say hello.")],
            max_tokens: Some(5),
            ..Default::default()
        })
        .await?;
    println!(
        "answer: {}",
        answer.choices[0]
            .message
            .content
            .as_deref()
            .unwrap_or_default()
    );

    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let query = UsageQuery {
        bucket_width: Some("1h".into()),
        api_key_ids: vec![key.id.clone()],
        ..UsageQuery::since(now - 3600)
    };
    for bucket in admin.usage_completions(&query).await? {
        for r in bucket.results {
            println!(
                "usage: {} requests, {} in, {} out",
                r.num_model_requests, r.input_tokens, r.output_tokens
            );
        }
    }

    admin.delete_api_key(&project.id, &key.id).await?;
    println!("revoked {}", key.id);
    Ok(())
}
