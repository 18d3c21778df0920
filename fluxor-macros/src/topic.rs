//! Compile-time check of handler topics; the same rules the runtime applies to bindings.

/// Checks a handler topic or pattern: dot-separated non-empty tokens without whitespace;
/// `*` (one token) and `>` (the rest, last only) may stand as whole tokens.
pub(crate) fn check(topic: &str) -> Result<(), String> {
    if topic.is_empty() {
        return Err(
            "a handler topic cannot be empty; write tokens separated by dots, like \"orders.create\", or use `#[handler]` for direct messages"
                .into(),
        );
    }
    let tokens: Vec<&str> = topic.split('.').collect();
    for (i, token) in tokens.iter().enumerate() {
        if token.is_empty() {
            return Err(format!(
                "\"{topic}\" has an empty token; remove the leading, trailing or doubled `.`"
            ));
        }
        if token.chars().any(char::is_whitespace) {
            return Err(format!(
                "\"{topic}\" contains whitespace; topics are tokens separated by dots, like \"orders.create\""
            ));
        }
        let wild = *token == "*" || *token == ">";
        if !wild && (token.contains('*') || token.contains('>')) {
            return Err(format!(
                "\"{topic}\": `*` and `>` must stand alone as a whole token, like \"orders.*\""
            ));
        }
        if *token == ">" && i + 1 != tokens.len() {
            return Err(format!("\"{topic}\": `>` may only be the last token"));
        }
    }
    Ok(())
}
