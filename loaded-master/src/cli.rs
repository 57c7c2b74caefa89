//! The command line, compatible with the original loaded's flags.

use std::ffi::OsString;
use std::fmt;
use std::path::PathBuf;

pub const USAGE: &str = "\
usage: loaded-master [-4|-6] [-c FILE] [-f] [-D] [-Q QLEN] [-U USER] [-t]

  -4, --ipv4          balance only the IPv4 VIP
  -6, --ipv6          balance only the IPv6 VIP
                      (default: every family the config has a VIP for)
  -c, --config FILE   config file (default: ./loaded.conf, then /etc/loaded/loaded.conf)
  -f, --failover      start the health-checking prober (as the config's `failover`)
  -D, --foreground    debug: stay in the foreground, log to stderr as well as syslog
  -Q, --queue-len N   kernel queue length per worker (overrides nfq_len)
  -U, --user USER     user the children run as (default: the config's user, or nobody)
  -t, --test          check the config, print the settings in effect and exit
  -h, --help          this text
  -V, --version       the version
";

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Options {
    pub ipv4_only: bool,
    pub ipv6_only: bool,
    pub config: Option<PathBuf>,
    pub failover: bool,
    pub foreground: bool,
    pub queue_len: Option<u32>,
    pub user: Option<String>,
    pub test_config: bool,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Command {
    Run(Options),
    Help,
    Version,
}

/// A command line that does not parse.
#[derive(Debug)]
pub enum CliError {
    /// An unknown flag, a missing value, a stray argument: lexopt's words.
    Syntax(lexopt::Error),
    BadQueueLength {
        text: String,
    },
    BothFamiliesOnly,
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CliError::Syntax(e) => e.fmt(f),
            CliError::BadQueueLength { text } => {
                write!(f, "-Q: '{text}' is not a queue length (1 to 4294967295)")
            }
            CliError::BothFamiliesOnly => {
                f.write_str("-4 and -6 exclude each other (without either, both families run)")
            }
        }
    }
}

impl std::error::Error for CliError {}

impl From<lexopt::Error> for CliError {
    fn from(e: lexopt::Error) -> Self {
        CliError::Syntax(e)
    }
}

pub fn parse(args: impl IntoIterator<Item = OsString>) -> Result<Command, CliError> {
    use lexopt::prelude::*;
    let mut options = Options::default();
    let mut parser = lexopt::Parser::from_args(args);
    while let Some(arg) = parser.next()? {
        match arg {
            Short('4') | Long("ipv4") => options.ipv4_only = true,
            Short('6') | Long("ipv6") => options.ipv6_only = true,
            Short('c') | Long("config") => options.config = Some(parser.value()?.into()),
            Short('f') | Long("failover") => options.failover = true,
            Short('D') | Long("foreground") | Long("debug") => options.foreground = true,
            Short('Q') | Long("queue-len") => {
                let value = parser.value()?;
                let text = value.to_string_lossy();
                let len = text.parse::<u32>().ok().filter(|n| *n > 0).ok_or_else(|| {
                    CliError::BadQueueLength {
                        text: text.to_string(),
                    }
                })?;
                options.queue_len = Some(len);
            }
            Short('U') | Long("user") => {
                let value = parser.value()?;
                options.user = Some(value.to_string_lossy().into_owned());
            }
            Short('t') | Long("test") => options.test_config = true,
            Short('h') | Long("help") => return Ok(Command::Help),
            Short('V') | Long("version") => return Ok(Command::Version),
            _ => return Err(arg.unexpected().into()),
        }
    }
    if options.ipv4_only && options.ipv6_only {
        return Err(CliError::BothFamiliesOnly);
    }
    Ok(Command::Run(options))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(args: &[&str]) -> Result<Command, CliError> {
        parse(args.iter().map(OsString::from))
    }

    #[test]
    fn the_original_init_script_line_parses() {
        let Command::Run(options) = run(&["-U", "nobody", "-f"]).unwrap() else {
            panic!("not a run")
        };
        assert_eq!(options.user.as_deref(), Some("nobody"));
        assert!(options.failover);
        assert!(!options.foreground);
    }

    #[test]
    fn short_long_and_attached_forms() {
        let Command::Run(options) = run(&[
            "-6",
            "-cmy.conf",
            "--queue-len=100",
            "-fD",
            "--user",
            "daemon",
        ])
        .unwrap() else {
            panic!("not a run")
        };
        assert!(options.ipv6_only && options.failover && options.foreground);
        assert_eq!(options.config, Some(PathBuf::from("my.conf")));
        assert_eq!(options.queue_len, Some(100));
        assert_eq!(options.user.as_deref(), Some("daemon"));
        assert_eq!(run(&["--help"]).unwrap(), Command::Help);
        assert_eq!(run(&["-V"]).unwrap(), Command::Version);
    }

    #[test]
    fn bad_arguments_are_refused_with_a_reason() {
        let lots = run(&["-Q", "lots"]).unwrap_err();
        assert!(
            matches!(&lots, CliError::BadQueueLength { text } if text == "lots"),
            "{lots:?}"
        );
        assert!(lots.to_string().contains("not a queue length"), "{lots}");
        assert!(matches!(
            run(&["-Q", "0"]),
            Err(CliError::BadQueueLength { .. })
        ));
        assert!(matches!(
            run(&["-4", "-6"]),
            Err(CliError::BothFamiliesOnly)
        ));
        for bad in [&["-x"][..], &["-c"], &["stray"]] {
            assert!(matches!(run(bad), Err(CliError::Syntax(_))), "{bad:?}");
        }
    }
}
