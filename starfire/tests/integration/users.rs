//! `/v1/organization/users`: members and roles.

use serde_json::json;

use crate::support::TestApp;

on_both_backends!(
    members_are_listed_and_re_roled,
    the_last_owner_stays,
    only_owners_touch_owners,
    removing_a_member_ends_their_session,
    another_tenants_user_is_not_found,
    two_owners_demoting_each_other_at_once_leave_one,
);

async fn members_are_listed_and_re_roled(app: TestApp) {
    let owner = app.signup("ada@example.com").await;
    let dev = app
        .member_with_role(&owner, "dev@example.com", "developer")
        .await;
    let list = app
        .get("/v1/organization/users", Some(&dev.access))
        .await
        .expect(200);
    let emails: Vec<&str> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["email"].as_str().unwrap())
        .collect();
    assert_eq!(emails, ["ada@example.com", "dev@example.com"]);
    assert_eq!(list["data"][1]["object"], "organization.user");
    assert_eq!(list["data"][1]["role"], "developer");
    let page = app
        .get("/v1/organization/users?limit=1", Some(&dev.access))
        .await
        .expect(200);
    assert_eq!(page["has_more"], true);

    // The developer cannot manage members; the owner promotes them and it applies at once.
    let path = format!("/v1/organization/users/{}", dev.user_id);
    app.post(&path, Some(&dev.access), json!({"role": "admin"}))
        .await
        .expect_error(403, None);
    app.post(
        "/v1/organization/projects",
        Some(&dev.access),
        json!({"name": "x"}),
    )
    .await
    .expect_error(403, None);
    let updated = app
        .post(&path, Some(&owner.access), json!({"role": "admin"}))
        .await
        .expect(200);
    assert_eq!(updated["role"], "admin");
    app.post(
        "/v1/organization/projects",
        Some(&dev.access),
        json!({"name": "x"}),
    )
    .await
    .expect(201);
    app.get(&path, Some(&owner.access)).await.expect(200);
    app.post(&path, Some(&owner.access), json!({"role": "emperor"}))
        .await
        .expect_error(400, Some("role"));
}

async fn the_last_owner_stays(app: TestApp) {
    let owner = app.signup("ada@example.com").await;
    let path = format!("/v1/organization/users/{}", owner.user_id);
    app.post(&path, Some(&owner.access), json!({"role": "viewer"}))
        .await
        .expect_error(409, None);
    app.delete(&path, Some(&owner.access))
        .await
        .expect_error(409, None);
    let second = app
        .member_with_role(&owner, "co@example.com", "owner")
        .await;
    app.post(&path, Some(&second.access), json!({"role": "viewer"}))
        .await
        .expect(200);
}

async fn only_owners_touch_owners(app: TestApp) {
    let owner = app.signup("ada@example.com").await;
    let admin = app
        .member_with_role(&owner, "adm@example.com", "admin")
        .await;
    let dev = app
        .member_with_role(&owner, "dev@example.com", "developer")
        .await;
    app.post(
        &format!("/v1/organization/users/{}", owner.user_id),
        Some(&admin.access),
        json!({"role": "viewer"}),
    )
    .await
    .expect_error(403, None);
    app.post(
        &format!("/v1/organization/users/{}", dev.user_id),
        Some(&admin.access),
        json!({"role": "owner"}),
    )
    .await
    .expect_error(403, None);
    app.post(
        &format!("/v1/organization/users/{}", dev.user_id),
        Some(&admin.access),
        json!({"role": "billing"}),
    )
    .await
    .expect(200);
    app.post(
        "/v1/organization/invites",
        Some(&admin.access),
        json!({"email": "new@example.com", "role": "owner"}),
    )
    .await
    .expect_error(403, None);
}

async fn removing_a_member_ends_their_session(app: TestApp) {
    let owner = app.signup("ada@example.com").await;
    let dev = app
        .member_with_role(&owner, "dev@example.com", "developer")
        .await;
    app.get("/v1/me", Some(&dev.access)).await.expect(200);
    let deleted = app
        .delete(
            &format!("/v1/organization/users/{}", dev.user_id),
            Some(&owner.access),
        )
        .await
        .expect(200);
    assert_eq!(deleted["object"], "organization.user.deleted");
    app.get("/v1/me", Some(&dev.access))
        .await
        .expect_error(401, None);
    app.get(
        &format!("/v1/organization/users/{}", dev.user_id),
        Some(&owner.access),
    )
    .await
    .expect_error(404, None);
    app.get("/v1/organization/users", None)
        .await
        .expect_error(401, None);
}

async fn another_tenants_user_is_not_found(app: TestApp) {
    let ada = app.signup("ada@example.com").await;
    let bob = app.signup("bob@example.com").await;
    let path = format!("/v1/organization/users/{}", ada.user_id);
    app.get(&path, Some(&bob.access))
        .await
        .expect_error(404, None);
    app.post(&path, Some(&bob.access), json!({"role": "viewer"}))
        .await
        .expect_error(404, None);
    app.delete(&path, Some(&bob.access))
        .await
        .expect_error(404, None);
    let list = app
        .get("/v1/organization/users", Some(&bob.access))
        .await
        .expect(200);
    assert_eq!(list["data"].as_array().unwrap().len(), 1);
}

async fn two_owners_demoting_each_other_at_once_leave_one(app: TestApp) {
    let ada = app.signup("ada@example.com").await;
    let co = app.member_with_role(&ada, "co@example.com", "owner").await;
    let demote_co = format!("/v1/organization/users/{}", co.user_id);
    let demote_ada = format!("/v1/organization/users/{}", ada.user_id);
    let (a, b) = tokio::join!(
        app.post(&demote_co, Some(&ada.access), json!({"role": "viewer"})),
        app.post(&demote_ada, Some(&co.access), json!({"role": "viewer"}))
    );
    let mut statuses = [a.status.as_u16(), b.status.as_u16()];
    statuses.sort();
    // Whichever ran second no longer had the owner role or would have left no owner.
    assert_eq!(statuses[0], 200, "{statuses:?}");
    assert!(statuses[1] == 403 || statuses[1] == 409, "{statuses:?}");
    let owners: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM memberships WHERE role = 'owner'")
        .fetch_one(app.state.store.pool())
        .await
        .unwrap();
    assert_eq!(owners, 1);
}
