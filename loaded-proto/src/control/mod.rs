//! The control socket's protocol: what `loadedctl` (or `socat`) asks the master, and how
//! the master answers.
//!
//! One connection carries one request: a line of at most [`MAX_REQUEST_LEN`] bytes
//! ([`Request`]: `status`, `status json`, `metrics`, `drain ADDR`, `undrain ADDR`,
//! `weight ADDR N`). The master answers with a [`Reply`]: a first line `ok` or
//! `error: MESSAGE`, then the body, and closes.
//!
//! # How the master serves it (`loaded-master/src/control_server.rs`, `status.rs`)
//!
//! - At start, as root, before any child exists: [`listen`] with the path of
//!   `control_socket=` (default [`DEFAULT_SOCKET_PATH`]) and the gid of `control_group=`
//!   (default root). It creates the directory (0755), removes a socket left by a dead
//!   master (refusing a live one, or anything that is not a socket), binds, sets the mode
//!   0660 and the group, and returns a non-blocking, close-on-exec listener: no child
//!   inherits it.
//! - Register the listener with the master's mio poll (by its raw fd). On readable, accept
//!   until WouldBlock, wrapping each stream in a [`ControlConnection`] (at most a few at
//!   a time; refuse more by dropping them) registered for reading. Each readiness event
//!   calls `on_readable` or `on_writable`; [`Progress`] says what to wait for next, or
//!   that the connection is finished. Once a second, drop connections past their
//!   [`CONNECTION_DEADLINE`]. A connection holds at most MAX_REQUEST_LEN + 1 bytes of
//!   request, and nothing blocks, so a misbehaving client costs the master little and the
//!   datapath (other processes) nothing.
//! - `on_readable`'s answer closure: `status` → [`Status::to_text`], `status json` →
//!   [`Status::to_json`], `metrics` → [`Status::to_prometheus`]; `drain`/`undrain`/`weight`
//!   → change the server and log it to syslog, or [`ControlError::NoSuchServer`]. A
//!   request that does not parse is answered `error: ...` without calling it.
//! - The [`Status`] comes from the config (VIPs, servers, strategy, stickiness, weights),
//!   the prober's reports (up/down, since, reason, last round), the master's drain set,
//!   the flow table's live count per directory slot (active mappings), and the sum of the
//!   shared counters' blocks (`crate::counters::SharedCounters::sum`).

mod connection;
mod listen;
mod prometheus;
mod reply;
mod request;
mod status;
mod text;
mod utc;

pub use connection::{ControlConnection, Progress, CONNECTION_DEADLINE};
pub use listen::{listen, ListenError, DIRECTORY_MODE, SOCKET_MODE};
pub use reply::{ControlError, MalformedReply, Reply};
pub use request::{Request, RequestError, RequestReader, MAX_REQUEST_LEN, WEIGHT_MAX, WEIGHT_MIN};
pub use status::{
    DropCount, ProberStatus, ServerState, ServerStatus, Status, VipStatus, WorkerStatus,
};
pub use utc::format_utc;

/// Where the master listens unless `control_socket=` says otherwise, and where `loadedctl`
/// connects unless `-s` says otherwise.
pub const DEFAULT_SOCKET_PATH: &str = "/run/loaded/control.sock";
