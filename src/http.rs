//! The two HTTP endpoints: Prometheus metrics (`metrics.rs`) and the AdminServer
//! (`admin.rs`). Each runs on a plain thread of its own, outside the executors: requests are
//! rare (a scrape every few seconds, a health check), and what they report comes from the
//! shared counters and from the cores' answers over their channels, as the four-letter words
//! get it. Requests on one endpoint are answered one at a time.

use std::net::SocketAddr;
use std::sync::Arc;

use crate::shared::Shared;

/// What a handler answers.
pub struct Answer {
    pub status: u16,
    pub content_type: Option<&'static str>,
    pub body: Vec<u8>,
    /// Headers besides Content-Type.
    pub headers: Vec<(&'static str, String)>,
}

impl Answer {
    pub fn new(status: u16, content_type: Option<&'static str>, body: String) -> Answer {
        Answer {
            status,
            content_type,
            body: body.into_bytes(),
            headers: Vec::new(),
        }
    }
}

/// What a handler sees of a request.
pub struct Asked<'r> {
    pub method: &'r tiny_http::Method,
    pub url: &'r str,
    /// The `Authorization` header, if any.
    pub authorization: Option<String>,
    pub remote: Option<SocketAddr>,
}

/// Binds `addr` and answers its requests with `handler` on a thread named `name`.
pub fn serve<H>(
    name: &str,
    addr: SocketAddr,
    shared: Arc<Shared>,
    handler: H,
) -> std::io::Result<()>
where
    H: Fn(&Shared, &Asked) -> Answer + Send + 'static,
{
    let server = tiny_http::Server::http(addr).map_err(std::io::Error::other)?;
    std::thread::Builder::new()
        .name(name.to_string())
        .spawn(move || {
            for request in server.incoming_requests() {
                let authorization = request
                    .headers()
                    .iter()
                    .find(|h| h.field.equiv("Authorization"))
                    .map(|h| h.value.as_str().to_string());
                let asked = Asked {
                    method: request.method(),
                    url: request.url(),
                    authorization,
                    remote: request.remote_addr().copied(),
                };
                let answer = handler(&shared, &asked);
                let mut response =
                    tiny_http::Response::from_data(answer.body).with_status_code(answer.status);
                if let Some(ct) = answer.content_type {
                    let header =
                        tiny_http::Header::from_bytes("Content-Type", ct).expect("a valid header");
                    response = response.with_header(header);
                }
                for (name, value) in &answer.headers {
                    if let Ok(h) = tiny_http::Header::from_bytes(name.as_bytes(), value.as_bytes())
                    {
                        response = response.with_header(h);
                    }
                }
                // A client that went away gets nothing; the next request is answered.
                let _ = request.respond(response);
            }
        })?;
    Ok(())
}
