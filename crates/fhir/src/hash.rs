//! Content hashes of resources, used to make ingestion idempotent: a resource whose content equals
//! a version already stored is a replay and writes nothing.

use serde_json::Value;
use sha2::{Digest, Sha256};

/// SHA-256 of the resource's JSON without `meta.versionId` and `meta.lastUpdated`, which the
/// store sets itself (FHIR R4 resource.html#Meta). Element order is part of the content: the
/// store keeps it as written.
pub fn content_hash(resource: &Value) -> [u8; 32] {
    let mut hasher = Sha256::new();
    match resource.get("meta") {
        Some(Value::Object(meta))
            if meta.contains_key("versionId") || meta.contains_key("lastUpdated") =>
        {
            let mut copy = resource.clone();
            if let Some(Value::Object(m)) = copy.get_mut("meta") {
                m.shift_remove("versionId");
                m.shift_remove("lastUpdated");
                if m.is_empty() {
                    copy.as_object_mut().map(|o| o.shift_remove("meta"));
                }
            }
            serde_json::to_writer(HashWriter(&mut hasher), &copy).expect("hashing never fails");
        }
        _ => serde_json::to_writer(HashWriter(&mut hasher), resource).expect("hashing never fails"),
    }
    hasher.finalize().into()
}

struct HashWriter<'a>(&'a mut Sha256);

impl std::io::Write for HashWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn server_managed_meta_does_not_change_the_hash() {
        let a = json!({"resourceType": "Patient", "id": "p1", "gender": "female"});
        let b = json!({"resourceType": "Patient", "id": "p1", "meta": {"versionId": "3", "lastUpdated": "2026-01-01T00:00:00Z"}, "gender": "female"});
        assert_eq!(content_hash(&a), content_hash(&b));
        let c = json!({"resourceType": "Patient", "id": "p1", "meta": {"profile": ["x"]}, "gender": "female"});
        assert_ne!(content_hash(&a), content_hash(&c));
    }
}
