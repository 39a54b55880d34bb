//! The `appeals` subcommands other than `serve`: migrating, adding users,
//! listing municipalities, configuring channels, verifying (and, once,
//! sealing) the audit trail, rebuilding the search indexes, and shell completions. Each failure ends with one
//! line and the status [`crate::exit`] documents.

use std::process::ExitCode;

use appeals_core::text::{MunicipalityCode, PersonName};
use appeals_core::{AppealId, Role};
use appeals_storage::audit::describe;
use appeals_storage::{AuditReport, Store, database};

use crate::config::{
    AuditVerifyArgs, ChannelSetArgs, CompletionsArgs, DatabaseArgs, ManifestArgs, MunicipalityListArgs, UserAddArgs,
};
use crate::exit::Failure;

pub async fn migrate(args: DatabaseArgs) -> anyhow::Result<ExitCode> {
    let url = &args.database_url;
    let db = match database::connect(url, args.pool()).await {
        Ok(db) => db,
        Err(error) => return Err(Failure::Database(database::diagnose(url, &error).await).into()),
    };
    database::migrate(&db, url).await.map_err(|error| Failure::Database(database::explain(url, &error)))?;
    db.close().await?;
    println!("migrations applied to {}", database::describe(url));
    Ok(ExitCode::SUCCESS)
}

/// Creates a user. The token is printed alone on the last line of standard
/// output; with `--quiet` it is all that is printed, with `--json` it is the
/// `token` of one JSON object.
pub async fn add_user(args: UserAddArgs) -> anyhow::Result<ExitCode> {
    let role = Role::parse_loose(&args.role).map_err(|_| {
        Failure::Usage(format!(
            "no role `{}`: use one of intake, assistant, head, governor-office, auditor, admin",
            args.role
        ))
    })?;
    let name = PersonName::parse(&args.name)?;
    let code = args.municipality.as_deref().map(MunicipalityCode::parse).transpose()?;
    let store = open(&args.database).await?;
    let (user, token) = store.create_user(name, role, code.as_ref()).await.map_err(Failure::from_storage)?;
    if args.output.json {
        let printed = serde_json::json!({
            "id": user.id.to_string(),
            "name": user.name,
            "role": user.role.as_str(),
            "municipality": code.as_ref().map(|code| code.as_str()),
            "token": token.expose(),
        });
        println!("{printed}");
    } else if args.output.quiet {
        println!("{}", token.expose());
    } else {
        println!("created {} {} ({})", user.role, user.name, user.id);
        if let Some(code) = &code {
            println!("municipality: {code}");
        }
        println!("token (shown once):");
        println!("{}", token.expose());
    }
    store.close().await?;
    Ok(ExitCode::SUCCESS)
}

/// Prints every municipality's code and name.
pub async fn list_municipalities(args: MunicipalityListArgs) -> anyhow::Result<ExitCode> {
    let store = open(&args.database).await?;
    let municipalities = store.municipalities().await.map_err(Failure::from_storage)?;
    store.close().await?;
    if args.output.json {
        let printed: Vec<_> = municipalities
            .iter()
            .map(|municipality| serde_json::json!({ "code": municipality.code, "name": municipality.name }))
            .collect();
        println!("{}", serde_json::Value::Array(printed));
    } else {
        let width = municipalities.iter().map(|municipality| municipality.code.chars().count()).max().unwrap_or(0);
        for municipality in &municipalities {
            if args.output.quiet {
                println!("{}", municipality.code);
            } else {
                println!("{:width$}  {}", municipality.code, municipality.name);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Prints the completion script of `shell` for the whole command line.
pub fn completions(args: CompletionsArgs) -> ExitCode {
    let mut command = <crate::config::Cli as clap::CommandFactory>::command();
    clap_complete::generate(args.shell, &mut command, "appeals", &mut std::io::stdout());
    ExitCode::SUCCESS
}

/// Prints the trusted documents' manifest of `.graphql` files.
pub fn documents_manifest(args: ManifestArgs) -> anyhow::Result<ExitCode> {
    let documents = crate::persisted::read_documents(&args.paths).map_err(Failure::Usage)?;
    println!("{}", crate::persisted::manifest(documents.iter().map(|(_, document)| document.as_str())));
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
    let settings = store.configure_channel(&code, channel, &change).await.map_err(Failure::from_storage)?;
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
        println!(
            "sealed {} of {}",
            counted(report.events_sealed, "event", "events"),
            counted(report.appeals_sealed, "appeal", "appeals")
        );
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
            let report = store.verify_appeal(id).await?.ok_or_else(|| Failure::Usage(format!("no appeal {id}")))?;
            println!("checked 1 appeal, {}", counted(report.events_checked, "event", "events"));
            (!report.ok()).then_some(report)
        }
        None => {
            let summary = store.verify_all().await?;
            println!(
                "checked {}, {}",
                counted(summary.appeals_checked, "appeal", "appeals"),
                counted(summary.events_checked, "event", "events")
            );
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
            Ok(ExitCode::from(crate::exit::AUDIT_BROKEN))
        }
        Some(report) => {
            println!("BROKEN: appeal {} ({})", report.number, report.appeal_id);
            Ok(ExitCode::from(crate::exit::AUDIT_BROKEN))
        }
    }
}

/// Analyses every appeal's text again and rebuilds the search indexes, with a
/// line of progress every few seconds.
pub async fn reindex_search(args: DatabaseArgs) -> anyhow::Result<ExitCode> {
    let store = open(&args).await?;
    let mut printed = std::time::Instant::now();
    let analysed = store
        .reindex_search(|progress| {
            if printed.elapsed() >= std::time::Duration::from_secs(2) {
                println!("analysed {} of {}", progress.analysed, counted(progress.total, "appeal", "appeals"));
                printed = std::time::Instant::now();
            }
        })
        .await
        .map_err(Failure::from_storage)?;
    store.close().await?;
    println!("search indexes rebuilt: {} analysed", counted(analysed, "appeal", "appeals"));
    Ok(ExitCode::SUCCESS)
}

/// Opens the database a one-shot command works on. It must exist: only
/// `serve` and `migrate` create one, so that a command run from another folder
/// (or without the server's `--database-url`) does not make a second, empty
/// database whose tokens the server has never heard of.
async fn open(args: &DatabaseArgs) -> anyhow::Result<Store> {
    let url = &args.database_url;
    if let Some(file) = database::sqlite_file(url)
        && !file.exists()
    {
        return Err(Failure::Database(format!(
            "no database at {}; the server creates it on its first start, or pass --database-url / \
             APPEALS_DATABASE_URL to use the server's",
            file.display()
        ))
        .into());
    }
    match Store::open(url, args.pool()).await {
        Ok(store) => Ok(store),
        Err(error) => Err(Failure::Database(database::diagnose(url, &error).await).into()),
    }
}

/// `1 appeal`, `2 appeals`.
fn counted(count: impl TryInto<u64>, one: &str, many: &str) -> String {
    let count: u64 = count.try_into().unwrap_or(u64::MAX);
    format!("{count} {}", if count == 1 { one } else { many })
}
