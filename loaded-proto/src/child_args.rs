//! The command line the master gives a child: where its jail is and which queue it serves.
//! Only the master starts children, so this is trusted input, but it is still checked.

use std::fmt;
use std::num::ParseIntError;
use std::path::PathBuf;
use std::str::FromStr;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ChildArgs {
    pub worker: Option<u32>,
    pub core: Option<u16>,
    pub queue: Option<u16>,
    pub uid: u32,
    pub gid: u32,
    pub chroot: PathBuf,
    pub debug: bool,
}

/// Why a child's command line is refused.
#[derive(Debug)]
pub enum ChildArgsError {
    /// An unknown option, a missing value, a stray argument.
    Syntax(lexopt::Error),
    /// A numeric option whose value is not a number of its range.
    NotANumber {
        option: &'static str,
        text: String,
        error: ParseIntError,
    },
    /// A required option is absent.
    Missing(&'static str),
}

impl fmt::Display for ChildArgsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ChildArgsError::Syntax(e) => e.fmt(f),
            ChildArgsError::NotANumber {
                option,
                text,
                error,
            } => write!(f, "{option} '{text}': {error}"),
            ChildArgsError::Missing(option) => write!(f, "{option} is required"),
        }
    }
}

impl std::error::Error for ChildArgsError {}

impl From<lexopt::Error> for ChildArgsError {
    fn from(e: lexopt::Error) -> Self {
        ChildArgsError::Syntax(e)
    }
}

pub fn parse(
    args: impl IntoIterator<Item = std::ffi::OsString>,
) -> Result<ChildArgs, ChildArgsError> {
    use lexopt::prelude::*;
    let mut parsed = ChildArgs::default();
    let (mut uid, mut gid, mut chroot) = (None, None, None);
    let mut parser = lexopt::Parser::from_args(args);
    while let Some(arg) = parser.next()? {
        match arg {
            Long("worker") => parsed.worker = Some(number(&mut parser, "--worker")?),
            Long("core") => parsed.core = Some(number(&mut parser, "--core")?),
            Long("queue") => parsed.queue = Some(number(&mut parser, "--queue")?),
            Long("uid") => uid = Some(number(&mut parser, "--uid")?),
            Long("gid") => gid = Some(number(&mut parser, "--gid")?),
            Long("chroot") => chroot = Some(PathBuf::from(parser.value()?)),
            Long("debug") => parsed.debug = true,
            _ => return Err(arg.unexpected().into()),
        }
    }
    parsed.uid = uid.ok_or(ChildArgsError::Missing("--uid"))?;
    parsed.gid = gid.ok_or(ChildArgsError::Missing("--gid"))?;
    parsed.chroot = chroot.ok_or(ChildArgsError::Missing("--chroot"))?;
    Ok(parsed)
}

fn number<T>(parser: &mut lexopt::Parser, option: &'static str) -> Result<T, ChildArgsError>
where
    T: FromStr<Err = ParseIntError>,
{
    let value = parser.value()?;
    let text = value.to_string_lossy();
    text.parse().map_err(|error| ChildArgsError::NotANumber {
        option,
        text: text.into_owned(),
        error,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worker_arguments() {
        let args = [
            "--worker",
            "1",
            "--core",
            "3",
            "--queue",
            "3",
            "--uid",
            "65534",
            "--gid",
            "65534",
            "--chroot",
            "/var/run/empty",
        ];
        let parsed = parse(args.iter().map(std::ffi::OsString::from)).unwrap();
        assert_eq!(parsed.core, Some(3));
        assert_eq!(parsed.uid, 65534);
        assert_eq!(parsed.chroot, PathBuf::from("/var/run/empty"));
        assert!(!parsed.debug);
        assert!(matches!(
            parse(["--uid", "1"].iter().map(std::ffi::OsString::from)),
            Err(ChildArgsError::Missing("--gid"))
        ));
        assert!(matches!(
            parse(["--core", "x"].iter().map(std::ffi::OsString::from)),
            Err(ChildArgsError::NotANumber {
                option: "--core",
                ..
            })
        ));
        assert!(matches!(
            parse(["--bogus"].iter().map(std::ffi::OsString::from)),
            Err(ChildArgsError::Syntax(_))
        ));
    }
}
