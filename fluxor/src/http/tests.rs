use std::time::Duration;

use axum::http::{header, StatusCode};
use axum::response::IntoResponse;

use crate::error::BusError;

#[test]
fn every_bus_error_has_a_status_and_a_json_kind() {
    let topic = || "t".to_owned();
    // The last column: whether the response carries `Retry-After`. Of the 503s, `MailboxFull`
    // and `Closed` do and `NoHandlers` does not (see `impl IntoResponse for BusError`).
    let cases = [
        (
            BusError::NoHandlers { topic: topic() },
            StatusCode::SERVICE_UNAVAILABLE,
            "no_handlers",
            false,
        ),
        (
            BusError::Timeout {
                topic: topic(),
                after: Duration::from_secs(1),
            },
            StatusCode::GATEWAY_TIMEOUT,
            "timeout",
            false,
        ),
        (
            BusError::MailboxFull { topic: topic() },
            StatusCode::SERVICE_UNAVAILABLE,
            "mailbox_full",
            true,
        ),
        (
            BusError::RecipientFailed {
                topic: topic(),
                reason: "x".into(),
            },
            StatusCode::INTERNAL_SERVER_ERROR,
            "recipient_failed",
            false,
        ),
        (
            BusError::TypeMismatch {
                topic: topic(),
                expected: "A",
                found: "B",
            },
            StatusCode::INTERNAL_SERVER_ERROR,
            "type_mismatch",
            false,
        ),
        (
            BusError::InvalidTopic {
                topic: topic(),
                reason: "x".into(),
            },
            StatusCode::INTERNAL_SERVER_ERROR,
            "invalid_topic",
            false,
        ),
        (
            BusError::Closed,
            StatusCode::SERVICE_UNAVAILABLE,
            "closed",
            true,
        ),
    ];
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    for (error, status, kind, retry) in cases {
        let message = error.to_string();
        let response = error.into_response();
        assert_eq!(response.status(), status, "{kind}");
        assert_eq!(
            response.headers().contains_key(header::RETRY_AFTER),
            retry,
            "{kind}"
        );
        let body = rt
            .block_on(axum::body::to_bytes(response.into_body(), 1 << 16))
            .unwrap();
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(json["error"], kind);
        assert_eq!(json["message"], message.as_str());
    }
}
