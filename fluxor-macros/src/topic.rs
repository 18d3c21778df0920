//! Compile-time check of handler topics, with the rules the runtime applies to bindings.

use crate::topic_rules::{self, TopicErrorKind};

/// Checks a handler topic or pattern; the error says what to write instead.
pub(crate) fn check(topic: &str) -> Result<(), String> {
    match topic_rules::check(topic, true) {
        Ok(()) => Ok(()),
        Err(TopicErrorKind::Empty) => Err(format!(
            "{}, or use `#[handler]` without a topic for direct messages",
            TopicErrorKind::Empty.advice()
        )),
        Err(kind) => Err(format!("\"{topic}\": {}", kind.advice())),
    }
}
