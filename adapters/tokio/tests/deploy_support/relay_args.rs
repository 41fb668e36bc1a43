//! The Deployment's arguments to `syncproto relay`, checked against the
//! flags the real binary's `relay --help` lists.

use std::collections::BTreeMap;
use std::process::Command;

use yaml_rust2::Yaml;

use super::manifest::{list, string};

/// One flag of `syncproto relay --help`: whether it takes a value, and
/// the values it accepts when the help lists them.
#[derive(Debug)]
struct Flag {
    takes_value: bool,
    possible: Vec<String>,
}

/// The flags the real binary's `relay --help` lists.
fn relay_flags() -> BTreeMap<String, Flag> {
    let output = Command::new(env!("CARGO_BIN_EXE_syncproto"))
        .args(["relay", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8(output.stdout).unwrap();
    assert!(
        output.status.success(),
        "syncproto relay --help failed: {}{help}",
        String::from_utf8_lossy(&output.stderr)
    );
    let mut flags = BTreeMap::new();
    let mut current: Option<(String, Flag)> = None;
    // Inside a flag's `Possible values:` list (`- value: what it means`).
    let mut in_list = false;
    for line in help.lines() {
        let trimmed = line.trim_start();
        // `      --flag <VALUE>` or `  -h, --help`; descriptions and their
        // `- value:` lists are indented further and start otherwise.
        let flag_line = trimmed.starts_with("--")
            || (trimmed.starts_with('-')
                && trimmed
                    .get(2..)
                    .is_some_and(|rest| rest.starts_with(", --")));
        if flag_line {
            if let Some((name, flag)) = current.take() {
                flags.insert(name, flag);
            }
            let start = trimmed.find("--").unwrap();
            let mut words = trimmed[start..].split_whitespace();
            let name = words.next().unwrap().to_owned();
            let takes_value = words.next().is_some_and(|word| word.starts_with('<'));
            current = Some((
                name,
                Flag {
                    takes_value,
                    possible: Vec::new(),
                },
            ));
            in_list = false;
        } else if let Some((_, flag)) = current.as_mut() {
            if trimmed == "Possible values:" {
                in_list = true;
            } else if trimmed.is_empty() {
                in_list = false;
            } else if let Some(inline) = trimmed
                .strip_prefix("[possible values: ")
                .and_then(|rest| rest.strip_suffix(']'))
            {
                flag.possible.extend(inline.split(", ").map(str::to_owned));
            } else if let Some((value, _)) = trimmed
                .strip_prefix("- ")
                .and_then(|rest| rest.split_once(':'))
                .filter(|_| in_list)
            {
                flag.possible.push(value.to_owned());
            }
        }
    }
    if let Some((name, flag)) = current {
        flags.insert(name, flag);
    }
    assert!(
        flags.contains_key("--upstream") && flags.contains_key("--health-listen"),
        "relay --help lists no relay flags:\n{help}"
    );
    flags
}

/// The container's arguments as flag → value (None for a switch), checked
/// against the real binary's parser as its help describes it.
pub fn relay_args(container: &Yaml) -> BTreeMap<String, Option<String>> {
    let args: Vec<&str> = list(&container["args"], "the container's args")
        .iter()
        .map(|arg| string(arg, "a container argument"))
        .collect();
    assert_eq!(
        args.first(),
        Some(&"relay"),
        "the container runs `syncproto relay`"
    );
    let flags = relay_flags();
    let mut parsed = BTreeMap::new();
    let mut rest = args[1..].iter();
    while let Some(arg) = rest.next() {
        let (name, inline) = match arg.split_once('=') {
            Some((name, value)) => (name, Some(value.to_owned())),
            None => (*arg, None),
        };
        let flag = flags.get(name).unwrap_or_else(|| {
            panic!(
                "the Deployment passes {name}, which `syncproto relay --help` does not list: {:?}",
                flags.keys().collect::<Vec<_>>()
            )
        });
        let value = match (flag.takes_value, inline) {
            (true, Some(value)) => Some(value),
            (true, None) => Some(
                rest.next()
                    .unwrap_or_else(|| panic!("{name} needs a value"))
                    .to_string(),
            ),
            (false, None) => None,
            (false, Some(value)) => panic!("{name} takes no value, the Deployment gives {value:?}"),
        };
        if let Some(value) = &value {
            assert!(!value.is_empty(), "{name} is given an empty value");
            assert!(
                flag.possible.is_empty() || flag.possible.contains(value),
                "{name}={value}: relay --help accepts only {:?}",
                flag.possible
            );
        }
        assert!(
            parsed.insert(name.to_owned(), value).is_none(),
            "{name} is given twice"
        );
    }
    parsed
}

pub fn arg<'a>(args: &'a BTreeMap<String, Option<String>>, name: &str) -> &'a str {
    args.get(name)
        .and_then(Option::as_deref)
        .unwrap_or_else(|| panic!("the Deployment passes no {name}"))
}

/// The port of a `HOST:PORT` listen address, which must take connections
/// from outside the pod.
pub fn listen_port(args: &BTreeMap<String, Option<String>>, name: &str) -> i64 {
    let address = arg(args, name);
    let (host, port) = address
        .rsplit_once(':')
        .unwrap_or_else(|| panic!("{name}={address} is not HOST:PORT"));
    assert!(
        host == "0.0.0.0" || host == "[::]",
        "{name}={address} cannot be reached from outside the pod (probes, agents, Prometheus)"
    );
    port.parse()
        .unwrap_or_else(|_| panic!("{name}={address}: {port} is not a port"))
}
