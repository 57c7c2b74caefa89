//! loadedctl: the operator's client of loaded-master's control socket. The command line
//! (`cli`) becomes one request line of `loaded_proto::control`; the client (`client`)
//! sends it and prints the reply's body.

pub mod cli;
pub mod client;
