//! The Kubernetes manifests in `deploy/kubernetes`, parsed, and the parts
//! of them the tests compare: objects by kind, labels, the relay's
//! container and its ports.

use std::collections::BTreeMap;
use std::path::PathBuf;

use yaml_rust2::{Yaml, YamlLoader};

use super::{deploy_dir, read};

/// Every document of every manifest in `deploy/kubernetes`, with its file.
pub fn manifests() -> Vec<(String, Yaml)> {
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

pub fn string<'a>(node: &'a Yaml, what: &str) -> &'a str {
    node.as_str()
        .unwrap_or_else(|| panic!("{what} is not a string: {node:?}"))
}

pub fn list<'a>(node: &'a Yaml, what: &str) -> &'a [Yaml] {
    node.as_vec()
        .unwrap_or_else(|| panic!("{what} is not a list: {node:?}"))
}

/// The one object of a kind across the manifests.
pub fn object(documents: &[(String, Yaml)], kind: &str) -> Yaml {
    let found: Vec<&Yaml> = documents
        .iter()
        .map(|(_, document)| document)
        .filter(|document| document["kind"].as_str() == Some(kind))
        .collect();
    assert_eq!(found.len(), 1, "expected one {kind} in deploy/kubernetes");
    found[0].clone()
}

/// A mapping of strings to strings (labels, selectors) as a sorted map.
pub fn labels(node: &Yaml, what: &str) -> BTreeMap<String, String> {
    node.as_hash()
        .unwrap_or_else(|| panic!("{what} is not a mapping: {node:?}"))
        .iter()
        .map(|(key, value)| (string(key, what).to_owned(), string(value, what).to_owned()))
        .collect()
}

pub fn assert_selects(
    selector: &BTreeMap<String, String>,
    pod: &BTreeMap<String, String>,
    who: &str,
) {
    assert!(!selector.is_empty(), "{who} selects every pod");
    for (key, value) in selector {
        assert_eq!(
            pod.get(key),
            Some(value),
            "{who} selects {key}={value}, which the relay's pods do not carry ({pod:?})"
        );
    }
}

/// The relay's container in the Deployment.
pub fn relay_container(deployment: &Yaml) -> Yaml {
    let containers = list(
        &deployment["spec"]["template"]["spec"]["containers"],
        "the Deployment's containers",
    );
    assert_eq!(containers.len(), 1, "the Deployment runs one container");
    containers[0].clone()
}

/// The container's ports, name → number.
pub fn container_ports(container: &Yaml) -> BTreeMap<String, i64> {
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
pub fn resolve_port(port: &Yaml, ports: &BTreeMap<String, i64>, who: &str) -> i64 {
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
