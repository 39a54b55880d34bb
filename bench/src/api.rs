//! The scenarios through the API: GraphQL over HTTP/1.1 with keep-alive, one
//! connection per worker, as the clients of the real service send them.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use appeals_core::AppealId;
use rand::SeedableRng;
use rand::rngs::StdRng;
use serde_json::{Value, json};

use crate::load::{Sent, Worker};
use crate::region::{UnreadAppeal, pick_weighted};
use crate::scenario::{FOCUS_MUNICIPALITY, SEARCH_TEXT, Scenario, Shared, UnreadQueue, take_unread};
use crate::texts;

pub const SUBMIT: &str = "mutation Submit($input: SubmitAppealInput!) { \
    submitAppeal(input: $input) { created appeal { id number status version } } }";

const MARK_SEEN: &str = "mutation MarkSeen($id: ID!, $version: Int!) { \
    markSeen(id: $id, expectedVersion: $version) { appeal { id status version } } }";

const RESOLVE: &str = "mutation Resolve($id: ID!, $version: Int!, $response: String!) { \
    resolveAppeal(id: $id, expectedVersion: $version, input: { outcome: EXPLAINED, response: $response }) { \
    appeal { id status version } } }";

const LIST: &str = "query List($first: Int, $after: String, $filter: AppealFilter) { \
    appeals(first: $first, after: $after, filter: $filter) { totalCount \
    edges { cursor node { id number status priority receivedAt dueAt overdue text municipality { code name } } } \
    pageInfo { hasNextPage endCursor } } }";

const APPEAL: &str = "query Appeal($id: ID!) { appeal(id: $id) { \
    id number status priority category tags text receivedAt seenAt resolvedAt dueAt overdue version \
    resolution { outcome response } \
    history { seq kind at actor { name role } fromStatus toStatus note hash } } }";

const DASHBOARD: &str = "query Dashboard($code: String) { dashboard(municipalityCode: $code) { \
    total received seen resolved overdue seenOverdue \
    municipalities { municipality { code name } total received seen resolved overdue seenOverdue \
    medianHoursToSeen medianHoursToResolve } } }";

/// How many appeals a list page asks for.
pub const PAGE: u64 = 20;

/// A GraphQL client of the server under test.
#[derive(Clone)]
pub struct GraphqlClient {
    http: reqwest::Client,
    endpoint: String,
}

impl GraphqlClient {
    pub fn new(base_url: &str, connections: usize) -> anyhow::Result<GraphqlClient> {
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(connections)
            .tcp_nodelay(true)
            .timeout(Duration::from_secs(60))
            .build()?;
        Ok(GraphqlClient { http, endpoint: format!("{base_url}/graphql") })
    }

    /// Runs `query` as the holder of `token`; any GraphQL error is an error here.
    pub async fn execute(&self, token: &str, query: &str, variables: Value) -> anyhow::Result<Value> {
        let response = self
            .http
            .post(&self.endpoint)
            .bearer_auth(token)
            .json(&json!({ "query": query, "variables": variables }))
            .send()
            .await?;
        let status = response.status();
        let mut body: Value = response.json().await.with_context(|| format!("HTTP {status} without a JSON body"))?;
        if let Some(errors) = body.get("errors") {
            anyhow::bail!("HTTP {status}: {errors}");
        }
        anyhow::ensure!(status.is_success(), "HTTP {status}");
        Ok(body["data"].take())
    }
}

/// One client of the API in a scenario.
pub struct ApiWorker {
    scenario: Scenario,
    shared: Arc<Shared>,
    client: GraphqlClient,
    index: usize,
    sent: u64,
    rng: StdRng,
    unread: Option<UnreadQueue>,
    /// An appeal this worker marked seen and resolves next.
    seen: Option<UnreadAppeal>,
}

impl ApiWorker {
    pub fn new(
        scenario: Scenario,
        shared: Arc<Shared>,
        client: GraphqlClient,
        index: usize,
        unread: Option<UnreadQueue>,
    ) -> ApiWorker {
        let rng = StdRng::seed_from_u64(index as u64 + 1);
        ApiWorker { scenario, shared, client, index, sent: 0, rng, unread, seen: None }
    }

    async fn submit(&mut self) -> anyhow::Result<Sent> {
        let region = &self.shared.region;
        let municipality = pick_weighted(&mut self.rng, &region.shares);
        let input = json!({
            "municipalityCode": region.municipalities[municipality].code,
            "channel": "TELEGRAM",
            "externalId": format!("bench-{}-api-{}-{}", self.shared.run, self.index, self.sent),
            "authorName": texts::author_name(&mut self.rng),
            "text": texts::appeal_text(&mut self.rng),
        });
        let data = self.client.execute(&region.cast.intake.token, SUBMIT, json!({ "input": input })).await?;
        let appeal = &data["submitAppeal"]["appeal"];
        let id: AppealId = appeal["id"].as_str().context("no appeal id in the answer")?.parse()?;
        let version = appeal["version"].as_i64().context("no version in the answer")? as i32;
        self.shared.add_unread(UnreadAppeal { id, municipality, version });
        Ok(Sent::Answered)
    }

    async fn transition(&mut self) -> anyhow::Result<Sent> {
        let (appeal, query, variables) = match self.seen.take() {
            Some(appeal) => {
                let response = texts::response(&mut self.rng);
                (
                    appeal,
                    RESOLVE,
                    json!({ "id": appeal.id.to_string(), "version": appeal.version, "response": response }),
                )
            }
            None => {
                let Some(appeal) = self.unread.as_ref().and_then(take_unread) else { return Ok(Sent::Exhausted) };
                (appeal, MARK_SEEN, json!({ "id": appeal.id.to_string(), "version": appeal.version }))
            }
        };
        let head = &self.shared.region.cast.heads[appeal.municipality].token;
        self.client.execute(head, query, variables).await?;
        if query == MARK_SEEN {
            self.seen = Some(UnreadAppeal { version: appeal.version + 1, ..appeal });
        }
        Ok(Sent::Answered)
    }

    async fn read(&mut self, query: &str, variables: Value) -> anyhow::Result<Sent> {
        self.client.execute(&self.shared.region.cast.governor.token, query, variables).await?;
        Ok(Sent::Answered)
    }
}

impl Worker for ApiWorker {
    async fn request(&mut self) -> anyhow::Result<Sent> {
        self.sent += 1;
        let region = &self.shared.region;
        match self.scenario {
            Scenario::Intake => self.submit().await,
            Scenario::Transitions => self.transition().await,
            Scenario::ListFirst => self.read(LIST, json!({ "first": PAGE })).await,
            Scenario::ListDeep => {
                let after = region.middle.encode();
                self.read(LIST, json!({ "first": PAGE, "after": after })).await
            }
            Scenario::ListFiltered => {
                let filter = json!({ "municipalityCode": FOCUS_MUNICIPALITY, "status": "RECEIVED" });
                self.read(LIST, json!({ "first": PAGE, "filter": filter })).await
            }
            Scenario::ListSearch | Scenario::ListWords => {
                let drawn = self.shared.searches.draw(&mut self.rng);
                let mut filter = if self.scenario == Scenario::ListSearch {
                    json!({ "text": drawn.as_text() })
                } else {
                    json!({ "search": drawn.words })
                };
                if drawn.in_focus {
                    filter["municipalityCode"] = json!(FOCUS_MUNICIPALITY);
                }
                self.read(LIST, json!({ "first": PAGE, "filter": filter })).await
            }
            Scenario::ListBesideSearch if self.index == 0 => {
                self.read(LIST, json!({ "first": PAGE, "filter": { "text": SEARCH_TEXT } })).await?;
                Ok(Sent::Beside)
            }
            Scenario::ListBesideSearch => self.read(LIST, json!({ "first": PAGE })).await,
            Scenario::Appeal => {
                let id = texts::pick(&mut self.rng, &region.sample);
                self.read(APPEAL, json!({ "id": id.to_string() })).await
            }
            Scenario::DashboardRegion => self.read(DASHBOARD, json!({})).await,
            Scenario::DashboardMunicipality => self.read(DASHBOARD, json!({ "code": FOCUS_MUNICIPALITY })).await,
            Scenario::Subscriptions | Scenario::Mixed | Scenario::Lists => {
                anyhow::bail!("{} is driven by its own module", self.scenario.name())
            }
        }
    }
}
