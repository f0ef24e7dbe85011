//! `meta.properties` in the data directory, as Kafka's `kafka-storage format` writes it: the
//! node id and cluster id the directory belongs to. Written once the cluster id is known (the
//! first start formats the directory; no separate step is needed), and checked before anything
//! else at every later start, so a directory is never served by another node id or joined to
//! another cluster.

use std::path::Path;

use super::MetadataError;
use crate::fsutil::write_file_atomically;

const FILE: &str = "meta.properties";

/// `(node.id, cluster.id)` as stored.
type Stored = (Option<String>, Option<String>);

fn read(dir: &Path) -> Result<Option<Stored>, MetadataError> {
    let path = dir.join(FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(MetadataError::Internal(format!("cannot read {}: {e}", path.display())))
        }
    };
    let value = |key: &str| {
        text.lines()
            .filter_map(|l| l.split_once('='))
            .find(|(k, _)| k.trim() == key)
            .map(|(_, v)| v.trim().to_string())
    };
    Ok(Some((value("node.id"), value("cluster.id"))))
}

/// Checks `node_id` and the configured cluster id against a stored `meta.properties`; answers
/// the stored cluster id.
pub(crate) fn check(
    dir: &Path,
    node_id: i32,
    cluster_id: Option<&str>,
) -> Result<Option<String>, MetadataError> {
    let Some((stored_node, stored_cluster)) = read(dir)? else { return Ok(None) };
    let path = dir.join(FILE);
    if let Some(stored) = stored_node.filter(|n| *n != node_id.to_string()) {
        return Err(MetadataError::InvalidConfig(format!(
            "{} says this data directory belongs to node.id {stored}, but node.id is {node_id}",
            path.display()
        )));
    }
    if let (Some(stored), Some(wanted)) = (&stored_cluster, cluster_id) {
        if stored != wanted {
            return Err(MetadataError::InvalidConfig(format!(
                "{} says this data directory belongs to cluster '{stored}', but cluster.id is \
                 '{wanted}'; the directory is from another cluster",
                path.display()
            )));
        }
    }
    Ok(stored_cluster)
}

/// Writes `meta.properties` unless it already says the same.
pub(crate) fn write(dir: &Path, node_id: i32, cluster_id: &str) -> Result<(), MetadataError> {
    let node = node_id.to_string();
    if read(dir)? == Some((Some(node.clone()), Some(cluster_id.to_string()))) {
        return Ok(());
    }
    let text = format!(
        "# Written by Sluice; do not edit.\nversion=1\nnode.id={node}\ncluster.id={cluster_id}\n"
    );
    let path = dir.join(FILE);
    write_file_atomically(&path, text.as_bytes())
        .map_err(|e| MetadataError::Internal(format!("cannot write {}: {e}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn another_node_or_cluster_is_refused_naming_both_ids() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(check(dir.path(), 1, Some("abc")).unwrap(), None);
        write(dir.path(), 1, "abc").unwrap();
        assert_eq!(check(dir.path(), 1, None).unwrap().as_deref(), Some("abc"));
        assert_eq!(check(dir.path(), 1, Some("abc")).unwrap().as_deref(), Some("abc"));
        let e = check(dir.path(), 1, Some("xyz")).unwrap_err().to_string();
        assert!(e.contains("'abc'") && e.contains("'xyz'"), "{e}");
        let e = check(dir.path(), 2, None).unwrap_err().to_string();
        assert!(e.contains("node.id 1") && e.contains("node.id is 2"), "{e}");
    }
}
