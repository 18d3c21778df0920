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

    /// The timeout set, if any.
    pub(crate) fn timeout_set(&self) -> Option<Duration> {
        self.timeout
    }

    /// Puts the headers and request id into `meta` (a header set here wins over one the
    /// runtime put there, such as a trace context).
    pub(crate) fn apply(self, meta: &mut Meta) {
        meta.headers.extend(self.headers);
        if let Some(id) = self.request_id {
            meta.request_id = id;
        }
    }

    /// Replaces all headers.
    pub fn headers(mut self, headers: Headers) -> Self {
        self.headers = headers;
        self
    }
}
