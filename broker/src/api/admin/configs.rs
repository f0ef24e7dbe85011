//! DescribeConfigs (1–4), AlterConfigs (0–2) and IncrementalAlterConfigs (0–1).
//!
//! Configs are described with their source as Kafka reports it: an override set on the topic
//! (DYNAMIC_TOPIC_CONFIG), a dynamic config of this broker (DYNAMIC_BROKER_CONFIG) or of all
//! brokers (DYNAMIC_DEFAULT_BROKER_CONFIG), the broker's config file, environment and flags
//! (STATIC_BROKER_CONFIG) or Kafka's default (DEFAULT_CONFIG), with synonyms when asked.
//!
//! BROKER resources (this broker's id, or "" for the cluster-wide defaults) take the settings
//! Kafka lets change at run time (`config::catalog`); they are stored as metadata records and
//! applied without a restart (the log settings among them reach every partition's log). Others
//! answer INVALID_REQUEST ("Cannot update these configs dynamically"), as Kafka does.
//!
//! BROKER_LOGGER resources (this broker's id) are the process's log levels
//! (`logging::Loggers`): described with source DYNAMIC_BROKER_LOGGER_CONFIG, changed with
//! IncrementalAlterConfigs SET and DELETE at once, never stored, as in Kafka.

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
pub const RESOURCE_BROKER_LOGGER: i8 = 8;

const SOURCE_DYNAMIC_TOPIC: i8 = 1;
const SOURCE_DYNAMIC_BROKER: i8 = 2;
const SOURCE_DYNAMIC_DEFAULT_BROKER: i8 = 3;
const SOURCE_STATIC_BROKER: i8 = 4;
const SOURCE_DEFAULT: i8 = 5;
const SOURCE_DYNAMIC_BROKER_LOGGER: i8 = 6;

/// Kafka's name of a config source (`ConfigSource` in DescribeConfigs answers).
pub fn source_name(source: i8) -> &'static str {
    match source {
        SOURCE_DYNAMIC_TOPIC => "DYNAMIC_TOPIC_CONFIG",
        SOURCE_DYNAMIC_BROKER => "DYNAMIC_BROKER_CONFIG",
        SOURCE_DYNAMIC_DEFAULT_BROKER => "DYNAMIC_DEFAULT_BROKER_CONFIG",
        SOURCE_STATIC_BROKER => "STATIC_BROKER_CONFIG",
        SOURCE_DEFAULT => "DEFAULT_CONFIG",
        SOURCE_DYNAMIC_BROKER_LOGGER => "DYNAMIC_BROKER_LOGGER_CONFIG",
        _ => "UNKNOWN",
    }
}

/// Kafka's ConfigType of each topic config (DescribeConfigs v3+).
/// DescribeConfigs' `config_type` of a key (Kafka's `ConfigDef.Type` ids), from the catalog of
/// Kafka's configs: topic keys first, then broker keys.
fn config_type(key: &str) -> i8 {
    use crate::config::kafka::{kafka_broker_key, kafka_topic_key, Kind};
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
    let image = broker.metadata.image();
    let static_props = broker.config.log_defaults.to_props();
    let broker_defaults =
        &image.effective_log_defaults(&broker.config.log_defaults, broker.node_id());
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
        let dynamic = (!broker_key.is_empty())
            .then(|| image.dynamic_broker_config(broker.node_id(), broker_key))
            .flatten();
        let static_set = static_props.get(topic_key) != kafka_defaults.get(topic_key);
        let broker_set = dynamic.is_some() || static_set;
        let broker_source = match dynamic {
            Some((_, false)) => SOURCE_DYNAMIC_BROKER,
            Some((_, true)) => SOURCE_DYNAMIC_DEFAULT_BROKER,
            None => SOURCE_STATIC_BROKER,
        };
        let source = if overrides.contains_key(*topic_key) {
            SOURCE_DYNAMIC_TOPIC
        } else if broker_set {
            broker_source
        } else {
            SOURCE_DEFAULT
        };
        let mut synonyms = Vec::new();
        if include_synonyms {
            if let Some(v) = overrides.get(*topic_key) {
                synonyms.push(synonym(topic_key, v, SOURCE_DYNAMIC_TOPIC));
            }
            if broker_set && !broker_key.is_empty() {
                synonyms.push(synonym(broker_key, &broker_props[topic_key], broker_source));
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
                        result.configs = describe_broker_entries(broker, &image, name, keys);
                    }
                }
                RESOURCE_BROKER_LOGGER => match logger_resource(broker, r.resource_name.as_str()) {
                    Err((code, message)) => (result.error_code, result.error_message) = (code, message),
                    Ok(()) => {
                        let wanted = |k: &str| keys.is_none_or(|keys| keys.iter().any(|x| x.as_str() == k));
                        result.configs = crate::logging::loggers()
                            .levels()
                            .into_iter()
                            .filter(|(name, _)| wanted(name))
                            .map(|(name, level)| {
                                DescribeConfigsResourceResult::default()
                                    .with_name(strb(&name))
                                    .with_value(Some(strb(&level)))
                                    .with_read_only(false)
                                    .with_config_source(SOURCE_DYNAMIC_BROKER_LOGGER)
                            })
                            .collect();
                    }
                },
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

/// Whether a broker config's value is secret, as Kafka decides (`KafkaConfig.maybeSensitive`):
/// a PASSWORD key, or a listener-prefixed one (`listener.name.<l>.ssl.key.password`), whose
/// type Kafka does not know. Its value is described as null.
fn sensitive(key: &str) -> bool {
    key.starts_with("listener.name.")
        || crate::config::kafka::kafka_broker_key(key)
            .is_some_and(|k| k.kind == crate::config::kafka::Kind::Password)
}

/// The described entries of a BROKER resource: for "" the cluster-wide dynamic defaults set;
/// for this broker every setting with its effective value and source.
fn describe_broker_entries(
    broker: &Broker,
    image: &crate::metadata::ClusterImage,
    name: &str,
    keys: Option<&[StrBytes]>,
) -> Vec<DescribeConfigsResourceResult> {
    let wanted = |k: &str| keys.is_none_or(|keys| keys.iter().any(|x| x.as_str() == k));
    let entry = |k: &str, v: &str, source: i8| {
        let dynamic = crate::config::kafka::kafka_broker_key(k)
            .is_some_and(|key| key.dynamic != crate::config::kafka::Dynamic::No);
        let sensitive = sensitive(k);
        DescribeConfigsResourceResult::default()
            .with_name(strb(k))
            .with_value((!sensitive).then(|| strb(v)))
            .with_is_sensitive(sensitive)
            .with_read_only(!dynamic)
            .with_config_source(source)
            .with_config_type(config_type(k))
    };
    if name.is_empty() {
        return image
            .broker_configs
            .get("")
            .into_iter()
            .flatten()
            .filter(|(k, _)| wanted(k))
            .map(|(k, v)| entry(k, v, SOURCE_DYNAMIC_DEFAULT_BROKER))
            .collect();
    }
    let mut props = broker.config.to_props();
    props.extend(broker.config.without_effect.clone());
    let mut sources: BTreeMap<String, i8> =
        props.keys().map(|k| (k.clone(), SOURCE_STATIC_BROKER)).collect();
    for (scope, source) in [("", SOURCE_DYNAMIC_DEFAULT_BROKER), (name, SOURCE_DYNAMIC_BROKER)] {
        for (k, v) in image.broker_configs.get(scope).into_iter().flatten() {
            props.insert(k.clone(), v.clone());
            sources.insert(k.clone(), source);
        }
    }
    props.iter().filter(|(k, _)| wanted(k)).map(|(k, v)| entry(k, v, sources[k])).collect()
}

/// A BROKER_LOGGER resource must name this broker (Kafka's checks and messages).
fn logger_resource(broker: &Broker, name: &str) -> Result<(), (i16, Option<StrBytes>)> {
    let refuse = |m: String| Err((ResponseError::InvalidRequest.code(), Some(strb(&m))));
    if name.is_empty() {
        return refuse("Broker id must not be empty".into());
    }
    if name != broker.node_id().to_string() {
        return refuse(format!(
            "Unexpected broker id, expected {} but received {name}",
            broker.node_id()
        ));
    }
    Ok(())
}

/// IncrementalAlterConfigs of this broker's loggers: every change checked, then all applied.
fn alter_loggers(
    broker: &Broker,
    r: &kafka_protocol::messages::incremental_alter_configs_request::AlterConfigsResource,
    validate_only: bool,
) -> Result<(), (i16, Option<StrBytes>)> {
    use crate::logging::LoggerError;
    logger_resource(broker, r.resource_name.as_str())?;
    let changed = crate::logging::change_loggers(
        |loggers| {
            for c in &r.configs {
                let name = c.name.as_str();
                match c.config_operation {
                    0 => loggers.change(name, Some(c.value.as_deref().unwrap_or(""))),
                    1 => loggers.change(name, None),
                    op => Err(LoggerError::InvalidRequest(format!(
                        "Operation {op} is not allowed for the BROKER_LOGGER resource"
                    ))),
                }?;
            }
            Ok(())
        },
        validate_only,
    );
    changed.map_err(|e| {
        let code = match e {
            LoggerError::InvalidConfig(_) => ResponseError::InvalidConfig.code(),
            LoggerError::InvalidRequest(_) => ResponseError::InvalidRequest.code(),
        };
        (code, Some(strb(&e.to_string())))
    })
}

/// Why a resource type cannot be altered.
fn unsupported_resource(resource_type: i8) -> (i16, Option<StrBytes>) {
    let reason = format!("Unsupported resource type {resource_type}");
    (ResponseError::InvalidRequest.code(), Some(strb(&reason)))
}

pub async fn alter_configs(broker: &Broker, req: AlterConfigsRequest) -> AlterConfigsResponse {
    let mut responses = Vec::new();
    for r in req.resources {
        let mut resp = AlterConfigsResourceResponse::default()
            .with_resource_type(r.resource_type)
            .with_resource_name(r.resource_name.clone());
        let configs: BTreeMap<String, String> = r
            .configs
            .iter()
            .filter_map(|c| c.value.as_ref().map(|v| (c.name.to_string(), v.to_string())))
            .collect();
        let name = r.resource_name.as_str();
        let result = match r.resource_type {
            RESOURCE_TOPIC => broker.metadata.alter_configs(name, configs, req.validate_only).await,
            RESOURCE_BROKER => {
                let ops = configs.into_iter().map(|(k, v)| (k, AlterOp::Set, Some(v))).collect();
                broker.metadata.alter_broker_configs(name, ops, true, req.validate_only).await
            }
            other => {
                (resp.error_code, resp.error_message) = unsupported_resource(other);
                responses.push(resp);
                continue;
            }
        };
        if let Err(e) = result {
            resp.error_code = metadata_error_code(&e);
            resp.error_message = metadata_error_message(&e);
        }
        responses.push(resp);
    }
    AlterConfigsResponse::default().with_responses(responses)
}

pub async fn incremental_alter_configs(
    broker: &Broker,
    req: IncrementalAlterConfigsRequest,
) -> IncrementalAlterConfigsResponse {
    let mut responses = Vec::new();
    for r in req.resources {
        let mut resp = IncrementalResourceResponse::default()
            .with_resource_type(r.resource_type)
            .with_resource_name(r.resource_name.clone());
        if r.resource_type == RESOURCE_BROKER_LOGGER {
            if let Err((code, message)) = alter_loggers(broker, &r, req.validate_only) {
                (resp.error_code, resp.error_message) = (code, message);
            }
            responses.push(resp);
            continue;
        }
        if r.resource_type != RESOURCE_TOPIC && r.resource_type != RESOURCE_BROKER {
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
            let name = r.resource_name.as_str();
            let result = if r.resource_type == RESOURCE_BROKER {
                broker.metadata.alter_broker_configs(name, ops, false, req.validate_only).await
            } else {
                broker.metadata.incremental_alter_configs(name, ops, req.validate_only).await
            };
            if let Err(e) = result {
                resp.error_code = metadata_error_code(&e);
                resp.error_message = metadata_error_message(&e);
            }
        }
        responses.push(resp);
    }
    IncrementalAlterConfigsResponse::default().with_responses(responses)
}
