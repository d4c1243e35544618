//! Data-steward pages of the master patient index: the review queue with
//! side-by-side evidence, merge / distinct decisions, the person page with
//! the electronic health card, and undo of merges.

use super::*;
use axum::routing::post;
use yigong_store::Role;
use yigong_store::mpi::Seen;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/mpi", get(reviews))
        .route("/mpi/reviews/{id}/merge", post(merge))
        .route("/mpi/reviews/{id}/distinct", post(distinct))
        .route("/mpi/persons/{id}", get(person))
        .route("/mpi/merges/{id}/undo", post(undo))
        .route("/card", get(card_lookup))
}

/// Data stewards: the commission, the operations centre and administrators.
fn steward(p: &Principal) -> bool {
    matches!(
        p.role(),
        Role::SystemAdmin | Role::HealthCommission | Role::OperationsCentre
    )
}

macro_rules! steward_only {
    ($st:expr, $p:expr) => {
        if !steward(&$p) {
            return error_page(
                &$st,
                &$p,
                StatusCode::FORBIDDEN,
                "只有卫健委、运营中心或管理员可处理主索引",
            );
        }
    };
}

fn fail(st: &AppState, p: &Principal, issue: yigong_fhir::Issue) -> Response {
    let status = StatusCode::from_u16(issue.status).unwrap_or(StatusCode::BAD_REQUEST);
    error_page(st, p, status, &issue.zh)
}

async fn reviews(State(st): State<AppState>, req: Request) -> Response {
    let (p, _) = signed_in!(st, req);
    steward_only!(st, p);
    let store = st.svc.store.clone();
    let res = blocking(move || -> Result<_, yigong_store::StoreError> {
        Ok((
            store.mpi_reviews("open", 50)?,
            store.mpi_review_count("open")?,
        ))
    })
    .await;
    let (rows, count) = match res {
        Ok(v) => v,
        Err(e) => return fail(&st, &p, crate::service::store_issue(e)),
    };
    let items: Vec<minijinja::Value> = rows
        .into_iter()
        .filter_map(|it| {
            let ((pa, pa_version), (pb, pb_version)) = (it.a_person?, it.b_person?);
            Some(context! {
                id => it.id, a => it.a, b => it.b,
                probability => format!("{:.4}", it.probability),
                fields => it.explanation["fields"].clone(),
                adjustment => it.explanation["correlation_adjustment"].clone(),
                weight => it.explanation["weight"].clone(),
                pa => pa, pa_version => pa_version, pb => pb, pb_version => pb_version,
            })
        })
        .collect();
    render(
        &st,
        "mpi_reviews.html",
        context! { title => "主索引复核", nav => "mpi", user => user_ctx(&st, &p), items => items, count => count },
    )
}

#[derive(Deserialize)]
struct Decision {
    survivor: Option<String>,
    merged: Option<String>,
    survivor_version: Option<i64>,
    merged_version: Option<i64>,
    reason: Option<String>,
}

/// Runs a steward's decision off the async threads and redirects to `to` on
/// success; a refusal (stale, conflicting IDs, …) becomes an error page.
async fn decide(
    st: &AppState,
    p: &Principal,
    to: String,
    act: impl FnOnce(&yigong_store::Store, &yigong_store::Actor) -> Result<(), yigong_store::StoreError>
    + Send
    + 'static,
) -> Response {
    let store = st.svc.store.clone();
    let actor = p.actor();
    match blocking(move || act(&store, &actor)).await {
        Ok(()) => Redirect::to(&to).into_response(),
        Err(e) => fail(st, p, crate::service::store_issue(e)),
    }
}

fn reason_of(f: &Decision) -> Option<String> {
    f.reason.clone().filter(|r| !r.trim().is_empty())
}

async fn merge(
    State(st): State<AppState>,
    p: Principal,
    Path(id): Path<i64>,
    Form(f): Form<Decision>,
) -> Response {
    steward_only!(st, p);
    let reason = reason_of(&f);
    let (Some(survivor), Some(merged), Some(sv), Some(mv)) =
        (f.survivor, f.merged, f.survivor_version, f.merged_version)
    else {
        return error_page(
            &st,
            &p,
            StatusCode::BAD_REQUEST,
            "表单不完整:缺少两人的主索引号或版本",
        );
    };
    let seen = Seen {
        survivor_version: sv,
        merged_version: mv,
    };
    let to = format!("/mpi/persons/{survivor}");
    decide(&st, &p, to, move |store, actor| {
        store
            .mpi_merge(actor, &survivor, &merged, seen, Some(id), reason.as_deref())
            .map(|_| ())
    })
    .await
}

async fn distinct(
    State(st): State<AppState>,
    p: Principal,
    Path(id): Path<i64>,
    Form(f): Form<Decision>,
) -> Response {
    steward_only!(st, p);
    let reason = reason_of(&f);
    decide(&st, &p, "/mpi".into(), move |store, actor| {
        store.mpi_distinct(actor, id, reason.as_deref())
    })
    .await
}

async fn undo(
    State(st): State<AppState>,
    p: Principal,
    Path(id): Path<i64>,
    Form(f): Form<Decision>,
) -> Response {
    steward_only!(st, p);
    let reason = reason_of(&f);
    let to = format!("/mpi/persons/{}", f.survivor.unwrap_or_default());
    decide(&st, &p, to, move |store, actor| {
        store.mpi_unmerge(actor, id, reason.as_deref())
    })
    .await
}

/// The electronic health card as an SVG QR code (payload: the card number
/// with a scheme prefix, so a scanner at any desk knows what it read).
fn card_qr_svg(card: &str) -> String {
    match qrcode::QrCode::new(format!("YGHC:{card}")) {
        Ok(code) => code
            .render::<qrcode::render::svg::Color>()
            .min_dimensions(160, 160)
            .quiet_zone(true)
            .build(),
        Err(_) => String::new(),
    }
}

async fn person(State(st): State<AppState>, Path(id): Path<String>, req: Request) -> Response {
    let (p, _) = signed_in!(st, req);
    let store = st.svc.store.clone();
    let res = blocking(move || -> Result<_, yigong_store::StoreError> {
        let Some(person) = store.mpi_person(&id)? else {
            return Ok(None);
        };
        let members = store.mpi_members(&person.id)?;
        let merges = store.mpi_merges(&person.id)?;
        Ok(Some((person, members, merges)))
    })
    .await;
    let (person, records, merges) = match res {
        Ok(Some(v)) => v,
        Ok(None) => return error_page(&st, &p, StatusCode::NOT_FOUND, "主索引不存在"),
        Err(e) => return fail(&st, &p, crate::service::store_issue(e)),
    };
    let names = st.svc.org_names();
    let method_zh = |m: &str| match m {
        "auto" => "自动关联",
        "manual" => "人工合并",
        _ => "首次登记",
    };
    let rows: Vec<minijinja::Value> = records
        .iter()
        .map(|m| {
            let inst = m.institution.clone().unwrap_or_default();
            context! {
                patient => m.patient, name => m.raw.name, birth => m.raw.birth_date, phone => m.raw.phone,
                rid => m.raw.resident_id.as_deref().map(masked),
                institution => names.get(&inst).cloned().unwrap_or(inst),
                method => method_zh(&m.method),
                probability => m.probability.map(|x| format!("{x:.4}")),
            }
        })
        .collect();
    let merge_rows: Vec<minijinja::Value> = merges
        .iter()
        .map(|m| context! { id => m.id, survivor => m.survivor, merged => m.merged, moved => m.moved.join("、"), actor => m.actor, at => local_time(&m.at), reason => m.reason, undone => m.undone_at.is_some() })
        .collect();
    let g = &person.golden;
    render(
        &st,
        "mpi_person.html",
        context! {
            title => "主索引", nav => "mpi", user => user_ctx(&st, &p), steward => steward(&p),
            id => person.id, card => person.card, version => person.version, status => person.status, merged_into => person.merged_into,
            name => g["name"].as_str(), sex => gender_zh(g["sex"].as_str().unwrap_or("")), birth => g["birth_date"].as_str(),
            rid => g["resident_id"].as_str().map(masked), verified => g["resident_id_verified"].as_bool(),
            phone => g["phone"].as_str(),
            qr => minijinja::Value::from_safe_string(card_qr_svg(&person.card)),
            records => rows, merges => merge_rows,
        },
    )
}

#[derive(Deserialize)]
struct CardQuery {
    no: Option<String>,
}

/// Look-up by electronic health card at any desk (typed or scanned).
async fn card_lookup(
    State(st): State<AppState>,
    Query(q): Query<CardQuery>,
    req: Request,
) -> Response {
    let (p, _) = signed_in!(st, req);
    let no: String =
        q.no.unwrap_or_default()
            .trim()
            .trim_start_matches("YGHC:")
            .chars()
            .filter(|c| c.is_ascii_digit())
            .collect();
    if !yigong_store::mpi::card_is_valid(&no) {
        return error_page(
            &st,
            &p,
            StatusCode::BAD_REQUEST,
            "电子健康卡号应为18位数字且校验位正确,请核对后重试",
        );
    }
    let store = st.svc.store.clone();
    match blocking(move || store.mpi_person_by_card(&no)).await {
        Ok(Some(person)) => Redirect::to(&format!("/mpi/persons/{}", person.id)).into_response(),
        Ok(None) => error_page(&st, &p, StatusCode::NOT_FOUND, "未找到该电子健康卡"),
        Err(e) => fail(&st, &p, crate::service::store_issue(e)),
    }
}
