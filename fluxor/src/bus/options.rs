//! [`RequestOptions`]: a request's timeout, headers and request id.

use std::time::Duration;

use uuid::Uuid;

use crate::message::{Headers, Meta};

/// Per-request options: timeout and headers.
///
/// ```
/// use std::time::Duration;
/// use fluxor::RequestOptions;
///
/// let opts = RequestOptions::new()
///     .timeout(Duration::from_millis(250))
///     .header("tenant", "acme");
/// # let _ = opts;
/// ```
#[derive(Debug, Clone, Default)]
pub struct RequestOptions {
    timeout: Option<Duration>,
    headers: Headers,
    request_id: Option<Uuid>,
}

impl RequestOptions {
    /// The defaults: the runtime's request timeout, no headers.
    pub fn new() -> Self {
        Self::default()
    }

    /// Waits at most `timeout` for the reply.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Adds a header to the envelope.
    pub fn header(
        mut self,
        key: impl Into<std::borrow::Cow<'static, str>>,
        value: impl Into<String>,
    ) -> Self {
        self.headers.insert(key, value);
        self
    }

    /// Makes the request part of an existing chain (e.g. an incoming HTTP request's id)
    /// instead of starting a new one: handlers see it as [`Context::request_id`](crate::Context::request_id).
    pub fn request_id(mut self, id: Uuid) -> Self {
        self.request_id = Some(id);
        self
    }

    /// The timeout set, if any, and the request's metadata: what `make` makes, with these
    /// headers and request id put in (a header set here wins over one the runtime put there,
    /// such as a trace context). The metadata is made when the request is sent.
    pub(crate) fn into_parts<'a>(
        self,
        make: impl FnOnce() -> Meta + 'a,
    ) -> (Option<Duration>, impl FnOnce() -> Meta + 'a) {
        let RequestOptions {
            timeout,
            headers,
            request_id,
        } = self;
        let meta = move || {
            let mut meta = make();
            meta.headers.extend(headers);
            if let Some(id) = request_id {
                meta.request_id = id;
            }
            meta
        };
        (timeout, meta)
    }

    /// Replaces all headers.
    pub fn headers(mut self, headers: Headers) -> Self {
        self.headers = headers;
        self
    }
}
