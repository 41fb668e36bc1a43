//! The deployment files in `deploy/` against the tool they deploy: every
//! Kubernetes manifest parses as a named object; the Deployment runs
//! `syncproto relay` with flags and values the real binary's `relay --help`
//! lists; its probes, container ports, Service and Dockerfile agree with the
//! addresses it passes; every file it names is on a read-only volume the
//! relay's user can read; the Dockerfile builds this crate's `syncproto`
//! binary and runs the file it copies.

// Tests report failures by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod deploy_support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use deploy_support::dockerfile::{dockerfile_stages, from, instruction};
use deploy_support::manifest::{
    assert_selects, container_ports, labels, list, manifests, object, relay_container,
    resolve_port, string,
};
use deploy_support::relay_args::{arg, listen_port, relay_args};
use deploy_support::{deploy_dir, read};
use yaml_rust2::Yaml;

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
