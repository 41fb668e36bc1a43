//! `syncproto`: run a demo, serve a datastore from a file, relay another
//! server, dump a live server's stream, decode a captured one, or make
//! certificates for TLS.

mod certs;
mod decode;
mod demo;
mod dump;
mod failure;
mod memory;
mod observe;
mod options;
mod output;
mod relay;
mod serve;
mod signals;
mod state;
mod values;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::failure::Failure;

/// The exit codes, as `--help` and `-h` list them (the README too).
const EXIT_CODES: &str = "\
Exit codes:
  0    success (also when the reader of the output goes away, as `| head` does)
  1    network, protocol or TLS failure, or a file that could not be written
  2    bad command line
  3    unreadable or malformed input: datastore, capture, certificate or key file
  4    a check failed: the demo's verification, or dump's snapshot checksums
  130  dump stopped by Ctrl-C (143 by SIGTERM); serve and relay shut down with 0";

/// The Calico Felix⇄Typha sync protocol, from the command line.
#[derive(Debug, Parser)]
#[command(name = "syncproto", version, after_help = EXIT_CODES)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    #[command(flatten)]
    log: observe::LogArgs,
}

#[derive(Debug, Subcommand)]
enum Command {
    // Each command's help is its arguments' doc comment (a first line for
    // the command list and `-h`, the rest for `--help`).
    Demo(demo::Args),
    Serve(serve::Args),
    Relay(relay::Args),
    Dump(dump::Args),
    Decode(decode::Args),
    Certs(certs::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // A server's log is its record of every connection; the other
    // commands print what they are for and log only trouble.
    let default_level = match cli.command {
        Command::Serve(_) | Command::Relay(_) => "info",
        _ => "warn",
    };
    if let Err(failure) = cli.log.init(default_level) {
        return failure.report();
    }
    // Decoding a capture is synchronous work on one thread: a runtime's
    // worker threads would only add their start and stop to its time.
    let command = match cli.command {
        Command::Decode(args) => return exit_code(decode::run(args)),
        other => other,
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            return Failure::runtime(format!("cannot start the runtime: {error}")).report();
        }
    };
    let result = runtime.block_on(async {
        match command {
            Command::Demo(args) => demo::run(args).await,
            Command::Serve(args) => serve::run(args).await,
            Command::Relay(args) => relay::run(args).await,
            Command::Dump(args) => dump::run(args).await,
            Command::Decode(args) => decode::run(args),
            Command::Certs(args) => certs::run(args),
        }
    });
    // A read of standard input (`serve --snapshot -`) may still be blocked
    // in the runtime's blocking pool: do not wait for it.
    runtime.shutdown_background();
    exit_code(result)
}

/// The exit code for a command's result (reporting a failure).
fn exit_code(result: Result<(), Failure>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => failure.report(),
    }
}
