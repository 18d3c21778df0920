//! Routes that call the bus: the [`Bus`] extractor, [`bus_request`], and how bus errors
//! become HTTP responses.

use std::future::Future;
use std::time::Duration;

use axum::extract::rejection::JsonRejection;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{post, MethodRouter};
use axum::Json;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::address::Destination;
use crate::bus::{EventBus, RequestOptions};
use crate::error::{BusError, PublishError, SendError};
use crate::message::Message;
use crate::util::Either;

use super::{REQUEST_ID, X_REQUEST_ID};

pub(super) fn error_response(status: StatusCode, kind: &str, message: &str) -> Response {
    (
        status,
        Json(serde_json::json!({ "error": kind, "message": message })),
    )
        .into_response()
}

/// `503 Service Unavailable` for a server at its limit, kind `overloaded`, with a
/// `Retry-After` of `after_secs`.
pub(super) fn overloaded(message: &str, after_secs: &'static str) -> Response {
    let mut r = error_response(StatusCode::SERVICE_UNAVAILABLE, "overloaded", message);
    r.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static(after_secs));
    r
}

/// A bus error as an HTTP response, with a JSON body `{"error": kind, "message": text}`:
///
/// | error | status | `Retry-After` |
/// | --- | --- | --- |
/// | `MailboxFull` | 503 | `1` |
/// | `Closed` | 503 | `1` |
/// | `NoHandlers` | 503 | none |
/// | `Timeout` | 504 | none |
/// | `RecipientFailed`, `TypeMismatch`, `InvalidTopic` | 500 | none |
///
/// `Retry-After` tells the client that the same request may succeed shortly. Full mailboxes
/// drain; `Closed` (the recipient stopped, or the runtime is shutting down) is a restart or a
/// rolling deploy, after which a retry reaches the new instance or another server. A topic with
/// no handler is a missing deployment, not a load peak: a retry a second later would most
/// likely fail the same way, so that 503 carries no `Retry-After`.
impl IntoResponse for BusError {
    fn into_response(self) -> Response {
        let (status, kind) = match &self {
            BusError::NoHandlers { .. } => (StatusCode::SERVICE_UNAVAILABLE, "no_handlers"),
            BusError::Timeout { .. } => (StatusCode::GATEWAY_TIMEOUT, "timeout"),
            BusError::MailboxFull { .. } => (StatusCode::SERVICE_UNAVAILABLE, "mailbox_full"),
            BusError::RecipientFailed { .. } => {
                (StatusCode::INTERNAL_SERVER_ERROR, "recipient_failed")
            }
            BusError::TypeMismatch { .. } => (StatusCode::INTERNAL_SERVER_ERROR, "type_mismatch"),
            BusError::InvalidTopic { .. } => (StatusCode::INTERNAL_SERVER_ERROR, "invalid_topic"),
            BusError::Closed => (StatusCode::SERVICE_UNAVAILABLE, "closed"),
            BusError::AskCycle { .. } => (StatusCode::INTERNAL_SERVER_ERROR, "ask_cycle"),
            BusError::Undecodable { .. } => (StatusCode::BAD_GATEWAY, "undecodable"),
            BusError::Unreachable { .. } => (StatusCode::SERVICE_UNAVAILABLE, "unreachable"),
        };
        let mut r = error_response(status, kind, &self.to_string());
        if matches!(
            self,
            BusError::MailboxFull { .. } | BusError::Closed | BusError::Unreachable { .. }
        ) {
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        r
    }
}

/// The bus, as an axum extractor, carrying the request's `X-Request-ID` into what it sends.
#[derive(Debug, Clone)]
pub struct Bus {
    bus: EventBus,
    /// The request's header value (a shared buffer: kept without a copy).
    request_id: Option<HeaderValue>,
}

impl<S: Send + Sync> FromRequestParts<S> for Bus {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let bus = parts.extensions.get::<EventBus>().cloned().ok_or_else(|| {
            error_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                "no_bus",
                "this route is not served by fluxor::http::HttpServer",
            )
        })?;
        Ok(Bus {
            bus,
            request_id: parts.headers.get(&X_REQUEST_ID).cloned(),
        })
    }
}

impl Bus {
    /// The request's `X-Request-ID`.
    pub fn request_id(&self) -> Option<&str> {
        self.request_id.as_ref().and_then(|v| v.to_str().ok())
    }

    /// The plain bus.
    pub fn inner(&self) -> &EventBus {
        &self.bus
    }

    fn options(&self) -> RequestOptions {
        let mut options = RequestOptions::new();
        if let Some(id) = self.request_id() {
            options = options.header(REQUEST_ID, id);
            if let Ok(uuid) = uuid::Uuid::parse_str(id) {
                options = options.request_id(uuid);
            }
        }
        options
    }

    /// [`EventBus::request`], with the request id.
    ///
    /// # Errors
    /// As [`EventBus::request`].
    pub fn request<M: Message, D: Destination<M>>(
        &self,
        to: D,
        msg: M,
    ) -> impl Future<Output = Result<M::Reply, BusError>> + use<'_, M, D> {
        self.bus.request_with(to, msg, self.options())
    }

    /// [`EventBus::request_with`] with a timeout, and the request id.
    ///
    /// # Errors
    /// As [`EventBus::request`].
    pub fn request_timeout<M: Message, D: Destination<M>>(
        &self,
        to: D,
        msg: M,
        timeout: Duration,
    ) -> impl Future<Output = Result<M::Reply, BusError>> + use<'_, M, D> {
        self.bus
            .request_with(to, msg, self.options().timeout(timeout))
    }

    /// [`EventBus::send`].
    ///
    /// # Errors
    /// As [`EventBus::send`].
    pub fn send<M: Message, D: Destination<M>>(&self, to: D, msg: M) -> Result<(), SendError<M>> {
        self.bus.send(to, msg)
    }

    /// [`EventBus::publish`].
    ///
    /// # Errors
    /// As [`EventBus::publish`].
    pub fn publish<M: Message + Clone, D: Destination<M>>(
        &self,
        to: D,
        msg: M,
    ) -> Result<usize, PublishError> {
        self.bus.publish(to, msg)
    }
}

/// A `POST` route that decodes the JSON body into `M`, requests `topic` on the bus, and answers
/// the reply as JSON (`200`), or the bus error as its status. A body that is not valid JSON for
/// `M` answers 400 (syntax) or 422 (shape), with a JSON error body.
pub fn bus_request<M>(topic: &'static str) -> MethodRouter
where
    M: Message + DeserializeOwned,
    M::Reply: Serialize,
{
    post(move |bus: Bus, body: Result<Json<M>, JsonRejection>| {
        // The body is looked at before the future is made, so the future that waits for the
        // reply holds the message, not the body it came in.
        let msg = match body {
            Ok(Json(msg)) => msg,
            Err(rejection) => {
                let response =
                    error_response(rejection.status(), "bad_request", &rejection.body_text());
                return Either::Left {
                    future: std::future::ready(response),
                };
            }
        };
        Either::Right {
            future: async move {
                match bus.request(topic, msg).await {
                    Ok(reply) => Json(reply).into_response(),
                    Err(e) => e.into_response(),
                }
            },
        }
    })
}
