//! The message browser: a few records of one partition from an offset or a time, keys, values
//! and headers shown as text, JSON or hex.
//!
//! The partition's leader reads them (up to its high watermark, what a consumer may see), from
//! at most [`MAX_READ`] bytes of its log, decompressing at most [`MAX_DECOMPRESSED`] bytes, at
//! most [`MAX_READERS`] answers at once; a broker that does not lead the partition asks the
//! leader's `/api/v1/local/messages`. Each key, value, header key and header value is cut at
//! [`MAX_SHOWN`] bytes, and at most [`MAX_HEADERS`] headers of a record are shown.

use serde_json::{json, Value};

use super::{error, ConsoleError};
use crate::http::Request;
use crate::log::batch::BatchView;
use crate::log::record::RecordIter;
use crate::log::TopicPartition;
use crate::replica::ReplicaError;
use crate::server::Broker;

/// Most records of one answer.
const MAX_RECORDS: usize = 100;
/// Most bytes of log read for one answer.
const MAX_READ: usize = 1024 * 1024;
/// Most bytes decompressed for one answer.
const MAX_DECOMPRESSED: usize = 8 * 1024 * 1024;
/// Most bytes of one key, value or header shown.
const MAX_SHOWN: usize = 4096;
/// Most headers of one record shown.
const MAX_HEADERS: usize = 64;
/// Answers read at once on this broker.
const MAX_READERS: usize = 2;
static READERS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(MAX_READERS);

/// How bytes are shown.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// JSON when they are JSON, text when they are UTF-8, hex otherwise.
    Auto,
    Text,
    Json,
    Hex,
}

impl Format {
    fn parse(s: Option<&str>) -> Result<Format, ConsoleError> {
        Ok(match s.unwrap_or("auto") {
            "auto" => Format::Auto,
            "text" => Format::Text,
            "json" => Format::Json,
            "hex" => Format::Hex,
            other => {
                return Err(error(
                    400,
                    "INVALID_REQUEST",
                    format!("format {other} is not auto, text, json or hex"),
                ))
            }
        })
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `bytes` shown as `format` asks: `{encoding, data, size, truncated}`. A format that does not
/// fit (text that is not UTF-8, JSON that does not parse) falls back to text, then hex.
pub fn render(bytes: Option<&[u8]>, format: Format) -> Value {
    let Some(bytes) = bytes else { return Value::Null };
    let truncated = bytes.len() > MAX_SHOWN;
    let shown = &bytes[..bytes.len().min(MAX_SHOWN)];
    let text = std::str::from_utf8(shown).ok().or_else(|| {
        // A cut may split a character: show what is whole.
        let valid = std::str::from_utf8(shown).err()?.valid_up_to();
        (truncated && shown.len() - valid < 4)
            .then(|| std::str::from_utf8(&shown[..valid]).ok())
            .flatten()
    });
    let json_value = (!truncated)
        .then(|| text.and_then(|t| serde_json::from_str::<Value>(t).ok()))
        .flatten()
        .filter(|v| v.is_object() || v.is_array() || format == Format::Json);
    let (encoding, data) = match (format, text, json_value) {
        (Format::Hex, _, _) | (_, None, _) => ("hex", hex(shown)),
        (Format::Auto | Format::Json, _, Some(v)) => {
            ("json", serde_json::to_string_pretty(&v).unwrap_or_default())
        }
        (_, Some(t), _) => ("text", t.to_string()),
    };
    json!({ "encoding": encoding, "data": data, "size": bytes.len(), "truncated": truncated })
}

pub async fn messages(broker: &Broker, topic: &str, req: &Request) -> Result<Value, ConsoleError> {
    let image = broker.metadata.image();
    let t = image.topics.get(topic).ok_or_else(|| super::read::unknown_topic(topic))?;
    let partition: i32 = req
        .query("partition")
        .unwrap_or("0")
        .parse()
        .map_err(|_| error(400, "INVALID_REQUEST", "partition must be a number"))?;
    let leader = t
        .partitions
        .get(&partition)
        .ok_or_else(|| {
            error(
                404,
                "UNKNOWN_TOPIC_OR_PARTITION",
                format!("{topic} has no partition {partition}"),
            )
        })?
        .leader;
    if leader == broker.node_id() {
        let mut v = local_messages(broker, topic, req)?;
        v["served_by"] = json!(broker.node_id());
        return Ok(v);
    }
    if leader < 0 {
        return Err(error(
            503,
            "LEADER_NOT_AVAILABLE",
            format!("{topic}-{partition} has no leader"),
        ));
    }
    let query: Vec<String> = req
        .query
        .iter()
        .map(|(k, v)| format!("{}={}", super::encode(k), super::encode(v)))
        .collect();
    let path = format!("/api/v1/local/messages/{}?{}", super::encode(topic), query.join("&"));
    let who = "the leader";
    super::peers::forward(&image, leader, &path, broker.node_id(), who, "LEADER_NOT_AVAILABLE")
        .await
}

/// Records of a partition this broker leads.
pub fn local_messages(broker: &Broker, topic: &str, req: &Request) -> Result<Value, ConsoleError> {
    let number = |key: &str| -> Result<Option<i64>, ConsoleError> {
        req.query(key)
            .map(|v| {
                v.parse::<i64>()
                    .map_err(|_| error(400, "INVALID_REQUEST", format!("{key} must be a number")))
            })
            .transpose()
    };
    let partition = number("partition")?.unwrap_or(0) as i32;
    let limit = number("limit")?.unwrap_or(20);
    if !(1..=MAX_RECORDS as i64).contains(&limit) {
        return Err(error(400, "INVALID_REQUEST", format!("limit must be 1 to {MAX_RECORDS}")));
    }
    let limit = limit as usize;
    let format = Format::parse(req.query("format"))?;
    let tp = TopicPartition::new(topic.to_string(), partition);
    let not_here = |e: ReplicaError| match e {
        ReplicaError::UnknownTopicOrPartition => {
            error(404, "UNKNOWN_TOPIC_OR_PARTITION", format!("{tp} does not exist"))
        }
        ReplicaError::NotLeader => error(
            503,
            "NOT_LEADER_OR_FOLLOWER",
            format!("broker {} does not lead {tp}", broker.node_id()),
        ),
        e => error(503, "KAFKA_STORAGE_ERROR", e.to_string()),
    };
    let timestamp = number("timestamp")?;
    if timestamp.is_some_and(|ts| ts < 0) {
        return Err(error(400, "INVALID_REQUEST", "timestamp must be at least 0"));
    }
    let Ok(_reading) = READERS.try_acquire() else {
        return Err(error(503, "BUSY", "other records are being read: try again"));
    };
    let (log_start, hw, by_time, decompress_limit) = broker
        .replicas
        .with_leader_log(&tp, -1, |log, _| {
            let by_time = match timestamp {
                Some(ts) => Some(
                    log.fetch_offset_by_timestamp(ts)?.map_or(log.high_watermark(), |(o, _)| o),
                ),
                None => None,
            };
            let decompress_limit = log.config().decompress_limit();
            Ok((log.log_start_offset(), log.high_watermark(), by_time, decompress_limit))
        })
        .map_err(not_here)?;
    // From an offset, a time, or else the last `limit` records.
    let from = match (number("offset")?, by_time) {
        (Some(o), _) => o,
        (None, Some(o)) => o,
        (None, None) => (hw - limit as i64).max(log_start),
    }
    .max(log_start);
    let mut items = Vec::new();
    let mut next = from;
    let mut budget = MAX_DECOMPRESSED;
    if from < hw {
        let data = broker.replicas.read(&tp, from, MAX_READ, -1, false).map_err(not_here)?;
        let bytes = match data.records {
            Some(slice) => {
                slice.read_to_vec().map_err(|e| error(503, "KAFKA_STORAGE_ERROR", e.to_string()))?
            }
            None => Vec::new(),
        };
        let mut rest = &bytes[..];
        'batches: while !rest.is_empty() && items.len() < limit {
            let Ok(batch) = BatchView::parse(rest) else { break };
            rest = &rest[batch.size().min(rest.len())..];
            if batch.is_control() {
                next = batch.next_offset().max(next);
                continue;
            }
            let codec =
                batch.compression().map_err(|e| error(500, "CORRUPT_MESSAGE", e.to_string()))?;
            let limit_here = budget.min(decompress_limit);
            let payload = batch.records_payload();
            let records = match crate::log::compression::decompress(codec, payload, limit_here) {
                Ok(r) => r,
                // Past the budget: what was read so far is the answer.
                Err(_) if !items.is_empty() && limit_here < decompress_limit => break,
                Err(e) if limit_here < decompress_limit => {
                    let message = format!(
                        "the batch at offset {} holds more than {MAX_DECOMPRESSED} bytes \
                         decompressed, more than the console shows ({e})",
                        batch.base_offset()
                    );
                    return Err(error(422, "RECORD_TOO_LARGE", message));
                }
                Err(e) => return Err(error(500, "CORRUPT_MESSAGE", e.to_string())),
            };
            budget -= records.len().min(budget);
            for r in RecordIter::new(&records, batch.records_count()) {
                let r = r.map_err(|e| error(500, "CORRUPT_MESSAGE", e.to_string()))?;
                let offset = batch.base_offset() + r.offset_delta as i64;
                if offset < from {
                    continue;
                }
                if items.len() == limit {
                    break 'batches;
                }
                let headers = r
                    .headers(MAX_HEADERS)
                    .map_err(|e| error(500, "CORRUPT_MESSAGE", e.to_string()))?;
                let headers: Vec<Value> = headers
                    .into_iter()
                    .map(|(k, v)| {
                        let key = String::from_utf8_lossy(&k[..k.len().min(MAX_SHOWN)]);
                        json!({ "key": key, "value": render(v, format) })
                    })
                    .collect();
                let timestamp = batch.record_timestamp(r.timestamp_delta);
                items.push(json!({
                    "offset": offset, "timestamp": timestamp,
                    "key": render(r.key, format), "value": render(r.value, format),
                    "headers": headers, "header_count": r.header_count,
                }));
                next = offset + 1;
            }
            if items.len() < limit {
                next = next.max(batch.next_offset());
            }
        }
    }
    Ok(json!({
        "topic": topic, "partition": partition, "from": from, "items": items,
        "next_offset": next.min(hw.max(from)), "log_start": log_start, "hw": hw,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shows_bytes_as_asked() {
        let enc = |b: &[u8], f| {
            let v = render(Some(b), f);
            (v["encoding"].as_str().unwrap().to_string(), v["data"].as_str().unwrap().to_string())
        };
        assert_eq!(enc(br#"{"a":1}"#, Format::Auto), ("json".into(), "{\n  \"a\": 1\n}".into()));
        assert_eq!(enc(br#"{"a":1}"#, Format::Text), ("text".into(), r#"{"a":1}"#.into()));
        assert_eq!(enc(b"42", Format::Auto), ("text".into(), "42".into()), "a bare number is text");
        assert_eq!(enc(b"42", Format::Json), ("json".into(), "42".into()));
        assert_eq!(enc(b"plain", Format::Json), ("text".into(), "plain".into()));
        assert_eq!(enc(b"\xff\x00", Format::Auto), ("hex".into(), "ff00".into()));
        assert_eq!(enc(b"ab", Format::Hex), ("hex".into(), "6162".into()));
        assert_eq!(render(None, Format::Auto), Value::Null);
        let long = "é".repeat(MAX_SHOWN); // two bytes each: the cut splits one
        let v = render(Some(long.as_bytes()), Format::Auto);
        assert_eq!((v["encoding"].as_str(), v["truncated"].as_bool()), (Some("text"), Some(true)));
        assert_eq!(v["data"].as_str().unwrap().len(), MAX_SHOWN);
        assert_eq!(v["size"], long.len());
    }
}
