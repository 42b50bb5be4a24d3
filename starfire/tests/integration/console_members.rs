//! The console's members pages: invites and their acceptance, role changes, removal and
//! withdrawal, and who may do each; in-process on both backends.

use serde_json::json;

use crate::console::{assert_html, between, csrf_of, Browser};
use crate::support::{Session, TestApp};

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

    only_managers_see_actions(&app, &owner, &dev, &remove_dev, &withdraw, &invite_id).await;

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

    a_second_owner_lets_the_first_leave(&app, &owner, &admin, &mut chief, &remove_owner).await;
}

/// A viewer and a developer see no actions and are refused when posting; nothing changed.
async fn only_managers_see_actions(
    app: &TestApp,
    owner: &Session,
    dev: &Session,
    remove_dev: &str,
    withdraw: &str,
    invite_id: &str,
) {
    for (email, role) in [
        ("watcher@example.com", "viewer"),
        ("coder@example.com", "developer"),
    ] {
        let mut browser = Browser::new(app);
        browser.signin(email).await;
        let html = assert_html(&browser.get("/members").await, 200);
        assert!(html.contains(&format!("<span id=\"role\">{role}</span>")));
        assert!(!html.contains("/remove\""), "{html}");
        assert!(!html.contains("Withdraw"));
        assert_html(&browser.get(remove_dev).await, 403);
        assert_html(&browser.submit("/members", remove_dev, &[]).await, 403);
        assert_html(&browser.submit("/members", withdraw, &[]).await, 403);
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
}

/// With a second owner, the first may leave (signed out at once); then the second is the last.
async fn a_second_owner_lets_the_first_leave(
    app: &TestApp,
    owner: &Session,
    admin: &Session,
    chief: &mut Browser<'_>,
    remove_owner: &str,
) {
    app.post(
        &format!("/v1/organization/users/{}", admin.user_id),
        Some(&owner.access),
        json!({"role": "owner"}),
    )
    .await
    .expect(200);
    let html = assert_html(&chief.get("/members").await, 200);
    assert!(html.contains(&format!("href=\"{remove_owner}\"")), "{html}");
    let confirm = assert_html(&chief.get(remove_owner).await, 200);
    assert!(confirm.contains("Leave the organization"));
    let resp = chief.submit(remove_owner, remove_owner, &[]).await;
    assert_eq!(resp.status.as_u16(), 303, "{}", resp.body);
    assert_eq!(resp.header("location"), "/signin");
    assert_eq!(chief.get("/members").await.header("location"), "/signin");
    let mut deputy = Browser::new(app);
    deputy.signin("deputy@example.com").await;
    let remove_self = format!("/members/{}/remove", admin.user_id);
    let html = assert_html(&deputy.get("/members").await, 200);
    assert!(html.contains("2 members"), "{html}");
    assert!(!html.contains(&format!("href=\"{remove_self}\"")));
    assert_html(&deputy.submit("/members", &remove_self, &[]).await, 409);
}

on_both_backends!(
    members_invite_and_accept,
    members_change_role,
    members_remove_and_withdraw
);
