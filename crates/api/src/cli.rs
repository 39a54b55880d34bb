//! The `appeals` subcommands other than `serve`: migrating, adding users and
//! verifying (and, once, sealing) the audit trail.

use std::process::ExitCode;

use anyhow::Context as _;
use appeals_core::text::{MunicipalityCode, PersonName};
use appeals_core::{AppealId, Role};
use appeals_storage::audit::describe;
use appeals_storage::{AuditReport, Store, database};

use crate::config::{AuditVerifyArgs, ChannelSetArgs, DatabaseArgs, UserAddArgs};

pub async fn migrate(args: DatabaseArgs) -> anyhow::Result<ExitCode> {
    let db = database::connect(&args.database_url, args.pool()).await.context("cannot connect to the database")?;
    database::migrate(&db, &args.database_url).await.context("migrations failed")?;
    db.close().await?;
    println!("migrations applied");
    Ok(ExitCode::SUCCESS)
}

/// Creates a user; the token is printed alone on the last line of standard output.
pub async fn add_user(args: UserAddArgs) -> anyhow::Result<ExitCode> {
    let role = Role::parse_loose(&args.role)?;
    let name = PersonName::parse(&args.name)?;
    let code = args.municipality.as_deref().map(MunicipalityCode::parse).transpose()?;
    let store = open(&args.database).await?;
    let (user, token) = store.create_user(name, role, code.as_ref()).await?;
    println!("created {} {} ({})", user.role, user.name, user.id);
    if let Some(code) = &code {
        println!("municipality: {code}");
    }
    println!("token (shown once):");
    println!("{}", token.expose());
    store.close().await?;
    Ok(ExitCode::SUCCESS)
}

/// Configures a municipality's channel and prints its settings, never its
/// secrets.
pub async fn set_channel(args: ChannelSetArgs) -> anyhow::Result<ExitCode> {
    let code = MunicipalityCode::parse(&args.municipality)?;
    let channel = appeals_core::Channel::from(args.channel);
    let change = appeals_storage::ChannelChange {
        enabled: Some(!args.disable),
        webhook_secret: args.webhook_secret,
        bot_token: args.bot_token,
        vk_group_id: args.vk_group_id,
        vk_confirmation: args.vk_confirmation,
    };
    let store = open(&args.database).await?;
    let settings = store.configure_channel(&code, channel, &change).await?;
    let yes_no = |set: bool| if set { "set" } else { "not set" };
    println!(
        "{} {}: {}",
        settings.municipality_code,
        settings.channel,
        if settings.enabled { "enabled" } else { "disabled" }
    );
    println!("webhook path: {}", crate::schema::channels::webhook_path(channel, &settings.municipality_code));
    println!("webhook secret: {}", yes_no(settings.has_webhook_secret));
    println!("bot token: {}", yes_no(settings.has_bot_token));
    if channel == appeals_core::Channel::Vk {
        println!("VK community: {}", settings.vk_group_id.as_deref().unwrap_or("not set"));
        println!("VK confirmation: {}", yes_no(settings.has_vk_confirmation));
    }
    store.close().await?;
    Ok(ExitCode::SUCCESS)
}

/// Verifies one appeal or all of them; exit status 1 names the first break.
/// With the audit key, the seals are checked too; `--seal-unsealed` first seals
/// the histories written without the key that verify as they stand.
pub async fn verify_audit(args: AuditVerifyArgs) -> anyhow::Result<ExitCode> {
    let store = open(&args.database).await?;
    let store = match args.audit_key.key() {
        Some(key) => {
            println!("audit key {}: checking the seals too", key.fingerprint());
            store.with_audit_key(key)
        }
        None => {
            println!(
                "no audit key: checking the hashes only, which anyone able to write to the database can recompute"
            );
            store
        }
    };
    if args.seal_unsealed {
        if store.audit_key().is_none() {
            anyhow::bail!("--seal-unsealed needs the audit key (--audit-key-file or APPEALS_AUDIT_KEY)");
        }
        let report = store.seal_unsealed_history().await?;
        println!("sealed {} events of {} appeals", report.events_sealed, report.appeals_sealed);
        if report.refused > 0 {
            println!("left {} appeals unsealed, their history does not verify:", report.refused);
            for refused in &report.first_refused {
                println!("  {}", describe(refused));
            }
        }
    }
    let failure = match &args.appeal {
        Some(id) => {
            let id: AppealId = id.parse()?;
            let report = store.verify_appeal(id).await?.with_context(|| format!("no appeal {id}"))?;
            println!("checked 1 appeal, {} events", report.events_checked);
            (!report.ok()).then_some(report)
        }
        None => {
            let summary = store.verify_all().await?;
            println!("checked {} appeals, {} events", summary.appeals_checked, summary.events_checked);
            summary.first_failure
        }
    };
    store.close().await?;
    match failure {
        None => {
            println!("ok: every hash chain verifies");
            Ok(ExitCode::SUCCESS)
        }
        Some(AuditReport { appeal_id, number, broken: Some(broken), .. }) => {
            println!("BROKEN: appeal {number} ({appeal_id}) at seq {}: {}", broken.seq, broken.reason);
            Ok(ExitCode::from(1))
        }
        Some(report) => {
            println!("BROKEN: appeal {} ({})", report.number, report.appeal_id);
            Ok(ExitCode::from(1))
        }
    }
}

async fn open(args: &DatabaseArgs) -> anyhow::Result<Store> {
    Store::open(&args.database_url, args.pool()).await.context("cannot open the database")
}
