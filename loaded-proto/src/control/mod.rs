//! The control socket's protocol: what `loadedctl` (or `socat`) asks the master, and how
//! the master answers.
//!
//! One connection carries one request: a line of at most [`MAX_REQUEST_LEN`] bytes
//! ([`Request`]: `status`, `status json`, `metrics`, `drain ADDR`, `undrain ADDR`,
//! `weight ADDR N`). The master answers with a [`Reply`]: a first line `ok` or
//! `error: MESSAGE`, then the body, and closes.
//!
//! # How the master serves it (to be wired in)
//!
//! - At start, as root, before any child exists: create the directory of `control_socket=`
//!   (default [`DEFAULT_SOCKET_PATH`]) root-owned 0755, remove a stale socket, bind a
//!   non-blocking `UnixListener`, chmod the socket 0660 and chown it to `control_group=`.
//!   The listener is close-on-exec (std's default), so no child inherits it.
//! - Register the listener with the master's mio poll. On each accepted stream: non-blocking,
//!   a [`RequestReader`] per connection, fed from each read until it returns the request or
//!   an error (at most MAX_REQUEST_LEN + 1 bytes are held); EOF before a newline is
//!   `RequestReader::finish`. A connection that has not sent its line within a second or
//!   two is closed, and the master accepts a bounded number of connections at a time, so a
//!   misbehaving client costs the master little and the datapath (other processes) nothing.
//! - Answer: `status` → [`Status::to_text`], `status json` → [`Status::to_json`], `metrics`
//!   → [`Status::to_prometheus`]; `drain`/`undrain`/`weight` → change the server (logged to
//!   syslog), or [`ControlError::NoSuchServer`]. Write `Reply::encode()` (it may need
//!   several writable events for a long status), then close.
//! - The [`Status`] comes from the config (VIPs, servers, strategy, stickiness, weights),
//!   the prober's reports (up/down, since, reason, last round), the master's drain set,
//!   the flow table's live count per directory slot (active mappings), and the sum of the
//!   shared counters' blocks (`crate::counters::SharedCounters::sum`).

mod prometheus;
mod reply;
mod request;
mod status;
mod text;
mod utc;

pub use reply::{ControlError, MalformedReply, Reply};
pub use request::{Request, RequestError, RequestReader, MAX_REQUEST_LEN, WEIGHT_MAX, WEIGHT_MIN};
pub use status::{
    DropCount, ProberStatus, ServerState, ServerStatus, Status, VipStatus, WorkerStatus,
};
pub use utc::format_utc;

/// Where the master listens unless `control_socket=` says otherwise, and where `loadedctl`
/// connects unless `-s` says otherwise.
pub const DEFAULT_SOCKET_PATH: &str = "/run/loaded/control.sock";
