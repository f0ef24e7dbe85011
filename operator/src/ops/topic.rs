//! What to do for a `Topic` resource, as a pure function of its spec and of the topic as the
//! brokers describe it. No I/O: every branch is a unit test.
//!
//! The resource is the source of truth, one way (as Strimzi's unidirectional topic operator):
//!
//! - an invalid spec (an illegal topic name, an unknown config key or a value Kafka would
//!   refuse, a replication factor above the registered brokers for a new topic) is refused with
//!   reason `InvalidSpec`, and nothing is asked of the brokers;
//! - an absent topic is created with the spec's partitions, replication factor and configs;
//! - partitions only grow: fewer in the spec than in Kafka is refused
//!   (`PartitionDecreaseRefused`), whether the spec shrank or someone added partitions with
//!   another tool; nothing is removed;
//! - a different replication factor is refused (`ReplicationFactorChangeRefused`): that takes a
//!   partition reassignment, which the operator does not do yet;
//! - configs: the spec's keys are set where the topic's own value differs, and keys the
//!   operator set before (kept in the status) and the spec no longer has are deleted. Keys set
//!   by other tools and absent from the spec are left alone.
//!
//! A refusal changes nothing: not the partitions, not the configs.

use std::collections::BTreeMap;

use crate::crd::TopicSpec;

/// Kafka's longest topic name.
pub const MAX_TOPIC_NAME_LEN: usize = 249;

/// The topic as the brokers describe it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ObservedTopic {
    pub partitions: i32,
    pub replication_factor: i32,
    /// The topic's own configs (set on the topic, not inherited from the brokers).
    pub config: BTreeMap<String, String>,
}

/// What to do next; the reconciler acts, updates what it observed and asks again until
/// [`TopicAction::UpToDate`] or a refusal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TopicAction {
    /// CreateTopics with the spec's partitions, replication factor and configs.
    Create,
    /// CreatePartitions up to this many partitions in all.
    AddPartitions(i32),
    /// IncrementalAlterConfigs: SET these, DELETE those.
    AlterConfig { set: BTreeMap<String, String>, delete: Vec<String> },
    /// Nothing is done; the status says why.
    Refuse { reason: &'static str, message: String },
    /// The topic matches the spec.
    UpToDate,
}

/// Kafka's `Topic.validate`: 1 to 249 characters of `[a-zA-Z0-9._-]`, neither `.` nor `..`.
pub fn validate_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("the topic name is empty".into());
    }
    if name == "." || name == ".." {
        return Err(format!("the topic name cannot be \"{name}\""));
    }
    if name.len() > MAX_TOPIC_NAME_LEN {
        return Err(format!(
            "the topic name is {} characters long; Kafka allows at most {MAX_TOPIC_NAME_LEN}",
            name.len()
        ));
    }
    if let Some(c) =
        name.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Err(format!(
            "the topic name \"{name}\" contains {c:?}; Kafka allows ASCII letters, digits, '.', '_' and '-'"
        ));
    }
    Ok(())
}

/// Each refused key of `config`, named with the broker's reason (Sluice's own topic config
/// parser, the one CreateTopics uses).
pub fn validate_config(config: &BTreeMap<String, String>) -> Result<(), Vec<String>> {
    let defaults = sluice_broker::log::LogConfig::default();
    let problems: Vec<String> = config
        .iter()
        .filter_map(|(k, v)| defaults.with_overrides([(k.as_str(), v.as_str())]).err())
        .map(|e| e.to_string())
        .collect();
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems)
    }
}

/// What makes a spec refused whatever the cluster holds: an illegal name, fewer than one
/// partition or replica, a refused config.
pub fn validate_spec(spec: &TopicSpec, name: &str) -> Result<(), String> {
    validate_name(name)?;
    if spec.partitions < 1 || spec.replication_factor < 1 {
        return Err(format!(
            "partitions ({}) and replicationFactor ({}) must be at least 1",
            spec.partitions, spec.replication_factor
        ));
    }
    if spec.replication_factor > i16::MAX as i32 {
        return Err(format!("replicationFactor {} is too large", spec.replication_factor));
    }
    validate_config(&spec.config)
        .map_err(|problems| format!("spec.config is refused: {}", problems.join("; ")))
}

/// The next thing to do for topic `name` with `spec`, given the registered `brokers`, the
/// topic as observed (`None`: it does not exist) and the configs the operator set before.
pub fn decide(
    spec: &TopicSpec,
    name: &str,
    brokers: usize,
    observed: Option<&ObservedTopic>,
    applied: &BTreeMap<String, String>,
) -> TopicAction {
    let invalid = |message: String| TopicAction::Refuse { reason: "InvalidSpec", message };
    if let Err(e) = validate_spec(spec, name) {
        return invalid(e);
    }
    let Some(topic) = observed else {
        if spec.replication_factor as usize > brokers {
            return invalid(format!(
                "replicationFactor {} is more than the {brokers} registered broker(s)",
                spec.replication_factor
            ));
        }
        return TopicAction::Create;
    };
    if topic.replication_factor != spec.replication_factor {
        return TopicAction::Refuse {
            reason: "ReplicationFactorChangeRefused",
            message: format!(
                "the topic has replication factor {}, spec asks {}: changing it takes a \
                 partition reassignment, which the operator does not do yet",
                topic.replication_factor, spec.replication_factor
            ),
        };
    }
    if topic.partitions > spec.partitions {
        return TopicAction::Refuse {
            reason: "PartitionDecreaseRefused",
            message: format!(
                "Kafka cannot remove partitions: {} exist, spec asks {}",
                topic.partitions, spec.partitions
            ),
        };
    }
    if topic.partitions < spec.partitions {
        return TopicAction::AddPartitions(spec.partitions);
    }
    let set: BTreeMap<String, String> = spec
        .config
        .iter()
        .filter(|(k, v)| topic.config.get(*k) != Some(*v))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let delete: Vec<String> = applied
        .keys()
        .filter(|k| !spec.config.contains_key(*k) && topic.config.contains_key(*k))
        .cloned()
        .collect();
    if set.is_empty() && delete.is_empty() {
        return TopicAction::UpToDate;
    }
    TopicAction::AlterConfig { set, delete }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::DeletionPolicy;

    fn spec(partitions: i32, rf: i32, config: &[(&str, &str)]) -> TopicSpec {
        TopicSpec {
            cluster: "demo".into(),
            topic_name: None,
            partitions,
            replication_factor: rf,
            config: map(config),
            deletion_policy: DeletionPolicy::Retain,
        }
    }

    fn map(kv: &[(&str, &str)]) -> BTreeMap<String, String> {
        kv.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn topic(partitions: i32, rf: i32, config: &[(&str, &str)]) -> ObservedTopic {
        ObservedTopic { partitions, replication_factor: rf, config: map(config) }
    }

    fn refusal(a: TopicAction) -> (&'static str, String) {
        match a {
            TopicAction::Refuse { reason, message } => (reason, message),
            other => panic!("not a refusal: {other:?}"),
        }
    }

    #[test]
    fn an_absent_topic_is_created() {
        let s = spec(3, 3, &[("retention.ms", "60000")]);
        assert_eq!(decide(&s, "events", 3, None, &BTreeMap::new()), TopicAction::Create);
    }

    #[test]
    fn a_replication_factor_above_the_brokers_is_refused_before_asking() {
        let (reason, message) = refusal(decide(&spec(3, 4, &[]), "events", 3, None, &map(&[])));
        assert_eq!(reason, "InvalidSpec");
        assert!(message.contains("the 3 registered broker(s)"), "{message}");
    }

    #[test]
    fn illegal_names_are_refused() {
        for name in [".", "..", "", "a b", "tópico", &"x".repeat(250)] {
            let (reason, _) = refusal(decide(&spec(1, 1, &[]), name, 3, None, &map(&[])));
            assert_eq!(reason, "InvalidSpec", "{name}");
        }
        assert!(validate_name(&"x".repeat(249)).is_ok());
        assert!(validate_name("a.b_c-D9").is_ok());
    }

    #[test]
    fn unknown_config_keys_and_bad_values_are_refused_by_name() {
        let s = spec(1, 1, &[("retention.msx", "1"), ("retention.ms", "soon")]);
        let (reason, message) = refusal(decide(&s, "events", 3, None, &map(&[])));
        assert_eq!(reason, "InvalidSpec");
        assert!(message.contains("retention.msx"), "{message}");
        assert!(message.contains("'soon'"), "{message}");
        // Refused before anything else, even for an existing topic.
        let t = topic(1, 1, &[]);
        assert_eq!(refusal(decide(&s, "events", 3, Some(&t), &map(&[]))).0, "InvalidSpec");
    }

    #[test]
    fn partitions_only_grow() {
        let t = topic(3, 3, &[]);
        assert_eq!(
            decide(&spec(5, 3, &[]), "events", 3, Some(&t), &map(&[])),
            TopicAction::AddPartitions(5)
        );
        let t = topic(5, 3, &[]);
        let (reason, message) = refusal(decide(&spec(2, 3, &[]), "events", 3, Some(&t), &map(&[])));
        assert_eq!(reason, "PartitionDecreaseRefused");
        assert_eq!(message, "Kafka cannot remove partitions: 5 exist, spec asks 2");
    }

    #[test]
    fn a_replication_factor_change_is_refused() {
        let t = topic(3, 3, &[]);
        let (reason, message) = refusal(decide(&spec(3, 2, &[]), "events", 3, Some(&t), &map(&[])));
        assert_eq!(reason, "ReplicationFactorChangeRefused");
        assert!(message.contains("partition reassignment"), "{message}");
        // An existing topic keeps its RF even when fewer brokers are registered now.
        assert_eq!(
            decide(&spec(3, 3, &[]), "events", 2, Some(&t), &map(&[])),
            TopicAction::UpToDate
        );
    }

    #[test]
    fn configs_are_set_where_they_differ_and_deleted_only_when_the_operator_set_them() {
        let s = spec(3, 3, &[("retention.ms", "60000"), ("cleanup.policy", "compact")]);
        // Another tool set segment.ms; the operator set max.message.bytes before.
        let t = topic(
            3,
            3,
            &[
                ("retention.ms", "1000"),
                ("cleanup.policy", "compact"),
                ("segment.ms", "5000"),
                ("max.message.bytes", "1000"),
            ],
        );
        let applied = map(&[("retention.ms", "1000"), ("max.message.bytes", "1000")]);
        assert_eq!(
            decide(&s, "events", 3, Some(&t), &applied),
            TopicAction::AlterConfig {
                set: map(&[("retention.ms", "60000")]),
                delete: vec!["max.message.bytes".into()],
            }
        );
    }

    #[test]
    fn a_key_deleted_meanwhile_by_someone_else_is_not_deleted_again() {
        let s = spec(3, 3, &[]);
        let t = topic(3, 3, &[]);
        assert_eq!(
            decide(&s, "events", 3, Some(&t), &map(&[("retention.ms", "1")])),
            TopicAction::UpToDate
        );
    }

    #[test]
    fn a_matching_topic_is_up_to_date() {
        let s = spec(3, 3, &[("retention.ms", "60000")]);
        let t = topic(3, 3, &[("retention.ms", "60000"), ("segment.ms", "5000")]);
        assert_eq!(decide(&s, "events", 3, Some(&t), &map(&[])), TopicAction::UpToDate);
    }
}
