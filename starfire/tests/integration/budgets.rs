//! Spend caps: a project's monthly cap that concurrency cannot overspend, a key's lifetime
//! budget, the organization's cap, the month turning (clock given to the store), and caps that
//! stay inside their organization.

use gateway::metering::Money;
use gateway::registry::DEFAULT_MODEL_ID;
use gateway::store::api_keys::KeyLimits;
use gateway::store::budgets::{next_month_start_ms, BudgetScope, OverBudget};
use gateway::store::now_ms;
use gateway::store::usage::{Admission, Endpoint, FinalUsage, NewUsage, UsageStatus};
use gateway::store::{ProjectId, TenantId};
use serde_json::{json, Value};

use crate::metering::{chat, events, org, priced, PRICES};
use crate::support::TestApp;

/// Rate limits out of the way (the free plan runs 8 at once): the caps alone decide.
async fn lift_rate_limits(app: &TestApp, tenant: &TenantId, project: &str) {
    app.state
        .store
        .set_project_limits(
            tenant,
            &ProjectId::from(project),
            KeyLimits {
                rpm: Some(10_000),
                tpm: Some(10_000_000),
                concurrency: Some(100),
            },
        )
        .await
        .unwrap();
}

/// The request every test sends (its real cost is its maximum: `ignore_eos`), and that cost.
async fn request(app: &TestApp, key: &str) -> (Value, i64) {
    let body = chat(json!({"max_tokens": 4, "ignore_eos": true}));
    let prompt = app
        .post(
            "/v1/tokenize",
            Some(key),
            json!({"model": DEFAULT_MODEL_ID, "messages": body["messages"]}),
        )
        .await
        .expect(200)["count"]
        .as_u64()
        .unwrap();
    (body, PRICES.max_cost(prompt, 4).micros())
}

#[track_caller]
fn assert_over_budget(error: &Value, names: &str) {
    assert_eq!(error["type"], "insufficient_quota", "{error}");
    assert_eq!(error["code"], "insufficient_quota", "{error}");
    let message = error["message"].as_str().unwrap();
    assert!(message.contains(names), "{message} should name {names}");
}

/// A project cap that pays for exactly 10 requests, 50 at once: exactly 10 succeed, the cap's
/// spend ends at the cap and nothing stays reserved.
async fn a_project_cap_holds_under_concurrency(app: TestApp) {
    let app = priced(app, 1_000_000_000);
    let (owner, project, (_, key)) = org(&app, "cap@example.com").await;
    let tenant = owner.tenant_id.clone();
    lift_rate_limits(&app, &tenant, &project).await;
    let (body, one) = request(&app, &key).await;
    let cap = one * 10;
    let path = format!("/v1/organization/projects/{project}/budget");
    let set = app
        .post(&path, Some(&owner.access), json!({"limit_micros": cap}))
        .await
        .expect(200);
    assert_eq!(set["object"], "organization.budget");
    assert_eq!(
        (&set["scope"], &set["period"]),
        (&json!("project"), &json!("monthly"))
    );
    assert_eq!(
        (&set["limit_micros"], &set["spent_micros"]),
        (&json!(cap), &json!(0))
    );
    assert!(set["resets_at"].as_i64().unwrap() > set["period_start"].as_i64().unwrap());

    let service =
        actix_web::test::init_service(gateway::app_with(app.state.clone(), ::console::configure))
            .await;
    let calls = (0..50).map(|_| {
        let req = actix_web::test::TestRequest::post()
            .uri("/v1/chat/completions")
            .insert_header(("authorization", format!("Bearer {key}")))
            .set_json(&body)
            .to_request();
        actix_web::test::call_service(&service, req)
    });
    let responses = futures_util::future::join_all(calls).await;
    let mut ok = 0;
    for resp in responses {
        let status = resp.status().as_u16();
        let body: Value = actix_web::test::read_body_json(resp).await;
        match status {
            200 => ok += 1,
            429 => assert_over_budget(&body["error"], "this project's monthly budget"),
            other => panic!("unexpected {other}: {body}"),
        }
    }
    assert_eq!(ok, 10);
    let budget = app
        .state
        .store
        .budget(&tenant, BudgetScope::Project, &project)
        .await
        .unwrap();
    assert_eq!(budget.spent, Money::from_micros(cap));
    assert_eq!(budget.reserved, Money::ZERO);
    // What the cap counts is what the events cost.
    let all = events(&app, &tenant).await;
    let completed: Vec<_> = all
        .iter()
        .filter(|e| e.status == UsageStatus::Completed)
        .collect();
    assert_eq!((completed.len(), all.len()), (10, 50));
    assert_eq!(completed.iter().map(|e| e.cost.micros()).sum::<i64>(), cap);
    let read = app.get(&path, Some(&owner.access)).await.expect(200);
    assert_eq!(
        (&read["spent_micros"], &read["available_micros"]),
        (&json!(cap), &json!(0))
    );
    assert!(
        app.state.metrics.counter_value(
            "starfire_budget_refusals_total",
            &[("reason", "project_budget")]
        ) >= 40
    );
}

/// A key's budget counts everything the key spent, before the budget too; it refuses once spent
/// (other keys go on), and clearing it lifts it. The organization's cap counts the month.
async fn key_and_organization_budgets(app: TestApp) {
    let app = priced(app, 1_000_000_000);
    let (owner, project, (key_id, key)) = org(&app, "keycap@example.com").await;
    lift_rate_limits(&app, &owner.tenant_id, &project).await;
    let (_, other_key) = app
        .create_key(&owner.access, &project, &["inference"])
        .await;
    let (body, one) = request(&app, &key).await;
    let send = |key: String| {
        let app = &app;
        let body = body.clone();
        async move {
            app.post("/v1/chat/completions", Some(&key), body.clone())
                .await
        }
    };
    send(key.clone()).await.expect(200);
    let path = format!("/v1/organization/projects/{project}/api_keys/{key_id}/budget");
    let set = app
        .post(&path, Some(&owner.access), json!({"limit_micros": 3 * one}))
        .await
        .expect(200);
    assert_eq!(
        (&set["period"], &set["spent_micros"], &set["resets_at"]),
        (&json!("lifetime"), &json!(one), &Value::Null)
    );
    send(key.clone()).await.expect(200);
    send(key.clone()).await.expect(200);
    let refused = send(key.clone()).await.expect_error(429, None);
    assert_over_budget(&refused, "this API key's budget");
    send(other_key.clone()).await.expect(200);
    let read = app.get(&path, Some(&owner.access)).await.expect(200);
    assert_eq!(
        (&read["spent_micros"], &read["available_micros"]),
        (&json!(3 * one), &json!(0))
    );
    let cleared = app.delete(&path, Some(&owner.access)).await.expect(200);
    assert_eq!(
        (&cleared["limit_micros"], &cleared["spent_micros"]),
        (&Value::Null, &json!(3 * one))
    );
    send(key.clone()).await.expect(200);

    // Five requests this month; a cap of six leaves room for one more.
    let org_path = "/v1/organization/budget";
    let set = app
        .post(
            org_path,
            Some(&owner.access),
            json!({"limit_micros": 6 * one}),
        )
        .await
        .expect(200);
    assert_eq!(
        (&set["scope_id"], &set["spent_micros"]),
        (&json!(owner.tenant_id), &json!(5 * one))
    );
    send(other_key.clone()).await.expect(200);
    let refused = send(key.clone()).await.expect_error(429, None);
    assert_over_budget(&refused, "your organization's monthly budget");
    app.delete(org_path, Some(&owner.access)).await.expect(200);
    send(key.clone()).await.expect(200);
}

/// The month turning starts a monthly cap's spend again; the clock is the request's own time,
/// which the store takes as an argument.
async fn a_monthly_cap_starts_again_next_month(app: TestApp) {
    let owner = app.signup("month@example.com").await;
    let tenant = owner.tenant_id.clone();
    let project = app.default_project(&owner.access).await;
    let store = &app.state.store;
    store
        .set_budget(
            &tenant,
            BudgetScope::Organization,
            &tenant,
            Money::from_micros(1000),
        )
        .await
        .unwrap();
    let row = |id: &str, at: i64| NewUsage {
        request_id: id.to_owned(),
        http_request_id: None,
        tenant_id: tenant.clone(),
        project_id: Some(project.as_str().into()),
        api_key_id: None,
        endpoint: Endpoint::Completions,
        model: DEFAULT_MODEL_ID.to_owned(),
        prompt_tokens: 10,
        max_cost: Money::from_micros(600),
        instance_id: "gw_test".to_owned(),
        started_ms: at,
        price_id: None,
    };
    let end = |at: i64| FinalUsage {
        status: UsageStatus::Completed,
        prompt_tokens: 10,
        cached_tokens: 0,
        completion_tokens: 5,
        ttft_ms: Some(1),
        latency_ms: Some(2),
        cost: Money::from_micros(600),
        finished_ms: at,
    };
    let over = Admission::OverBudget(OverBudget {
        scope: BudgetScope::Organization,
        limit: Money::from_micros(1000),
        available: Money::from_micros(400),
    });
    let now = now_ms();
    assert!(matches!(
        store.admit_usage(&row("a", now), true).await.unwrap(),
        Admission::Admitted { .. }
    ));
    // Held, not yet spent: a second one does not fit.
    assert_eq!(store.admit_usage(&row("b", now), true).await.unwrap(), over);
    assert!(store.finalize_usage("a", &end(now)).await.unwrap());
    assert_eq!(store.admit_usage(&row("c", now), true).await.unwrap(), over);
    // A new month: the cap is whole again, then counts that month's spend.
    let next = next_month_start_ms(now);
    assert!(matches!(
        store.admit_usage(&row("d", next), true).await.unwrap(),
        Admission::Admitted { .. }
    ));
    assert!(store.finalize_usage("d", &end(next + 1000)).await.unwrap());
    assert_eq!(
        store
            .admit_usage(&row("e", next + 2000), true)
            .await
            .unwrap(),
        over
    );
    let budget = store
        .budget(&tenant, BudgetScope::Organization, &tenant)
        .await
        .unwrap();
    // Read today (the month before), the stored period is next month's: it holds 600.
    assert_eq!(budget.reserved, Money::ZERO);
    assert_eq!(budget.period_start_ms, next);
    assert_eq!(budget.spent, Money::from_micros(600));
}

/// Only owners and admins set caps; another organization sees none of them, and one
/// organization's cap does not stop another's requests.
async fn budgets_stay_inside_their_organization(app: TestApp) {
    let app = priced(app, 1_000_000_000);
    let (a, project_a, (key_a_id, key_a)) = org(&app, "a@example.com").await;
    let (b, project_b, (_, key_b)) = org(&app, "b@example.com").await;
    let project_path = format!("/v1/organization/projects/{project_a}/budget");
    let key_path = format!("/v1/organization/projects/{project_a}/api_keys/{key_a_id}/budget");
    app.post(&project_path, Some(&a.access), json!({"limit_micros": 1}))
        .await
        .expect(200);
    for path in [&project_path, &key_path] {
        app.get(path, Some(&b.access)).await.expect_error(404, None);
        app.post(path, Some(&b.access), json!({"limit_micros": 5}))
            .await
            .expect_error(404, None);
        app.delete(path, Some(&b.access))
            .await
            .expect_error(404, None);
    }
    // B's own project and a key of A's under B's project are not A's.
    app.get(
        &format!("/v1/organization/projects/{project_b}/api_keys/{key_a_id}/budget"),
        Some(&b.access),
    )
    .await
    .expect_error(404, None);
    let developer = app
        .member_with_role(&a, "dev@example.com", "developer")
        .await;
    app.get(&project_path, Some(&developer.access))
        .await
        .expect(200);
    app.post(
        &project_path,
        Some(&developer.access),
        json!({"limit_micros": 5}),
    )
    .await
    .expect_error(403, None);
    app.get("/v1/organization/budget", Some(&key_a))
        .await
        .expect_error(403, None);
    app.post(&project_path, Some(&a.access), json!({"limit_micros": 0}))
        .await
        .expect_error(422, Some("limit_micros"));
    let (admin_key_id, admin_key) = app.create_admin_key(&a.access).await;
    assert!(!admin_key_id.is_empty());
    app.post(&key_path, Some(&admin_key), json!({"limit_micros": 7}))
        .await
        .expect(200);

    let (body, _) = request(&app, &key_b).await;
    let refused = app
        .post("/v1/chat/completions", Some(&key_a), body.clone())
        .await
        .expect_error(429, None);
    assert_over_budget(&refused, "this project's monthly budget");
    app.post("/v1/chat/completions", Some(&key_b), body)
        .await
        .expect(200);
    let b_budget = app
        .get("/v1/organization/budget", Some(&b.access))
        .await
        .expect(200);
    assert_eq!(b_budget["limit_micros"], Value::Null);
    assert!(b_budget["spent_micros"].as_i64().unwrap() > 0);
}

on_both_backends!(
    a_project_cap_holds_under_concurrency,
    key_and_organization_budgets,
    a_monthly_cap_starts_again_next_month,
    budgets_stay_inside_their_organization,
);
