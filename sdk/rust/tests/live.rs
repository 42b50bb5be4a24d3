//! The client against a live `starfire serve` (the binary in STARFIRE_BIN, started here on a
//! loopback port with a temporary SQLite database). `scripted.rs` has the tests that need
//! answers no real server gives on demand (retries, pagination).

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use starfire_sdk::*;

const MODEL: &str = "smollm2-135m-instruct";

struct Server {
    child: Child,
    base_url: String,
    api_key: String,
    admin_key: String,
    _home: std::path::PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn start() -> Server {
    let bin = std::env::var("STARFIRE_BIN")
        .expect("STARFIRE_BIN must name the starfire binary (scripts/test-sdks sets it)");
    let port = free_port();
    let home = std::env::temp_dir().join(format!("starfire-rs-sdk-{}-{port}", std::process::id()));
    std::fs::create_dir_all(&home).unwrap();
    let model = std::env::var("STARFIRE_MODEL_PATH").unwrap_or_else(|_| {
        format!(
            "{}/.cache/starfire/models/SmolLM2-135M-Instruct.Q4_1.gguf",
            std::env::var("HOME").unwrap()
        )
    });
    let env = |cmd: &mut Command| {
        cmd.env("STARFIRE_HOME", &home)
            .env(
                "STARFIRE_DATABASE_URL",
                format!("sqlite://{}/starfire.db", home.display()),
            )
            .env("STARFIRE_LISTEN", format!("127.0.0.1:{port}"))
            .env("STARFIRE_MODEL_PATH", &model)
            .env("STARFIRE_LOG", "warn")
            .env_remove("STARFIRE_CONFIG");
    };
    let mut boot = Command::new(&bin);
    env(&mut boot);
    let out = boot
        .args(["admin", "bootstrap", "--email", "rs@example.com"])
        .env("STARFIRE_BOOTSTRAP_PASSWORD", "rust-sdk-password-1")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let creds: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut serve = Command::new(&bin);
    env(&mut serve);
    let child = serve
        .arg("serve")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let server = Server {
        child,
        base_url: format!("http://127.0.0.1:{port}"),
        api_key: creds["api_key"].as_str().unwrap().into(),
        admin_key: creds["admin_key"].as_str().unwrap().into(),
        _home: home,
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "starfire serve did not come up");
        std::thread::sleep(Duration::from_millis(100));
    }
    server
}

/// A short chat, greedy: a sampled answer may end (EOS) before `max_tokens`, which the
/// assertions on token counts and `finish_reason: length` cannot allow.
fn hello(max_tokens: u32) -> ChatCompletionRequest {
    ChatCompletionRequest {
        model: MODEL.into(),
        messages: vec![ChatMessage::user("Say hello.")],
        max_tokens: Some(max_tokens),
        temperature: Some(0.0),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn chat_keys_and_errors_against_a_live_server() {
    let server = start();
    let client = Client::new(&server.api_key, &server.base_url);

    let completion = client.chat_completion(hello(5)).await.unwrap();
    assert_eq!(completion.usage.completion_tokens, 5);
    assert!(completion.choices[0]
        .message
        .content
        .as_deref()
        .is_some_and(|c| !c.is_empty()));

    let mut stream = client.chat_completion_stream(hello(4)).await.unwrap();
    let mut text = String::new();
    let mut finish = None;
    let mut first_role = None;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.unwrap();
        for choice in chunk.choices {
            first_role = first_role.or(choice.delta.role);
            text.push_str(&choice.delta.content.unwrap_or_default());
            finish = choice.finish_reason.or(finish);
        }
    }
    assert!(!text.is_empty());
    assert_eq!(first_role.as_deref(), Some("assistant"));
    assert_eq!(finish.as_deref(), Some("length"));

    // A JSON schema is enforced: the answer parses and has the required fields.
    let schema = serde_json::json!({
        "type": "object",
        "properties": {"city": {"type": "string", "maxLength": 20},
                       "population": {"type": "integer", "minimum": 0, "maximum": 99999999}},
        "required": ["city", "population"],
        "additionalProperties": false
    });
    let structured = client
        .chat_completion(ChatCompletionRequest {
            response_format: Some(ResponseFormat::json_schema("city", schema)),
            max_tokens: Some(60),
            ..hello(1)
        })
        .await
        .unwrap();
    let content = structured.choices[0].message.content.clone().unwrap();
    let city: serde_json::Value = serde_json::from_str(&content).unwrap();
    assert!(
        city["city"].is_string() && city["population"].is_u64(),
        "{content}"
    );

    // A required tool call: its arguments follow the schema, streamed or not.
    let weather = Tool::function(
        "get_weather",
        "Get the weather of a city.",
        serde_json::json!({"type": "object",
                           "properties": {"city": {"type": "string", "maxLength": 20}},
                           "required": ["city"], "additionalProperties": false}),
    );
    let ask = ChatCompletionRequest {
        messages: vec![ChatMessage::user("What is the weather in Paris?")],
        tools: Some(vec![weather]),
        tool_choice: Some(ToolChoice::Required),
        parallel_tool_calls: Some(false),
        max_tokens: Some(60),
        ..hello(1)
    };
    let called = client.chat_completion(ask.clone()).await.unwrap();
    assert_eq!(
        called.choices[0].finish_reason.as_deref(),
        Some("tool_calls")
    );
    let calls = called.choices[0].message.tool_calls.clone().unwrap();
    #[derive(serde::Deserialize)]
    struct City {
        city: String,
    }
    let args: City = calls[0].function.parse_arguments().unwrap();
    assert!(!args.city.is_empty());
    let mut stream = client.chat_completion_stream(ask.clone()).await.unwrap();
    let mut assembled = ToolCallAccumulator::new();
    while let Some(chunk) = stream.next().await {
        for choice in chunk.unwrap().choices {
            assembled.push(&choice.delta);
        }
    }
    let streamed = assembled.into_calls();
    assert_eq!(streamed.len(), calls.len());
    assert_eq!(streamed[0].function, calls[0].function);
    // The answer and the tool's result continue the conversation.
    let mut messages = ask.messages.clone();
    messages.push(called.choices[0].message.clone().into());
    messages.push(ChatMessage::tool(&calls[0].id, "18 degrees and sunny"));
    let answer = client
        .chat_completion(ChatCompletionRequest {
            messages,
            tool_choice: Some(ToolChoice::None),
            max_tokens: Some(10),
            ..ask
        })
        .await
        .unwrap();
    assert!(answer.choices[0].message.content.is_some());

    // 401 is an authentication error carrying the request id.
    let bad = Client::new("sf-wrong", &server.base_url);
    let err = bad.chat_completion(hello(1)).await.unwrap_err();
    assert_eq!(err.kind(), Some(ErrorKind::Authentication));
    assert!(err.request_id().is_some_and(|id| id.starts_with("req_")));

    // A key is created, used and revoked.
    let admin = Client::new(&server.admin_key, &server.base_url);
    let project = admin.create_project("rust sdk").await.unwrap();
    let key = admin
        .create_api_key(
            &project.id,
            &ApiKeyCreate {
                name: "ci".into(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let fresh = Client::new(&key.value, &server.base_url);
    fresh.chat_completion(hello(1)).await.unwrap();
    let got = admin.get_api_key(&project.id, &key.id).await.unwrap();
    assert_eq!(
        (got.id.as_str(), got.redacted_value.as_str()),
        (key.id.as_str(), key.redacted_value.as_str())
    );
    assert!(got.last_used_at.is_some());
    let listed: Vec<String> = admin
        .list_api_keys(&project.id)
        .await
        .unwrap()
        .into_iter()
        .map(|k| k.id)
        .collect();
    assert_eq!(listed, std::slice::from_ref(&key.id));
    assert!(
        admin
            .delete_api_key(&project.id, &key.id)
            .await
            .unwrap()
            .deleted
    );
    let err = fresh.chat_completion(hello(1)).await.unwrap_err();
    assert_eq!(err.kind(), Some(ErrorKind::Authentication));
    assert!(admin
        .list_projects()
        .await
        .unwrap()
        .iter()
        .any(|p| p.id == project.id));

    rename_and_archive(&admin, &server, &project.id).await;
}

/// A project is renamed with limits and an allowed origin, read back, and archived: its keys stop working, and a
/// second update of the archived project is a conflict.
async fn rename_and_archive(admin: &Client, server: &Server, project_id: &str) {
    let update = ProjectUpdate {
        name: Some("rust sdk renamed".into()),
        limits: Some(KeyLimits {
            rpm: Some(7),
            ..Default::default()
        }),
        allowed_origins: Some(vec!["https://Demo.example/".into()]),
    };
    let renamed = admin.update_project(project_id, &update).await.unwrap();
    assert_eq!(renamed.name, "rust sdk renamed");
    assert_eq!(renamed.limits.rpm, Some(7));
    assert_eq!(renamed.allowed_origins, ["https://demo.example"]);
    let got = admin.get_project(project_id).await.unwrap();
    assert_eq!(
        (got.name.as_str(), got.status.as_str()),
        ("rust sdk renamed", "active")
    );
    assert_eq!(got.limits, renamed.limits);
    let second = admin
        .create_api_key(
            project_id,
            &ApiKeyCreate {
                name: "second".into(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let archived = admin.archive_project(project_id).await.unwrap();
    assert_eq!(archived.status, "archived");
    assert!(archived.archived_at.is_some());
    assert_eq!(
        admin.get_project(project_id).await.unwrap().archived_at,
        archived.archived_at
    );
    let err = Client::new(&second.value, &server.base_url)
        .chat_completion(hello(1))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), Some(ErrorKind::Authentication));
    assert!(!admin
        .list_projects()
        .await
        .unwrap()
        .iter()
        .any(|p| p.id == project_id));
    // 409 is retried by default; once is enough here.
    let err = admin
        .clone()
        .with_max_retries(0)
        .update_project(project_id, &update)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), Some(ErrorKind::Conflict));
    let err = admin.get_project("proj_doesnotexist").await.unwrap_err();
    assert_eq!(err.kind(), Some(ErrorKind::NotFound));
}

#[tokio::test(flavor = "multi_thread")]
async fn websocket_limits_and_usage_against_a_live_server() {
    let server = start();
    let client = Client::new(&server.api_key, &server.base_url);

    // Two requests at once on one socket, then one by itself.
    let mut socket = client.chat_socket().await.unwrap();
    let first = socket.send_chat(&hello(3)).await.unwrap();
    let second = socket.send_chat(&hello(2)).await.unwrap();
    let mut done = Vec::new();
    let mut deltas = 0;
    while done.len() < 2 {
        match socket.next_frame().await.unwrap().unwrap() {
            ServerFrame::Delta { id, .. } => {
                assert!(id == first || id == second);
                deltas += 1;
            }
            ServerFrame::Done(d) => done.push((d.id, d.usage.unwrap().completion_tokens)),
            ServerFrame::Error { error, .. } => panic!("{error:?}"),
        }
    }
    done.sort();
    assert_eq!(done, vec![(first, 3), (second, 2)]);
    assert!(deltas >= 5);
    let (text, last) = socket.chat(&hello(4)).await.unwrap();
    assert!(!text.is_empty());
    assert_eq!(last.finish_reason, "length");
    let mut bad_model = hello(1);
    bad_model.model = "no-such-model".into();
    match socket.chat(&bad_model).await.unwrap_err() {
        Error::Stream { code, .. } => assert_eq!(code.as_deref(), Some("model_not_found")),
        other => panic!("{other:?}"),
    }
    socket.close().await.unwrap();

    // A ticket instead of the key header; a bad key is refused before the upgrade.
    let mut socket = client.chat_socket_with_ticket().await.unwrap();
    assert!(!socket.chat(&hello(2)).await.unwrap().0.is_empty());
    let err = Client::new("sf-wrong", &server.base_url)
        .chat_socket()
        .await
        .err()
        .unwrap();
    assert_eq!(err.kind(), Some(ErrorKind::Authentication));
    assert!(err.request_id().is_some_and(|id| id.starts_with("req_")));

    // A key limited to one request a minute gets a rate-limit error on its second.
    let admin = Client::new(&server.admin_key, &server.base_url);
    let project = admin.create_project("rust limits").await.unwrap();
    let key = admin
        .create_api_key(
            &project.id,
            &ApiKeyCreate {
                name: "slow".into(),
                limits: Some(KeyLimits {
                    rpm: Some(1),
                    ..Default::default()
                }),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let start = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
        - 60;
    let slow = Client::new(&key.value, &server.base_url).with_max_retries(0);
    let used = slow.chat_completion(hello(2)).await.unwrap();
    let err = slow.chat_completion(hello(1)).await.unwrap_err();
    assert_eq!(err.kind(), Some(ErrorKind::RateLimit));
    assert!(err.request_id().is_some_and(|id| id.starts_with("req_")));

    // Its usage is read back.
    let usage = admin
        .usage_completions(&UsageQuery {
            bucket_width: Some("1m".into()),
            api_key_ids: vec![key.id.clone()],
            group_by: vec!["api_key_id".into()],
            ..UsageQuery::since(start)
        })
        .await
        .unwrap();
    let results: Vec<_> = usage.iter().flat_map(|b| &b.results).collect();
    assert_eq!(results.len(), 1, "{usage:?}");
    assert_eq!(results[0].api_key_id.as_deref(), Some(key.id.as_str()));
    assert_eq!(results[0].num_model_requests, 1);
    assert_eq!(results[0].input_tokens, i64::from(used.usage.prompt_tokens));
    assert_eq!(results[0].output_tokens, 2);
    let costs = admin
        .costs(&UsageQuery {
            group_by: vec!["project_id".into()],
            ..UsageQuery::since(start - 86_400)
        })
        .await
        .unwrap();
    assert!(costs
        .iter()
        .flat_map(|b| &b.results)
        .any(
            |c| c.project_id.as_deref() == Some(project.id.as_str()) && c.amount.currency == "usd"
        ));
    assert_eq!(
        admin.credits().await.unwrap().object,
        "organization.credits"
    );
}

/// Signs up a new user, which creates a new organization on the free plan; answers a client
/// authenticated with the session's access token (the organization's owner).
async fn sign_up(server: &Server, email: &str) -> Client {
    let response = reqwest::Client::new()
        .post(format!("{}/v1/auth/signup", server.base_url))
        .json(&serde_json::json!({ "email": email, "password": "rust-sdk-password-2" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let session: serde_json::Value = response.json().await.unwrap();
    Client::new(session["access_token"].as_str().unwrap(), &server.base_url)
}

/// The ledger once it holds `n` entries (a request's debit is written as it ends).
async fn ledger_of(client: &Client, n: usize) -> Vec<LedgerEntry> {
    for _ in 0..100 {
        let ledger = client.list_ledger().await.unwrap();
        if ledger.len() >= n {
            return ledger;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the ledger never held {n} entries");
}

#[tokio::test(flavor = "multi_thread")]
async fn billing_and_budgets_of_a_fresh_organization() {
    let server = start();
    let owner = sign_up(&server, "billing@example.com").await;

    a_new_organization_owes_nothing(&owner).await;

    // A chat through one of its keys is debited from the balance at the catalog price.
    let project = owner.create_project("billed").await.unwrap();
    let key = owner
        .create_api_key(
            &project.id,
            &ApiKeyCreate {
                name: "billed".into(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let member = Client::new(&key.value, &server.base_url);
    let chat = member.chat_completion(hello(3)).await.unwrap();
    let ledger = ledger_of(&owner, 2).await;
    let debit = &ledger[0];
    assert_eq!(debit.kind, "usage", "newest first: {ledger:?}");
    assert!(debit.amount_micros < 0 && debit.request_id.is_some());
    assert_eq!(ledger[1].kind, "grant");
    let after = owner.get_balance().await.unwrap();
    assert_eq!(
        after.balance_micros,
        ledger.iter().map(|e| e.amount_micros).sum::<i64>()
    );
    the_chat_is_on_the_statement(&owner, &chat, debit).await;

    a_project_budget(&owner, &project.id, -debit.amount_micros).await;

    // A key's budget below what it already spent refuses its next request until deleted.
    let capped = owner.set_key_budget(&project.id, &key.id, 1).await.unwrap();
    assert_eq!(
        (
            capped.scope.as_str(),
            capped.period.as_str(),
            capped.limit_micros
        ),
        ("api_key", "lifetime", Some(1))
    );
    assert_eq!(
        owner
            .get_key_budget(&project.id, &key.id)
            .await
            .unwrap()
            .spent_micros,
        -debit.amount_micros
    );
    let err = member.chat_completion(hello(1)).await.unwrap_err();
    assert_eq!(err.kind(), Some(ErrorKind::InsufficientQuota), "{err}");
    let uncapped = owner.delete_key_budget(&project.id, &key.id).await.unwrap();
    assert_eq!(uncapped.limit_micros, None);
    member.chat_completion(hello(1)).await.unwrap();

    the_organization_budget(&owner).await;

    // Another organization sees none of it.
    let other = sign_up(&server, "other@example.com").await;
    assert_eq!(other.list_ledger().await.unwrap().len(), 1);
    let err = other.get_project_budget(&project.id).await.unwrap_err();
    assert_eq!(err.kind(), Some(ErrorKind::NotFound));
}

/// A new organization is on the free plan, prepaid from its grant, and owes nothing yet; this
/// server has no payment provider, so a top-up is a typed conflict.
async fn a_new_organization_owes_nothing(owner: &Client) {
    let balance = owner.get_balance().await.unwrap();
    assert_eq!(balance.object, "billing.balance");
    assert_eq!(
        (
            balance.plan.as_str(),
            balance.mode.as_str(),
            balance.currency.as_str()
        ),
        ("free", "prepaid", "usd")
    );
    assert!(balance.balance_micros > 0);
    assert_eq!(balance.reserved_micros, 0);
    assert_eq!(balance.available_micros, balance.balance_micros);
    assert_eq!(balance.billing_status, "ok");
    // This server has no payment provider: a top-up is a typed conflict, and there are none.
    assert!(!balance.top_ups_available);
    let err = owner
        .create_top_up(&TopUpCreate {
            amount_micros: 5_000_000,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.kind(), Some(ErrorKind::Conflict), "{err}");
    assert!(err.to_string().contains("not configured"), "{err}");
    assert!(owner.list_top_ups().await.unwrap().is_empty());
    let err = owner.get_top_up("topup_doesnotexist").await.unwrap_err();
    assert_eq!(err.kind(), Some(ErrorKind::NotFound), "{err}");
    let ledger = owner.list_ledger().await.unwrap();
    assert_eq!(ledger.len(), 1, "{ledger:?}");
    assert_eq!(ledger[0].object, "billing.ledger_entry");
    assert_eq!(ledger[0].kind, "grant");
    assert_eq!(ledger[0].amount_micros, balance.balance_micros);
    assert!(owner.list_invoices().await.unwrap().is_empty());
    let draft = owner.upcoming_invoice(None).await.unwrap();
    assert_eq!(
        (draft.status.as_str(), draft.id.as_deref()),
        ("draft", None)
    );
    assert!(draft.lines.is_empty() && draft.subtotal_micros == 0);
}

/// The month's statement has the chat as one line at its catalog price, equal to its debit;
/// bad periods and unknown invoices are typed errors.
async fn the_chat_is_on_the_statement(owner: &Client, chat: &ChatCompletion, debit: &LedgerEntry) {
    let prices = owner.list_prices(None).await.unwrap();
    assert!(prices.iter().any(|p| p.model == MODEL), "{prices:?}");
    let price = owner.list_prices(Some(MODEL)).await.unwrap();
    assert!(price
        .iter()
        .all(|p| p.model == MODEL && p.object == "billing.price"));
    let invoice = owner.upcoming_invoice(None).await.unwrap();
    assert_eq!(invoice.lines.len(), 1, "{invoice:?}");
    let line = &invoice.lines[0];
    assert_eq!((line.model.as_str(), line.requests), (MODEL, 1));
    assert_eq!(
        line.input_tokens + line.cached_input_tokens,
        i64::from(chat.usage.prompt_tokens)
    );
    assert_eq!(line.output_tokens, i64::from(chat.usage.completion_tokens));
    assert_eq!(line.amount_micros, -debit.amount_micros);
    assert_eq!(invoice.subtotal_micros, line.amount_micros);
    let billed_at = price
        .iter()
        .find(|p| Some(&p.id) == line.price_id.as_ref())
        .expect("the line's price is in the catalog");
    assert_eq!(
        line.output_micros_per_million,
        Some(billed_at.output_micros_per_million)
    );
    assert_eq!(
        owner
            .upcoming_invoice(Some(&invoice.period))
            .await
            .unwrap()
            .period_start,
        invoice.period_start
    );
    let err = owner
        .upcoming_invoice(Some("not-a-month"))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), Some(ErrorKind::UnprocessableEntity));
    let err = owner.get_invoice("inv_doesnotexist").await.unwrap_err();
    assert_eq!(err.kind(), Some(ErrorKind::NotFound));
}

/// A project budget is set, counts the project's spend this month, and is deleted.
async fn a_project_budget(owner: &Client, project_id: &str, spent_micros: i64) {
    assert_eq!(
        owner
            .get_project_budget(project_id)
            .await
            .unwrap()
            .limit_micros,
        None
    );
    let set = owner
        .set_project_budget(project_id, 5_000_000)
        .await
        .unwrap();
    assert_eq!(
        (
            set.scope.as_str(),
            set.scope_id.as_str(),
            set.period.as_str()
        ),
        ("project", project_id, "monthly")
    );
    assert_eq!(set.limit_micros, Some(5_000_000));
    let read = owner.get_project_budget(project_id).await.unwrap();
    assert_eq!(read.limit_micros, Some(5_000_000));
    assert_eq!(read.spent_micros, spent_micros);
    assert_eq!(
        read.available_micros,
        Some(5_000_000 - read.spent_micros - read.reserved_micros)
    );
    assert!(matches!((read.period_start, read.resets_at), (Some(s), Some(e)) if e > s));
    let deleted = owner.delete_project_budget(project_id).await.unwrap();
    assert_eq!(
        (deleted.limit_micros, deleted.available_micros),
        (None, None)
    );
    assert_eq!(
        owner
            .get_project_budget(project_id)
            .await
            .unwrap()
            .limit_micros,
        None
    );
    let err = owner.set_project_budget(project_id, 0).await.unwrap_err();
    assert_eq!(err.kind(), Some(ErrorKind::UnprocessableEntity));
    let err = owner
        .get_project_budget("proj_doesnotexist")
        .await
        .unwrap_err();
    assert_eq!(err.kind(), Some(ErrorKind::NotFound));
}

/// The organization's budget: none, set, read back, deleted.
async fn the_organization_budget(owner: &Client) {
    let org = owner.get_organization_budget().await.unwrap();
    assert_eq!(
        (org.scope.as_str(), org.limit_micros),
        ("organization", None)
    );
    let set = owner.set_organization_budget(1_000_000_000).await.unwrap();
    assert_eq!(
        (set.scope_id.as_str(), set.limit_micros),
        (org.scope_id.as_str(), Some(1_000_000_000))
    );
    assert_eq!(
        owner.get_organization_budget().await.unwrap().limit_micros,
        Some(1_000_000_000)
    );
    assert_eq!(
        owner
            .delete_organization_budget()
            .await
            .unwrap()
            .limit_micros,
        None
    );
}

/// An example's binary, which `cargo test` builds beside the test binaries.
fn example(name: &str) -> std::path::PathBuf {
    let exe = std::env::current_exe().unwrap();
    let path = exe
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("examples")
        .join(name);
    assert!(
        path.exists(),
        "{} is missing: run all of the crate's tests (`cargo test`), which builds the examples",
        path.display()
    );
    path
}

fn run_example(name: &str, key: &str, server: &Server) -> String {
    let out = Command::new(example(name))
        .env("STARFIRE_API_KEY", key)
        .env("STARFIRE_BASE_URL", &server.base_url)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn the_examples_run_as_written_in_the_readme() {
    let server = start();
    assert!(!run_example("quickstart", &server.api_key, &server)
        .trim()
        .is_empty());
    let out = run_example("keys", &server.admin_key, &server);
    assert!(
        out.contains("created key_") && out.contains("revoked key_"),
        "{out}"
    );
    // The example samples (the default temperature), so the answer may end before its 5
    // tokens: the usage line counts 1 to 5 of them.
    let generated: u64 = out
        .lines()
        .find_map(|l| l.strip_prefix("usage: 1 requests, "))
        .and_then(|l| l.strip_suffix(" out"))
        .and_then(|l| l.rsplit(", ").next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no usage line: {out}"));
    assert!((1..=5).contains(&generated), "{out}");
    let readme = include_str!("../../../README.md");
    assert!(readme.contains(include_str!("../examples/quickstart.rs")));
}
