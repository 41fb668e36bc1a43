//! Rewrites of an update's key and value that upstream applies at either
//! end of the wire: moving a v3 resource's version out of its value (the
//! server) and back in (the client), and upgrading legacy policy keys (the
//! client). Each is a method of
//! [`SerializedUpdate`](crate::message::SerializedUpdate).

mod json_object;
mod legacy_policy;
mod resource_version;

pub use legacy_policy::is_modern_policy_key;
pub(crate) use legacy_policy::may_be_legacy_policy_key;
pub use resource_version::is_v3_resource_key;
