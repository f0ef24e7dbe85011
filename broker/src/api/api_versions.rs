//! ApiVersions (0–4): the implemented version ranges, and the KIP-511 fallback answered in the
//! v0 layout when a client asks with a version this broker does not know.

use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::{ApiKey, ApiVersionsResponse, ResponseKind};
use kafka_protocol::ResponseError;

use super::SUPPORTED;

fn api_keys() -> Vec<ApiVersion> {
    SUPPORTED
        .iter()
        .map(|&(key, min, max)| {
            ApiVersion::default()
                .with_api_key(key as i16)
                .with_min_version(min)
                .with_max_version(max)
        })
        .collect()
}

pub fn handle() -> ApiVersionsResponse {
    ApiVersionsResponse::default().with_error_code(0).with_api_keys(api_keys())
}

/// UNSUPPORTED_VERSION with ApiVersions' own range only, as Kafka answers (its
/// `ApiVersionsRequest.getErrorResponse`): enough for the client to retry with a version both
/// sides know, then learn the rest. Encoded by the caller as v0.
pub fn unsupported_version_response() -> ResponseKind {
    let own = api_keys().into_iter().filter(|k| k.api_key == ApiKey::ApiVersions as i16);
    ResponseKind::ApiVersions(
        ApiVersionsResponse::default()
            .with_error_code(ResponseError::UnsupportedVersion.code())
            .with_api_keys(own.collect()),
    )
}
