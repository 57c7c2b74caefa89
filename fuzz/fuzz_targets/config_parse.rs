//! The config parser, both formats (a file starting with `#!` is read as one of the
//! original's shell scripts): any text gives a config or errors, and a config, printed as
//! `loaded-master -t` prints it, parses back to itself.

#![no_main]

use libfuzzer_sys::fuzz_target;
use loaded_proto::config::Config;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(checked) = Config::parse(&text, "fuzz.conf") {
        let config = checked.config;
        let printed = config.to_string();
        let again = Config::parse(&printed, "printed.conf")
            .map(|checked| checked.config)
            .unwrap_or_else(|e| panic!("the printed config does not parse: {e}\n{printed}"));
        assert_eq!(again, config, "printed:\n{printed}");
    }
});
