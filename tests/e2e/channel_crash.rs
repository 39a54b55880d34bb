//! A reply is never delivered twice, even when the server is killed with
//! SIGKILL after the platform took the message and before the server recorded
//! it; and no secret or token reaches a log line, through all of it.
//!
//! The real `appeals` binary, configured by `appeals channel set`, delivers to
//! the fake platforms ([`FakePlatforms`]); the fake holds its answer to the
//! first call of each platform (the message is delivered, the answer never
//! comes), the test kills the server then, and starts it again on the same
//! database:
//! - VK: the reply is sent again with the same `random_id`, which VK (and the
//!   fake) drops, so the resident has it once and the reply is `SENT`;
//! - Telegram (no idempotency key): the reply is not sent again; it is
//!   `FAILED` with "delivery not confirmed", and the resident has it once.

use std::time::{Duration, Instant};

use appeals_storage::testing::{Backend, ThrowawayDatabase, on_both_databases};
use serde_json::{Value, json};

use crate::channels::{TELEGRAM_MESSAGE, VK_GROUP, VK_MESSAGE};
use crate::support::platforms::{FakePlatforms, Scripted};
use crate::support::process::{ServerProcess, describe, run_command};

on_both_databases!(a_reply_cut_off_by_a_crash_is_never_delivered_twice_and_no_secret_is_logged);

const TELEGRAM_SECRET: &str = "tg-webhook-Secret-8Zq1";
const TELEGRAM_TOKEN: &str = "7000000001:AAH-telegram-bot-token-Qx9";
const VK_SECRET: &str = "vk-callback-Secret-5hQw";
const VK_TOKEN: &str = "vk1.a.community-access-token-77Lm";
const MAX_SECRET: &str = "max-webhook-Secret-3Pz";
const MAX_TOKEN: &str = "max-bot-token-Zk42";

const REPLIES: &str =
    "query { appeals(first: 10) { edges { node { channel replies { kind status attempts lastError } } } } }";

async fn a_reply_cut_off_by_a_crash_is_never_delivered_twice_and_no_secret_is_logged(backend: Backend) {
    let Some(database) = ThrowawayDatabase::create(backend).await else { return };
    let url = database.url.clone();
    let fake = FakePlatforms::start().await;
    for token in [TELEGRAM_TOKEN, VK_TOKEN, MAX_TOKEN] {
        fake.accept_token(token);
    }
    let migrated = run_command(&url, &["migrate"]);
    assert!(migrated.status.success(), "migrate: {}", describe(&migrated));
    let mut cli_output = String::new();
    for args in [
        vec![
            "channel",
            "set",
            "--municipality",
            "tomsk",
            "--channel",
            "telegram",
            "--webhook-secret",
            TELEGRAM_SECRET,
            "--bot-token",
            TELEGRAM_TOKEN,
        ],
        vec![
            "channel",
            "set",
            "--municipality",
            "tomsk",
            "--channel",
            "vk",
            "--webhook-secret",
            VK_SECRET,
            "--bot-token",
            VK_TOKEN,
            "--vk-group-id",
            VK_GROUP,
            "--vk-confirmation",
            "conf-3f9a",
        ],
        vec![
            "channel",
            "set",
            "--municipality",
            "tomsk",
            "--channel",
            "max",
            "--webhook-secret",
            MAX_SECRET,
            "--bot-token",
            MAX_TOKEN,
        ],
    ] {
        let output = run_command(&url, &args);
        assert!(output.status.success(), "{args:?}: {}", describe(&output));
        cli_output.push_str(&describe(&output));
    }
    assert!(cli_output.contains("webhook path: /hooks/telegram/tomsk"), "{cli_output}");
    let output =
        run_command(&url, &["user", "add", "--name", "Помощник", "--role", "assistant", "--municipality", "tomsk"]);
    assert!(output.status.success(), "{}", describe(&output));
    let assistant = String::from_utf8_lossy(&output.stdout).lines().last().unwrap_or_default().to_owned();

    let mut server = ServerProcess::start(
        &url,
        &[
            "--telegram-api-url",
            &fake.url,
            "--vk-api-url",
            &fake.url,
            "--max-api-url",
            &fake.url,
            "--reply-lease",
            "3s",
        ],
    )
    .await;
    let client = reqwest::Client::new();
    let address = server.address();
    let hook = |path: &str| format!("{address}/hooks/{path}/tomsk");

    // VK: held, killed, restarted: sent again under the same random_id.
    fake.script([Scripted::Hold]);
    let mut message: Value = serde_json::from_str(VK_MESSAGE).expect("the example");
    message["secret"] = json!(VK_SECRET);
    let answer = client.post(hook("vk")).json(&message).send().await.expect("an answer");
    assert_eq!(answer.text().await.expect("a body"), "ok");
    assert_eq!(fake.wait_for_calls(1, Duration::from_secs(20)).await.len(), 1, "the acknowledgement is on its way");
    server.kill();
    server.restart().await;
    let calls = fake.wait_for_calls(2, Duration::from_secs(30)).await;
    assert_eq!(calls.len(), 2, "sent again after the restart");
    assert_eq!(calls[0].body["random_id"], calls[1].body["random_id"], "under the same random_id");
    let replies = wait_for_status(&server, &assistant, "VK", "SENT").await;
    assert_eq!(replies[0]["attempts"], 2, "{replies:?}");
    assert_eq!(fake.delivered().len(), 1, "the resident has it once");

    // Telegram: held, killed, restarted: not sent again, and says so.
    fake.script([Scripted::Hold]);
    let answer = client
        .post(hook("telegram"))
        .header("X-Telegram-Bot-Api-Secret-Token", TELEGRAM_SECRET)
        .body(TELEGRAM_MESSAGE)
        .header("content-type", "application/json")
        .send()
        .await
        .expect("an answer");
    assert_eq!(answer.status(), 200);
    assert_eq!(fake.wait_for_calls(3, Duration::from_secs(20)).await.len(), 3, "the acknowledgement is on its way");
    server.kill();
    server.restart().await;
    let replies = wait_for_status(&server, &assistant, "TELEGRAM", "FAILED").await;
    assert!(replies[0]["lastError"].as_str().is_some_and(|error| error.contains("not confirmed")), "{replies:?}");
    assert_eq!(fake.calls().len(), 3, "not sent again");
    assert_eq!(fake.delivered().len(), 2, "the resident has it once");

    // Errors on the way, for the log: a wrong secret, a refused token, a 500.
    let wrong = client.post(hook("max")).header("X-Max-Bot-Api-Secret", "guess").json(&json!({})).send().await;
    assert_eq!(wrong.expect("an answer").status(), 401);
    fake.script([Scripted::Answer {
        status: 500,
        body: json!({ "code": "internal", "message": "boom" }),
        retry_after: None,
    }]);
    let max_message: Value =
        serde_json::from_str(include_str!("../../crates/core/tests/data/channels/max_message_created.json"))
            .expect("the example");
    let answer = client.post(hook("max")).header("X-Max-Bot-Api-Secret", MAX_SECRET).json(&max_message).send().await;
    assert_eq!(answer.expect("an answer").status(), 200);
    wait_for_status(&server, &assistant, "MAX", "SENT").await;

    let log = server.log();
    assert!(log.contains("will retry a reply"), "the log covers the failures: {log}");
    for secret in [
        TELEGRAM_SECRET,
        TELEGRAM_TOKEN,
        VK_SECRET,
        VK_TOKEN,
        MAX_SECRET,
        MAX_TOKEN,
        "AAH-telegram",
        "community-access-token",
    ] {
        assert!(!log.contains(secret), "a secret in the server's log: {secret}");
        assert!(!cli_output.contains(secret), "a secret in `channel set`'s output: {secret}");
    }
}

/// Waits until the reply of the `channel` appeal has `status`; returns its replies.
async fn wait_for_status(server: &ServerProcess, token: &str, channel: &str, status: &str) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let answer = server.graphql(token, REPLIES, json!({})).await;
        let replies: Vec<Value> = answer["data"]["appeals"]["edges"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|edge| edge["node"]["channel"] == channel)
            .flat_map(|edge| edge["node"]["replies"].as_array().cloned().unwrap_or_default())
            .collect();
        if replies.first().is_some_and(|reply| reply["status"] == status) {
            return replies;
        }
        assert!(Instant::now() < deadline, "the {channel} reply never became {status}: {answer}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
