//! `/v1/organization/projects`.

use serde_json::json;

use crate::support::TestApp;

on_both_backends!(
    create_list_get_modify_archive,
    pagination_follows_the_cursor,
    credentials_roles_and_scopes_are_checked,
    another_tenants_project_is_not_found,
    bad_input_names_the_field,
);

async fn create_list_get_modify_archive(app: TestApp) {
    let owner = app.signup("ada@example.com").await;
    let t = Some(owner.access.as_str());
    let created = app
        .post(
            "/v1/organization/projects",
            t,
            json!({"name": "  Web app "}),
        )
        .await
        .expect(201);
    assert_eq!(created["object"], "organization.project");
    assert_eq!(created["name"], "Web app");
    assert_eq!(created["status"], "active");
    assert!(created["archived_at"].is_null());
    let id = created["id"].as_str().unwrap();
    assert!(id.starts_with("proj_"));

    let list = app.get("/v1/organization/projects", t).await.expect(200);
    assert_eq!(list["object"], "list");
    let names: Vec<&str> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Default project", "Web app"]);
    assert_eq!(list["has_more"], false);
    assert_eq!(list["last_id"], id);

    let got = app
        .get(&format!("/v1/organization/projects/{id}"), t)
        .await
        .expect(200);
    assert_eq!(got["id"], id);

    let renamed = app
        .post(
            &format!("/v1/organization/projects/{id}"),
            t,
            json!({"name": "Mobile app"}),
        )
        .await
        .expect(200);
    assert_eq!(renamed["name"], "Mobile app");

    let archived = app
        .send(
            actix_web::http::Method::POST,
            &format!("/v1/organization/projects/{id}/archive"),
            t,
            None,
        )
        .await
        .expect(200);
    assert_eq!(archived["status"], "archived");
    assert!(archived["archived_at"].is_i64());

    // Archived projects leave the default listing, stay visible on request, and are read-only.
    let list = app.get("/v1/organization/projects", t).await.expect(200);
    assert_eq!(list["data"].as_array().unwrap().len(), 1);
    let all = app
        .get("/v1/organization/projects?include_archived=true", t)
        .await
        .expect(200);
    assert_eq!(all["data"].as_array().unwrap().len(), 2);
    app.post(
        &format!("/v1/organization/projects/{id}"),
        t,
        json!({"name": "again"}),
    )
    .await
    .expect_error(409, None);
}

async fn pagination_follows_the_cursor(app: TestApp) {
    let owner = app.signup("ada@example.com").await;
    let t = Some(owner.access.as_str());
    for i in 0..4 {
        app.post(
            "/v1/organization/projects",
            t,
            json!({"name": format!("p{i}")}),
        )
        .await
        .expect(201);
    }
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let path = match &after {
            Some(a) => format!("/v1/organization/projects?limit=2&after={a}"),
            None => "/v1/organization/projects?limit=2".to_owned(),
        };
        let page = app.get(&path, t).await.expect(200);
        let data = page["data"].as_array().unwrap();
        assert!(data.len() <= 2);
        assert_eq!(page["first_id"], data[0]["id"]);
        seen.extend(data.iter().map(|p| p["name"].as_str().unwrap().to_owned()));
        if page["has_more"] == false {
            break;
        }
        after = Some(page["last_id"].as_str().unwrap().to_owned());
    }
    assert_eq!(seen, ["Default project", "p0", "p1", "p2", "p3"]);
}

async fn credentials_roles_and_scopes_are_checked(app: TestApp) {
    let owner = app.signup("ada@example.com").await;
    app.get("/v1/organization/projects", None)
        .await
        .expect_error(401, None);
    app.get("/v1/organization/projects", Some("not-a-token"))
        .await
        .expect_error(401, None);
    app.get(
        "/v1/organization/projects",
        Some(&format!("sf-{}", "A".repeat(40))),
    )
    .await
    .expect_error(401, None);

    // A viewer reads but cannot create; an inference key cannot even read.
    let viewer = app
        .member_with_role(&owner, "vic@example.com", "viewer")
        .await;
    app.get("/v1/organization/projects", Some(&viewer.access))
        .await
        .expect(200);
    let err = app
        .post(
            "/v1/organization/projects",
            Some(&viewer.access),
            json!({"name": "x"}),
        )
        .await
        .expect_error(403, None);
    assert_eq!(err["type"], "permission_error");
    let project = app.default_project(&owner.access).await;
    app.post(
        &format!("/v1/organization/projects/{project}"),
        Some(&viewer.access),
        json!({"name": "renamed"}),
    )
    .await
    .expect_error(403, None);
    app.send(
        actix_web::http::Method::POST,
        &format!("/v1/organization/projects/{project}/archive"),
        Some(&viewer.access),
        None,
    )
    .await
    .expect_error(403, None);
    let (_, inference) = app
        .create_key(&owner.access, &project, &["inference"])
        .await;
    app.get("/v1/organization/projects", Some(&inference))
        .await
        .expect_error(403, None);
    app.get(
        &format!("/v1/organization/projects/{project}"),
        Some(&inference),
    )
    .await
    .expect_error(403, None);

    // A project key with the admin scope sees its own project, not the organization's list.
    let (_, project_admin) = app.create_key(&owner.access, &project, &["admin"]).await;
    app.get(
        &format!("/v1/organization/projects/{project}"),
        Some(&project_admin),
    )
    .await
    .expect(200);
    app.get("/v1/organization/projects", Some(&project_admin))
        .await
        .expect_error(403, None);
    let other = app
        .post(
            "/v1/organization/projects",
            Some(&owner.access),
            json!({"name": "other"}),
        )
        .await
        .expect(201);
    app.get(
        &format!(
            "/v1/organization/projects/{}",
            other["id"].as_str().unwrap()
        ),
        Some(&project_admin),
    )
    .await
    .expect_error(404, None);
}

async fn another_tenants_project_is_not_found(app: TestApp) {
    let ada = app.signup("ada@example.com").await;
    let bob = app.signup("bob@example.com").await;
    let ada_project = app.default_project(&ada.access).await;
    let b = Some(bob.access.as_str());
    let err = app
        .get(&format!("/v1/organization/projects/{ada_project}"), b)
        .await
        .expect_error(404, None);
    assert_eq!(err["type"], "not_found_error");
    app.post(
        &format!("/v1/organization/projects/{ada_project}"),
        b,
        json!({"name": "mine now"}),
    )
    .await
    .expect_error(404, None);
    app.send(
        actix_web::http::Method::POST,
        &format!("/v1/organization/projects/{ada_project}/archive"),
        b,
        None,
    )
    .await
    .expect_error(404, None);
    // A cursor from another tenant yields nothing of theirs.
    let page = app
        .get(&format!("/v1/organization/projects?after={ada_project}"), b)
        .await
        .expect(200);
    assert!(page["data"]
        .as_array()
        .unwrap()
        .iter()
        .all(|p| p["id"] != ada_project.as_str()));
    let list = app.get("/v1/organization/projects", b).await.expect(200);
    assert_eq!(list["data"].as_array().unwrap().len(), 1);
    assert_ne!(list["data"][0]["id"], ada_project.as_str());
}

async fn bad_input_names_the_field(app: TestApp) {
    let owner = app.signup("ada@example.com").await;
    let t = Some(owner.access.as_str());
    app.post("/v1/organization/projects", t, json!({"name": "   "}))
        .await
        .expect_error(422, Some("name"));
    app.post(
        "/v1/organization/projects",
        t,
        json!({"name": "x".repeat(200)}),
    )
    .await
    .expect_error(422, Some("name"));
    app.post("/v1/organization/projects", t, json!({}))
        .await
        .expect_error(400, Some("name"));
    app.post("/v1/organization/projects", t, json!({"name": 7}))
        .await
        .expect_error(400, Some("name"));
    app.post(
        "/v1/organization/projects",
        t,
        json!({"name": "a", "color": "red"}),
    )
    .await
    .expect_error(400, Some("color"));
    app.get("/v1/organization/projects?limit=0", t)
        .await
        .expect_error(422, Some("limit"));
    app.get("/v1/organization/projects?limit=many", t)
        .await
        .expect_error(400, Some("limit"));
    let req = actix_web::test::TestRequest::post()
        .uri("/v1/organization/projects")
        .insert_header(("authorization", format!("Bearer {}", owner.access)))
        .insert_header(("content-type", "application/json"))
        .set_payload("{\"name\": ");
    app.call(req).await.expect_error(400, None);
}
