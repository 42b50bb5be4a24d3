//! The web console at `/`: pages, forms, cookie sessions, CSRF and role checks, in-process on
//! both backends. (The real-browser test is `console_browser`.)

use std::collections::HashMap;

use actix_web::http::Method;
use actix_web::test::TestRequest;
use serde_json::{json, Value};

use crate::support::{Resp, TestApp};
use gateway::auth::secret::sha256_hex;
use gateway::metering::Money;
use gateway::store::now_ms;
use gateway::store::usage::{Endpoint, FinalUsage, NewUsage, UsageStatus};

/// A minimal browser: a cookie jar over the in-process app.
struct Browser<'a> {
    app: &'a TestApp,
    cookies: HashMap<String, String>,
}

impl<'a> Browser<'a> {
    fn new(app: &'a TestApp) -> Self {
        Browser {
            app,
            cookies: HashMap::new(),
        }
    }

    async fn send(&mut self, req: TestRequest) -> Resp {
        let mut req = req.peer_addr("127.0.0.1:40000".parse().unwrap());
        if !self.cookies.is_empty() {
            let header: Vec<String> = self
                .cookies
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            req = req.insert_header(("cookie", header.join("; ")));
        }
        let resp = self.app.call(req).await;
        for value in resp.headers.get_all("set-cookie") {
            let value = value.to_str().unwrap();
            let (pair, _) = value.split_once(';').unwrap_or((value, ""));
            let (name, val) = pair.split_once('=').unwrap();
            if value.contains("Max-Age=0") {
                self.cookies.remove(name);
            } else {
                self.cookies.insert(name.to_owned(), val.to_owned());
            }
        }
        resp
    }

    async fn get(&mut self, path: &str) -> Resp {
        self.send(TestRequest::default().method(Method::GET).uri(path))
            .await
    }

    async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Resp {
        let body = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form)
            .finish();
        self.send(
            TestRequest::default()
                .method(Method::POST)
                .uri(path)
                .insert_header(("content-type", "application/x-www-form-urlencoded"))
                .set_payload(body),
        )
        .await
    }

    /// GETs `page`, then posts `form` to `action` with the page's CSRF token.
    async fn submit(&mut self, page: &str, action: &str, form: &[(&str, &str)]) -> Resp {
        let html = text(self.get(page).await.expect(200));
        let csrf = csrf_of(&html);
        let mut fields = vec![("csrf", csrf.as_str())];
        fields.extend_from_slice(form);
        self.post(action, &fields).await
    }

    async fn signup(&mut self, email: &str) {
        let resp = self
            .submit(
                "/signup",
                "/signup",
                &[("email", email), ("password", "password123")],
            )
            .await;
        assert_eq!(resp.status.as_u16(), 303, "{}", resp.body);
        assert_eq!(resp.header("location"), "/projects");
    }

    async fn signin(&mut self, email: &str) {
        let resp = self
            .submit(
                "/signin",
                "/signin",
                &[("email", email), ("password", "password123")],
            )
            .await;
        assert_eq!(resp.status.as_u16(), 303, "{}", resp.body);
    }
}

fn text(body: Value) -> String {
    body.as_str().expect("an HTML body").to_owned()
}

fn csrf_of(html: &str) -> String {
    let marker = "name=\"csrf\" value=\"";
    let start = html.find(marker).expect("the page has a CSRF field") + marker.len();
    html[start..start + html[start..].find('"').unwrap()].to_owned()
}

/// The text between `start` and the next `end` after it.
fn between<'h>(html: &'h str, start: &str, end: &str) -> &'h str {
    let from = html
        .find(start)
        .unwrap_or_else(|| panic!("{start} in {html}"))
        + start.len();
    &html[from..from + html[from..].find(end).unwrap()]
}

#[track_caller]
fn assert_html(resp: &Resp, status: u16) -> String {
    assert_eq!(resp.status.as_u16(), status, "{}", resp.body);
    assert!(resp
        .header("content-type")
        .starts_with("text/html; charset=utf-8"));
    let csp = resp.header("content-security-policy");
    assert!(
        csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"),
        "{csp}"
    );
    assert!(!csp.contains("unsafe-inline"));
    assert_eq!(resp.header("x-content-type-options"), "nosniff");
    let html = resp.body.as_str().unwrap().to_owned();
    // No inline script: every <script> loads a file.
    for piece in html.split("<script").skip(1) {
        assert!(
            piece.trim_start().starts_with("src="),
            "inline script in {html}"
        );
    }
    html
}

async fn sign_up_in_out(app: TestApp) {
    let mut browser = Browser::new(&app);
    let resp = browser.get("/").await;
    assert_eq!(resp.status.as_u16(), 303);
    assert_eq!(resp.header("location"), "/signin");
    let resp = browser.get("/projects").await;
    assert_eq!(resp.header("location"), "/signin", "pages need a session");

    // Sign-up: the form's CSRF cookie, then the session cookie's attributes.
    let signup = browser.get("/signup").await;
    let html = assert_html(&signup, 200);
    assert!(html.contains("<label for=\"email\">Email</label>"));
    let pre = signup.header("set-cookie");
    assert!(
        pre.starts_with("sf_csrf=") && pre.contains("HttpOnly"),
        "{pre}"
    );
    let csrf = csrf_of(&html);
    let refused = browser
        .post(
            "/signup",
            &[("email", "ada@example.com"), ("password", "password123")],
        )
        .await;
    assert_html(&refused, 403);
    let wrong = browser
        .post(
            "/signup",
            &[
                ("csrf", "x".repeat(32).as_str()),
                ("email", "ada@example.com"),
                ("password", "password123"),
            ],
        )
        .await;
    assert_eq!(
        wrong.status.as_u16(),
        403,
        "a token that is not the cookie's"
    );
    let short = browser
        .post(
            "/signup",
            &[
                ("csrf", &csrf),
                ("email", "ada@example.com"),
                ("password", "short"),
            ],
        )
        .await;
    let html = assert_html(&short, 422);
    assert!(html.contains("password"), "{html}");
    assert!(html.contains("value=\"ada@example.com\""), "email kept");
    let created = browser
        .post(
            "/signup",
            &[
                ("csrf", &csrf),
                ("email", "ada@example.com"),
                ("password", "password123"),
                ("organization_name", "Analytical Engines"),
            ],
        )
        .await;
    assert_eq!(created.status.as_u16(), 303, "{}", created.body);
    let cookie = created.header("set-cookie");
    assert!(cookie.starts_with("sf_console="), "{cookie}");
    for attr in ["HttpOnly", "SameSite=Strict", "Path=/", "Max-Age=43200"] {
        assert!(cookie.contains(attr), "{cookie}");
    }
    assert!(!cookie.contains("Secure"), "plain HTTP: no Secure");

    let page = browser.get("/projects").await;
    let html = assert_html(&page, 200);
    assert!(html.contains("ada@example.com"));
    assert!(html.contains("Analytical Engines"));
    assert!(html.contains("<span id=\"role\">owner</span>"));
    assert!(html.contains("1 project"));
    assert!(html.contains("Default project"));
    assert!(html.contains("aria-current=\"page\""));

    // Sign out: needs the session's CSRF token; afterwards the old cookie is dead.
    let old_cookie = browser.cookies["sf_console"].clone();
    let refused = browser.post("/signout", &[("csrf", "nope")]).await;
    assert_html(&refused, 403);
    let resp = browser.submit("/projects", "/signout", &[]).await;
    assert_eq!(resp.status.as_u16(), 303);
    assert_eq!(resp.header("location"), "/signin");
    assert!(resp.header("set-cookie").contains("Max-Age=0"));
    browser
        .cookies
        .insert("sf_console".to_owned(), old_cookie.clone());
    let resp = browser.get("/projects").await;
    assert_eq!(resp.header("location"), "/signin", "revoked session");
    let resp = browser.post("/projects", &[("name", "x")]).await;
    assert_html(&resp, 401);
    browser.cookies.remove("sf_console");

    // Sign in: wrong password shows the form again with the error.
    let page = browser.get("/signin").await;
    let csrf = csrf_of(&assert_html(&page, 200));
    let wrong = browser
        .post(
            "/signin",
            &[
                ("csrf", &csrf),
                ("email", "ada@example.com"),
                ("password", "wrong password"),
            ],
        )
        .await;
    let html = assert_html(&wrong, 401);
    assert!(html.contains("Incorrect email or password."));
    browser.signin("ada@example.com").await;
    let html = assert_html(&browser.get("/projects").await, 200);
    assert!(html.contains("Default project"));

    // Behind a TLS-terminating proxy the cookie is Secure.
    let mut tls = Browser::new(&app);
    let resp = tls
        .send(
            TestRequest::default()
                .uri("/signin")
                .insert_header(("x-forwarded-proto", "https")),
        )
        .await;
    assert!(resp.header("set-cookie").contains("; Secure"));

    // A cross-site post is refused even with a valid token.
    let page = browser.get("/projects").await;
    let csrf = csrf_of(&assert_html(&page, 200));
    let resp = browser
        .send(
            TestRequest::default()
                .method(Method::POST)
                .uri("/projects")
                .insert_header(("origin", "https://evil.example"))
                .insert_header(("content-type", "application/x-www-form-urlencoded"))
                .set_payload(format!("csrf={csrf}&name=evil")),
        )
        .await;
    assert_html(&resp, 403);
}

async fn projects_and_keys(app: TestApp) {
    let mut browser = Browser::new(&app);
    browser.signup("grace@example.com").await;

    let resp = browser
        .submit("/projects", "/projects", &[("name", "Compiler")])
        .await;
    assert_eq!(resp.status.as_u16(), 303, "{}", resp.body);
    let keys_url = resp.header("location");
    assert!(keys_url.starts_with("/projects/proj_") && keys_url.ends_with("/keys"));
    let html = assert_html(&browser.get("/projects").await, 200);
    assert!(html.contains("2 projects") && html.contains("Compiler"));
    let bad = browser
        .submit("/projects", "/projects", &[("name", "")])
        .await;
    let html = assert_html(&bad, 422);
    assert!(html.contains("name"), "{html}");

    let html = assert_html(&browser.get(&keys_url).await, 200);
    assert!(html.contains("API keys · Compiler"));
    assert!(html.contains("0 live keys"));
    assert!(html.contains("<legend>Scopes</legend>"));

    let created = browser
        .submit(
            &keys_url,
            &keys_url,
            &[
                ("name", "ci key"),
                ("scopes", "inference"),
                ("scopes", "usage:read"),
            ],
        )
        .await;
    let html = assert_html(&created, 200);
    let secret = between(&html, "<code id=\"new-key\">", "</code>").to_owned();
    assert!(secret.starts_with("sf-"), "{secret}");
    assert!(html.contains("it will not be shown again"));
    assert!(html.contains("data-copy=\"new-key\""));
    assert!(html.contains("1 live key"));
    assert!(html.contains("inference, usage:read"));
    assert!(html.contains("never"), "not used yet");
    let record = app
        .state
        .store
        .authenticate_api_key(&sha256_hex(&secret))
        .await
        .unwrap()
        .expect("the shown key works");
    assert_eq!(record.name, "ci key");

    // Listed later with its prefix only.
    let html = assert_html(&browser.get(&keys_url).await, 200);
    assert!(!html.contains(&secret), "the secret is shown once");
    assert!(html.contains(&format!("{}...", &secret[..9])));
    let bad = browser
        .submit(&keys_url, &keys_url, &[("name", "x"), ("scopes", "root")])
        .await;
    assert_html(&bad, 422);

    // Revoke: a confirmation page, then the post (with CSRF).
    let revoke_url = format!("{keys_url}/{}/revoke", record.id);
    assert!(html.contains(&format!("href=\"{revoke_url}\"")));
    let confirm = assert_html(&browser.get(&revoke_url).await, 200);
    assert!(confirm.contains("Revoke <strong>ci key</strong>"));
    assert!(confirm.contains("Cancel"));
    let refused = browser.post(&revoke_url, &[("csrf", "bad")]).await;
    assert_html(&refused, 403);
    assert!(app
        .state
        .store
        .authenticate_api_key(&sha256_hex(&secret))
        .await
        .unwrap()
        .is_some());
    let done = browser.submit(&revoke_url, &revoke_url, &[]).await;
    assert_eq!(done.status.as_u16(), 303);
    assert_eq!(done.header("location"), keys_url);
    let html = assert_html(&browser.get(&keys_url).await, 200);
    assert!(html.contains("0 live keys"));
    assert!(app
        .state
        .store
        .authenticate_api_key(&sha256_hex(&secret))
        .await
        .unwrap()
        .is_none());

    // Another organization's project is not found.
    let mut other = Browser::new(&app);
    other.signup("eve@example.com").await;
    assert_html(&other.get(&keys_url).await, 404);
    let resp = other
        .submit(
            "/projects",
            &keys_url,
            &[("name", "steal"), ("scopes", "inference")],
        )
        .await;
    assert_html(&resp, 404);
}

async fn viewer_cannot_manage_keys(app: TestApp) {
    let owner = app.signup("owner@example.com").await;
    let project = app.default_project(&owner.access).await;
    let (key_id, secret) = app
        .create_key(&owner.access, &project, &["inference"])
        .await;
    app.member_with_role(&owner, "viewer@example.com", "viewer")
        .await;

    let mut viewer = Browser::new(&app);
    viewer.signin("viewer@example.com").await;
    let keys_url = format!("/projects/{project}/keys");
    let html = assert_html(&viewer.get(&keys_url).await, 200);
    assert!(html.contains("<span id=\"role\">viewer</span>"));
    assert!(html.contains("1 live key"));
    assert!(!html.contains("Create key"), "no form for viewers");
    assert!(!html.contains("/revoke\""), "no revoke links for viewers");
    assert!(html.contains("can see this page but not change it"));

    // Posting the forms directly (with a valid CSRF token) is refused too.
    let resp = viewer
        .submit(
            &keys_url,
            &keys_url,
            &[("name", "sneaky"), ("scopes", "inference")],
        )
        .await;
    let html = assert_html(&resp, 403);
    assert!(html.contains("permission to manage API keys"), "{html}");
    let revoke_url = format!("{keys_url}/{key_id}/revoke");
    assert_html(&viewer.get(&revoke_url).await, 403);
    let resp = viewer.submit(&keys_url, &revoke_url, &[]).await;
    assert_html(&resp, 403);
    assert!(app
        .state
        .store
        .authenticate_api_key(&sha256_hex(&secret))
        .await
        .unwrap()
        .is_some());
    let resp = viewer
        .submit("/projects", "/projects", &[("name", "nope")])
        .await;
    assert_html(&resp, 403);
    let resp = viewer
        .submit(
            "/members",
            "/members/invites",
            &[("email", "x@example.com"), ("role", "viewer")],
        )
        .await;
    assert_html(&resp, 403);
    assert_html(&viewer.get("/playground").await, 403);
    let html = assert_html(&viewer.get("/members").await, 200);
    assert!(html.contains("2 members"));
    assert!(!html.contains("Invite a member"));

    // A developer may manage keys but not projects.
    app.member_with_role(&owner, "dev@example.com", "developer")
        .await;
    let mut dev = Browser::new(&app);
    dev.signin("dev@example.com").await;
    let resp = dev
        .submit(
            &keys_url,
            &keys_url,
            &[("name", "dev key"), ("scopes", "inference")],
        )
        .await;
    assert!(assert_html(&resp, 200).contains("2 live keys"));
    let html = assert_html(&dev.get("/projects").await, 200);
    assert!(!html.contains("Create project"));
}

async fn members_invite_and_accept(app: TestApp) {
    let mut owner = Browser::new(&app);
    owner.signup("lead@example.com").await;
    let html = assert_html(&owner.get("/members").await, 200);
    assert!(html.contains("1 member"));
    assert!(html.contains("No invites yet."));
    assert!(html.contains("<label for=\"invite-role\">Role</label>"));

    let refused = owner
        .post(
            "/members/invites",
            &[("email", "new@example.com"), ("role", "developer")],
        )
        .await;
    assert_html(&refused, 403);
    let bad = owner
        .submit(
            "/members",
            "/members/invites",
            &[("email", "new@example.com"), ("role", "emperor")],
        )
        .await;
    assert_html(&bad, 422);
    let resp = owner
        .submit(
            "/members",
            "/members/invites",
            &[("email", "new@example.com"), ("role", "developer")],
        )
        .await;
    let html = assert_html(&resp, 200);
    let link = between(&html, "<code id=\"invite-link\">", "</code>").to_owned();
    assert!(
        link.starts_with("http://localhost:8080/invite?token=sfi-"),
        "{link}"
    );
    assert!(html.contains("new@example.com") && html.contains("pending"));
    let path = link.trim_start_matches("http://localhost:8080");
    let token = path.trim_start_matches("/invite?token=").to_owned();

    let mut invitee = Browser::new(&app);
    let landing = assert_html(&invitee.get(path).await, 200);
    assert!(landing.contains("new@example.com is invited to join"));
    assert!(landing.contains("as developer"));
    let form = assert_html(&invitee.get(&format!("/signup?invite={token}")).await, 200);
    assert!(
        form.contains("value=\"new@example.com\""),
        "email prefilled"
    );
    let csrf = csrf_of(&form);
    let resp = invitee
        .post(
            "/signup",
            &[
                ("csrf", &csrf),
                ("email", "new@example.com"),
                ("password", "password123"),
                ("invite_token", &token),
            ],
        )
        .await;
    assert_eq!(resp.status.as_u16(), 303, "{}", resp.body);
    let html = assert_html(&invitee.get("/members").await, 200);
    assert!(html.contains("<span id=\"role\">developer</span>"));
    assert!(html.contains("2 members"));
    // Used: the link no longer works.
    assert_html(&invitee.get(path).await, 404);
    let html = assert_html(&owner.get("/members").await, 200);
    assert!(html.contains("accepted"));
    assert_html(&owner.get("/invite?token=%3Cscript%3E").await, 422);
}

async fn playground_session_token(app: TestApp) {
    let app = app.with_model();
    let mut browser = Browser::new(&app);
    browser.signup("play@example.com").await;
    let html = assert_html(&browser.get("/playground").await, 200);
    assert!(html.contains("<label for=\"temperature\">Temperature</label>"));
    assert!(html.contains("<option value=\"smollm2-135m-instruct\">"));
    let token = between(&html, "data-token=\"", "\"").to_owned();
    let resp = app
        .post(
            "/v1/chat/completions",
            Some(&token),
            json!({"model": "smollm2-135m-instruct", "max_tokens": 4,
                   "messages": [{"role": "user", "content": "Hi"}]}),
        )
        .await;
    let body = resp.expect(200);
    assert!(body["usage"]["completion_tokens"].as_u64().unwrap() >= 1);
    // The token belongs to the console session: signing out ends it.
    let resp = browser.submit("/playground", "/signout", &[]).await;
    assert_eq!(resp.status.as_u16(), 303);
    app.get("/v1/models", Some(&token)).await.expect(401);
}

/// One finished request of `model` on `project`/`key`, today.
async fn record_usage(
    app: &TestApp,
    tenant: &str,
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
                tenant_id: tenant.to_owned(),
                project_id: Some(project.to_owned()),
                api_key_id: Some(key.to_owned()),
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

fn today() -> String {
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

    // CSV: the same rows, as an attachment.
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

    // Audit log: owners see it, filtered by action; developers neither see nor open it.
    let html = assert_html(&browser.get("/audit").await, 200);
    assert!(html.contains("<code>api_key.created</code>"));
    assert!(html.contains("<code>login.succeeded</code>"));
    let html = assert_html(&browser.get("/audit?type=api_key.created").await, 200);
    assert!(html.contains("<p id=\"audit-count\">1 entry</p>"), "{html}");
    assert!(html.contains(&format!("<code>{key}</code>")));
    assert_html(&browser.get("/audit?type=%3Cb%3E").await, 422);
    app.member_with_role(&owner, "dev@example.com", "developer")
        .await;
    let mut dev = Browser::new(&app);
    dev.signin("dev@example.com").await;
    let html = assert_html(&dev.get("/projects").await, 200);
    assert!(!html.contains("href=\"/audit\""));
    assert!(html.contains("href=\"/usage\"") && html.contains("href=\"/billing\""));
    assert_html(&dev.get("/audit").await, 403);
    // Members see the organization's usage too (their role reads usage).
    let html = assert_html(&dev.get("/usage").await, 200);
    assert!(html.contains("<dd id=\"total-requests\">2</dd>"));
}

async fn keys_with_expiry_and_limits(app: TestApp) {
    let owner = app.signup("lim@example.com").await;
    let project = app.default_project(&owner.access).await;
    let mut browser = Browser::new(&app);
    browser.signin("lim@example.com").await;
    let keys_url = format!("/projects/{project}/keys");
    let html = assert_html(&browser.get(&keys_url).await, 200);
    for label in [
        "<label for=\"key-expires\">",
        "<label for=\"key-rpm\">Requests per minute</label>",
        "<label for=\"key-tpm\">Tokens per minute</label>",
        "<label for=\"key-concurrency\">Requests at once</label>",
    ] {
        assert!(html.contains(label), "{label}");
    }
    let year = today()[..4].parse::<i32>().unwrap() + 1;
    let expires = format!("{year}-06-30");
    let created = browser
        .submit(
            &keys_url,
            &keys_url,
            &[
                ("name", "limited"),
                ("scopes", "inference"),
                ("expires", &expires),
                ("rpm", "60"),
                ("tpm", "1000"),
                ("concurrency", ""),
            ],
        )
        .await;
    let html = assert_html(&created, 200);
    assert!(html.contains("<td>rpm 60 · tpm 1000</td>"), "{html}");
    assert!(html.contains(&format!("<td>{expires} 23:59 UTC</td>")));
    let secret = between(&html, "<code id=\"new-key\">", "</code>").to_owned();
    let record = app
        .state
        .store
        .authenticate_api_key(&sha256_hex(&secret))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (
            record.limits.rpm,
            record.limits.tpm,
            record.limits.concurrency
        ),
        (Some(60), Some(1000), None)
    );
    assert!(record.expires_ms.is_some());
    for bad in [
        vec![("name", "x"), ("rpm", "0")],
        vec![("name", "x"), ("rpm", "many")],
        vec![("name", "x"), ("expires", "2001-01-01")],
        vec![("name", "x"), ("expires", "soon")],
    ] {
        let mut form = vec![("scopes", "inference")];
        form.extend(bad);
        assert_html(&browser.submit(&keys_url, &keys_url, &form).await, 422);
    }

    // The rate-limits page sets the project's limits and each key's.
    let limits_url = format!("/projects/{project}/limits");
    let html = assert_html(&browser.get(&limits_url).await, 200);
    assert!(html.contains("<p id=\"project-limits\">default</p>"));
    assert!(html.contains("<p class=\"limits\">rpm 60 · tpm 1000</p>"));
    let resp = browser
        .submit(
            &limits_url,
            &limits_url,
            &[("rpm", "100"), ("concurrency", "4")],
        )
        .await;
    assert_eq!(resp.status.as_u16(), 303, "{}", resp.body);
    let html = assert_html(&browser.get(&limits_url).await, 200);
    assert!(html.contains("<p id=\"project-limits\">rpm 100 · concurrent 4</p>"));
    let project_row = app
        .state
        .store
        .project(&owner.tenant_id, &project)
        .await
        .unwrap();
    assert_eq!(project_row.limits.rpm, Some(100));
    let key_limits = format!("/projects/{project}/keys/{}/limits", record.id);
    let resp = browser
        .submit(&limits_url, &key_limits, &[("tpm", "500")])
        .await;
    assert_eq!(resp.status.as_u16(), 303);
    let html = assert_html(&browser.get(&limits_url).await, 200);
    assert!(html.contains("<p class=\"limits\">tpm 500</p>"));
    assert_html(
        &browser
            .submit(&limits_url, &key_limits, &[("tpm", "-1")])
            .await,
        422,
    );
    assert_html(
        &browser
            .post(&limits_url, &[("csrf", "forged"), ("rpm", "1")])
            .await,
        403,
    );

    // Viewers see the limits but cannot change them, even by posting the forms.
    app.member_with_role(&owner, "viewer2@example.com", "viewer")
        .await;
    let mut viewer = Browser::new(&app);
    viewer.signin("viewer2@example.com").await;
    let html = assert_html(&viewer.get(&limits_url).await, 200);
    assert!(!html.contains("Save project limits") && !html.contains("Save limits of"));
    let html = assert_html(&viewer.get(&keys_url).await, 200);
    assert!(!html.contains("key-rpm"), "no key form for viewers");
    assert_html(
        &viewer
            .submit(&limits_url, &limits_url, &[("rpm", "1")])
            .await,
        403,
    );
    assert_html(
        &viewer
            .submit(&limits_url, &key_limits, &[("rpm", "1")])
            .await,
        403,
    );
    let resp = viewer
        .submit(
            &keys_url,
            &keys_url,
            &[("name", "v"), ("scopes", "inference"), ("rpm", "5")],
        )
        .await;
    assert_html(&resp, 403);
    let project_row = app
        .state
        .store
        .project(&owner.tenant_id, &project)
        .await
        .unwrap();
    assert_eq!(project_row.limits.rpm, Some(100), "unchanged");
}

async fn organization_switcher(app: TestApp) {
    let alice = app.signup("alice@example.com").await;
    let bob = app.signup("bob@example.com").await;
    let invite = app
        .post(
            "/v1/organization/invites",
            Some(&alice.access),
            json!({"email": "bob@example.com", "role": "developer"}),
        )
        .await
        .expect(201);
    app.post(
        "/v1/auth/login",
        None,
        json!({"email": "bob@example.com", "password": "password123",
               "invite_token": invite["token"]}),
    )
    .await
    .expect(200);

    let mut browser = Browser::new(&app);
    browser.signin("bob@example.com").await;
    let html = assert_html(&browser.get("/projects").await, 200);
    let switcher = between(&html, "id=\"switch-org\"", "</form>");
    assert!(switcher.contains("<label for=\"organization\">Organization</label>"));
    assert_eq!(switcher.matches("<option").count(), 2);
    assert!(switcher.contains(&format!("value=\"{}\"", alice.tenant_id)));
    assert!(switcher.contains(&format!("value=\"{}\"", bob.tenant_id)));
    let old_cookie = browser.cookies.get("sf_console").cloned().unwrap();

    // Into Alice's organization as a developer, and back.
    let resp = browser
        .submit(
            "/projects",
            "/organizations/switch",
            &[("organization", &alice.tenant_id)],
        )
        .await;
    assert_eq!(resp.status.as_u16(), 303, "{}", resp.body);
    assert_eq!(resp.header("location"), "/projects");
    let html = assert_html(&browser.get("/projects").await, 200);
    assert!(
        html.contains("<span id=\"role\">developer</span>"),
        "{html}"
    );
    assert!(between(&html, "id=\"switch-org\"", "</form>")
        .contains(&format!("<option value=\"{}\" selected>", alice.tenant_id)));
    // The previous session ended with the switch.
    let mut stale = Browser::new(&app);
    stale.cookies.insert("sf_console".into(), old_cookie);
    assert_eq!(stale.get("/projects").await.header("location"), "/signin");
    let resp = browser
        .submit(
            "/projects",
            "/organizations/switch",
            &[("organization", &bob.tenant_id)],
        )
        .await;
    assert_eq!(resp.status.as_u16(), 303);
    let html = assert_html(&browser.get("/projects").await, 200);
    assert!(html.contains("<span id=\"role\">owner</span>"));

    // Not into an organization Bob is not a member of, nor without the form's token.
    let carol = app.signup("carol@example.com").await;
    let resp = browser
        .submit(
            "/projects",
            "/organizations/switch",
            &[("organization", &carol.tenant_id)],
        )
        .await;
    assert_html(&resp, 404);
    let resp = browser
        .post(
            "/organizations/switch",
            &[("csrf", "x"), ("organization", &alice.tenant_id)],
        )
        .await;
    assert_html(&resp, 403);

    // One organization: no switcher.
    let mut single = Browser::new(&app);
    single.signin("carol@example.com").await;
    let html = assert_html(&single.get("/projects").await, 200);
    assert!(!html.contains("switch-org"));
}

async fn playground_snippets(app: TestApp) {
    let app = app.with_model();
    let mut browser = Browser::new(&app);
    browser.signup("snip@example.com").await;
    let html = assert_html(&browser.get("/playground").await, 200);
    for id in ["curl", "python", "typescript"] {
        assert!(
            html.contains(&format!("<pre id=\"{id}\" tabindex=\"0\">")),
            "{id}"
        );
        assert!(html.contains(&format!("data-copy=\"{id}\"")));
    }
    assert!(html.contains("<label for=\"top_p\">Top p</label>"));
    assert!(html.contains("<label for=\"system\">System message (optional)</label>"));
}

async fn members_change_role(app: TestApp) {
    let owner = app.signup("boss@example.com").await;
    let dev = app
        .member_with_role(&owner, "worker@example.com", "developer")
        .await;
    let mut browser = Browser::new(&app);
    browser.signin("boss@example.com").await;
    let html = assert_html(&browser.get("/members").await, 200);
    let select = format!("<select id=\"role-{}\" name=\"role\">", dev.user_id);
    assert!(html.contains(&select), "{html}");
    assert!(html.contains(&format!(
        "<label class=\"skip\" for=\"role-{}\">Role of worker@example.com</label>",
        dev.user_id
    )));
    assert!(
        !html.contains(&format!("role-{}", owner.user_id)),
        "not one's own role"
    );
    let action = format!("/members/{}/role", dev.user_id);
    let resp = browser
        .submit("/members", &action, &[("role", "viewer")])
        .await;
    assert_eq!(resp.status.as_u16(), 303, "{}", resp.body);
    let member = app
        .get(
            &format!("/v1/organization/users/{}", dev.user_id),
            Some(&owner.access),
        )
        .await
        .expect(200);
    assert_eq!(member["role"], "viewer");
    assert_html(
        &browser
            .submit("/members", &action, &[("role", "emperor")])
            .await,
        422,
    );
    assert_html(
        &browser
            .post(&action, &[("csrf", "x"), ("role", "admin")])
            .await,
        403,
    );

    // The demoted member cannot promote themselves by posting the form.
    let mut worker = Browser::new(&app);
    worker.signin("worker@example.com").await;
    let html = assert_html(&worker.get("/members").await, 200);
    assert!(!html.contains("<select id=\"role-"));
    let resp = worker
        .submit("/members", &action, &[("role", "owner")])
        .await;
    assert_html(&resp, 403);
    let member = app
        .get(
            &format!("/v1/organization/users/{}", dev.user_id),
            Some(&owner.access),
        )
        .await
        .expect(200);
    assert_eq!(member["role"], "viewer");
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

/// Owners and admins remove members (after a confirmation) and withdraw invites; other roles
/// cannot, from the page or by posting the form; the last owner stays.
async fn members_remove_and_withdraw(app: TestApp) {
    let owner = app.signup("founder@example.com").await;
    let admin = app
        .member_with_role(&owner, "deputy@example.com", "admin")
        .await;
    let dev = app
        .member_with_role(&owner, "coder@example.com", "developer")
        .await;
    app.member_with_role(&owner, "watcher@example.com", "viewer")
        .await;
    let invite = app
        .post(
            "/v1/organization/invites",
            Some(&owner.access),
            json!({"email": "later@example.com", "role": "developer"}),
        )
        .await
        .expect(201);
    let invite_id = invite["id"].as_str().unwrap().to_owned();
    let invite_token = invite["token"].as_str().unwrap().to_owned();
    let remove_dev = format!("/members/{}/remove", dev.user_id);
    let withdraw = format!("/members/invites/{invite_id}/withdraw");

    // A viewer and a developer see no actions and are refused when posting.
    for (email, role) in [
        ("watcher@example.com", "viewer"),
        ("coder@example.com", "developer"),
    ] {
        let mut browser = Browser::new(&app);
        browser.signin(email).await;
        let html = assert_html(&browser.get("/members").await, 200);
        assert!(html.contains(&format!("<span id=\"role\">{role}</span>")));
        assert!(!html.contains("/remove\""), "{html}");
        assert!(!html.contains("Withdraw"));
        assert_html(&browser.get(&remove_dev).await, 403);
        assert_html(&browser.submit("/members", &remove_dev, &[]).await, 403);
        assert_html(&browser.submit("/members", &withdraw, &[]).await, 403);
    }
    app.get(
        &format!("/v1/organization/users/{}", dev.user_id),
        Some(&owner.access),
    )
    .await
    .expect(200);
    app.get(
        &format!("/v1/organization/invites/{invite_id}"),
        Some(&owner.access),
    )
    .await
    .expect(200);

    // An admin cannot remove an owner.
    let mut deputy = Browser::new(&app);
    deputy.signin("deputy@example.com").await;
    let html = assert_html(&deputy.get("/members").await, 200);
    assert!(html.contains(&format!("href=\"{remove_dev}\"")));
    assert!(!html.contains(&format!("href=\"/members/{}/remove\"", owner.user_id)));
    let remove_owner = format!("/members/{}/remove", owner.user_id);
    let html = assert_html(&deputy.submit("/members", &remove_owner, &[]).await, 403);
    assert!(html.contains("Only an owner"), "{html}");

    // The owner removes the developer through the confirmation page.
    let mut chief = Browser::new(&app);
    chief.signin("founder@example.com").await;
    let mut coder = Browser::new(&app);
    coder.signin("coder@example.com").await;
    let html = assert_html(&chief.get("/members").await, 200);
    assert!(html.contains("4 members"));
    assert!(
        !html.contains(&format!("href=\"{remove_owner}\"")),
        "the only owner cannot leave"
    );
    let confirm = assert_html(&chief.get(&remove_dev).await, 200);
    assert!(
        confirm.contains("Remove <strong>coder@example.com</strong> (developer)"),
        "{confirm}"
    );
    assert!(confirm.contains(&format!("<form method=\"post\" action=\"{remove_dev}\">")));
    assert_html(&chief.post(&remove_dev, &[("csrf", "x")]).await, 403);
    let resp = chief.submit(&remove_dev, &remove_dev, &[]).await;
    assert_eq!(resp.status.as_u16(), 303, "{}", resp.body);
    assert_eq!(resp.header("location"), "/members");
    app.get(
        &format!("/v1/organization/users/{}", dev.user_id),
        Some(&owner.access),
    )
    .await
    .expect_error(404, None);
    let html = assert_html(&chief.get("/members").await, 200);
    assert!(html.contains("3 members"), "{html}");
    assert!(!html.contains(&format!("href=\"{remove_dev}\"")));
    // The removed member's console session ends at once.
    assert_eq!(coder.get("/members").await.header("location"), "/signin");
    assert_html(&chief.get(&remove_dev).await, 404);

    // The owner withdraws the invite: its link stops working.
    assert!(html.contains(&format!("action=\"{withdraw}\"")));
    assert_html(&chief.post(&withdraw, &[("csrf", "x")]).await, 403);
    let resp = chief.submit("/members", &withdraw, &[]).await;
    assert_eq!(resp.status.as_u16(), 303, "{}", resp.body);
    app.get(
        &format!("/v1/organization/invites/{invite_id}"),
        Some(&owner.access),
    )
    .await
    .expect_error(404, None);
    assert_html(
        &chief.get(&format!("/invite?token={invite_token}")).await,
        404,
    );
    assert_html(&chief.submit("/members", &withdraw, &[]).await, 404);

    // Both actions are in the audit log.
    for action in ["user.deleted", "invite.deleted"] {
        let html = assert_html(&chief.get(&format!("/audit?type={action}")).await, 200);
        assert!(
            html.contains("<p id=\"audit-count\">1 entry</p>"),
            "{action}: {html}"
        );
    }

    // The last owner cannot remove themselves, even by posting the form.
    let html = assert_html(&chief.submit("/members", &remove_owner, &[]).await, 409);
    assert!(html.contains("at least one owner"), "{html}");
    app.get(
        &format!("/v1/organization/users/{}", owner.user_id),
        Some(&owner.access),
    )
    .await
    .expect(200);

    // With a second owner, the first may leave; then the second is the last.
    app.post(
        &format!("/v1/organization/users/{}", admin.user_id),
        Some(&owner.access),
        json!({"role": "owner"}),
    )
    .await
    .expect(200);
    let html = assert_html(&chief.get("/members").await, 200);
    assert!(html.contains(&format!("href=\"{remove_owner}\"")), "{html}");
    let confirm = assert_html(&chief.get(&remove_owner).await, 200);
    assert!(confirm.contains("Leave the organization"));
    let resp = chief.submit(&remove_owner, &remove_owner, &[]).await;
    assert_eq!(resp.status.as_u16(), 303, "{}", resp.body);
    assert_eq!(resp.header("location"), "/signin");
    assert_eq!(chief.get("/members").await.header("location"), "/signin");
    let mut deputy = Browser::new(&app);
    deputy.signin("deputy@example.com").await;
    let remove_self = format!("/members/{}/remove", admin.user_id);
    let html = assert_html(&deputy.get("/members").await, 200);
    assert!(html.contains("2 members"), "{html}");
    assert!(!html.contains(&format!("href=\"{remove_self}\"")));
    assert_html(&deputy.submit("/members", &remove_self, &[]).await, 409);
}

async fn static_assets(app: TestApp) {
    let resp = app.get("/assets/console.js", None).await;
    assert_eq!(resp.status.as_u16(), 200);
    assert!(resp.header("content-type").starts_with("text/javascript"));
    assert!(text(resp.body).contains("/v1/chat/completions"));
    let resp = app.get("/assets/console.css", None).await;
    assert!(resp.header("content-type").starts_with("text/css"));
    assert!(text(resp.body).contains(":focus-visible"));
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
    sign_up_in_out,
    projects_and_keys,
    viewer_cannot_manage_keys,
    members_invite_and_accept,
    playground_session_token,
    static_assets,
    usage_billing_and_audit,
    keys_with_expiry_and_limits,
    organization_switcher,
    playground_snippets,
    members_change_role,
    billing_invoices,
    billing_ledger_pages,
    members_remove_and_withdraw,
    billing_top_up_form,
);
