//! Server-rendered pages in Simplified Chinese (minijinja templates + htmx).

use crate::auth::{Principal, SESSION_COOKIE, principal_of};
use crate::{AppState, blocking, blocking_write};
use axum::Form;
use axum::Router;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use chrono::{Datelike, Utc};
use chrono_tz::Asia::Shanghai;
use minijinja::{Environment, context};
use serde::Deserialize;
use serde_json::Value;
use std::collections::HashMap;
use yigong_core::{Fen, OrgKind, Tier};
use yigong_fhir::codes::*;
use yigong_fhir::search::{Filter, SearchSpec, SortField, Target, TotalMode, ValueMatch};
use yigong_store::{Scope, TreeNode};

pub fn templates() -> Environment<'static> {
    let mut env = Environment::new();
    for (name, src) in [
        ("base.html", include_str!("../templates/base.html")),
        ("login.html", include_str!("../templates/login.html")),
        ("home.html", include_str!("../templates/home.html")),
        ("orgs.html", include_str!("../templates/orgs.html")),
        ("patients.html", include_str!("../templates/patients.html")),
        (
            "patient_rows.html",
            include_str!("../templates/patient_rows.html"),
        ),
        ("patient.html", include_str!("../templates/patient.html")),
        ("audit.html", include_str!("../templates/audit.html")),
        (
            "mpi_reviews.html",
            include_str!("../templates/mpi_reviews.html"),
        ),
        (
            "mpi_person.html",
            include_str!("../templates/mpi_person.html"),
        ),
        ("error.html", include_str!("../templates/error.html")),
        (
            "care_home.html",
            include_str!("../templates/care_home.html"),
        ),
        (
            "care_list.html",
            include_str!("../templates/care_list.html"),
        ),
        (
            "care_task.html",
            include_str!("../templates/care_task.html"),
        ),
        ("care_new.html", include_str!("../templates/care_new.html")),
        (
            "care_slots.html",
            include_str!("../templates/care_slots.html"),
        ),
        (
            "care_stats.html",
            include_str!("../templates/care_stats.html"),
        ),
        (
            "care_notices.html",
            include_str!("../templates/care_notices.html"),
        ),
    ] {
        env.add_template(name, src).expect("template parses");
    }
    rx::add_templates(&mut env);
    cockpit::add_templates(&mut env);
    pharmacy::add_templates(&mut env);
    env
}

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(home))
        .route("/login", get(login_form).post(login))
        .route("/logout", get(logout))
        .route("/orgs", get(orgs))
        .route("/patients", get(patients))
        .route("/patients/{id}", get(patient))
        .route("/audit", get(audit))
        .merge(mpi::routes())
        .merge(care::routes())
        .merge(rx::routes())
        .merge(pharmacy::routes())
        .merge(cockpit::routes())
        .route("/static/{file}", get(asset))
}

async fn asset(Path(file): Path<String>) -> Response {
    let (body, ctype): (&'static [u8], &str) = match file.as_str() {
        "echarts.min.js" => (
            include_bytes!("../assets/echarts.min.js"),
            "text/javascript; charset=utf-8",
        ),
        "htmx.min.js" => (
            include_bytes!("../assets/htmx.min.js"),
            "text/javascript; charset=utf-8",
        ),
        "app.css" => (
            include_bytes!("../assets/app.css"),
            "text/css; charset=utf-8",
        ),
        _ => return (StatusCode::NOT_FOUND, "未找到").into_response(),
    };
    let mut r = body.into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_str(ctype).unwrap_or(HeaderValue::from_static("text/plain")),
    );
    r.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=86400"),
    );
    r
}

fn render(st: &AppState, name: &str, ctx: minijinja::Value) -> Response {
    match st.templates.get_template(name).and_then(|t| t.render(ctx)) {
        Ok(html) => Html(html).into_response(),
        Err(e) => {
            tracing::error!("template {name}: {e:#}");
            (StatusCode::INTERNAL_SERVER_ERROR, "页面渲染失败").into_response()
        }
    }
}

fn error_page(st: &AppState, p: &Principal, status: StatusCode, msg: &str) -> Response {
    let mut r = render(
        st,
        "error.html",
        context! { title => "无法打开", message => msg, user => user_ctx(st, p), nav => "" },
    );
    *r.status_mut() = status;
    r
}

fn user_ctx(st: &AppState, p: &Principal) -> minijinja::Value {
    context! { display => p.0.display.clone(), role => p.0.role.label_zh(), scope => st.svc.scope_label(&p.0.scope) }
}

/// The signed-in user of a page request, or a redirect to the login page.
async fn page_user(
    st: &AppState,
    req_parts: &axum::http::request::Parts,
) -> Result<Principal, Response> {
    match principal_of(req_parts, st).await {
        Ok(Some(p)) => {
            // Load the organisation names off the async threads, once.
            if !st.svc.org_names_loaded() {
                let svc = st.svc.clone();
                blocking(move || svc.org_names()).await;
            }
            Ok(p)
        }
        _ => Err(Redirect::to("/login").into_response()),
    }
}

macro_rules! signed_in {
    ($st:expr, $req:expr) => {{
        let (parts, _) = $req.into_parts();
        match page_user(&$st, &parts).await {
            Ok(p) => (p, parts),
            Err(r) => return r,
        }
    }};
}

fn county_name(tree: &[TreeNode]) -> String {
    tree.iter()
        .find(|n| n.kind.as_deref() == Some("county"))
        .map(|n| n.name.clone())
        .unwrap_or_else(|| "本县".into())
}

fn local_time(s: &str) -> String {
    chrono::DateTime::parse_from_rfc3339(s)
        .map(|t| {
            t.with_timezone(&Shanghai)
                .format("%Y-%m-%d %H:%M")
                .to_string()
        })
        .unwrap_or_else(|_| s.to_string())
}

async fn login_form(State(st): State<AppState>) -> Response {
    let svc = st.svc.clone();
    let tree = blocking(move || svc.store.org_tree())
        .await
        .unwrap_or_default();
    render(
        &st,
        "login.html",
        context! { title => "登录", county_name => county_name(&tree), username => "" },
    )
}

#[derive(Deserialize)]
struct LoginForm {
    username: String,
    password: String,
}

async fn login(State(st): State<AppState>, Form(f): Form<LoginForm>) -> Response {
    let svc = st.svc.clone();
    let name = f.username.trim().to_string();
    let result = blocking(
        move || -> Result<Option<String>, yigong_store::StoreError> {
            match svc.store.verify_password(&name, &f.password)? {
                Some(u) => Ok(Some(svc.store.issue_credential(
                    &u.name,
                    "session",
                    chrono::Duration::hours(12),
                )?)),
                None => Ok(None),
            }
        },
    )
    .await;
    match result {
        Ok(Some(token)) => {
            let mut r = Redirect::to("/").into_response();
            let cookie =
                format!("{SESSION_COOKIE}={token}; Path=/; HttpOnly; SameSite=Lax; Max-Age=43200");
            r.headers_mut().insert(
                header::SET_COOKIE,
                HeaderValue::from_str(&cookie).expect("cookie is ascii"),
            );
            r
        }
        _ => {
            let mut r = render(
                &st,
                "login.html",
                context! { title => "登录", error => "用户名或密码错误", username => f.username },
            );
            *r.status_mut() = StatusCode::UNAUTHORIZED;
            r
        }
    }
}

async fn logout(State(st): State<AppState>, req: Request) -> Response {
    let (parts, _) = req.into_parts();
    if let Some(token) = crate::auth::cookie_value(&parts, SESSION_COOKIE).map(str::to_string) {
        let svc = st.svc.clone();
        let _ = blocking(move || svc.store.revoke_credential(&token)).await;
    }
    let mut r = Redirect::to("/login").into_response();
    r.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static("yigong_session=; Path=/; Max-Age=0"),
    );
    r
}

fn month_key(year: i32, month: u32) -> String {
    format!("{year:04}-{month:02}")
}

async fn home(State(st): State<AppState>, req: Request) -> Response {
    let (p, _) = signed_in!(st, req);
    let now = Utc::now().with_timezone(&Shanghai);
    let this_month = month_key(now.year(), now.month());
    let months: Vec<String> = (0..12)
        .rev()
        .map(|back| {
            let total = now.year() * 12 + now.month0() as i32 - back;
            month_key(total.div_euclid(12), total.rem_euclid(12) as u32 + 1)
        })
        .collect();
    let since = months[0].clone();
    let svc = st.svc.clone();
    let scope = p.0.scope.clone();
    let tm = this_month.clone();
    let res = blocking(move || -> Result<_, yigong_store::StoreError> {
        Ok((
            svc.store.overview(&scope, &tm, &since)?,
            svc.store.org_tree()?,
        ))
    })
    .await;
    let (ov, tree) = match res {
        Ok(v) => v,
        Err(e) => return error_page(&st, &p, StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    };
    let tiers: Vec<minijinja::Value> = ["county", "township", "village"]
        .iter()
        .map(|t| {
            let count = ov
                .institutions
                .iter()
                .find(|(c, _)| c == t)
                .map_or(0, |(_, n)| *n);
            context! { label => Tier::from_code(t).map_or("其他", Tier::label_zh), count => count }
        })
        .collect();
    let series: Vec<minijinja::Value> = ["village", "township", "county", "other"]
        .iter()
        .map(|t| {
            let data: Vec<i64> = months
                .iter()
                .map(|m| {
                    ov.monthly
                        .iter()
                        .filter(|c| &c.month == m && c.tier == *t)
                        .map(|c| c.count)
                        .sum()
                })
                .collect();
            let name = if *t == "other" {
                "县外及其他"
            } else {
                Tier::from_code(t).map_or("其他", Tier::label_zh)
            };
            context! { name => name, data => data }
        })
        .collect();
    let total: i64 = ov.monthly.iter().map(|c| c.count).sum();
    let primary: i64 = ov
        .monthly
        .iter()
        .filter(|c| c.tier == "township" || c.tier == "village")
        .map(|c| c.count)
        .sum();
    let primary_share = if total > 0 {
        format!("{:.1}%", primary as f64 * 100.0 / total as f64)
    } else {
        "—".into()
    };
    render(
        &st,
        "home.html",
        context! {
            title => "总览", nav => "home", user => user_ctx(&st, &p), county_name => county_name(&tree),
            now => now.format("%Y-%m-%d %H:%M").to_string(),
            ov => context! { communities => ov.communities, residents => ov.residents, visits_this_month => ov.visits_this_month },
            tiers => tiers, primary_share => primary_share,
            chart => context! { months => months, series => series },
        },
    )
}

fn kind_label(k: &Option<String>) -> &'static str {
    k.as_deref()
        .and_then(OrgKind::from_code)
        .map_or("机构", OrgKind::label_zh)
}

async fn orgs(State(st): State<AppState>, req: Request) -> Response {
    let (p, _) = signed_in!(st, req);
    let svc = st.svc.clone();
    let tree = match blocking(move || svc.store.org_tree()).await {
        Ok(t) => t,
        Err(e) => return error_page(&st, &p, StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    };
    let mut children: HashMap<&str, Vec<&TreeNode>> = HashMap::new();
    for n in &tree {
        if let Some(parent) = &n.parent {
            children.entry(parent.as_str()).or_default().push(n);
        }
    }
    let dept_count = |id: &str| {
        children.get(id).map_or(0, |c| {
            c.iter()
                .filter(|n| n.kind.as_deref() == Some("department"))
                .count()
        })
    };
    let item = |n: &TreeNode| {
        context! { name => n.name.clone(), kind => kind_label(&n.kind), lead => n.lead, sub_centre => n.sub_centre, departments => dept_count(&n.id) }
    };
    let visible_comm = |id: &str| match &p.0.scope {
        Scope::County => true,
        Scope::Community(c) => c == id,
        Scope::Institution(i) => tree
            .iter()
            .any(|n| &n.id == i && n.comm.as_deref() == Some(id)),
    };
    let counties: Vec<minijinja::Value> = tree
        .iter()
        .filter(|n| n.kind.as_deref() == Some("county"))
        .map(|county| {
            let kids = children.get(county.id.as_str()).cloned().unwrap_or_default();
            let communities: Vec<minijinja::Value> = kids
                .iter()
                .filter(|c| c.kind.as_deref() == Some("community") && visible_comm(&c.id))
                .map(|com| {
                    let members = children.get(com.id.as_str()).cloned().unwrap_or_default();
                    let tiers: Vec<minijinja::Value> = [Tier::County, Tier::Township, Tier::Village]
                        .iter()
                        .map(|t| {
                            let mut items: Vec<&&TreeNode> = members.iter().filter(|m| m.tier.as_deref() == Some(t.code())).collect();
                            items.sort_by_key(|m| (!m.lead, !m.sub_centre, m.id.clone()));
                            context! { code => t.code(), label => t.label_zh(), items => items.into_iter().map(|m| item(m)).collect::<Vec<_>>() }
                        })
                        .collect();
                    context! { name => com.name.clone(), kind => kind_label(&com.kind), count => members.len(), tiers => tiers }
                })
                .collect();
            let direct: Vec<minijinja::Value> = if p.0.scope == Scope::County {
                kids.iter().filter(|c| c.kind.as_deref() != Some("community")).map(|n| item(n)).collect()
            } else {
                vec![]
            };
            context! { name => county.name.clone(), kind => kind_label(&county.kind), children => communities, direct => direct }
        })
        .collect();
    render(
        &st,
        "orgs.html",
        context! { title => "机构", nav => "orgs", user => user_ctx(&st, &p), tree => counties },
    )
}

fn str_of<'a>(v: &'a Value, path: &[&str]) -> &'a str {
    let mut cur = v;
    for p in path {
        cur = match p.parse::<usize>() {
            Ok(i) => &cur[i],
            Err(_) => &cur[*p],
        };
    }
    cur.as_str().unwrap_or("")
}

fn reference_id(v: &Value) -> String {
    v.get("reference")
        .and_then(Value::as_str)
        .and_then(|r| r.rsplit('/').next())
        .unwrap_or("")
        .to_string()
}

fn resident_id_of(v: &Value) -> Option<String> {
    v.get("identifier")?
        .as_array()?
        .iter()
        .find(|i| i["system"] == SID_RESIDENT_ID)?
        .get("value")?
        .as_str()
        .map(str::to_string)
}

fn masked(id: &str) -> String {
    if id.len() == 18 {
        format!("{}********{}", &id[..6], &id[14..])
    } else {
        id.to_string()
    }
}

fn gender_zh(g: &str) -> &'static str {
    match g {
        "male" => "男",
        "female" => "女",
        "other" => "其他",
        _ => "未知",
    }
}

fn patient_row(v: &Value, names: &HashMap<String, String>) -> minijinja::Value {
    let org = reference_id(&v["managingOrganization"]);
    context! {
        id => str_of(v, &["id"]),
        name => str_of(v, &["name", "0", "text"]),
        gender => gender_zh(str_of(v, &["gender"])),
        birth => str_of(v, &["birthDate"]),
        rid => resident_id_of(v).map(|r| masked(&r)).unwrap_or_else(|| "—".into()),
        phone => str_of(v, &["telecom", "0", "value"]),
        org => names.get(&org).cloned().unwrap_or(org),
    }
}

#[derive(Deserialize, Default)]
struct PatientQuery {
    #[serde(default)]
    q: String,
}

/// Interprets the search box: resident ID, phone number or name.
fn patient_spec(q: &str) -> Result<SearchSpec, String> {
    let q = q.trim();
    let digits = q
        .chars()
        .all(|c| c.is_ascii_digit() || c == 'X' || c == 'x');
    let filter = if digits && (q.len() == 18 || q.len() == 15) {
        let id = yigong_core::ResidentId::parse(q).map_err(|e| e.message_zh().to_string())?;
        Filter {
            target: Target::Index("identifier".into()),
            matches: vec![ValueMatch::Eq(id.as_str().to_string())],
        }
    } else if digits && q.len() == 11 {
        Filter {
            target: Target::Index("phone".into()),
            matches: vec![ValueMatch::Eq(q.to_string())],
        }
    } else {
        Filter {
            target: Target::Index("name".into()),
            matches: vec![ValueMatch::Prefix(yigong_fhir::extract::normalize_text(q))],
        }
    };
    Ok(SearchSpec {
        rtype: "Patient".into(),
        filters: vec![filter],
        sort: vec![(SortField::Name, false)],
        count: 50,
        offset: 0,
        total: TotalMode::Accurate,
        summary_count: false,
        elements: None,
    })
}

async fn patients(
    State(st): State<AppState>,
    Query(pq): Query<PatientQuery>,
    headers: HeaderMap,
    req: Request,
) -> Response {
    let (p, _) = signed_in!(st, req);
    let q = pq.q.trim().to_string();
    let mut error = None;
    let mut rows = vec![];
    let mut total = 0;
    if !q.is_empty() {
        match patient_spec(&q) {
            Err(e) => error = Some(e),
            Ok(spec) => {
                let svc = st.svc.clone();
                let p2 = p.clone();
                let res = blocking(move || -> Result<_, String> {
                    svc.search(&p2, &spec).map_err(|i| i.zh)
                })
                .await;
                match res {
                    Ok((t, found)) => {
                        let names = st.svc.org_names();
                        total = t.unwrap_or(0);
                        rows = found
                            .iter()
                            .filter_map(|s| serde_json::from_str::<Value>(&s.body).ok())
                            .map(|v| patient_row(&v, &names))
                            .collect();
                    }
                    Err(e) => error = Some(e),
                }
            }
        }
    }
    let partial = headers.contains_key("hx-request") && !headers.contains_key("hx-boosted");
    let ctx = context! { title => "居民", nav => "patients", user => user_ctx(&st, &p), q => q, rows => rows, total => total, error => error };
    render(
        &st,
        if partial {
            "patient_rows.html"
        } else {
            "patients.html"
        },
        ctx,
    )
}

fn money_of(ext: &Value, part: &str) -> Fen {
    ext["extension"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|e| e["url"] == part)
        .and_then(|e| Fen::parse_yuan(&e["valueMoney"]["value"].to_string()))
        .unwrap_or(Fen::ZERO)
}

fn extension<'a>(v: &'a Value, url: &str) -> Option<&'a Value> {
    v["extension"].as_array()?.iter().find(|e| e["url"] == url)
}

async fn patient(State(st): State<AppState>, Path(id): Path<String>, req: Request) -> Response {
    let (p, _) = signed_in!(st, req);
    let svc = st.svc.clone();
    let p2 = p.clone();
    let res = blocking(move || -> Result<_, yigong_fhir::Issue> {
        let everything = svc.everything(&p2, &id)?;
        let person = svc
            .store
            .mpi_person_of(&id)
            .map_err(crate::service::store_issue)?;
        // Who looked at any of the resident's records, newest first.
        let mut accesses = vec![];
        for pid in svc
            .store
            .mpi_linked_patients(&id)
            .map_err(crate::service::store_issue)?
        {
            accesses.extend(
                svc.store
                    .access_history(&pid, 20)
                    .map_err(crate::service::store_issue)?,
            );
        }
        accesses.sort_by(|a, b| b.at.cmp(&a.at));
        accesses.truncate(20);
        Ok((everything, person, accesses))
    })
    .await;
    let (everything, master, accesses) = match res {
        Ok(v) => v,
        Err(issue) => {
            let status = StatusCode::from_u16(issue.status).unwrap_or(StatusCode::BAD_REQUEST);
            return error_page(&st, &p, status, &issue.zh);
        }
    };
    // Warmed by `page_user`, so this never touches the database here.
    let names = st.svc.org_names();
    let docs: Vec<Value> = everything
        .records
        .iter()
        .filter_map(|s| serde_json::from_str(&s.body).ok())
        .collect();
    let Some(pv) = docs.iter().find(|d| d["resourceType"] == "Patient") else {
        return error_page(&st, &p, StatusCode::NOT_FOUND, "居民不存在");
    };
    let birth = str_of(pv, &["birthDate"]);
    let age = chrono::NaiveDate::parse_from_str(birth, "%Y-%m-%d")
        .ok()
        .and_then(|b| {
            Utc::now()
                .with_timezone(&Shanghai)
                .date_naive()
                .years_since(b)
        })
        .map_or("—".to_string(), |a| a.to_string());
    let insurance = extension(pv, EXT_INSURANCE)
        .and_then(|e| {
            e["extension"]
                .as_array()?
                .iter()
                .find(|x| x["url"] == "scheme")?
                .get("valueCoding")?
                .get("display")?
                .as_str()
                .map(str::to_string)
        })
        .unwrap_or_else(|| "未登记".into());
    let org = reference_id(&pv["managingOrganization"]);
    let person = context! {
        id => str_of(pv, &["id"]),
        name => str_of(pv, &["name", "0", "text"]),
        gender => gender_zh(str_of(pv, &["gender"])),
        birth => birth, age => age,
        rid => resident_id_of(pv).map(|r| masked(&r)).unwrap_or_else(|| "未登记".into()),
        phone => str_of(pv, &["telecom", "0", "value"]),
        address => str_of(pv, &["address", "0", "text"]),
        insurance => insurance,
        org => names.get(&org).cloned().unwrap_or(org),
    };
    let mut encounters: Vec<&Value> = docs
        .iter()
        .filter(|d| d["resourceType"] == "Encounter")
        .collect();
    encounters.sort_by(|a, b| str_of(b, &["period", "start"]).cmp(str_of(a, &["period", "start"])));
    let enc_rows: Vec<minijinja::Value> = encounters
        .iter()
        .map(|e| {
            let ch = extension(e, EXT_CHARGES);
            let total = ch.map(|c| ["drugs", "consumables", "exams", "services"].iter().map(|k| money_of(c, k)).sum::<Fen>()).unwrap_or(Fen::ZERO);
            let ins = ch.map(|c| money_of(c, "insurance-paid")).unwrap_or(Fen::ZERO);
            let org = reference_id(&e["serviceProvider"]);
            let dx: Vec<String> = e["reasonCode"].as_array().into_iter().flatten().map(|r| str_of(r, &["coding", "0", "code"]).to_string()).collect();
            context! {
                when => local_time(str_of(e, &["period", "start"])),
                class => yigong_core::EncounterClass::from_act_code(str_of(e, &["class", "code"])).map_or(str_of(e, &["class", "code"]), |c| c.label_zh()),
                org => names.get(&org).cloned().unwrap_or(org),
                in_county => extension(e, EXT_IN_COUNTY).and_then(|x| x["valueBoolean"].as_bool()).unwrap_or(true),
                dx => dx.join("、"),
                total => total.to_string(), insurance => ins.to_string(),
            }
        })
        .collect();
    let conditions: Vec<minijinja::Value> = docs
        .iter()
        .filter(|d| d["resourceType"] == "Condition")
        .map(|c| {
            context! {
                code => str_of(c, &["code", "coding", "0", "code"]),
                display => if str_of(c, &["code", "text"]).is_empty() { str_of(c, &["code", "coding", "0", "display"]) } else { str_of(c, &["code", "text"]) },
                onset => str_of(c, &["onsetDateTime"]),
                chronic => extension(c, EXT_CHRONIC).and_then(|x| x["valueBoolean"].as_bool()).unwrap_or(false),
            }
        })
        .collect();
    let access_rows: Vec<minijinja::Value> = accesses
        .iter()
        .map(|a| {
            let inst = a.institution.clone().unwrap_or_default();
            context! { at => local_time(&a.at), actor => a.actor.clone(), institution => names.get(&inst).cloned().unwrap_or(inst), what => format!("{}/{}", a.rtype, a.rid) }
        })
        .collect();
    render(
        &st,
        "patient.html",
        context! {
            title => "居民档案", nav => "patients", user => user_ctx(&st, &p), p => person,
            encounters => enc_rows, conditions => conditions, accesses => access_rows,
            master => master.map(|m| context! { id => m.id, card => m.card, records => m.golden["records"].clone() }),
            withheld => everything.withheld,
        },
    )
}

#[derive(Deserialize)]
struct AuditQuery {
    page: Option<i64>,
}

async fn audit(State(st): State<AppState>, Query(aq): Query<AuditQuery>, req: Request) -> Response {
    let (p, _) = signed_in!(st, req);
    if p.0.scope != Scope::County {
        return error_page(
            &st,
            &p,
            StatusCode::FORBIDDEN,
            "审计日志仅对县级管理用户开放",
        );
    }
    let page = aq.page.unwrap_or(1).max(1);
    let per = 50;
    let svc = st.svc.clone();
    let res = blocking(move || -> Result<_, yigong_store::StoreError> {
        Ok((
            svc.store.audit_log(None, (page - 1) * per, per + 1)?,
            svc.store.audit_count()?,
        ))
    })
    .await;
    let (mut rows, count) = match res {
        Ok(v) => v,
        Err(e) => return error_page(&st, &p, StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    };
    let more = rows.len() as i64 > per;
    rows.truncate(per as usize);
    let rows: Vec<minijinja::Value> = rows
        .iter()
        .map(|a| {
            context! {
                seq => a.seq, at => local_time(&a.at), actor => a.actor.clone(), institution => a.institution.clone().unwrap_or_default(),
                action => a.action.clone(),
                resource => match (&a.rtype, &a.rid) { (Some(t), Some(i)) => format!("{t}/{i}"), _ => String::new() },
                version => a.version.map(|v| v.to_string()).unwrap_or_default(), reason => a.reason.clone().unwrap_or_default(),
            }
        })
        .collect();
    render(
        &st,
        "audit.html",
        context! { title => "审计日志", nav => "audit", user => user_ctx(&st, &p), rows => rows, page => page, more => more, count => count },
    )
}

mod care;
mod cockpit;
mod mpi;
mod pharmacy;
mod rx;
