//! `make bench`: see `palisade_tests::bench`.

use std::process::ExitCode;

fn main() -> ExitCode {
    let run = palisade_tests::bench::Options::parse(std::env::args().skip(1))
        .and_then(|options| palisade_tests::bench::run(&options));
    match run {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}
