//! A local fake of the Stripe API for the billing tests: a real HTTP server that checks what
//! async-stripe sends (paths, form fields, the secret key, idempotency keys, the API version
//! header) and answers like Stripe: the same idempotency key replays the first response, and a
//! meter event's identifier is counted once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use serde_json::{json, Value};

pub const SECRET_KEY: &str = "sk_test_starfire_0123456789";

/// One request the fake received.
#[derive(Debug, Clone)]
pub struct Received {
    pub method: String,
    pub path: String,
    pub form: HashMap<String, String>,
    pub idempotency_key: Option<String>,
}

#[derive(Default)]
pub struct State {
    pub requests: Vec<Received>,
    /// Idempotency key → (status, body) of the first response.
    replies: HashMap<String, (u16, Value)>,
    pub customers: Vec<Value>,
    pub sessions: Vec<Value>,
    /// Meter event identifier → (value, customer, idempotency key).
    pub meter_events: HashMap<String, (i64, String, Option<String>)>,
    /// Meter event requests to fail with a 500 after recording the event (a response lost on
    /// the way back), before answering normally.
    pub fail_meter_after_recording: usize,
    /// Problems with what the client sent; a test asserts this stays empty.
    pub violations: Vec<String>,
}

pub struct FakeStripe {
    pub url: String,
    pub state: Arc<Mutex<State>>,
    handle: actix_web::dev::ServerHandle,
}

impl Drop for FakeStripe {
    fn drop(&mut self) {
        actix_web::rt::spawn(self.handle.clone().stop(false));
    }
}

impl FakeStripe {
    pub fn start() -> FakeStripe {
        let state = Arc::new(Mutex::new(State::default()));
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().unwrap().port();
        let shared = state.clone();
        let server = HttpServer::new(move || {
            App::new()
                .app_data(web::Data::new(shared.clone()))
                .default_service(web::to(handle))
        })
        .workers(1)
        .disable_signals()
        .listen(listener)
        .expect("listen")
        .run();
        let handle = server.handle();
        actix_web::rt::spawn(server);
        FakeStripe {
            url: format!("http://127.0.0.1:{port}/"),
            state,
            handle,
        }
    }

    pub fn requests_to(&self, path: &str) -> Vec<Received> {
        let state = self.state.lock().unwrap();
        state
            .requests
            .iter()
            .filter(|r| r.path == path)
            .cloned()
            .collect()
    }

    pub fn violations(&self) -> Vec<String> {
        self.state.lock().unwrap().violations.clone()
    }
}

fn error(status: u16, message: &str) -> (u16, Value) {
    (
        status,
        json!({"error": {"type": "invalid_request_error", "message": message}}),
    )
}

async fn handle(
    state: web::Data<Arc<Mutex<State>>>,
    req: HttpRequest,
    body: web::Bytes,
) -> HttpResponse {
    let form: HashMap<String, String> = form_urlencoded::parse(&body).into_owned().collect();
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let received = Received {
        method: req.method().to_string(),
        path: req.path().to_owned(),
        form: form.clone(),
        idempotency_key: header("idempotency-key"),
    };
    let mut st = state.lock().unwrap();
    st.requests.push(received.clone());
    if header("authorization").as_deref() != Some(&format!("Bearer {SECRET_KEY}")) {
        st.violations
            .push(format!("{}: wrong or missing secret key", received.path));
        return reply(error(401, "Invalid API Key provided"));
    }
    if header("stripe-version").is_none() {
        st.violations
            .push(format!("{}: no Stripe-Version header", received.path));
    }
    if received.method == "POST" {
        let form_type = header("content-type").unwrap_or_default();
        if !form_type.starts_with("application/x-www-form-urlencoded") {
            st.violations
                .push(format!("{}: body is {form_type}", received.path));
        }
        let Some(key) = received.idempotency_key.clone() else {
            st.violations.push(format!(
                "{}: POST without an Idempotency-Key",
                received.path
            ));
            return reply(error(400, "an idempotency key is required by this fake"));
        };
        if let Some(first) = st.replies.get(&key) {
            return reply(first.clone());
        }
        let (status, body) = create(&mut st, &received);
        // Stripe saves the result of a request that ran, keyed by its idempotency key; the
        // simulated lost responses are not saved (the retry must be answered normally).
        if status != 500 {
            st.replies.insert(key, (status, body.clone()));
        }
        return reply((status, body));
    }
    reply(error(404, "unknown route"))
}

fn reply((status, body): (u16, Value)) -> HttpResponse {
    HttpResponse::build(actix_web::http::StatusCode::from_u16(status).unwrap())
        .content_type("application/json")
        .body(body.to_string())
}

fn require(st: &mut State, r: &Received, field: &str, expected: Option<&str>) -> Option<String> {
    let value = r.form.get(field).cloned();
    match (&value, expected) {
        (None, _) => st.violations.push(format!("{}: no '{field}'", r.path)),
        (Some(v), Some(e)) if v != e => st
            .violations
            .push(format!("{}: '{field}' is '{v}', expected '{e}'", r.path)),
        _ => {}
    }
    value
}

fn create(st: &mut State, r: &Received) -> (u16, Value) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    match r.path.as_str() {
        "/v1/customers" => {
            require(st, r, "name", None);
            let org = require(st, r, "metadata[starfire_organization]", None).unwrap_or_default();
            let customer = json!({
                "id": format!("cus_{}", st.customers.len() + 1),
                "object": "customer",
                "created": now,
                "livemode": false,
                "name": r.form.get("name"),
                "metadata": {"starfire_organization": org},
            });
            st.customers.push(customer.clone());
            (200, customer)
        }
        "/v1/checkout/sessions" => {
            require(st, r, "mode", Some("payment"));
            require(st, r, "line_items[0][quantity]", Some("1"));
            require(st, r, "line_items[0][price_data][currency]", Some("usd"));
            require(
                st,
                r,
                "line_items[0][price_data][product_data][name]",
                Some("Starfire credits"),
            );
            let cents = require(st, r, "line_items[0][price_data][unit_amount]", None)
                .and_then(|c| c.parse::<i64>().ok())
                .unwrap_or(0);
            let customer = require(st, r, "customer", None).unwrap_or_default();
            let reference = require(st, r, "client_reference_id", None);
            let top_up = require(st, r, "metadata[starfire_top_up]", reference.as_deref());
            let org = require(st, r, "metadata[starfire_organization]", None);
            require(st, r, "success_url", None);
            require(st, r, "cancel_url", None);
            let id = format!("cs_test_{}", st.sessions.len() + 1);
            let session = json!({
                "id": id,
                "object": "checkout.session",
                "amount_subtotal": cents,
                "amount_total": cents,
                "automatic_tax": {"enabled": false},
                "client_reference_id": reference,
                "created": now,
                "currency": "usd",
                "custom_fields": [],
                "custom_text": {},
                "customer": customer,
                "expires_at": now + 86_400,
                "livemode": false,
                "metadata": {"starfire_top_up": top_up, "starfire_organization": org},
                "mode": "payment",
                "payment_method_types": ["card"],
                "payment_status": "unpaid",
                "shipping_options": [],
                "status": "open",
                "url": format!("https://checkout.stripe.test/c/pay/{id}"),
            });
            st.sessions.push(session.clone());
            (200, session)
        }
        "/v1/billing/meter_events" => {
            let name = require(st, r, "event_name", None).unwrap_or_default();
            let identifier = require(st, r, "identifier", None).unwrap_or_default();
            let customer = require(st, r, "payload[stripe_customer_id]", None).unwrap_or_default();
            let value = require(st, r, "payload[value]", None)
                .and_then(|v| v.parse::<i64>().ok())
                .unwrap_or(-1);
            let timestamp = require(st, r, "timestamp", None)
                .and_then(|t| t.parse::<i64>().ok())
                .unwrap_or(0);
            if value < 0 || timestamp < now - 35 * 86_400 || timestamp > now + 300 {
                st.violations.push(format!(
                    "meter event {identifier}: value {value}, timestamp {timestamp}"
                ));
            }
            if let Some((_, _, key)) = st.meter_events.get(&identifier) {
                if key != &r.idempotency_key {
                    return error(400, "An event with this identifier already exists.");
                }
            } else {
                st.meter_events.insert(
                    identifier.clone(),
                    (value, customer.clone(), r.idempotency_key.clone()),
                );
            }
            if st.fail_meter_after_recording > 0 {
                st.fail_meter_after_recording -= 1;
                return error(500, "simulated: the response was lost");
            }
            (
                200,
                json!({
                    "object": "billing.meter_event",
                    "created": now,
                    "event_name": name,
                    "identifier": identifier,
                    "livemode": false,
                    "payload": {"stripe_customer_id": customer, "value": value.to_string()},
                    "timestamp": timestamp,
                }),
            )
        }
        other => error(404, &format!("no such route: {other}")),
    }
}
