//! Loading data: the synthetic county, FHIR bundle / NDJSON import, NDJSON export.

use anyhow::{Context, Result, bail};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::Value;
use std::io::{BufRead, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Instant;
use yigong_fhir::mapping;
use yigong_store::rx::ImportRx;
use yigong_store::{Actor, Doc, Role, Scope, Store, User};
use yigong_synth::{Item, Params};
use yigong_web::service_api::new_id;

const BATCH: usize = 5_000;

fn docs_of(item: Item) -> Vec<(&'static str, String, Value)> {
    match item {
        Item::Org(o) => vec![("Organization", o.id.clone(), mapping::organization(&o))],
        Item::Practitioner(p) => {
            let mut v = vec![("Practitioner", p.id.clone(), mapping::practitioner(&p))];
            for r in mapping::practitioner_roles(&p) {
                let id = r["id"].as_str().unwrap_or_default().to_string();
                v.push(("PractitionerRole", id, r));
            }
            v
        }
        Item::Patient(p) => vec![("Patient", p.id.clone(), mapping::patient(&p))],
        Item::Encounter(e) => vec![("Encounter", e.id.clone(), mapping::encounter(&e))],
        Item::Condition(c) => vec![("Condition", c.id.clone(), mapping::condition(&c))],
        Item::Resource(v) => match yigong_synth::resource_type(&v) {
            Some(rtype) => {
                let id = v["id"].as_str().unwrap_or_default().to_string();
                vec![(rtype, id, v)]
            }
            None => vec![],
        },
        // Prescriptions live in the review tables, not the FHIR store.
        Item::Prescription(_) => vec![],
    }
}

fn import_rx(p: &yigong_synth::SynthRx) -> ImportRx {
    ImportRx {
        id: p.id.clone(),
        patient: p.patient.clone(),
        patient_name: p.patient_name.clone(),
        inst: p.institution.clone(),
        prescriber: p.prescriber.clone(),
        prescriber_name: p.prescriber_name.clone(),
        submitted: p.at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        rx: p.rx.clone(),
    }
}

/// Generates the synthetic county into `store`. Returns (resources, seconds).
pub fn generate_into(
    store: &Store,
    residents: u32,
    seed: u64,
    as_of: chrono::NaiveDate,
    progress: bool,
) -> Result<(usize, f64)> {
    let started = Instant::now();
    let (tx, rx) = mpsc::sync_channel::<Vec<Doc>>(4);
    let params = Params {
        residents,
        seed,
        as_of,
    };
    let producer = std::thread::spawn(move || -> Result<Vec<ImportRx>> {
        let mut batch = Vec::with_capacity(BATCH);
        let mut prescriptions = Vec::new();
        let mut err = None;
        yigong_synth::generate(&params, &mut |item| {
            if err.is_some() {
                return;
            }
            if let Item::Prescription(p) = &item {
                prescriptions.push(import_rx(p));
                return;
            }
            for (rtype, id, body) in docs_of(item) {
                match Doc::from_resource(rtype, &id, body, None) {
                    Ok(mut d) => {
                        // Generated in dependency order; references are known to resolve.
                        d.refs.clear();
                        batch.push(d);
                    }
                    Err(e) => {
                        err = Some(anyhow::anyhow!("生成的 {rtype}/{id} 未通过校验:{}", e.zh))
                    }
                }
            }
            if batch.len() >= BATCH {
                let full = std::mem::replace(&mut batch, Vec::with_capacity(BATCH));
                if tx.send(full).is_err() {
                    err = Some(anyhow::anyhow!("写入线程已停止"));
                }
            }
        });
        if let Some(e) = err {
            return Err(e);
        }
        if !batch.is_empty() {
            let _ = tx.send(batch);
        }
        Ok(prescriptions)
    });
    let bar = if progress {
        let b = ProgressBar::new_spinner();
        b.set_style(
            ProgressStyle::with_template("{spinner} 生成演示县 {pos} 个资源 {per_sec} [{elapsed}]")
                .expect("template"),
        );
        b
    } else {
        ProgressBar::hidden()
    };
    let actor = Actor::system("synth");
    let mut n = 0;
    store.set_bulk_load(true)?;
    for batch in rx {
        let len = batch.len();
        store.bulk_upsert(&actor, batch, "生成演示数据")?;

        n += len;
        bar.inc(len as u64);
    }
    let prescriptions = producer
        .join()
        .map_err(|_| anyhow::anyhow!("生成线程崩溃"))??;
    bar.finish_and_clear();
    // The last day's prescriptions wait in the pharmacists' queue.
    let t = Instant::now();
    for chunk in prescriptions.chunks(5_000) {
        store.rx_import(&actor, chunk, as_of)?;
    }
    let rx_secs = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let stock = store.pharmacy_seed_demo(seed, as_of)?;
    if progress {
        println!(
            "处方:{} 张(近 60 天,审核并载入 {rx_secs:.1} s);药房库存批次:{stock}({:.1} s)",
            prescriptions.len(),
            t.elapsed().as_secs_f64()
        );
    }
    // Bulk loads skip the per-record index; resolve everyone at once (this also
    // trains the matching model on the county's own registrations).
    let mpi = store.mpi_resolve_pending(&actor)?;
    // Bulk loads skip the live counters: build them once from what was loaded.
    let m = store.metrics_recompute()?;
    if progress {
        println!(
            "指标计数器:{} 个资源 → {} 个计数器({:.1} s)",
            m.resources, m.facts, m.seconds
        );
    }
    store.set_bulk_load(false)?;
    let configured = crate::demo_ops::seed(store, as_of)?;
    if progress && configured > 0 {
        println!("运营配置:{configured} 个医共体的医保预算、专项资金与考核周期");
    }
    if progress {
        println!(
            "主索引:{} 条登记 → {} 人(自动关联 {} 条,待人工复核 {} 对)",
            mpi.patients, mpi.persons, mpi.auto_links, mpi.reviews
        );
    }
    Ok((n, started.elapsed().as_secs_f64()))
}

fn demo_users(store: &Store) -> Result<Vec<(User, &'static str)>> {
    let tree = store.org_tree()?;
    let find = |pred: &dyn Fn(&yigong_store::TreeNode) -> bool| {
        tree.iter().find(|n| pred(n)).map(|n| n.id.clone())
    };
    let communities: Vec<_> = tree
        .iter()
        .filter(|n| n.kind.as_deref() == Some("community"))
        .map(|n| n.id.clone())
        .collect();
    let c1 = communities.first().cloned().context("演示县没有医共体")?;
    let c2 = communities.get(1).cloned().unwrap_or_else(|| c1.clone());
    let lead1 = find(&|n| n.lead && n.comm.as_deref() == Some(c1.as_str()));
    let lead2 = find(&|n| n.lead && n.comm.as_deref() == Some(c2.as_str()));
    let township = find(&|n| {
        n.kind.as_deref() == Some("township-centre") && n.comm.as_deref() == Some(c1.as_str())
    });
    let village = find(&|n| {
        n.kind.as_deref() == Some("village-clinic") && n.comm.as_deref() == Some(c1.as_str())
    });
    let u = |name: &str, display: &str, role, scope, inst: Option<String>| User {
        name: name.into(),
        display: display.into(),
        role,
        scope,
        institution: inst,
    };
    Ok(vec![
        (
            u(
                "admin",
                "系统管理员",
                Role::SystemAdmin,
                Scope::County,
                None,
            ),
            "全县,可维护机构与人员",
        ),
        (
            u(
                "weijian",
                "县卫健局",
                Role::HealthCommission,
                Scope::County,
                None,
            ),
            "全县只读",
        ),
        (
            u(
                "yunying",
                "运营管理中心",
                Role::OperationsCentre,
                Scope::County,
                None,
            ),
            "全县只读",
        ),
        (
            u(
                "yibao",
                "县医保局",
                Role::InsuranceOfficer,
                Scope::County,
                None,
            ),
            "全县只读",
        ),
        (
            u(
                "doctor1",
                "张医生",
                Role::Clinician,
                Scope::Community(c1.clone()),
                lead1.clone(),
            ),
            "第一医共体",
        ),
        (
            u(
                "pharm1",
                "李药师",
                Role::Pharmacist,
                Scope::Community(c1.clone()),
                lead1,
            ),
            "第一医共体",
        ),
        (
            u(
                "doctor2",
                "王医生",
                Role::Clinician,
                Scope::Community(c2),
                lead2,
            ),
            "第二医共体",
        ),
        (
            u(
                "town1",
                "陈医生",
                Role::Clinician,
                Scope::Institution(township.clone().unwrap_or_default()),
                township,
            ),
            "第一医共体的一家乡镇卫生院(转诊、开检查单)",
        ),
        (
            u(
                "village1",
                "刘村医",
                Role::VillageDoctor,
                Scope::Institution(village.clone().unwrap_or_default()),
                village,
            ),
            "一个村卫生室",
        ),
    ])
}

fn random_password() -> String {
    use rand::Rng;
    const CHARS: &[u8] = b"abcdefghjkmnpqrstuvwxyzACDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut rng = rand::rng();
    (0..12)
        .map(|_| CHARS[rng.random_range(0..CHARS.len())] as char)
        .collect()
}

/// Generates the demo county when the database is empty and returns the logins text.
pub fn ensure_demo(store: &Store, data_dir: &Path, residents: u32, seed: u64) -> Result<String> {
    let pw_file = data_dir.join("demo-password.txt");
    if store.meta_get("demo")?.is_none() {
        if !store.org_tree()?.is_empty() {
            bail!(
                "数据目录 {} 已有非演示数据,请换一个空目录",
                data_dir.display()
            );
        }
        // The simulated year ends yesterday (China time), so no visit lies in the future.
        let as_of = chrono::Utc::now()
            .with_timezone(&china_time_offset())
            .date_naive()
            - chrono::Duration::days(1);
        println!("正在生成演示县:{residents} 名居民,随机种子 {seed},就诊数据截至 {as_of} ……");
        let (n, secs) = generate_into(store, residents, seed, as_of, true)?;
        let password = random_password();
        for (user, _) in demo_users(store)? {
            store.upsert_user("demo", &user, &password)?;
        }
        // The lead hospital's doctor holds the full prescribing rights; the
        // others keep their role's default (township: restricted antimicrobials,
        // village: non-restricted only).
        store.rx_set_prescriber(
            &Actor::system("demo"),
            "doctor1",
            &yigong_rx::model::Prescriber {
                antimicrobial: Some(yigong_rx::knowledge::AntimicrobialGrade::Special),
                narcotic_right: true,
            },
        )?;
        write_secret(&pw_file, &password)?;
        store.meta_set(
            "demo",
            &format!("residents={residents} seed={seed} as_of={as_of}"),
        )?;
        println!(
            "生成完成:{n} 个资源,用时 {secs:.1} 秒({:.0} 个/秒)",
            n as f64 / secs
        );
    }
    let password =
        std::fs::read_to_string(&pw_file).unwrap_or_else(|_| "(见首次生成时的输出)".into());
    let mut out = String::from("演示账号(密码相同):\n");
    for (u, note) in demo_users(store)? {
        out.push_str(&format!(
            "  {:<9} {} · {}\n",
            u.name,
            u.role.label_zh(),
            note
        ));
    }
    out.push_str(&format!(
        "  密码:{}\n管理员登录:用户名 admin,密码 {}",
        password.trim(),
        password.trim()
    ));
    Ok(out)
}

fn china_time_offset() -> chrono::FixedOffset {
    // Asia/Shanghai has been UTC+8 without daylight saving since 1991.
    chrono::FixedOffset::east_opt(8 * 3600).expect("valid offset")
}

fn write_secret(path: &Path, s: &str) -> Result<()> {
    std::fs::write(path, s)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    }
    Ok(())
}

/// Imports Bundle JSON files (each one transaction) and NDJSON files (batches).
pub fn import_files(store: &Store, files: &[PathBuf]) -> Result<usize> {
    let total_bytes: u64 = files
        .iter()
        .filter_map(|f| std::fs::metadata(f).ok())
        .map(|m| m.len())
        .sum();
    let bar = ProgressBar::new(total_bytes);
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {bytes}/{total_bytes} {msg} [{elapsed}]")
            .expect("template"),
    );
    let actor = Actor::system("import");
    let mut n = 0;
    // NDJSON files (one type each) go in reference order; bundles as given.
    let mut files = files.to_vec();
    files.sort_by_key(|f| ndjson_rank(f));
    for f in &files {
        bar.set_message(
            f.file_name()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default(),
        );
        let len = std::fs::metadata(f).map(|m| m.len()).unwrap_or(0);
        let is_ndjson = f.extension().is_some_and(|e| e == "ndjson" || e == "jsonl");
        n += if is_ndjson {
            import_ndjson(store, &actor, f)?
        } else {
            import_bundle(store, &actor, f)?
        };
        bar.inc(len);
    }
    bar.finish_and_clear();
    // NDJSON batches bypass the per-record index; link what they brought.
    store.mpi_resolve_pending(&actor)?;
    store.metrics_recompute()?;
    Ok(n)
}

/// Where an NDJSON file of this resource type goes in an import, so that every
/// reference points to a resource imported before it.
fn ndjson_rank(f: &Path) -> usize {
    const ORDER: [&str; 14] = [
        "Organization",
        "Location",
        "Practitioner",
        "PractitionerRole",
        "Patient",
        "Encounter",
        "Condition",
        "Observation",
        "Procedure",
        "MedicationRequest",
        "Immunization",
        "Claim",
        "DiagnosticReport",
        "CarePlan",
    ];
    if !f.extension().is_some_and(|e| e == "ndjson" || e == "jsonl") {
        return 0;
    }
    let stem = f
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    ORDER
        .iter()
        .position(|t| *t == stem)
        .map_or(ORDER.len() + 1, |i| i + 1)
}

pub fn import_bundle(store: &Store, actor: &Actor, f: &Path) -> Result<usize> {
    let text = std::fs::read(f).with_context(|| format!("无法读取 {}", f.display()))?;
    let v: Value =
        serde_json::from_slice(&text).with_context(|| format!("{} 不是合法的JSON", f.display()))?;
    yigong_web::service_api::import_bundle(store, actor, v)
        .map_err(|i| anyhow::anyhow!("{}:{}", f.display(), i.zh))
}

fn import_ndjson(store: &Store, actor: &Actor, f: &Path) -> Result<usize> {
    let file = std::fs::File::open(f).with_context(|| format!("无法读取 {}", f.display()))?;
    let mut batch = vec![];
    let mut n = 0;
    for (i, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let v: Value = serde_json::from_str(&line)
            .with_context(|| format!("{} 第 {} 行不是合法的JSON", f.display(), i + 1))?;
        let rtype = v["resourceType"].as_str().unwrap_or("").to_string();
        let id = v["id"].as_str().map(str::to_string).unwrap_or_else(new_id);
        let doc = Doc::from_resource(&rtype, &id, v, None)
            .map_err(|e| anyhow::anyhow!("{} 第 {} 行:{}", f.display(), i + 1, e.zh))?;
        batch.push((doc, yigong_store::Precondition::Upsert));
        if batch.len() >= 1000 {
            n += batch.len();
            store.transaction(actor, std::mem::take(&mut batch), Some("NDJSON 导入"))?;
        }
    }
    n += batch.len();
    if !batch.is_empty() {
        store.transaction(actor, batch, Some("NDJSON 导入"))?;
    }
    Ok(n)
}

/// Writes `<out>/<Type>.ndjson` for every resource type.
pub fn export(store: &Store, out: &Path) -> Result<usize> {
    std::fs::create_dir_all(out)?;
    let mut n = 0;
    for (rtype, _) in store.resource_types()? {
        let mut w = BufWriter::new(std::fs::File::create(out.join(format!("{rtype}.ndjson")))?);
        let mut after: Option<String> = None;
        loop {
            let page = store.scan(&rtype, after.as_deref(), 5_000)?;
            let Some(last) = page.last() else { break };
            after = Some(last.id.clone());
            for s in &page {
                w.write_all(s.body.as_bytes())?;
                w.write_all(b"\n")?;
            }
            n += page.len();
        }
        w.flush()?;
    }
    Ok(n)
}
