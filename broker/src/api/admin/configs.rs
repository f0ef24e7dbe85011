//! DescribeConfigs (1–4), AlterConfigs (0–2) and IncrementalAlterConfigs (0–1).
//!
//! Topic configs are described with their source as Kafka reports it: an override set on the
//! topic (DYNAMIC_TOPIC_CONFIG), a broker-level setting (STATIC_BROKER_CONFIG) or Kafka's
//! default (DEFAULT_CONFIG), with synonyms when asked. Broker configs are read-only here: they
//! come from the config file, environment and flags; dynamic broker configs are not supported
//! and altering them answers INVALID_REQUEST with that reason.

use std::collections::BTreeMap;

use kafka_protocol::messages::alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym,
};
use kafka_protocol::messages::incremental_alter_configs_response::AlterConfigsResourceResponse as IncrementalResourceResponse;
use kafka_protocol::messages::{
    AlterConfigsRequest, AlterConfigsResponse, DescribeConfigsRequest, DescribeConfigsResponse,
    IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use crate::api::{metadata_error_code, metadata_error_message, strb};
use crate::log::config::TOPIC_CONFIGS;
use crate::log::LogConfig;
use crate::metadata::AlterOp;
use crate::server::Broker;

pub const RESOURCE_TOPIC: i8 = 2;
pub const RESOURCE_BROKER: i8 = 4;

const SOURCE_DYNAMIC_TOPIC: i8 = 1;
const SOURCE_STATIC_BROKER: i8 = 4;
const SOURCE_DEFAULT: i8 = 5;

/// Kafka's ConfigType of each topic config (DescribeConfigs v3+).
/// DescribeConfigs' `config_type` of a key (Kafka's `ConfigDef.Type` ids), from the catalog of
/// Kafka's configs: topic keys first, then broker keys.
fn config_type(key: &str) -> i8 {
    use crate::config::{kafka_broker_key, kafka_topic_key, Kind};
    let kind =
        kafka_topic_key(key).map(|k| k.kind).or_else(|| kafka_broker_key(key).map(|k| k.kind));
    match kind {
        Some(Kind::Boolean) => 1,
        Some(Kind::String) => 2,
        Some(Kind::Int) => 3,
        Some(Kind::Short) => 4,
        Some(Kind::Long) => 5,
        Some(Kind::Double) => 6,
        Some(Kind::List) => 7,
        Some(Kind::Class) => 8,
        Some(Kind::Password) => 9,
        None => 0,
    }
}

/// The described entries of a topic with these overrides, optionally only `keys`.
pub fn describe_topic_entries(
    broker: &Broker,
    overrides: &BTreeMap<String, String>,
    keys: Option<&[StrBytes]>,
    include_synonyms: bool,
) -> Vec<DescribeConfigsResourceResult> {
    let broker_defaults = &broker.config.log_defaults;
    let kafka_defaults = LogConfig::default().to_props();
    let broker_props = broker_defaults.to_props();
    let effective = broker_defaults
        .with_overrides(overrides.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .unwrap_or_else(|_| broker_defaults.clone())
        .to_props();
    let mut out = Vec::new();
    for (topic_key, broker_key) in TOPIC_CONFIGS {
        if let Some(keys) = keys {
            if !keys.iter().any(|k| k.as_str() == *topic_key) {
                continue;
            }
        }
        let broker_set = broker_props.get(topic_key) != kafka_defaults.get(topic_key);
        let source = if overrides.contains_key(*topic_key) {
            SOURCE_DYNAMIC_TOPIC
        } else if broker_set {
            SOURCE_STATIC_BROKER
        } else {
            SOURCE_DEFAULT
        };
        let mut synonyms = Vec::new();
        if include_synonyms {
            if let Some(v) = overrides.get(*topic_key) {
                synonyms.push(synonym(topic_key, v, SOURCE_DYNAMIC_TOPIC));
            }
            if broker_set && !broker_key.is_empty() {
                synonyms.push(synonym(broker_key, &broker_props[topic_key], SOURCE_STATIC_BROKER));
            }
            if !broker_key.is_empty() {
                synonyms.push(synonym(broker_key, &kafka_defaults[topic_key], SOURCE_DEFAULT));
            }
        }
        out.push(
            DescribeConfigsResourceResult::default()
                .with_name(strb(topic_key))
                .with_value(effective.get(topic_key).map(|v| strb(v)))
                .with_read_only(false)
                .with_config_source(source)
                .with_is_sensitive(false)
                .with_synonyms(synonyms)
                .with_config_type(config_type(topic_key)),
        );
    }
    out
}

fn synonym(name: &str, value: &str, source: i8) -> DescribeConfigsSynonym {
    DescribeConfigsSynonym::default()
        .with_name(strb(name))
        .with_value(Some(strb(value)))
        .with_source(source)
}

pub fn describe_configs(
    broker: &Broker,
    req: DescribeConfigsRequest,
    _version: i16,
) -> DescribeConfigsResponse {
    let image = broker.metadata.image();
    let results = req
        .resources
        .into_iter()
        .map(|r| {
            let mut result = DescribeConfigsResult::default()
                .with_resource_type(r.resource_type)
                .with_resource_name(r.resource_name.clone());
            // Kafka describes every config when the key list is null or empty.
            let keys = r.configuration_keys.as_deref().filter(|k| !k.is_empty());
            match r.resource_type {
                RESOURCE_TOPIC => match image.topics.get(r.resource_name.as_str()) {
                    Some(topic) => {
                        result.configs = describe_topic_entries(broker, &topic.configs, keys, req.include_synonyms)
                    }
                    None => {
                        result.error_code = ResponseError::UnknownTopicOrPartition.code();
                        result.error_message = Some(strb(&format!("Topic {} does not exist", r.resource_name.as_str())));
                    }
                },
                RESOURCE_BROKER => {
                    let name = r.resource_name.as_str();
                    if !name.is_empty() && name != broker.node_id().to_string() {
                        result.error_code = ResponseError::InvalidRequest.code();
                        result.error_message = Some(strb(&format!(
                            "Unexpected broker id, expected {} or empty string, but received {name}",
                            broker.node_id()
                        )));
                    } else {
                        result.configs = broker
                            .config
                            .to_props()
                            .into_iter()
                            .filter(|(k, _)| keys.is_none_or(|keys| keys.iter().any(|x| x.as_str() == k)))
                            .map(|(k, v)| {
                                DescribeConfigsResourceResult::default()
                                    .with_name(strb(&k))
                                    .with_value(Some(strb(&v)))
                                    .with_read_only(true)
                                    .with_config_source(SOURCE_STATIC_BROKER)
                                    .with_config_type(config_type(&k))
                            })
                            .collect();
                    }
                }
                other => {
                    result.error_code = ResponseError::InvalidRequest.code();
                    result.error_message = Some(strb(&format!("Unsupported resource type {other}")));
                }
            }
            result
        })
        .collect();
    DescribeConfigsResponse::default().with_results(results)
}

/// Why a non-topic resource cannot be altered.
fn unsupported_resource(resource_type: i8) -> (i16, Option<StrBytes>) {
    let reason = if resource_type == RESOURCE_BROKER {
        "dynamic broker configs are not supported: set them in the broker's config file".to_string()
    } else {
        format!("Unsupported resource type {resource_type}")
    };
    (ResponseError::InvalidRequest.code(), Some(strb(&reason)))
}

pub async fn alter_configs(broker: &Broker, req: AlterConfigsRequest) -> AlterConfigsResponse {
    let mut responses = Vec::new();
    let mut changed = false;
    for r in req.resources {
        let mut resp = AlterConfigsResourceResponse::default()
            .with_resource_type(r.resource_type)
            .with_resource_name(r.resource_name.clone());
        if r.resource_type != RESOURCE_TOPIC {
            (resp.error_code, resp.error_message) = unsupported_resource(r.resource_type);
            responses.push(resp);
            continue;
        }
        let configs: BTreeMap<String, String> = r
            .configs
            .iter()
            .filter_map(|c| c.value.as_ref().map(|v| (c.name.to_string(), v.to_string())))
            .collect();
        match broker
            .metadata
            .alter_configs(r.resource_name.as_str(), configs, req.validate_only)
            .await
        {
            Ok(()) => changed |= !req.validate_only,
            Err(e) => {
                resp.error_code = metadata_error_code(&e);
                resp.error_message = metadata_error_message(&e);
            }
        }
        responses.push(resp);
    }
    if changed {
        let _ = broker.replicas.reconcile(&broker.metadata.image());
    }
    AlterConfigsResponse::default().with_responses(responses)
}

pub async fn incremental_alter_configs(
    broker: &Broker,
    req: IncrementalAlterConfigsRequest,
) -> IncrementalAlterConfigsResponse {
    let mut responses = Vec::new();
    let mut changed = false;
    for r in req.resources {
        let mut resp = IncrementalResourceResponse::default()
            .with_resource_type(r.resource_type)
            .with_resource_name(r.resource_name.clone());
        if r.resource_type != RESOURCE_TOPIC {
            (resp.error_code, resp.error_message) = unsupported_resource(r.resource_type);
            responses.push(resp);
            continue;
        }
        let mut ops = Vec::new();
        for c in &r.configs {
            let op = match c.config_operation {
                0 => AlterOp::Set,
                1 => AlterOp::Delete,
                2 => AlterOp::Append,
                3 => AlterOp::Subtract,
                other => {
                    resp.error_code = ResponseError::InvalidRequest.code();
                    resp.error_message = Some(strb(&format!("Unknown config operation {other}")));
                    break;
                }
            };
            ops.push((c.name.to_string(), op, c.value.as_ref().map(|v| v.to_string())));
        }
        if resp.error_code == 0 {
            match broker
                .metadata
                .incremental_alter_configs(r.resource_name.as_str(), ops, req.validate_only)
                .await
            {
                Ok(()) => changed |= !req.validate_only,
                Err(e) => {
                    resp.error_code = metadata_error_code(&e);
                    resp.error_message = metadata_error_message(&e);
                }
            }
        }
        responses.push(resp);
    }
    if changed {
        let _ = broker.replicas.reconcile(&broker.metadata.image());
    }
    IncrementalAlterConfigsResponse::default().with_responses(responses)
}
