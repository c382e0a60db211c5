//! The console over HTTP: patient list, search, 360 page.

use crate::helpers::spawn_app;

#[tokio::test(flavor = "multi_thread")]
async fn the_health_check_answers_once_the_store_is_ready() {
    let app = spawn_app().await;
    let response = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["status"], "ok");
    assert!(
        matches!(body["store"].as_str(), Some("sqlite" | "postgres")),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_patient_list_is_paginated_and_searchable_by_name_identifier_and_birth_date() {
    let app = spawn_app().await;
    let me = app.login("coordinator@test.example").await;
    let page = me.get("/patients").await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("Showing 1–18 of 18"), "{}", page.body);

    // Accent- and case-insensitive name search, POSTed (criteria stay out of URLs).
    let page = me.submit("/patients", &[("name", "ORDONEZ")]).await.body;
    assert!(page.contains("Mr. Bernardo Ordóñez"), "{page}");
    assert!(page.contains("Showing 1–1 of 1"));
    let page = me
        .submit("/patients", &[("name", "maria medina")])
        .await
        .body;
    assert!(
        page.contains("María Eugenia Medina") || page.contains("María"),
        "{page}"
    );

    // Identifier (the Synthea MRN is the patient's uuid) and birth date.
    let page = me
        .submit(
            "/patients",
            &[("identifier", "e27d88b0-c5e5-4042-ad49-184f6a900ee3")],
        )
        .await
        .body;
    assert!(page.contains("Luigi"), "{page}");
    let page = me.submit("/patients", &[("birthdate", "1957")]).await.body;
    assert!(page.contains("Ordóñez"), "{page}");
    assert!(!page.contains("Luigi"));

    let page = me
        .submit("/patients", &[("name", "nobody-has-this-name")])
        .await
        .body;
    assert!(page.contains("No patients match."));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_360_page_shows_the_whole_story_with_sources() {
    let app = spawn_app().await;
    let me = app.login("coordinator@test.example").await;
    let list = me.submit("/patients", &[("name", "alcantar")]).await.body;
    let id = list
        .split("href=\"/patients/")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("a link to the patient");
    let reply = me.get(&format!("/patients/{id}")).await;
    let (status, page) = (reply.status, reply.body);
    assert_eq!(status, 200);
    assert!(page.contains("<h1>Mrs. Lourdes Alcántar</h1>"), "{page}");
    // Active problems by display text; resolved ones are not listed as active.
    assert!(
        page.contains("Alzheimer&#39;s disease (disorder)")
            || page.contains("Alzheimer's disease (disorder)")
    );
    assert!(page.contains("Chronic congestive heart failure (disorder)"));
    // Vitals with their units, dates in a readable form, and where each fact came from.
    assert!(page.contains("Latest vital signs"));
    assert!(
        page.contains(" kg") && page.contains("mm[Hg]"),
        "vitals with units"
    );
    assert!(
        page.contains("from Lourdes_Alcántar_5f258739"),
        "provenance of items"
    );
    assert!(page.contains("deceased"));
    for section in [
        "Demographics",
        "Current medications",
        "Allergies",
        "Immunizations",
        "Timeline",
        "Latest laboratory results",
    ] {
        assert!(page.contains(section), "missing section {section}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unknown_patient_is_refused_without_telling_whether_it_exists() {
    let app = spawn_app().await;
    let me = app.login("coordinator@test.example").await;
    let reply = me.get("/patients/does-not-exist").await;
    assert_eq!(reply.status, 403, "{}", reply.body);
    assert!(reply.body.contains("not on this patient"));
    assert_eq!(me.get("/patients/not%20an%20id").await.status, 404);
}
