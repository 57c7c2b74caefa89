//! The master's `run`: acquire every privileged resource (config, queues, rules, the shared
//! flow table), become a daemon, start the children, then supervise them until told to stop.
//!
//! Any error before the children start leaves the system as it was and exits non-zero with
//! a message that names what failed.

use crate::cli::{self, Command, Options};
use crate::config_file::ConfigSource;
use crate::control_server::ControlServer;
use crate::daemon::{self, PidFile, Readiness};
use crate::kernel_mode::{self, KernelForwarding};
use crate::master_error::{ChrootProblem, MasterError};
use crate::queues;
use crate::reload::Reloader;
use crate::rules::{FamilyRules, RealSource, RuleSet};
use crate::server_slots::ServerSlots;
use crate::spawn::{JailArgs, Role};
use crate::supervisor::{self, Exit, Settings, Supervisor};
use crate::syslog_sink;
use loaded_proto::balancing::IpNet;
use loaded_proto::config::{Checked, Config, ConfigWarning, Rules};
use loaded_proto::flow_table;
use loaded_proto::forwarding::Forward;
use loaded_proto::roles;
use loaded_proto::wire::Family;
use signal_hook_mio::v1_0::Signals;
use std::net::IpAddr;
use std::os::fd::AsFd;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

pub fn main() -> i32 {
    let command = match cli::parse(std::env::args_os().skip(1)) {
        Ok(command) => command,
        Err(e) => {
            eprintln!("loaded-master: {e}\n\n{}", cli::USAGE);
            return 2;
        }
    };
    let options = match command {
        Command::Help => {
            print!("{}", cli::USAGE);
            return 0;
        }
        Command::Version => {
            println!("loaded-master {}", env!("CARGO_PKG_VERSION"));
            return 0;
        }
        Command::Run(options) => options,
    };
    let loaded = ConfigSource::new(&options).and_then(|source| Ok((source.load()?, source)));
    let (Checked { config, warnings }, source) = match loaded {
        Ok(loaded) => loaded,
        Err(e) => {
            eprintln!("{e}");
            return 1;
        }
    };
    if options.test_config {
        // stderr, like the errors: stdout stays a listing that parses as a config file.
        for warning in &warnings {
            eprintln!("{warning}");
        }
        print!("{config}");
        println!("# configuration OK");
        return 0;
    }
    match run(options, config, &warnings, source) {
        Ok(code) => code,
        Err(e) => {
            log::error!("{e}");
            1
        }
    }
}

fn run(
    options: Options,
    config: Config,
    warnings: &[ConfigWarning],
    source: ConfigSource,
) -> Result<i32, MasterError> {
    let level = if options.foreground {
        log::LevelFilter::Debug
    } else {
        log::LevelFilter::Info
    };
    // stderr too until the daemon detaches (its stderr is /dev/null afterwards), so that a
    // setup error reaches whoever started us.
    syslog_sink::init(config.log_socket.clone(), true, level);
    // Once the log exists, so that a daemon's warnings reach syslog, not only a terminal.
    for warning in warnings {
        log::warn!("{warning}");
    }

    let mut signals = supervisor::handle_signals().map_err(MasterError::Signals)?;
    if !nix::unistd::geteuid().is_root() {
        return Err(MasterError::NotRoot);
    }
    let (uid, gid) = resolve_user(&config.user)?;
    prepare_chroot(&config.chroot)?;
    let (worker_binary, prober_binary) = child_binaries()?;
    let cores = config
        .worker_cores(&allowed_cpus()?)
        .map_err(MasterError::Cores)?;
    warn_if_not_forwarding(&config);

    // Privileged resources, in the order that is easiest to undo. The control socket
    // first: a second master refuses to start here (its socket answers), before it
    // touches the first one's queues. Only the master listens, and the listener is
    // close-on-exec, so no child ever holds it; it is removed when the master exits.
    let control = ControlServer::listen(&config.control_socket, &config.control_group)
        .map_err(MasterError::Control)?;
    let mut queue_sockets = Vec::new();
    for core in cores.clone() {
        queue_sockets.push((
            core,
            queues::open(core, config.nfq_len).map_err(MasterError::Queue)?,
        ));
    }
    let mut readiness = None;
    let result = run_installed(
        options,
        config,
        source,
        &mut signals,
        Acquired {
            queue_sockets,
            queues: cores,
            user: (uid, gid),
            worker_binary,
            prober_binary,
            control,
        },
        &mut readiness,
    );
    // The rules and the kernel-mode table are gone by now (their guards dropped with
    // `run_installed`): the start command hears of a failure once it is cleaned up.
    if let (Err(e), Some(readiness)) = (&result, readiness.as_mut()) {
        readiness.failed(&e.to_string());
    }
    result
}

/// What `run` checked and opened before anything changes the system.
struct Acquired {
    queue_sockets: Vec<(u16, nfq::Queue)>,
    queues: std::ops::RangeInclusive<u16>,
    /// The children's uid and gid.
    user: (u32, u32),
    worker_binary: PathBuf,
    prober_binary: PathBuf,
    control: ControlServer,
}

/// From the shared flow table on: every change to the system (the kernel-mode table, the
/// rules) is held by a guard that undoes it when dropped, whichever way this returns (or
/// unwinds); the master's exit paths rely on that.
fn run_installed(
    options: Options,
    config: Config,
    source: ConfigSource,
    signals: &mut Signals,
    acquired: Acquired,
    readiness: &mut Option<Readiness>,
) -> Result<i32, MasterError> {
    let Acquired {
        queue_sockets,
        queues,
        user: (uid, gid),
        worker_binary,
        prober_binary,
        control,
    } = acquired;
    let capacity = u64::from(config.max_flows);
    let flow_table =
        flow_table::create_region(capacity as usize).map_err(MasterError::FlowTable)?;
    // One block per worker number; a restarted worker goes on counting in its own.
    let counter_blocks = queue_sockets.len() as u32;
    let counters = loaded_proto::counters::create_region(counter_blocks as usize)
        .map_err(MasterError::Counters)?;
    // Slots in config order before any worker runs: kernel mode's marks name them, and
    // both modes then number the servers alike.
    let slots =
        ServerSlots::register_configured(flow_table.as_fd(), capacity as usize, &config.backends())
            .map_err(MasterError::Slots)?;
    // Declared before the rules' guard, so dropped after it: the queue rules go first.
    let (kernel, _kernel_table) = match config.forward {
        Forward::Kernel => {
            kernel_mode::warn_if_conntrack_small(config.max_flows);
            let kernel = KernelForwarding::new(slots, &config);
            // Before the queue rules: a decided packet must find its map.
            let table = kernel.install().map_err(MasterError::KernelTable)?;
            (Some(kernel), Some(table))
        }
        Forward::Userspace => {
            // A NAT table left by a killed kernel-mode run would confuse the rewrite.
            kernel_mode::remove_leftover_table();
            (None, None)
        }
    };
    let rule_set = rule_set(&config, *queues.start(), *queues.end());
    let _installed_rules = match config.rules {
        Rules::Auto => Some(rule_set.install().map_err(MasterError::Rules)?),
        Rules::Manual => None,
    };
    let readiness = readiness.insert(if options.foreground {
        Readiness::none()
    } else {
        let readiness = daemon::daemonize().map_err(MasterError::Daemonize)?;
        syslog_sink::reconnect();
        readiness
    });
    let slots =
        ServerSlots::register_configured(flow_table.as_fd(), capacity as usize, &config.backends())
            .map_err(MasterError::Slots)?;
    let rules = (config.rules == Rules::Auto && config.forward == Forward::Userspace)
        .then(|| rule_set.clone());
    let reloader = Reloader::new(source, slots, rules, &config);
    run_daemon(
        readiness,
        signals,
        &config,
        reloader,
        Settings {
            config: config.clone(),
            worker_binary,
            prober_binary,
            jail: JailArgs {
                uid,
                gid,
                chroot: config.chroot.clone(),
                debug: options.foreground,
            },
            queue_len: config.nfq_len,
            flow_table,
            flow_table_capacity: capacity,
            counters,
            counter_blocks,
        },
        kernel,
        (queue_sockets, control),
    )
}

fn run_daemon(
    readiness: &mut Readiness,
    signals: &mut Signals,
    config: &Config,
    reloader: Reloader,
    settings: Settings,
    kernel: Option<KernelForwarding>,
    (queue_sockets, control): (Vec<(u16, nfq::Queue)>, ControlServer),
) -> Result<i32, MasterError> {
    let _pidfile = PidFile::create(&config.pidfile).map_err(|source| MasterError::PidFile {
        path: config.pidfile.clone(),
        source,
    })?;
    let failover = config.failover;
    let mut supervisor =
        Supervisor::new(settings, kernel, reloader, control).map_err(MasterError::Poll)?;
    let mut started = Ok(());
    for (index, (core, socket)) in queue_sockets.into_iter().enumerate() {
        let role = Role::Worker {
            index: index as u32,
            core,
            queue: core,
        };
        if started.is_ok() {
            started = supervisor.start_worker(role, socket);
        }
    }
    if failover && started.is_ok() {
        started = supervisor.start_prober();
    }
    let exit = match started {
        Ok(()) => {
            log::info!(
                "balancing {} with strategy {} over {} server(s), forward={}",
                [config.vip4.map(IpAddr::from), config.vip6.map(IpAddr::from)]
                    .iter()
                    .flatten()
                    .map(|a| a.to_string())
                    .collect::<Vec<_>>()
                    .join(" and "),
                config.strategy,
                config.backends().len(),
                config.forward
            );
            let pending = StartSignals::of(signals);
            if pending.stop {
                log::info!("stopping: asked to while starting");
                Ok(Exit::Stopped)
            } else {
                readiness.ready();
                if pending.reload {
                    // The file may have changed since it was read at the start.
                    supervisor.reload();
                }
                supervisor.run(signals).map_err(MasterError::Poll)
            }
        }
        Err(e) => Err(MasterError::StartChildren(e)),
    };
    supervisor.stop_children();
    match exit {
        Ok(Exit::Stopped) => {
            log::info!("stopped");
            Ok(0)
        }
        Ok(Exit::GaveUp(gave_up)) => Err(MasterError::GaveUp(gave_up)),
        Err(e) => Err(e),
    }
}

/// What arrived during the start. SIGCHLD needs nothing here: the supervisor reaps
/// children when it starts.
struct StartSignals {
    /// SIGTERM or SIGINT.
    stop: bool,
    /// SIGHUP: reload once running.
    reload: bool,
}

impl StartSignals {
    fn of(signals: &mut Signals) -> StartSignals {
        let pending: Vec<i32> = signals.pending().collect();
        StartSignals {
            stop: pending
                .iter()
                .any(|&signal| signal == libc::SIGTERM || signal == libc::SIGINT),
            reload: pending.contains(&libc::SIGHUP),
        }
    }
}

fn rule_set(config: &Config, first_queue: u16, last_queue: u16) -> RuleSet {
    let mut families = Vec::new();
    let host = |addr: IpAddr| IpNet {
        addr,
        prefix_len: if addr.is_ipv4() { 32 } else { 128 },
    };
    // Reply rules are ours to install only in userspace mode with rules=auto; without
    // private_NIC each is tied to the interface of the route to its server.
    let look_up = config.rules == Rules::Auto
        && config.forward == Forward::Userspace
        && config.private_nic.is_none();
    let source = |net: IpNet| {
        if look_up {
            RealSource::toward(net)
        } else {
            RealSource::anywhere(net)
        }
    };
    if let Some(vip) = config.vip4 {
        let servers = config.servers4.iter().map(|s| host(s.addr));
        let sources = servers.chain(config.rip4).map(source).collect();
        families.push(FamilyRules {
            family: Family::V4,
            vip: vip.into(),
            real_sources: sources,
        });
    }
    if let Some(vip) = config.vip6 {
        let servers = config.servers6.iter().map(|s| host(s.addr));
        let sources = servers.chain(config.rip6).map(source).collect();
        families.push(FamilyRules {
            family: Family::V6,
            vip: vip.into(),
            real_sources: sources,
        });
    }
    RuleSet {
        families,
        first_queue,
        last_queue,
        forward: config.forward,
        private_nic: config.private_nic.clone(),
    }
}

fn resolve_user(name: &str) -> Result<(u32, u32), MasterError> {
    // `user=` and -U take a name or, as documented, a numeric uid.
    let found = match name.parse::<u32>() {
        Ok(uid) => nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid)),
        Err(_) => nix::unistd::User::from_name(name),
    };
    let name = name.to_string();
    let user = match found {
        Ok(Some(user)) => user,
        Ok(None) => return Err(MasterError::NoSuchUser { name }),
        Err(source) => return Err(MasterError::LookUpUser { name, source }),
    };
    if user.uid.is_root() {
        return Err(MasterError::UserIsRoot { name });
    }
    if user.gid.as_raw() == 0 {
        return Err(MasterError::UserInRootGroup { name });
    }
    Ok((user.uid.as_raw(), user.gid.as_raw()))
}

/// The children's empty root: created root-owned 0755 if missing, refused if anyone but
/// root could write into it (a writable chroot could be filled with a fake /dev or libc),
/// if it is `/` (no jail at all), or if it holds anything (whatever is there, a compromised
/// child could read or run).
fn prepare_chroot(path: &Path) -> Result<(), MasterError> {
    let refused = |problem| MasterError::Chroot {
        path: path.to_path_buf(),
        problem,
    };
    if !path.exists() {
        std::fs::create_dir_all(path)
            .and_then(|()| std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)))
            .map_err(|e| refused(ChrootProblem::Create(e)))?;
    }
    let meta = std::fs::metadata(path).map_err(|e| refused(ChrootProblem::Inspect(e)))?;
    if !meta.is_dir() || meta.uid() != 0 || meta.mode() & 0o022 != 0 {
        return Err(refused(ChrootProblem::Unsafe));
    }
    let real = std::fs::canonicalize(path).map_err(|e| refused(ChrootProblem::Inspect(e)))?;
    if real == Path::new("/") {
        return Err(refused(ChrootProblem::IsRoot));
    }
    let mut entries = std::fs::read_dir(&real).map_err(|e| refused(ChrootProblem::Inspect(e)))?;
    if let Some(entry) = entries.next() {
        let holds = entry.map_or_else(
            |e| e.to_string(),
            |entry| entry.path().display().to_string(),
        );
        return Err(refused(ChrootProblem::NotEmpty { holds }));
    }
    Ok(())
}

/// The children live next to the master, whatever the install prefix.
fn child_binaries() -> Result<(PathBuf, PathBuf), MasterError> {
    let me = std::env::current_exe().map_err(MasterError::OwnBinary)?;
    let dir = me.parent().unwrap_or(Path::new("/"));
    let worker = dir.join(roles::Role::Worker.entry().binary);
    let prober = dir.join(roles::Role::Prober.entry().binary);
    for binary in [&worker, &prober] {
        if !binary.exists() {
            return Err(MasterError::MissingChild {
                path: binary.clone(),
            });
        }
    }
    Ok((worker, prober))
}

/// The CPUs this process may run on (its affinity, e.g. a cpuset's): the workers are
/// pinned to some of them, so CPUs outside it cannot be used.
fn allowed_cpus() -> Result<Vec<u16>, MasterError> {
    let set = nix::sched::sched_getaffinity(nix::unistd::Pid::from_raw(0))
        .map_err(MasterError::ReadAffinity)?;
    let count = nix::sched::CpuSet::count().min(usize::from(u16::MAX));
    Ok((0..count)
        .filter(|&cpu| set.is_set(cpu).unwrap_or(false))
        .map(|cpu| cpu as u16)
        .collect())
}

fn warn_if_not_forwarding(config: &Config) {
    let checks = [
        (config.vip4.is_some(), "/proc/sys/net/ipv4/ip_forward"),
        (
            config.vip6.is_some(),
            "/proc/sys/net/ipv6/conf/all/forwarding",
        ),
    ];
    for (wanted, path) in checks {
        if wanted
            && std::fs::read_to_string(path)
                .map(|v| v.trim() == "0")
                .unwrap_or(false)
        {
            log::warn!("{path} is 0: rewritten packets will not be forwarded");
        }
    }
}
