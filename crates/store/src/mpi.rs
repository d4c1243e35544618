//! The master patient index in the database: every Patient write resolves to a
//! master person inside the same transaction, possible matches wait for a data
//! steward, and steward merges can be undone exactly.
//!
//! Records never move: encounters stay on the Patient record they were written
//! for; the master person groups records. A merge moves the *links* of one
//! person's records to another and remembers them, so an unmerge restores both.

use crate::db::{Dialect, Sql, Val};
use crate::{Actor, AuditRow, Store, StoreError, now_string};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use yigong_empi::{Decision, Model, Prepared, Schema, resident};
use yigong_fhir::codes::{EXT_VILLAGE, SID_RESIDENT_ID, SID_RESIDENT_ID_UNVERIFIED};

/// Candidates compared online for one registration.
const MAX_CANDIDATES: usize = 300;
/// Review items opened for one registration.
const MAX_REVIEWS: usize = 3;
const MODEL_KEY: &str = "mpi_model";

/// The registration fields the index compares, as stored in `mpi_link.raw`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RawRegistration {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sex: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub birth_date: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resident_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub village: Option<String>,
}

impl RawRegistration {
    /// Reads the compared fields of a FHIR Patient. A verified resident ID is
    /// preferred; an unverified one is still compared (never trusted fully).
    pub fn from_patient(p: &Value) -> RawRegistration {
        let name = p["name"]
            .as_array()
            .and_then(|a| a.first())
            .map(|n| match n["text"].as_str() {
                Some(t) => t.to_string(),
                None => {
                    let given: String = n["given"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(Value::as_str)
                        .collect();
                    format!("{}{given}", n["family"].as_str().unwrap_or(""))
                }
            })
            .unwrap_or_default();
        let ids = p["identifier"].as_array();
        let id_of = |system: &str| {
            ids.into_iter()
                .flatten()
                .find(|i| i["system"].as_str() == Some(system))
                .and_then(|i| i["value"].as_str())
                .map(str::to_string)
        };
        let phone = p["telecom"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|t| t["system"].as_str() == Some("phone"))
            .and_then(|t| t["value"].as_str())
            .map(str::to_string);
        let village = p["extension"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|e| e["url"].as_str() == Some(EXT_VILLAGE))
            .and_then(|e| e["valueCode"].as_str())
            .map(str::to_string);
        RawRegistration {
            name,
            sex: p["gender"].as_str().map(str::to_string),
            birth_date: p["birthDate"].as_str().map(str::to_string),
            resident_id: id_of(SID_RESIDENT_ID).or_else(|| id_of(SID_RESIDENT_ID_UNVERIFIED)),
            phone,
            village,
        }
    }

    fn as_registration(&self) -> resident::Registration<'_> {
        resident::Registration {
            name: &self.name,
            sex: self.sex.as_deref(),
            birth_date: self.birth_date.as_deref(),
            resident_id: self.resident_id.as_deref(),
            phone: self.phone.as_deref(),
            village: self.village.as_deref(),
        }
    }
}

/// The schema and the current model (replaced when the index is retrained).
pub struct MpiEngine {
    pub schema: Schema,
    model: RwLock<Arc<Model>>,
}

impl MpiEngine {
    pub fn new(model: Option<Model>) -> MpiEngine {
        MpiEngine {
            schema: resident::schema(),
            model: RwLock::new(Arc::new(model.unwrap_or_else(default_model))),
        }
    }
    pub fn model(&self) -> Arc<Model> {
        self.model.read().unwrap_or_else(|p| p.into_inner()).clone()
    }
    fn set_model(&self, m: Model) {
        *self.model.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(m);
    }
    pub fn prepare(&self, r: &RawRegistration) -> Prepared {
        resident::prepare(&self.schema, &r.as_registration())
    }
}

/// Parameters for a county before its own data has trained a model: close to
/// what EM learns on the synthetic county (see `yigong bench-empi`).
fn default_model() -> Model {
    use yigong_empi::model::FieldModel;
    let schema = resident::schema();
    let table: [(&[f64], &[f64]); 7] = [
        (&[0.943, 0.056, 0.001], &[6.9e-6, 1.1e-6, 0.999_992]),
        (&[0.995, 0.000_1, 0.004_9], &[0.035, 0.005, 0.96]),
        (
            &[0.91, 0.055, 0.031, 0.004],
            &[0.000_67, 0.000_72, 0.081, 0.917_61],
        ),
        (
            &[0.96, 0.039_8, 0.000_1, 0.000_1],
            &[0.000_048, 0.001_06, 0.012, 0.986_892],
        ),
        (&[0.995, 0.005], &[0.5, 0.5]),
        (
            &[0.86, 0.000_1, 0.139_9],
            &[0.000_010_8, 0.000_001_8, 0.999_987_4],
        ),
        (&[0.98, 0.01, 0.01], &[0.004_1, 0.057_7, 0.938_2]),
    ];
    Model {
        fields: schema
            .fields
            .iter()
            .zip(table)
            .map(|(f, (m, u))| FieldModel {
                name: f.name.clone(),
                kind: f.kind,
                m: m.to_vec(),
                u: u.to_vec(),
                tf: HashMap::new(),
                tf_floor: 0.0,
            })
            .collect(),
        prior: 1e-6,
        auto_link: 0.99,
        review: 0.5,
        correlated: schema.correlated.clone(),
        iterations: 0,
        trained_pairs: 0,
    }
}

/// One master person.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Person {
    pub id: String,
    pub card: String,
    pub version: i64,
    pub status: String,
    pub merged_into: Option<String>,
    pub golden: Value,
    pub updated: String,
}

/// One record of a person and how it came to be linked.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Member {
    pub patient: String,
    pub method: String,
    pub probability: Option<f64>,
    pub explanation: Option<Value>,
    pub raw: RawRegistration,
    pub updated: String,
    /// The institution holding the record.
    pub institution: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReviewItem {
    pub id: i64,
    pub a: String,
    pub b: String,
    pub probability: f64,
    pub explanation: Value,
    pub a_version: i64,
    pub b_version: i64,
    pub status: String,
    pub created: String,
    pub decided_by: Option<String>,
    pub reason: Option<String>,
    /// The persons the two records belong to now, with their versions (what a
    /// steward's decision must quote back).
    pub a_person: Option<(String, i64)>,
    pub b_person: Option<(String, i64)>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MergeRecord {
    pub id: i64,
    pub survivor: String,
    pub merged: String,
    pub moved: Vec<String>,
    pub actor: String,
    pub at: String,
    pub reason: Option<String>,
    pub undone_at: Option<String>,
}

/// A scored candidate for `$match`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MatchCandidate {
    pub patient: String,
    pub person: String,
    pub probability: f64,
    pub decision: Decision,
    pub explanation: yigong_empi::Explanation,
}

/// What one batch resolution did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct RebuildSummary {
    pub patients: usize,
    pub persons: usize,
    pub auto_links: usize,
    pub reviews: usize,
    pub compared: u64,
}

/// Probabilities are stored as integer parts per million (the SQL layer is
/// integers and text only).
fn ppm(p: f64) -> Val {
    Val::Int((p * 1e6).round() as i64)
}
fn from_ppm(v: &Val) -> Option<f64> {
    v.as_int().map(|i| i as f64 / 1e6)
}

fn text(v: Option<&Val>) -> Option<String> {
    v.and_then(Val::as_str).map(str::to_string)
}

fn new_person_id() -> String {
    format!("mp-{}", &uuid::Uuid::new_v4().simple().to_string()[..16])
}

/// A new 18-digit electronic health card number: 16 random digits after the
/// leading 8, then a Luhn check digit so a mistyped card is caught at the desk.
fn new_card() -> String {
    use rand::Rng;
    let mut rng = rand::rng();
    let mut digits = String::from("8");
    for _ in 0..16 {
        digits.push(char::from(b'0' + rng.random_range(0..10u8)));
    }
    let check = luhn_check_digit(&digits);
    digits.push(check);
    digits
}

/// The Luhn digit completing `body`.
pub fn luhn_check_digit(body: &str) -> char {
    let sum: u32 = body
        .bytes()
        .rev()
        .enumerate()
        .map(|(i, b)| {
            let d = u32::from(b - b'0');
            if i % 2 == 0 {
                let x = d * 2;
                if x > 9 { x - 9 } else { x }
            } else {
                d
            }
        })
        .sum();
    char::from(b'0' + ((10 - sum % 10) % 10) as u8)
}

/// Whether a card number is well-formed (length, digits, Luhn).
pub fn card_is_valid(card: &str) -> bool {
    card.len() == 18
        && card.bytes().all(|b| b.is_ascii_digit())
        && luhn_check_digit(&card[..17]) == card.as_bytes()[17] as char
}

/// The golden record of a person from its members' registrations (oldest first).
fn golden_of(engine: &MpiEngine, raws: &[RawRegistration]) -> Value {
    let prepared: Vec<Prepared> = raws.iter().map(|r| engine.prepare(r)).collect();
    let refs: Vec<&Prepared> = prepared.iter().collect();
    let g = yigong_empi::cluster::golden(&engine.schema, &refs);
    let v = |i: usize| g.values[i].as_ref().map(|x| x.v.to_string());
    let id = g.values[resident::RESIDENT_ID].as_ref();
    json!({
        "name": format!("{}{}", v(resident::SURNAME).unwrap_or_default(), v(resident::GIVEN).unwrap_or_default()),
        "sex": v(resident::SEX),
        "birth_date": v(resident::BIRTH_DATE).map(|d| if d.len() == 8 { format!("{}-{}-{}", &d[..4], &d[4..6], &d[6..]) } else { d }),
        "resident_id": id.map(|x| x.v.to_string()),
        "resident_id_verified": id.is_some_and(|x| x.verified),
        "phone": v(resident::PHONE),
        "village": v(resident::VILLAGE),
        "records": raws.len(),
    })
}

fn verified_id(golden: &Value) -> Option<&str> {
    if golden["resident_id_verified"].as_bool() == Some(true) {
        golden["resident_id"].as_str()
    } else {
        None
    }
}

fn person_row(r: Vec<Val>) -> Person {
    Person {
        id: text(r.first()).unwrap_or_default(),
        card: text(r.get(1)).unwrap_or_default(),
        version: r.get(2).and_then(Val::as_int).unwrap_or(0),
        status: text(r.get(3)).unwrap_or_default(),
        merged_into: text(r.get(4)),
        golden: text(r.get(5))
            .and_then(|s| serde_json::from_str(&s).ok())
            .unwrap_or(Value::Null),
        updated: text(r.get(6)).unwrap_or_default(),
    }
}

const PERSON_COLS: &str = "p.id, p.card, p.version, p.status, p.merged_into, p.golden, p.updated";

fn load_person(tx: &mut dyn Sql, id: &str, lock: bool) -> Result<Option<Person>, StoreError> {
    let lock = if lock && tx.dialect() == Dialect::Postgres {
        " FOR UPDATE"
    } else {
        ""
    };
    Ok(tx
        .query_one(
            &format!("SELECT {PERSON_COLS} FROM mpi_person p WHERE p.id = ?{lock}"),
            &[id.into()],
        )?
        .map(person_row))
}

fn member_raws(tx: &mut dyn Sql, person: &str) -> Result<Vec<RawRegistration>, StoreError> {
    Ok(tx
        .query(
            "SELECT raw FROM mpi_link WHERE person = ? ORDER BY updated, patient",
            &[person.into()],
        )?
        .into_iter()
        .filter_map(|r| text(r.first()))
        .filter_map(|s| serde_json::from_str(&s).ok())
        .collect())
}

/// A new master person for these registrations, with a new health card.
fn insert_person(
    tx: &mut dyn Sql,
    engine: &MpiEngine,
    raws: &[RawRegistration],
    now: &str,
) -> Result<String, StoreError> {
    let id = new_person_id();
    tx.exec(
        "INSERT INTO mpi_person (id, card, version, status, merged_into, golden, updated) VALUES (?, ?, 1, 'active', NULL, ?, ?)",
        &[id.as_str().into(), new_card().into(), golden_of(engine, raws).to_string().into(), now.into()],
    )?;
    Ok(id)
}

/// Recomputes a person's golden record and bumps its version.
fn refresh_person(
    tx: &mut dyn Sql,
    engine: &MpiEngine,
    person: &str,
    now: &str,
) -> Result<(), StoreError> {
    let raws = member_raws(tx, person)?;
    let golden = golden_of(engine, &raws);
    tx.exec(
        "UPDATE mpi_person SET golden = ?, version = version + 1, updated = ? WHERE id = ?",
        &[golden.to_string().into(), now.into(), person.into()],
    )?;
    Ok(())
}

fn insert_keys(
    tx: &mut dyn Sql,
    engine: &MpiEngine,
    patient: &str,
    prepared: &Prepared,
) -> Result<(), StoreError> {
    for (_, key) in engine.schema.block_keys(prepared) {
        tx.exec(
            "INSERT INTO mpi_key (key, patient) VALUES (?, ?) ON CONFLICT DO NOTHING",
            &[Val::Int(key as i64), patient.into()],
        )?;
    }
    Ok(())
}

fn patient_version(tx: &mut dyn Sql, patient: &str) -> Result<i64, StoreError> {
    Ok(tx
        .query_one(
            "SELECT version FROM resource WHERE rtype = 'Patient' AND id = ?",
            &[patient.into()],
        )?
        .and_then(|r| r.first().and_then(Val::as_int))
        .unwrap_or(0))
}

/// Candidate records sharing a blocking key: (patient, person, registration).
fn candidates(
    tx: &mut dyn Sql,
    keys: &[u64],
    exclude: &str,
) -> Result<Vec<(String, String, RawRegistration)>, StoreError> {
    if keys.is_empty() {
        return Ok(vec![]);
    }
    let marks = vec!["?"; keys.len()].join(", ");
    let mut params: Vec<Val> = keys.iter().map(|&k| Val::Int(k as i64)).collect();
    params.push(exclude.into());
    let rows = tx.query(
        &format!(
            "SELECT l.patient, l.person, l.raw FROM mpi_link l WHERE l.patient IN (SELECT patient FROM mpi_key WHERE key IN ({marks})) AND l.patient <> ? LIMIT {MAX_CANDIDATES}"
        ),
        &params,
    )?;
    Ok(rows
        .into_iter()
        .filter_map(|r| {
            let raw = serde_json::from_str(&text(r.get(2))?).ok()?;
            Some((text(r.first())?, text(r.get(1))?, raw))
        })
        .collect())
}

/// A candidate record and how likely it is the same person.
struct Scored {
    patient: String,
    person: String,
    other: Prepared,
    probability: f64,
}

impl Scored {
    /// The field-by-field explanation, worked out only for the few candidates
    /// a decision or an answer shows.
    fn explain(self, engine: &MpiEngine, model: &Model, prepared: &Prepared) -> MatchCandidate {
        let explanation = model.explain(&engine.schema, prepared, &self.other);
        MatchCandidate {
            patient: self.patient,
            person: self.person,
            probability: explanation.probability,
            decision: explanation.decision,
            explanation,
        }
    }
}

/// Scores a registration against its candidates, best first.
fn score_candidates(
    engine: &MpiEngine,
    model: &Model,
    prepared: &Prepared,
    cands: Vec<(String, String, RawRegistration)>,
) -> Vec<Scored> {
    let mut out: Vec<Scored> = cands
        .into_iter()
        .map(|(patient, person, raw)| {
            let other = engine.prepare(&raw);
            let probability = model.score(&engine.schema, prepared, &other).probability();
            Scored {
                patient,
                person,
                other,
                probability,
            }
        })
        .collect();
    out.sort_by(|a, b| b.probability.total_cmp(&a.probability));
    out
}

/// Resolves one Patient write inside the writing transaction.
pub(crate) fn on_patient_write(
    tx: &mut dyn Sql,
    engine: &MpiEngine,
    actor: &Actor,
    now: &str,
    patient: &str,
    version: i64,
    body: &Value,
) -> Result<(), StoreError> {
    let raw = RawRegistration::from_patient(body);
    resolve_registration(tx, engine, actor, now, patient, version, &raw)
}

/// Links one registration: to the person it matches above the auto-link
/// threshold, else to a new person, with review items for the doubtful.
fn resolve_registration(
    tx: &mut dyn Sql,
    engine: &MpiEngine,
    actor: &Actor,
    now: &str,
    patient: &str,
    version: i64,
    raw: &RawRegistration,
) -> Result<(), StoreError> {
    let raw_json = serde_json::to_string(raw).map_err(|e| StoreError::Database(e.to_string()))?;
    let prepared = engine.prepare(raw);
    let keys: Vec<u64> = {
        let mut k: Vec<u64> = engine
            .schema
            .block_keys(&prepared)
            .into_iter()
            .map(|(_, k)| k)
            .collect();
        k.sort_unstable();
        k.dedup();
        k
    };
    if tx.dialect() == Dialect::Postgres {
        // Two desks registering the same person at once: whoever comes second
        // waits here and then sees the first one's record among its candidates.
        for k in &keys {
            tx.exec("SELECT pg_advisory_xact_lock(?)", &[Val::Int(*k as i64)])?;
        }
    }
    let existing = tx.query_one(
        "SELECT person, raw FROM mpi_link WHERE patient = ?",
        &[patient.into()],
    )?;
    if let Some(row) = existing {
        let person = text(row.first()).unwrap_or_default();
        if text(row.get(1)).as_deref() == Some(raw_json.as_str()) {
            return Ok(());
        }
        // Demographics changed: keep the link, refresh keys and the golden record.
        tx.exec(
            "UPDATE mpi_link SET raw = ?, updated = ? WHERE patient = ?",
            &[raw_json.as_str().into(), now.into(), patient.into()],
        )?;
        tx.exec("DELETE FROM mpi_key WHERE patient = ?", &[patient.into()])?;
        insert_keys(tx, engine, patient, &prepared)?;
        refresh_person(tx, engine, &person, now)?;
        // The corrected record may now resemble someone else: never moved
        // automatically, but put before a steward.
        let model = engine.model();
        let mut seen = std::collections::HashSet::from([person.clone()]);
        let doubtful: Vec<MatchCandidate> =
            score_candidates(engine, &model, &prepared, candidates(tx, &keys, patient)?)
                .into_iter()
                .take_while(|c| c.probability >= model.review)
                .filter(|c| seen.insert(c.person.clone()))
                .take(MAX_REVIEWS)
                .map(|c| c.explain(engine, &model, &prepared))
                .collect();
        open_reviews(tx, patient, version, &person, &doubtful, now)?;
        let reason = format!("主索引 {person} 的登记信息已更新");
        return AuditRow::by(actor, now, "mpi-refresh")
            .on("Patient", patient)
            .version(version)
            .reason(Some(&reason))
            .append(tx);
    }

    let model = engine.model();
    let scored = score_candidates(engine, &model, &prepared, candidates(tx, &keys, patient)?);
    let my_id = prepared.values[resident::RESIDENT_ID]
        .as_ref()
        .filter(|v| v.verified)
        .map(|v| v.v.to_string());
    // Best candidate per person, strongest first, down to the review threshold.
    let mut seen = std::collections::HashSet::new();
    let mut chosen: Option<MatchCandidate> = None;
    let mut reviews: Vec<MatchCandidate> = vec![];
    for c in scored {
        if c.probability < model.review {
            break;
        }
        if !seen.insert(c.person.clone()) {
            continue;
        }
        if chosen.is_none() && c.probability >= model.auto_link {
            let conflict = match (&my_id, load_person(tx, &c.person, false)?) {
                (Some(mine), Some(p)) => {
                    verified_id(&p.golden).is_some_and(|theirs| theirs != mine)
                }
                _ => false,
            };
            if !conflict {
                chosen = Some(c.explain(engine, &model, &prepared));
                continue;
            }
        }
        if reviews.len() < MAX_REVIEWS {
            reviews.push(c.explain(engine, &model, &prepared));
        }
    }

    let (person, method, probability, explanation) = match &chosen {
        Some(c) => (
            c.person.clone(),
            "auto",
            Some(c.probability),
            Some(serde_json::to_string(&c.explanation).unwrap_or_default()),
        ),
        None => (
            insert_person(tx, engine, std::slice::from_ref(raw), now)?,
            "new",
            None,
            None,
        ),
    };
    tx.exec(
        "INSERT INTO mpi_link (patient, person, method, probability, explanation, raw, updated) VALUES (?, ?, ?, ?, ?, ?, ?)",
        &[patient.into(), person.as_str().into(), method.into(), probability.map(ppm).into(), explanation.into(), raw_json.as_str().into(), now.into()],
    )?;
    insert_keys(tx, engine, patient, &prepared)?;
    if chosen.is_some() {
        refresh_person(tx, engine, &person, now)?;
    }
    open_reviews(tx, patient, version, &person, &reviews, now)?;
    let reason = match probability {
        Some(p) => format!("自动关联主索引 {person}(匹配概率 {p:.4})"),
        None => format!("新建主索引 {person}"),
    };
    let action = if method == "auto" {
        "mpi-link"
    } else {
        "mpi-new"
    };
    AuditRow::by(actor, now, action)
        .on("Patient", patient)
        .version(version)
        .reason(Some(&reason))
        .append(tx)
}

/// Review items pairing `patient` with records of other persons.
fn open_reviews(
    tx: &mut dyn Sql,
    patient: &str,
    version: i64,
    own_person: &str,
    candidates: &[MatchCandidate],
    now: &str,
) -> Result<(), StoreError> {
    for c in candidates.iter().filter(|c| c.person != own_person) {
        let other_version = patient_version(tx, &c.patient)?;
        // Stored as (smaller id, larger id); the explanation's sides follow.
        let mut explanation = c.explanation.clone();
        let (a, b, av, bv) = if c.patient.as_str() < patient {
            for f in &mut explanation.fields {
                std::mem::swap(&mut f.a, &mut f.b);
            }
            (c.patient.as_str(), patient, other_version, version)
        } else {
            (patient, c.patient.as_str(), version, other_version)
        };
        tx.exec(
            // An open question is asked again with today's records; a decided
            // one (distinct, merged) stays decided.
            "INSERT INTO mpi_review (a, b, probability, explanation, a_version, b_version, status, created) VALUES (?, ?, ?, ?, ?, ?, 'open', ?)
             ON CONFLICT (a, b) DO UPDATE SET probability = excluded.probability, explanation = excluded.explanation,
             a_version = excluded.a_version, b_version = excluded.b_version, created = excluded.created WHERE mpi_review.status = 'open'",
            &[a.into(), b.into(), ppm(c.probability), serde_json::to_string(&explanation).unwrap_or_default().into(), Val::Int(av), Val::Int(bv), now.into()],
        )?;
    }
    Ok(())
}

fn review_row(r: Vec<Val>) -> ReviewItem {
    ReviewItem {
        id: r.first().and_then(Val::as_int).unwrap_or(0),
        a: text(r.get(1)).unwrap_or_default(),
        b: text(r.get(2)).unwrap_or_default(),
        probability: r.get(3).and_then(from_ppm).unwrap_or(0.0),
        explanation: text(r.get(4))
            .and_then(|s| serde_json::from_str(&s).ok())
            .unwrap_or(Value::Null),
        a_version: r.get(5).and_then(Val::as_int).unwrap_or(0),
        b_version: r.get(6).and_then(Val::as_int).unwrap_or(0),
        status: text(r.get(7)).unwrap_or_default(),
        created: text(r.get(8)).unwrap_or_default(),
        decided_by: text(r.get(9)),
        reason: text(r.get(10)),
        a_person: text(r.get(11)).zip(r.get(12).and_then(Val::as_int)),
        b_person: text(r.get(13)).zip(r.get(14).and_then(Val::as_int)),
    }
}

/// A review item with the current person (and version) of each side.
const REVIEW_SELECT: &str = "SELECT r.id, r.a, r.b, r.probability, r.explanation, r.a_version, r.b_version, r.status, r.created, r.decided_by, r.reason, pa.id, pa.version, pb.id, pb.version FROM mpi_review r LEFT JOIN mpi_link la ON la.patient = r.a LEFT JOIN mpi_person pa ON pa.id = la.person LEFT JOIN mpi_link lb ON lb.patient = r.b LEFT JOIN mpi_person pb ON pb.id = lb.person";

/// What a steward saw when deciding: the versions of the two people.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seen {
    pub survivor_version: i64,
    pub merged_version: i64,
}

impl Store {
    pub fn mpi(&self) -> &MpiEngine {
        &self.mpi
    }

    /// Loads a trained model from the database, if one was saved.
    pub(crate) fn load_mpi_model(&self) -> Result<(), StoreError> {
        if let Some(json) = self.meta_get(MODEL_KEY)?
            && let Ok(m) = serde_json::from_str::<Model>(&json)
        {
            self.mpi.set_model(m);
        }
        Ok(())
    }

    /// Links every Patient not yet in the index. On an empty index this is a
    /// batch resolution that also trains the model on the county's own data
    /// (after a bulk load); otherwise each record is resolved as a registration.
    pub fn mpi_resolve_pending(&self, actor: &Actor) -> Result<RebuildSummary, StoreError> {
        let linked = self
            .db
            .read(|c| c.scalar_int("SELECT COUNT(*) FROM mpi_link", &[]))?;
        let rows = self.db.read(|c| {
            c.query(
                "SELECT r.id, r.version, r.body FROM resource r WHERE r.rtype = 'Patient' AND r.deleted = 0 AND NOT EXISTS (SELECT 1 FROM mpi_link l WHERE l.patient = r.id) ORDER BY r.id",
                &[],
            )
        })?;
        if rows.is_empty() {
            return Ok(RebuildSummary::default());
        }
        let pending: Vec<(String, i64, RawRegistration)> = rows
            .into_iter()
            .filter_map(|r| {
                let body: Value = serde_json::from_str(&text(r.get(2))?).ok()?;
                Some((
                    text(r.first())?,
                    r.get(1)?.as_int()?,
                    RawRegistration::from_patient(&body),
                ))
            })
            .collect();
        if linked > 0 {
            let now = now_string();
            let n = pending.len();
            for chunk in pending.chunks(500) {
                self.db.write(|tx| {
                    for (id, version, raw) in chunk {
                        resolve_registration(tx, &self.mpi, actor, &now, id, *version, raw)?;
                    }
                    Ok(())
                })?;
            }
            return Ok(RebuildSummary {
                patients: n,
                ..Default::default()
            });
        }
        self.mpi_batch(actor, pending)
    }

    fn mpi_batch(
        &self,
        actor: &Actor,
        pending: Vec<(String, i64, RawRegistration)>,
    ) -> Result<RebuildSummary, StoreError> {
        use rayon::prelude::*;
        let engine = &self.mpi;
        let prepared: Vec<Prepared> = pending
            .par_iter()
            .map(|(_, _, r)| engine.prepare(r))
            .collect();
        let res = yigong_empi::resolve(
            &engine.schema,
            &prepared,
            None,
            None,
            &yigong_empi::Training::default(),
        );
        let model_json =
            serde_json::to_string(&res.model).map_err(|e| StoreError::Database(e.to_string()))?;
        // Members of each cluster, in record order.
        let mut clusters: HashMap<u32, Vec<usize>> = HashMap::new();
        for (i, &l) in res.labels.iter().enumerate() {
            clusters.entry(l).or_default().push(i);
        }
        let mut best: HashMap<usize, f64> = HashMap::new();
        for p in res.links() {
            for i in [p.a as usize, p.b as usize] {
                let e = best.entry(i).or_insert(0.0);
                *e = e.max(p.probability);
            }
        }
        let now = now_string();
        let mut summary = RebuildSummary {
            patients: pending.len(),
            persons: clusters.len(),
            auto_links: pending.len() - clusters.len(),
            reviews: 0,
            compared: res.compared,
        };
        let mut labels: Vec<(u32, Vec<usize>)> = clusters.into_iter().collect();
        labels.sort_unstable_by_key(|(l, _)| *l);
        for chunk in labels.chunks(5000) {
            self.db.write(|tx| {
                for (_, members) in chunk {
                    let raws: Vec<RawRegistration> =
                        members.iter().map(|&i| pending[i].2.clone()).collect();
                    let person = insert_person(tx, engine, &raws, &now)?;
                    for (k, &i) in members.iter().enumerate() {
                        let (id, _, raw) = &pending[i];
                        let (method, p) = if k == 0 { ("new", None) } else { ("auto", best.get(&i).copied()) };
                        tx.exec(
                            "INSERT INTO mpi_link (patient, person, method, probability, explanation, raw, updated) VALUES (?, ?, ?, ?, NULL, ?, ?)",
                            &[id.as_str().into(), person.as_str().into(), method.into(), p.map(ppm).into(), serde_json::to_string(raw).unwrap_or_default().into(), now.as_str().into()],
                        )?;
                        insert_keys(tx, engine, id, &prepared[i])?;
                    }
                }
                Ok(())
            })?;
        }
        let model = res.model.clone();
        let reviews: Vec<_> = res
            .reviews()
            .filter(|p| res.labels[p.a as usize] != res.labels[p.b as usize])
            .take(20_000)
            .copied()
            .collect();
        summary.reviews = reviews.len();
        self.db.write(|tx| {
            for p in &reviews {
                let (x, y) = (&pending[p.a as usize], &pending[p.b as usize]);
                let ((a, av), (b, bv), pa, pb) = if x.0 < y.0 {
                    ((&x.0, x.1), (&y.0, y.1), p.a, p.b)
                } else {
                    ((&y.0, y.1), (&x.0, x.1), p.b, p.a)
                };
                let e = model.explain(&engine.schema, &prepared[pa as usize], &prepared[pb as usize]);
                tx.exec(
                    "INSERT INTO mpi_review (a, b, probability, explanation, a_version, b_version, status, created) VALUES (?, ?, ?, ?, ?, ?, 'open', ?) ON CONFLICT (a, b) DO NOTHING",
                    &[a.as_str().into(), b.as_str().into(), ppm(p.probability), serde_json::to_string(&e).unwrap_or_default().into(), Val::Int(av), Val::Int(bv), now.as_str().into()],
                )?;
            }
            tx.exec(
                "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                &[MODEL_KEY.into(), model_json.as_str().into()],
            )?;
            let reason = format!(
                "批量建立主索引:登记 {} 条,主索引 {} 人,自动关联 {} 条,待复核 {} 对(比对 {} 对)",
                summary.patients, summary.persons, summary.auto_links, summary.reviews, summary.compared
            );
            AuditRow::by(actor, &now, "mpi-batch").on("Person", "*").reason(Some(&reason)).append(tx)
        })?;
        self.mpi.set_model(res.model);
        Ok(summary)
    }

    pub fn mpi_person(&self, id: &str) -> Result<Option<Person>, StoreError> {
        self.db.read(|c| load_person(c, id, false))
    }

    /// The person a Patient record belongs to (following merges).
    pub fn mpi_person_of(&self, patient: &str) -> Result<Option<Person>, StoreError> {
        self.person_by(
            "FROM mpi_link l JOIN mpi_person p ON p.id = l.person WHERE l.patient = ?",
            patient,
        )
    }

    pub fn mpi_person_by_card(&self, card: &str) -> Result<Option<Person>, StoreError> {
        self.person_by("FROM mpi_person p WHERE p.card = ?", card)
    }

    fn person_by(&self, from_where: &str, key: &str) -> Result<Option<Person>, StoreError> {
        self.db.read(|c| {
            Ok(
                c.query_one(&format!("SELECT {PERSON_COLS} {from_where}"), &[key.into()])?
                    .map(person_row),
            )
        })
    }

    pub fn mpi_members(&self, person: &str) -> Result<Vec<Member>, StoreError> {
        self.db.read(|c| {
            Ok(c.query(
                "SELECT l.patient, l.method, l.probability, l.explanation, l.raw, l.updated, r.inst FROM mpi_link l LEFT JOIN resource r ON r.rtype = 'Patient' AND r.id = l.patient WHERE l.person = ? ORDER BY l.updated, l.patient",
                &[person.into()],
            )?
            .into_iter()
            .map(|r| Member {
                patient: text(r.first()).unwrap_or_default(),
                method: text(r.get(1)).unwrap_or_default(),
                probability: r.get(2).and_then(from_ppm),
                explanation: text(r.get(3)).and_then(|s| serde_json::from_str(&s).ok()),
                raw: text(r.get(4)).and_then(|s| serde_json::from_str(&s).ok()).unwrap_or_default(),
                updated: text(r.get(5)).unwrap_or_default(),
                institution: text(r.get(6)),
            })
            .collect())
        })
    }

    /// Every Patient record of the same person as `patient` (itself included).
    pub fn mpi_linked_patients(&self, patient: &str) -> Result<Vec<String>, StoreError> {
        self.db.read(|c| {
            let rows = c.query(
                "SELECT l2.patient FROM mpi_link l1 JOIN mpi_link l2 ON l2.person = l1.person WHERE l1.patient = ? ORDER BY l2.patient",
                &[patient.into()],
            )?;
            let mut out: Vec<String> = rows.into_iter().filter_map(|r| text(r.first())).collect();
            if out.is_empty() {
                out.push(patient.to_string());
            }
            Ok(out)
        })
    }

    /// `$match`: scores a registration against the index without writing;
    /// candidates at or above the review threshold, best first, explained.
    pub fn mpi_match(&self, patient: &Value) -> Result<Vec<MatchCandidate>, StoreError> {
        let raw = RawRegistration::from_patient(patient);
        let prepared = self.mpi.prepare(&raw);
        let mut keys: Vec<u64> = self
            .mpi
            .schema
            .block_keys(&prepared)
            .into_iter()
            .map(|(_, k)| k)
            .collect();
        keys.sort_unstable();
        keys.dedup();
        let exclude = patient["id"].as_str().unwrap_or("").to_string();
        let cands = self.db.read(|c| candidates(c, &keys, &exclude))?;
        let model = self.mpi.model();
        Ok(score_candidates(&self.mpi, &model, &prepared, cands)
            .into_iter()
            .take_while(|c| c.probability >= model.review)
            .map(|c| c.explain(&self.mpi, &model, &prepared))
            .collect())
    }

    pub fn mpi_reviews(&self, status: &str, limit: i64) -> Result<Vec<ReviewItem>, StoreError> {
        self.db.read(|c| {
            Ok(c.query(
                &format!(
                    "{REVIEW_SELECT} WHERE r.status = ? ORDER BY r.probability DESC, r.id LIMIT ?"
                ),
                &[status.into(), Val::Int(limit)],
            )?
            .into_iter()
            .map(review_row)
            .collect())
        })
    }

    pub fn mpi_review_count(&self, status: &str) -> Result<i64, StoreError> {
        self.db.read(|c| {
            c.scalar_int(
                "SELECT COUNT(*) FROM mpi_review WHERE status = ?",
                &[status.into()],
            )
        })
    }

    pub fn mpi_review(&self, id: i64) -> Result<Option<ReviewItem>, StoreError> {
        self.db.read(|c| {
            Ok(
                c.query_one(&format!("{REVIEW_SELECT} WHERE r.id = ?"), &[Val::Int(id)])?
                    .map(review_row),
            )
        })
    }

    /// A steward's merge: every record of `merged` joins `survivor`. Refused when
    /// either person changed since the steward looked (`seen`), when the review
    /// item's records changed since they were scored, or — without an override
    /// reason — when the two hold different valid resident IDs.
    pub fn mpi_merge(
        &self,
        actor: &Actor,
        survivor: &str,
        merged: &str,
        seen: Seen,
        review: Option<i64>,
        reason: Option<&str>,
    ) -> Result<i64, StoreError> {
        if survivor == merged {
            return Err(StoreError::Invalid("不能把一个人合并到自己".into()));
        }
        let now = now_string();
        self.db.write(|tx| {
            let (first, second) = if survivor < merged { (survivor, merged) } else { (merged, survivor) };
            let a = load_person(tx, first, true)?;
            let b = load_person(tx, second, true)?;
            let (s, m) = if first == survivor { (a, b) } else { (b, a) };
            let (Some(s), Some(m)) = (s, m) else {
                return Err(StoreError::NotFound("主索引不存在".into()));
            };
            if s.status != "active" || m.status != "active" {
                return Err(StoreError::Conflict("该主索引已被合并,请刷新后重试".into()));
            }
            if s.version != seen.survivor_version || m.version != seen.merged_version {
                return Err(StoreError::Conflict("比对之后两人的记录已有变更,决定已过期,请刷新后重新核对".into()));
            }
            if let Some(rid) = review {
                let item = tx
                    .query_one(&format!("{REVIEW_SELECT} WHERE r.id = ?"), &[Val::Int(rid)])?
                    .map(review_row)
                    .ok_or_else(|| StoreError::NotFound(format!("复核项 {rid} 不存在")))?;
                if item.status != "open" {
                    return Err(StoreError::Conflict("该复核项已处理".into()));
                }
                if patient_version(tx, &item.a)? != item.a_version || patient_version(tx, &item.b)? != item.b_version {
                    return Err(StoreError::Conflict("比对之后登记信息已被修改,决定已过期,请重新比对".into()));
                }
            }
            let reason = reason.map(str::trim).filter(|r| !r.is_empty());
            if let (Some(x), Some(y)) = (verified_id(&s.golden), verified_id(&m.golden))
                && x != y
                && reason.is_none()
            {
                return Err(StoreError::Invalid(format!(
                    "两人的身份证号均有效且不同({} / {}),合并必须填写理由",
                    mask(x),
                    mask(y)
                )));
            }
            let moved: Vec<Value> = tx
                .query("SELECT patient, method, probability FROM mpi_link WHERE person = ? ORDER BY patient", &[m.id.as_str().into()])?
                .into_iter()
                .map(|r| json!({"patient": text(r.first()), "method": text(r.get(1)), "probability": r.get(2).and_then(from_ppm)}))
                .collect();
            tx.exec(
                "UPDATE mpi_link SET person = ?, method = 'manual', updated = ? WHERE person = ?",
                &[s.id.as_str().into(), now.as_str().into(), m.id.as_str().into()],
            )?;
            tx.exec(
                "UPDATE mpi_person SET status = 'merged', merged_into = ?, version = version + 1, updated = ? WHERE id = ?",
                &[s.id.as_str().into(), now.as_str().into(), m.id.as_str().into()],
            )?;
            refresh_person(tx, &self.mpi, &s.id, &now)?;
            let id = tx.scalar_int(
                "INSERT INTO mpi_merge (survivor, merged, moved, review, actor, at, reason) VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id",
                &[s.id.as_str().into(), m.id.as_str().into(), Value::Array(moved).to_string().into(), review.map(Val::Int).into(), actor.user.as_str().into(), now.as_str().into(), reason.into()],
            )?;
            if let Some(rid) = review {
                tx.exec(
                    "UPDATE mpi_review SET status = 'merged', decided_by = ?, decided_at = ?, reason = ? WHERE id = ?",
                    &[actor.user.as_str().into(), now.as_str().into(), reason.into(), Val::Int(rid)],
                )?;
            }
            let why = format!("合并 {} → {}(合并记录 {id}){}", m.id, s.id, reason.map(|r| format!(",理由:{r}")).unwrap_or_default());
            AuditRow::by(actor, &now, "mpi-merge").on("Person", &s.id).reason(Some(&why)).append(tx)?;
            Ok(id)
        })
    }

    /// Undoes a merge exactly: the records that moved go back, with how they
    /// had been linked, and the merged person is active again.
    pub fn mpi_unmerge(
        &self,
        actor: &Actor,
        merge: i64,
        reason: Option<&str>,
    ) -> Result<(), StoreError> {
        let now = now_string();
        self.db.write(|tx| {
            let row = tx
                .query_one("SELECT survivor, merged, moved, review, undone_at FROM mpi_merge WHERE id = ?", &[Val::Int(merge)])?
                .ok_or_else(|| StoreError::NotFound(format!("合并记录 {merge} 不存在")))?;
            if text(row.get(4)).is_some() {
                return Err(StoreError::Conflict("该合并已撤销".into()));
            }
            let survivor = text(row.first()).unwrap_or_default();
            let merged = text(row.get(1)).unwrap_or_default();
            let moved: Vec<Value> = text(row.get(2)).and_then(|s| serde_json::from_str(&s).ok()).unwrap_or_default();
            let s = load_person(tx, &survivor, true)?.ok_or_else(|| StoreError::NotFound(survivor.clone()))?;
            if s.status != "active" {
                return Err(StoreError::Conflict(format!("{survivor} 之后又被合并,请先撤销后来的合并")));
            }
            for m in &moved {
                let p = m["patient"].as_str().unwrap_or("");
                let now_in = tx
                    .query_one("SELECT person FROM mpi_link WHERE patient = ?", &[p.into()])?
                    .and_then(|r| text(r.first()));
                if now_in.as_deref() != Some(survivor.as_str()) {
                    return Err(StoreError::Conflict(format!("记录 {p} 之后已被移动,请先撤销后来的合并")));
                }
            }
            for m in &moved {
                tx.exec(
                    "UPDATE mpi_link SET person = ?, method = ?, probability = ?, updated = ? WHERE patient = ?",
                    &[merged.as_str().into(), m["method"].as_str().unwrap_or("new").into(), m["probability"].as_f64().map(ppm).into(), now.as_str().into(), m["patient"].as_str().unwrap_or("").into()],
                )?;
            }
            tx.exec(
                "UPDATE mpi_person SET status = 'active', merged_into = NULL, updated = ? WHERE id = ?",
                &[now.as_str().into(), merged.as_str().into()],
            )?;
            refresh_person(tx, &self.mpi, &merged, &now)?;
            refresh_person(tx, &self.mpi, &survivor, &now)?;
            tx.exec("UPDATE mpi_merge SET undone_at = ? WHERE id = ?", &[now.as_str().into(), Val::Int(merge)])?;
            if let Some(rid) = row.get(3).and_then(Val::as_int) {
                tx.exec(
                    "UPDATE mpi_review SET status = 'open', decided_by = NULL, decided_at = NULL, reason = NULL WHERE id = ?",
                    &[Val::Int(rid)],
                )?;
            }
            let why = format!("撤销合并 {merge}:{merged} 从 {survivor} 恢复{}", reason.map(|r| format!(",理由:{r}")).unwrap_or_default());
            AuditRow::by(actor, &now, "mpi-unmerge").on("Person", &merged).reason(Some(&why)).append(tx)
        })
    }

    /// A steward's decision that a review pair are two different people.
    pub fn mpi_distinct(
        &self,
        actor: &Actor,
        review: i64,
        reason: Option<&str>,
    ) -> Result<(), StoreError> {
        let now = now_string();
        self.db.write(|tx| {
            let item = tx
                .query_one(&format!("{REVIEW_SELECT} WHERE r.id = ?"), &[Val::Int(review)])?
                .map(review_row)
                .ok_or_else(|| StoreError::NotFound(format!("复核项 {review} 不存在")))?;
            if item.status != "open" {
                return Err(StoreError::Conflict("该复核项已处理".into()));
            }
            if patient_version(tx, &item.a)? != item.a_version || patient_version(tx, &item.b)? != item.b_version {
                return Err(StoreError::Conflict("比对之后登记信息已被修改,决定已过期,请重新比对".into()));
            }
            tx.exec(
                "UPDATE mpi_review SET status = 'distinct', decided_by = ?, decided_at = ?, reason = ? WHERE id = ?",
                &[actor.user.as_str().into(), now.as_str().into(), reason.into(), Val::Int(review)],
            )?;
            let why = format!("复核项 {review}:{} 与 {} 判定为不同的人", item.a, item.b);
            AuditRow::by(actor, &now, "mpi-distinct").on("Patient", &item.a).reason(Some(&why)).append(tx)
        })
    }

    pub fn mpi_merges(&self, person: &str) -> Result<Vec<MergeRecord>, StoreError> {
        self.db.read(|c| {
            Ok(c.query(
                "SELECT id, survivor, merged, moved, actor, at, reason, undone_at FROM mpi_merge WHERE survivor = ? OR merged = ? ORDER BY id DESC",
                &[person.into(), person.into()],
            )?
            .into_iter()
            .map(|r| MergeRecord {
                id: r.first().and_then(Val::as_int).unwrap_or(0),
                survivor: text(r.get(1)).unwrap_or_default(),
                merged: text(r.get(2)).unwrap_or_default(),
                moved: text(r.get(3))
                    .and_then(|s| serde_json::from_str::<Vec<Value>>(&s).ok())
                    .unwrap_or_default()
                    .iter()
                    .filter_map(|m| m["patient"].as_str().map(str::to_string))
                    .collect(),
                actor: text(r.get(4)).unwrap_or_default(),
                at: text(r.get(5)).unwrap_or_default(),
                reason: text(r.get(6)),
                undone_at: text(r.get(7)),
            })
            .collect())
        })
    }
}

fn mask(id: &str) -> String {
    if id.len() < 8 {
        return id.to_string();
    }
    format!("{}********{}", &id[..6], &id[id.len() - 4..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cards_carry_a_luhn_digit() {
        for _ in 0..100 {
            let c = new_card();
            assert!(card_is_valid(&c), "{c}");
        }
        let c = new_card();
        let mut bad: Vec<u8> = c.clone().into_bytes();
        bad[5] = if bad[5] == b'9' { b'0' } else { bad[5] + 1 };
        assert!(!card_is_valid(std::str::from_utf8(&bad).unwrap()));
        assert_eq!(luhn_check_digit("7992739871"), '3');
    }

    #[test]
    fn registration_from_fhir_patient() {
        let p = json!({
            "resourceType": "Patient",
            "name": [{"family": "王", "given": ["晓明"]}],
            "gender": "male",
            "birthDate": "1990-01-01",
            "identifier": [{"system": SID_RESIDENT_ID_UNVERIFIED, "value": "510521199001011233"}],
            "telecom": [{"system": "phone", "value": "13812345678"}],
            "extension": [{"url": EXT_VILLAGE, "valueCode": "510521100001"}]
        });
        let r = RawRegistration::from_patient(&p);
        assert_eq!(r.name, "王晓明");
        assert_eq!(r.resident_id.as_deref(), Some("510521199001011233"));
        assert_eq!(r.village.as_deref(), Some("510521100001"));
    }
}
