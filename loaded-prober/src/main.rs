//! loaded-prober: started by loaded-master with -f; see `prober::run`.

mod health;
mod prober;
mod sandbox;
mod serve_error;

fn main() {
    std::process::exit(prober::run());
}
