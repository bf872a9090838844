//! The Vigil agent ↔ fleet wire contract.
//!
//! This crate owns the protobuf messages and the tonic service of `proto/fleet.proto`, plus the
//! conversions between wire events and [`vigil_ocsf::Event`]. It holds no behaviour: the agent
//! and the server decide what to do with the messages.
#![deny(missing_docs)]

/// Generated protobuf types and gRPC stubs for `vigil.fleet.v1`.
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod fleet {
    tonic::include_proto!("vigil.fleet.v1");
}

pub use fleet::{
    AgentMessage, Capability, EventBatch, HostFacts, ServerMessage, agent_message, server_message,
};

/// Largest gRPC message either side accepts.
pub const MAX_MESSAGE_BYTES: usize = 8 * 1024 * 1024;

/// Largest piece of a command result (a triage package, a live query's rows) sent in one
/// message; larger results go in parts (`CommandResult.part`/`parts`).
pub const RESULT_PART_BYTES: usize = 1024 * 1024;

/// Most parts of one command result the server accepts (so at most 64 MiB).
pub const MAX_RESULT_PARTS: u32 = 64;

/// Largest priority batch (findings and results) the agent sends, in payload bytes; one item
/// larger than this still goes, alone.
pub const PRIORITY_BATCH_BYTES: usize = 2 * 1024 * 1024;

impl From<&vigil_ocsf::Event> for fleet::Event {
    fn from(ev: &vigil_ocsf::Event) -> Self {
        Self {
            uid: ev.uid.clone(),
            class_uid: ev.class_uid,
            time: ev.time,
            ocsf_json: ev.to_json(),
        }
    }
}

impl TryFrom<&fleet::Event> for vigil_ocsf::Event {
    type Error = vigil_ocsf::EventError;

    /// Decodes the OCSF document; the envelope is re-derived from it, so a sender cannot make
    /// the indexed copies disagree with the document.
    fn try_from(ev: &fleet::Event) -> Result<Self, Self::Error> {
        vigil_ocsf::Event::from_json(&ev.ocsf_json)
    }
}
