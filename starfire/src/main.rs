//! The `starfire` binary: one clap `Command` enum whose arms call into the libraries. `serve`
//! assembles the product: the gateway's API (`gateway`) with the web console (`console`).

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};

use gateway::config::Config;

mod model_commands;

#[derive(Parser)]
#[command(
    name = "starfire",
    version,
    about = "Starfire: a self-hostable developer cloud for LLMs"
)]
struct Cli {
    /// TOML configuration file; every field is optional and STARFIRE_* variables override it.
    #[arg(long, global = true, env = "STARFIRE_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the HTTP API server.
    Serve {
        /// Address to listen on (overrides `listen` and STARFIRE_LISTEN).
        #[arg(long)]
        listen: Option<String>,
    },
    /// Run models as a worker: the engine and scheduler behind HTTP, with no accounts or
    /// database, for gateways whose `[[models]]` list it under `workers`. SIGTERM drains it.
    Worker {
        /// Address to listen on.
        #[arg(long)]
        listen: String,
        /// A GGUF file or a Hugging Face model directory to serve instead of `[[models]]`.
        #[arg(long)]
        model: Option<PathBuf>,
        /// Seconds running requests get to finish after SIGTERM.
        #[arg(long, default_value_t = 120)]
        drain_timeout: u64,
        /// The engine for every model: `cpu`, or `cuda`; default: each `[[models]]` entry's
        /// `backend`.
        #[arg(long, value_parser = ["cpu", "cuda"])]
        backend: Option<String>,
        /// With the CUDA backend: the share of the GPU's memory every model takes (weights, step
        /// buffers and KV cache), above 0 and at most 1, instead of `kv_cache_memory`
        /// (vLLM's `--gpu-memory-utilization`).
        #[arg(long)]
        gpu_memory_utilization: Option<f64>,
        /// With the CUDA backend: the GPU every model runs on, by its CUDA ordinal; default:
        /// each `[[models]]` entry's `cuda_device`, else 0.
        #[arg(long)]
        cuda_device: Option<usize>,
    },
    /// Print the OpenAPI 3.1 document of the API.
    Openapi,
    /// Administration of a Starfire installation.
    #[command(subcommand)]
    Admin(AdminCommand),
    /// The model cache.
    #[command(subcommand)]
    Model(model_commands::ModelCommand),
    /// Generate text with a model, without the server.
    Generate(model_commands::GenerateArgs),
}

#[derive(Subcommand)]
enum AdminCommand {
    /// Create (idempotently) a tenant, its owner, a default project, an inference key and an
    /// admin key; print them as one JSON object.
    Bootstrap {
        /// The owner's email.
        #[arg(long)]
        email: String,
        /// The owner's password (or STARFIRE_BOOTSTRAP_PASSWORD).
        #[arg(long, env = "STARFIRE_BOOTSTRAP_PASSWORD", hide_env_values = true)]
        password: String,
        /// The tenant's name.
        #[arg(long)]
        tenant: Option<String>,
    },
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("STARFIRE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colours only for a terminal: a file or a log collector gets plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .init();
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Model(cmd) => model_commands::run_model_command(cmd),
        Command::Generate(args) => model_commands::run_generate(args),
        Command::Openapi => {
            print!("{}", gateway::openapi_json());
            Ok(())
        }
        Command::Serve { listen } => {
            init_logging();
            let mut config = Config::load(cli.config.as_deref())?;
            if let Some(listen) = listen {
                config.listen = listen;
            }
            actix_web::rt::System::new()
                .block_on(gateway::serve(config, console::configure))
                .context("server stopped with an error")
        }
        Command::Worker {
            listen,
            model,
            drain_timeout,
            backend,
            gpu_memory_utilization,
            cuda_device,
        } => {
            init_logging();
            let config = Config::resolve(cli.config.as_deref(), |name| std::env::var(name).ok())?;
            let overrides = gateway::worker::server::WorkerOverrides {
                backend: backend.map(|b| match b.as_str() {
                    "cuda" => gateway::registry::ModelBackend::Cuda,
                    _ => gateway::registry::ModelBackend::Cpu,
                }),
                gpu_memory_utilization,
                cuda_device,
            };
            let state =
                gateway::worker::server::load(&config, &listen, model.as_deref(), &overrides)?;
            actix_web::rt::System::new()
                .block_on(gateway::worker::server::serve(
                    state,
                    &listen,
                    config.tls.as_ref(),
                    std::time::Duration::from_secs(drain_timeout),
                ))
                .context("worker stopped with an error")
        }
        Command::Admin(AdminCommand::Bootstrap {
            email,
            password,
            tenant,
        }) => {
            let config = Config::load(cli.config.as_deref())?;
            let out = actix_web::rt::System::new().block_on(async {
                let store = gateway::server::open_store(&config).await?;
                let out =
                    gateway::bootstrap::bootstrap(&store, &email, &password, tenant.as_deref())
                        .await;
                store.close().await;
                anyhow::Ok(out?)
            })?;
            println!("{}", serde_json::to_string(&out)?);
            Ok(())
        }
    }
}
