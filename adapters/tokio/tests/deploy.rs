//! The deployment files in `deploy/` against the tool they deploy: every
//! Kubernetes manifest parses as a named object; the Deployment runs
//! `syncproto relay` with flags and values the real binary's `relay --help`
//! lists; its probes, container ports, Service and Dockerfile agree with the
//! addresses it passes; every file it names is on a read-only volume the
//! relay's user can read; the Dockerfile builds this crate's `syncproto`
//! binary and runs the file it copies.

// Tests report failures by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use yaml_rust2::{Yaml, YamlLoader};

fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy")
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|error| panic!("{}: {error}", path.display()))
}

/// Every document of every manifest in `deploy/kubernetes`, with its file.
fn manifests() -> Vec<(String, Yaml)> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(deploy_dir().join("kubernetes"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| {
            path.extension()
                .is_some_and(|extension| extension == "yaml" || extension == "yml")
        })
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no manifests in deploy/kubernetes");
    let mut documents = Vec::new();
    for file in files {
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        let text = read(&file);
        yaml_1_1_safe(&name, &text);
        let parsed = YamlLoader::load_from_str(&text)
            .unwrap_or_else(|error| panic!("{name} is not valid YAML: {error}"));
        assert!(!parsed.is_empty(), "{name} holds no document");
        documents.extend(parsed.into_iter().map(|document| (name.clone(), document)));
    }
    documents
}

/// Kubernetes reads manifests with a YAML 1.1 parser, this test with a
/// YAML 1.2 one: refuse the plain scalars the two read differently (a
/// leading-zero integer is octal to one and decimal to the other; `yes`,
/// `on` and the like are booleans only to 1.1).
fn yaml_1_1_safe(file: &str, text: &str) {
    for (number, line) in text.lines().enumerate() {
        let content = line.split(" #").next().unwrap_or("").trim();
        if content.starts_with('#') {
            continue;
        }
        let value = match content.split_once(": ") {
            Some((_, value)) => value.trim(),
            None => content.strip_prefix("- ").unwrap_or("").trim(),
        };
        let octal = value.len() > 1
            && value.starts_with('0')
            && value.bytes().all(|byte| byte.is_ascii_digit());
        let boolean = ["y", "n", "yes", "no", "on", "off"]
            .iter()
            .any(|word| value.eq_ignore_ascii_case(word));
        assert!(
            !octal && !boolean,
            "{file}:{}: {value:?} means one thing to YAML 1.1 (Kubernetes) and another to YAML 1.2: \
             write the integer in decimal, quote the string",
            number + 1
        );
    }
}

fn string<'a>(node: &'a Yaml, what: &str) -> &'a str {
    node.as_str()
        .unwrap_or_else(|| panic!("{what} is not a string: {node:?}"))
}

fn list<'a>(node: &'a Yaml, what: &str) -> &'a [Yaml] {
    node.as_vec()
        .unwrap_or_else(|| panic!("{what} is not a list: {node:?}"))
}

/// The one object of a kind across the manifests.
fn object(documents: &[(String, Yaml)], kind: &str) -> Yaml {
    let found: Vec<&Yaml> = documents
        .iter()
        .map(|(_, document)| document)
        .filter(|document| document["kind"].as_str() == Some(kind))
        .collect();
    assert_eq!(found.len(), 1, "expected one {kind} in deploy/kubernetes");
    found[0].clone()
}

/// A mapping of strings to strings (labels, selectors) as a sorted map.
fn labels(node: &Yaml, what: &str) -> BTreeMap<String, String> {
    node.as_hash()
        .unwrap_or_else(|| panic!("{what} is not a mapping: {node:?}"))
        .iter()
        .map(|(key, value)| (string(key, what).to_owned(), string(value, what).to_owned()))
        .collect()
}

fn assert_selects(selector: &BTreeMap<String, String>, pod: &BTreeMap<String, String>, who: &str) {
    assert!(!selector.is_empty(), "{who} selects every pod");
    for (key, value) in selector {
        assert_eq!(
            pod.get(key),
            Some(value),
            "{who} selects {key}={value}, which the relay's pods do not carry ({pod:?})"
        );
    }
}

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

/// The relay's container in the Deployment.
fn relay_container(deployment: &Yaml) -> Yaml {
    let containers = list(
        &deployment["spec"]["template"]["spec"]["containers"],
        "the Deployment's containers",
    );
    assert_eq!(containers.len(), 1, "the Deployment runs one container");
    containers[0].clone()
}

/// The container's arguments as flag → value (None for a switch), checked
/// against the real binary's parser as its help describes it.
fn relay_args(container: &Yaml) -> BTreeMap<String, Option<String>> {
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

fn arg<'a>(args: &'a BTreeMap<String, Option<String>>, name: &str) -> &'a str {
    args.get(name)
        .and_then(Option::as_deref)
        .unwrap_or_else(|| panic!("the Deployment passes no {name}"))
}

/// The port of a `HOST:PORT` listen address, which must take connections
/// from outside the pod.
fn listen_port(args: &BTreeMap<String, Option<String>>, name: &str) -> i64 {
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

/// The container's ports, name → number.
fn container_ports(container: &Yaml) -> BTreeMap<String, i64> {
    list(&container["ports"], "the container's ports")
        .iter()
        .map(|port| {
            assert_eq!(
                port["protocol"].as_str().unwrap_or("TCP"),
                "TCP",
                "{port:?}"
            );
            (
                string(&port["name"], "a container port's name").to_owned(),
                port["containerPort"]
                    .as_i64()
                    .unwrap_or_else(|| panic!("containerPort of {port:?}")),
            )
        })
        .collect()
}

/// A port given by name or number, as the container's port number.
fn resolve_port(port: &Yaml, ports: &BTreeMap<String, i64>, who: &str) -> i64 {
    match port {
        Yaml::Integer(number) => {
            assert!(
                ports.values().any(|known| known == number),
                "{who} uses port {number}, which the container does not declare ({ports:?})"
            );
            *number
        }
        Yaml::String(name) => *ports.get(name).unwrap_or_else(|| {
            panic!("{who} uses port {name:?}, not a container port ({ports:?})")
        }),
        other => panic!("{who}: port {other:?}"),
    }
}

#[test]
fn every_manifest_is_a_named_kubernetes_object() {
    let documents = manifests();
    let mut namespaces = BTreeSet::new();
    let mut kinds = BTreeSet::new();
    for (file, document) in &documents {
        assert!(document.is_hash(), "{file}: a document is not a mapping");
        let api_version = string(&document["apiVersion"], &format!("{file}: apiVersion"));
        let kind = string(&document["kind"], &format!("{file}: kind"));
        let name = string(
            &document["metadata"]["name"],
            &format!("{file}: metadata.name"),
        );
        assert!(
            !api_version.is_empty() && !kind.is_empty() && !name.is_empty(),
            "{file}: {kind} {name}"
        );
        namespaces.insert(
            string(
                &document["metadata"]["namespace"],
                &format!("{file}: {kind} {name}: metadata.namespace"),
            )
            .to_owned(),
        );
        kinds.insert(kind.to_owned());
    }
    // Volumes and the ServiceAccount are only found in the pod's namespace.
    assert_eq!(namespaces.len(), 1, "one namespace for all: {namespaces:?}");
    for kind in ["Deployment", "Service"] {
        assert!(kinds.contains(kind), "no {kind} among {kinds:?}");
    }
}

#[test]
fn the_deployment_runs_the_relay_with_flags_the_tool_accepts() {
    let documents = manifests();
    let deployment = object(&documents, "Deployment");
    let container = relay_container(&deployment);
    // The image's ENTRYPOINT runs the tool; a command would replace it.
    assert!(
        container["command"].is_badvalue(),
        "the container overrides the image's ENTRYPOINT"
    );
    let args = relay_args(&container);
    arg(&args, "--upstream");
    // TLS on both sides, each with its CA.
    for flag in [
        "--upstream-tls-cert",
        "--upstream-tls-key",
        "--upstream-tls-ca",
        "--tls-cert",
        "--tls-key",
        "--tls-ca",
    ] {
        arg(&args, flag);
    }
    let pod = &deployment["spec"]["template"]["spec"];
    if let Some(account) = pod["serviceAccountName"].as_str() {
        assert!(
            documents.iter().any(|(_, document)| {
                document["kind"].as_str() == Some("ServiceAccount")
                    && document["metadata"]["name"].as_str() == Some(account)
            }),
            "the Deployment runs as ServiceAccount {account}, which the manifests do not define"
        );
    }
}

#[test]
fn probes_and_ports_match_the_listen_addresses() {
    let documents = manifests();
    let deployment = object(&documents, "Deployment");
    let container = relay_container(&deployment);
    let args = relay_args(&container);
    let ports = container_ports(&container);
    let listen = listen_port(&args, "--listen");
    let metrics = listen_port(&args, "--metrics-listen");
    let health = listen_port(&args, "--health-listen");
    let declared: BTreeSet<i64> = ports.values().copied().collect();
    assert_eq!(
        declared,
        BTreeSet::from([listen, metrics, health]),
        "the container's ports are not the ones the relay listens on"
    );
    for (probe, path) in [
        ("livenessProbe", "/liveness"),
        ("readinessProbe", "/readiness"),
    ] {
        let get = &container[probe]["httpGet"];
        assert_eq!(
            get["path"].as_str(),
            Some(path),
            "{probe} asks for another path than the relay answers"
        );
        assert_eq!(
            resolve_port(&get["port"], &ports, probe),
            health,
            "{probe} is not on --health-listen's port"
        );
        assert_eq!(get["scheme"].as_str().unwrap_or("HTTP"), "HTTP", "{probe}");
    }
    let annotations = &deployment["spec"]["template"]["metadata"]["annotations"];
    if let Some(port) = annotations["prometheus.io/port"].as_str() {
        assert_eq!(
            port.parse::<i64>().ok(),
            Some(metrics),
            "prometheus.io/port"
        );
    }
    if let Some(path) = annotations["prometheus.io/path"].as_str() {
        assert_eq!(path, "/metrics", "prometheus.io/path");
    }
}

#[test]
fn the_service_reaches_the_relays_ports() {
    let documents = manifests();
    let deployment = object(&documents, "Deployment");
    let container = relay_container(&deployment);
    let args = relay_args(&container);
    let ports = container_ports(&container);
    let pod_labels = labels(
        &deployment["spec"]["template"]["metadata"]["labels"],
        "the pod's labels",
    );
    assert_selects(
        &labels(
            &deployment["spec"]["selector"]["matchLabels"],
            "the Deployment's selector",
        ),
        &pod_labels,
        "the Deployment",
    );
    let service = object(&documents, "Service");
    assert_eq!(
        service["spec"]["type"].as_str().unwrap_or("ClusterIP"),
        "ClusterIP"
    );
    assert_selects(
        &labels(&service["spec"]["selector"], "the Service's selector"),
        &pod_labels,
        "the Service",
    );
    let mut targets = BTreeMap::new();
    for port in list(&service["spec"]["ports"], "the Service's ports") {
        let name = string(&port["name"], "a Service port's name").to_owned();
        assert_eq!(port["protocol"].as_str().unwrap_or("TCP"), "TCP", "{name}");
        let target = if port["targetPort"].is_badvalue() {
            &port["port"]
        } else {
            &port["targetPort"]
        };
        targets.insert(
            name.clone(),
            resolve_port(target, &ports, &format!("Service port {name}")),
        );
    }
    // Felix's Typha discovery takes the endpoints' port of this name.
    assert_eq!(
        targets.get("calico-typha"),
        Some(&listen_port(&args, "--listen")),
        "the Service has no port calico-typha on --listen's port: {targets:?}"
    );
    assert!(
        targets
            .values()
            .any(|port| *port == listen_port(&args, "--metrics-listen")),
        "the Service exposes no metrics port: {targets:?}"
    );
    for document in documents
        .iter()
        .map(|(_, document)| document)
        .filter(|document| document["kind"].as_str() == Some("PodDisruptionBudget"))
    {
        assert_selects(
            &labels(
                &document["spec"]["selector"]["matchLabels"],
                "the budget's selector",
            ),
            &pod_labels,
            "the PodDisruptionBudget",
        );
    }
}

#[test]
fn every_file_the_relay_reads_is_on_a_readable_read_only_volume() {
    let documents = manifests();
    let deployment = object(&documents, "Deployment");
    let container = relay_container(&deployment);
    let args = relay_args(&container);
    let pod = &deployment["spec"]["template"]["spec"];
    let volumes: BTreeMap<&str, &Yaml> = list(&pod["volumes"], "the pod's volumes")
        .iter()
        .map(|volume| (string(&volume["name"], "a volume's name"), volume))
        .collect();
    let mounts = list(&container["volumeMounts"], "the container's volumeMounts");
    for mount in mounts {
        let name = string(&mount["name"], "a mount's volume");
        assert!(
            volumes.contains_key(name),
            "mount of undefined volume {name}"
        );
        assert_eq!(
            mount["readOnly"].as_bool(),
            Some(true),
            "volume {name} is writable"
        );
    }
    let group = pod["securityContext"]["fsGroup"].as_i64();
    let readme = read(&deploy_dir().join("README.md"));
    let files: Vec<(&String, &str)> = args
        .iter()
        .filter_map(|(flag, value)| Some((flag, value.as_deref()?)))
        .filter(|(_, value)| value.starts_with('/'))
        .collect();
    assert!(!files.is_empty(), "the relay reads no files: no TLS?");
    for (flag, file) in files {
        let path = Path::new(file);
        let mount = mounts
            .iter()
            .find(|mount| path.parent() == Some(Path::new(string(&mount["mountPath"], "mountPath"))))
            .unwrap_or_else(|| {
                panic!("{flag}={file} is not directly in a mounted volume (secret and config map keys are files there)")
            });
        let volume = volumes[string(&mount["name"], "a mount's volume")];
        let source = if volume["secret"].is_hash() {
            &volume["secret"]
        } else if volume["configMap"].is_hash() {
            &volume["configMap"]
        } else {
            panic!("{flag}={file}: volume {volume:?} is neither a secret nor a config map")
        };
        let object = source["secretName"]
            .as_str()
            .or_else(|| source["name"].as_str())
            .unwrap();
        assert!(
            readme.contains(object),
            "deploy/README.md does not say where {object} (for {flag}) comes from"
        );
        // Kubernetes' default is 0644. The relay runs as a user that owns
        // nothing: it reads through the world bits, or the group's with
        // fsGroup set.
        let mode = source["defaultMode"].as_i64().unwrap_or(0o644);
        assert!(
            mode & 0o004 != 0 || (group.is_some() && mode & 0o040 != 0),
            "{flag}={file}: mode {mode:#o} (fsGroup {group:?}) does not let the relay read it"
        );
    }
}

/// The Dockerfile's instructions as stages of (instruction, arguments),
/// continuation lines joined and comments dropped.
fn dockerfile_stages() -> Vec<Vec<(String, String)>> {
    let text = read(&deploy_dir().join("Dockerfile"));
    let mut instructions = Vec::new();
    let mut pending = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('#') || (trimmed.is_empty() && pending.is_empty()) {
            continue;
        }
        match trimmed.strip_suffix('\\') {
            Some(part) => {
                pending.push_str(part);
                pending.push(' ');
            }
            None => {
                pending.push_str(trimmed);
                instructions.push(std::mem::take(&mut pending));
            }
        }
    }
    assert!(pending.is_empty(), "the Dockerfile ends in a continuation");
    let mut stages: Vec<Vec<(String, String)>> = Vec::new();
    for instruction in instructions {
        let (keyword, arguments) = instruction
            .split_once(char::is_whitespace)
            .unwrap_or((&instruction, ""));
        let keyword = keyword.to_ascii_uppercase();
        if keyword == "FROM" {
            stages.push(Vec::new());
        }
        stages
            .last_mut()
            .expect("an instruction before the first FROM")
            .push((keyword, arguments.trim().to_owned()));
    }
    stages
}

fn instruction<'a>(stage: &'a [(String, String)], keyword: &str) -> Vec<&'a str> {
    stage
        .iter()
        .filter(|(name, _)| name == keyword)
        .map(|(_, arguments)| arguments.as_str())
        .collect()
}

/// A `FROM image [AS name]` stage's image and name.
fn from(stage: &[(String, String)]) -> (String, Option<String>) {
    let words: Vec<&str> = stage[0].1.split_whitespace().collect();
    match words.as_slice() {
        [image] => ((*image).to_owned(), None),
        [image, as_, name] if as_.eq_ignore_ascii_case("as") => {
            ((*image).to_owned(), Some((*name).to_owned()))
        }
        _ => panic!("FROM {}", stage[0].1),
    }
}

#[test]
fn the_dockerfile_builds_the_binary_and_runs_it() {
    let stages = dockerfile_stages();
    assert!(stages.len() >= 2, "not a multi-stage build");
    let last = stages.last().unwrap();
    let (base, _) = from(last);
    assert!(
        base == "scratch" || base.starts_with("gcr.io/distroless/static"),
        "the final stage is on {base}, not an empty or static base"
    );

    // ENTRYPOINT runs the file the final stage copies from the builder.
    let entrypoints = instruction(last, "ENTRYPOINT");
    assert_eq!(entrypoints.len(), 1, "the final stage's ENTRYPOINT");
    let entrypoint: Vec<String> =
        serde_json::from_str(entrypoints[0]).expect("ENTRYPOINT in exec form, a JSON array");
    let binary = entrypoint.first().expect("an empty ENTRYPOINT");
    let (builder, source) = instruction(last, "COPY")
        .into_iter()
        .find_map(|arguments| {
            let words: Vec<&str> = arguments.split_whitespace().collect();
            let stage = words.first()?.strip_prefix("--from=")?;
            let (source, target) = (words.get(1)?, words.get(2)?);
            let target = match target.strip_suffix('/') {
                Some(directory) => format!("{directory}/{}", source.rsplit('/').next()?),
                None => (*target).to_owned(),
            };
            (target == *binary).then(|| (stage.to_owned(), (*source).to_owned()))
        })
        .unwrap_or_else(|| panic!("the final stage does not COPY --from a stage to {binary}"));

    // The builder stage makes that file with cargo, from this package.
    let stage = stages
        .iter()
        .find(|stage| from(stage).1.as_deref() == Some(builder.as_str()))
        .unwrap_or_else(|| panic!("no stage named {builder}"));
    let (image, _) = from(stage);
    let version = image
        .strip_prefix("rust:")
        .unwrap_or_else(|| panic!("the builder is {image}, not an official Rust image"));
    let version: Vec<u32> = version
        .split('-')
        .next()
        .unwrap()
        .split('.')
        .map(|part| {
            part.parse()
                .unwrap_or_else(|_| panic!("rust:{version}: pin a version"))
        })
        .collect();
    let workspace = read(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../../Cargo.toml"));
    let minimum: Vec<u32> = workspace
        .lines()
        .find_map(|line| line.strip_prefix("rust-version = "))
        .expect("the workspace's rust-version")
        .trim_matches('"')
        .split('.')
        .map(|part| part.parse().unwrap())
        .collect();
    assert!(
        version.len() >= 2 && version[..2] >= minimum[..2],
        "the builder's Rust {version:?} is older than the workspace's rust-version {minimum:?}"
    );
    let build = instruction(stage, "RUN")
        .into_iter()
        .find(|run| run.contains("cargo build"))
        .expect("the builder runs no cargo build");
    let words: Vec<&str> = build.split_whitespace().collect();
    let value_of = |flag: &str| {
        words
            .windows(2)
            .find(|pair| pair[0] == flag)
            .map(|pair| pair[1])
            .unwrap_or_else(|| panic!("cargo build without {flag}: {build}"))
    };
    assert_eq!(value_of("-p"), env!("CARGO_PKG_NAME"), "{build}");
    assert_eq!(value_of("--bin"), "syncproto", "{build}");
    for flag in ["--release", "--locked"] {
        assert!(words.contains(&flag), "cargo build without {flag}: {build}");
    }
    let target = value_of("--target");
    assert!(
        target.ends_with("-musl"),
        "not a static (musl) build: {build}"
    );
    let workdir = instruction(stage, "WORKDIR")
        .last()
        .copied()
        .expect("the builder's WORKDIR");
    assert_eq!(
        source,
        format!("{workdir}/target/{target}/release/syncproto"),
        "the final stage copies another file than cargo builds"
    );
}

#[test]
fn the_image_and_the_deployment_agree() {
    let stages = dockerfile_stages();
    let last = stages.last().unwrap();
    let documents = manifests();
    let deployment = object(&documents, "Deployment");
    let container = relay_container(&deployment);
    let ports = container_ports(&container);

    let exposed: BTreeSet<i64> = instruction(last, "EXPOSE")
        .iter()
        .flat_map(|arguments| arguments.split_whitespace())
        .map(|port| port.trim_end_matches("/tcp").parse().unwrap())
        .collect();
    assert_eq!(
        exposed,
        ports.values().copied().collect(),
        "EXPOSE and the container's ports differ"
    );

    // The image's user is numeric and not root (runAsNonRoot can only
    // check a number), and the pod runs as that user.
    let users = instruction(last, "USER");
    let user: i64 = users
        .last()
        .expect("the final stage runs as root")
        .split(':')
        .next()
        .unwrap()
        .parse()
        .expect("USER is not numeric: runAsNonRoot cannot verify a name");
    assert_ne!(user, 0, "the image runs as root");
    let pod = &deployment["spec"]["template"]["spec"]["securityContext"];
    let own = &container["securityContext"];
    let setting = |key: &str| {
        if own[key].is_badvalue() {
            pod[key].clone()
        } else {
            own[key].clone()
        }
    };
    assert_eq!(setting("runAsNonRoot").as_bool(), Some(true));
    if let Some(run_as) = setting("runAsUser").as_i64() {
        assert_eq!(
            run_as, user,
            "the pod runs as another user than the image's"
        );
    }
    assert_eq!(own["readOnlyRootFilesystem"].as_bool(), Some(true));
    assert_eq!(own["allowPrivilegeEscalation"].as_bool(), Some(false));
}
