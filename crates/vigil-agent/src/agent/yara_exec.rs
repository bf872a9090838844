//! The agent's YARA wiring: loading the rules at start and the scanner of executed files,
//! with stand-ins of no value when the `yara` feature is off.

use std::path::PathBuf;
use std::sync::Arc;

use tokio::sync::Notify;
#[cfg(not(feature = "yara"))]
use vigil_ocsf::Event;
use vigil_proto::fleet::Capability;

use super::AgentError;
use crate::buffer::Buffer;
#[cfg(feature = "yara")]
pub(super) use crate::yara::ExecScanner;

/// Compiled YARA rules (never built without the `yara` feature).
#[cfg(feature = "yara")]
pub(super) type YaraRules = vigil_detect::yara::YaraRules;

/// Without the `yara` feature there are no rules and no scanner: these types have no value.
#[cfg(not(feature = "yara"))]
pub(super) enum YaraRules {}

#[cfg(not(feature = "yara"))]
pub(super) enum ExecScanner {}

#[cfg(not(feature = "yara"))]
impl ExecScanner {
    pub(super) fn observe(&self, _event: &Event) {
        match *self {}
    }

    pub(super) fn stop(&self) {
        match *self {}
    }
}

/// Compiles the YARA rules under `paths` (none when no path is named).
#[cfg(feature = "yara")]
pub(super) async fn load_yara_rules(
    paths: &[PathBuf],
) -> Result<Option<Arc<YaraRules>>, AgentError> {
    if paths.is_empty() {
        return Ok(None);
    }
    let paths = paths.to_vec();
    let rules = tokio::task::spawn_blocking(move || YaraRules::load(&paths))
        .await
        .map_err(|e| AgentError::Yara(e.to_string()))?
        .map_err(|e| AgentError::Yara(e.to_string()))?;
    let summary = rules.summary();
    for warning in &summary.warnings {
        tracing::warn!(%warning, "YARA compiler warning");
    }
    tracing::info!(
        rules = summary.rules,
        files = summary.files.len(),
        "YARA rules compiled"
    );
    Ok(Some(Arc::new(rules)))
}

#[cfg(not(feature = "yara"))]
pub(super) async fn load_yara_rules(
    paths: &[PathBuf],
) -> Result<Option<Arc<YaraRules>>, AgentError> {
    if paths.is_empty() {
        Ok(None)
    } else {
        Err(AgentError::Yara(
            "this agent was built without YARA support (cargo feature `yara`)".into(),
        ))
    }
}

/// Starts scanning executed files; its findings go to the buffer's priority lane.
#[cfg(feature = "yara")]
pub(super) fn start_exec_scanner(
    rules: Arc<YaraRules>,
    paths: &[PathBuf],
    buffer: &Arc<Buffer>,
    wake: &Arc<Notify>,
) -> Result<(Arc<ExecScanner>, Capability), AgentError> {
    let runtime = tokio::runtime::Handle::current();
    let (buffer, wake) = (Arc::clone(buffer), Arc::clone(wake));
    let sink: crate::yara::FindingSink = Arc::new(move |finding| {
        let wire = vigil_proto::fleet::Event {
            uid: finding.finding_info.uid.clone(),
            class_uid: finding.class_uid,
            time: finding.time,
            ocsf_json: serde_json::to_vec(&finding).unwrap_or_default(),
        };
        let (buffer, wake) = (Arc::clone(&buffer), Arc::clone(&wake));
        runtime.spawn(async move {
            if let Err(error) = buffer.push_finding(&wire).await {
                tracing::error!(%error, "Cannot queue a YARA finding");
            }
            wake.notify_one();
        });
    });
    let dirs: Vec<_> = paths.iter().map(|p| p.display().to_string()).collect();
    let capability = Capability {
        name: "yara".into(),
        source: "agent".into(),
        live: true,
        detail: format!(
            "{} rules from {}; every executed file is scanned",
            rules.len(),
            dirs.join(", ")
        ),
    };
    let scanner = ExecScanner::start(rules, crate::yara::ExecScanConfig::default(), sink)
        .map_err(|e| AgentError::Yara(format!("cannot start the scanning thread: {e}")))?;
    Ok((Arc::new(scanner), capability))
}

#[cfg(not(feature = "yara"))]
pub(super) fn start_exec_scanner(
    rules: Arc<YaraRules>,
    _paths: &[PathBuf],
    _buffer: &Arc<Buffer>,
    _wake: &Arc<Notify>,
) -> Result<(Arc<ExecScanner>, Capability), AgentError> {
    match *rules {}
}
