//! `rightsizer generate`: synthetic history and objects from `synth`, for the demo snapshot,
//! the tests and the benchmarks.

use crate::Error;
use crate::cli::GenerateWhat;

pub fn run(what: GenerateWhat) -> Result<(), Error> {
    let _ = what;
    Err(Error::Config("generate: not wired yet".into()))
}
