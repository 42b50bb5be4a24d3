//! The `kubernetes` driver: each private deployment is an `apps/v1` Deployment of `starfire
//! worker` pods and a headless Service, in one namespace, written with server-side apply (field
//! manager `starfire`), scaled by `replicas`, and read back from the cluster: the ready pods'
//! addresses are the deployment's endpoints (the gateways route to pod IPs, like the shared
//! pool's headless Service).
//!
//! Objects are named `sfd-<16 hex digits of the deployment id's SHA-256>` (a DNS label whatever
//! the id) and labelled `starfire.dev/deployment` with that name; the Service is owned by the
//! Deployment (deleting one deletes both), and the Deployment by `owner` when configured (the
//! platform's own object, so that removing the platform removes its deployments). A pod waiting
//! in `CrashLoopBackOff`, `ImagePullBackOff` and the like is a problem (a provisioning
//! deployment fails with it at once); any other unready pod's reason is the detail a timeout
//! reports.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Pod, Service};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use protocol::BoxFuture;
use serde::Deserialize;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::driver::{Driver, Observed, Replica, ReplicaSpec};

/// The label (and selector) of a deployment's objects.
pub const LABEL: &str = "starfire.dev/deployment";
/// Field manager of server-side apply.
const MANAGER: &str = "starfire";
/// Waiting reasons that do not go away by waiting.
const STUCK: [&str; 6] = [
    "CrashLoopBackOff",
    "ImagePullBackOff",
    "ErrImagePull",
    "CreateContainerConfigError",
    "CreateContainerError",
    "InvalidImageName",
];

/// The object that owns every deployment's Deployment (`[deployments.kubernetes.owner]`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Owner {
    pub api_version: String,
    pub kind: String,
    pub name: String,
    pub uid: String,
}

/// The `[deployments.kubernetes]` table.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KubernetesConfig {
    /// Where the objects go (default: the client's namespace, in a pod its own).
    pub namespace: Option<String>,
    /// The `starfire` image the replicas run.
    pub image: String,
    /// The Secret and key holding the worker token (the gateways' `worker_token`).
    pub worker_token_secret: String,
    pub worker_token_key: String,
    /// Each replica's CPU request and memory request and limit.
    pub cpu: String,
    pub memory: String,
    pub memory_limit: String,
    /// The port the workers listen on.
    pub port: u16,
    pub owner: Option<Owner>,
}

impl Default for KubernetesConfig {
    fn default() -> Self {
        KubernetesConfig {
            namespace: None,
            image: "starfire:latest".to_owned(),
            worker_token_secret: "starfire".to_owned(),
            worker_token_key: "STARFIRE_WORKER_TOKEN".to_owned(),
            cpu: "2".to_owned(),
            memory: "1Gi".to_owned(),
            memory_limit: "4Gi".to_owned(),
            port: 8090,
            owner: None,
        }
    }
}

pub struct KubeDriver {
    client: kube::Client,
    namespace: String,
    config: KubernetesConfig,
    drain_timeout_secs: u64,
}

/// The name of a deployment's objects.
pub fn object_name(deployment_id: &str) -> String {
    let digest = Sha256::digest(deployment_id.as_bytes());
    let hex: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
    format!("sfd-{hex}")
}

impl KubeDriver {
    pub fn new(client: kube::Client, config: KubernetesConfig, drain_timeout_secs: u64) -> Self {
        let namespace = config
            .namespace
            .clone()
            .unwrap_or_else(|| client.default_namespace().to_owned());
        KubeDriver {
            client,
            namespace,
            config,
            drain_timeout_secs,
        }
    }

    /// The Deployment that runs `replicas` replicas of `spec`.
    pub fn deployment_object(&self, spec: &ReplicaSpec, replicas: usize) -> Value {
        deployment_object(
            &self.config,
            &self.namespace,
            spec,
            replicas,
            self.drain_timeout_secs,
        )
    }

    /// The headless Service of a deployment, owned by its Deployment (`uid`).
    pub fn service_object(&self, deployment_id: &str, owner_uid: Option<&str>) -> Value {
        service_object(&self.config, &self.namespace, deployment_id, owner_uid)
    }
}

/// The Deployment that runs `replicas` replicas of `spec` in `namespace`, its pods drained for
/// up to `drain_timeout_secs` when they stop.
pub fn deployment_object(
    c: &KubernetesConfig,
    namespace: &str,
    spec: &ReplicaSpec,
    replicas: usize,
    drain_timeout_secs: u64,
) -> Value {
    let name = object_name(&spec.deployment_id);
    let mut metadata = json!({
        "name": name,
        "namespace": namespace,
        "labels": labels(&name),
        "annotations": {
            "starfire.dev/deployment-id": spec.deployment_id,
            "starfire.dev/deployment-name": spec.name,
        },
    });
    if let Some(owner) = &c.owner {
        metadata["ownerReferences"] = json!([{
            "apiVersion": owner.api_version,
            "kind": owner.kind,
            "name": owner.name,
            "uid": owner.uid,
        }]);
    }
    let probe = |path: &str, period: u32, failures: u32| {
        json!({
            "httpGet": {"path": path, "port": "http"},
            "periodSeconds": period,
            "failureThreshold": failures,
        })
    };
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": metadata,
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {LABEL: name}},
            "template": {
                "metadata": {"labels": labels(&name)},
                "spec": {
                    "terminationGracePeriodSeconds": drain_timeout_secs + 30,
                    "securityContext": {"runAsNonRoot": true, "runAsUser": 10001},
                    "containers": [{
                        "name": "worker",
                        "image": c.image,
                        "args": [
                            "worker",
                            "--listen", format!("0.0.0.0:{}", c.port),
                            "--drain-timeout", drain_timeout_secs.to_string(),
                            "--model", spec.model_path.display().to_string(),
                        ],
                        "ports": [{"name": "http", "containerPort": c.port}],
                        "env": [
                            {"name": "STARFIRE_WORKER_TOKEN", "valueFrom": {"secretKeyRef": {
                                "name": c.worker_token_secret, "key": c.worker_token_key}}},
                            {"name": "STARFIRE_KV_CACHE_MEMORY",
                             "value": spec.kv_cache_memory.to_string()},
                        ],
                        "readinessProbe": probe("/ready", 2, 1),
                        "livenessProbe": {
                            "httpGet": {"path": "/health", "port": "http"},
                            "initialDelaySeconds": 20,
                            "periodSeconds": 10,
                            "failureThreshold": 6,
                        },
                        "resources": {
                            "requests": {"cpu": c.cpu, "memory": c.memory},
                            "limits": {"memory": c.memory_limit},
                        },
                        "securityContext": {
                            "allowPrivilegeEscalation": false,
                            "capabilities": {"drop": ["ALL"]},
                        },
                    }],
                },
            },
        },
    })
}

/// The headless Service of a deployment in `namespace`, owned by its Deployment (`uid`).
pub fn service_object(
    c: &KubernetesConfig,
    namespace: &str,
    deployment_id: &str,
    owner_uid: Option<&str>,
) -> Value {
    let name = object_name(deployment_id);
    let mut metadata = json!({
        "name": name,
        "namespace": namespace,
        "labels": labels(&name),
    });
    if let Some(uid) = owner_uid {
        metadata["ownerReferences"] = json!([{
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "name": name,
            "uid": uid,
            "controller": true,
            "blockOwnerDeletion": true,
        }]);
    }
    json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata,
        "spec": {
            "clusterIP": "None",
            "publishNotReadyAddresses": false,
            "selector": {LABEL: name},
            "ports": [{"name": "http", "port": c.port, "targetPort": "http"}],
        },
    })
}

impl KubeDriver {
    async fn apply_objects(&self, spec: &ReplicaSpec, replicas: usize) -> Result<(), String> {
        let name = object_name(&spec.deployment_id);
        let params = PatchParams::apply(MANAGER).force();
        let deployments: Api<Deployment> = Api::namespaced(self.client.clone(), &self.namespace);
        let applied = deployments
            .patch(
                &name,
                &params,
                &Patch::Apply(&self.deployment_object(spec, replicas)),
            )
            .await
            .map_err(|e| format!("applying Deployment {name}: {e}"))?;
        let services: Api<Service> = Api::namespaced(self.client.clone(), &self.namespace);
        services
            .patch(
                &name,
                &params,
                &Patch::Apply(
                    &self.service_object(&spec.deployment_id, applied.metadata.uid.as_deref()),
                ),
            )
            .await
            .map_err(|e| format!("applying Service {name}: {e}"))?;
        Ok(())
    }

    async fn delete_objects(&self, deployment_id: &str) -> Result<(), String> {
        let name = object_name(deployment_id);
        let deployments: Api<Deployment> = Api::namespaced(self.client.clone(), &self.namespace);
        let services: Api<Service> = Api::namespaced(self.client.clone(), &self.namespace);
        let dp = DeleteParams::background();
        for result in [
            deployments.delete(&name, &dp).await.map(|_| ()),
            services.delete(&name, &dp).await.map(|_| ()),
        ] {
            match result {
                Ok(()) => {}
                Err(kube::Error::Api(status)) if status.code == 404 => {}
                Err(e) => return Err(format!("deleting {name}: {e}")),
            }
        }
        Ok(())
    }

    async fn read(&self, deployment_id: &str) -> Result<Observed, String> {
        let name = object_name(deployment_id);
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), &self.namespace);
        let listed = pods
            .list(&ListParams::default().labels(&format!("{LABEL}={name}")))
            .await
            .map_err(|e| format!("listing the pods of {name}: {e}"))?;
        let mut seen = Observed::default();
        for pod in listed.items {
            let pod_name = pod.metadata.name.clone().unwrap_or_default();
            if pod.metadata.deletion_timestamp.is_some() {
                seen.draining += 1;
                continue;
            }
            let status = pod.status.unwrap_or_default();
            let ready = status
                .conditions
                .iter()
                .flatten()
                .any(|c| c.type_ == "Ready" && c.status == "True");
            let ip = status.pod_ip.clone().filter(|ip| !ip.is_empty());
            for waiting in status
                .container_statuses
                .iter()
                .flatten()
                .filter_map(|s| s.state.as_ref()?.waiting.as_ref())
            {
                let reason = waiting.reason.clone().unwrap_or_default();
                let why = format!(
                    "pod {pod_name}: {reason}{}",
                    waiting
                        .message
                        .as_deref()
                        .map(|m| format!(": {m}"))
                        .unwrap_or_default()
                );
                if STUCK.contains(&reason.as_str()) && seen.problem.is_none() {
                    seen.problem = Some(why.clone());
                }
                seen.detail.get_or_insert(why);
            }
            if !ready {
                let condition = status
                    .conditions
                    .iter()
                    .flatten()
                    .find(|c| c.status != "True" && c.message.is_some());
                if let Some(c) = condition {
                    seen.detail.get_or_insert(format!(
                        "pod {pod_name}: {} ({})",
                        c.message.as_deref().unwrap_or_default(),
                        c.reason.as_deref().unwrap_or(&c.type_)
                    ));
                }
            }
            let url = match &ip {
                Some(ip) if ip.contains(':') => format!("http://[{ip}]:{}", self.config.port),
                Some(ip) => format!("http://{ip}:{}", self.config.port),
                None => format!("pending://{pod_name}"),
            };
            seen.replicas.push(Replica {
                url,
                ready: ready && ip.is_some(),
            });
        }
        Ok(seen)
    }
}

fn labels(name: &str) -> Value {
    json!({
        LABEL: name,
        "app.kubernetes.io/name": "starfire-deployment",
        "app.kubernetes.io/managed-by": "starfire",
        "app.kubernetes.io/part-of": "starfire",
    })
}

impl Driver for KubeDriver {
    fn apply(&self, spec: &ReplicaSpec, replicas: usize) -> BoxFuture<'_, Result<(), String>> {
        let spec = spec.clone();
        Box::pin(async move { self.apply_objects(&spec, replicas).await })
    }

    fn remove(&self, deployment_id: &str) -> BoxFuture<'_, Result<(), String>> {
        let id = deployment_id.to_owned();
        Box::pin(async move { self.delete_objects(&id).await })
    }

    fn observe(&self, deployment_id: &str) -> BoxFuture<'_, Result<Observed, String>> {
        let id = deployment_id.to_owned();
        Box::pin(async move { self.read(&id).await })
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;
    use std::sync::{Arc, Mutex};

    use hyper::{Request, Response};
    use kube::client::Body;
    use serde_json::{json, Value};
    use tower_test::mock;

    use super::*;

    /// One request the mock API server received.
    #[derive(Debug, Clone)]
    pub(crate) struct Call {
        pub method: String,
        pub uri: String,
        pub content_type: Option<String>,
        pub body: Value,
    }

    type Answer = dyn Fn(&str, &str, &Value) -> (u16, Value) + Send + Sync;

    /// A client whose API server is `answer` (method, URI, body → status, body); every call
    /// is recorded.
    pub(crate) fn mock_cluster(answer: Arc<Answer>) -> (kube::Client, Arc<Mutex<Vec<Call>>>) {
        let (service, mut handle) = mock::pair::<Request<Body>, Response<Body>>();
        let calls = Arc::new(Mutex::new(Vec::new()));
        let record = calls.clone();
        tokio::spawn(async move {
            while let Some((request, send)) = handle.next_request().await {
                let (parts, body) = request.into_parts();
                let bytes = body.collect_bytes().await.unwrap();
                let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
                let uri = parts.uri.to_string();
                let (status, reply) = answer(parts.method.as_str(), &uri, &body);
                record.lock().unwrap().push(Call {
                    method: parts.method.to_string(),
                    uri,
                    content_type: parts
                        .headers
                        .get("content-type")
                        .map(|v| v.to_str().unwrap().to_owned()),
                    body,
                });
                send.send_response(
                    Response::builder()
                        .status(status)
                        .header("content-type", "application/json")
                        .body(Body::from(serde_json::to_vec(&reply).unwrap()))
                        .unwrap(),
                );
            }
        });
        (kube::Client::new(service, "starfire"), calls)
    }

    pub(crate) fn spec() -> ReplicaSpec {
        ReplicaSpec {
            deployment_id: "dep_Abc123".into(),
            name: "acme-chat".into(),
            model_path: PathBuf::from("/var/lib/starfire/models/m.gguf"),
            kv_cache_memory: 64 << 20,
        }
    }

    /// An API server that accepts applies (echoing the object with a uid) and deletes, and
    /// lists `pods` for the pod list.
    pub(crate) fn cluster_with(pods: Value) -> Arc<Answer> {
        Arc::new(move |method: &str, uri: &str, body: &Value| match method {
            "PATCH" => {
                let mut echo = body.clone();
                echo["metadata"]["uid"] = json!("uid-1234");
                (200, echo)
            }
            "DELETE" => (
                200,
                json!({"kind": "Status", "apiVersion": "v1", "status": "Success"}),
            ),
            "GET" if uri.contains("/pods") => (
                200,
                json!({"kind": "PodList", "apiVersion": "v1", "metadata": {}, "items": pods}),
            ),
            _ => (
                404,
                json!({"kind": "Status", "apiVersion": "v1", "code": 404,
                              "status": "Failure", "message": "not found", "reason": "NotFound"}),
            ),
        })
    }

    fn pod(name: &str, ip: &str, ready: bool, waiting: Option<(&str, &str)>) -> Value {
        let mut status = json!({
            "podIP": ip,
            "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" },
                            "reason": if ready { "" } else { "ContainersNotReady" },
                            "message": if ready { Value::Null } else {
                                json!("containers with unready status: [worker]") }}],
        });
        if let Some((reason, message)) = waiting {
            status["containerStatuses"] = json!([{
                "name": "worker", "ready": false, "restartCount": 4, "image": "starfire:latest",
                "imageID": "", "state": {"waiting": {"reason": reason, "message": message}},
            }]);
        }
        json!({"metadata": {"name": name, "labels": {LABEL: object_name("dep_Abc123")}},
               "status": status})
    }

    #[tokio::test]
    async fn apply_writes_a_deployment_and_its_owned_service_by_server_side_apply() {
        let (client, calls) = mock_cluster(cluster_with(json!([])));
        let driver = KubeDriver::new(client, KubernetesConfig::default(), 60);
        driver.apply(&spec(), 2).await.unwrap();
        let calls = calls.lock().unwrap().clone();
        let name = object_name("dep_Abc123");
        assert_eq!(name.len(), 20);
        assert_eq!(calls.len(), 2, "{calls:?}");
        let d = &calls[0];
        assert_eq!(d.method, "PATCH");
        assert_eq!(
            d.uri,
            format!(
                "/apis/apps/v1/namespaces/starfire/deployments/{name}?&force=true&fieldManager=starfire"
            )
        );
        assert_eq!(
            d.content_type.as_deref(),
            Some("application/apply-patch+yaml")
        );
        assert_eq!(d.body["spec"]["replicas"], 2);
        assert_eq!(
            d.body["spec"]["selector"]["matchLabels"][LABEL],
            name.as_str()
        );
        let container = &d.body["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(container["image"], "starfire:latest");
        assert_eq!(
            container["args"],
            json!([
                "worker",
                "--listen",
                "0.0.0.0:8090",
                "--drain-timeout",
                "60",
                "--model",
                "/var/lib/starfire/models/m.gguf"
            ])
        );
        assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/ready");
        assert_eq!(
            container["env"][0]["valueFrom"]["secretKeyRef"],
            json!({"name": "starfire", "key": "STARFIRE_WORKER_TOKEN"})
        );
        assert_eq!(container["env"][1]["value"], (64u64 << 20).to_string());
        assert_eq!(
            container["resources"]["requests"],
            json!({"cpu": "2", "memory": "1Gi"})
        );
        assert_eq!(
            d.body["metadata"]["annotations"]["starfire.dev/deployment-id"],
            "dep_Abc123"
        );
        let s = &calls[1];
        assert_eq!(s.method, "PATCH");
        assert!(s
            .uri
            .starts_with(&format!("/api/v1/namespaces/starfire/services/{name}?")));
        assert_eq!(s.body["spec"]["clusterIP"], "None");
        assert_eq!(
            s.body["metadata"]["ownerReferences"][0],
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "name": name,
                   "uid": "uid-1234", "controller": true, "blockOwnerDeletion": true})
        );
    }

    #[tokio::test]
    async fn scale_is_a_new_apply_and_remove_deletes_both_objects_even_when_gone() {
        let (client, calls) = mock_cluster(cluster_with(json!([])));
        let config = KubernetesConfig {
            namespace: Some("tenants".into()),
            owner: Some(Owner {
                api_version: "apps/v1".into(),
                kind: "Deployment".into(),
                name: "starfire-gateway".into(),
                uid: "gw-uid".into(),
            }),
            ..Default::default()
        };
        let driver = KubeDriver::new(client, config, 30);
        driver.apply(&spec(), 3).await.unwrap();
        driver.remove("dep_Abc123").await.unwrap();
        let calls = calls.lock().unwrap().clone();
        assert_eq!(calls[0].body["spec"]["replicas"], 3);
        assert_eq!(
            calls[0].body["metadata"]["ownerReferences"][0]["uid"],
            "gw-uid"
        );
        assert_eq!(
            calls[0].body["spec"]["template"]["spec"]["terminationGracePeriodSeconds"],
            60
        );
        let name = object_name("dep_Abc123");
        let deletes: Vec<&Call> = calls.iter().filter(|c| c.method == "DELETE").collect();
        assert_eq!(deletes.len(), 2);
        assert!(deletes[0].uri.starts_with(&format!(
            "/apis/apps/v1/namespaces/tenants/deployments/{name}"
        )));
        assert!(deletes[1]
            .uri
            .starts_with(&format!("/api/v1/namespaces/tenants/services/{name}")));
        assert_eq!(deletes[0].body["propagationPolicy"], "Background");

        // Deleting what is already gone (404) is not an error.
        let gone: Arc<Answer> = Arc::new(|_: &str, _: &str, _: &Value| {
            (
                404,
                json!({"kind": "Status", "apiVersion": "v1", "code": 404,
                         "status": "Failure", "message": "not found", "reason": "NotFound"}),
            )
        });
        let (client, _) = mock_cluster(gone);
        let driver = KubeDriver::new(client, KubernetesConfig::default(), 30);
        driver.remove("dep_Abc123").await.unwrap();
    }

    #[tokio::test]
    async fn observe_reads_ready_pods_as_endpoints_and_stuck_ones_as_problems() {
        let pods = json!([
            pod("a", "10.1.0.7", true, None),
            pod("b", "10.1.0.8", false, None),
            pod(
                "c",
                "10.1.0.9",
                false,
                Some(("ImagePullBackOff", "pull access denied"))
            ),
        ]);
        let (client, calls) = mock_cluster(cluster_with(pods));
        let driver = KubeDriver::new(client, KubernetesConfig::default(), 60);
        let seen = driver.observe("dep_Abc123").await.unwrap();
        assert_eq!(seen.ready(), ["http://10.1.0.7:8090"]);
        assert_eq!(seen.replicas.len(), 3);
        assert_eq!(
            seen.problem.as_deref(),
            Some("pod c: ImagePullBackOff: pull access denied")
        );
        let call = &calls.lock().unwrap()[0];
        assert_eq!(call.method, "GET");
        assert!(
            call.uri
                .contains("labelSelector=starfire.dev%2Fdeployment%3Dsfd-"),
            "{}",
            call.uri
        );
    }

    /// A pod that never becomes ready: the deployment fails after `ready_timeout_secs`, with
    /// the pod's own reason.
    #[tokio::test]
    async fn a_pod_that_never_becomes_ready_fails_the_deployment_with_its_reason() {
        use crate::deployments::reconciler::Reconciler;
        use crate::deployments::DeploymentsConfig;

        let setup = crate::deployments::testing::provisioning(1).await;
        let (store, d) = (setup.store.clone(), setup.deployment.clone());
        let tenant_id = d.tenant_id.clone();
        let mut unready = pod("p", "10.1.0.7", false, None);
        unready["metadata"]["labels"][LABEL] = json!(object_name(&d.id));
        let (client, calls) = mock_cluster(cluster_with(json!([unready])));
        let driver = Arc::new(KubeDriver::new(client, KubernetesConfig::default(), 60));
        let config = DeploymentsConfig {
            ready_timeout_secs: 1,
            ..Default::default()
        };
        let reconciler = Reconciler::new(store.clone(), driver, setup.router.clone(), config);
        reconciler.tick().await.unwrap();
        assert_eq!(
            store.deployment(&tenant_id, &d.id).await.unwrap().state,
            "provisioning"
        );
        tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
        reconciler.tick().await.unwrap();
        let failed = store.deployment(&tenant_id, &d.id).await.unwrap();
        assert_eq!(failed.state, "failed");
        assert_eq!(
            failed.status_message.as_deref(),
            Some(
                "0 of 1 replicas ready after 1 s (pod p: containers with unready status: \
                 [worker] (ContainersNotReady))"
            )
        );
        // Failing removed its objects.
        assert!(calls
            .lock()
            .unwrap()
            .iter()
            .any(|c| c.method == "DELETE" && c.uri.contains("/deployments/")));
    }
}
