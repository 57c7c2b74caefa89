//! loadedctl: exit 0 on success, 1 with a message on stderr on any error.

use loadedctl::cli::{self, Command, USAGE};
use loadedctl::client;
use std::io::Write;
use std::process::ExitCode;

fn main() -> ExitCode {
    match cli::parse(std::env::args_os().skip(1)) {
        Ok(Command::Help) => {
            print!("{USAGE}");
            ExitCode::SUCCESS
        }
        Ok(Command::Version) => {
            println!("loadedctl {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        Ok(Command::Send { socket, request }) => match client::send(&socket, &request) {
            Ok(body) => {
                let mut stdout = std::io::stdout().lock();
                // A closed pipe (`loadedctl status | head`) is not our failure.
                let _ = stdout
                    .write_all(body.as_bytes())
                    .and_then(|()| stdout.flush());
                ExitCode::SUCCESS
            }
            Err(error) => {
                eprintln!("loadedctl: {error}");
                ExitCode::FAILURE
            }
        },
        Err(error) => {
            eprintln!("loadedctl: {error}\n\n{USAGE}");
            ExitCode::FAILURE
        }
    }
}
