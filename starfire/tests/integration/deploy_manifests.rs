//! `deploy/kubernetes/`: every object passes the Kubernetes API's schemas offline (strict:
//! unknown fields fail; a broken object is shown to fail too), and the gateways' configuration
//! in the ConfigMap is one the real binary loads.

use std::path::Path;
use std::process::Command;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap()
}

fn validate(extra: &[&Path]) -> std::process::Output {
    Command::new(root().join("scripts/validate-manifests"))
        .args(extra)
        .output()
        .expect("run scripts/validate-manifests")
}

#[test]
fn the_manifests_pass_the_kubernetes_schemas_and_a_broken_one_does_not() {
    let ok = validate(&[]);
    let log =
        String::from_utf8_lossy(&ok.stderr).into_owned() + &String::from_utf8_lossy(&ok.stdout);
    assert!(ok.status.success(), "{log}");
    for kind in [
        "deployment/starfire-gateway",
        "poddisruptionbudget/starfire-gateway",
        "horizontalpodautoscaler/starfire-gateway",
        "deployment/starfire-workers",
        "service/starfire-workers",
        "role/starfire-deployments",
    ] {
        assert!(
            log.contains(&format!("passed for resource {kind}")),
            "{kind}: {log}"
        );
    }

    // What the `kubernetes` deployment driver writes passes too.
    let dir = tempfile::tempdir().unwrap();
    let config = gateway::deployments::kubernetes::KubernetesConfig::default();
    let spec = gateway::deployments::driver::ReplicaSpec {
        deployment_id: "dep_0123456789".into(),
        name: "acme-chat".into(),
        model_path: "/var/lib/starfire/models/SmolLM2-135M-Instruct.Q4_1.gguf".into(),
        kv_cache_memory: 64 << 20,
    };
    let objects = [
        (
            "driver-deployment.yaml",
            gateway::deployments::kubernetes::deployment_object(&config, "starfire", &spec, 2, 60),
        ),
        (
            "driver-service.yaml",
            gateway::deployments::kubernetes::service_object(
                &config,
                "starfire",
                &spec.deployment_id,
                Some("0f0e0d0c-0000-4000-8000-000000000001"),
            ),
        ),
    ];
    let mut files = Vec::new();
    for (name, object) in objects {
        let path = dir.path().join(name);
        // JSON is YAML.
        std::fs::write(&path, serde_json::to_vec_pretty(&object).unwrap()).unwrap();
        files.push(path);
    }
    let paths: Vec<&Path> = files.iter().map(|p| p.as_path()).collect();
    let generated = validate(&paths);
    let log = String::from_utf8_lossy(&generated.stderr).into_owned()
        + &String::from_utf8_lossy(&generated.stdout);
    assert!(generated.status.success(), "{log}");
    assert!(log.contains("driver-deployment.yaml passed"), "{log}");
    assert!(log.contains("driver-service.yaml passed"), "{log}");

    let bad = dir.path().join("bad.yaml");
    std::fs::write(
        &bad,
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: x\nspec:\n  portz: []\n",
    )
    .unwrap();
    let refused = validate(&[&bad]);
    assert!(!refused.status.success());
    let log = String::from_utf8_lossy(&refused.stderr).into_owned()
        + &String::from_utf8_lossy(&refused.stdout);
    assert!(log.contains("'portz' was unexpected"), "{log}");
}

#[test]
fn the_configmap_holds_a_configuration_the_gateway_loads() {
    // The validator's own YAML parser (installed by the script) reads the ConfigMap.
    let status = validate(&[]).status;
    assert!(status.success());
    let out = Command::new("python3")
        .env("PYTHONPATH", root().join("target/kubernetes-validate"))
        .arg("-c")
        .arg("import sys, yaml; print(yaml.safe_load(open(sys.argv[1]))['data']['starfire.toml'])")
        .arg(root().join("deploy/kubernetes/configmap.yaml"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("starfire.toml");
    std::fs::write(&file, &out.stdout).unwrap();
    let config = gateway::config::Config::resolve(Some(&file), |_| None).expect("a valid config");
    let model = &config.models[0];
    assert_eq!(model.name, "smollm2-135m-instruct");
    assert_eq!(
        model.workers_dns.as_deref(),
        Some("starfire-workers.starfire.svc.cluster.local:8090")
    );
    assert_eq!(
        config.deployments.driver,
        gateway::deployments::DriverKind::None
    );
}
