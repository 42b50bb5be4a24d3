//! `starfire model fetch` and `starfire generate`: the engine straight from the command line.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};
use engine::generate::{generate, GenerateOptions};
use engine::{ChatMessage, IncrementalDecoder, Model, SamplingParams};

#[derive(Subcommand)]
pub enum ModelCommand {
    /// Download the default model (SmolLM2-135M-Instruct, Q4_1 GGUF) into the model cache
    /// (`$STARFIRE_HOME/models`), check its SHA-256 and print its path. Idempotent.
    Fetch,
    /// Print the path of the default model in the cache.
    Path,
}

#[derive(Args)]
pub struct GenerateArgs {
    /// A GGUF file or a Hugging Face model directory; defaults to the fetched default model.
    #[arg(long)]
    model: Option<PathBuf>,
    /// The prompt text (with --chat: one user message).
    #[arg(long)]
    prompt: String,
    /// Render the prompt through the model's chat template as a user message.
    #[arg(long)]
    chat: bool,
    /// Maximum number of tokens to generate.
    #[arg(long, default_value_t = 128)]
    max_tokens: usize,
    /// Sampling temperature; 0 is greedy.
    #[arg(long, default_value_t = 0.0)]
    temperature: f32,
    /// Seed for sampling (random when unset).
    #[arg(long)]
    seed: Option<u64>,
    /// Print one JSON object `{"prompt_token_ids","token_ids","text"}` instead of streaming text.
    #[arg(long)]
    json: bool,
}

pub fn run_model_command(cmd: ModelCommand) -> anyhow::Result<()> {
    let path = match cmd {
        ModelCommand::Fetch => engine::model_cache::fetch_default_model()?,
        ModelCommand::Path => engine::model_cache::find_default_model()?,
    };
    println!("{}", path.display());
    Ok(())
}

pub fn run_generate(args: GenerateArgs) -> anyhow::Result<()> {
    let path = match args.model {
        Some(p) => p,
        None => engine::model_cache::find_default_model()?,
    };
    let model = Model::load(&path).with_context(|| format!("loading {}", path.display()))?;
    let text = if args.chat {
        let template = model
            .chat_template
            .as_ref()
            .context("this model has no chat template")?;
        template.render(&[ChatMessage::new("user", args.prompt)], true)?
    } else {
        args.prompt
    };
    let prompt_ids = model.tokenizer.encode(&text, true)?;
    let params = SamplingParams {
        temperature: args.temperature,
        max_tokens: Some(args.max_tokens),
        seed: args.seed,
        ..SamplingParams::default()
    };
    let seed = args.seed.unwrap_or_else(rand_seed);
    let tokens: Vec<u32> = generate(
        &model,
        &prompt_ids,
        &params,
        seed,
        &GenerateOptions::default(),
    )?
    .into_iter()
    .map(|s| s.token)
    .collect();
    let mut decoder = IncrementalDecoder::new(true);
    let mut out = String::new();
    for &t in &tokens {
        out.push_str(&decoder.push(&model.tokenizer, t)?);
    }
    out.push_str(&decoder.flush(&model.tokenizer)?);
    if args.json {
        let obj =
            serde_json::json!({"prompt_token_ids": prompt_ids, "token_ids": tokens, "text": out});
        println!("{obj}");
    } else {
        println!("{out}");
    }
    Ok(())
}

fn rand_seed() -> u64 {
    use std::hash::{BuildHasher, RandomState};
    RandomState::new().hash_one(std::time::SystemTime::now())
}
