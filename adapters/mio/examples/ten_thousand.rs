//! 10 000 concurrent client connections on loopback to one mio `Server`:
//! every client reaches InSync with the cache's state, then a live change
//! reaches them all; prints the time to InSync, peak RSS and descriptor
//! limits.
//!
//! ```sh
//! cargo run --release -p syncproto-mio --example ten_thousand [CLIENTS [KEYS]]
//! ```
//!
//! Both ends of every connection in one process need two descriptors per
//! connection. The example raises the open-file limit as far as it may;
//! when the hard limit cannot be raised enough (that needs
//! CAP_SYS_RESOURCE), the clients run in a child process (this example,
//! relaunched) and the server's process still holds every connection.

// The scale run itself is shared with the integration tests.
#[path = "../tests/support/mod.rs"]
mod support;

use std::process::Command;
use std::time::Duration;

use support::{Error, Placement, ScaleParams, scale_child_main, scale_run};

fn main() -> Result<(), Error> {
    if let Some(result) = scale_child_main() {
        return result;
    }
    let mut args = std::env::args().skip(1);
    let clients = args.next().map_or(Ok(10_000), |arg| arg.parse())?;
    let keys = args.next().map_or(Ok(100), |arg| arg.parse())?;
    let relaunch = || -> Command {
        // current_exe cannot fail on Linux for a running program; if it
        // did, the child fails to start and the run reports it.
        Command::new(std::env::current_exe().unwrap_or_default())
    };
    let report = scale_run(
        &ScaleParams {
            clients,
            keys,
            window: 1000,
            mix_flavours: true,
            limit: Duration::from_secs(300),
            placement: Placement::Auto,
        },
        &relaunch,
    )?;
    println!("{report}");
    Ok(())
}
