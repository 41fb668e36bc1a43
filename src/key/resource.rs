//! The v3 resource kinds upstream registers for
//! `/calico/resources/v3/projectcalico.org/<plural>/…` keys.

use std::fmt;

macro_rules! resource_kinds {
    ($($variant:ident => $kind:literal, $plural:literal, $namespaced:literal;)*) => {
        /// A kind of v3 resource that upstream carries under
        /// `/calico/resources/v3/projectcalico.org/<plural>/…`.
        ///
        /// The table is upstream's newest registry (libcalico-go
        /// `lib/backend/model/resource.go`, with namespacing from
        /// `lib/namespace/resource.go`). A plural outside it is refused as
        /// upstream refuses it; kinds upstream has since dropped (such as
        /// `kubernetesadminnetworkpolicies`) are not listed.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[non_exhaustive]
        pub enum ResourceKind {
            $(
                #[doc = concat!("`", $kind, "` (plural `", $plural, "`",
                    "; namespaced: ", stringify!($namespaced), ").")]
                $variant,
            )*
        }

        impl ResourceKind {
            /// Every kind, in upstream's registration order.
            pub const ALL: &'static [ResourceKind] = &[$(ResourceKind::$variant),*];

            /// The kind's name, as in a resource's `kind` field.
            pub fn kind(self) -> &'static str {
                match self {
                    $(ResourceKind::$variant => $kind,)*
                }
            }

            /// The lower-case plural used in key paths.
            pub fn plural(self) -> &'static str {
                match self {
                    $(ResourceKind::$variant => $plural,)*
                }
            }

            /// Whether resources of this kind live in a namespace (their
            /// paths have a namespace segment before the name).
            pub fn is_namespaced(self) -> bool {
                match self {
                    $(ResourceKind::$variant => $namespaced,)*
                }
            }

            /// The kind whose path plural is `plural` (exact match, as
            /// upstream's lookup).
            pub fn from_plural(plural: &str) -> Option<ResourceKind> {
                match plural {
                    $($plural => Some(ResourceKind::$variant),)*
                    _ => None,
                }
            }
        }
    };
}

resource_kinds! {
    BgpPeer => "BGPPeer", "bgppeers", false;
    BgpConfiguration => "BGPConfiguration", "bgpconfigurations", false;
    ClusterInformation => "ClusterInformation", "clusterinformations", false;
    FelixConfiguration => "FelixConfiguration", "felixconfigurations", false;
    GlobalNetworkPolicy => "GlobalNetworkPolicy", "globalnetworkpolicies", false;
    StagedGlobalNetworkPolicy => "StagedGlobalNetworkPolicy", "stagedglobalnetworkpolicies", false;
    HostEndpoint => "HostEndpoint", "hostendpoints", false;
    GlobalNetworkSet => "GlobalNetworkSet", "globalnetworksets", false;
    IpPool => "IPPool", "ippools", false;
    IpReservation => "IPReservation", "ipreservations", false;
    NetworkPolicy => "NetworkPolicy", "networkpolicies", true;
    StagedNetworkPolicy => "StagedNetworkPolicy", "stagednetworkpolicies", true;
    StagedKubernetesNetworkPolicy =>
        "StagedKubernetesNetworkPolicy", "stagedkubernetesnetworkpolicies", true;
    KubernetesEndpointSlice => "KubernetesEndpointSlice", "kubernetesendpointslices", true;
    NetworkSet => "NetworkSet", "networksets", true;
    Tier => "Tier", "tiers", false;
    CalicoNodeStatus => "CalicoNodeStatus", "caliconodestatuses", false;
    Profile => "Profile", "profiles", false;
    KubeControllersConfiguration =>
        "KubeControllersConfiguration", "kubecontrollersconfigurations", false;
    BgpFilter => "BGPFilter", "bgpfilters", false;
    IpamConfiguration => "IPAMConfiguration", "ipamconfigurations", false;
    Node => "Node", "nodes", false;
    WorkloadEndpoint => "WorkloadEndpoint", "workloadendpoints", true;
    IpamConfig => "IPAMConfig", "ipamconfigs", false;
    BlockAffinity => "BlockAffinity", "blockaffinities", false;
    LiveMigration => "LiveMigration", "livemigrations", true;
    KubernetesService => "KubernetesService", "kubernetesservice", true;
    KubernetesNetworkPolicy => "KubernetesNetworkPolicy", "kubernetesnetworkpolicies", true;
    KubernetesClusterNetworkPolicy =>
        "KubernetesClusterNetworkPolicy", "kubernetesclusternetworkpolicies", false;
}

impl ResourceKind {
    /// The kind named `kind`, compared case-insensitively as upstream's
    /// kind lookup does (`ippool` finds [`ResourceKind::IpPool`]).
    pub fn from_kind(kind: &str) -> Option<ResourceKind> {
        ResourceKind::ALL
            .iter()
            .copied()
            .find(|k| k.kind().eq_ignore_ascii_case(kind))
    }
}

/// Displays the kind's name (`NetworkPolicy`).
impl fmt::Display for ResourceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.kind())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plurals_and_kinds_are_unique_and_look_up_back() {
        for &kind in ResourceKind::ALL {
            assert_eq!(ResourceKind::from_plural(kind.plural()), Some(kind));
            assert_eq!(ResourceKind::from_kind(kind.kind()), Some(kind));
            assert_eq!(
                ResourceKind::from_kind(&kind.kind().to_lowercase()),
                Some(kind)
            );
            assert_eq!(kind.plural(), kind.plural().to_lowercase());
        }
        assert_eq!(ResourceKind::ALL.len(), 29);
    }

    #[test]
    fn namespacing_follows_upstream() {
        let namespaced: Vec<_> = ResourceKind::ALL
            .iter()
            .filter(|k| k.is_namespaced())
            .map(|k| k.kind())
            .collect();
        assert_eq!(
            namespaced,
            [
                "NetworkPolicy",
                "StagedNetworkPolicy",
                "StagedKubernetesNetworkPolicy",
                "KubernetesEndpointSlice",
                "NetworkSet",
                "WorkloadEndpoint",
                "LiveMigration",
                "KubernetesService",
                "KubernetesNetworkPolicy",
            ]
        );
        assert_eq!(ResourceKind::from_plural("BGPFilters"), None);
        assert_eq!(
            ResourceKind::from_plural("kubernetesadminnetworkpolicies"),
            None
        );
    }
}
