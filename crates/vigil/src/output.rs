//! Logging set-up and error printing.

/// Logs go to stderr through `tracing`; `RUST_LOG` overrides the default level.
pub fn init_logging() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,aya=warn,sqlx=warn,h2=warn,tower=warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
}

/// One line for an error and its causes, skipping a cause whose text the previous message
/// already includes (some errors embed their source, others only chain it).
pub fn error_line(error: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in error.chain() {
        let text = cause.to_string();
        if line.contains(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line
}

#[cfg(test)]
mod tests {
    use super::error_line;

    #[derive(Debug, thiserror::Error)]
    #[error("outer: {0}")]
    struct Embeds(#[source] std::io::Error);

    #[test]
    fn causes_already_in_the_message_are_not_repeated() {
        let e = anyhow::Error::new(Embeds(std::io::Error::other("disk on fire")));
        assert_eq!(error_line(&e), "outer: disk on fire");
        let e = anyhow::Error::new(std::io::Error::other("inner")).context("while starting");
        assert_eq!(error_line(&e), "while starting: inner");
    }
}
