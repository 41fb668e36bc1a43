//! [`Key`] → path: upstream's `KeyToDefaultPath`, escaping every segment
//! that the parser unescapes.

use super::Key;
use super::escape::escape_name;

pub(super) fn render(key: &Key) -> String {
    let e = escape_name;
    match key {
        Key::GlobalConfig { name } => format!("/calico/v1/config/{name}"),
        Key::HostConfig { hostname, name } => {
            format!("/calico/v1/host/{}/config/{name}", e(hostname))
        }
        Key::HostMetadata { hostname } => format!("/calico/v1/host/{hostname}/metadata"),
        Key::HostIp { hostname } => format!("/calico/v1/host/{}/bird_ip", e(hostname)),
        Key::Wireguard { hostname } => format!("/calico/v1/host/{}/wireguard", e(hostname)),
        Key::WorkloadEndpoint {
            hostname,
            orchestrator,
            workload,
            endpoint,
        } => format!(
            "/calico/v1/host/{}/workload/{}/{}/endpoint/{}",
            e(hostname),
            e(orchestrator),
            e(workload),
            e(endpoint)
        ),
        Key::HostEndpoint { hostname, endpoint } => {
            format!("/calico/v1/host/{}/endpoint/{}", e(hostname), e(endpoint))
        }
        Key::Policy {
            kind,
            namespace,
            name,
        } => {
            format!("/calico/v1/policy/{}/{}/{}", e(kind), e(namespace), e(name))
        }
        Key::LegacyPolicy { tier, name } => {
            format!("/calico/v1/policy/tier/{}/policy/{}", e(tier), e(name))
        }
        Key::Tier { name } => format!("/calico/v1/policy/tier/{}/metadata", e(name)),
        Key::ProfileRules { name } => format!("/calico/v1/policy/profile/{}/rules", e(name)),
        Key::ProfileLabels { name } => format!("/calico/v1/policy/profile/{}/labels", e(name)),
        Key::NetworkSet { name } => format!("/calico/v1/netset/{}", e(name)),
        Key::Ready => "/calico/v1/Ready".to_owned(),
        Key::IpPool { cidr } => {
            format!(
                "/calico/v1/ipam/v{}/pool/{}",
                cidr.version(),
                cidr.to_segment()
            )
        }
        Key::Block { cidr } => format!(
            "/calico/ipam/v2/assignment/ipv{}/block/{}",
            cidr.version(),
            cidr.to_segment()
        ),
        Key::BlockAffinity { hostname, cidr } => format!(
            "/calico/ipam/v2/host/{hostname}/ipv{}/block/{}",
            cidr.version(),
            cidr.to_segment()
        ),
        Key::IpamHandle { handle } => format!("/calico/ipam/v2/handle/{handle}"),
        Key::GlobalBgpConfig { name } => format!("/calico/bgp/v1/global/{name}"),
        Key::NodeBgpConfig { node, name } => format!("/calico/bgp/v1/host/{node}/{name}"),
        Key::Resource {
            kind,
            namespace,
            name,
        } => match namespace {
            Some(namespace) => format!(
                "/calico/resources/v3/projectcalico.org/{}/{}/{}",
                kind.plural(),
                e(namespace),
                e(name)
            ),
            None => format!(
                "/calico/resources/v3/projectcalico.org/{}/{}",
                kind.plural(),
                e(name)
            ),
        },
        Key::HostEndpointStatus { hostname, endpoint } => {
            format!("/calico/felix/v1/host/{hostname}/endpoint/{}", e(endpoint))
        }
        Key::WorkloadEndpointStatus {
            region,
            hostname,
            orchestrator,
            workload,
            endpoint,
        } => {
            format!(
                "/calico/felix/v2/{region}/host/{hostname}/workload/{}/{}/endpoint/{}",
                e(orchestrator),
                e(workload),
                e(endpoint)
            )
        }
        Key::ActiveStatusReport { region, hostname } => {
            format!("/calico/felix/v2/{region}/host/{hostname}/status")
        }
        Key::LastStatusReport { region, hostname } => {
            format!("/calico/felix/v2/{region}/host/{hostname}/last_reported_status")
        }
        Key::Other { path, .. } => path.clone(),
    }
}
