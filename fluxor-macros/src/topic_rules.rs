// The rules for topics and topic patterns, in one place for both crates: `fluxor-macros`
// checks handler topics with them at compile time, and `fluxor` checks topics and patterns
// with them at run time and matches topics against patterns.
//
// This file is a module of `fluxor-macros`. `fluxor` gets the same items through the hidden
// `fluxor_macros::__topic_rules!()`, which expands to this file's text. A `#[path]` from
// `fluxor` to this file would build in the workspace but not once `fluxor` is packaged on its
// own (`cargo package` takes only the files under the package's directory), and a third crate
// for a few functions would be one more thing to publish. Because the text is also expanded
// inside a module of `fluxor`, it uses outer `///` docs and no inner attributes, and names
// nothing outside the standard prelude.

/// What is wrong with a topic or a topic pattern.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TopicErrorKind {
    /// The topic is empty.
    Empty,
    /// A token between dots is empty: a leading, trailing or doubled `.`.
    EmptyToken,
    /// The topic contains whitespace.
    Whitespace,
    /// `*` or `>` is part of a token instead of standing alone as a whole token.
    PartialWildcard,
    /// `>` stands before the last token.
    GreedyNotLast,
    /// A wildcard in a topic that messages are sent to; only patterns may have one.
    Wildcard,
}

impl TopicErrorKind {
    /// The broken rule, and what to write instead.
    pub fn advice(self) -> &'static str {
        match self {
            TopicErrorKind::Empty => {
                "a topic cannot be empty; write tokens separated by dots, like `orders.create`"
            }
            TopicErrorKind::EmptyToken => {
                "a token is empty; remove the leading, trailing or doubled `.`"
            }
            TopicErrorKind::Whitespace => {
                "a topic cannot contain whitespace; write tokens separated by dots, like `orders.create`"
            }
            TopicErrorKind::PartialWildcard => {
                "`*` and `>` must stand alone as a whole token, like `orders.*`"
            }
            TopicErrorKind::GreedyNotLast => {
                "`>` may only be the last token, like `orders.>`"
            }
            TopicErrorKind::Wildcard => {
                "messages go to concrete topics; only subscriptions may use `*` and `>`"
            }
        }
    }
}

impl ::core::fmt::Display for TopicErrorKind {
    fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
        f.write_str(self.advice())
    }
}

/// Checks a topic (`wildcards == false`) or a topic pattern (`wildcards == true`):
/// dot-separated non-empty tokens without whitespace; in a pattern, `*` (exactly one token)
/// and `>` (one or more trailing tokens, last position only) may stand as whole tokens, as
/// in NATS.
pub fn check(topic: &str, wildcards: bool) -> ::core::result::Result<(), TopicErrorKind> {
    if topic.is_empty() {
        return Err(TopicErrorKind::Empty);
    }
    let count = topic.split('.').count();
    for (i, token) in topic.split('.').enumerate() {
        if token.is_empty() {
            return Err(TopicErrorKind::EmptyToken);
        }
        if token.chars().any(char::is_whitespace) {
            return Err(TopicErrorKind::Whitespace);
        }
        let wild = token == "*" || token == ">";
        if !wild && (token.contains('*') || token.contains('>')) {
            return Err(TopicErrorKind::PartialWildcard);
        }
        if wild && !wildcards {
            return Err(TopicErrorKind::Wildcard);
        }
        if token == ">" && i + 1 != count {
            return Err(TopicErrorKind::GreedyNotLast);
        }
    }
    Ok(())
}

/// Whether `pattern` contains a wildcard token.
pub fn is_pattern(pattern: &str) -> bool {
    pattern.split('.').any(|t| t == "*" || t == ">")
}

/// Whether the valid `pattern` matches the concrete `topic`.
pub fn matches(pattern: &str, topic: &str) -> bool {
    let mut topic_tokens = topic.split('.');
    for p in pattern.split('.') {
        match p {
            ">" => return topic_tokens.next().is_some(),
            "*" => {
                if topic_tokens.next().is_none() {
                    return false;
                }
            }
            literal => {
                if topic_tokens.next() != Some(literal) {
                    return false;
                }
            }
        }
    }
    topic_tokens.next().is_none()
}
