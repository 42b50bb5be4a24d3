//! The web console at `/`: pages, forms, cookie sessions, CSRF and role checks, in-process on
//! both backends. (The real-browser test is `console_browser`.)

use gateway::store::ProjectId;
use std::collections::HashMap;

use actix_web::http::Method;
use actix_web::test::TestRequest;
use serde_json::{json, Value};

use crate::console_billing::today;
use crate::support::{Resp, Session, TestApp};
use gateway::auth::secret::sha256_hex;

/// A minimal browser: a cookie jar over the in-process app.
pub(crate) struct Browser<'a> {
    app: &'a TestApp,
    cookies: HashMap<String, String>,
}

impl<'a> Browser<'a> {
    pub(crate) fn new(app: &'a TestApp) -> Self {
        Browser {
            app,
            cookies: HashMap::new(),
        }
    }

    pub(crate) async fn send(&mut self, req: TestRequest) -> Resp {
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

    pub(crate) async fn get(&mut self, path: &str) -> Resp {
        self.send(TestRequest::default().method(Method::GET).uri(path))
            .await
    }

    pub(crate) async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Resp {
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
    pub(crate) async fn submit(&mut self, page: &str, action: &str, form: &[(&str, &str)]) -> Resp {
        let html = text(self.get(page).await.expect(200));
        let csrf = csrf_of(&html);
        let mut fields = vec![("csrf", csrf.as_str())];
        fields.extend_from_slice(form);
        self.post(action, &fields).await
    }

    pub(crate) async fn signup(&mut self, email: &str) {
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

    pub(crate) async fn signin(&mut self, email: &str) {
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

pub(crate) fn text(body: Value) -> String {
    body.as_str().expect("an HTML body").to_owned()
}

pub(crate) fn csrf_of(html: &str) -> String {
    let marker = "name=\"csrf\" value=\"";
    let start = html.find(marker).expect("the page has a CSRF field") + marker.len();
    html[start..start + html[start..].find('"').unwrap()].to_owned()
}

/// The text between `start` and the next `end` after it.
pub(crate) fn between<'h>(html: &'h str, start: &str, end: &str) -> &'h str {
    let from = html
        .find(start)
        .unwrap_or_else(|| panic!("{start} in {html}"))
        + start.len();
    &html[from..from + html[from..].find(end).unwrap()]
}

#[track_caller]
pub(crate) fn assert_html(resp: &Resp, status: u16) -> String {
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

    sign_up_through_the_form(&mut browser).await;

    let page = browser.get("/projects").await;
    let html = assert_html(&page, 200);
    assert!(html.contains("ada@example.com"));
    assert!(html.contains("Analytical Engines"));
    assert!(html.contains("<span id=\"role\">owner</span>"));
    assert!(html.contains("1 project"));
    assert!(html.contains("Default project"));
    assert!(html.contains("aria-current=\"page\""));

    sign_out_kills_the_session(&mut browser).await;

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

/// Sign-up: the form's CSRF cookie is required and must match; a short password shows the
/// form again with the email kept; then the session cookie's attributes.
async fn sign_up_through_the_form(browser: &mut Browser<'_>) {
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
}

/// Sign out needs the session's CSRF token; afterwards the old cookie is dead.
async fn sign_out_kills_the_session(browser: &mut Browser<'_>) {
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
        .project(&owner.tenant_id, &ProjectId::from(project.as_str()))
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

    // The same page sets the browser origins (CORS), one per line, checked as the API does.
    let origins_url = format!("/projects/{project}/origins");
    assert!(html.contains("No origin allowed."));
    let resp = browser
        .submit(
            &limits_url,
            &origins_url,
            &[(
                "allowed_origins",
                "https://Demo.example/\r\n\r\nhttp://localhost:5173",
            )],
        )
        .await;
    assert_eq!(resp.status.as_u16(), 303, "{}", resp.body);
    let html = assert_html(&browser.get(&limits_url).await, 200);
    assert!(
        html.contains(
            "<li><code>https://demo.example</code></li><li><code>http://localhost:5173</code></li>"
        ),
        "{html}"
    );
    assert_html(
        &browser
            .submit(
                &limits_url,
                &origins_url,
                &[("allowed_origins", "demo.example")],
            )
            .await,
        422,
    );

    viewers_cannot_change_limits(&app, &owner, &project, &key_limits).await;
}

/// Viewers see the limits but cannot change them, even by posting the forms.
async fn viewers_cannot_change_limits(
    app: &TestApp,
    owner: &Session,
    project: &str,
    key_limits: &str,
) {
    let limits_url = format!("/projects/{project}/limits");
    let keys_url = format!("/projects/{project}/keys");
    app.member_with_role(owner, "viewer2@example.com", "viewer")
        .await;
    let mut viewer = Browser::new(app);
    viewer.signin("viewer2@example.com").await;
    let html = assert_html(&viewer.get(&limits_url).await, 200);
    assert!(!html.contains("Save project limits") && !html.contains("Save limits of"));
    assert!(!html.contains("Save origins"));
    assert_html(
        &viewer
            .submit(
                &limits_url,
                &format!("/projects/{project}/origins"),
                &[("allowed_origins", "https://x.example")],
            )
            .await,
        403,
    );
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
            .submit(&limits_url, key_limits, &[("rpm", "1")])
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
        .project(&owner.tenant_id, &ProjectId::from(project))
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

async fn static_assets(app: TestApp) {
    let resp = app.get("/assets/console.js", None).await;
    assert_eq!(resp.status.as_u16(), 200);
    assert!(resp.header("content-type").starts_with("text/javascript"));
    assert!(text(resp.body).contains("/v1/chat/completions"));
    let resp = app.get("/assets/console.css", None).await;
    assert!(resp.header("content-type").starts_with("text/css"));
    assert!(text(resp.body).contains(":focus-visible"));
}

on_both_backends!(
    sign_up_in_out,
    projects_and_keys,
    viewer_cannot_manage_keys,
    playground_session_token,
    static_assets,
    keys_with_expiry_and_limits,
    organization_switcher,
    playground_snippets,
    deployments_page,
    operator_approvals,
);

/// The Deployments page: an owner requests one through the form, sees it listed with its
/// state and replicas, scales it and deletes it; a viewer sees the list but no forms, and its
/// posts are refused.
async fn deployments_page(app: TestApp) {
    let owner = app.signup("owner@example.com").await;
    let mut browser = Browser::new(&app);
    browser.signin("owner@example.com").await;
    let html = assert_html(&browser.get("/deployments").await, 200);
    assert!(html.contains("No deployments yet."), "{html}");
    assert!(html.contains("id=\"request-deployment\""));
    assert!(html.contains("<option value=\"smollm2-135m-instruct\">"));
    let resp = browser
        .submit(
            "/deployments",
            "/deployments",
            &[
                ("name", "support-bot"),
                ("model", "smollm2-135m-instruct"),
                ("min", "2"),
                ("max", "3"),
            ],
        )
        .await;
    assert_eq!(resp.status.as_u16(), 303, "{}", resp.body);
    assert_eq!(resp.header("location"), "/deployments");
    let html = assert_html(&browser.get("/deployments").await, 200);
    let row = between(&html, "<tbody>", "</tbody>");
    assert!(row.contains("<code>support-bot</code>"), "{row}");
    assert!(row.contains("requested"), "{row}");
    assert!(row.contains("2–3"), "{row}");
    let listed = app
        .get("/v1/organization/deployments", Some(&owner.access))
        .await
        .expect(200);
    let id = listed["data"][0]["id"].as_str().unwrap().to_owned();
    // A name the form refuses comes back as the page's error, not a 500.
    let bad = browser
        .submit(
            "/deployments",
            "/deployments",
            &[
                ("name", "smollm2-135m-instruct"),
                ("model", "smollm2-135m-instruct"),
                ("min", "1"),
                ("max", "1"),
            ],
        )
        .await;
    assert_eq!(bad.status.as_u16(), 422, "{}", bad.body);

    let scaled = browser
        .submit(
            "/deployments",
            &format!("/deployments/{id}/replicas"),
            &[("min", "3"), ("max", "3")],
        )
        .await;
    assert_eq!(scaled.status.as_u16(), 303, "{}", scaled.body);
    let d = app
        .get(
            &format!("/v1/organization/deployments/{id}"),
            Some(&owner.access),
        )
        .await
        .expect(200);
    assert_eq!(d["replicas"], json!({"min": 3, "max": 3}));
    // Stopping one that waits for approval is a conflict naming its state.
    let refused = browser
        .submit("/deployments", &format!("/deployments/{id}/stop"), &[])
        .await;
    assert_eq!(refused.status.as_u16(), 409, "{}", refused.body);

    app.member_with_role(&owner, "viewer@example.com", "viewer")
        .await;
    let mut viewer = Browser::new(&app);
    viewer.signin("viewer@example.com").await;
    let html = assert_html(&viewer.get("/deployments").await, 200);
    assert!(html.contains("<code>support-bot</code>"));
    assert!(!html.contains("id=\"request-deployment\""));
    assert!(!html.contains("/stop\""));
    let resp = viewer
        .submit("/deployments", &format!("/deployments/{id}/delete"), &[])
        .await;
    assert_eq!(resp.status.as_u16(), 403, "{}", resp.body);

    let deleted = browser
        .submit("/deployments", &format!("/deployments/{id}/delete"), &[])
        .await;
    assert_eq!(deleted.status.as_u16(), 303, "{}", deleted.body);
    let d = app
        .get(
            &format!("/v1/organization/deployments/{id}"),
            Some(&owner.access),
        )
        .await
        .expect(200);
    assert_eq!(d["state"], "deleting");
}

/// The platform operator's pages: signing in with an operator token (a wrong one is refused;
/// the cookie holds a signature, never the token), every organization's requested deployments
/// listed, one rejected with a reason and one approved (each audited in the organization's
/// log); a forged cookie, a missing form token and an organization's own session are refused.
async fn operator_approvals(app: TestApp) {
    const TOKEN: &str = "operator-token-0123456789abcdefghij";
    let app = app.configure(|c| {
        c.billing
            .operator_tokens
            .insert("ops".to_owned(), TOKEN.to_owned());
    });
    let owner = app.signup("owner@example.com").await;
    let other = app.signup("other@example.com").await;
    let request = |access: String, name: &'static str| {
        let app = &app;
        async move {
            let d = app
                .post(
                    "/v1/organization/deployments",
                    Some(&access),
                    json!({"name": name, "model": "smollm2-135m-instruct"}),
                )
                .await
                .expect(201);
            d["id"].as_str().unwrap().to_owned()
        }
    };
    let alpha = request(owner.access.clone(), "alpha").await;
    let beta = request(other.access.clone(), "beta").await;

    // An organization's console session is not an operator's.
    let mut member = Browser::new(&app);
    member.signin("owner@example.com").await;
    let resp = member.get("/operator/deployments").await;
    assert_eq!(resp.status.as_u16(), 303);
    assert_eq!(resp.header("location"), "/operator/signin");

    let mut ops = Browser::new(&app);
    let html = assert_html(&ops.get("/operator/signin").await, 200);
    assert!(html.contains("id=\"operator-signin\""), "{html}");
    let wrong = ops
        .submit(
            "/operator/signin",
            "/operator/signin",
            &[("token", "operator-token-not-this-one-0123456")],
        )
        .await;
    let html = assert_html(&wrong, 401);
    assert!(html.contains("That is not an operator token."), "{html}");
    assert!(!ops.cookies.contains_key("sf_operator"));
    let signed_in = ops
        .submit("/operator/signin", "/operator/signin", &[("token", TOKEN)])
        .await;
    assert_eq!(signed_in.status.as_u16(), 303, "{}", signed_in.body);
    assert_eq!(signed_in.header("location"), "/operator/deployments");
    let cookie = ops.cookies["sf_operator"].clone();
    assert!(!cookie.contains(TOKEN) && !cookie.contains(&sha256_hex(TOKEN)));

    let html = assert_html(&ops.get("/operator/deployments").await, 200);
    assert!(
        html.contains("<strong id=\"operator\">ops</strong>"),
        "{html}"
    );
    let rows = between(&html, "<tbody>", "</tbody>");
    for (id, name) in [(&alpha, "alpha"), (&beta, "beta")] {
        assert!(
            rows.contains(&format!("data-deployment=\"{id}\"")),
            "{rows}"
        );
        assert!(rows.contains(&format!("<code>{name}</code>")), "{rows}");
    }
    assert!(rows.contains(&owner.tenant_id.to_string()), "{rows}");

    // Without the form's token, nothing happens.
    let refused = ops
        .post(&format!("/operator/deployments/{alpha}/approve"), &[])
        .await;
    assert_eq!(refused.status.as_u16(), 403, "{}", refused.body);
    // A rejection needs a reason.
    let no_reason = ops
        .submit(
            "/operator/deployments",
            &format!("/operator/deployments/{alpha}/reject"),
            &[("reason", " ")],
        )
        .await;
    assert_eq!(no_reason.status.as_u16(), 422, "{}", no_reason.body);
    let rejected = ops
        .submit(
            "/operator/deployments",
            &format!("/operator/deployments/{alpha}/reject"),
            &[("reason", "No capacity this week.")],
        )
        .await;
    assert_eq!(rejected.status.as_u16(), 303, "{}", rejected.body);
    let approved = ops
        .submit(
            "/operator/deployments",
            &format!("/operator/deployments/{beta}/approve"),
            &[],
        )
        .await;
    assert_eq!(approved.status.as_u16(), 303, "{}", approved.body);
    let d = app
        .get(
            &format!("/v1/organization/deployments/{alpha}"),
            Some(&owner.access),
        )
        .await
        .expect(200);
    assert_eq!(d["state"], "rejected");
    assert_eq!(d["status_message"], "No capacity this week.");
    let d = app
        .get(
            &format!("/v1/organization/deployments/{beta}"),
            Some(&other.access),
        )
        .await
        .expect(200);
    assert_eq!(d["state"], "provisioning");
    // Deciding twice is a conflict naming the state.
    let twice = ops
        .submit(
            "/operator/deployments",
            &format!("/operator/deployments/{beta}/approve"),
            &[],
        )
        .await;
    assert_eq!(twice.status.as_u16(), 409, "{}", twice.body);
    let html = assert_html(&ops.get("/operator/deployments").await, 200);
    assert!(html.contains("No deployment is requested."), "{html}");
    let html = assert_html(
        &ops.get("/operator/deployments?state=provisioning").await,
        200,
    );
    assert!(
        html.contains(&format!("data-deployment=\"{beta}\"")),
        "{html}"
    );
    let logs = app
        .get("/v1/organization/audit_logs", Some(&other.access))
        .await
        .expect(200);
    assert!(
        logs["data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["type"] == "deployment.approved"),
        "{logs}"
    );

    // A cookie naming another operator, or with its signature altered, signs nobody in.
    let (_, rest) = cookie.split_once('.').unwrap();
    for forged in [
        format!("{}.{rest}", gateway::auth::secret::hex(b"root")),
        format!(
            "{}{}",
            &cookie[..cookie.len() - 1],
            if cookie.ends_with('0') { '1' } else { '0' }
        ),
    ] {
        let mut forger = Browser::new(&app);
        forger.cookies.insert("sf_operator".to_owned(), forged);
        let resp = forger.get("/operator/deployments").await;
        assert_eq!(resp.status.as_u16(), 303, "{}", resp.body);
    }

    let out = ops
        .submit("/operator/deployments", "/operator/signout", &[])
        .await;
    assert_eq!(out.status.as_u16(), 303, "{}", out.body);
    assert!(!ops.cookies.contains_key("sf_operator"));
    assert_eq!(ops.get("/operator/deployments").await.status.as_u16(), 303);
}
