//! The usage page: tokens, requests and cost per day over a date range, grouped by model,
//! project or key, from the same per-minute rollup as `/v1/organization/usage/*` (never the raw
//! events). Charts are server-rendered SVG small multiples: one labelled chart per group, so
//! nothing is told by colour alone, each with a data table below; `/usage.csv` exports the
//! same rows.

use std::collections::{BTreeMap, HashMap};
use store::{KeyId, TenantId};

use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use maud::{html, Markup};

use super::layout::{date_of, parse_date, query_param, Ctx, PageResult, Section};
use super::{html as page, see_other, PageError};
use gateway::api::list::ListQuery;
use gateway::auth::Permission;
use gateway::error::ApiError;
use gateway::metering::money::Money;
use gateway::server::AppState;
use store::api_keys::KeyOwner;
use store::now_ms;
use store::usage::{UsageQuery, UsageTotals};

/// Longest date range, in days (one bar per day).
const MAX_DAYS: i64 = 92;
/// Groups drawn as their own chart; the table and CSV have them all.
const MAX_CHARTS: usize = 8;
const DAY_MS: i64 = 86_400_000;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Group {
    Model,
    Project,
    Key,
}

impl Group {
    fn parse(s: &str) -> Option<Group> {
        match s {
            "model" => Some(Group::Model),
            "project" => Some(Group::Project),
            "key" => Some(Group::Key),
            _ => None,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Group::Model => "model",
            Group::Project => "project",
            Group::Key => "key",
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Metric {
    Tokens,
    Requests,
    Cost,
}

impl Metric {
    fn parse(s: &str) -> Option<Metric> {
        match s {
            "tokens" => Some(Metric::Tokens),
            "requests" => Some(Metric::Requests),
            "cost" => Some(Metric::Cost),
            _ => None,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Metric::Tokens => "tokens",
            Metric::Requests => "requests",
            Metric::Cost => "cost",
        }
    }

    fn of(self, t: &UsageTotals) -> i64 {
        match self {
            Metric::Tokens => t.input_tokens + t.output_tokens,
            Metric::Requests => t.requests,
            Metric::Cost => t.cost.micros(),
        }
    }

    fn show(self, v: i64) -> String {
        match self {
            Metric::Tokens => format!("{v} tokens"),
            Metric::Requests => format!("{v} requests"),
            Metric::Cost => Money::from_micros(v).to_string(),
        }
    }
}

/// The page's query, validated.
struct Filter {
    /// Days since the epoch, inclusive.
    from: i64,
    to: i64,
    group: Group,
    metric: Metric,
    project: Option<String>,
}

impl Filter {
    fn parse(req: &HttpRequest) -> Result<Filter, ApiError> {
        let today = now_ms().div_euclid(DAY_MS);
        let date = |name: &str, default: i64| match query_param(req, name) {
            None => Ok(default),
            Some(v) => parse_date(&v).ok_or_else(|| {
                ApiError::invalid(name, format!("'{name}' must be a date (YYYY-MM-DD)."))
            }),
        };
        let to = date("to", today)?;
        let from = date("from", to - 6)?;
        if from > to {
            return Err(ApiError::invalid("from", "'from' must not be after 'to'."));
        }
        if to - from >= MAX_DAYS {
            return Err(ApiError::invalid(
                "from",
                format!("The range can span at most {MAX_DAYS} days."),
            ));
        }
        let group = match query_param(req, "group") {
            None => Group::Model,
            Some(g) => Group::parse(&g).ok_or_else(|| {
                ApiError::invalid("group", "'group' must be model, project or key.")
            })?,
        };
        let metric = match query_param(req, "metric") {
            None => Metric::Tokens,
            Some(m) => Metric::parse(&m).ok_or_else(|| {
                ApiError::invalid("metric", "'metric' must be tokens, requests or cost.")
            })?,
        };
        let project = query_param(req, "project");
        if project.as_ref().is_some_and(|p| p.len() > 64) {
            return Err(ApiError::invalid(
                "project",
                "'project' is not a project id.",
            ));
        }
        Ok(Filter {
            from,
            to,
            group,
            metric,
            project,
        })
    }

    fn days(&self) -> usize {
        (self.to - self.from + 1) as usize
    }

    fn query_string(&self) -> String {
        let mut q = form_urlencoded::Serializer::new(String::new());
        q.append_pair("from", &date_of(self.from * 86_400))
            .append_pair("to", &date_of(self.to * 86_400))
            .append_pair("group", self.group.as_str())
            .append_pair("metric", self.metric.as_str());
        if let Some(p) = &self.project {
            q.append_pair("project", p);
        }
        q.finish()
    }
}

/// One group's daily totals.
struct Series {
    label: String,
    days: Vec<UsageTotals>,
}

impl Series {
    fn total(&self, metric: Metric) -> i64 {
        self.days.iter().map(|d| metric.of(d)).sum()
    }
}

/// The filter's usage, one series per group (largest first by the filter's metric).
async fn load(state: &AppState, ctx: &Ctx, f: &Filter) -> Result<Vec<Series>, PageError> {
    ctx.principal.require(Permission::ReadUsage)?;
    let tenant = &ctx.principal.tenant_id;
    // A caller bound to one project sees only that one (sessions are not, today).
    let project_ids = match (&ctx.principal.project_id, &f.project) {
        (Some(own), Some(p)) if own != p => return Ok(Vec::new()),
        (Some(own), _) => vec![own.to_string()],
        (None, Some(p)) => vec![p.clone()],
        (None, None) => Vec::new(),
    };
    let start_ms = f.from * DAY_MS;
    let totals = state
        .store
        .usage_totals(&UsageQuery {
            tenant_id: tenant.clone(),
            endpoint: None,
            start_ms,
            from_ms: start_ms,
            end_ms: (f.to + 1) * DAY_MS,
            width_ms: DAY_MS,
            project_ids,
            api_key_ids: Vec::new(),
            models: Vec::new(),
            group_by_project: matches!(f.group, Group::Project | Group::Key),
            group_by_key: f.group == Group::Key,
            group_by_model: f.group == Group::Model,
        })
        .await?;
    let labels = Labels::load(state, tenant, f.group, &totals).await?;
    let mut groups: BTreeMap<String, Vec<UsageTotals>> = BTreeMap::new();
    for t in totals {
        let label = labels.of(f.group, &t);
        let days = groups
            .entry(label)
            .or_insert_with(|| vec![UsageTotals::default(); f.days()]);
        if let Some(day) = usize::try_from(t.bucket).ok().and_then(|i| days.get_mut(i)) {
            add(day, &t);
        }
    }
    let mut series: Vec<Series> = groups
        .into_iter()
        .map(|(label, days)| Series { label, days })
        .collect();
    series.sort_by_key(|s| std::cmp::Reverse(s.total(f.metric)));
    Ok(series)
}

fn add(into: &mut UsageTotals, t: &UsageTotals) {
    into.requests += t.requests;
    into.input_tokens += t.input_tokens;
    into.cached_tokens += t.cached_tokens;
    into.output_tokens += t.output_tokens;
    into.cost = into.cost.saturating_add(t.cost);
}

/// Display names of the projects and keys in a result.
struct Labels {
    projects: HashMap<String, String>,
    keys: HashMap<String, String>,
}

impl Labels {
    async fn load(
        state: &AppState,
        tenant: &TenantId,
        group: Group,
        totals: &[UsageTotals],
    ) -> Result<Labels, PageError> {
        let mut labels = Labels {
            projects: HashMap::new(),
            keys: HashMap::new(),
        };
        if group == Group::Model {
            return Ok(labels);
        }
        let page = ListQuery {
            limit: Some(100),
            after: None,
        }
        .page()?;
        for p in state.store.list_projects(tenant, true, &page).await?.items {
            labels.projects.insert(p.id.into_string(), p.name);
        }
        if group == Group::Key {
            for t in totals {
                let (Some(project), Some(key)) = (&t.project_id, &t.api_key_id) else {
                    continue;
                };
                if labels.keys.contains_key(key) {
                    continue;
                }
                // Revoked keys are not found: they keep their id.
                let name = match state
                    .store
                    .api_key(
                        tenant,
                        KeyOwner::Project(project),
                        &KeyId::from(key.as_str()),
                    )
                    .await
                {
                    Ok(record) => record.name,
                    Err(store::StoreError::NotFound(_)) => format!("{key} (revoked)"),
                    Err(e) => return Err(e.into()),
                };
                labels.keys.insert(key.clone(), name);
            }
        }
        Ok(labels)
    }

    fn of(&self, group: Group, t: &UsageTotals) -> String {
        match group {
            Group::Model => t.model.clone().unwrap_or_else(|| "(no model)".to_owned()),
            Group::Project => match &t.project_id {
                Some(p) => self.projects.get(p).cloned().unwrap_or_else(|| p.clone()),
                None => "Console (no project)".to_owned(),
            },
            Group::Key => match &t.api_key_id {
                Some(k) => self.keys.get(k).cloned().unwrap_or_else(|| k.clone()),
                None => "Console session (no key)".to_owned(),
            },
        }
    }
}

/// A bar chart of one series: one bar per day, every bar titled with its date and value, the
/// axis labelled in text.
fn chart(id: &str, title: &str, series: &[i64], from: i64, metric: Metric) -> Markup {
    const W: f64 = 600.0;
    const H: f64 = 160.0;
    const LEFT: f64 = 8.0;
    const BOTTOM: f64 = 20.0;
    let max = series.iter().copied().max().unwrap_or(0).max(1);
    let total: i64 = series.iter().sum();
    let n = series.len().max(1) as f64;
    let slot = (W - LEFT) / n;
    let bar = (slot * 0.7).max(1.0);
    let summary = format!(
        "{title}: {} in total, at most {} a day",
        metric.show(total),
        metric.show(max)
    );
    html! {
        figure.chart {
            svg id=(id) role="img" aria-label=(summary) viewBox=(format!("0 0 {W} {H}")) preserveAspectRatio="none" {
                title { (summary) }
                line.axis x1=(LEFT) y1=(H - BOTTOM) x2=(W) y2=(H - BOTTOM) {}
                @for (i, v) in series.iter().enumerate() {
                    @let h = (*v as f64 / max as f64) * (H - BOTTOM - 4.0);
                    rect.bar x=(format!("{:.1}", LEFT + i as f64 * slot + (slot - bar) / 2.0))
                        y=(format!("{:.1}", H - BOTTOM - h)) width=(format!("{bar:.1}")) height=(format!("{h:.1}")) {
                        title { (date_of((from + i as i64) * 86_400)) ": " (metric.show(*v)) }
                    }
                }
            }
            figcaption {
                strong { (title) } " · " span.total { (metric.show(total)) }
                " · peak " (metric.show(max)) " a day · "
                (date_of(from * 86_400)) " to " (date_of((from + series.len() as i64 - 1) * 86_400))
            }
        }
    }
}

async fn usage_page(state: &AppState, ctx: &Ctx, f: &Filter) -> Result<Markup, PageError> {
    let series = load(state, ctx, f).await?;
    let mut all = vec![UsageTotals::default(); f.days()];
    for s in &series {
        for (day, t) in all.iter_mut().zip(&s.days) {
            add(day, t);
        }
    }
    let sum = all.iter().fold(UsageTotals::default(), |mut acc, t| {
        add(&mut acc, t);
        acc
    });
    let projects = state
        .store
        .list_projects(
            &ctx.principal.tenant_id,
            false,
            &ListQuery {
                limit: Some(100),
                after: None,
            }
            .page()?,
        )
        .await?
        .items;
    let metric = f.metric;
    let values = |days: &[UsageTotals]| days.iter().map(|t| metric.of(t)).collect::<Vec<_>>();
    Ok(super::layout::layout(
        ctx,
        Section::Usage,
        "Usage",
        html! {
            form.filters method="get" action="/usage" {
                div { label for="from" { "From" } input #from type="date" name="from" value=(date_of(f.from * 86_400)) required; }
                div { label for="to" { "To" } input #to type="date" name="to" value=(date_of(f.to * 86_400)) required; }
                div {
                    label for="group" { "Group by" }
                    select #group name="group" {
                        @for g in [Group::Model, Group::Project, Group::Key] {
                            option value=(g.as_str()) selected[g == f.group] { (g.as_str()) }
                        }
                    }
                }
                div {
                    label for="metric" { "Chart" }
                    select #metric name="metric" {
                        @for m in [Metric::Tokens, Metric::Requests, Metric::Cost] {
                            option value=(m.as_str()) selected[m == f.metric] { (m.as_str()) }
                        }
                    }
                }
                div {
                    label for="project" { "Project" }
                    select #project name="project" {
                        option value="" { "All projects" }
                        @for p in &projects {
                            option value=(p.id) selected[f.project.as_deref() == Some(p.id.as_str())] { (p.name) }
                        }
                    }
                }
                div { button type="submit" { "Show" } }
            }
            dl.stats #usage-totals {
                dt { "Requests" } dd #total-requests { (sum.requests) }
                dt { "Input tokens" } dd #total-input { (sum.input_tokens) }
                dt { "Output tokens" } dd #total-output { (sum.output_tokens) }
                dt { "Cost" } dd #total-cost { (sum.cost) }
            }
            p { a.button.secondary #csv href=(format!("/usage.csv?{}", f.query_string())) download { "Export CSV" } }
            h2 { "All usage" }
            (chart("chart-all", &format!("All {}", metric.as_str()), &values(&all), f.from, metric))
            h2 { "By " (f.group.as_str()) }
            @if series.is_empty() {
                p.muted #no-usage { "No usage in this range." }
            }
            @for (i, s) in series.iter().take(MAX_CHARTS).enumerate() {
                (chart(&format!("chart-{i}"), &s.label, &values(&s.days), f.from, metric))
            }
            @if series.len() > MAX_CHARTS {
                p.muted { (series.len() - MAX_CHARTS) " smaller groups are in the table and the CSV only." }
            }
            h2 { "Per day" }
            div.table-wrap {
                table #usage-table {
                    thead { tr { th scope="col" { "Date" } th scope="col" { (f.group.as_str()) } th scope="col" { "Requests" } th scope="col" { "Input tokens" } th scope="col" { "Output tokens" } th scope="col" { "Cost" } } }
                    tbody {
                        @for (day, s, t) in rows(&series) {
                            tr { td { (date_of((f.from + day) * 86_400)) } td { (s) } td { (t.requests) } td { (t.input_tokens) } td { (t.output_tokens) } td { (t.cost) } }
                        }
                    }
                }
            }
        },
    ))
}

/// Non-empty (day, group, totals), by day then group.
fn rows(series: &[Series]) -> Vec<(i64, &str, &UsageTotals)> {
    let mut rows: Vec<(i64, &str, &UsageTotals)> = series
        .iter()
        .flat_map(|s| {
            s.days
                .iter()
                .enumerate()
                .filter(|(_, t)| t.requests > 0 || t.input_tokens + t.output_tokens > 0)
                .map(|(day, t)| (day as i64, s.label.as_str(), t))
        })
        .collect();
    rows.sort_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)));
    rows
}

pub async fn usage(state: web::Data<AppState>, req: HttpRequest) -> PageResult {
    let Some(ctx) = Ctx::load(&state, &req).await? else {
        return Ok(see_other("/signin"));
    };
    let filter = Filter::parse(&req)?;
    Ok(page(
        StatusCode::OK,
        usage_page(&state, &ctx, &filter).await?,
    ))
}

/// A CSV field: quoted when needed, and never read as a formula by a spreadsheet.
fn csv_field(value: &str) -> String {
    let value = if value.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{value}")
    } else {
        value.to_owned()
    };
    if value.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", value.replace('"', "\"\""))
    } else {
        value
    }
}

pub async fn usage_csv(state: web::Data<AppState>, req: HttpRequest) -> PageResult {
    let Some(ctx) = Ctx::load(&state, &req).await? else {
        return Ok(see_other("/signin"));
    };
    let f = Filter::parse(&req)?;
    let series = load(&state, &ctx, &f).await?;
    let mut csv = format!(
        "date,{},requests,input_tokens,cached_input_tokens,output_tokens,cost_usd\r\n",
        f.group.as_str()
    );
    for (day, label, t) in rows(&series) {
        let cost = t.cost.to_string();
        csv.push_str(&format!(
            "{},{},{},{},{},{},{}\r\n",
            date_of((f.from + day) * 86_400),
            csv_field(label),
            t.requests,
            t.input_tokens,
            t.cached_tokens,
            t.output_tokens,
            cost.trim_start_matches('$'),
        ));
    }
    let name = format!(
        "usage-{}-{}.csv",
        date_of(f.from * 86_400),
        date_of(f.to * 86_400)
    );
    let mut res = HttpResponse::Ok()
        .content_type("text/csv; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((
            header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"{name}\""),
        ))
        .body(csv);
    super::secure_headers(&mut res);
    Ok(res)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_fields_are_quoted_and_defused() {
        assert_eq!(csv_field("gpt"), "gpt");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("=SUM(A1)"), "'=SUM(A1)");
        assert_eq!(csv_field("-1,2"), "\"'-1,2\"");
    }

    #[test]
    fn charts_title_every_bar_in_text() {
        let svg = chart("c", "m", &[0, 5, 10], 0, Metric::Tokens).into_string();
        assert_eq!(svg.matches("<rect").count(), 3);
        assert!(svg.contains("1970-01-03: 10 tokens"));
        assert!(svg.contains("15 tokens in total"));
    }
}
