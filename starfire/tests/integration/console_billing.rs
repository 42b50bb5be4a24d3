//! The console's usage, billing and audit pages: charts and CSV from recorded usage, the
//! statement and invoices, ledger paging, the top-up form; in-process on both backends.

use crate::console::{assert_html, between, text, Browser};
use crate::support::{Session, TestApp};
use gateway::metering::Money;
use gateway::store::now_ms;
use gateway::store::usage::{Endpoint, FinalUsage, NewUsage, UsageStatus};
use gateway::store::TenantId;

/// One finished request of `model` on `project`/`key`, today.
async fn record_usage(
    app: &TestApp,
    tenant: &TenantId,
    project: &str,
    key: &str,
    model: &str,
    tokens: (u64, u64),
) {
    let store = &app.state.store;
    let id = format!("chatcmpl-{}", gateway::auth::secret::random_base62(12));
    let now = now_ms();
    store
        .admit_usage(
            &NewUsage {
                request_id: id.clone(),
                http_request_id: None,
                tenant_id: tenant.clone(),
                project_id: Some(project.into()),
                api_key_id: Some(key.into()),
                endpoint: Endpoint::Completions,
                model: model.to_owned(),
                prompt_tokens: tokens.0,
                max_cost: Money::from_micros(1_000),
                instance_id: "gw_test".into(),
                started_ms: now,
                price_id: None,
            },
            true,
        )
        .await
        .unwrap();
    let done = FinalUsage {
        status: UsageStatus::Completed,
        prompt_tokens: tokens.0,
        cached_tokens: 0,
        completion_tokens: tokens.1,
        ttft_ms: Some(5),
        latency_ms: Some(10),
        cost: Money::from_micros(100),
        finished_ms: now,
    };
    assert!(store.finalize_usage(&id, &done).await.unwrap());
}

pub(crate) fn today() -> String {
    let secs = now_ms() / 1000;
    let days = secs.div_euclid(86_400);
    // The page prints dates; compare with its own rendering of today.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

async fn usage_billing_and_audit(app: TestApp) {
    let owner = app.signup("ada@example.com").await;
    let project = app.default_project(&owner.access).await;
    let project_name = app
        .get(
            &format!("/v1/organization/projects/{project}"),
            Some(&owner.access),
        )
        .await
        .expect(200)["name"]
        .as_str()
        .unwrap()
        .to_owned();
    let (key, _) = app
        .create_key(&owner.access, &project, &["inference"])
        .await;
    record_usage(
        &app,
        &owner.tenant_id,
        &project,
        &key,
        "smollm2-135m-instruct",
        (20, 7),
    )
    .await;
    record_usage(
        &app,
        &owner.tenant_id,
        &project,
        &key,
        "other-model",
        (5, 3),
    )
    .await;
    let mut browser = Browser::new(&app);
    browser.signin("ada@example.com").await;

    // Usage: totals, one titled chart per model and a row per model and day.
    let html = assert_html(&browser.get("/usage").await, 200);
    assert!(html.contains("<dd id=\"total-requests\">2</dd>"), "{html}");
    assert!(html.contains("<dd id=\"total-input\">25</dd>"));
    assert!(html.contains("<dd id=\"total-output\">10</dd>"));
    assert!(html.contains("<dd id=\"total-cost\">$0.000200</dd>"));
    assert!(html.contains("id=\"chart-all\""));
    assert!(html.contains("<strong>smollm2-135m-instruct</strong>"));
    assert!(html.contains("<strong>other-model</strong>"));
    assert_eq!(html.matches("<figure class=\"chart\">").count(), 3);
    // Every bar is titled in text (7 days, 3 charts), today's with its value.
    assert_eq!(html.matches("<rect class=\"bar\"").count(), 21);
    assert!(html.contains(&format!("{}: 27 tokens", today())));
    let table = between(&html, "<table id=\"usage-table\">", "</table>");
    assert_eq!(table.matches("<tr>").count(), 3, "header and two rows");
    let html = assert_html(&browser.get("/usage?group=key&metric=requests").await, 200);
    assert!(html.contains("<strong>test key</strong>"));
    assert!(html.contains("2 requests in total"));
    let html = assert_html(&browser.get("/usage?group=project").await, 200);
    assert!(html.contains(&format!("<strong>{project_name}</strong>")));
    let html = assert_html(
        &browser
            .get(&format!(
                "/usage?project={project}&from=2020-01-01&to=2020-01-31"
            ))
            .await,
        200,
    );
    assert!(html.contains("No usage in this range."));
    assert_eq!(html.matches("<rect class=\"bar\"").count(), 31);
    assert_html(&browser.get("/usage?from=2020-13-01").await, 422);
    assert_html(
        &browser.get("/usage?from=2020-01-01&to=2021-01-01").await,
        422,
    );
    assert_html(&browser.get("/usage?group=user").await, 422);

    usage_as_csv(&mut browser).await;

    // Another organization sees none of it.
    let mut other = Browser::new(&app);
    other.signup("bob@example.com").await;
    let html = assert_html(&other.get("/usage").await, 200);
    assert!(html.contains("<dd id=\"total-requests\">0</dd>"));
    assert!(!html.contains("other-model"));
    let csv = text(other.get("/usage.csv").await.body);
    assert_eq!(csv.lines().count(), 1);

    // Billing: the balance is the ledger's sum (grant minus the two requests).
    let balance = app
        .state
        .store
        .credit_balance(&owner.tenant_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(balance.balance.micros(), 5_000_000 - 200);
    let html = assert_html(&browser.get("/billing").await, 200);
    assert!(
        html.contains("<dd id=\"balance-value\">$4.999800</dd>"),
        "{html}"
    );
    assert!(html.contains("<dd id=\"grant-value\">$5.000000</dd>"));
    assert!(html.contains("3 entries"));
    let ledger = between(&html, "<table id=\"ledger\">", "</table>");
    assert_eq!(ledger.matches("<td>usage</td>").count(), 2);
    assert_eq!(ledger.matches("<td>grant</td>").count(), 1);
    assert!(!html.contains("Top up"), "no payment provider configured");

    audit_log_for_owners_only(&app, &owner, &mut browser, &key).await;
}

/// CSV: the same rows as the usage page, as an attachment.
async fn usage_as_csv(browser: &mut Browser<'_>) {
    let resp = browser.get("/usage.csv?group=model").await;
    assert_eq!(resp.status.as_u16(), 200);
    assert!(resp.header("content-type").starts_with("text/csv"));
    assert!(resp
        .header("content-disposition")
        .starts_with("attachment; filename=\"usage-"));
    let csv = text(resp.body);
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(
        lines[0],
        "date,model,requests,input_tokens,cached_input_tokens,output_tokens,cost_usd"
    );
    assert_eq!(lines.len(), 3, "{csv}");
    assert!(
        lines.contains(&format!("{},smollm2-135m-instruct,1,20,0,7,0.000100", today()).as_str())
    );
    assert!(lines.contains(&format!("{},other-model,1,5,0,3,0.000100", today()).as_str()));
}

/// Audit log: owners see it, filtered by action; developers neither see nor open it, but
/// read the organization's usage.
async fn audit_log_for_owners_only(
    app: &TestApp,
    owner: &Session,
    browser: &mut Browser<'_>,
    key: &str,
) {
    let html = assert_html(&browser.get("/audit").await, 200);
    assert!(html.contains("<code>api_key.created</code>"));
    assert!(html.contains("<code>login.succeeded</code>"));
    let html = assert_html(&browser.get("/audit?type=api_key.created").await, 200);
    assert!(html.contains("<p id=\"audit-count\">1 entry</p>"), "{html}");
    assert!(html.contains(&format!("<code>{key}</code>")));
    assert_html(&browser.get("/audit?type=%3Cb%3E").await, 422);
    app.member_with_role(owner, "dev@example.com", "developer")
        .await;
    let mut dev = Browser::new(app);
    dev.signin("dev@example.com").await;
    let html = assert_html(&dev.get("/projects").await, 200);
    assert!(!html.contains("href=\"/audit\""));
    assert!(html.contains("href=\"/usage\"") && html.contains("href=\"/billing\""));
    assert_html(&dev.get("/audit").await, 403);
    // Members see the organization's usage too (their role reads usage).
    let html = assert_html(&dev.get("/usage").await, 200);
    assert!(html.contains("<dd id=\"total-requests\">2</dd>"));
}

/// The amounts of the ledger table's rows, top to bottom.
fn ledger_amounts(html: &str) -> Vec<String> {
    let table = between(html, "<table id=\"ledger\">", "</table>");
    let body = between(table, "<tbody>", "</tbody>");
    body.split("<tr>")
        .skip(1)
        .map(|row| {
            row.split("<td>")
                .nth(3)
                .unwrap()
                .split("</td>")
                .next()
                .unwrap()
                .to_owned()
        })
        .collect()
}

/// The `href` of the link with id `id`, if the page has one.
fn link_of(html: &str, id: &str) -> Option<String> {
    let marker = format!("id=\"{id}\"");
    let at = html.find(&marker)?;
    let tag_start = html[..at].rfind('<').unwrap();
    let tag = &html[tag_start..tag_start + html[tag_start..].find('>').unwrap()];
    Some(between(tag, "href=\"", "\"").replace("&amp;", "&"))
}

/// The billing page lists the running month's statement and the finalized invoices, each
/// opening the printable page, for members of the organization only.
async fn billing_invoices(app: TestApp) {
    let owner = app.signup("payer@example.com").await;
    let project = app.default_project(&owner.access).await;
    let (key, _) = app
        .create_key(&owner.access, &project, &["inference"])
        .await;
    record_usage(
        &app,
        &owner.tenant_id,
        &project,
        &key,
        "smollm2-135m-instruct",
        (20, 7),
    )
    .await;
    let mut browser = Browser::new(&app);
    browser.signin("payer@example.com").await;

    // Before finalization: the running draft, no invoices yet, and a spot for top-ups.
    let html = assert_html(&browser.get("/billing").await, 200);
    assert!(html.contains("<h2>Buy credits</h2>"), "{html}");
    assert!(html.contains("No payment provider is configured"), "{html}");
    assert!(
        html.contains("<dd id=\"upcoming-status\">draft</dd>"),
        "{html}"
    );
    assert!(html.contains("<dd id=\"upcoming-subtotal\">$0.000100</dd>"));
    assert!(html.contains("<dd id=\"upcoming-credits\">$0.000100</dd>"));
    assert!(html.contains("<dd id=\"upcoming-due\">$0.000000</dd>"));
    assert!(html.contains("<p id=\"invoice-count\">0 finalized invoices</p>"));
    assert!(!html.contains("<table id=\"invoices\">"));
    assert!(html.contains("href=\"/billing/invoices/upcoming\""));
    let draft = browser.get("/billing/invoices/upcoming").await;
    assert_eq!(draft.status.as_u16(), 200, "{}", draft.body);
    let draft = text(draft.body);
    assert!(draft.contains("<td>draft</td>"), "{draft}");
    assert!(draft.contains("smollm2-135m-instruct"));

    // Finalized: listed, and its printable page is the billing module's.
    let period = gateway::billing::period::Period::containing(now_ms());
    let invoice = app
        .state
        .store
        .finalize_invoice(&owner.tenant_id, period.start_ms(), period.end_ms())
        .await
        .unwrap();
    let id = invoice.id.clone().unwrap();
    let html = assert_html(&browser.get("/billing").await, 200);
    assert!(
        html.contains("<p id=\"invoice-count\">1 finalized invoice</p>"),
        "{html}"
    );
    let table = between(&html, "<table id=\"invoices\">", "</table>");
    assert_eq!(table.matches("<tr>").count(), 2, "header and one invoice");
    assert!(table.contains(&format!("href=\"/billing/invoices/{id}\"")));
    assert!(table.contains("<td>$0.000100</td>"));
    assert!(html.contains("<dd id=\"upcoming-status\">finalized</dd>"));
    let resp = browser.get(&format!("/billing/invoices/{id}")).await;
    assert_eq!(resp.status.as_u16(), 200, "{}", resp.body);
    assert!(resp.header("content-type").starts_with("text/html"));
    let csp = resp.header("content-security-policy");
    assert!(
        csp.starts_with("default-src 'none'") && csp.contains("frame-ancestors 'none'"),
        "{csp}"
    );
    assert_eq!(resp.header("x-content-type-options"), "nosniff");
    let page = text(resp.body);
    let api = app
        .state
        .store
        .tenant(&owner.tenant_id)
        .await
        .map(|t| gateway::billing::invoice::render_html(&invoice, &t.name))
        .unwrap();
    assert_eq!(
        page, api,
        "the same page as /v1/billing/invoices/{{id}}/html"
    );
    assert!(page.contains(&id) && page.contains("finalized"));

    // Nobody else reads it: signed out, or another organization (404, as for a missing one).
    let mut stranger = Browser::new(&app);
    let resp = stranger.get(&format!("/billing/invoices/{id}")).await;
    assert_eq!(resp.header("location"), "/signin");
    stranger.signup("stranger@example.com").await;
    assert_html(&stranger.get(&format!("/billing/invoices/{id}")).await, 404);
    assert_html(&browser.get("/billing/invoices/inv_nope").await, 404);
    let html = assert_html(&stranger.get("/billing").await, 200);
    assert!(html.contains("0 finalized invoices"));
    assert!(html.contains("<dd id=\"upcoming-subtotal\">$0.000000</dd>"));
}

/// More than a page of ledger entries: Older and Newer walk every entry exactly once, and
/// malformed or foreign cursors are refused with a 400 page.
async fn billing_ledger_pages(app: TestApp) {
    let owner = app.signup("ledgerpages@example.com").await;
    let store = &app.state.store;
    // The sign-up grant and 120 operator adjustments of distinct amounts: 121 entries. (The
    // pause keeps the grant strictly oldest; entries of one millisecond order by id.)
    tokio::time::sleep(std::time::Duration::from_millis(3)).await;
    for micros in 1..=120 {
        store
            .add_credits(
                &owner.tenant_id,
                gateway::store::credits::CreditKind::Adjustment,
                Money::from_micros(micros),
                Some("paging test"),
            )
            .await
            .unwrap();
    }
    let mut browser = Browser::new(&app);
    browser.signin("ledgerpages@example.com").await;

    let first = assert_html(&browser.get("/billing").await, 200);
    assert!(
        first.contains("<p id=\"ledger-count\">121 entries (50 on this page)</p>"),
        "{first}"
    );
    assert!(link_of(&first, "ledger-newer").is_none(), "the newest page");
    let page1 = ledger_amounts(&first);
    assert_eq!(page1.len(), 50);
    assert!(!page1.contains(&"$5.000000".to_owned()), "newest first");
    let older = link_of(&first, "ledger-older").expect("an Older link");
    assert!(older.starts_with("/billing?after="), "{older}");

    let second = assert_html(&browser.get(&older).await, 200);
    let page2 = ledger_amounts(&second);
    assert_eq!(page2.len(), 50);
    let third = assert_html(
        &browser
            .get(&link_of(&second, "ledger-older").expect("an Older link"))
            .await,
        200,
    );
    let page3 = ledger_amounts(&third);
    assert_eq!(page3.len(), 21);
    assert!(link_of(&third, "ledger-older").is_none(), "the oldest page");
    assert_eq!(page3.last().unwrap(), "$5.000000", "the grant came first");

    // Every entry exactly once.
    let mut all: Vec<String> = [page1.clone(), page2.clone(), page3].concat();
    all.sort();
    all.dedup();
    assert_eq!(all.len(), 121);

    // Newer walks back to the same pages.
    let newer = link_of(&third, "ledger-newer").expect("a Newer link");
    assert!(newer.starts_with("/billing?before="), "{newer}");
    let back2 = assert_html(&browser.get(&newer).await, 200);
    assert_eq!(ledger_amounts(&back2), page2);
    let back1 = assert_html(
        &browser
            .get(&link_of(&back2, "ledger-newer").expect("a Newer link"))
            .await,
        200,
    );
    assert_eq!(ledger_amounts(&back1), page1);
    assert!(link_of(&back1, "ledger-newer").is_none());
    assert!(link_of(&back1, "ledger-older").is_some());

    // Bad cursors: a 400 page, not an empty one (nor a panic).
    let cursor = older.trim_start_matches("/billing?after=").to_owned();
    for bad in [
        "/billing?after=led_nope".to_owned(),
        "/billing?before=%3Cscript%3E".to_owned(),
        format!("/billing?after={}", "a".repeat(65)),
        format!("/billing?after={cursor}&before={cursor}"),
    ] {
        let html = assert_html(&browser.get(&bad).await, 400);
        assert!(
            html.contains("ledger entries") || html.contains("not both"),
            "{html}"
        );
    }
    // Another organization's entry is no cursor for this one.
    let mut other = Browser::new(&app);
    other.signup("otherledger@example.com").await;
    assert_html(&other.get(&format!("/billing?after={cursor}")).await, 400);
    let html = assert_html(&other.get("/billing").await, 200);
    assert!(
        html.contains("<p id=\"ledger-count\">1 entry</p>"),
        "{html}"
    );
}

/// The billing page's top-up form (Stripe configured, against the fake Stripe server): an owner
/// opens a Checkout Session and the page links to it; a viewer sees no form and a posted one is
/// refused; without Stripe the page says so.
async fn billing_top_up_form(app: TestApp) {
    let fake = crate::fake_stripe::FakeStripe::start();
    let url = fake.url.clone();
    let app = app.configure(|c| {
        c.billing.stripe.secret_key = Some(crate::fake_stripe::SECRET_KEY.to_owned());
        c.billing.stripe.api_base = url;
    });
    let mut owner = Browser::new(&app);
    owner.signup("topup-owner@example.com").await;
    let html = assert_html(&owner.get("/billing").await, 200);
    assert!(html.contains("id=\"top-up-form\""), "{html}");
    // Bad amounts are refused without calling Stripe.
    for bad in ["abc", "1.234", "0.10", "999999"] {
        let resp = owner
            .submit("/billing", "/billing/top_ups", &[("amount", bad)])
            .await;
        assert_eq!(resp.status.as_u16(), 422, "{bad}: {}", resp.body);
    }
    assert!(fake.requests_to("/v1/checkout/sessions").is_empty());
    let resp = owner
        .submit("/billing", "/billing/top_ups", &[("amount", "25.50")])
        .await;
    assert_eq!(resp.status.as_u16(), 303, "{}", resp.body);
    let location = resp.header("location");
    assert!(location.starts_with("/billing?top_up=topup_"), "{location}");
    let html = assert_html(&owner.get(&location).await, 200);
    let link = between(&html, "id=\"pay-link\" href=\"", "\"");
    assert!(
        link.starts_with("https://checkout.stripe.test/c/pay/cs_test_"),
        "{link}"
    );
    assert!(between(&html, "id=\"top-ups\"", "</table>").contains("$25.500000"));
    let sessions = fake.requests_to("/v1/checkout/sessions");
    assert_eq!(sessions.len(), 1);
    assert_eq!(
        sessions[0].form["line_items[0][price_data][unit_amount]"],
        "2550"
    );
    assert!(sessions[0].form["success_url"].ends_with("/billing?top_up=success"));
    // No CSRF token: refused.
    let resp = owner.post("/billing/top_ups", &[("amount", "10")]).await;
    assert_eq!(resp.status.as_u16(), 403);
    // A viewer has no form, and posting one directly is refused.
    let owner_session = app.signup("topup-owner2@example.com").await;
    app.member_with_role(&owner_session, "topup-viewer@example.com", "viewer")
        .await;
    let mut viewer = Browser::new(&app);
    viewer.signin("topup-viewer@example.com").await;
    let html = assert_html(&viewer.get("/billing").await, 200);
    assert!(!html.contains("id=\"top-up-form\""));
    let resp = viewer
        .submit("/billing", "/billing/top_ups", &[("amount", "10")])
        .await;
    assert_eq!(resp.status.as_u16(), 403, "{}", resp.body);
    assert_eq!(fake.requests_to("/v1/checkout/sessions").len(), 1);
    assert!(fake.violations().is_empty(), "{:?}", fake.violations());
}

on_both_backends!(
    usage_billing_and_audit,
    billing_invoices,
    billing_ledger_pages,
    billing_top_up_form,
);
