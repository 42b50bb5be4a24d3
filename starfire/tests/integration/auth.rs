//! `/v1/auth/*` and `/v1/me`: signup, login, refresh rotation with reuse detection, logout.

use actix_web::http::Method;
use actix_web::test::TestRequest;
use serde_json::json;

use crate::support::{session_of, TestApp};

on_both_backends!(
    signup_creates_an_owned_organization_and_a_session,
    signup_rejects_taken_emails_and_bad_input,
    login_checks_the_password,
    refresh_rotates_and_reuse_revokes_the_family,
    logout_ends_the_session,
    me_needs_a_console_session,
    login_can_choose_the_organization,
    passwords_are_stored_as_argon2_hashes,
    repeated_wrong_passwords_get_429,
    concurrent_refreshes_with_one_token_let_one_win_and_revoke_the_family,
    an_expired_refresh_token_is_refused,
);

async fn signup_creates_an_owned_organization_and_a_session(app: TestApp) {
    let body = app
        .post(
            "/v1/auth/signup",
            None,
            json!({"email": "Ada@Example.com", "password": "password123", "name": "Ada",
                   "organization_name": "Analytical Engines"}),
        )
        .await
        .expect(201);
    assert_eq!(body["object"], "auth.session");
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 900);
    assert_eq!(body["user"]["email"], "ada@example.com");
    assert_eq!(body["organization"]["name"], "Analytical Engines");
    assert_eq!(body["organization"]["role"], "owner");
    assert_eq!(body["organization"]["plan"], "free");
    assert!(body["refresh_token"].as_str().unwrap().starts_with("sfr-"));
    let s = session_of(&body);
    let me = app.get("/v1/me", Some(&s.access)).await.expect(200);
    assert_eq!(me["user"]["id"], s.user_id);
    assert_eq!(me["organization"]["id"], s.tenant_id.as_str());
    let projects = app
        .get("/v1/organization/projects", Some(&s.access))
        .await
        .expect(200);
    assert_eq!(projects["data"][0]["name"], "Default project");
}

async fn signup_rejects_taken_emails_and_bad_input(app: TestApp) {
    app.signup("ada@example.com").await;
    let err = app
        .post(
            "/v1/auth/signup",
            None,
            json!({"email": "ADA@example.com", "password": "password123"}),
        )
        .await
        .expect_error(409, None);
    assert_eq!(err["type"], "conflict_error");
    app.post(
        "/v1/auth/signup",
        None,
        json!({"email": "not-an-email", "password": "password123"}),
    )
    .await
    .expect_error(422, Some("email"));
    app.post(
        "/v1/auth/signup",
        None,
        json!({"email": "b@example.com", "password": "short"}),
    )
    .await
    .expect_error(422, Some("password"));
    app.post("/v1/auth/signup", None, json!({"email": "b@example.com"}))
        .await
        .expect_error(400, Some("password"));
    app.post(
        "/v1/auth/signup",
        None,
        json!({"email": "b@example.com", "password": "password123", "invite_token": "sfi-nope"}),
    )
    .await
    .expect_error(422, Some("invite_token"));
    // Nothing was created by the refused invite signup.
    app.post(
        "/v1/auth/signup",
        None,
        json!({"email": "b@example.com", "password": "password123"}),
    )
    .await
    .expect(201);
}

async fn login_checks_the_password(app: TestApp) {
    let s = app.signup("ada@example.com").await;
    let ok = app
        .post(
            "/v1/auth/login",
            None,
            json!({"email": "ada@example.com", "password": "password123"}),
        )
        .await
        .expect(200);
    assert_eq!(ok["organization"]["id"], s.tenant_id.as_str());
    let wrong = app
        .post(
            "/v1/auth/login",
            None,
            json!({"email": "ada@example.com", "password": "password124"}),
        )
        .await
        .expect_error(401, None);
    let unknown = app
        .post(
            "/v1/auth/login",
            None,
            json!({"email": "eve@example.com", "password": "password123"}),
        )
        .await
        .expect_error(401, None);
    // The same answer for a wrong password and an unknown email.
    assert_eq!(wrong["message"], unknown["message"]);
}

async fn refresh_rotates_and_reuse_revokes_the_family(app: TestApp) {
    let s = app.signup("ada@example.com").await;
    let first = app
        .post(
            "/v1/auth/refresh",
            None,
            json!({"refresh_token": s.refresh}),
        )
        .await
        .expect(200);
    let second = session_of(&first);
    assert_ne!(second.refresh, s.refresh);
    app.get("/v1/me", Some(&second.access)).await.expect(200);

    // The first token again: reuse. The family is revoked, including the newest tokens.
    app.post(
        "/v1/auth/refresh",
        None,
        json!({"refresh_token": s.refresh}),
    )
    .await
    .expect_error(401, None);
    app.post(
        "/v1/auth/refresh",
        None,
        json!({"refresh_token": second.refresh}),
    )
    .await
    .expect_error(401, None);
    app.get("/v1/me", Some(&second.access))
        .await
        .expect_error(401, None);
    app.get("/v1/me", Some(&s.access))
        .await
        .expect_error(401, None);

    // The reuse is in the audit log; another login still works.
    let again = app
        .post(
            "/v1/auth/login",
            None,
            json!({"email": "ada@example.com", "password": "password123"}),
        )
        .await
        .expect(200);
    let again = session_of(&again);
    let logs = app
        .get(
            "/v1/organization/audit_logs?type=session.reuse_detected",
            Some(&again.access),
        )
        .await
        .expect(200);
    assert_eq!(logs["data"].as_array().unwrap().len(), 1);

    app.post(
        "/v1/auth/refresh",
        None,
        json!({"refresh_token": "sfr-unknown"}),
    )
    .await
    .expect_error(401, None);
    app.post("/v1/auth/refresh", None, json!({}))
        .await
        .expect_error(400, Some("refresh_token"));
}

async fn logout_ends_the_session(app: TestApp) {
    let s = app.signup("ada@example.com").await;
    let resp = app
        .send(
            actix_web::http::Method::POST,
            "/v1/auth/logout",
            Some(&s.access),
            None,
        )
        .await;
    assert_eq!(resp.status.as_u16(), 204);
    app.get("/v1/me", Some(&s.access))
        .await
        .expect_error(401, None);
    app.post(
        "/v1/auth/refresh",
        None,
        json!({"refresh_token": s.refresh}),
    )
    .await
    .expect_error(401, None);
    app.send(actix_web::http::Method::POST, "/v1/auth/logout", None, None)
        .await
        .expect_error(401, None);
}

async fn me_needs_a_console_session(app: TestApp) {
    let s = app.signup("ada@example.com").await;
    app.get("/v1/me", None).await.expect_error(401, None);
    app.get("/v1/me", Some("eyJhbGciOiJIUzI1NiJ9.e30.forged"))
        .await
        .expect_error(401, None);
    let (_, admin) = app.create_admin_key(&s.access).await;
    app.get("/v1/me", Some(&admin))
        .await
        .expect_error(403, None);
    app.send(
        actix_web::http::Method::POST,
        "/v1/auth/logout",
        Some(&admin),
        None,
    )
    .await
    .expect_error(403, None);
    // A token signed with another secret is refused.
    let forged = gateway::auth::session::SessionTokens::new(&"x".repeat(40), 60, 60)
        .issue_access(
            &s.user_id,
            &s.tenant_id,
            "sess_x",
            gateway::store::now_ms() as u64 / 1000,
        )
        .unwrap();
    app.get("/v1/me", Some(&forged))
        .await
        .expect_error(401, None);
}

async fn login_can_choose_the_organization(app: TestApp) {
    let ada = app.signup("ada@example.com").await;
    let bob = app.signup("bob@example.com").await;
    let invite = app
        .post(
            "/v1/organization/invites",
            Some(&bob.access),
            json!({"email": "ada@example.com", "role": "developer"}),
        )
        .await
        .expect(201);
    // Accepting the invite while logging in lands in the inviting organization.
    let joined = app
        .post(
            "/v1/auth/login",
            None,
            json!({"email": "ada@example.com", "password": "password123", "invite_token": invite["token"]}),
        )
        .await
        .expect(200);
    assert_eq!(joined["organization"]["id"], bob.tenant_id.as_str());
    assert_eq!(joined["organization"]["role"], "developer");
    let me = app
        .get("/v1/me", Some(joined["access_token"].as_str().unwrap()))
        .await
        .expect(200);
    assert_eq!(me["organizations"].as_array().unwrap().len(), 2);
    let own = app
        .post(
            "/v1/auth/login",
            None,
            json!({"email": "ada@example.com", "password": "password123", "organization_id": ada.tenant_id}),
        )
        .await
        .expect(200);
    assert_eq!(own["organization"]["role"], "owner");
    app.post(
        "/v1/auth/login",
        None,
        json!({"email": "bob@example.com", "password": "password123", "organization_id": ada.tenant_id}),
    )
    .await
    .expect_error(404, None);
}

async fn passwords_are_stored_as_argon2_hashes(app: TestApp) {
    app.signup("ada@example.com").await;
    let hash: String = sqlx::query_scalar("SELECT password_hash FROM users")
        .fetch_one(app.state.store.pool())
        .await
        .unwrap();
    assert!(hash.starts_with("$argon2id$"));
    assert!(!hash.contains("password123"));
}

/// The lock-out, measured: 10 wrong passwords from one address lock that address out of that
/// account (even with the right password, with `Retry-After`), while the owner signing in from
/// another address gets in and other accounts are unaffected; an address guessing across
/// 100 accounts is stopped for every account.
async fn repeated_wrong_passwords_get_429(app: TestApp) {
    app.signup("ada@example.com").await;
    app.signup("bob@example.com").await;
    let attempt = |email: String, password: &'static str, from: &'static str| {
        let app = &app;
        async move {
            app.call(
                TestRequest::default()
                    .method(Method::POST)
                    .uri("/v1/auth/login")
                    .peer_addr(from.parse().unwrap())
                    .set_json(json!({"email": email, "password": password})),
            )
            .await
        }
    };
    const ATTACKER: &str = "203.0.113.9:5000";
    const OWNER: &str = "198.51.100.7:6000";
    let ada = || "ada@example.com".to_owned();
    for _ in 0..gateway::auth::login_throttle::MAX_FAILURES {
        attempt(ada(), "wrong-password", ATTACKER)
            .await
            .expect_error(401, None);
    }
    // Locked out: even the right password waits, and the response says how long.
    let resp = attempt(ada(), "password123", ATTACKER).await;
    let retry_after: u64 = resp.header("retry-after").parse().unwrap();
    assert!(retry_after > 0);
    let err = resp.expect_error(429, None);
    assert_eq!(err["type"], "rate_limit_error");
    // The owner, from their own address, is not locked out; nor are other accounts.
    attempt(ada(), "password123", OWNER).await.expect(200);
    attempt("bob@example.com".to_owned(), "password123", ATTACKER)
        .await
        .expect(200);
    app.post(
        "/v1/auth/login",
        None,
        json!({"email": "bob@", "password": "password123"}),
    )
    .await
    .expect_error(422, Some("email"));

    // Credential stuffing: one guess at each of many accounts from one address.
    const STUFFER: &str = "192.0.2.44:7000";
    for i in 0..gateway::auth::login_throttle::MAX_ADDRESS_FAILURES {
        attempt(format!("user{i}@example.com"), "password123", STUFFER)
            .await
            .expect_error(401, None);
    }
    attempt("bob@example.com".to_owned(), "password123", STUFFER)
        .await
        .expect_error(429, None);
    attempt("bob@example.com".to_owned(), "password123", OWNER)
        .await
        .expect(200);
}

/// Two refreshes racing with the same token: one may win the rotation, but the other is a
/// reuse, so the family ends revoked and the winner's new token is refused too.
async fn concurrent_refreshes_with_one_token_let_one_win_and_revoke_the_family(app: TestApp) {
    let s = app.signup("ada@example.com").await;
    let body = json!({"refresh_token": s.refresh});
    let (a, b) = tokio::join!(
        app.post("/v1/auth/refresh", None, body.clone()),
        app.post("/v1/auth/refresh", None, body.clone())
    );
    let statuses = [a.status.as_u16(), b.status.as_u16()];
    assert!(statuses.contains(&401), "{statuses:?}");
    for won in [a, b].into_iter().filter(|r| r.status.as_u16() == 200) {
        let next = session_of(&won.body);
        app.post(
            "/v1/auth/refresh",
            None,
            json!({"refresh_token": next.refresh}),
        )
        .await
        .expect_error(401, None);
        app.get("/v1/me", Some(&next.access))
            .await
            .expect_error(401, None);
    }
    app.get("/v1/me", Some(&s.access))
        .await
        .expect_error(401, None);
}

async fn an_expired_refresh_token_is_refused(app: TestApp) {
    let s = app.signup("ada@example.com").await;
    sqlx::query("UPDATE refresh_tokens SET expires_ms = $1")
        .bind(gateway::store::now_ms() - 1)
        .execute(app.state.store.pool())
        .await
        .unwrap();
    app.post(
        "/v1/auth/refresh",
        None,
        json!({"refresh_token": s.refresh}),
    )
    .await
    .expect_error(401, None);
    // The refresh token is stored hashed too.
    let hash: String = sqlx::query_scalar("SELECT token_hash FROM refresh_tokens")
        .fetch_one(app.state.store.pool())
        .await
        .unwrap();
    assert_eq!(hash, gateway::auth::secret::sha256_hex(&s.refresh));
}
