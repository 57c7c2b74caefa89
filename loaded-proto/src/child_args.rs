//! The command line the master gives a child: where its jail is and which queue it serves.
//! Only the master starts children, so this is trusted input, but it is still checked.

use std::path::PathBuf;

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

pub fn parse(args: impl IntoIterator<Item = std::ffi::OsString>) -> Result<ChildArgs, String> {
    use lexopt::prelude::*;
    let mut parsed = ChildArgs::default();
    let (mut uid, mut gid, mut chroot) = (None, None, None);
    let mut parser = lexopt::Parser::from_args(args);
    while let Some(arg) = parser.next().map_err(|e| e.to_string())? {
        match arg {
            Long("worker") => parsed.worker = Some(number(&mut parser)?),
            Long("core") => parsed.core = Some(number(&mut parser)?),
            Long("queue") => parsed.queue = Some(number(&mut parser)?),
            Long("uid") => uid = Some(number(&mut parser)?),
            Long("gid") => gid = Some(number(&mut parser)?),
            Long("chroot") => {
                chroot = Some(PathBuf::from(parser.value().map_err(|e| e.to_string())?))
            }
            Long("debug") => parsed.debug = true,
            _ => return Err(arg.unexpected().to_string()),
        }
    }
    parsed.uid = uid.ok_or("--uid is required")?;
    parsed.gid = gid.ok_or("--gid is required")?;
    parsed.chroot = chroot.ok_or("--chroot is required")?;
    Ok(parsed)
}

fn number<T>(parser: &mut lexopt::Parser) -> Result<T, String>
where
    T: std::str::FromStr,
    T::Err: std::fmt::Display,
{
    let value = parser.value().map_err(|e| e.to_string())?;
    let text = value.to_string_lossy();
    text.parse().map_err(|e| format!("'{text}': {e}"))
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
        assert!(parse(["--uid", "1"].iter().map(std::ffi::OsString::from))
            .unwrap_err()
            .contains("--gid"));
        assert!(parse(["--core", "x"].iter().map(std::ffi::OsString::from)).is_err());
    }
}
