//! The Vigil server roles: fleet (agent sessions), ingest and store, the bus, detection workers
//! and the operator API.
//!
//! This crate owns everything that runs on the server side. It talks to the store and the bus
//! only through the [`store::Store`] and [`bus::Bus`] traits, so the embedded default (SQLite,
//! in-process) and the scale-out deployment run the same code. It never depends on the agent.

pub mod api;
pub mod auth;
mod background;
pub mod bus;
pub mod detect;
pub mod fleet;
pub mod hunt;
pub mod ingest;
pub mod live;
pub mod pki;
pub mod response;
pub mod risk;
mod roles;
mod server;
pub mod store;
pub mod switches;
#[doc(hidden)]
pub mod testing;

pub use roles::{Role, Roles};
pub use server::{FirstAdminConfig, Server, ServerConfig, ServerError};
