//! Where the config comes from, and reading it with the command line applied on top, at
//! start and again at every reload.

use crate::cli::Options;
use loaded_proto::config::{Checked, ConfigErrors, FamilyError};
use std::fmt;
use std::path::{Path, PathBuf};

const DEFAULT_CONFIG_PATHS: [&str; 2] = ["loaded.conf", "/etc/loaded/loaded.conf"];

/// The file and the command-line settings that override it (-4/-6, -f, -Q, -U).
#[derive(Clone, Debug)]
pub struct ConfigSource {
    /// As given (errors at start name it so); `absolute` is what a reload reads, since the
    /// daemon's working directory is / by then.
    path: PathBuf,
    absolute: PathBuf,
    ipv4_only: bool,
    ipv6_only: bool,
    failover: bool,
    queue_len: Option<u32>,
    user: Option<String>,
}

#[derive(Debug)]
pub enum LoadError {
    /// No -c and none of the default files exists.
    NoFile,
    /// The file's working directory could not be resolved.
    Resolve {
        path: PathBuf,
        source: std::io::Error,
    },
    /// Unreadable or invalid: every problem, each with file and line.
    Invalid(ConfigErrors),
    /// -4/-6 asked for a family the file has no VIP for.
    Family { path: PathBuf, error: FamilyError },
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LoadError::NoFile => write!(
                f,
                "loaded-master: no config file: give one with -c, or create {}",
                DEFAULT_CONFIG_PATHS.join(" or ")
            ),
            LoadError::Resolve { path, source } => {
                write!(f, "loaded-master: {}: {source}", path.display())
            }
            LoadError::Invalid(errors) => write!(f, "{errors}"),
            LoadError::Family { path, error } => {
                write!(f, "loaded-master: {}: {error}", path.display())
            }
        }
    }
}

impl std::error::Error for LoadError {}

impl ConfigSource {
    /// The file `options` name (or the first default that exists), resolved now.
    pub fn new(options: &Options) -> Result<ConfigSource, LoadError> {
        let path = match &options.config {
            Some(path) => path.clone(),
            None => DEFAULT_CONFIG_PATHS
                .iter()
                .map(PathBuf::from)
                .find(|p| p.exists())
                .ok_or(LoadError::NoFile)?,
        };
        let absolute = std::path::absolute(&path).map_err(|source| LoadError::Resolve {
            path: path.clone(),
            source,
        })?;
        Ok(ConfigSource {
            path,
            absolute,
            ipv4_only: options.ipv4_only,
            ipv6_only: options.ipv6_only,
            failover: options.failover,
            queue_len: options.queue_len,
            user: options.user.clone(),
        })
    }

    /// Reads the file as named at start (before the daemon changes directory).
    pub fn load(&self) -> Result<Checked, LoadError> {
        self.load_from(&self.path)
    }

    /// Reads the file again for a reload.
    pub fn reload(&self) -> Result<Checked, LoadError> {
        self.load_from(&self.absolute)
    }

    fn load_from(&self, path: &Path) -> Result<Checked, LoadError> {
        let Checked {
            mut config,
            warnings,
        } = loaded_proto::config::Config::load(path).map_err(LoadError::Invalid)?;
        if self.ipv4_only || self.ipv6_only {
            config
                .restrict_family(self.ipv4_only, self.ipv6_only)
                .map_err(|error| LoadError::Family {
                    path: path.to_path_buf(),
                    error,
                })?;
        }
        if self.failover {
            config.failover = true;
        }
        if let Some(len) = self.queue_len {
            config.nfq_len = len;
        }
        if let Some(user) = &self.user {
            config.user = user.clone();
        }
        Ok(Checked { config, warnings })
    }
}
