use futures_util::StreamExt;
use starfire_sdk::{ChatCompletionRequest, ChatMessage, Client};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), starfire_sdk::Error> {
    let client = Client::from_env()?; // STARFIRE_API_KEY, STARFIRE_BASE_URL
    let request = ChatCompletionRequest {
        model: "smollm2-135m-instruct".into(),
        messages: vec![ChatMessage::user("Write a haiku about the sea.")],
        max_tokens: Some(100),
        ..Default::default()
    };
    let mut stream = client.chat_completion_stream(request).await?;
    while let Some(chunk) = stream.next().await {
        for choice in chunk?.choices {
            print!("{}", choice.delta.content.unwrap_or_default());
        }
    }
    println!();
    Ok(())
}
