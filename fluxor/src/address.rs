//! Topics, topic patterns and typed addresses.

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;

/// A topic on the event bus, checked to carry messages of type `M`.
///
/// The macros generate these as constants on a component (`Counter::ADD`), so that
/// `bus.request(Counter::ADD, Add(2))` infers the reply type and rejects a wrong message type at
/// compile time. Build one by hand with [`Address::new`].
///
/// ```
/// use fluxor::{Address, Message};
///
/// struct Ping;
/// impl Message for Ping { type Reply = (); }
///
/// const PING: Address<Ping> = Address::new("game.ping");
/// assert_eq!(PING.topic(), "game.ping");
/// ```
pub struct Address<M> {
    topic: Cow<'static, str>,
    _msg: PhantomData<fn(M)>,
}

impl<M> Address<M> {
    /// An address for a fixed topic.
    pub const fn new(topic: &'static str) -> Self {
        Address {
            topic: Cow::Borrowed(topic),
            _msg: PhantomData,
        }
    }

    /// An address for a topic built at run time.
    pub fn dynamic(topic: impl Into<String>) -> Self {
        Address {
            topic: Cow::Owned(topic.into()),
            _msg: PhantomData,
        }
    }

    /// The topic.
    pub fn topic(&self) -> &str {
        &self.topic
    }
}

impl<M> Clone for Address<M> {
    fn clone(&self) -> Self {
        Address {
            topic: self.topic.clone(),
            _msg: PhantomData,
        }
    }
}

impl<M> fmt::Debug for Address<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Address<{}>({:?})",
            std::any::type_name::<M>(),
            self.topic
        )
    }
}

impl<M> PartialEq for Address<M> {
    fn eq(&self, other: &Self) -> bool {
        self.topic == other.topic
    }
}

impl<M> Eq for Address<M> {}

/// A topic pattern for messages of type `M`: what a handler whose topic has a wildcard (`*`
/// or `>`) subscribes to.
///
/// The macros generate one instead of an [`Address`] for such a handler, named the same way
/// (`#[handler("orders.*")] fn any_order` ⇒ `Shop::ANY_ORDER: Pattern<OrderEvent>`). A pattern
/// names many topics, so it is not a [`Destination`]: `bus.send(Shop::ANY_ORDER, event)` does
/// not compile. Send to a concrete topic instead; [`Pattern::address`] gives a typed address
/// for one that the pattern matches.
///
/// ```
/// use fluxor::{Message, Pattern};
///
/// struct OrderEvent;
/// impl Message for OrderEvent { type Reply = (); }
///
/// const ANY_ORDER: Pattern<OrderEvent> = Pattern::new("orders.*");
/// assert!(ANY_ORDER.matches("orders.create"));
/// assert!(!ANY_ORDER.matches("orders.create.fast"));
/// let create = ANY_ORDER.address("orders.create").unwrap();
/// assert_eq!(create.topic(), "orders.create");
/// assert!(ANY_ORDER.address("orders.*").is_none());
/// ```
///
/// ```compile_fail
/// # use fluxor::{EventBus, Message, Pattern};
/// # struct OrderEvent;
/// # impl Message for OrderEvent { type Reply = (); }
/// const ANY_ORDER: Pattern<OrderEvent> = Pattern::new("orders.*");
/// # fn demo(bus: EventBus) {
/// let _ = bus.send(ANY_ORDER, OrderEvent); // a pattern is not a destination
/// # }
/// ```
pub struct Pattern<M> {
    pattern: &'static str,
    _msg: PhantomData<fn(M)>,
}

impl<M> Pattern<M> {
    /// A pattern, as in a handler topic: `orders.*`, `orders.>`. It is not checked here:
    /// [`validate_pattern`] checks one, and an invalid pattern matches nothing.
    pub const fn new(pattern: &'static str) -> Self {
        Pattern {
            pattern,
            _msg: PhantomData,
        }
    }

    /// The pattern.
    pub fn pattern(&self) -> &'static str {
        self.pattern
    }

    /// Whether the pattern matches `topic`: `*` stands for exactly one token, `>` for one or
    /// more trailing tokens. A `topic` that is not a concrete topic (it has a wildcard, or
    /// breaks the topic rules) matches nothing, and neither does an invalid pattern.
    pub fn matches(&self, topic: &str) -> bool {
        validate_pattern(self.pattern).is_ok()
            && validate_topic(topic).is_ok()
            && matches(self.pattern, topic)
    }

    /// A typed address for `topic`, if the pattern [matches](Self::matches) it: the way to
    /// send to a handler bound to this pattern.
    pub fn address(&self, topic: impl Into<String>) -> Option<Address<M>> {
        let topic = topic.into();
        self.matches(&topic).then(|| Address::dynamic(topic))
    }
}

impl<M> Clone for Pattern<M> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<M> Copy for Pattern<M> {}

impl<M> fmt::Debug for Pattern<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Pattern<{}>({:?})",
            std::any::type_name::<M>(),
            self.pattern
        )
    }
}

impl<M> PartialEq for Pattern<M> {
    fn eq(&self, other: &Self) -> bool {
        self.pattern == other.pattern
    }
}

impl<M> Eq for Pattern<M> {}

/// Something that names a concrete topic for messages of type `M`: an [`Address<M>`]
/// (checked), or a plain `&str` / `String` for dynamic use (checked at run time, see
/// [`BusError::TypeMismatch`](crate::BusError::TypeMismatch)). A [`Pattern<M>`] is not one: it
/// names many topics.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a destination: messages go to an `Address` or a concrete topic",
    label = "not an address or a concrete topic",
    note = "a `Pattern` (the constant of a handler whose topic has `*` or `>`) names many topics, so nothing can be sent to it",
    note = "send to a concrete topic instead: a topic string, or `pattern.address(\"orders.create\")`, a typed address for a topic that the pattern matches"
)]
pub trait Destination<M> {
    /// The topic.
    fn topic(&self) -> &str;
}

impl<M> Destination<M> for Address<M> {
    fn topic(&self) -> &str {
        &self.topic
    }
}

impl<M> Destination<M> for &Address<M> {
    fn topic(&self) -> &str {
        &self.topic
    }
}

impl<M> Destination<M> for &str {
    fn topic(&self) -> &str {
        self
    }
}

impl<M> Destination<M> for String {
    fn topic(&self) -> &str {
        self
    }
}

impl<M> Destination<M> for &String {
    fn topic(&self) -> &str {
        self
    }
}

/// The topic rules, shared with the macros so that a handler topic accepted at compile time
/// is accepted at run time too. See `fluxor-macros/src/topic_rules.rs`.
#[allow(unreachable_pub)]
mod rules {
    fluxor_macros::__topic_rules!();
}

pub use rules::TopicErrorKind;
pub(crate) use rules::{is_pattern, matches};

/// A topic or topic pattern that breaks the topic rules: which rule, and the topic.
///
/// ```
/// use fluxor::{validate_pattern, TopicErrorKind};
///
/// let err = validate_pattern("orders.>.fast").unwrap_err();
/// assert_eq!(err.kind(), TopicErrorKind::GreedyNotLast);
/// assert_eq!(err.topic(), "orders.>.fast");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid topic `{topic}`: {kind}")]
#[non_exhaustive]
pub struct TopicError {
    kind: TopicErrorKind,
    topic: String,
}

impl TopicError {
    fn new(kind: TopicErrorKind, topic: &str) -> Self {
        TopicError {
            kind,
            topic: topic.to_owned(),
        }
    }

    /// Which rule the topic breaks.
    pub fn kind(&self) -> TopicErrorKind {
        self.kind
    }

    /// The topic or pattern as given.
    pub fn topic(&self) -> &str {
        &self.topic
    }
}

/// Checks a topic that messages are sent to: dot-separated, non-empty tokens, no whitespace,
/// no wildcards.
pub(crate) fn validate_topic(topic: &str) -> Result<(), TopicError> {
    rules::check(topic, false).map_err(|kind| TopicError::new(kind, topic))
}

/// Checks a topic pattern that a consumer subscribes to: like a topic, plus `*` (exactly one
/// token) and `>` (one or more trailing tokens, last position only), as in NATS.
pub fn validate_pattern(pattern: &str) -> Result<(), TopicError> {
    rules::check(pattern, true).map_err(|kind| TopicError::new(kind, pattern))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validates_topics_and_patterns() {
        assert!(validate_topic("orders.create").is_ok());
        assert!(validate_topic("x").is_ok());
        for bad in ["", ".a", "a.", "a..b", "a b", "a.*", "a.>", "a*b"] {
            assert!(validate_topic(bad).is_err(), "{bad:?} should be rejected");
        }
        for good in ["a.*", "a.>", "*.b", ">", "*.*"] {
            assert!(
                validate_pattern(good).is_ok(),
                "{good:?} should be accepted"
            );
        }
        for bad in ["a.>.b", "a.b*", "", "a..*"] {
            assert!(validate_pattern(bad).is_err(), "{bad:?} should be rejected");
        }
        let kinds = [
            ("", TopicErrorKind::Empty),
            ("a..b", TopicErrorKind::EmptyToken),
            ("a b", TopicErrorKind::Whitespace),
            ("a.b*", TopicErrorKind::PartialWildcard),
            ("a.>.b", TopicErrorKind::GreedyNotLast),
        ];
        for (bad, kind) in kinds {
            let err = validate_pattern(bad).unwrap_err();
            assert_eq!((err.kind(), err.topic()), (kind, bad));
        }
        assert_eq!(
            validate_topic("a.*").unwrap_err().kind(),
            TopicErrorKind::Wildcard
        );
    }

    #[test]
    fn matches_like_nats() {
        assert!(matches("orders.*", "orders.create"));
        assert!(!matches("orders.*", "orders.create.fast"));
        assert!(!matches("orders.*", "orders"));
        assert!(matches("orders.>", "orders.create.fast"));
        assert!(!matches("orders.>", "orders"));
        assert!(matches(">", "a.b.c"));
        assert!(matches("*.create", "orders.create"));
        assert!(!matches("*.create", "orders.delete"));
        assert!(matches("a.b", "a.b"));
        assert!(!matches("a.b", "a.b.c"));
        assert!(is_pattern("a.*") && is_pattern("a.>") && !is_pattern("a.b"));
    }

    /// Property tests of the topic rules against reference versions written here, over a
    /// small alphabet so that patterns match often.
    mod props {
        use super::super::*;
        use proptest::prelude::*;

        /// Whether `pattern` matches `topic`, token by token: `*` takes one token, a final
        /// `>` takes one or more.
        fn reference_matches(pattern: &[&str], topic: &[&str]) -> bool {
            match (pattern, topic) {
                ([], []) => true,
                ([">"], [_, ..]) => true,
                (["*", p @ ..], [_, t @ ..]) => reference_matches(p, t),
                ([lit, p @ ..], [tok, t @ ..]) => lit == tok && reference_matches(p, t),
                _ => false,
            }
        }

        /// Whether `s` is a valid topic, or with `wildcards` a valid pattern.
        fn reference_valid(s: &str, wildcards: bool) -> bool {
            let tokens: Vec<&str> = s.split('.').collect();
            let last = tokens.len() - 1;
            !s.is_empty()
                && tokens.iter().enumerate().all(|(i, t)| match *t {
                    "" => false,
                    "*" => wildcards,
                    ">" => wildcards && i == last,
                    t => !t.contains(['*', '>']) && !t.contains(char::is_whitespace),
                })
        }

        fn topic() -> impl Strategy<Value = Vec<&'static str>> {
            prop::collection::vec(prop::sample::select(vec!["a", "b"]), 1..5)
        }

        /// Literal and `*` tokens, then perhaps a `>`: always a valid pattern, though not
        /// always one with a wildcard.
        fn pattern() -> impl Strategy<Value = Vec<&'static str>> {
            (
                prop::collection::vec(prop::sample::select(vec!["a", "b", "*"]), 0..5),
                any::<bool>(),
            )
                .prop_map(|(mut tokens, greedy)| {
                    if greedy || tokens.is_empty() {
                        tokens.push(">");
                    }
                    tokens
                })
        }

        fn config() -> ProptestConfig {
            ProptestConfig {
                cases: 256,
                failure_persistence: None,
                ..ProptestConfig::default()
            }
        }

        proptest! {
            #![proptest_config(config())]

            #[test]
            fn matching_agrees_with_the_reference(p in pattern(), t in topic()) {
                let (pattern, topic) = (p.join("."), t.join("."));
                let expected = reference_matches(&p, &t);
                prop_assert_eq!(matches(&pattern, &topic), expected);
                // The public `Pattern` agrees too. `new` takes a `&'static str`: leak the few
                // bytes of each case.
                let public = Pattern::<()>::new(Box::leak(pattern.clone().into_boxed_str()));
                prop_assert_eq!(public.matches(&topic), expected);
                prop_assert_eq!(public.address(topic.clone()).is_some(), expected);
            }

            #[test]
            fn a_pattern_made_from_a_topic_matches_it(
                t in topic(),
                wild in prop::collection::vec(any::<bool>(), 4),
                greedy_from in 0usize..5,
            ) {
                let mut p: Vec<&str> = t
                    .iter()
                    .zip(&wild)
                    .map(|(&tok, &w)| if w { "*" } else { tok })
                    .collect();
                if greedy_from < p.len() {
                    p.truncate(greedy_from);
                    p.push(">");
                }
                let (pattern, topic) = (p.join("."), t.join("."));
                prop_assert!(validate_pattern(&pattern).is_ok());
                prop_assert!(matches(&pattern, &topic), "{} should match {}", pattern, topic);
            }

            #[test]
            fn generated_patterns_are_valid_and_only_concrete_ones_are_topics(
                p in pattern(),
                t in topic(),
            ) {
                let pattern = p.join(".");
                let wild = p.iter().any(|&tok| tok == "*" || tok == ">");
                prop_assert!(validate_pattern(&pattern).is_ok());
                prop_assert_eq!(is_pattern(&pattern), wild);
                prop_assert_eq!(validate_topic(&pattern).is_ok(), !wild);
                let topic = t.join(".");
                prop_assert!(validate_topic(&topic).is_ok() && !is_pattern(&topic));
                // A concrete topic is a pattern that matches only itself.
                prop_assert!(matches(&topic, &topic));
            }

            #[test]
            fn validation_agrees_with_the_reference(s in "[ab.*> ]{0,8}") {
                prop_assert_eq!(validate_topic(&s).is_ok(), reference_valid(&s, false));
                prop_assert_eq!(validate_pattern(&s).is_ok(), reference_valid(&s, true));
            }
        }
    }
}
