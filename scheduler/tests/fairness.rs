//! Tenant fairness in simulation: a flood from one tenant does not delay another, and two
//! backlogged tenants' weighted service stays within the VTC bound.

mod common;

use common::Driver;
use engine::SamplingParams;
use scheduler::{AdmissionLimits, NewRequest, SchedulerConfig};

fn config() -> SchedulerConfig {
    SchedulerConfig {
        num_gpu_blocks: 1024,
        max_num_seqs: 8,
        max_num_batched_tokens: 256,
        max_model_len: 4096,
        eos_token_ids: vec![0],
        admission: AdmissionLimits {
            max_waiting_requests_per_tenant: 10_000,
            max_waiting_requests: 10_000,
            ..AdmissionLimits::default()
        },
        ..SchedulerConfig::default()
    }
}

fn req(id: String, tenant: &str, prompt_len: usize, max_tokens: usize) -> NewRequest {
    let prompt = (0..prompt_len)
        .map(|i| (i as u32 * 7 + id.len() as u32) % 900 + 1)
        .collect();
    let params = SamplingParams {
        max_tokens: Some(max_tokens),
        ignore_eos: true,
        seed: Some(1),
        ..Default::default()
    };
    NewRequest::new(id, tenant, prompt, params)
}

/// Steps from B's arrival to B's first token when A queued `backlog` requests before.
fn b_first_token_delay(backlog: usize) -> u64 {
    let mut d = Driver::new(config());
    for i in 0..backlog {
        d.sched
            .add_request(req(format!("a{i}"), "A", 64, 32))
            .unwrap();
    }
    // A's requests fill the batch before B shows up.
    for _ in 0..5 {
        d.step();
    }
    let arrival = d.step;
    for i in 0..10 {
        d.sched
            .add_request(req(format!("b{i}"), "B", 64, 32))
            .unwrap();
    }
    while d
        .out
        .get("b0")
        .and_then(|r| r.choices.get(&0))
        .and_then(|c| c.first_token_step)
        .is_none()
    {
        assert!(d.step - arrival < 10_000, "B starved");
        d.step();
    }
    let first = d.out["b0"].choices[&0].first_token_step.unwrap();
    // All of B is served long before A's backlog is.
    while (0..10).any(|i| {
        d.out
            .get(&format!("b{i}"))
            .is_none_or(|r| r.usage.is_none())
    }) {
        d.step();
    }
    assert!(
        d.sched.num_waiting_requests() > 0 || backlog < 50,
        "B finished while A still waits"
    );
    first - arrival
}

#[test]
fn flood_from_one_tenant_does_not_delay_another() {
    let small = b_first_token_delay(200);
    let large = b_first_token_delay(2000);
    // Bound: one of A's running requests must finish (32 tokens) before a slot frees up.
    assert!(
        small <= 34,
        "B waited {small} steps behind 200 of A's requests"
    );
    assert_eq!(small, large, "B's wait must not grow with A's backlog");
}

/// Weighted service (input 1, output 2, divided by plan weight), measured from the
/// per-tenant token totals, not from the scheduler's own fairness counters.
fn service(d: &Driver, tenant: &str, weight: f64) -> f64 {
    let s = d.sched.stats();
    s.tenants.get(tenant).map_or(0.0, |t| {
        (t.prompt_tokens_total as f64 + 2.0 * t.generation_tokens_total as f64) / weight
    })
}

#[test]
fn backlogged_tenants_service_gap_stays_within_the_vtc_bound() {
    let c = config();
    let mut d = Driver::new(c.clone());
    // Different shapes: A sends long prompts and short answers, B short prompts, long answers;
    // C pays for twice the weight.
    let (a_in, a_out, b_in, b_out) = (200, 8, 16, 60);
    for i in 0..1500 {
        d.sched
            .add_request(req(format!("a{i}"), "A", a_in, a_out))
            .unwrap();
        d.sched
            .add_request(req(format!("b{i}"), "B", b_in, b_out))
            .unwrap();
        let mut r = req(format!("c{i}"), "C", 64, 16);
        r.tenant_weight = 2.0;
        d.sched.add_request(r).unwrap();
    }
    // VTC's bound for two continuously backlogged tenants: 2 * max(w_in * L_in, w_out * M),
    // with L_in the longest input and M the most tokens a batch holds in KV.
    let kv_tokens = c.max_num_seqs * (a_in + a_out).max(b_in + b_out);
    let bound = 2.0 * f64::max(1.0 * a_in as f64, 2.0 * kv_tokens as f64);
    let mut max_gap: f64 = 0.0;
    let mut steps = 0;
    loop {
        let st = d.sched.stats();
        let backlogged = ["A", "B", "C"].iter().all(|t| {
            st.tenants
                .get(*t)
                .is_some_and(|x| x.num_waiting_requests > 0)
        });
        if !backlogged {
            break;
        }
        d.step();
        steps += 1;
        let (a, b, cc) = (
            service(&d, "A", 1.0),
            service(&d, "B", 1.0),
            service(&d, "C", 2.0),
        );
        for gap in [(a - b).abs(), (a - cc).abs(), (b - cc).abs()] {
            max_gap = max_gap.max(gap);
        }
    }
    let (a, b, cc) = (
        service(&d, "A", 1.0),
        service(&d, "B", 1.0),
        service(&d, "C", 2.0),
    );
    eprintln!("backlogged for {steps} steps; max gap {max_gap:.0}; bound {bound:.0}; service A {a:.0} B {b:.0} C/2 {cc:.0}");
    assert!(
        steps > 300,
        "the tenants stayed backlogged for a while ({steps} steps)"
    );
    assert!(
        max_gap <= bound,
        "service gap {max_gap} exceeds the VTC bound {bound}"
    );
    // The bound holds while each tenant's service grew well past it.
    assert!(
        a.min(b).min(cc) > 2.0 * bound,
        "service {a} {b} {cc} too small for the bound to mean much"
    );
}
