//! `yigong`: the county medical community platform in one binary.

mod bench;
mod bench_care;
mod bench_empi;
mod bench_metrics;
mod bench_rx;
mod demo_ops;
mod load;

// glibc malloc serialises the generator and writer threads on its arena lock
// (one allocates documents, the other frees them); mimalloc does not.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use yigong_store::Store;

#[derive(Parser)]
#[command(
    name = "yigong",
    version,
    about = "医共 yigong:紧密型县域医共体信息平台"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Generate a synthetic county when DIR is empty, then serve it.
    Demo {
        #[arg(long, default_value = "yigong-data")]
        data_dir: PathBuf,
        #[arg(long, default_value_t = 100_000)]
        residents: u32,
        #[arg(long, default_value_t = 2026)]
        seed: u64,
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
        /// Generate only; do not serve.
        #[arg(long)]
        no_serve: bool,
    },
    /// Serve an existing database.
    Serve {
        #[arg(long, conflicts_with = "database_url")]
        data_dir: Option<PathBuf>,
        /// postgres://user@host:port/db
        #[arg(long)]
        database_url: Option<String>,
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
    },
    /// Print a bearer token for a user.
    Token {
        #[arg(long, default_value = "yigong-data")]
        data_dir: PathBuf,
        #[arg(long)]
        database_url: Option<String>,
        #[arg(long)]
        user: String,
        /// Validity in days.
        #[arg(long, default_value_t = 30)]
        days: i64,
    },
    /// Import FHIR Bundles (JSON) or NDJSON files.
    Import {
        #[arg(long, default_value = "yigong-data")]
        data_dir: PathBuf,
        #[arg(long)]
        database_url: Option<String>,
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Export every resource as NDJSON, one file per type.
    Export {
        #[arg(long, default_value = "yigong-data")]
        data_dir: PathBuf,
        #[arg(long)]
        database_url: Option<String>,
        #[arg(long, default_value = "yigong-export")]
        out: PathBuf,
    },
    /// Measure throughput and latency (see README).
    Bench(bench::BenchArgs),
    /// Speed of care across the community: worklists, referral steps, order to report.
    BenchCare(bench_care::BenchCareArgs),
    /// Identity-resolution accuracy and speed (synthetic county; FEBRL vs Splink).
    BenchEmpi(bench_empi::BenchEmpiArgs),
    /// Speed of prescription review: the engine in process and CDS Hooks order-sign.
    BenchRx(bench_rx::BenchRxArgs),
    /// Live indicators: full recompute vs DuckDB, cockpit and $evaluate-measure latency, live lag.
    BenchMetrics(bench_metrics::BenchMetricsArgs),
    /// Rebuild every indicator counter from the stored resources and report drift.
    Recompute {
        #[arg(long, default_value = "yigong-data")]
        data_dir: PathBuf,
        #[arg(long)]
        database_url: Option<String>,
        /// Cut every resource's indicator input again first (otherwise only
        /// when they are of another version than the rules).
        #[arg(long)]
        rebuild_inputs: bool,
    },
}

fn open(data_dir: &Path, database_url: Option<&str>) -> Result<Arc<Store>> {
    let store = match database_url {
        Some(url) => Store::open_postgres(url).with_context(|| "无法连接 PostgreSQL")?,
        None => Store::open_sqlite_dir(data_dir)
            .with_context(|| format!("无法打开数据目录 {}", data_dir.display()))?,
    };
    Ok(Arc::new(store))
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

fn serve(store: Arc<Store>, listen: SocketAddr) -> Result<()> {
    runtime()?.block_on(async move {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let server = tokio::spawn(yigong_web::serve(store, listen, Some(tx)));
        if let Ok(addr) = rx.await {
            println!(
                "已就绪:http://{addr}/  (FHIR 接口 http://{addr}/fhir/metadata,按 Ctrl-C 停止)"
            );
        }
        server.await??;
        Ok(())
    })
}

fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .init();
    match Cli::parse().cmd {
        Cmd::Demo {
            data_dir,
            residents,
            seed,
            listen,
            no_serve,
        } => {
            if residents < 100 {
                bail!("--residents 至少为 100");
            }
            let store = open(&data_dir, None)?;
            let logins = load::ensure_demo(&store, &data_dir, residents, seed)?;
            println!("{logins}");
            if !no_serve {
                serve(store, listen)?;
            }
        }
        Cmd::Serve {
            data_dir,
            database_url,
            listen,
        } => {
            let dir = data_dir.unwrap_or_else(|| PathBuf::from("yigong-data"));
            serve(open(&dir, database_url.as_deref())?, listen)?;
        }
        Cmd::Token {
            data_dir,
            database_url,
            user,
            days,
        } => {
            let store = open(&data_dir, database_url.as_deref())?;
            if store.user(&user)?.is_none() {
                bail!("用户 {user} 不存在");
            }
            println!(
                "{}",
                store.issue_credential(&user, "token", chrono::Duration::days(days))?
            );
        }
        Cmd::Import {
            data_dir,
            database_url,
            files,
        } => {
            let store = open(&data_dir, database_url.as_deref())?;
            let n = load::import_files(&store, &files)?;
            println!("导入完成:{n} 个资源");
        }
        Cmd::Export {
            data_dir,
            database_url,
            out,
        } => {
            let store = open(&data_dir, database_url.as_deref())?;
            let n = load::export(&store, &out)?;
            println!("导出完成:{n} 个资源,目录 {}", out.display());
        }
        Cmd::Bench(args) => bench::run(args)?,
        Cmd::BenchCare(args) => bench_care::run(args)?,
        Cmd::BenchEmpi(args) => bench_empi::run(args)?,
        Cmd::BenchRx(args) => bench_rx::run(args)?,
        Cmd::BenchMetrics(args) => bench_metrics::run(args)?,
        Cmd::Recompute {
            data_dir,
            database_url,
            rebuild_inputs,
        } => {
            let store = open(&data_dir, database_url.as_deref())?;
            if rebuild_inputs {
                let t = std::time::Instant::now();
                let n = store.rebuild_metric_inputs()?;
                println!(
                    "重建指标输入:{n} 条,用时 {:.1} s",
                    t.elapsed().as_secs_f64()
                );
            }
            let r = store.metrics_recompute()?;
            if let Some(n) = r.rebuilt_inputs {
                println!("指标输入版本不符,已先由资源重建 {n} 条(计入下面的用时)");
            }
            println!(
                "全量重算:{} 个资源 → {} 个计数器,用时 {:.1} s;与实时计数器不一致 {} 个{}",
                r.resources,
                r.facts,
                r.seconds,
                r.differing,
                if r.differing > 0 {
                    "(已按重算结果更正)"
                } else {
                    ""
                }
            );
        }
    }
    Ok(())
}
