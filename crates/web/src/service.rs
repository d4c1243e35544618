//! The operations behind both the FHIR API and the pages: validation and
//! extraction (yigong-fhir), permission and scope, then storage (yigong-store).

use crate::auth::Principal;
use serde_json::{Value, json};
use std::collections::HashSet;
use std::sync::Arc;
use yigong_fhir::Issue;
use yigong_fhir::bundle::{TxEntry, parse_transaction};
use yigong_fhir::search::{SearchSpec, SortField, Target, TotalMode, ValueMatch};
use yigong_store::resources_api::*;
use yigong_store::{Access, Actor, Role, Scope, Store, StoreError};

pub struct Service {
    pub store: Arc<Store>,
    /// Organisation names for pages, loaded on first use and dropped when an
    /// Organization is written through the service.
    org_names: std::sync::RwLock<Option<Arc<std::collections::HashMap<String, String>>>>,
    org_tree: std::sync::RwLock<Option<Arc<Vec<yigong_store::TreeNode>>>>,
}

#[derive(Debug, Clone)]
pub struct WriteOutcome {
    pub stored: Stored,
    pub created: bool,
}

pub fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

fn check_write_role(role: Role, rtype: &str) -> Result<(), Issue> {
    let ok = if is_directory(rtype) {
        role == Role::SystemAdmin
    } else {
        role.may_write_clinical()
    };
    if ok {
        Ok(())
    } else {
        Err(Issue::new(
            403,
            "forbidden",
            "role-cannot-write",
            format!("角色「{}」无权修改 {rtype} 资源", role.label_zh()),
        ))
    }
}

pub fn to_query(spec: &SearchSpec) -> Query {
    let m = |v: &ValueMatch| match v {
        ValueMatch::Eq(s) => Match::Eq(s.clone()),
        ValueMatch::Prefix(s) => Match::Prefix(s.clone()),
        ValueMatch::Range(a, b) => Match::Range(a.clone(), b.clone()),
    };
    Query {
        rtype: spec.rtype.clone(),
        clauses: spec
            .filters
            .iter()
            .map(|f| {
                let ms = f.matches.iter().map(m).collect();
                match &f.target {
                    Target::Index(name) => Clause::Param(name.clone(), ms),
                    Target::Patient => Clause::Column(Column::Patient, ms),
                    Target::Org => Clause::Column(Column::Org, ms),
                    Target::Date => Clause::Column(Column::Date, ms),
                    Target::Id => Clause::Column(Column::Id, ms),
                }
            })
            .collect(),
        sort: spec
            .sort
            .iter()
            .map(|(f, desc)| Sort {
                key: match f {
                    SortField::LastUpdated => SortKey::LastUpdated,
                    SortField::Id => SortKey::Id,
                    SortField::Date => SortKey::Date,
                    SortField::Name => SortKey::Name,
                },
                descending: *desc,
            })
            .collect(),
        limit: spec.count,
        offset: spec.offset,
        want_total: spec.total == TotalMode::Accurate,
        count_only: spec.summary_count,
    }
}

impl Service {
    pub fn new(store: Arc<Store>) -> Service {
        Service {
            store,
            org_names: std::sync::RwLock::new(None),
            org_tree: std::sync::RwLock::new(None),
        }
    }

    /// Organisation id → name (blocking on first use).
    pub fn org_names(&self) -> Arc<std::collections::HashMap<String, String>> {
        if let Some(m) = self
            .org_names
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
        {
            return m.clone();
        }
        let map: std::collections::HashMap<String, String> = self
            .store
            .org_tree()
            .unwrap_or_default()
            .into_iter()
            .map(|n| (n.id, n.name))
            .collect();
        let map = Arc::new(map);
        *self.org_names.write().unwrap_or_else(|p| p.into_inner()) = Some(map.clone());
        map
    }

    /// The organisation tree (blocking on first use; dropped when an
    /// Organization is written through the service), so pages that pick
    /// institutions do not read the whole tree per request.
    pub fn org_tree(&self) -> Arc<Vec<yigong_store::TreeNode>> {
        if let Some(t) = self
            .org_tree
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
        {
            return t.clone();
        }
        let tree = Arc::new(self.store.org_tree().unwrap_or_default());
        *self.org_tree.write().unwrap_or_else(|p| p.into_inner()) = Some(tree.clone());
        tree
    }

    pub fn org_names_loaded(&self) -> bool {
        self.org_names
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .is_some()
    }

    fn org_written(&self, rtype: &str) {
        if rtype == "Organization" {
            *self.org_names.write().unwrap_or_else(|p| p.into_inner()) = None;
            *self.org_tree.write().unwrap_or_else(|p| p.into_inner()) = None;
        }
    }

    /// The user's scope in words, e.g. 「泸县人民医院医共体」.
    pub fn scope_label(&self, s: &Scope) -> String {
        match s.id() {
            None => "全县".into(),
            Some(id) => self
                .org_names()
                .get(id)
                .cloned()
                .unwrap_or_else(|| id.to_string()),
        }
    }

    fn log_read(&self, p: &Principal, s: &Stored) {
        if s.patient.is_some() {
            self.store.log_access(Access {
                at: yigong_store::now_string(),
                actor: p.0.name.clone(),
                institution: p.0.institution.clone(),
                rtype: s.rtype.clone(),
                rid: s.id.clone(),
                patient: s.patient.clone(),
            });
        }
    }

    /// Reads the current version, enforcing scope and logging patient-record reads.
    pub fn read(&self, p: &Principal, rtype: &str, id: &str) -> Result<Stored, Issue> {
        let s = self
            .store
            .read(rtype, id)
            .map_err(store_issue)?
            .ok_or_else(|| Issue::not_found(format!("{rtype}/{id} 不存在")))?;
        self.visible(p, &s)?;
        if s.deleted {
            return Err(Issue::new(
                410,
                "deleted",
                "deleted",
                format!("{rtype}/{id} 已删除"),
            ));
        }
        self.log_read(p, &s);
        if s.rtype == "Patient" {
            let linked = self.store.mpi_linked_patients(id).map_err(store_issue)?;
            return Ok(with_links(s, &linked));
        }
        Ok(s)
    }

    fn visible(&self, p: &Principal, s: &Stored) -> Result<(), Issue> {
        if s.visible_to(&p.0.scope) || self.shared_by_care(p, s)? {
            Ok(())
        } else {
            Err(Issue::new(
                403,
                "forbidden",
                "out-of-scope",
                format!("无权查看 {}/{}:该记录不在您的管辖范围内", s.rtype, s.id),
            ))
        }
    }

    /// A patient referred to (or examined, consulted or booked at) an institution
    /// is known there without registering again: the institution's staff see the
    /// patient's record while a flow involves them.
    fn shared_by_care(&self, p: &Principal, s: &Stored) -> Result<bool, Issue> {
        let (Some(inst), Some(patient)) = (p.0.institution.as_deref(), s.patient.as_deref()) else {
            return Ok(false);
        };
        if s.rtype != "Patient" {
            return Ok(false);
        }
        self.store
            .care_shares_patient(patient, inst)
            .map_err(store_issue)
    }

    pub fn vread(
        &self,
        p: &Principal,
        rtype: &str,
        id: &str,
        version: i64,
    ) -> Result<Stored, Issue> {
        let s = self
            .store
            .vread(rtype, id, version)
            .map_err(store_issue)?
            .ok_or_else(|| Issue::not_found(format!("{rtype}/{id} 的版本 {version} 不存在")))?;
        self.visible(p, &s)?;
        self.log_read(p, &s);
        Ok(s)
    }

    pub fn history(&self, p: &Principal, rtype: &str, id: &str) -> Result<Vec<Stored>, Issue> {
        let h = self.store.history(rtype, id).map_err(store_issue)?;
        let first = h
            .first()
            .ok_or_else(|| Issue::not_found(format!("{rtype}/{id} 不存在")))?;
        self.visible(p, first)?;
        self.log_read(p, first);
        Ok(h)
    }

    pub fn search(
        &self,
        p: &Principal,
        spec: &SearchSpec,
    ) -> Result<(Option<i64>, Vec<Stored>), Issue> {
        self.store
            .search(&to_query(spec), &p.0.scope)
            .map_err(store_issue)
    }

    /// The lifelong record: the Patient asked for, the other records of the
    /// same master person, and every record in their compartments, from every
    /// institution (one person, one file). The entry record must be in the
    /// reader's scope. The resident's Consents decide what is shared: an active
    /// deny withholds records held by other institutions than the reader's.
    /// Reads of records held elsewhere are logged so the resident can see who
    /// looked.
    pub fn everything(&self, p: &Principal, id: &str) -> Result<Lifelong, Issue> {
        let entry = self.read(p, "Patient", id)?;
        let linked = self.store.mpi_linked_patients(id).map_err(store_issue)?;
        let mut all = vec![];
        for pid in &linked {
            if pid != id
                && let Some(s) = self.store.read("Patient", pid).map_err(store_issue)?
            {
                all.push(with_links(s, &linked));
            }
            all.extend(
                self.store
                    .patient_compartment(pid, 10_000)
                    .map_err(store_issue)?
                    .into_iter()
                    .filter(|s| s.rtype != "Patient"),
            );
        }
        let today = chrono::Utc::now()
            .with_timezone(&chrono_tz::Asia::Shanghai)
            .format("%Y-%m-%d")
            .to_string();
        let reader = p.0.institution.as_deref();
        let restricted = all.iter().filter(|s| s.rtype == "Consent").any(|s| {
            serde_json::from_str::<Value>(&s.body)
                .is_ok_and(|c| yigong_fhir::consent::denies(&c, reader, &today))
        });
        let held_elsewhere = |s: &Stored| s.rtype != "Consent" && s.inst.as_deref() != reader;
        let before = all.len();
        if restricted {
            all.retain(|s| !held_elsewhere(s));
        }
        let withheld = before - all.len();
        for s in all
            .iter()
            .filter(|s| held_elsewhere(s) || !s.visible_to(&p.0.scope))
        {
            self.log_read(p, s);
        }
        let mut records = vec![with_links(entry, &linked)];
        records.extend(all);
        Ok(Lifelong { records, withheld })
    }

    /// `Patient/$match`: candidate records scored against a registration, each
    /// with its stored Patient. Matches outside the reader's scope are returned
    /// (a desk must find a resident registered elsewhere) and logged.
    pub fn match_patient(
        &self,
        p: &Principal,
        patient: &Value,
        count: usize,
        only_certain: bool,
    ) -> Result<Vec<(Stored, yigong_store::mpi::MatchCandidate)>, Issue> {
        let cands = self.store.mpi_match(patient).map_err(store_issue)?;
        let mut out = vec![];
        for c in cands
            .into_iter()
            .filter(|c| !only_certain || c.decision == yigong_empi::Decision::Link)
            .take(count)
        {
            if let Some(s) = self
                .store
                .read("Patient", &c.patient)
                .map_err(store_issue)?
            {
                self.log_read(p, &s);
                out.push((s, c));
            }
        }
        Ok(out)
    }

    /// The master person as a FHIR Person, linking its Patient records.
    pub fn person(&self, id: &str) -> Result<Value, Issue> {
        let person = self
            .store
            .mpi_person(id)
            .map_err(store_issue)?
            .ok_or_else(|| Issue::not_found(format!("Person/{id} 不存在")))?;
        let members = self.store.mpi_members(id).map_err(store_issue)?;
        Ok(person_resource(&person, &members))
    }

    pub fn create(
        &self,
        p: &Principal,
        rtype: &str,
        mut body: Value,
    ) -> Result<WriteOutcome, Issue> {
        check_write_role(p.role(), rtype)?;
        let id = new_id();
        if let Some(o) = body.as_object_mut() {
            o.insert("id".into(), Value::String(id.clone()));
        }
        let doc = Doc::from_resource(rtype, &id, body, None)?;
        let r = self
            .store
            .put(&p.actor(), doc, Precondition::Create, None)
            .map_err(store_issue)?;
        Ok(WriteOutcome {
            stored: r.stored,
            created: true,
        })
    }

    /// Creates resources that carry their own ids in one transaction (a request
    /// with its Task, a report with its results); references among them resolve
    /// inside it.
    pub fn write_all(
        &self,
        p: &Principal,
        resources: Vec<Value>,
    ) -> Result<Vec<WriteOutcome>, Issue> {
        let key = |r: &Value| -> Option<(String, String)> {
            Some((
                r["resourceType"].as_str()?.to_string(),
                r["id"].as_str()?.to_string(),
            ))
        };
        let in_batch: HashSet<(String, String)> = resources.iter().filter_map(key).collect();
        let mut docs = Vec::with_capacity(resources.len());
        for r in resources {
            let (rtype, id) =
                key(&r).ok_or_else(|| Issue::invalid("id-missing", "资源缺少类型或 id"))?;
            check_write_role(p.role(), &rtype)?;
            docs.push((
                Doc::from_resource(&rtype, &id, r, Some(&in_batch))?,
                Precondition::Create,
            ));
        }
        let out = self
            .store
            .transaction(&p.actor(), docs, None)
            .map_err(store_issue)?;
        Ok(out
            .into_iter()
            .map(|r| WriteOutcome {
                created: r.created,
                stored: r.stored,
            })
            .collect())
    }

    /// PUT: update with If-Match, or create at a client-chosen id.
    pub fn update(
        &self,
        p: &Principal,
        rtype: &str,
        id: &str,
        body: Value,
        if_match: Option<i64>,
    ) -> Result<WriteOutcome, Issue> {
        check_write_role(p.role(), rtype)?;
        match body.get("id").and_then(Value::as_str) {
            Some(bid) if bid == id => {}
            Some(bid) => {
                return Err(Issue::invalid(
                    "id-mismatch",
                    format!("请求体中的 id({bid})与地址中的 id({id})不一致"),
                ));
            }
            None => return Err(Issue::invalid("id-missing", "更新时请求体必须包含 id")),
        }
        if !yigong_fhir::extract::is_valid_id(id) {
            return Err(Issue::invalid(
                "invalid-id",
                "资源 id 只能包含字母、数字、'-'、'.',长度1-64",
            ));
        }
        let doc = Doc::from_resource(rtype, id, body, None)?;
        let pre = if_match.map_or(Precondition::CreateOrRequireVersion, Precondition::IfMatch);
        let r = self
            .store
            .put(&p.actor(), doc, pre, None)
            .map_err(store_issue)?;
        Ok(WriteOutcome {
            created: r.created,
            stored: r.stored,
        })
    }

    /// A transaction Bundle: every entry or none. Returns the transaction-response.
    pub fn transaction(
        &self,
        actor: &Actor,
        role: Option<Role>,
        bundle: Value,
        base: &str,
        strict: bool,
    ) -> Result<(Value, usize), Issue> {
        let r = run_transaction(&self.store, actor, role, bundle, base, strict);
        self.org_written("Organization");
        r
    }
}

/// Runs a Bundle as one transaction: every entry or none. Returns the
/// transaction-response and the number of resources written.
pub fn run_transaction(
    store: &Store,
    actor: &Actor,
    role: Option<Role>,
    bundle: Value,
    base: &str,
    strict: bool,
) -> Result<(Value, usize), Issue> {
    let entries = parse_transaction(bundle, strict, new_id)?;
    let in_bundle: HashSet<(String, String)> = entries
        .iter()
        .map(|e| (e.rtype.clone(), e.id.clone()))
        .collect();
    let mut docs = Vec::with_capacity(entries.len());
    let mut skipped = vec![false; entries.len()];
    for (i, e) in entries.into_iter().enumerate() {
        if let Some(role) = role {
            check_write_role(role, &e.rtype)?;
        }
        if let Some(cond) = &e.if_none_exist
            && matches_exist(store, actor, &e.rtype, cond)?
        {
            skipped[i] = true;
            continue;
        }
        let pre = precondition_of(&e);
        let doc =
            Doc::from_resource(&e.rtype, &e.id, e.resource, Some(&in_bundle)).map_err(|iss| {
                Issue {
                    zh: format!("第 {} 条({}):{}", i + 1, e.rtype, iss.zh),
                    ..iss
                }
            })?;
        docs.push((doc, pre));
    }
    // Entries that reference each other are written in order; refs to other
    // entries of the same bundle are exempt from the existence check.
    let n = docs.len();
    let results = store
        .transaction(actor, docs, Some("Bundle 事务"))
        .map_err(store_issue)?;
    let mut it = results.into_iter();
    let mut resp = vec![];
    for skip in &skipped {
        if *skip {
            resp.push(json!({ "response": { "status": "200 OK" } }));
            continue;
        }
        let Some(r) = it.next() else { break };
        let s = &r.stored;
        resp.push(json!({
            "fullUrl": format!("{base}/{}/{}", s.rtype, s.id),
            "response": {
                "status": if r.created { "201 Created" } else { "200 OK" },
                "location": format!("{}/{}/_history/{}", s.rtype, s.id, s.version),
                "etag": format!("W/\"{}\"", s.version),
                "lastModified": s.updated,
            }
        }));
    }
    Ok((
        json!({ "resourceType": "Bundle", "type": "transaction-response", "entry": resp }),
        n,
    ))
}

fn matches_exist(store: &Store, actor: &Actor, rtype: &str, cond: &str) -> Result<bool, Issue> {
    let pairs: Vec<(String, String)> = form_urlencoded::parse(cond.as_bytes())
        .into_owned()
        .collect();
    let mut spec = yigong_fhir::search::parse(rtype, &pairs)?;
    spec.count = 1;
    let (_, rows) = store
        .search(&to_query(&spec), &actor.scope)
        .map_err(store_issue)?;
    Ok(!rows.is_empty())
}

/// A bundle entry with `ifMatch` updates that version; otherwise POST and PUT
/// both upsert by id (so re-importing the same bundle changes nothing).
fn precondition_of(e: &TxEntry) -> Precondition {
    e.if_match
        .map_or(Precondition::Upsert, Precondition::IfMatch)
}

pub fn store_issue(e: StoreError) -> Issue {
    crate::ApiError::from(e).0
}

/// Imports one Bundle (transaction, batch or collection) as a single transaction.
pub fn import_bundle(store: &Store, actor: &Actor, bundle: Value) -> Result<usize, Issue> {
    run_transaction(store, actor, None, bundle, "", false).map(|(_, n)| n)
}

/// The FHIR Person of a master person: golden record, health card, and a
/// link to each Patient record with how sure the index is (manual merges are
/// level 4, automatic links level 3, the founding record level 4 too).
pub fn person_resource(
    person: &yigong_store::mpi::Person,
    members: &[yigong_store::mpi::Member],
) -> Value {
    let g = &person.golden;
    let mut ids = vec![serde_json::json!({
        "use": "official", "system": yigong_fhir::codes::SID_HEALTH_CARD, "value": person.card
    })];
    if let (Some(rid), Some(true)) = (
        g["resident_id"].as_str(),
        g["resident_id_verified"].as_bool(),
    ) {
        ids.push(serde_json::json!({ "use": "official", "system": yigong_fhir::codes::SID_RESIDENT_ID, "value": rid }));
    }
    let mut v = serde_json::json!({
        "resourceType": "Person",
        "id": person.id,
        "meta": { "versionId": person.version.to_string(), "lastUpdated": person.updated },
        "identifier": ids,
        "active": person.status == "active",
        "name": [{ "use": "official", "text": g["name"] }],
        "link": members.iter().map(|m| serde_json::json!({
            "target": { "reference": format!("Patient/{}", m.patient) },
            "assurance": if m.method == "auto" { "level3" } else { "level4" }
        })).collect::<Vec<_>>(),
    });
    if let Some(sex) = g["sex"].as_str() {
        v["gender"] = Value::String(sex.into());
    }
    if let Some(b) = g["birth_date"].as_str() {
        v["birthDate"] = Value::String(b.into());
    }
    if let Some(ph) = g["phone"].as_str() {
        v["telecom"] = serde_json::json!([{ "system": "phone", "value": ph }]);
    }
    v
}

/// A resident's lifelong record and how many records their consent withheld.
pub struct Lifelong {
    pub records: Vec<Stored>,
    pub withheld: usize,
}

/// A Patient with `link` entries (`seealso`) to the other records of the same
/// master person. Derived from the index when served, so linking never
/// creates new versions of the records it links.
fn with_links(mut s: Stored, linked: &[String]) -> Stored {
    let others: Vec<Value> = linked
        .iter()
        .filter(|o| **o != s.id)
        .map(|o| json!({ "other": { "reference": format!("Patient/{o}") }, "type": "seealso" }))
        .collect();
    if others.is_empty() {
        return s;
    }
    if let Ok(mut v) = serde_json::from_str::<Value>(&s.body) {
        v["link"] = Value::Array(others);
        s.body = v.to_string();
    }
    s
}
