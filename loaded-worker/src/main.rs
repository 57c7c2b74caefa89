//! loaded-worker: started by loaded-master, one per core; see `worker::run`.

fn main() {
    std::process::exit(loaded_worker::worker::run());
}
