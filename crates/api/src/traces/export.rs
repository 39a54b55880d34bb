//! The OTLP exporter's HTTP client: the workspace's reqwest (rustls), so that
//! traces need no second HTTP stack. The SDK's batch processor exports from a
//! thread of its own, outside the runtime, and reqwest needs the runtime: each
//! export is sent on the runtime and awaited from that thread.

use std::time::Duration;

use async_trait::async_trait;
use opentelemetry_http::{Bytes, HttpClient, HttpError, Request, Response};
use tokio::runtime::Handle;

/// The most of a collector's answer that is read; it is only looked at for
/// partial successes.
const MAX_ANSWER_BYTES: usize = 64 * 1024;

#[derive(Debug, Clone)]
pub struct ExportClient {
    client: reqwest::Client,
    runtime: Handle,
}

impl ExportClient {
    /// A client whose calls time out after `timeout`. Must be made on the runtime.
    pub fn new(timeout: Duration) -> anyhow::Result<ExportClient> {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("appeals/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(ExportClient { client, runtime: Handle::try_current()? })
    }
}

#[async_trait]
impl HttpClient for ExportClient {
    async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        let request = reqwest::Request::try_from(request)?;
        let client = self.client.clone();
        let sending = self.runtime.spawn(async move {
            let mut response = client.execute(request).await?;
            let mut answer = Response::builder().status(response.status());
            if let Some(headers) = answer.headers_mut() {
                *headers = std::mem::take(response.headers_mut());
            }
            let mut body = Vec::new();
            while let Some(chunk) = response.chunk().await? {
                let room = MAX_ANSWER_BYTES.saturating_sub(body.len());
                body.extend_from_slice(&chunk[..chunk.len().min(room)]);
            }
            Ok::<_, HttpError>(answer.body(Bytes::from(body))?)
        });
        sending.await?
    }
}
